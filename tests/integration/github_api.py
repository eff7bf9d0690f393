# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""The few GitHub calls the integration tests make: dispatch a workflow, follow its run.

Standard library only (urllib), so the integration environment needs no GitHub client of its
own, and the charm's GitHub adapter stays out of the tests' way. The token is sent only to the
API host: a redirect elsewhere (job logs live in blob storage) is followed without it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import secrets
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

logger = logging.getLogger(__name__)

# The workflow the tests dispatch; tests/integration/workflows/README.md says how to install it.
WORKFLOW_FILE = "github-runner-integration.yaml"
TIMEOUT = 30.0


class GitHubTestError(Exception):
    """A GitHub call of the tests failed; the message holds the status and GitHub's answer."""


@dataclasses.dataclass(frozen=True)
class Job:
    """One job of a workflow run.

    Attributes:
        id: the job id.
        status: queued, in_progress or completed.
        conclusion: success, failure, cancelled... once completed.
        runner_name: the runner that took it, once one did.
    """

    id: int
    status: str
    conclusion: str | None
    runner_name: str | None


def api_url(github_url: str) -> str:
    """The REST API base of a GitHub server (github.com or GitHub Enterprise Server).

    Args:
        github_url: the web URL.

    Returns:
        The API base URL, without a trailing slash.
    """
    host = urllib.parse.urlsplit(github_url).hostname
    if host in ("github.com", "www.github.com"):
        return "https://api.github.com"
    return github_url.rstrip("/") + "/api/v3"


class _NoAuthorisationOnRedirect(urllib.request.HTTPRedirectHandler):
    """Follow redirects, dropping the Authorization header when the host changes."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and urllib.parse.urlsplit(newurl).hostname != req.host.split(":")[0]:
            new.headers.pop("Authorization", None)
            new.unredirected_hdrs.pop("Authorization", None)
        return new


class GitHubRepo:
    """A repository the tests dispatch workflows in."""

    def __init__(self, repo: str, token: str, github_url: str = "https://github.com"):
        """Describe the repository.

        Args:
            repo: `owner/name`.
            token: a token allowed to dispatch workflows and read runs and runners.
            github_url: the GitHub server.
        """
        self.repo = repo
        self._token = token
        self._api = api_url(github_url)
        self._opener = urllib.request.build_opener(_NoAuthorisationOnRedirect())
        self.dispatched: list[int] = []

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """Call the API and return the decoded JSON answer (None when it has no body).

        Args:
            method: the HTTP method.
            path: the path under the API base, e.g. `/repos/o/r/actions/runs`.
            body: a JSON body.

        Returns:
            The decoded answer.

        Raises:
            GitHubTestError: on an HTTP or network error.
        """
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self._api + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self._token}")
        request.add_header("Accept", "application/vnd.github+json")
        request.add_header("X-GitHub-Api-Version", "2022-11-28")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with self._opener.open(request, timeout=TIMEOUT) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            answer = exc.read()[:500].decode(errors="replace")
            raise GitHubTestError(f"{method} {path}: HTTP {exc.code}: {answer}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise GitHubTestError(f"{method} {path}: {exc}") from None
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return raw.decode(errors="replace")

    def default_branch(self) -> str:
        """Return the repository's default branch (where a dispatchable workflow must be)."""
        return str(self.request("GET", f"/repos/{self.repo}")["default_branch"])

    def runners(self) -> list[dict[str, Any]]:
        """Return the repository's self-hosted runners (first 100)."""
        answer = self.request("GET", f"/repos/{self.repo}/actions/runners?per_page=100")
        return list(answer.get("runners", []))

    def dispatch(self, runner_label: str, sleep: int = 0, timeout: float = 120.0) -> int:
        """Dispatch the test workflow and return its run id.

        The dispatch call does not answer with the run, so each dispatch carries a random tag
        in its inputs, which the workflow puts in its run name, and the run is found by it.

        Args:
            runner_label: the label the job runs on (the application name under test).
            sleep: seconds the job sleeps after reporting its runner (a busy runner).
            timeout: seconds to wait for the run to appear.

        Returns:
            The run id.

        Raises:
            GitHubTestError: if the dispatch fails or the run never appears.
        """
        tag = secrets.token_hex(6)
        self.request(
            "POST",
            f"/repos/{self.repo}/actions/workflows/{WORKFLOW_FILE}/dispatches",
            {
                "ref": self.default_branch(),
                "inputs": {"runner": runner_label, "tag": tag, "sleep": str(sleep)},
            },
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            answer = self.request(
                "GET",
                f"/repos/{self.repo}/actions/workflows/{WORKFLOW_FILE}/runs"
                "?event=workflow_dispatch&per_page=30",
            )
            for run in answer.get("workflow_runs", []):
                if tag in str(run.get("display_title") or run.get("name") or ""):
                    run_id = int(run["id"])
                    self.dispatched.append(run_id)
                    logger.info("dispatched run %d (tag %s) on %s", run_id, tag, runner_label)
                    return run_id
            time.sleep(5)
        raise GitHubTestError(f"the run tagged {tag} did not appear within {timeout:.0f}s")

    def run(self, run_id: int) -> dict[str, Any]:
        """Return a workflow run."""
        return dict(self.request("GET", f"/repos/{self.repo}/actions/runs/{run_id}"))

    def jobs(self, run_id: int) -> list[Job]:
        """Return the jobs of a workflow run."""
        answer = self.request("GET", f"/repos/{self.repo}/actions/runs/{run_id}/jobs")
        return [
            Job(
                id=int(job["id"]),
                status=str(job["status"]),
                conclusion=job.get("conclusion"),
                runner_name=job.get("runner_name") or None,
            )
            for job in answer.get("jobs", [])
        ]

    def wait_for_job(self, run_id: int, statuses: set[str], timeout: float) -> Job:
        """Wait until the run's (only) job reaches one of the statuses.

        Args:
            run_id: the run.
            statuses: e.g. `{"in_progress"}` or `{"completed"}`.
            timeout: seconds to wait.

        Returns:
            The job.

        Raises:
            GitHubTestError: if it does not happen in time.
        """
        deadline = time.monotonic() + timeout
        last: Job | None = None
        while time.monotonic() < deadline:
            jobs = self.jobs(run_id)
            if jobs:
                last = jobs[0]
                if last.status in statuses or (
                    "in_progress" in statuses and last.status == "completed"
                ):
                    return last
            time.sleep(10)
        raise GitHubTestError(
            f"the job of run {run_id} did not reach {sorted(statuses)} within {timeout:.0f}s "
            f"(last seen: {last})"
        )

    def job_log(self, job_id: int) -> str:
        """Return a job's log as text."""
        answer = self.request("GET", f"/repos/{self.repo}/actions/jobs/{job_id}/logs")
        return answer if isinstance(answer, str) else json.dumps(answer)

    def cancel_dispatched(self) -> None:
        """Cancel the runs this object dispatched that have not finished (test clean-up)."""
        for run_id in self.dispatched:
            try:
                if self.run(run_id).get("status") != "completed":
                    self.request("POST", f"/repos/{self.repo}/actions/runs/{run_id}/cancel")
            except GitHubTestError as exc:
                logger.warning("cannot cancel run %d: %s", run_id, exc)
