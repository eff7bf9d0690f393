# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""The emulator's state: runners, jobs, tokens, faults, rate limit and statistics.

One :class:`EmulatorState` holds everything behind one lock (a :class:`threading.Condition`, so
that runner long-polls can wait for a job). HTTP concerns live in :mod:`server`; this module only
knows scopes (``owner/repo`` for a repository, ``org`` for an organisation) and GitHub shapes.
"""

from __future__ import annotations

import base64
import collections
import dataclasses
import hashlib
import json
import re
import secrets
import string
import threading
import time
from collections.abc import Iterable
from typing import Any

from tests.github_emulator import shapes

DEFAULT_SCOPES = ("repo", "admin:org", "workflow")
DEFAULT_GROUP_ID = 1
DEFAULT_GROUP_NAME = "Default"
ARCH_LABELS = {"x64": "X64", "arm64": "ARM64"}
SETTINGS_TYPES: dict[str, tuple[type, ...]] = {
    "jit_enabled": (bool,),
    "runner_version": (str,),
    "offline_after": (int, float),
    "lost_job_after": (int, float, type(None)),
    "registration_token_ttl": (int, float),
    "max_poll_wait": (int, float),
    "runner_updates": (bool,),
    "deprecated_below": (str, type(None)),
    "runner_size": (str,),
    "lowercase_headers": (bool,),
}
# The labels GitHub treats as the runner's own (type read-only) rather than custom ones.
SYSTEM_LABELS = frozenset({"self-hosted", "linux", "windows", "macos", "x64", "arm64", "arm"})
# How a fault acts: answer its status instead of the request (before), answer its status after
# the request took effect (after: GitHub did the work, the answer got lost), or answer normally
# with the items of a list page left out (drop-page: a page lost in a pagination race).
FAULT_MODES = ("before", "after", "drop-page")
_VERSION_RE = re.compile(r"^\d+\.\d+\.\d+$")
_LOG_LIMIT = 64 * 1024


class ApiError(Exception):
    """An error answer: an HTTP status with a GitHub-shaped body."""

    def __init__(
        self,
        status: int,
        message: str,
        documentation_url: str = shapes.DOCS,
        errors: list[str] | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(f"{status} {message}")
        self.status = status
        self.body: dict[str, Any] = shapes.error_body(status, message, documentation_url)
        if errors is not None:
            self.body["errors"] = errors
        self.headers = headers or {}


def not_found(documentation_url: str = shapes.DOCS) -> ApiError:
    """GitHub's plain 404.

    Args:
        documentation_url: the documentation link of the operation.

    Returns:
        The error to raise.
    """
    return ApiError(404, "Not Found", documentation_url)


@dataclasses.dataclass
class Runner:
    """A self-hosted runner as GitHub knows it, plus the emulator's view of its process."""

    id: int
    name: str
    scope: str
    labels: list[tuple[str, str]]
    group_id: int
    group_name: str
    ephemeral: bool
    created_at: float
    registered_via: str
    secret: str | None = None
    fixed_status: str | None = None
    busy: bool = False
    version: str | None = None
    arch: str = "x64"
    session_id: str | None = None
    last_seen: float | None = None
    job_id: int | None = None
    job_delivered: bool = False
    work_folder: str = "_work"
    disable_update: bool = False
    pid: int | None = None
    update_to: str | None = None


@dataclasses.dataclass
class Job:
    """A queued workflow job and the run it belongs to (one job per run)."""

    id: int
    run_id: int
    run_number: int
    repo: str
    name: str
    workflow: str
    event: str
    labels: list[str]
    script: str
    payload: dict[str, Any]
    sha: str
    branch: str
    created_at: float
    status: str = "queued"
    conclusion: str | None = None
    started_at: float | None = None
    completed_at: float | None = None
    runner_id: int | None = None
    runner_name: str | None = None
    runner_group_id: int | None = None
    runner_group_name: str | None = None
    exit_code: int | None = None
    log: str = ""
    steps: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    setup_error: str | None = None
    cancel_requested: bool = False


@dataclasses.dataclass
class Fault:
    """An injected fault: an error status and/or a delay for matching requests."""

    id: int
    status: int | None
    remaining: int
    path: re.Pattern[str] | None
    method: str | None
    delay: float
    retry_after: int | None
    body: Any
    mode: str = "before"

    def describe(self) -> dict[str, Any]:
        """The fault as JSON for the control API.

        Returns:
            The fault's fields.
        """
        return {
            "id": self.id,
            "status": self.status,
            "remaining": self.remaining,
            "path": self.path.pattern if self.path else None,
            "method": self.method,
            "delay": self.delay,
            "retry_after": self.retry_after,
            "body": self.body,
            "mode": self.mode,
        }


def _registration_token_value() -> str:
    alphabet = string.ascii_uppercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(29))


