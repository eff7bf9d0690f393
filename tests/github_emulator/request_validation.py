# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""Every request the emulator receives, held to GitHub's own OpenAPI description.

The emulator's answers are checked against GitHub's description by the conformance tests; this
module checks the other direction: what a client sends. For each request under ``/api/v3`` it
checks, against the description shipped by the npm package ``@octokit/openapi``:

- the path names an operation GitHub has, and the method is one that path accepts;
- each path and query parameter is declared by the operation and holds a value of its declared
  type (and enumeration); required ones are present;
- a request with a body names a media type (``Content-Type``) the operation accepts, and a JSON
  body validates against the operation's request schema; a required body is present.

A request breaking a rule is refused (404 for an unknown operation, 422 otherwise) and recorded
as a :class:`Violation` naming the operation, the rule and the offending value. The emulator lists
them in its stats (``request_violations``); the functional suite fails the test that caused one.

The description is loaded once (:func:`install_spec` installs the pinned package with npm into a
cache directory when missing). Validation needs ``jsonschema`` and ``openapi-schema-validator``,
which the functional test environment has; the emulator without a validator checks nothing and
says so in its stats (``request_validation: false``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

OPENAPI_PACKAGE = "@octokit/openapi"
OPENAPI_VERSION = "23.0.2"
SPEC_FILE = Path("node_modules/@octokit/openapi/generated/api.github.com.json")
SPEC_URI = "urn:github:api.github.com.json"
_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


@dataclasses.dataclass(frozen=True)
class Violation:
    """One broken rule of one request.

    Attributes:
        operation: ``METHOD /template`` (or ``METHOD /path`` when no operation matched).
        rule: which rule (``path``, ``method``, ``path-parameter``, ``query-parameter``,
            ``content-type``, ``body``).
        value: the offending value, as received.
        detail: what is wrong with it.
    """

    operation: str
    rule: str
    value: str
    detail: str

    def message(self) -> str:
        """One line naming the operation, the rule and the offending value.

        Returns:
            The message.
        """
        return f"{self.operation}: {self.rule} rule broken by {self.value!r}: {self.detail}"

    def as_dict(self) -> dict[str, str]:
        """The violation as JSON.

        Returns:
            The fields.
        """
        return dataclasses.asdict(self)


def cache_dir() -> Path:
    """Where the description is installed (``$GRT_CACHE_DIR/openapi``).

    Returns:
        The directory.
    """
    base = os.environ.get("GRT_CACHE_DIR", "/var/cache/github-runner-testbed")
    return Path(base) / "openapi"


def _installed_version(directory: Path) -> str | None:
    try:
        manifest = directory / "node_modules" / "@octokit" / "openapi" / "package.json"
        return json.loads(manifest.read_text())["version"]
    except (OSError, ValueError, KeyError):
        return None


def install_spec() -> Path:
    """The pinned description, installed with npm into the cache directory when missing.

    Returns:
        The path of ``api.github.com.json``.

    Raises:
        RuntimeError: npm is missing or the installation did not give the pinned version.
    """
    directory = cache_dir()
    if _installed_version(directory) != OPENAPI_VERSION or not (directory / SPEC_FILE).is_file():
        npm = shutil.which("npm")
        if npm is None:
            raise RuntimeError("npm is needed to install GitHub's OpenAPI description")
        directory.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                npm,
                "install",
                "--no-audit",
                "--no-fund",
                "--prefix",
                str(directory),
                f"{OPENAPI_PACKAGE}@{OPENAPI_VERSION}",
            ],
            check=True,
            timeout=600,
            capture_output=True,
        )
    if _installed_version(directory) != OPENAPI_VERSION:
        raise RuntimeError(f"{OPENAPI_PACKAGE}@{OPENAPI_VERSION} is not installed in {directory}")
    return directory / SPEC_FILE


@dataclasses.dataclass
class _Template:
    template: str
    pattern: re.Pattern[str]
    literals: int
    operations: dict[str, dict[str, Any]]


def _coerce(raw: str, schema: Mapping[str, Any]) -> Any:
    """A parameter's text as the JSON value its schema types (unchanged when it cannot be)."""
    kind = schema.get("type")
    try:
        if kind == "integer" and re.fullmatch(r"-?\d+", raw):
            return int(raw)
        if kind == "number":
            return float(raw)
    except ValueError:
        return raw
    if kind == "boolean" and raw in ("true", "false"):
        return raw == "true"
    return raw


