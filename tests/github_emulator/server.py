# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""The emulator's HTTP server: GitHub's REST API, the runner protocol and the control API.

Three families of routes share one loopback port:

- ``/api/v3/...``: the slice of GitHub's REST API the charm uses (GitHub Enterprise Server
  layout), with authentication, scopes, rate limiting, ETags, pagination and fault injection;
- ``/_emulator/runner/...``: the private protocol the stand-in runner application speaks (real
  GitHub uses a separate Actions service for this);
- ``/_emulator/...``: the unauthenticated control API for tests, and the runner downloads.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import http
import ipaddress
import json
import logging
import re
import secrets
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.github_emulator import request_validation, shapes, tarball
from tests.github_emulator.control import EmulatorControl
from tests.github_emulator.state import ApiError, EmulatorState, not_found

logger = logging.getLogger(__name__)

API_PREFIX = "/api/v3"
_OWNER = r"(?P<owner>[^/]+)"
_REPO = r"(?P<repo>[^/]+)"
_ORG = r"(?P<org>[^/]+)"
_ID = r"(?P<id>\d+)"


@dataclasses.dataclass
class Request:
    """One parsed request as route handlers see it."""

    method: str
    path: str
    query: dict[str, list[str]]
    params: dict[str, str]
    body: bytes
    base: str
    headers: Any
    # A fault that acts on the answer (``after``, ``drop-page``), found when the request came.
    late_fault: Any = None

    def json(self) -> Any:
        """The body decoded as JSON (None for an empty body).

        Returns:
            The decoded body.

        Raises:
            ApiError: 400 for a body that is not JSON.
        """
        if not self.body.strip():
            return None
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise ApiError(400, "Problems parsing JSON") from exc

    def arg(self, name: str, default: str | None = None) -> str | None:
        """The first value of a query parameter.

        Args:
            name: the parameter.
            default: the value when absent.

        Returns:
            The value.
        """
        values = self.query.get(name)
        return values[0] if values else default


@dataclasses.dataclass
class Response:
    """A handler's answer."""

    status: int
    body: Any = None
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    raw: bytes | None = None
    content_type: str = "application/json; charset=utf-8"


@dataclasses.dataclass
class Route:
    """An API route: method, path template, the OAuth scope kind it needs and its handler."""

    method: str
    template: str
    pattern: re.Pattern[str]
    handler: Callable[[Request], Response]
    scope_kind: str | None


