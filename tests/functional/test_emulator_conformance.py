# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.

"""Every body the GitHub API emulator serves validates against GitHub's own OpenAPI description.

The description comes from the npm package ``@octokit/openapi`` (pinned below), installed by this
test into a cache directory when missing. Each answer is validated against the schema of the
operation selected by path template, method and status code, with ``openapi-schema-validator``
(OpenAPI 3.0 semantics such as ``nullable``; ``$ref``s resolved through a ``referencing``
registry holding the whole description; formats such as ``date-time`` checked).

GitHub's description marks some enumerations ``nullable`` without listing null among the values
(a job's ``conclusion``); GitHub serves null there, and octokit's generated types read such a
schema as "one of the values, or null". OpenAPI 3.0.3 lets ``enum`` still reject null, so the
validator is extended to let ``nullable: true`` admit null before ``enum`` is checked; nothing
else changes.

GitHub's description leaves generic errors (401, 403, 404) out of many operations; for a status
an operation does not declare, the answer is validated against GitHub's shared component response
for that status (``requires_authentication``, ``forbidden``, ``not_found``, ...).
"""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import validators
from openapi_schema_validator import OAS30ReadValidator, oas30_format_checker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from tests.github_emulator import Emulator, request_validation
from tests.github_emulator.server import Api
from tests.github_emulator.simulated_runner import SimulatedRunner

SPEC_URI = request_validation.SPEC_URI
TOKEN = "ghp_conformanceToken"
REPO = "conf-owner/conf-repo"
ORG = "conf-org"
FALLBACK_RESPONSES = {
    401: "requires_authentication",
    403: "forbidden",
    404: "not_found",
    409: "conflict",
    422: "validation_failed_simple",
}


_BASE_ENUM = OAS30ReadValidator.VALIDATORS["enum"]


def _nullable_enum(validator: Any, enums: Any, instance: Any, schema: dict[str, Any]) -> Any:
    """``enum`` that lets a ``nullable`` schema hold null (GitHub's reading of OpenAPI 3.0)."""
    if instance is None and schema.get("nullable") is True:
        return
    yield from _BASE_ENUM(validator, enums, instance, schema)


ResponseValidator = validators.extend(OAS30ReadValidator, {"enum": _nullable_enum})


def _install_spec() -> Path:
    try:
        return request_validation.install_spec()
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        pytest.fail(f"cannot install the OpenAPI description: {exc}", pytrace=False)


def _pointer(*parts: str) -> str:
    return "".join("/" + part.replace("~", "~0").replace("/", "~1") for part in parts)


class SpecValidator:
    """Validates answers against the response schemas of GitHub's operations."""

    def __init__(self, spec: dict[str, Any]):
        self.spec = spec
        resource = Resource.from_contents(spec, default_specification=DRAFT4)
        self.registry = Registry().with_resource(SPEC_URI, resource)
        self.checked: set[tuple[str, str, int]] = set()

    def _resolve(self, pointer: str) -> Any:
        node: Any = self.spec
        for part in pointer.split("/")[1:]:
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    def response_pointer(self, template: str, method: str, status: int) -> str:
        """The JSON pointer of the response object for an operation and status.

        Args:
            template: the OpenAPI path template.
            method: the HTTP method.
            status: the status code.

        Returns:
            A pointer into the description.
        """
        operation = self.spec["paths"][template][method.lower()]
        if str(status) in operation["responses"]:
            pointer = _pointer("paths", template, method.lower(), "responses", str(status))
        else:
            assert status in FALLBACK_RESPONSES, (
                f"{method} {template} declares no {status} and GitHub has no shared response "
                "for it"
            )
            pointer = _pointer("components", "responses", FALLBACK_RESPONSES[status])
        response = self._resolve(pointer)
        while "$ref" in response:
            pointer = response["$ref"].removeprefix("#")
            response = self._resolve(pointer)
        return pointer

    def validate(self, template: str, method: str, status: int, raw: bytes) -> None:
        """Check one answer.

        Args:
            template: the OpenAPI path template.
            method: the HTTP method.
            status: the status code.
            raw: the answer body.
        """
        pointer = self.response_pointer(template, method, status)
        response = self._resolve(pointer)
        content = response.get("content", {})
        if "application/json" not in content:
            assert raw == b"", f"{method} {template} {status} must have no body"
        else:
            body = json.loads(raw)
            schema_ref = f"{SPEC_URI}#{pointer}{_pointer('content', 'application/json', 'schema')}"
            validator = ResponseValidator(
                {"$ref": schema_ref}, registry=self.registry, format_checker=oas30_format_checker
            )
            errors = sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))
            details = "\n".join(
                f"  at {'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
                for e in errors[:20]
            )
            assert not errors, f"{method} {template} {status} does not conform:\n{details}"
        self.checked.add((method, template, status))


@pytest.fixture(scope="module")
def validator() -> SpecValidator:
    spec_path = _install_spec()
    return SpecValidator(json.loads(spec_path.read_text()))


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(token=TOKEN, repos=[REPO], orgs=[ORG], offline_after=30.0) as emulator:
        emulator.control.set_token("ghp_noScopes", [])
        yield emulator