class RequestValidator:
    """Checks requests against the operations of GitHub's OpenAPI description.

    Args:
        spec: the parsed description (``api.github.com.json``).
    """

    def __init__(self, spec: dict[str, Any]):
        from jsonschema import validators
        from openapi_schema_validator import OAS30WriteValidator, oas30_format_checker
        from referencing import Registry, Resource
        from referencing.jsonschema import DRAFT4

        self.spec = spec
        self._registry = Registry().with_resource(
            SPEC_URI, Resource.from_contents(spec, default_specification=DRAFT4)
        )
        self._validator_class = validators.extend(OAS30WriteValidator, {})
        self._format_checker = oas30_format_checker
        self._templates: dict[int, list[_Template]] = {}
        for template, item in spec["paths"].items():
            segments = template.strip("/").split("/")
            regex = "/".join(
                f"(?P<{_key(s[1:-1])}>[^/]+)"
                if s.startswith("{") and s.endswith("}")
                else re.escape(s)
                for s in segments
            )
            operations = {m: op for m, op in item.items() if m in _METHODS}
            entry = _Template(
                template,
                re.compile(f"^/{regex}/?$"),
                sum(1 for s in segments if not s.startswith("{")),
                operations,
            )
            self._templates.setdefault(len(segments), []).append(entry)
        for entries in self._templates.values():
            # Literal segments win over parameters: `.../runners/downloads` is not runner
            # "downloads".
            entries.sort(key=lambda entry: -entry.literals)

    @classmethod
    def from_file(cls, path: Path) -> RequestValidator:
        """A validator for the description in a file.

        Args:
            path: ``api.github.com.json``.

        Returns:
            The validator.
        """
        return cls(json.loads(path.read_text()))

    def _resolve(self, node: Any) -> Any:
        while isinstance(node, dict) and "$ref" in node:
            target: Any = self.spec
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            node = target
        return node

    def _schema_errors(self, value: Any, schema: Mapping[str, Any]) -> list[str]:
        validator = self._validator_class(
            dict(schema), registry=self._registry, format_checker=self._format_checker
        )
        return [
            f"at {'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
            for e in sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
        ]

    def check(
        self,
        method: str,
        path: str,
        query: Mapping[str, list[str]],
        headers: Mapping[str, str] | Any,
        body: bytes,
    ) -> list[Violation]:
        """Check one request.

        Args:
            method: the HTTP method.
            path: the path below the API root (``/repos/o/r/actions/runners``).
            query: the parsed query string (every value of every name).
            headers: the request headers (``get`` is case-insensitive).
            body: the raw body.

        Returns:
            The broken rules; empty when the request conforms.
        """
        segments = path.strip("/").split("/")
        matches = []
        for entry in self._templates.get(len(segments), []):
            found = entry.pattern.match(path)
            if found:
                matches.append((entry, found))
        if not matches:
            return [Violation(f"{method} {path}", "path", path, "no GitHub operation has it")]
        with_method = [(e, f) for e, f in matches if method.lower() in e.operations]
        if not with_method:
            entry = matches[0][0]
            allowed = ", ".join(sorted(m.upper() for m in entry.operations))
            return [
                Violation(
                    f"{method} {entry.template}", "method", method, f"the path accepts {allowed}"
                )
            ]
        # The most specific template whose path parameters hold values of their types.
        best: list[Violation] | None = None
        for entry, found in with_method:
            violations = self._check_operation(method, entry, found, query, headers, body)
            path_ok = not any(v.rule == "path-parameter" for v in violations)
            if path_ok:
                return violations
            if best is None:
                best = violations
        return best or []

    def _check_operation(
        self,
        method: str,
        entry: _Template,
        found: re.Match[str],
        query: Mapping[str, list[str]],
        headers: Any,
        body: bytes,
    ) -> list[Violation]:
        operation = entry.operations[method.lower()]
        name = f"{method} {entry.template}"
        violations: list[Violation] = []
        parameters = [self._resolve(p) for p in operation.get("parameters", [])]
        declared = {(p["in"], p["name"]): p for p in parameters}
        for key, raw in found.groupdict().items():
            parameter = next(
                (p for (where, n), p in declared.items() if where == "path" and _key(n) == key),
                None,
            )
            if parameter is None:
                continue
            violations += self._parameter(name, "path-parameter", parameter, [raw])
        for query_name, values in query.items():
            parameter = declared.get(("query", query_name))
            if parameter is None:
                violations.append(
                    Violation(name, "query-parameter", f"{query_name}={','.join(values)}",
                              f"the operation declares no query parameter {query_name!r}")
                )  # fmt: skip
                continue
            violations += self._parameter(name, "query-parameter", parameter, values)
        for (where, parameter_name), parameter in declared.items():
            if where == "query" and parameter.get("required") and parameter_name not in query:
                violations.append(
                    Violation(name, "query-parameter", parameter_name, "required but missing")
                )
        violations += self._body(name, operation, headers, body)
        return violations

    def _parameter(
        self, name: str, rule: str, parameter: Mapping[str, Any], values: Iterable[str]
    ) -> list[Violation]:
        schema = self._resolve(parameter.get("schema", {}))
        values = list(values)
        label = f"{parameter['name']}={','.join(values)}"
        if schema.get("type") == "array":
            value: Any = [
                _coerce(v, self._resolve(schema.get("items", {})))
                for raw in values
                for v in raw.split(",")
            ]
        elif len(values) != 1:
            return [Violation(name, rule, label, "given more than once")]
        else:
            value = _coerce(values[0], schema)
        errors = self._schema_errors(value, schema)
        return [Violation(name, rule, label, "; ".join(errors))] if errors else []

    def _body(
        self, name: str, operation: Mapping[str, Any], headers: Any, body: bytes
    ) -> list[Violation]:
        request_body = self._resolve(operation.get("requestBody")) or {}
        content = request_body.get("content", {})
        if not body:
            if request_body.get("required"):
                return [Violation(name, "body", "<empty>", "the operation requires a body")]
            return []
        if not content:
            return [Violation(name, "body", _excerpt(body), "the operation takes no body")]
        content_type = (headers.get("Content-Type") or "").strip()
        media_type = content_type.split(";", 1)[0].strip().lower()
        if media_type not in content:
            accepted = ", ".join(sorted(content))
            return [
                Violation(
                    name,
                    "content-type",
                    content_type or "<none>",
                    f"the operation accepts {accepted}",
                )
            ]
        if media_type != "application/json" and not media_type.endswith("+json"):
            return []
        try:
            document = json.loads(body)
        except ValueError as exc:
            return [Violation(name, "body", _excerpt(body), f"not JSON: {exc}")]
        schema = content[media_type].get("schema", {})
        errors = self._schema_errors(document, schema)
        if errors:
            return [Violation(name, "body", _excerpt(body), "; ".join(errors[:5]))]
        return []