def _paginate(request: Request, items: list[Any], key: str | None) -> Response:
    """Cut a list into GitHub pages with a Link header.

    Args:
        request: the request (``per_page`` default 30, max 100; ``page`` from 1).
        items: everything.
        key: the envelope key (``runners``...), or None for a bare list.

    Returns:
        The page.
    """
    try:
        per_page = int(request.arg("per_page", "30") or 30)
    except ValueError:
        per_page = 30
    try:
        page = int(request.arg("page", "1") or 1)
    except ValueError:
        page = 1
    per_page = 30 if per_page <= 0 else min(per_page, 100)
    page = max(page, 1)
    chunk = items[(page - 1) * per_page : page * per_page]
    body: Any = chunk if key is None else {"total_count": len(items), key: chunk}
    headers = {}
    last = max(1, -(-len(items) // per_page))
    if last > 1:
        links = []

        def url(number: int) -> str:
            pairs = [(k, v) for k, values in request.query.items() for v in values if k != "page"]
            pairs.append(("page", str(number)))
            return f"{request.base}{request.path}?{urllib.parse.urlencode(pairs)}"

        if page > 1:
            links.append(f'<{url(min(page - 1, last))}>; rel="prev"')
        if page < last:
            links.append(f'<{url(page + 1)}>; rel="next"')
            links.append(f'<{url(last)}>; rel="last"')
        if page > 1:
            links.append(f'<{url(1)}>; rel="first"')
        headers["Link"] = ", ".join(links)
    return Response(200, body, headers)


class Api:
    """The REST API handlers, bound to a state."""

    def __init__(self, state: EmulatorState):
        self.state = state
        self.routes: list[Route] = []
        self._add("GET", "/rate_limit", self.rate_limit, None)
        for kind, prefix in (("repo", f"/repos/{_OWNER}/{_REPO}"), ("org", f"/orgs/{_ORG}")):
            template = "/repos/{owner}/{repo}" if kind == "repo" else "/orgs/{org}"
            runners = f"{prefix}/actions/runners"
            tpl = f"{template}/actions/runners"
            self._add("GET", runners, self.list_runners, kind, tpl)
            self._add("GET", f"{runners}/downloads", self.downloads, kind, f"{tpl}/downloads")
            for action in ("registration-token", "remove-token"):
                self._add("POST", f"{runners}/{action}", self.token, kind, f"{tpl}/{action}")
            self._add(
                "POST", f"{runners}/generate-jitconfig", self.jitconfig, kind,
                f"{tpl}/generate-jitconfig",
            )  # fmt: skip
            self._add("GET", f"{runners}/{_ID}", self.get_runner, kind, tpl + "/{runner_id}")
            self._add("DELETE", f"{runners}/{_ID}", self.delete_runner, kind, tpl + "/{runner_id}")
        self._add(
            "GET", f"/orgs/{_ORG}/actions/runner-groups", self.runner_groups, "org",
            "/orgs/{org}/actions/runner-groups",
        )  # fmt: skip
        repo = f"/repos/{_OWNER}/{_REPO}/actions"
        tpl = "/repos/{owner}/{repo}/actions"
        self._add("GET", f"{repo}/runs", self.list_runs, "repo", f"{tpl}/runs")
        self._add("GET", f"{repo}/runs/{_ID}", self.get_run, "repo", tpl + "/runs/{run_id}")
        self._add(
            "GET", f"{repo}/runs/{_ID}/jobs", self.run_jobs, "repo", tpl + "/runs/{run_id}/jobs"
        )
        self._add("GET", f"{repo}/jobs/{_ID}", self.get_job, "repo", tpl + "/jobs/{job_id}")

    def _add(
        self,
        method: str,
        pattern: str,
        handler: Callable[[Request], Response],
        scope_kind: str | None,
        template: str | None = None,
    ) -> None:
        self.routes.append(
            Route(method, template or pattern, re.compile(f"^{pattern}/?$"), handler, scope_kind)
        )

    def match(self, method: str, path: str) -> tuple[Route | None, dict[str, str]]:
        """Find the route for a request.

        Args:
            method: the HTTP method.
            path: the path below ``/api/v3``.

        Returns:
            The route and its path parameters, or None.
        """
        for route in self.routes:
            if route.method != method:
                continue
            found = route.pattern.match(path)
            if found:
                return route, {k: urllib.parse.unquote(v) for k, v in found.groupdict().items()}
        return None, {}

    # -- scope resolution ---------------------------------------------------------------------

    def scope(self, request: Request) -> str:
        """The canonical scope a request names.

        Args:
            request: the request.

        Returns:
            ``owner/repo`` or ``org``.

        Raises:
            ApiError: 404 for an unknown repository or organisation.
        """
        params = request.params
        if "org" in params:
            found = self.state.canonical_org(params["org"])
        else:
            found = self.state.canonical_repo(params["owner"], params["repo"])
        if found is None:
            raise not_found()
        return found

    # -- handlers ---------------------------------------------------------------------------

    def rate_limit(self, request: Request) -> Response:
        """``GET /rate_limit``."""
        rate = self.state.rate_snapshot()
        core = {**rate, "resource": "core"}
        other = {"limit": 30, "remaining": 30, "used": 0, "reset": rate["reset"]}
        resources = {
            "core": dict(core),
            "search": {**other, "resource": "search"},
            "graphql": {**rate, "resource": "graphql", "used": 0, "remaining": rate["limit"]},
        }
        return Response(200, {"resources": resources, "rate": {k: core[k] for k in rate}})

    def list_runners(self, request: Request) -> Response:
        """``GET {scope}/actions/runners``."""
        runners = self.state.list_runners(self.scope(request), request.arg("name"))
        return _paginate(request, runners, "runners")

    def get_runner(self, request: Request) -> Response:
        """``GET {scope}/actions/runners/{runner_id}``."""
        return Response(200, self.state.get_runner(self.scope(request), int(request.params["id"])))

    def delete_runner(self, request: Request) -> Response:
        """``DELETE {scope}/actions/runners/{runner_id}``."""
        self.state.delete_runner(self.scope(request), int(request.params["id"]))
        return Response(204)

    def token(self, request: Request) -> Response:
        """``POST {scope}/actions/runners/registration-token`` and ``.../remove-token``."""
        kind = "remove" if request.path.rstrip("/").endswith("remove-token") else "registration"
        return Response(201, self.state.create_token(self.scope(request), kind))

    def jitconfig(self, request: Request) -> Response:
        """``POST {scope}/actions/runners/generate-jitconfig``."""
        scope = self.scope(request)
        return Response(201, self.state.generate_jitconfig(scope, request.json(), request.base))

    def downloads(self, request: Request) -> Response:
        """``GET {scope}/actions/runners/downloads``."""
        self.scope(request)
        return Response(200, downloads(self.state, request.base))

    def runner_groups(self, request: Request) -> Response:
        """``GET /orgs/{org}/actions/runner-groups``."""
        org = self.scope(request)
        api = f"{request.base}{API_PREFIX}/orgs/{org}/actions/runner-groups"
        groups = [
            {
                "id": group["id"],
                "name": group["name"],
                "visibility": "all",
                "default": group["default"],
                "runners_url": f"{api}/{group['id']}/runners",
                "hosted_runners_url": f"{api}/{group['id']}/hosted-runners",
                "inherited": False,
                "allows_public_repositories": False,
                "restricted_to_workflows": False,
                "selected_workflows": [],
                "workflow_restrictions_read_only": False,
            }
            for group in self.state.runner_groups(org)
        ]
        return _paginate(request, groups, "runner_groups")

    def list_runs(self, request: Request) -> Response:
        """``GET /repos/{owner}/{repo}/actions/runs``."""
        runs = self.state.list_runs(self.scope(request), request.arg("status"), request.base)
        return _paginate(request, runs, "workflow_runs")

    def get_run(self, request: Request) -> Response:
        """``GET /repos/{owner}/{repo}/actions/runs/{run_id}``."""
        run_id = int(request.params["id"])
        return Response(200, self.state.get_run(self.scope(request), run_id, request.base))

    def run_jobs(self, request: Request) -> Response:
        """``GET /repos/{owner}/{repo}/actions/runs/{run_id}/jobs``."""
        run_id = int(request.params["id"])
        jobs = self.state.list_run_jobs(self.scope(request), run_id, request.base)
        return _paginate(request, jobs, "jobs")

    def get_job(self, request: Request) -> Response:
        """``GET /repos/{owner}/{repo}/actions/jobs/{job_id}``."""
        job_id = int(request.params["id"])
        return Response(200, self.state.get_job(self.scope(request), job_id, request.base))


def downloads(state: EmulatorState, base: str) -> list[dict[str, Any]]:
    """The runner applications GitHub lists for the current runner version.

    Args:
        state: the emulator state (for the version).
        base: the emulator base URL.

    Returns:
        ``runner-application`` objects.
    """
    version = state.settings["runner_version"]
    apps = []
    for os_name, arch, _ in tarball.PLATFORMS:
        name = tarball.filename(os_name, arch, version)
        apps.append(
            {
                "os": os_name,
                "architecture": arch,
                "download_url": f"{base}/_emulator/downloads/{name}",
                "filename": name,
                "sha256_checksum": tarball.checksum(name, state.settings["runner_size"]),
            }
        )
    return apps


class Control:
    """The control API and the runner protocol (no GitHub auth; loopback only)."""

    def __init__(
        self, state: EmulatorState, requests: request_validation.RequestLog | None = None
    ):
        self.state = state
        self.requests = requests or request_validation.RequestLog(None)

    def handle(self, request: Request) -> Response:  # noqa: C901 - a flat routing table
        """Answer a request under ``/_emulator``.

        Args:
            request: the request.

        Returns:
            The answer.

        Raises:
            ApiError: unknown route, or a state error.
        """
        state, method = self.state, request.method
        parts = [urllib.parse.unquote(p) for p in request.path.split("/") if p][1:]
        body = request.json() if request.body else {}
        if body is None:
            body = {}
        if parts and parts[0] == "runner":
            return self._runner_protocol(request, parts[1:], body)
        match (method, parts):
            case ("GET", ["state"]):
                return Response(200, state.snapshot(request.base))
            case ("GET", ["runners"]):
                return Response(200, state.control_runners(request.arg("scope")))
            case ("POST", ["runners"]):
                return Response(
                    201,
                    state.add_runner(
                        str(body.get("scope", "")),
                        str(body.get("name", "")),
                        list(body.get("labels", [])),
                        str(body.get("status", "offline")),
                        bool(body.get("busy", False)),
                    ),
                )
            case ("PATCH", ["runners", runner_id]):
                return Response(200, state.update_runner(_int(runner_id), body))
            case ("DELETE", ["runners", runner_id]):
                state.force_delete_runner(_int(runner_id))
                return Response(204)
            case ("GET", ["jobs"]):
                return Response(200, state.control_jobs(request.base))
            case ("POST", ["jobs"]):
                job = state.queue_job(
                    repo=str(body.get("repo", "")),
                    labels=body.get("labels", []),
                    script=body.get("script", ""),
                    workflow=str(body.get("workflow", "test-workflow")),
                    event=str(body.get("event", "workflow_dispatch")),
                    name=str(body.get("name", "test")),
                    payload=body.get("payload") or {},
                    setup_error=body.get("setup_error"),
                )
                return Response(201, state.control_job(job.id, request.base))
            case ("GET", ["jobs", job_id]):
                return Response(200, state.control_job(_int(job_id), request.base))
            case ("POST", ["jobs", job_id, "cancel"]):
                state.cancel_job(_int(job_id))
                return Response(200, state.control_job(_int(job_id), request.base))
            case ("GET", ["faults"]):
                return Response(200, state.snapshot(request.base)["faults"])
            case ("POST", ["faults"]):
                return Response(
                    201,
                    state.add_fault(
                        body.get("status"),
                        int(body.get("count", 1)),
                        body.get("path"),
                        body.get("method"),
                        float(body.get("delay", 0.0)),
                        body.get("retry_after"),
                        body.get("body"),
                        str(body.get("mode") or "before"),
                    ),
                )
            case ("DELETE", ["faults"]):
                state.clear_faults()
                return Response(204)
            case ("GET", ["rate-limit"]):
                return Response(200, state.rate_snapshot())
            case ("PUT" | "POST" | "PATCH", ["rate-limit"]):
                return Response(
                    200,
                    state.set_rate_limit(
                        body.get("limit"), body.get("remaining"), body.get("reset_in")
                    ),
                )
            case ("GET", ["stats"]):
                return Response(200, {**state.stats_snapshot(), **self._validation_stats()})
            case ("DELETE", ["stats"]):
                state.reset_stats()
                return Response(204)
            case ("GET", ["requests"]):
                with state.cond:
                    return Response(200, list(state.recent))
            case ("GET", ["settings"]):
                return Response(200, state.update_settings({}))
            case ("PATCH" | "PUT" | "POST", ["settings"]):
                return Response(200, state.update_settings(body))
            case ("POST", ["tokens"]):
                state.set_token(str(body.get("token", "")), body.get("scopes", []))
                return Response(204)
            case ("DELETE", ["tokens", token]):
                state.revoke_token(token)
                return Response(204)
            case ("POST", ["runner-groups"]):
                group = state.add_runner_group(str(body.get("org", "")), str(body.get("name")))
                return Response(201, group)
            case ("GET", ["downloads"]):
                return Response(200, downloads(state, request.base))
            case ("GET", ["downloads", name]):
                try:
                    data = tarball.build(name, state.settings["runner_size"])
                except ValueError as exc:
                    raise not_found() from exc
                content_type = "application/zip" if name.endswith(".zip") else "application/gzip"
                return Response(200, raw=data, content_type=content_type)
        raise not_found()

    def _validation_stats(self) -> dict[str, Any]:
        return {
            "request_validation": self.requests.validator is not None,
            "request_violations": [v.as_dict() for v in self.requests.violations()],
        }

    def _runner_protocol(self, request: Request, parts: list[str], body: Any) -> Response:
        state, method = self.state, request.method
        if not isinstance(body, dict):
            raise ApiError(400, "Problems parsing JSON")
        match (method, parts):
            case ("POST", ["register"]):
                return Response(201, state.register(body, request.base))
            case ("POST", ["remove"]):
                state.remove_registered(body)
                return Response(204)
            case ("POST", ["sessions"]):
                return Response(201, state.open_session(body))
            case ("GET", ["sessions", session_id, "message"]):
                try:
                    wait = float(request.arg("wait", "0") or 0)
                except ValueError:
                    wait = 0.0
                message = state.poll(session_id, wait)
                return Response(204) if message is None else Response(200, message)
            case ("POST", ["sessions", session_id, "heartbeat"]):
                return Response(200, state.heartbeat(session_id))
            case ("DELETE", ["sessions", session_id]):
                state.close_session(session_id)
                return Response(204)
            case ("POST", ["jobs", job_id, "complete"]):
                return Response(200, state.complete_job(_int(job_id), body))
        raise not_found()


def _int(value: str) -> int:
    try:
        return int(value)
    except ValueError as exc:
        raise not_found() from exc


def _etag(payload: bytes) -> str:
    return f'W/"{hashlib.sha256(payload).hexdigest()}"'


def _etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    if header.strip() == "*":
        return True
    wanted = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == wanted for tag in header.split(","))


class _Handler(BaseHTTPRequestHandler):
    """Dispatches every request to the API, the runner protocol or the control API."""

    protocol_version = "HTTP/1.1"
    # Idle keep-alive connections are dropped after this many seconds.
    timeout = 30
    server: _Server

    def version_string(self) -> str:
        """The ``Server`` header GitHub sends.

        Returns:
            ``GitHub.com``.
        """
        return "GitHub.com"

    def send_header(self, keyword: str, value: str) -> None:
        """Send a header, in lower case when the ``lowercase_headers`` setting is on.

        HTTP/2 front ends (and some proxies in front of GitHub Enterprise Server) hand clients
        lower-case header names; clients must not depend on the spelling.

        Args:
            keyword: the header name.
            value: its value.
        """
        if self.server.state.settings.get("lowercase_headers"):
            keyword = keyword.lower()
        super().send_header(keyword, value)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base class name
        if self.server.verbose:
            super().log_message(format, *args)

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def _request(self) -> Request:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        split = urllib.parse.urlsplit(self.path)
        host = self.headers.get("Host") or self.server.authority
        return Request(
            method=self.command,
            path=split.path,
            query=urllib.parse.parse_qs(split.query, keep_blank_values=True),
            params={},
            body=body,
            base=f"http://{host}",
            headers=self.headers,
        )

    def _dispatch(self) -> None:
        try:
            request = self._request()
        except (ValueError, OSError):
            self.close_connection = True
            return
        path = request.path
        try:
            if path == API_PREFIX or path.startswith(API_PREFIX + "/"):
                self._api(request)
            elif path.startswith("/_emulator/"):
                self._control(request)
            else:
                self._send(Response(404, shapes.error_body(404, "Not Found")))
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _fault(self, request: Request, is_api: bool) -> Response | None:
        """Apply a fault that answers instead of the request (sleeping first if it says so)."""
        fault = self.server.state.take_fault(request.method, request.path, is_api)
        if fault is None:
            return None
        if fault.mode != "before":
            # It acts on the answer: the request goes through first.
            request.late_fault = fault
            return None
        if fault.delay > 0:
            time.sleep(fault.delay)
        if fault.status is None:
            return None
        return _fault_response(fault)

    def _late_fault(self, request: Request, response: Response) -> Response:
        """Apply a fault that acts once the request took effect (``after``, ``drop-page``)."""
        fault = request.late_fault
        if fault is None:
            return response
        if fault.delay > 0:
            time.sleep(fault.delay)
        if fault.mode == "after" and fault.status is not None:
            return _fault_response(fault)
        if fault.mode == "drop-page" and isinstance(response.body, dict):
            body = {
                key: [] if isinstance(value, list) else value
                for key, value in response.body.items()
            }
            return dataclasses.replace(response, body=body)
        return response

    def _control(self, request: Request) -> None:
        client = self.client_address[0]
        if not ipaddress.ip_address(client.split("%")[0]).is_loopback:
            self._send(Response(403, shapes.error_body(403, "control API is loopback only")))
            return
        is_protocol = request.path.startswith(("/_emulator/runner/", "/_emulator/downloads/"))
        if is_protocol:
            faulted = self._fault(request, is_api=False)
            if faulted is not None:
                self._send(faulted)
                return
        try:
            response = self.server.control.handle(request)
        except ApiError as exc:
            response = Response(exc.status, exc.body, exc.headers)
        if is_protocol:
            response = self._late_fault(request, response)
        self._send(response)

    def _api(self, request: Request) -> None:  # noqa: C901 - the order GitHub checks things in
        state = self.server.state
        sub_path = request.path[len(API_PREFIX) :] or "/"
        route, params = self.server.api.match(request.method, sub_path)
        request.params = params
        route_key = f"{request.method} {route.template if route else '<unknown>'}"
        headers = {
            "X-GitHub-Media-Type": "github.v3; format=json",
            "X-GitHub-Api-Version-Selected": "2022-11-28",
            "X-GitHub-Request-Id": secrets.token_hex(8).upper(),
        }
        refused = self._refuse_invalid(request, sub_path)
        if refused is not None:
            refused.headers.update(headers)
            state.record_request(route_key, refused.status, request.path)
            self._send(refused)
            return
        response = self._fault(request, is_api=True)
        if response is not None:
            response.headers.update(headers)
            state.record_request(route_key, response.status, request.path, _content_type(request))
            self._send(response)
            return
        counted = not (route and route.template == "/rate_limit")
        token = _token(request.headers.get("Authorization"))
        scopes = state.token_scopes(token) if token else None
        limited = False
        try:
            if token is None and counted:
                raise ApiError(401, "Requires authentication")
            if token is not None and scopes is None:
                raise ApiError(401, "Bad credentials")
            if scopes is not None:
                headers["X-OAuth-Scopes"] = ", ".join(scopes)
            if route and route.scope_kind:
                needed = "repo" if route.scope_kind == "repo" else "admin:org"
                headers["X-Accepted-OAuth-Scopes"] = needed
            if counted and state.rate_exhausted():
                limited = True
                response = Response(
                    403,
                    shapes.error_body(
                        403,
                        f"API rate limit exceeded for user ID 1. If you reach out to GitHub "
                        f"Support for help, please include the request ID "
                        f"{headers['X-GitHub-Request-Id']} and timestamp "
                        f"{shapes.iso(time.time())}.",
                        shapes.DOCS_PRIMARY_RATE_LIMIT,
                    ),
                )
            elif route is None:
                raise not_found()
            else:
                if route.scope_kind:
                    self.server.api.scope(request)
                    if route.scope_kind not in _kinds(scopes or []):
                        raise ApiError(
                            403,
                            "Resource not accessible by personal access token",
                            shapes.DOCS_RUNNERS,
                        )
                response = route.handler(request)
                response = self._late_fault(request, response)
        except ApiError as exc:
            response = Response(exc.status, exc.body, exc.headers)
        response.headers.update(headers)
        payload = b"" if response.body is None else json.dumps(response.body).encode()
        if request.method == "GET" and response.status == 200:
            etag = _etag(payload)
            response.headers["ETag"] = etag
            response.headers["Cache-Control"] = "private, max-age=60, s-maxage=60"
            response.headers["Vary"] = "Accept, Authorization, Cookie, X-GitHub-OTP"
            if _etag_matches(request.headers.get("If-None-Match"), etag):
                response = Response(304, None, response.headers)
        if counted and not limited and response.status not in (304, 401):
            state.consume_rate()
        if counted and response.status != 401:
            rate = state.rate_snapshot()
            response.headers.update(
                {
                    "X-RateLimit-Limit": str(rate["limit"]),
                    "X-RateLimit-Remaining": str(rate["remaining"]),
                    "X-RateLimit-Used": str(rate["used"]),
                    "X-RateLimit-Reset": str(rate["reset"]),
                    "X-RateLimit-Resource": "core",
                }
            )
        state.record_request(route_key, response.status, request.path, _content_type(request))
        self._send(response)

    def _refuse_invalid(self, request: Request, sub_path: str) -> Response | None:
        """Check a request against GitHub's description; the refusal when it breaks a rule."""
        violations = self.server.requests.check(
            request.method, sub_path, request.query, request.headers, request.body
        )
        if not violations:
            return None
        messages = [violation.message() for violation in violations]
        logger.error("request violates GitHub's description: %s", "; ".join(messages))
        if any(violation.rule in ("path", "method") for violation in violations):
            return Response(404, shapes.error_body(404, "Not Found"))
        body = shapes.error_body(422, "Invalid request.\n\n" + "\n".join(messages))
        body["errors"] = messages
        return Response(422, body)

    def _send(self, response: Response) -> None:
        if response.raw is not None:
            payload = response.raw
        elif response.body is None or response.status in (204, 304):
            payload = b""
        else:
            payload = json.dumps(response.body).encode()
        self.send_response(response.status)
        for key, value in response.headers.items():
            self.send_header(key, value)
        if response.status not in (204, 304):
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if payload and self.command != "HEAD":
            self.wfile.write(payload)
        self.wfile.flush()


def _content_type(request: Request) -> str | None:
    """The Content-Type of a request that has a body."""
    return request.headers.get("Content-Type") if request.body else None


def _fault_response(fault: Any) -> Response:
    """The error answer of a fault."""
    status = fault.status
    headers: dict[str, str] = {}
    if fault.retry_after is not None:
        headers["Retry-After"] = str(fault.retry_after)
    if fault.body is not None:
        body = fault.body
    elif status in (403, 429) and fault.retry_after is not None:
        body = shapes.error_body(
            status,
            "You have exceeded a secondary rate limit. Please wait a few minutes before you "
            "try again.",
            shapes.DOCS_RATE_LIMIT,
        )
    else:
        try:
            phrase = http.HTTPStatus(status).phrase
        except ValueError:
            phrase = "Error"
        body = shapes.error_body(status, phrase if status < 500 else "Server Error")
    return Response(status, body, headers)


def _token(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() in ("token", "bearer") and value.strip():
        return value.strip()
    return ""


def _kinds(scopes: Iterable[str]) -> set[str]:
    kinds = set()
    for scope in scopes:
        if scope == "repo":
            kinds.add("repo")
        if scope == "admin:org":
            kinds.add("org")
    return kinds


class _Server(ThreadingHTTPServer):
    """A threading HTTP server carrying the emulator's state and handlers.

    It tracks open connections so that :meth:`close_connections` can end idle keep-alive
    connections, letting ``server_close`` join every request thread promptly.
    """

    daemon_threads = False
    block_on_close = True
    allow_reuse_address = True
    state: EmulatorState
    api: Api
    control: Control
    requests: request_validation.RequestLog
    verbose: bool
    authority: str

    def server_activate(self) -> None:
        """Start listening and set up connection tracking."""
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().server_activate()

    def finish_request(self, request: Any, client_address: Any) -> None:
        """Handle one connection, remembering it while it is open.

        Args:
            request: the connection's socket.
            client_address: the peer address.
        """
        with self.connections_lock:
            self.connections.add(request)
        try:
            super().finish_request(request, client_address)
        finally:
            with self.connections_lock:
                self.connections.discard(request)

    def close_connections(self) -> None:
        """Shut down every open connection (their handler threads then finish)."""
        with self.connections_lock:
            connections = list(self.connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


def _loopback_address(host: str) -> tuple[str, int]:
    """Resolve a host to a loopback IP literal and its address family.

    Args:
        host: an IP literal or ``localhost``.

    Returns:
        The IP literal and the socket family.

    Raises:
        ValueError: the host is not a loopback address.
    """
    literal = "127.0.0.1" if host == "localhost" else host
    try:
        address = ipaddress.ip_address(literal)
    except ValueError as exc:
        raise ValueError(f"the emulator binds loopback addresses only, not {host!r}") from exc
    if not address.is_loopback:
        raise ValueError(f"the emulator binds loopback addresses only, not {host!r}")
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    return literal, family


class Emulator:
    """A GitHub API emulator on a loopback port, served from a background thread.

    Args:
        token: the personal access token that is accepted (scopes ``repo``, ``admin:org``,
            ``workflow``); more can be added with :meth:`EmulatorControl.set_token`.
        repos: ``owner/repo`` repositories that exist.
        orgs: organisations that exist (every repository under them exists too).
        host: a loopback address to bind (anything else is refused).
        port: the port, 0 for a free one.
        offline_after: seconds without a heartbeat after which a runner shows offline.
        rate_limit: the core rate-limit budget per hour.
        runner_version: the runner application version ``downloads`` lists.
        verbose: log every request to stderr.
        request_validator: checks every API request against GitHub's OpenAPI description
            (see `request_validation`); by default the one set with
            `request_validation.set_default`, if any.
    """

    def __init__(
        self,
        token: str = "ghp_emulatorToken",  # noqa: S107 - a fake token for a fake GitHub
        repos: Iterable[str] = (),
        orgs: Iterable[str] = (),
        host: str = "127.0.0.1",
        port: int = 0,
        offline_after: float = 10.0,
        rate_limit: int = 5000,
        runner_version: str = "2.330.0",
        verbose: bool = False,
        request_validator: request_validation.RequestValidator | None = None,
    ):
        self.host, self._family = _loopback_address(host)
        self._requested_port = port
        self.state = EmulatorState(token, repos, orgs, offline_after, rate_limit, runner_version)
        self.verbose = verbose
        self.requests = request_validation.new_log()
        if request_validator is not None:
            self.requests.validator = request_validator
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def url(self) -> str:
        """The base URL, ``http://127.0.0.1:PORT``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def api_url(self) -> str:
        """The REST API root, ``http://127.0.0.1:PORT/api/v3``."""
        return self.url + API_PREFIX

    @property
    def control(self) -> EmulatorControl:
        """A control API client for this emulator."""
        return EmulatorControl(self.url)

    def start(self) -> None:
        """Bind and serve in a daemon thread; returns once connections are accepted.

        Raises:
            RuntimeError: already started.
        """
        if self._server is not None:
            raise RuntimeError("the emulator is already running")
        server_class = type("_BoundServer", (_Server,), {"address_family": self._family})
        server = server_class((self.host, self._requested_port), _Handler)
        server.state = self.state
        server.api = Api(self.state)
        server.control = Control(self.state, self.requests)
        server.requests = self.requests
        server.verbose = self.verbose
        self.port = server.server_address[1]
        server.authority = self.url.removeprefix("http://")
        self._server = server
        self.state.stopping = False
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"github-emulator-{self.port}",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving, wake long-polls, join the thread and close the socket."""
        if self._server is None:
            return
        with self.state.cond:
            self.state.stopping = True
            self.state.cond.notify_all()
        self._server.shutdown()
        self._server.close_connections()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = None
        self._thread = None

    def __enter__(self) -> Emulator:
        """Start on entering a ``with`` block.

        Returns:
            The emulator.
        """
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Stop on leaving a ``with`` block."""
        self.stop()