class EmulatorState:
    """All mutable state of one emulator, guarded by one lock."""

    def __init__(
        self,
        token: str,
        repos: Iterable[str],
        orgs: Iterable[str],
        offline_after: float,
        rate_limit: int,
        runner_version: str,
    ):
        if not _VERSION_RE.match(runner_version):
            raise ValueError(f"runner version must look like X.Y.Z, not {runner_version!r}")
        self.cond = threading.Condition()
        self.stopping = False
        self.tokens: dict[str, list[str]] = {token: list(DEFAULT_SCOPES)}
        self.repos: dict[str, str] = {}
        for repo in repos:
            if repo.count("/") != 1 or not all(repo.split("/")):
                raise ValueError(f"repository must be OWNER/REPO, not {repo!r}")
            self.repos[repo.lower()] = repo
        self.orgs: dict[str, str] = {org.lower(): org for org in orgs}
        self.account_ids: dict[str, int] = {}
        self.repo_ids: dict[str, int] = {}
        self.settings: dict[str, Any] = {
            "jit_enabled": True,
            "runner_version": runner_version,
            "offline_after": float(offline_after),
            "lost_job_after": None,
            "registration_token_ttl": 3600.0,
            "max_poll_wait": 20.0,
            # GitHub tells a runner older than the current release to update itself, unless
            # it was configured with `--disableupdate` (a registration-token flag only).
            "runner_updates": True,
            # Runners older than this version are refused (GitHub's version deprecation).
            "deprecated_below": None,
            # `small` (the stand-in alone) or `real` (padded to the real archive's size).
            "runner_size": "small",
            "lowercase_headers": False,
        }
        self.runners: dict[int, Runner] = {}
        self.jobs: dict[int, Job] = {}
        self.run_numbers: collections.Counter[str] = collections.Counter()
        self.reg_tokens: dict[str, tuple[str, str, float]] = {}
        self.label_ids: dict[str, int] = {}
        self.groups: dict[str, list[dict[str, Any]]] = {}
        self.faults: list[Fault] = []
        self.rate = {"limit": rate_limit, "remaining": rate_limit, "reset": time.time() + 3600}
        self.stats: dict[str, Any] = {}
        self.reset_stats()
        self.recent: collections.deque[dict[str, Any]] = collections.deque(maxlen=500)
        self._next_ids = {"runner": 1, "job": 200001, "run": 100001, "group": 2, "fault": 1}

    # --- identifiers -----------------------------------------------------------------------

    def _next(self, kind: str) -> int:
        value = self._next_ids[kind]
        self._next_ids[kind] += 1
        return value

    def _account_id(self, login: str) -> int:
        key = login.lower()
        if key not in self.account_ids:
            self.account_ids[key] = 1000 + len(self.account_ids)
        return self.account_ids[key]

    def _repo_id(self, full_name: str) -> int:
        key = full_name.lower()
        if key not in self.repo_ids:
            self.repo_ids[key] = 50000 + len(self.repo_ids)
        return self.repo_ids[key]

    def _label_id(self, name: str) -> int:
        key = name.lower()
        if key not in self.label_ids:
            self.label_ids[key] = len(self.label_ids) + 1
        return self.label_ids[key]

    # --- scopes ----------------------------------------------------------------------------

    def canonical_repo(self, owner: str, repo: str) -> str | None:
        """The configured spelling of a repository, or None when it does not exist.

        Any repository of a configured organisation exists.

        Args:
            owner: the owner login.
            repo: the repository name.

        Returns:
            ``owner/repo`` as configured, or None.
        """
        full = f"{owner}/{repo}"
        if full.lower() in self.repos:
            return self.repos[full.lower()]
        if owner.lower() in self.orgs and repo:
            return f"{self.orgs[owner.lower()]}/{repo}"
        return None

    def canonical_org(self, org: str) -> str | None:
        """The configured spelling of an organisation, or None when it does not exist.

        Args:
            org: the organisation login.

        Returns:
            The organisation as configured, or None.
        """
        return self.orgs.get(org.lower())

    def scope_from_url(self, url_path: str) -> str | None:
        """The scope a runner registration URL path names (``/owner/repo`` or ``/org``).

        Args:
            url_path: the path of the URL given to ``config.sh --url``.

        Returns:
            The canonical scope, or None when it does not exist.
        """
        parts = [part for part in url_path.split("/") if part]
        if len(parts) == 2:
            return self.canonical_repo(parts[0], parts[1])
        if len(parts) == 1:
            return self.canonical_org(parts[0])
        return None

    @staticmethod
    def is_org_scope(scope: str) -> bool:
        """Whether a scope is an organisation (it has no slash).

        Args:
            scope: a canonical scope.

        Returns:
            True for an organisation.
        """
        return "/" not in scope

    # --- auth and rate limit -----------------------------------------------------------------

    def token_scopes(self, token: str) -> list[str] | None:
        """The OAuth scopes of a personal access token, or None for an unknown token.

        Args:
            token: the token.

        Returns:
            The scopes or None.
        """
        with self.cond:
            scopes = self.tokens.get(token)
            return list(scopes) if scopes is not None else None

    def _refresh_rate(self) -> None:
        now = time.time()
        if now >= self.rate["reset"]:
            self.rate["remaining"] = self.rate["limit"]
            self.rate["reset"] = now + 3600

    def rate_snapshot(self) -> dict[str, int]:
        """The current rate-limit budget.

        Returns:
            ``limit``, ``remaining``, ``used`` and ``reset`` (epoch seconds).
        """
        with self.cond:
            self._refresh_rate()
            limit, remaining = int(self.rate["limit"]), int(self.rate["remaining"])
            return {
                "limit": limit,
                "remaining": remaining,
                "used": max(0, limit - remaining),
                "reset": int(self.rate["reset"]),
            }

    def rate_exhausted(self) -> bool:
        """Whether the budget is spent.

        Returns:
            True when no request may be counted any more.
        """
        with self.cond:
            self._refresh_rate()
            return self.rate["remaining"] <= 0

    def consume_rate(self) -> None:
        """Count one request against the budget."""
        with self.cond:
            self._refresh_rate()
            self.rate["remaining"] = max(0, self.rate["remaining"] - 1)
            self.stats["rate_limit_used"] += 1

    def set_rate_limit(
        self, limit: int | None, remaining: int | None, reset_in: float | None
    ) -> dict[str, int]:
        """Change the budget.

        Args:
            limit: the new limit (the remaining budget is clipped to it).
            remaining: the new remaining budget.
            reset_in: seconds until the budget resets.

        Returns:
            The new budget.
        """
        with self.cond:
            if limit is not None:
                self.rate["limit"] = int(limit)
                self.rate["remaining"] = min(self.rate["remaining"], int(limit))
            if remaining is not None:
                self.rate["remaining"] = int(remaining)
            if reset_in is not None:
                self.rate["reset"] = time.time() + float(reset_in)
        return self.rate_snapshot()

    # --- statistics and faults -------------------------------------------------------------

    def reset_stats(self) -> None:
        """Zero all request counters."""
        with self.cond:
            self.stats = {
                "total": 0,
                "by_route": collections.Counter(),
                "by_status": collections.Counter(),
                "not_modified": 0,
                "not_modified_by_route": collections.Counter(),
                "rate_limit_used": 0,
                "faults_fired": 0,
            }

    def record_request(
        self, route: str, status: int, path: str, content_type: str | None = None
    ) -> None:
        """Count one API request.

        Args:
            route: ``METHOD /route/{template}``.
            status: the answer's status.
            path: the request path (for the recent-requests log).
            content_type: the request body's ``Content-Type``, if it had a body.
        """
        with self.cond:
            self.stats["total"] += 1
            self.stats["by_route"][route] += 1
            self.stats["by_status"][str(status)] += 1
            if status == 304:
                self.stats["not_modified"] += 1
                self.stats["not_modified_by_route"][route] += 1
            self.recent.append(
                {
                    "time": time.time(),
                    "route": route,
                    "path": path,
                    "status": status,
                    "content_type": content_type,
                }
            )

    def stats_snapshot(self) -> dict[str, Any]:
        """The request counters as JSON.

        Returns:
            The counters.
        """
        with self.cond:
            return {
                key: dict(value) if isinstance(value, collections.Counter) else value
                for key, value in self.stats.items()
            }

    def add_fault(
        self,
        status: int | None,
        count: int,
        path: str | None,
        method: str | None,
        delay: float,
        retry_after: int | None,
        body: Any,
        mode: str = "before",
    ) -> dict[str, Any]:
        """Add a fault.

        Args:
            status: the error status to answer, or None to answer normally after the delay.
            count: how many requests it fires for (negative: forever).
            path: a regular expression searched in the request path; without one, the fault
                matches API requests only.
            method: the HTTP method to match, or None for any.
            delay: seconds to sleep before answering.
            retry_after: a ``Retry-After`` header value.
            body: a JSON body replacing the default error body.
            mode: ``before`` (answer instead of the request), ``after`` (let the request take
                effect, then answer the status), ``drop-page`` (answer normally, without the
                items of the list page).

        Returns:
            The fault as JSON.

        Raises:
            ApiError: the fault is invalid.
        """
        if mode not in FAULT_MODES:
            raise ApiError(422, f"fault mode must be one of {FAULT_MODES}, not {mode!r}")
        if mode == "after" and status is None:
            raise ApiError(422, "an 'after' fault needs a status")
        if mode == "drop-page":
            status = None
        elif status is not None and not 400 <= int(status) <= 599:
            raise ApiError(422, f"fault status must be 4xx or 5xx, not {status}")
        if status is None and not delay and mode != "drop-page":
            raise ApiError(422, "a fault needs a status or a delay")
        try:
            pattern = re.compile(path) if path else None
        except re.error as exc:
            raise ApiError(422, f"bad path regex: {exc}") from exc
        with self.cond:
            fault = Fault(
                id=self._next("fault"),
                status=int(status) if status is not None else None,
                remaining=int(count),
                path=pattern,
                method=method.upper() if method else None,
                delay=float(delay),
                retry_after=int(retry_after) if retry_after is not None else None,
                body=body,
                mode=mode,
            )
            self.faults.append(fault)
            return fault.describe()

    def clear_faults(self) -> None:
        """Remove every fault."""
        with self.cond:
            self.faults.clear()

    def take_fault(self, method: str, path: str, is_api: bool) -> Fault | None:
        """Find the first fault matching a request and use it up once.

        Args:
            method: the request method.
            path: the request path.
            is_api: whether the request is an API request (faults without a path regex only
                match those).

        Returns:
            The fault, or None.
        """
        with self.cond:
            for fault in self.faults:
                if fault.method and fault.method != method:
                    continue
                if fault.path is None and not is_api:
                    continue
                if fault.path is not None and not fault.path.search(path):
                    continue
                if fault.remaining > 0:
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self.faults.remove(fault)
                self.stats["faults_fired"] += 1
                return fault
        return None

    # --- settings and tokens ---------------------------------------------------------------

    def update_settings(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Change settings.

        Args:
            changes: setting names and values.

        Returns:
            All settings.

        Raises:
            ApiError: an unknown setting or a value of the wrong type.
        """
        for key, value in changes.items():
            if key not in SETTINGS_TYPES:
                raise ApiError(422, f"unknown setting {key!r}; known: {sorted(SETTINGS_TYPES)}")
            allowed = SETTINGS_TYPES[key]
            if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
                raise ApiError(422, f"setting {key!r} has the wrong type: {value!r}")
        if "runner_version" in changes and not _VERSION_RE.match(changes["runner_version"]):
            raise ApiError(422, "runner_version must look like X.Y.Z")
        if changes.get("runner_size", "small") not in ("small", "real"):
            raise ApiError(422, "runner_size must be small or real")
        below = changes.get("deprecated_below")
        if below is not None and not _VERSION_RE.match(below):
            raise ApiError(422, "deprecated_below must look like X.Y.Z or be null")
        with self.cond:
            self.settings.update(changes)
            self.cond.notify_all()
            return dict(self.settings)

    def set_token(self, token: str, scopes: Iterable[str]) -> None:
        """Create or change a personal access token.

        Args:
            token: the token.
            scopes: its OAuth scopes.
        """
        with self.cond:
            self.tokens[token] = [str(scope) for scope in scopes]

    def revoke_token(self, token: str) -> None:
        """Forget a personal access token (it then gets 401).

        Args:
            token: the token.
        """
        with self.cond:
            self.tokens.pop(token, None)

    # --- runner groups ---------------------------------------------------------------------

    def runner_groups(self, org: str) -> list[dict[str, Any]]:
        """The runner groups of an organisation (the default group first).

        Args:
            org: the canonical organisation.

        Returns:
            Group records: ``id``, ``name``, ``default``.
        """
        with self.cond:
            default = {"id": DEFAULT_GROUP_ID, "name": DEFAULT_GROUP_NAME, "default": True}
            return [default, *self.groups.get(org.lower(), [])]

    def add_runner_group(self, org: str, name: str) -> dict[str, Any]:
        """Create a runner group in an organisation.

        Args:
            org: the organisation.
            name: the group name.

        Returns:
            The group record.

        Raises:
            ApiError: unknown organisation or duplicate name.
        """
        with self.cond:
            canonical = self.canonical_org(org)
            if canonical is None:
                raise not_found()
            if any(g["name"].lower() == name.lower() for g in self.runner_groups(canonical)):
                raise ApiError(409, f"a runner group named {name!r} exists")
            group = {"id": self._next("group"), "name": name, "default": False}
            self.groups.setdefault(canonical.lower(), []).append(group)
            return dict(group)

    def _group_by_id(self, scope: str, group_id: int) -> dict[str, Any] | None:
        if not self.is_org_scope(scope):
            if group_id == DEFAULT_GROUP_ID:
                return {"id": DEFAULT_GROUP_ID, "name": DEFAULT_GROUP_NAME}
            return None
        return next((g for g in self.runner_groups(scope) if g["id"] == group_id), None)

    # --- runner status ---------------------------------------------------------------------

    def _online(self, runner: Runner, now: float) -> bool:
        if runner.fixed_status is not None:
            return runner.fixed_status == "online"
        if runner.session_id is None or runner.last_seen is None:
            return False
        return now - runner.last_seen < self.settings["offline_after"]

    def _sweep(self) -> None:
        """Fail the jobs of busy runners whose process has been gone for too long."""
        now = time.time()
        lost_after = self.settings["lost_job_after"]
        if lost_after is None:
            lost_after = 2 * self.settings["offline_after"]
        for runner in self.runners.values():
            if runner.job_id is None or runner.fixed_status is not None:
                continue
            if runner.last_seen is not None and now - runner.last_seen < lost_after:
                continue
            job = self.jobs.get(runner.job_id)
            if job is not None and job.status != "completed":
                job.status = "completed"
                job.conclusion = "failure"
                job.completed_at = now
                job.log += (
                    f"\nThe self-hosted runner: {runner.name} lost communication with the "
                    "server.\n"
                )
            runner.job_id = None
            runner.busy = False

    def _labels(self, names: Iterable[str]) -> list[tuple[str, str]]:
        """The labels a runner is registered with: exactly the names it was sent.

        GitHub adds nothing on its side: `config.sh` itself sends `self-hosted`, the OS and the
        architecture (actions/runner ConfigurationManager.CreateNewAgent, unless
        `--no-default-labels`), and a JIT configuration gets only the labels in its request.
        """
        labels: list[tuple[str, str]] = []
        seen: set[str] = set()
        for name in names:
            if name.lower() not in seen:
                kind = "read-only" if name.lower() in SYSTEM_LABELS else "custom"
                labels.append((name, kind))
                seen.add(name.lower())
        for name, _ in labels:
            self._label_id(name)
        return labels

    @staticmethod
    def default_labels(arch: str) -> list[str]:
        """The labels GitHub gives every Linux self-hosted runner.

        Args:
            arch: ``x64`` or ``arm64``.

        Returns:
            The default label names.
        """
        return ["self-hosted", "Linux", ARCH_LABELS.get(arch, "X64")]

    def runner_json(self, runner: Runner, now: float | None = None) -> dict[str, Any]:
        """GitHub's ``runner`` object.

        Args:
            runner: the runner.
            now: the current time (for the status).

        Returns:
            The runner object.
        """
        now = time.time() if now is None else now
        return {
            "id": runner.id,
            "name": runner.name,
            "os": "Linux",
            "status": "online" if self._online(runner, now) else "offline",
            "busy": runner.busy,
            "ephemeral": runner.ephemeral,
            "runner_group_id": runner.group_id,
            "labels": [
                {"id": self._label_id(name), "name": name, "type": kind}
                for name, kind in runner.labels
            ],
            "version": runner.version,
        }

    def _runner_control_json(self, runner: Runner, now: float) -> dict[str, Any]:
        data = self.runner_json(runner, now)
        data.update(
            {
                "scope": runner.scope,
                "registered_via": runner.registered_via,
                "runner_group_name": runner.group_name,
                "session": runner.session_id is not None,
                "last_seen_ago": None if runner.last_seen is None else now - runner.last_seen,
                "job_id": runner.job_id,
                "arch": runner.arch,
                "work_folder": runner.work_folder,
                "disable_update": runner.disable_update,
                "update_to": runner.update_to,
                "pid": runner.pid,
                "created_at": shapes.iso(runner.created_at),
            }
        )
        return data

    def _find_by_name(self, scope: str, name: str) -> Runner | None:
        return next(
            (
                r
                for r in self.runners.values()
                if r.scope == scope and r.name.lower() == name.lower()
            ),
            None,
        )

    # --- REST: runners -----------------------------------------------------------------------

    def list_runners(self, scope: str, name: str | None = None) -> list[dict[str, Any]]:
        """The runners of a scope, oldest first.

        Args:
            scope: the canonical scope.
            name: only the runner with this name.

        Returns:
            Runner objects.
        """
        with self.cond:
            self._sweep()
            now = time.time()
            return [
                self.runner_json(r, now)
                for r in sorted(self.runners.values(), key=lambda r: r.id)
                if r.scope == scope and (name is None or r.name == name)
            ]

    def get_runner(self, scope: str, runner_id: int) -> dict[str, Any]:
        """One runner of a scope.

        Args:
            scope: the canonical scope.
            runner_id: the runner id.

        Returns:
            The runner object.

        Raises:
            ApiError: 404 when the scope has no such runner.
        """
        with self.cond:
            self._sweep()
            runner = self.runners.get(runner_id)
            if runner is None or runner.scope != scope:
                raise not_found(shapes.DOCS_RUNNERS)
            return self.runner_json(runner)

    def delete_runner(self, scope: str, runner_id: int) -> None:
        """Delete a runner as the REST API does (a busy runner cannot be deleted).

        Args:
            scope: the canonical scope.
            runner_id: the runner id.

        Raises:
            ApiError: 404 for an unknown runner, 422 for a busy one.
        """
        with self.cond:
            self._sweep()
            runner = self.runners.get(runner_id)
            if runner is None or runner.scope != scope:
                raise not_found(shapes.DOCS_RUNNERS)
            if runner.busy:
                raise ApiError(
                    422,
                    f'Bad request - Runner "{runner.name}" is still running a job',
                    shapes.DOCS_RUNNERS,
                    errors=[],
                )
            del self.runners[runner_id]
            self.cond.notify_all()

    def create_token(self, scope: str, kind: str) -> dict[str, str]:
        """A registration or remove token for a scope.

        Args:
            scope: the canonical scope.
            kind: ``registration`` or ``remove``.

        Returns:
            ``token`` and ``expires_at``.
        """
        with self.cond:
            now = time.time()
            for value, (_, _, expires) in list(self.reg_tokens.items()):
                if expires <= now:
                    del self.reg_tokens[value]
            token = _registration_token_value()
            expires_at = now + float(self.settings["registration_token_ttl"])
            self.reg_tokens[token] = (kind, scope, expires_at)
            return {"token": token, "expires_at": shapes.iso_offset(expires_at)}

    def _check_reg_token(self, token: str, kind: str, scope: str) -> None:
        entry = self.reg_tokens.get(token)
        if entry is None or entry[0] != kind or entry[1] != scope or entry[2] <= time.time():
            raise ApiError(401, f"invalid or expired {kind} token for {scope}")

    def generate_jitconfig(self, scope: str, body: Any, server_url: str) -> dict[str, Any]:
        """Create an ephemeral runner and its just-in-time configuration.

        Args:
            scope: the canonical scope.
            body: the decoded JSON request body.
            server_url: the emulator base URL the runner will talk to.

        Returns:
            ``runner`` and ``encoded_jit_config``.

        Raises:
            ApiError: 404 (JIT disabled, unknown group), 409 (name taken), 422 (bad body).
        """
        doc = shapes.DOCS_RUNNERS + "#create-configuration-for-a-just-in-time-runner"
        if not isinstance(body, dict):
            raise ApiError(422, "Invalid request.\n\nBody must be a JSON object.", doc)
        problems = _jit_body_problems(body)
        if problems:
            raise ApiError(422, "Invalid request.\n\n" + "\n".join(problems), doc)
        with self.cond:
            if not self.settings["jit_enabled"]:
                raise not_found(doc)
            group = self._group_by_id(scope, body["runner_group_id"])
            if group is None:
                raise not_found(doc)
            if self._find_by_name(scope, body["name"]) is not None:
                raise ApiError(
                    409,
                    f"Already exists - A runner with the name {body['name']} already exists.",
                    doc,
                )
            arch = "arm64" if any(lb.lower() == "arm64" for lb in body["labels"]) else "x64"
            runner = Runner(
                id=self._next("runner"),
                name=body["name"],
                scope=scope,
                labels=self._labels(body["labels"]),
                group_id=group["id"],
                group_name=group["name"],
                ephemeral=True,
                created_at=time.time(),
                registered_via="jit",
                secret=secrets.token_urlsafe(24),
                arch=arch,
                work_folder=body.get("work_folder", "_work"),
            )
            self.runners[runner.id] = runner
            files = self._runner_files(runner, server_url)
            encoded = {
                name: base64.b64encode(json.dumps(content).encode()).decode()
                for name, content in files.items()
            }
            blob = base64.b64encode(json.dumps(encoded).encode()).decode()
            return {"runner": self.runner_json(runner), "encoded_jit_config": blob}

    def _runner_files(self, runner: Runner, server_url: str) -> dict[str, dict[str, Any]]:
        """The ``.runner`` and ``.credentials`` contents for a runner."""
        return {
            ".runner": {
                "agentId": runner.id,
                "agentName": runner.name,
                "poolId": runner.group_id,
                "poolName": runner.group_name,
                "serverUrl": server_url,
                "gitHubUrl": f"{server_url}/{runner.scope}",
                "workFolder": runner.work_folder,
                "ephemeral": runner.ephemeral,
                "disableUpdate": runner.disable_update,
            },
            ".credentials": {
                "scheme": "EmulatorSecret",
                "data": {"runnerId": runner.id, "secret": runner.secret},
            },
        }

    # --- REST: jobs and runs -----------------------------------------------------------------

    def queue_job(
        self,
        repo: str,
        labels: list[str],
        script: str,
        workflow: str = "test-workflow",
        event: str = "workflow_dispatch",
        name: str = "test",
        payload: dict[str, Any] | None = None,
        setup_error: str | None = None,
    ) -> Job:
        """Queue a job (in a new workflow run) and try to assign it.

        Args:
            repo: ``owner/repo`` (configured, or under a configured organisation).
            labels: the job's ``runs-on`` labels.
            script: the bash script the runner runs.
            workflow: the workflow name.
            event: the triggering event name.
            name: the job name.
            payload: extra event payload fields for ``GITHUB_EVENT_PATH``.
            setup_error: a "Set up job" failure the runner reports (no hook, no script).

        Returns:
            The job.

        Raises:
            ApiError: 404 for an unknown repository, 422 for bad fields.
        """
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            raise ApiError(422, "labels must be a list of strings")
        if not isinstance(script, str):
            raise ApiError(422, "script must be a string")
        with self.cond:
            owner, _, repo_name = repo.partition("/")
            canonical = self.canonical_repo(owner, repo_name)
            if canonical is None:
                raise not_found()
            now = time.time()
            job_id = self._next("job")
            self.run_numbers[canonical] += 1
            job = Job(
                id=job_id,
                run_id=self._next("run"),
                run_number=self.run_numbers[canonical],
                repo=canonical,
                name=name,
                workflow=workflow,
                event=event,
                labels=list(labels),
                script=script,
                payload=dict(payload or {}),
                setup_error=str(setup_error) if setup_error else None,
                sha=hashlib.sha1(
                    f"{canonical}:{job_id}".encode(), usedforsecurity=False
                ).hexdigest(),
                branch="main",
                created_at=now,
            )
            self.jobs[job.id] = job
            self._schedule()
            return job

    def _schedule(self) -> None:
        """Give each queued job, oldest first, to the first online idle runner that fits."""
        now = time.time()
        for job in sorted(self.jobs.values(), key=lambda j: j.id):
            if job.status != "queued":
                continue
            owner = job.repo.split("/", 1)[0].lower()
            wanted = {label.lower() for label in job.labels}
            for runner in sorted(self.runners.values(), key=lambda r: r.id):
                if runner.secret is None or runner.busy or runner.job_id is not None:
                    continue
                if runner.update_to is not None:
                    continue  # told to update itself: it takes no job first (Runner.cs)
                if runner.session_id is None or not self._online(runner, now):
                    continue
                if runner.scope != job.repo and runner.scope.lower() != owner:
                    continue
                if not wanted <= {name.lower() for name, _ in runner.labels}:
                    continue
                job.status = "in_progress"
                job.started_at = now
                job.runner_id = runner.id
                job.runner_name = runner.name
                job.runner_group_id = runner.group_id
                job.runner_group_name = runner.group_name
                runner.busy = True
                runner.job_id = job.id
                runner.job_delivered = False
                self.cond.notify_all()
                break

    def _job_for_repo(self, repo: str, job_id: int) -> Job:
        job = self.jobs.get(job_id)
        if job is None or job.repo.lower() != repo.lower():
            raise not_found("https://docs.github.com/rest/actions/workflow-jobs")
        return job

    def job_json(self, job: Job, base: str) -> dict[str, Any]:
        """GitHub's ``job`` object.

        Args:
            job: the job.
            base: the emulator base URL.

        Returns:
            The job object.
        """
        api = f"{base}/api/v3/repos/{job.repo}"
        return {
            "id": job.id,
            "run_id": job.run_id,
            "workflow_name": job.workflow,
            "head_branch": job.branch,
            "run_url": f"{api}/actions/runs/{job.run_id}",
            "run_attempt": 1,
            "node_id": shapes.node_id("CheckRun", job.id),
            "head_sha": job.sha,
            "url": f"{api}/actions/jobs/{job.id}",
            "html_url": f"{base}/{job.repo}/actions/runs/{job.run_id}/job/{job.id}",
            "status": job.status,
            "conclusion": job.conclusion,
            "created_at": shapes.iso(job.created_at),
            # GitHub reports a queued job's started_at as its creation time.
            "started_at": shapes.iso(job.started_at or job.created_at),
            "completed_at": shapes.iso(job.completed_at) if job.completed_at else None,
            "name": job.name,
            "steps": [dict(step) for step in job.steps],
            "check_run_url": f"{api}/check-runs/{job.id}",
            "labels": list(job.labels),
            "runner_id": job.runner_id,
            "runner_name": job.runner_name,
            "runner_group_id": job.runner_group_id,
            "runner_group_name": job.runner_group_name,
        }

    def job_control_json(self, job: Job, base: str) -> dict[str, Any]:
        """The job object plus emulator-only fields (script, exit code, log).

        Args:
            job: the job.
            base: the emulator base URL.

        Returns:
            The job as the control API shows it.
        """
        data = self.job_json(job, base)
        data.update(
            {
                "repository": job.repo,
                "event": job.event,
                "script": job.script,
                "exit_code": job.exit_code,
                "log": job.log,
            }
        )
        return data

    def run_json(self, job: Job, base: str) -> dict[str, Any]:
        """GitHub's ``workflow-run`` object for a job's run.

        Args:
            job: the job (one job per run).
            base: the emulator base URL.

        Returns:
            The workflow run object.
        """
        api = f"{base}/api/v3/repos/{job.repo}"
        run_url = f"{api}/actions/runs/{job.run_id}"
        owner = job.repo.split("/", 1)[0]
        repo = shapes.minimal_repository(
            base,
            job.repo,
            self._repo_id(job.repo),
            self._account_id(owner),
            owner.lower() in self.orgs,
        )
        actor = shapes.user(base, "emulator-user", self._account_id("emulator-user"))
        workflow_id = int(hashlib.sha256(job.workflow.encode()).hexdigest()[:6], 16)
        updated = job.completed_at or job.started_at or job.created_at
        return {
            "id": job.run_id,
            "name": job.workflow,
            "node_id": shapes.node_id("WorkflowRun", job.run_id),
            "check_suite_id": job.run_id,
            "check_suite_node_id": shapes.node_id("CheckSuite", job.run_id),
            "head_branch": job.branch,
            "head_sha": job.sha,
            "path": f".github/workflows/{job.workflow}.yaml",
            "display_title": job.workflow,
            "run_number": job.run_number,
            "run_attempt": 1,
            "referenced_workflows": [],
            "event": job.event,
            "status": job.status,
            "conclusion": job.conclusion,
            "workflow_id": workflow_id,
            "url": run_url,
            "html_url": f"{base}/{job.repo}/actions/runs/{job.run_id}",
            "pull_requests": [],
            "created_at": shapes.iso(job.created_at),
            "updated_at": shapes.iso(updated),
            "actor": actor,
            "triggering_actor": actor,
            "run_started_at": shapes.iso(job.created_at),
            "jobs_url": f"{run_url}/jobs",
            "logs_url": f"{run_url}/logs",
            "check_suite_url": f"{api}/check-suites/{job.run_id}",
            "artifacts_url": f"{run_url}/artifacts",
            "cancel_url": f"{run_url}/cancel",
            "rerun_url": f"{run_url}/rerun",
            "previous_attempt_url": None,
            "workflow_url": f"{api}/actions/workflows/{workflow_id}",
            "head_commit": shapes.simple_commit(job.sha, job.created_at, job.workflow),
            "repository": repo,
            "head_repository": repo,
        }

    def get_job(self, repo: str, job_id: int, base: str) -> dict[str, Any]:
        """A job of a repository.

        Args:
            repo: the canonical repository.
            job_id: the job id.
            base: the emulator base URL.

        Returns:
            The job object.
        """
        with self.cond:
            self._sweep()
            return self.job_json(self._job_for_repo(repo, job_id), base)

    def _jobs_of_run(self, repo: str, run_id: int) -> list[Job]:
        jobs = [
            j for j in self.jobs.values() if j.run_id == run_id and j.repo.lower() == repo.lower()
        ]
        if not jobs:
            raise not_found("https://docs.github.com/rest/actions/workflow-runs")
        return jobs

    def get_run(self, repo: str, run_id: int, base: str) -> dict[str, Any]:
        """A workflow run of a repository.

        Args:
            repo: the canonical repository.
            run_id: the run id.
            base: the emulator base URL.

        Returns:
            The workflow run object.
        """
        with self.cond:
            self._sweep()
            return self.run_json(self._jobs_of_run(repo, run_id)[0], base)

    def list_run_jobs(self, repo: str, run_id: int, base: str) -> list[dict[str, Any]]:
        """The jobs of a workflow run.

        Args:
            repo: the canonical repository.
            run_id: the run id.
            base: the emulator base URL.

        Returns:
            Job objects.
        """
        with self.cond:
            self._sweep()
            return [self.job_json(job, base) for job in self._jobs_of_run(repo, run_id)]

    def list_runs(self, repo: str, status: str | None, base: str) -> list[dict[str, Any]]:
        """The workflow runs of a repository, newest first.

        Args:
            repo: the canonical repository.
            status: only runs with this status (or conclusion), as GitHub filters.
            base: the emulator base URL.

        Returns:
            Workflow run objects.
        """
        with self.cond:
            self._sweep()
            jobs = sorted(
                (j for j in self.jobs.values() if j.repo.lower() == repo.lower()),
                key=lambda j: -j.run_id,
            )
            if status:
                jobs = [j for j in jobs if status in (j.status, j.conclusion)]
            return [self.run_json(job, base) for job in jobs]

    # --- the runner protocol ---------------------------------------------------------------

    def register(self, body: dict[str, Any], server_url: str) -> dict[str, Any]:
        """Register a runner with a registration token (what ``config.sh`` does).

        Args:
            body: ``url``, ``token``, ``name``, ``labels``, ``ephemeral``, ``replace``,
                ``runner_group``, ``work_folder``, ``disable_update``, ``no_default_labels``,
                ``arch``.
            server_url: the emulator base URL.

        Returns:
            The runner object and the ``.runner``/``.credentials`` file contents.

        Raises:
            ApiError: 401 (bad token), 404 (unknown scope or group), 409 (name taken), 422.
        """
        name = body.get("name")
        labels = body.get("labels", [])
        if not isinstance(name, str) or not name or len(name) > 64:
            raise ApiError(422, "a runner name of 1 to 64 characters is required")
        if not isinstance(labels, list) or not all(isinstance(x, str) and x for x in labels):
            raise ApiError(422, "labels must be a list of non-empty strings")
        arch = body.get("arch", "x64")
        if arch not in ARCH_LABELS:
            raise ApiError(422, f"unsupported architecture {arch!r}")
        with self.cond:
            scope = self.scope_from_url(str(body.get("url_path", "")))
            if scope is None:
                raise ApiError(404, f"no repository or organisation at {body.get('url_path')}")
            self._check_reg_token(str(body.get("token", "")), "registration", scope)
            group: dict[str, Any] = {"id": DEFAULT_GROUP_ID, "name": DEFAULT_GROUP_NAME}
            group_name = body.get("runner_group")
            if group_name and self.is_org_scope(scope):
                found = next(
                    (
                        g
                        for g in self.runner_groups(scope)
                        if g["name"].lower() == str(group_name).lower()
                    ),
                    None,
                )
                if found is None:
                    raise ApiError(
                        404, f"Could not find any self-hosted runner group named {group_name}."
                    )
                group = found
            existing = self._find_by_name(scope, name)
            if existing is not None:
                if not body.get("replace"):
                    raise ApiError(409, f"A runner exists with the same name {name}.")
                del self.runners[existing.id]
            runner = Runner(
                id=self._next("runner"),
                name=name,
                scope=scope,
                labels=self._labels(labels),
                group_id=group["id"],
                group_name=group["name"],
                ephemeral=bool(body.get("ephemeral")),
                created_at=time.time(),
                registered_via="registration-token",
                secret=secrets.token_urlsafe(24),
                arch=arch,
                work_folder=str(body.get("work_folder") or "_work"),
                disable_update=bool(body.get("disable_update")),
            )
            self.runners[runner.id] = runner
            self.cond.notify_all()
            return {
                "runner": self.runner_json(runner),
                "files": self._runner_files(runner, server_url),
            }

    def remove_registered(self, body: dict[str, Any]) -> None:
        """Deregister a runner with a remove token (what ``config.sh remove`` does).

        Args:
            body: ``url_path``, ``token`` (a remove token) and ``runner_id``.

        Raises:
            ApiError: 401 (bad token), 404 (unknown scope or runner), 422 (busy).
        """
        with self.cond:
            scope = self.scope_from_url(str(body.get("url_path", "")))
            if scope is None:
                raise ApiError(404, f"no repository or organisation at {body.get('url_path')}")
            self._check_reg_token(str(body.get("token", "")), "remove", scope)
            runner = self.runners.get(_as_int(body.get("runner_id")))
            if runner is None or runner.scope != scope:
                raise ApiError(404, "the runner is not registered")
            if runner.busy:
                raise ApiError(422, f"Runner {runner.name} is still running a job")
            del self.runners[runner.id]
            self.cond.notify_all()

    def _authenticated_runner(self, runner_id: Any, secret: Any) -> Runner:
        runner = self.runners.get(_as_int(runner_id))
        if runner is None:
            raise ApiError(404, "Runner registration has been deleted from the server")
        if runner.secret is None or not secrets.compare_digest(runner.secret, str(secret)):
            raise ApiError(401, "bad runner credentials")
        return runner

    def open_session(self, body: dict[str, Any]) -> dict[str, Any]:
        """Open a message session for a runner process: the runner shows online.

        Args:
            body: ``runner_id``, ``secret``, ``version``, ``pid``.

        Returns:
            ``session_id``, ``poll_wait`` and ``heartbeat_interval`` (seconds).
        """
        with self.cond:
            self._sweep()
            runner = self._authenticated_runner(body.get("runner_id"), body.get("secret"))
            runner.session_id = secrets.token_hex(8)
            runner.last_seen = time.time()
            version = body.get("version")
            runner.version = str(version) if version else runner.version
            self._check_version(runner)
            pid = body.get("pid")
            runner.pid = pid if isinstance(pid, int) else None
            self._schedule()
            self.cond.notify_all()
            return {
                "session_id": runner.session_id,
                "runner": self.runner_json(runner),
                **self._timings(),
            }

    def _check_version(self, runner: Runner) -> None:
        """Refuse a deprecated runner; mark an outdated one for an update message.

        A runner whose version is below ``deprecated_below`` is refused as GitHub refuses it:
        403 with ``AccessDeniedException`` and ``errorCode`` 1, which the real listener turns
        into exit code 7 (``RunnerVersionDeprecated``) when
        ``ACTIONS_RUNNER_RETURN_VERSION_DEPRECATED_EXIT_CODE=1``, else 1 (actions/runner
        Program.cs, run-helper.sh.template). A runner older than the listed release, and not
        registered with ``--disableupdate``, gets an ``AgentRefresh`` message as its first
        message (the version is checked when the session opens).

        Raises:
            ApiError: 403 for a deprecated version.
        """
        runner.update_to = None
        if not runner.version or not _VERSION_RE.match(runner.version):
            return  # a simulated runner without a real version: nothing to compare
        version = _version_tuple(runner.version)
        below = self.settings["deprecated_below"]
        if below is not None and version < _version_tuple(below):
            error = ApiError(
                403, f"Runner version v{runner.version} is deprecated and cannot receive messages."
            )
            error.body.update({"typeKey": "AccessDeniedException", "errorCode": 1})
            raise error
        latest = self.settings["runner_version"]
        runner.update_to = None
        if (
            self.settings["runner_updates"]
            and not runner.disable_update
            and version < _version_tuple(latest)
        ):
            runner.update_to = latest

    def _timings(self) -> dict[str, float]:
        offline_after = float(self.settings["offline_after"])
        return {
            "poll_wait": max(0.05, min(float(self.settings["max_poll_wait"]), offline_after / 2)),
            "heartbeat_interval": max(0.05, offline_after / 3),
        }

    def _session_runner(self, session_id: str) -> Runner:
        for runner in self.runners.values():
            if runner.session_id == session_id:
                return runner
        raise ApiError(404, "Runner registration has been deleted from the server")

    def heartbeat(self, session_id: str) -> dict[str, Any]:
        """Keep a session alive (a busy runner calls this while its job runs).

        Args:
            session_id: the session.

        Returns:
            The runner's timings.
        """
        with self.cond:
            runner = self._session_runner(session_id)
            runner.last_seen = time.time()
            answer: dict[str, Any] = dict(self._timings())
            job = self.jobs.get(runner.job_id) if runner.job_id is not None else None
            if job is not None and job.cancel_requested and job.status == "in_progress":
                answer["cancel_job"] = job.id
            return answer

    def cancel_job(self, job_id: int) -> None:
        """Cancel a job, as GitHub's "Cancel workflow".

        A queued job ends cancelled at once; the runner of a running one is told on its next
        heartbeat, and reports it cancelled.

        Args:
            job_id: the job.

        Raises:
            ApiError: 404 for an unknown job, 409 for a completed one.
        """
        with self.cond:
            job = self.jobs.get(job_id)
            if job is None:
                raise ApiError(404, "Not Found")
            if job.status == "completed":
                raise ApiError(409, f"job {job_id} is already completed")
            job.cancel_requested = True
            if job.status == "queued":
                now = time.time()
                job.status = "completed"
                job.conclusion = "cancelled"
                job.completed_at = now
                for runner in self.runners.values():
                    if runner.job_id == job_id:
                        runner.job_id = None
                        runner.busy = False
            self.cond.notify_all()

    def poll(self, session_id: str, wait: float) -> dict[str, Any] | None:
        """Long-poll for a job: the runner's heartbeat while it is idle.

        Args:
            session_id: the session.
            wait: the longest time to wait for a job (capped by the settings).

        Returns:
            The job message, or None when no job came within the wait.
        """
        with self.cond:
            wait = max(0.0, min(wait, self._timings()["poll_wait"]))
            deadline = time.time() + wait
            while True:
                runner = self._session_runner(session_id)
                runner.last_seen = time.time()
                self._sweep()
                self._schedule()
                if runner.update_to is not None:
                    return {
                        "messageType": "AgentRefresh",
                        "body": {
                            "agentId": runner.id,
                            "targetVersion": runner.update_to,
                            "timeout": "00:15:00",
                        },
                    }
                if runner.job_id is not None and not runner.job_delivered:
                    runner.job_delivered = True
                    return self._job_message(self.jobs[runner.job_id])
                remaining = deadline - time.time()
                if remaining <= 0 or self.stopping:
                    return None
                self.cond.wait(remaining)

    def _job_message(self, job: Job) -> dict[str, Any]:
        return {
            "messageType": "PipelineAgentJobRequest",
            "job": {
                "id": job.id,
                "run_id": job.run_id,
                "run_number": job.run_number,
                "run_attempt": 1,
                "name": job.name,
                "workflow": job.workflow,
                "repository": job.repo,
                "event": job.event,
                "sha": job.sha,
                "ref": f"refs/heads/{job.branch}",
                "labels": list(job.labels),
                "script": job.script,
                "payload": dict(job.payload),
                "setup_error": job.setup_error,
            },
        }

    def close_session(self, session_id: str) -> None:
        """Close a session: the runner shows offline at once.

        Args:
            session_id: the session.
        """
        with self.cond:
            runner = self._session_runner(session_id)
            runner.session_id = None
            runner.last_seen = time.time()
            self.cond.notify_all()

    def complete_job(self, job_id: int, body: dict[str, Any]) -> dict[str, Any]:
        """Record a job's result; an ephemeral runner is then deleted, as GitHub does.

        Args:
            job_id: the job.
            body: ``runner_id``, ``secret``, ``conclusion``, ``exit_code``, ``log``, ``steps``.

        Returns:
            ``deleted``: whether the runner was deleted.

        Raises:
            ApiError: 404/401 for the runner, 409 for a job not assigned to it, 422.
        """
        conclusion = body.get("conclusion")
        if conclusion not in ("success", "failure", "cancelled"):
            raise ApiError(422, "conclusion must be success, failure or cancelled")
        with self.cond:
            runner = self._authenticated_runner(body.get("runner_id"), body.get("secret"))
            job = self.jobs.get(job_id)
            if job is None or runner.job_id != job_id or job.status == "completed":
                raise ApiError(409, f"job {job_id} is not running on runner {runner.name}")
            now = time.time()
            runner.last_seen = now
            job.status = "completed"
            job.conclusion = conclusion
            job.completed_at = now
            exit_code = body.get("exit_code")
            job.exit_code = exit_code if isinstance(exit_code, int) else None
            job.log = str(body.get("log", ""))[-_LOG_LIMIT:]
            job.steps = _steps(body.get("steps"), job.started_at or now, now)
            runner.busy = False
            runner.job_id = None
            deleted = runner.ephemeral
            if deleted:
                del self.runners[runner.id]
            self._schedule()
            self.cond.notify_all()
            return {"deleted": deleted}

    # --- control API views -----------------------------------------------------------------

    def add_runner(
        self, scope: str, name: str, labels: list[str], status: str, busy: bool
    ) -> dict[str, Any]:
        """Inject a GitHub-side runner that has no process (for example a ghost offline one).

        Args:
            scope: ``owner/repo`` or ``org``.
            name: the runner name.
            labels: custom labels (the defaults are added).
            status: ``online`` or ``offline`` (fixed until changed).
            busy: whether it shows busy.

        Returns:
            The runner as the control API shows it.

        Raises:
            ApiError: 404 for an unknown scope, 409 for a taken name, 422 for a bad status.
        """
        if status not in ("online", "offline"):
            raise ApiError(422, "status must be online or offline")
        with self.cond:
            canonical = self.scope_from_url(scope)
            if canonical is None:
                raise not_found()
            if self._find_by_name(canonical, name) is not None:
                raise ApiError(409, f"A runner exists with the same name {name}.")
            runner = Runner(
                id=self._next("runner"),
                name=name,
                scope=canonical,
                labels=self._labels([*self.default_labels("x64"), *labels]),
                group_id=DEFAULT_GROUP_ID,
                group_name=DEFAULT_GROUP_NAME,
                ephemeral=True,
                created_at=time.time(),
                registered_via="injected",
                fixed_status=status,
                busy=busy,
            )
            self.runners[runner.id] = runner
            return self._runner_control_json(runner, time.time())

    def update_runner(self, runner_id: int, changes: dict[str, Any]) -> dict[str, Any]:
        """Change an injected runner's status or busy flag.

        Args:
            runner_id: the runner.
            changes: ``status`` (``online``/``offline``/None to follow the process) and
                ``busy``.

        Returns:
            The runner as the control API shows it.

        Raises:
            ApiError: 404 for an unknown runner, 422 for a bad value.
        """
        with self.cond:
            runner = self.runners.get(runner_id)
            if runner is None:
                raise not_found()
            if "status" in changes:
                if changes["status"] not in ("online", "offline", None):
                    raise ApiError(422, "status must be online, offline or null")
                runner.fixed_status = changes["status"]
            if "busy" in changes:
                runner.busy = bool(changes["busy"])
            self.cond.notify_all()
            return self._runner_control_json(runner, time.time())

    def force_delete_runner(self, runner_id: int) -> None:
        """Delete a runner GitHub-side even when it is busy (its process gets 404 next).

        Args:
            runner_id: the runner.

        Raises:
            ApiError: 404 for an unknown runner.
        """
        with self.cond:
            if self.runners.pop(runner_id, None) is None:
                raise not_found()
            self.cond.notify_all()

    def control_runners(self, scope: str | None = None) -> list[dict[str, Any]]:
        """Every runner (or a scope's) with the emulator's extra fields.

        Args:
            scope: ``owner/repo`` or ``org`` to filter on.

        Returns:
            Runner records.
        """
        with self.cond:
            self._sweep()
            now = time.time()
            wanted = None
            if scope:
                wanted = self.scope_from_url(scope) or scope
            return [
                self._runner_control_json(r, now)
                for r in sorted(self.runners.values(), key=lambda r: r.id)
                if wanted is None or r.scope.lower() == wanted.lower()
            ]

    def control_job(self, job_id: int, base: str) -> dict[str, Any]:
        """One job with the emulator's extra fields.

        Args:
            job_id: the job.
            base: the emulator base URL.

        Returns:
            The job record.

        Raises:
            ApiError: 404 for an unknown job.
        """
        with self.cond:
            self._sweep()
            job = self.jobs.get(job_id)
            if job is None:
                raise not_found()
            return self.job_control_json(job, base)

    def control_jobs(self, base: str) -> list[dict[str, Any]]:
        """Every job with the emulator's extra fields, oldest first.

        Args:
            base: the emulator base URL.

        Returns:
            Job records.
        """
        with self.cond:
            self._sweep()
            return [
                self.job_control_json(j, base)
                for j in sorted(self.jobs.values(), key=lambda j: j.id)
            ]

    def snapshot(self, base: str) -> dict[str, Any]:
        """Everything a test may want to look at.

        Args:
            base: the emulator base URL.

        Returns:
            Runners, jobs, settings, rate limit, faults, repositories and organisations.
        """
        with self.cond:
            return {
                "time": time.time(),
                "runners": self.control_runners(),
                "jobs": self.control_jobs(base),
                "settings": dict(self.settings),
                "rate_limit": self.rate_snapshot(),
                "faults": [fault.describe() for fault in self.faults],
                "repos": sorted(self.repos.values()),
                "orgs": sorted(self.orgs.values()),
                "runner_groups": {org: self.runner_groups(org) for org in self.orgs.values()},
            }


def _version_tuple(version: str | None) -> tuple[int, ...]:
    """``X.Y.Z`` as a tuple of numbers (anything else sorts first)."""
    if not version or not _VERSION_RE.match(version):
        return (0,)
    return tuple(int(part) for part in version.split("."))


def _as_int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1


def _missing(field: str) -> str:
    return f'"{field}" ' + "wasn't supplied."


def _jit_body_problems(body: dict[str, Any]) -> list[str]:
    """Validate a generate-jitconfig body as GitHub's request schema does."""
    problems = []
    name = body.get("name")
    if "name" not in body:
        problems.append(_missing("name"))
    elif not isinstance(name, str) or not name.strip():
        problems.append(f"For 'properties/name', {json.dumps(name)} is not a non-empty string.")
    group = body.get("runner_group_id")
    if "runner_group_id" not in body:
        problems.append(_missing("runner_group_id"))
    elif not isinstance(group, int) or isinstance(group, bool):
        problems.append(
            f"For 'properties/runner_group_id', {json.dumps(group)} is not an integer."
        )
    labels = body.get("labels")
    if "labels" not in body:
        problems.append(_missing("labels"))
    elif not isinstance(labels, list) or not all(isinstance(x, str) and x for x in labels):
        problems.append(
            f"For 'properties/labels', {json.dumps(labels)} is not an array of strings."
        )
    elif not 1 <= len(labels) <= 100:
        problems.append("For 'properties/labels', the array must have 1 to 100 items.")
    if "work_folder" in body and not isinstance(body["work_folder"], str):
        problems.append(
            f"For 'properties/work_folder', {json.dumps(body['work_folder'])} is not a string."
        )
    return problems


def _steps(reported: Any, started: float, completed: float) -> list[dict[str, Any]]:
    """Job steps from the runner's report (name and conclusion of each phase)."""
    steps = []
    if isinstance(reported, list):
        for number, step in enumerate(reported, start=1):
            if not isinstance(step, dict):
                continue
            steps.append(
                {
                    "name": str(step.get("name", f"step {number}")),
                    "status": "completed",
                    "conclusion": step.get("conclusion"),
                    "number": number,
                    "started_at": shapes.iso(started),
                    "completed_at": shapes.iso(completed),
                }
            )
    return steps