class Client:
    """Calls the emulator and validates every answer."""

    def __init__(self, emu: Emulator, validator: SpecValidator):
        self.emu = emu
        self.validator = validator

    def __call__(
        self,
        method: str,
        template: str,
        status: int,
        body: Any = None,
        token: str | None = TOKEN,
        query: str = "",
        **params: Any,
    ) -> Any:
        path = template.format(**params) + query
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.emu.api_url}{path}", data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if token:
            request.add_header("Authorization", f"token {token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                code, raw = answer.status, answer.read()
        except urllib.error.HTTPError as exc:
            code, raw = exc.code, exc.read()
        assert code == status, f"{method} {path}: {code} {raw[:300]!r}"
        self.validator.validate(template, method, code, raw)
        return json.loads(raw) if raw else None


def test_every_served_route_is_in_the_description(validator: SpecValidator) -> None:
    """Every route the emulator serves is an operation in GitHub's REST description.

    arrange: an emulator and the validator loaded with GitHub's OpenAPI description.
    act: walk the emulator's routes.
    assert: each route's method and path template is an operation of the description.
    """
    emu = Emulator(token=TOKEN)
    for route in Api(emu.state).routes:
        assert route.method.lower() in validator.spec["paths"].get(route.template, {}), (
            f"{route.method} {route.template} is not a GitHub operation"
        )


@pytest.mark.parametrize(
    ("template", "method", "status", "body"),
    [
        # A label type outside the enum.
        (
            "/repos/{owner}/{repo}/actions/runners/{runner_id}",
            "get",
            200,
            {"id": 1, "name": "r", "os": "Linux", "status": "online", "busy": False,
             "labels": [{"id": 1, "name": "x", "type": "bogus"}]},
        ),
        # A required field missing (``busy``).
        (
            "/orgs/{org}/actions/runners",
            "get",
            200,
            {"total_count": 1, "runners": [{"id": 1, "name": "r", "os": "Linux",
                                             "status": "online", "labels": []}]},
        ),
        # A date that is not a date-time.
        (
            "/repos/{owner}/{repo}/actions/runners/registration-token",
            "post",
            201,
            {"token": "T", "expires_at": "tomorrow"},
        ),
        # null where the schema is not nullable.
        (
            "/repos/{owner}/{repo}/actions/runners/generate-jitconfig",
            "post",
            201,
            {"runner": None, "encoded_jit_config": "x"},
        ),
        # A 422 without the required documentation_url (validation-error-simple).
        ("/orgs/{org}/actions/runners/{runner_id}", "delete", 422, {"message": "busy"}),
    ],
)  # fmt: skip
def test_validator_rejects_wrong_shapes(
    validator: SpecValidator, template: str, method: str, status: int, body: Any
) -> None:
    """The validator rejects bodies that break GitHub's schema.

    arrange: one wrong body per case (bad enum, missing field, bad date-time, null, 422 without
        documentation_url).
    act: validate the body against its operation and status.
    assert: the validator raises "does not conform", so the conformance test can fail.
    """
    with pytest.raises(AssertionError, match="does not conform"):
        validator.validate(template, method.upper(), status, json.dumps(body).encode())


@pytest.mark.parametrize("kind", ["repo", "org"])
def test_bodies_conform(kind: str, emu: Emulator, validator: SpecValidator) -> None:
    """Every emulator answer the charm relies on conforms to GitHub's schema.

    arrange: an emulator on a repository or an organisation, behind a client that validates each
        answer.
    act: list, register, create JIT runners, run a job from queued to completed, delete, and
        provoke the 401/403/404/409/422 errors.
    assert: each answer has the expected status and conforms, and every expected operation and
        status was validated.
    """
    client = Client(emu, validator)
    if kind == "repo":
        scope, params = "/repos/{owner}/{repo}", {"owner": "conf-owner", "repo": "conf-repo"}
        missing = {"owner": "conf-owner", "repo": "missing"}
        job_repo = REPO
    else:
        scope, params = "/orgs/{org}", {"org": ORG}
        missing = {"org": "missing-org"}
        job_repo = f"{ORG}/some-service"
    runners = f"{scope}/actions/runners"
    runner_tpl = runners + "/{runner_id}"

    # Empty list, then tokens, registration, JIT, injected runners.
    assert client("GET", runners, 200, **params)["total_count"] == 0
    token = client("POST", f"{runners}/registration-token", 201, **params)["token"]
    client("POST", f"{runners}/remove-token", 201, **params)
    reg_url = f"{emu.url}/{REPO if kind == 'repo' else ORG}"
    registered = SimulatedRunner.register(emu.url, reg_url, token, "registered", ["custom"])
    registered.open_session()
    jit_body = {"name": "jit", "runner_group_id": 1, "labels": ["self-hosted", "jit"]}
    jit = client("POST", f"{runners}/generate-jitconfig", 201, jit_body, **params)
    client("POST", f"{runners}/generate-jitconfig", 409, jit_body, **params)
    client("POST", f"{runners}/generate-jitconfig", 422, {"name": "x"}, **params)
    # That body breaks the operation's schema on purpose: the emulator refused and recorded it.
    assert [v.rule for v in emu.requests.take()] == ["body"]
    emu.control.add_runner(job_repo if kind == "repo" else ORG, "ghost", status="offline")
    listed = client("GET", runners, 200, **params)
    assert listed["total_count"] == 3
    client("GET", runners, 200, query="?per_page=1&page=2", **params)
    online = client("GET", runner_tpl, 200, runner_id=registered.runner_id, **params)
    assert online["status"] == "online" and online["version"] == "simulated"
    offline = client("GET", runner_tpl, 200, runner_id=jit["runner"]["id"], **params)
    assert offline["status"] == "offline" and offline["version"] is None
    client("GET", runner_tpl, 404, runner_id=999999, **params)
    client("GET", f"{runners}/downloads", 200, **params)
    if kind == "org":
        groups = client("GET", "/orgs/{org}/actions/runner-groups", 200, **params)
        assert groups["runner_groups"][0]["default"] is True
        emu.control.add_runner_group(ORG, "extra")
        assert (
            client("GET", "/orgs/{org}/actions/runner-groups", 200, **params)["total_count"] == 2
        )

    # A job, queued then busy then completed; its run and the run's jobs at each stage.
    job = emu.control.queue_job(job_repo, ["self-hosted", "jit"], "true")
    owner, repo = job_repo.split("/")
    run_params = {"owner": owner, "repo": repo}
    job_tpl = "/repos/{owner}/{repo}/actions/jobs/{job_id}"
    run_tpl = "/repos/{owner}/{repo}/actions/runs/{run_id}"
    assert client("GET", job_tpl, 200, job_id=job["id"], **run_params)["status"] == "queued"
    client("GET", run_tpl, 200, run_id=job["run_id"], **run_params)
    client("GET", run_tpl + "/jobs", 200, run_id=job["run_id"], **run_params)
    client("GET", "/repos/{owner}/{repo}/actions/runs", 200, **run_params)
    jit_runner = SimulatedRunner.from_jit_config(emu.url, jit["encoded_jit_config"])
    jit_runner.open_session()
    assert jit_runner.poll() is not None
    busy = client("GET", job_tpl, 200, job_id=job["id"], **run_params)
    assert busy["status"] == "in_progress" and busy["runner_name"] == "jit"
    client("DELETE", runner_tpl, 422, runner_id=jit["runner"]["id"], **params)
    jit_runner.complete(job["id"], "success")
    done = client("GET", job_tpl, 200, job_id=job["id"], **run_params)
    assert (done["status"], done["conclusion"]) == ("completed", "success")
    assert done["steps"]
    client("GET", run_tpl, 200, run_id=job["run_id"], **run_params)
    client("GET", run_tpl + "/jobs", 200, run_id=job["run_id"], **run_params)
    client("GET", job_tpl, 404, job_id=1, **run_params)
    client("GET", run_tpl, 404, run_id=1, **run_params)

    # Deletion, and the error bodies.
    client("DELETE", runner_tpl, 204, runner_id=registered.runner_id, **params)
    client("DELETE", runner_tpl, 404, runner_id=registered.runner_id, **params)
    client("GET", runners, 401, token="ghp_unknown", **params)
    client("GET", runners, 401, token=None, **params)
    client("GET", runners, 403, token="ghp_noScopes", **params)
    client("POST", f"{runners}/registration-token", 403, token="ghp_noScopes", **params)
    client("GET", runners, 404, **missing)
    client("POST", f"{runners}/registration-token", 404, **missing)
    client("POST", f"{runners}/generate-jitconfig", 404, jit_body, **missing)
    emu.control.settings(jit_enabled=False)
    client("POST", f"{runners}/generate-jitconfig", 404, {**jit_body, "name": "n"}, **params)
    emu.control.set_rate_limit(remaining=0)
    client("GET", runners, 403, **params)
    client("GET", "/rate_limit", 200)

    expected = {
        ("GET", runners, 200),
        ("GET", runners, 401),
        ("GET", runners, 403),
        ("GET", runners, 404),
        ("GET", runner_tpl, 200),
        ("GET", runner_tpl, 404),
        ("DELETE", runner_tpl, 204),
        ("DELETE", runner_tpl, 404),
        ("DELETE", runner_tpl, 422),
        ("POST", f"{runners}/registration-token", 201),
        ("POST", f"{runners}/remove-token", 201),
        ("POST", f"{runners}/generate-jitconfig", 201),
        ("POST", f"{runners}/generate-jitconfig", 404),
        ("POST", f"{runners}/generate-jitconfig", 409),
        ("POST", f"{runners}/generate-jitconfig", 422),
        ("GET", f"{runners}/downloads", 200),
        ("GET", run_tpl, 200),
        ("GET", run_tpl + "/jobs", 200),
        ("GET", job_tpl, 200),
        ("GET", job_tpl, 404),
    }
    if kind == "org":
        expected.add(("GET", "/orgs/{org}/actions/runner-groups", 200))
    missing_checks = expected - validator.checked
    assert not missing_checks, f"not validated: {sorted(missing_checks)}"