def _key(parameter_name: str) -> str:
    return re.sub(r"\W", "_", parameter_name)


def _excerpt(body: bytes) -> str:
    text = body[:200].decode("utf-8", "replace")
    return text + ("..." if len(body) > 200 else "")


class RequestLog:
    """The violations one emulator has seen; thread-safe.

    Args:
        validator: the checker, or None to check nothing.
    """

    def __init__(self, validator: RequestValidator | None):
        self.validator = validator
        self._lock = threading.Lock()
        self._violations: list[Violation] = []

    def check(
        self,
        method: str,
        path: str,
        query: Mapping[str, list[str]],
        headers: Any,
        body: bytes,
    ) -> list[Violation]:
        """Check one request and record what it breaks.

        Args:
            method: the HTTP method.
            path: the path below the API root.
            query: the parsed query string.
            headers: the request headers.
            body: the raw body.

        Returns:
            The broken rules.
        """
        if self.validator is None:
            return []
        violations = self.validator.check(method, path, query, headers, body)
        if violations:
            with self._lock:
                self._violations.extend(violations)
        return violations

    def violations(self) -> list[Violation]:
        """Everything recorded so far.

        Returns:
            The violations, oldest first.
        """
        with self._lock:
            return list(self._violations)

    def take(self) -> list[Violation]:
        """Everything recorded so far, then forgotten (for tests breaking rules on purpose).

        Returns:
            The violations, oldest first.
        """
        with self._lock:
            taken, self._violations = self._violations, []
            return taken


_default: RequestValidator | None = None
_tracked: list[RequestLog] | None = None
_module_lock = threading.Lock()


def set_default(validator: RequestValidator | None) -> None:
    """Make every emulator created from now on validate with this validator (None: stop).

    Args:
        validator: the validator.
    """
    global _default
    _default = validator


def new_log() -> RequestLog:
    """A request log for a new emulator, with the default validator and tracked when tracking.

    Returns:
        The log.
    """
    log = RequestLog(_default)
    with _module_lock:
        if _tracked is not None:
            _tracked.append(log)
    return log


def start_tracking() -> list[RequestLog]:
    """Collect the logs of the emulators created from now on (one test's worth).

    Returns:
        The live list the new logs are appended to.
    """
    global _tracked
    with _module_lock:
        _tracked = []
        return _tracked


def stop_tracking() -> list[RequestLog]:
    """Stop collecting logs.

    Returns:
        The logs collected since :func:`start_tracking`.
    """
    global _tracked
    with _module_lock:
        tracked, _tracked = _tracked or [], None
        return tracked
