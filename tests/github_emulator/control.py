# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""A client for the emulator's control API (standard library ``urllib`` only)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from typing import Any


class EmulatorControlError(Exception):
    """The control API answered with an error status."""

    def __init__(self, status: int, body: Any, method: str, path: str):
        super().__init__(f"{method} {path} -> {status}: {body}")
        self.status = status
        self.body = body


def summarise(state: dict[str, Any]) -> str:
    """A one-line summary of a state snapshot, for error messages.

    Args:
        state: what :meth:`EmulatorControl.state` returned.

    Returns:
        Runners (name, status, busy) and jobs (id, status, conclusion).
    """
    runners = ", ".join(
        f"{r['name']}[{r['scope']}]:{r['status']}{'/busy' if r['busy'] else ''}"
        for r in state.get("runners", [])
    )
    jobs = ", ".join(
        f"{j['id']}:{j['status']}/{j['conclusion']}@{j['runner_name']}"
        for j in state.get("jobs", [])
    )
    return f"runners: [{runners}]; jobs: [{jobs}]"


class EmulatorControl:
    """Drives and inspects an emulator through its control API.

    Args:
        base_url: the emulator base URL, ``http://127.0.0.1:PORT``.
        timeout: the timeout of each request, in seconds.
    """

    def __init__(self, base_url: str, timeout: float = 30.0):
        parsed = urllib.parse.urlsplit(base_url)
        self.base_url = f"{parsed.scheme}://{parsed.netloc}"
        self.timeout = timeout

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: dict[str, Any] | None = None,
    ) -> Any:
        """Send one control request.

        Args:
            method: the HTTP method.
            path: the path below ``/_emulator``.
            body: a JSON body.
            query: query parameters (None values are left out).

        Returns:
            The decoded JSON answer (None for an empty one).

        Raises:
            EmulatorControlError: the emulator answered with an error status.
        """
        url = f"{self.base_url}/_emulator{path}"
        if query:
            pairs = {k: v for k, v in query.items() if v is not None}
            if pairs:
                url += "?" + urllib.parse.urlencode(pairs)
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                raw = answer.read()
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                detail: Any = json.loads(raw)
            except ValueError:
                detail = raw.decode(errors="replace")
            raise EmulatorControlError(exc.code, detail, method, path) from None
        return json.loads(raw) if raw else None

    # -- inspection -------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """Everything: runners, jobs, settings, rate limit, faults, repos and orgs.

        Returns:
            The state snapshot.
        """
        return self.request("GET", "/state")

    def runners(self, scope: str | None = None) -> list[dict[str, Any]]:
        """The runners GitHub-side, with the emulator's extra fields.

        Args:
            scope: ``owner/repo`` or ``org`` to filter on.

        Returns:
            Runner records (the API's runner object plus ``scope``, ``registered_via``, ...).
        """
        return self.request("GET", "/runners", query={"scope": scope})

    def jobs(self) -> list[dict[str, Any]]:
        """Every job, oldest first.

        Returns:
            Job records (the API's job object plus ``repository``, ``script``, ``log``, ...).
        """
        return self.request("GET", "/jobs")

    def job(self, job_id: int) -> dict[str, Any]:
        """One job.

        Args:
            job_id: the job id.

        Returns:
            The job record.
        """
        return self.request("GET", f"/jobs/{job_id}")

    def cancel_job(self, job_id: int) -> dict[str, Any]:
        """Cancel a job (GitHub's "Cancel workflow").

        At once when queued; else its runner is told on its next heartbeat and stops the job.

        Args:
            job_id: the job id.

        Returns:
            The job record.
        """
        return self.request("POST", f"/jobs/{job_id}/cancel")

    def stats(self) -> dict[str, Any]:
        """API request counters since the last reset.

        Returns:
            ``total``, ``by_route`` (``METHOD /template``), ``by_status``, ``not_modified``,
            ``not_modified_by_route``, ``rate_limit_used`` and ``faults_fired``.
        """
        return self.request("GET", "/stats")

    def reset_stats(self) -> None:
        """Zero the API request counters."""
        self.request("DELETE", "/stats")

    def recent_requests(self) -> list[dict[str, Any]]:
        """The last API requests (route, path, status), oldest first.

        Returns:
            Request records.
        """
        return self.request("GET", "/requests")

    def downloads(self) -> list[dict[str, Any]]:
        """The runner applications the API lists (without spending rate limit).

        Returns:
            ``runner-application`` objects.
        """
        return self.request("GET", "/downloads")

    # -- driving ----------------------------------------------------------------------------

    def queue_job(
        self,
        repo: str,
        labels: Iterable[str],
        script: str,
        workflow: str = "test-workflow",
        event: str = "workflow_dispatch",
        name: str = "test",
        payload: dict[str, Any] | None = None,
        setup_error: str | None = None,
    ) -> dict[str, Any]:
        """Queue a job; it goes to the first online idle runner whose labels cover its labels.

        Args:
            repo: ``owner/repo`` (a configured repository or one under a configured org).
            labels: the job's ``runs-on`` labels (matched case-insensitively).
            script: the bash script the runner runs with ``bash -e``.
            workflow: the workflow name.
            event: the event name (``GITHUB_EVENT_NAME``).
            name: the job name (``GITHUB_JOB``).
            payload: extra fields for the event payload file.
            setup_error: make the job fail in "Set up job" (an action that cannot be
                downloaded...): the real runner then runs neither hook nor script.

        Returns:
            The job record.
        """
        body = {
            "repo": repo,
            "labels": list(labels),
            "script": script,
            "workflow": workflow,
            "event": event,
            "name": name,
            "payload": payload or {},
            "setup_error": setup_error,
        }
        return self.request("POST", "/jobs", body)

    def add_fault(
        self,
        status: int | None = None,
        count: int = 1,
        path: str | None = None,
        method: str | None = None,
        delay: float = 0.0,
        retry_after: int | None = None,
        body: Any = None,
        mode: str = "before",
    ) -> dict[str, Any]:
        """Inject a fault.

        Args:
            status: the error status to answer (None: answer normally after ``delay``).
            count: how many matching requests it fires for (negative: until cleared).
            path: a regular expression searched in the request path (without one, only API
                requests match; with one, runner-protocol and download requests can match too).
            method: the HTTP method to match.
            delay: seconds to wait before answering.
            retry_after: a ``Retry-After`` header (with 403/429: a secondary rate limit).
            body: a JSON body replacing the default GitHub-shaped error body.
            mode: ``before`` answers the fault instead of the request; ``after`` lets the
                request take effect and then answers the status (GitHub did the work, the
                answer was lost); ``drop-page`` answers normally but without the items of the
                list page (a page lost in a pagination race).

        Returns:
            The fault record.
        """
        fault = {
            "status": status,
            "count": count,
            "path": path,
            "method": method,
            "delay": delay,
            "retry_after": retry_after,
            "body": body,
            "mode": mode,
        }
        return self.request("POST", "/faults", fault)

    def clear_faults(self) -> None:
        """Remove every fault."""
        self.request("DELETE", "/faults")

    def set_rate_limit(
        self, limit: int | None = None, remaining: int | None = None, reset_in: float | None = None
    ) -> dict[str, Any]:
        """Change the core rate-limit budget.

        Args:
            limit: the hourly limit.
            remaining: what is left.
            reset_in: seconds until the budget is refilled.

        Returns:
            ``limit``, ``remaining``, ``used`` and ``reset``.
        """
        body = {"limit": limit, "remaining": remaining, "reset_in": reset_in}
        return self.request("PUT", "/rate-limit", body)

    def settings(self, **kwargs: Any) -> dict[str, Any]:
        """Read (no arguments) or change settings.

        Settings: ``jit_enabled``, ``runner_version``, ``offline_after``, ``lost_job_after``
        (how long a busy runner whose process vanished stays busy, as GitHub keeps a killed
        job's runner busy for minutes), ``registration_token_ttl``, ``max_poll_wait``,
        ``lowercase_headers`` (send lower-case header names, as HTTP/2 front ends do).

        Args:
            kwargs: settings to change.

        Returns:
            All settings.
        """
        if not kwargs:
            return self.request("GET", "/settings")
        return self.request("PATCH", "/settings", kwargs)

    def add_runner(
        self,
        scope: str,
        name: str,
        labels: Iterable[str] = (),
        status: str = "offline",
        busy: bool = False,
    ) -> dict[str, Any]:
        """Inject a GitHub-side runner without a process (for example a ghost offline one).

        Args:
            scope: ``owner/repo`` or ``org``.
            name: the runner name.
            labels: custom labels (the default labels are added).
            status: ``online`` or ``offline``; it stays so until :meth:`update_runner`.
            busy: whether it shows busy.

        Returns:
            The runner record.
        """
        body: dict[str, Any] = {"scope": scope, "name": name, "labels": list(labels)}
        body.update(status=status, busy=busy)
        return self.request("POST", "/runners", body)

    def update_runner(self, runner_id: int, **changes: Any) -> dict[str, Any]:
        """Change an injected runner's ``status`` or ``busy`` flag.

        Args:
            runner_id: the runner.
            changes: ``status`` and/or ``busy``.

        Returns:
            The runner record.
        """
        return self.request("PATCH", f"/runners/{runner_id}", changes)

    def delete_runner(self, runner_id: int) -> None:
        """Delete a runner GitHub-side even if busy (as a human would in the web UI).

        Args:
            runner_id: the runner.
        """
        self.request("DELETE", f"/runners/{runner_id}")

    def add_runner_group(self, org: str, name: str) -> dict[str, Any]:
        """Create a runner group in an organisation.

        Args:
            org: the organisation.
            name: the group name.

        Returns:
            ``id``, ``name`` and ``default``.
        """
        return self.request("POST", "/runner-groups", {"org": org, "name": name})

    def set_token(self, token: str, scopes: Iterable[str]) -> None:
        """Accept a personal access token with the given OAuth scopes.

        Args:
            token: the token.
            scopes: for example ``["repo"]`` or ``["admin:org"]``.
        """
        self.request("POST", "/tokens", {"token": token, "scopes": list(scopes)})

    def revoke_token(self, token: str) -> None:
        """Stop accepting a token (it gets 401 Bad credentials).

        Args:
            token: the token.
        """
        self.request("DELETE", f"/tokens/{urllib.parse.quote(token, safe='')}")

    def wait_for(
        self,
        predicate: Callable[[dict[str, Any]], bool],
        timeout: float = 60.0,
        interval: float = 0.2,
    ) -> dict[str, Any]:
        """Poll :meth:`state` until ``predicate(state)`` holds.

        Args:
            predicate: a test on the state snapshot.
            timeout: seconds to wait.
            interval: seconds between polls.

        Returns:
            The first state for which the predicate held.

        Raises:
            TimeoutError: the predicate did not hold in time (with the last state summarised).
        """
        deadline = time.monotonic() + timeout
        while True:
            state = self.state()
            if predicate(state):
                return state
            if time.monotonic() >= deadline:
                raise TimeoutError(f"condition not met within {timeout}s; {summarise(state)}")
            time.sleep(interval)
