# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""The GitHub adapter: the only module that imports ghapi.

`GhApiClient` wraps ghapi's low-level call (which takes a timeout) and adds what the runner
manager needs from a GitHub client: full pagination, conditional requests with ETags kept across
runs (a 304 costs no rate limit), bounded retries with backoff on server and network errors,
respect for the rate limit (once it is spent, no call is made until it resets), and translation
of HTTP errors into the manager's own error types.
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import json
import logging
import platform
import re
import threading
import time
import urllib.error
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

from ghapi.core import GhApi

from .errors import (
    GitHubConflictError,
    GitHubError,
    GitHubUnavailableError,
    PathNotFoundError,
    PermissionDeniedError,
    RateLimitError,
    TokenError,
)
from .models import (
    GitHubOrg,
    GitHubPath,
    GitHubRepo,
    GitHubRunner,
    Registration,
    RunnerApplication,
)
from .utils import atomic_write

logger = logging.getLogger(__name__)

PER_PAGE = 100
_ERROR_BODY_MARK = "====Error Body===="
_LINK_NEXT_RE = re.compile(r'<([^>]+)>;\s*rel="next"')
# How long to wait after a secondary rate limit that names no time (GitHub's advice: a minute).
_SECONDARY_LIMIT_WAIT = 60.0


@dataclasses.dataclass(frozen=True)
class RateLimit:
    """The primary rate limit as GitHub last reported it.

    Attributes:
        limit: requests allowed per window.
        remaining: requests left in the window.
        reset_at: epoch seconds when the window resets.
    """

    limit: int
    remaining: int
    reset_at: float


@dataclasses.dataclass(frozen=True)
class JobInfo:
    """What the metrics need to know about a job.

    Attributes:
        id: the job id.
        created_at: when the job was queued (ISO 8601).
        started_at: when a runner took it (ISO 8601).
        conclusion: success, failure, cancelled... or None while running.
        runner_name: the runner that ran it.
    """

    id: int
    created_at: str
    started_at: str | None
    conclusion: str | None
    runner_name: str | None


class GitHubClient(Protocol):
    """What the runner manager needs from GitHub, for one organisation or repository."""

    def list_runners(self) -> list[GitHubRunner]:
        """List every self-hosted runner of the organisation or repository."""
        ...  # pragma: no cover

    def register_runner(self, name: str, labels: list[str]) -> Registration:
        """Get what a new runner needs to register: a JIT config or a registration token."""
        ...  # pragma: no cover

    def delete_runner(self, runner_id: int) -> None:
        """Delete a runner; an unknown runner counts as deleted."""
        ...  # pragma: no cover

    def get_runner(self, runner_id: int) -> GitHubRunner | None:
        """Look a runner up by id; None when GitHub answers 404."""
        ...  # pragma: no cover

    def find_runner(self, name: str) -> GitHubRunner | None:
        """Look a runner up by name; None when there is none."""
        ...  # pragma: no cover

    def runner_applications(self) -> list[RunnerApplication]:
        """List the runner application downloads."""
        ...  # pragma: no cover

    def job_for_runner(self, repository: str, run_id: int, runner_name: str) -> JobInfo | None:
        """Find the job of a workflow run that a runner ran."""
        ...  # pragma: no cover

    def rate_limit(self) -> RateLimit | None:
        """The rate limit as last reported, if any call reported it."""
        ...  # pragma: no cover

    def call_count(self) -> int:
        """How many HTTP requests this client has sent."""
        ...  # pragma: no cover

    def not_modified_count(self) -> int:
        """How many requests GitHub answered with 304 Not Modified (from the cache)."""
        ...  # pragma: no cover

    def save_cache(self) -> None:
        """Persist what the client caches (ETags, the rate limit) for the next run."""
        ...  # pragma: no cover


# GitHub's architecture labels by `platform.machine()`.
_ARCH_LABELS = {"x86_64": "X64", "amd64": "X64", "aarch64": "ARM64", "arm64": "ARM64"}


def default_runner_labels(machine: str | None = None) -> list[str]:
    """The labels `config.sh` gives every runner, which a JIT configuration must ask for.

    The real runner adds `self-hosted`, the OS and the architecture on the client side, in
    `config.sh` (actions/runner ConfigurationManager.CreateNewAgent, unless
    `--no-default-labels`). A just-in-time runner skips `config.sh`, so GitHub registers it with
    exactly the labels of the `generate-jitconfig` request: without these, a workflow asking for
    `runs-on: [self-hosted, ...]` would never get it.

    Args:
        machine: `platform.machine()` output; the host's by default (runners run on the host's
            architecture).

    Returns:
        `self-hosted`, `Linux` and `X64` or `ARM64`.
    """
    machine = (machine or platform.machine()).lower()
    return ["self-hosted", "Linux", _ARCH_LABELS.get(machine, "X64")]


def _with_default_labels(labels: Iterable[str], machine: str | None = None) -> list[str]:
    merged: list[str] = []
    seen: set[str] = set()
    for label in (*default_runner_labels(machine), *labels):
        if label.lower() not in seen:
            seen.add(label.lower())
            merged.append(label)
    return merged


class ResponseCache:
    """ETags and bodies of GET responses, and the last rate limit, kept across runs in a file.

    The cache holds only what GitHub listed (runners, runner groups, downloads): no token, no
    registration token, no JIT configuration.
    """

    def __init__(self, path: Path | None):
        """Load the cache.

        Args:
            path: the JSON file; None keeps the cache in memory only.
        """
        self._path = path
        self._lock = threading.Lock()
        self._entries: dict[str, dict[str, Any]] = {}
        self.rate_limit: RateLimit | None = None
        if path is not None and path.exists():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                self._entries = dict(data.get("entries", {}))
                if data.get("rate_limit"):
                    self.rate_limit = RateLimit(**data["rate_limit"])
            except (OSError, ValueError, TypeError) as exc:
                logger.warning("ignoring the unreadable GitHub response cache %s: %s", path, exc)

    def get(self, url: str) -> dict[str, Any] | None:
        """Return the cached entry of a URL.

        Args:
            url: the full request URL.

        Returns:
            The entry (`etag`, `body`, `next`), or None.
        """
        with self._lock:
            return self._entries.get(url)

    def put(self, url: str, etag: str | None, body: Any, next_url: str | None) -> None:
        """Remember a response (only when it has an ETag).

        Args:
            url: the full request URL.
            etag: the response's ETag.
            body: the decoded body.
            next_url: the next page's URL, if any.
        """
        with self._lock:
            if etag:
                self._entries[url] = {"etag": etag, "body": body, "next": next_url}
            else:
                self._entries.pop(url, None)

    def save(self) -> None:
        """Write the cache atomically, readable by its owner only."""
        if self._path is None:
            return
        with self._lock:
            data = {
                "entries": self._entries,
                "rate_limit": dataclasses.asdict(self.rate_limit) if self.rate_limit else None,
            }
        atomic_write(self._path, json.dumps(data).encode(), mode=0o600)


def _error_body(exc: urllib.error.HTTPError) -> dict[str, Any]:
    """Extract GitHub's JSON error body that fastcore appends to the exception message."""
    text = str(getattr(exc, "msg", "") or "")
    if _ERROR_BODY_MARK in text:
        text = text.split(_ERROR_BODY_MARK, 1)[1]
    with contextlib.suppress(ValueError):
        body = json.loads(text.strip())
        if isinstance(body, dict):
            return body
    return {}


def _headers(raw: Any) -> dict[str, str]:
    """Normalise response headers to a case-insensitive lookup (lower-case keys)."""
    if raw is None:
        return {}
    return {str(k).lower(): str(v) for k, v in dict(raw.items()).items()}


class GhApiClient:
    """GitHub client for one organisation or repository, built on ghapi."""

    def __init__(
        self,
        path: GitHubPath,
        token: str,
        api_url: str,
        *,
        timeout: float = 30.0,
        retries: int = 3,
        cache: ResponseCache | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        machine: str | None = None,
    ):
        """Create the client.

        Args:
            path: the organisation or repository.
            token: the GitHub token; it is only ever put in the Authorization header.
            api_url: the REST API base (`https://api.github.com` or `<ghes>/api/v3`).
            timeout: seconds any single request may take.
            retries: attempts for requests failing with server or network errors.
            cache: ETag cache; a fresh in-memory one by default.
            sleep: the sleep function (tests pass a fake one).
            clock: the wall clock (tests pass a fake one).
            machine: the runners' `platform.machine()` (the host's by default).
        """
        self._machine = machine
        self._path = path
        self._token = token
        self._api_url = api_url.rstrip("/")
        self._timeout = timeout
        self._retries = retries
        self._cache = cache if cache is not None else ResponseCache(None)
        self._sleep = sleep
        self._clock = clock
        self._local = threading.local()
        self._lock = threading.Lock()
        self._calls = 0
        self._not_modified = 0
        self._jit_supported = True
        self._group_id: int | None = None

    # ----- plumbing -------------------------------------------------------------------------

    def _api(self) -> GhApi:
        """One GhApi per thread: ghapi keeps the last response's headers on the instance."""
        api = getattr(self._local, "api", None)
        if api is None:
            api = GhApi(token=self._token, gh_host=self._api_url, authenticate=True)
            self._local.api = api
        return api

    def _note_rate_limit(self, headers: dict[str, str]) -> None:
        if "x-ratelimit-remaining" not in headers:
            return
        try:
            limit = RateLimit(
                limit=int(headers.get("x-ratelimit-limit", "0")),
                remaining=int(headers["x-ratelimit-remaining"]),
                reset_at=float(headers.get("x-ratelimit-reset", "0")),
            )
        except ValueError:
            return
        with self._lock:
            self._cache.rate_limit = limit

    def _check_budget(self) -> None:
        """Refuse to call GitHub while the rate limit is known to be spent."""
        limit = self._cache.rate_limit
        if limit is not None and limit.remaining <= 0 and self._clock() < limit.reset_at:
            raise RateLimitError(
                "the GitHub rate limit is spent; no call is made until it resets at "
                f"{time.strftime('%H:%M:%S', time.gmtime(limit.reset_at))} UTC",
                reset_at=limit.reset_at,
            )

    def _rate_limited(self, status: int, headers: dict[str, str], body: dict[str, Any]) -> bool:
        message = str(body.get("message", "")).lower()
        return (
            status == 429
            or "retry-after" in headers
            or headers.get("x-ratelimit-remaining") == "0"
            or "rate limit" in message
        )

    def _raise_rate_limit(self, status: int, headers: dict[str, str]) -> None:
        now = self._clock()
        if "retry-after" in headers:
            try:
                reset_at = now + float(headers["retry-after"])
            except ValueError:
                reset_at = now + _SECONDARY_LIMIT_WAIT
            kind = "secondary rate limit"
        elif headers.get("x-ratelimit-remaining") == "0":
            reset_at = float(headers.get("x-ratelimit-reset", now + _SECONDARY_LIMIT_WAIT))
            kind = "rate limit"
        else:
            reset_at = now + _SECONDARY_LIMIT_WAIT
            kind = "secondary rate limit"
        with self._lock:
            current = self._cache.rate_limit
            self._cache.rate_limit = RateLimit(
                limit=current.limit if current else 0, remaining=0, reset_at=reset_at
            )
        raise RateLimitError(
            f"GitHub {kind} reached (HTTP {status}); calls resume after "
            f"{time.strftime('%H:%M:%S', time.gmtime(reset_at))} UTC",
            reset_at=reset_at,
            status=status,
        )

    def _permission_message(self) -> str:
        if isinstance(self._path, GitHubOrg):
            return (
                f"the token may not manage the runners of organisation {self._path.org}: a "
                "classic token needs the admin:org and repo scopes, a fine-grained token the "
                "organisation permission 'Self-hosted runners: read and write'"
            )
        return (
            f"the token may not manage the runners of repository {self._path}: a classic token "
            "needs the repo scope, a fine-grained token the repository permission "
            "'Administration: read and write'"
        )

    def _translate(self, exc: urllib.error.HTTPError) -> GitHubError:
        status = exc.code
        headers = _headers(exc.headers)
        self._note_rate_limit(headers)
        body = _error_body(exc)
        message = str(body.get("message", "")) or exc.reason or "no message"
        if status == 401:
            return TokenError(f"GitHub rejected the token (401 {message})", status)
        if status in (403, 429) and self._rate_limited(status, headers, body):
            try:
                self._raise_rate_limit(status, headers)
            except RateLimitError as limit_error:
                return limit_error
        if status == 403:
            return PermissionDeniedError(f"{self._permission_message()} (403 {message})", status)
        if status == 404:
            return PathNotFoundError(
                f"GitHub does not know {self._describe_path()} or the token cannot see it "
                f"(404 {message})",
                status,
            )
        if status in (409, 422):
            return GitHubConflictError(f"GitHub refused the request ({status} {message})", status)
        return GitHubError(f"GitHub answered {status} {message}", status)

    def _describe_path(self) -> str:
        if isinstance(self._path, GitHubOrg):
            return f"organisation {self._path.org}"
        return f"repository {self._path}"

    def _request(
        self,
        method: str,
        url: str,
        data: dict[str, Any] | None = None,
        etag: str | None = None,
    ) -> tuple[Any, dict[str, str], bool]:
        """Send one request with retries.

        Args:
            method: HTTP method.
            url: an API path (joined to the API base) or a full URL.
            data: a JSON body.
            etag: an ETag for `If-None-Match`.

        Returns:
            The decoded body, the response headers and whether it was a 304.

        Raises:
            GitHubError: the translated error (see the module docstring).
        """
        self._check_budget()
        headers = {"X-GitHub-Api-Version": "2022-11-28"}
        if etag:
            headers["If-None-Match"] = etag
        if data is not None:
            # ghapi encodes the body as JSON but labels it with no media type (urllib then says
            # application/x-www-form-urlencoded); GitHub documents application/json.
            headers["Content-Type"] = "application/json"
        delay = 1.0
        last_error: Exception | None = None
        for attempt in range(1, self._retries + 1):
            api = self._api()
            with self._lock:
                self._calls += 1
            try:
                body = api(url, method, headers=headers, data=data, timeout=self._timeout)
                response_headers = _headers(getattr(api, "recv_hdrs", None))
                self._note_rate_limit(response_headers)
                return _decode(body, response_headers), response_headers, False
            except urllib.error.HTTPError as exc:
                if exc.code == 304:
                    response_headers = _headers(exc.headers)
                    self._note_rate_limit(response_headers)
                    with self._lock:
                        self._not_modified += 1
                    return None, response_headers, True
                if exc.code < 500:
                    raise self._translate(exc) from None
                last_error = exc
                logger.warning(
                    "GitHub %s %s answered %s (attempt %d/%d)",
                    method,
                    _redact_url(url),
                    exc.code,
                    attempt,
                    self._retries,
                )
            except (
                urllib.error.URLError,
                TimeoutError,
                ConnectionError,
                http.client.HTTPException,
            ) as exc:
                last_error = exc
                logger.warning(
                    "GitHub %s %s failed: %s (attempt %d/%d)",
                    method,
                    _redact_url(url),
                    getattr(exc, "reason", exc),
                    attempt,
                    self._retries,
                )
            if attempt < self._retries:
                self._sleep(delay)
                delay = min(delay * 2, 8.0)
        raise GitHubUnavailableError(
            f"GitHub {method} {_redact_url(url)} kept failing after {self._retries} attempts: "
            f"{_describe(last_error)}"
        )

    def _get_pages(self, path: str, key: str) -> Iterator[dict[str, Any]]:
        """Yield the items of every page of a list, with conditional requests.

        Args:
            path: the API path of the list.
            key: the body key holding the items (`runners`, `runner_groups`).

        Yields:
            Each item.
        """
        url: str | None = f"{self._api_url}{path}?per_page={PER_PAGE}"
        seen: set[str] = set()
        while url and url not in seen:
            seen.add(url)
            cached = self._cache.get(url)
            body, headers, not_modified = self._request(
                "GET", url, etag=cached["etag"] if cached else None
            )
            if not_modified and cached is not None:
                body, next_url = cached["body"], cached["next"]
            else:
                match = _LINK_NEXT_RE.search(headers.get("link", ""))
                next_url = match.group(1) if match else None
                body = _plain(body)
                self._cache.put(url, headers.get("etag"), body, next_url)
            yield from body.get(key, []) if isinstance(body, dict) else []
            url = next_url

    def _get_cached(self, path: str) -> Any:
        """GET a single resource with a conditional request."""
        url = f"{self._api_url}{path}"
        cached = self._cache.get(url)
        body, headers, not_modified = self._request(
            "GET", url, etag=cached["etag"] if cached else None
        )
        if not_modified and cached is not None:
            return cached["body"]
        body = _plain(body)
        self._cache.put(url, headers.get("etag"), body, None)
        return body

    # ----- the GitHubClient protocol --------------------------------------------------------

    def list_runners(self) -> list[GitHubRunner]:
        """List every self-hosted runner of the organisation or repository (all pages).

        Returns:
            The runners.
        """
        return [
            _runner(item)
            for item in self._get_pages(f"{self._path.api_scope}/actions/runners", "runners")
        ]

    def get_runner(self, runner_id: int) -> GitHubRunner | None:
        """Look a runner up by id: positive evidence of whether it still exists.

        Args:
            runner_id: GitHub's runner id.

        Returns:
            The runner, or None when GitHub answers 404 (it is gone).
        """
        try:
            body, _, _ = self._request(
                "GET", f"{self._path.api_scope}/actions/runners/{runner_id}"
            )
        except PathNotFoundError:
            return None
        return _runner(_plain(body))

    def find_runner(self, name: str) -> GitHubRunner | None:
        """Look a runner up by name (GitHub filters the listing by name).

        Args:
            name: the runner name.

        Returns:
            The runner, or None when GitHub lists none of that name.
        """
        body, _, _ = self._request(
            "GET", f"{self._path.api_scope}/actions/runners?name={urllib.parse.quote(name)}"
        )
        body = _plain(body)
        for item in body.get("runners", []) if isinstance(body, dict) else []:
            if item.get("name") == name:
                return _runner(item)
        return None

    def _runner_group_id(self) -> int:
        if isinstance(self._path, GitHubRepo):
            # Repository runners always belong to the default group, id 1.
            return 1
        if self._group_id is not None:
            return self._group_id
        wanted = self._path.group.lower()
        for group in self._get_pages(
            f"{self._path.api_scope}/actions/runner-groups", "runner_groups"
        ):
            name = str(group.get("name", "")).lower()
            if name == wanted or (wanted == "default" and group.get("default")):
                self._group_id = int(group["id"])
                return self._group_id
        raise PathNotFoundError(
            f"organisation {self._path.org} has no runner group named {self._path.group!r}: "
            "create it or set the group option to an existing one"
        )

    def register_runner(self, name: str, labels: list[str]) -> Registration:
        """Get a just-in-time config for a new runner, or a registration token without JIT.

        One call per runner: JIT configurations are single-use, and a registration token
        shared by a slow batch could expire (it lives an hour).

        Args:
            name: the runner name.
            labels: its labels.

        Returns:
            The registration.
        """
        if self._jit_supported:
            group_id = self._runner_group_id()
            try:
                body, _, _ = self._request(
                    "POST",
                    f"{self._path.api_scope}/actions/runners/generate-jitconfig",
                    data={
                        "name": name,
                        "runner_group_id": group_id,
                        # config.sh would add the default labels; nothing else does for JIT.
                        "labels": _with_default_labels(labels, self._machine),
                        "work_folder": "_work",
                    },
                )
                body = _plain(body)
                return Registration(
                    jit_config=str(body["encoded_jit_config"]),
                    runner_id=int(body["runner"]["id"]),
                )
            except PathNotFoundError:
                # GitHub Enterprise Server before 3.10 has no JIT endpoint: fall back to the
                # registration-token flow; if the path itself is unknown, that call says so.
                logger.info("no JIT runner configuration here; using registration tokens")
                self._jit_supported = False
        body, _, _ = self._request(
            "POST", f"{self._path.api_scope}/actions/runners/registration-token"
        )
        return Registration(registration_token=str(_plain(body)["token"]))

    def delete_runner(self, runner_id: int) -> None:
        """Delete a runner registration; an unknown runner counts as deleted.

        Args:
            runner_id: GitHub's runner id.

        Raises:
            GitHubConflictError: GitHub refused because the runner is running a job.
        """
        try:
            self._request("DELETE", f"{self._path.api_scope}/actions/runners/{runner_id}")
        except PathNotFoundError:
            logger.debug("runner %s was already gone from GitHub", runner_id)

    def runner_applications(self) -> list[RunnerApplication]:
        """List the runner application downloads.

        Returns:
            The applications for every OS and architecture GitHub lists.
        """
        body = self._get_cached(f"{self._path.api_scope}/actions/runners/downloads")
        apps = []
        for item in body if isinstance(body, list) else []:
            with contextlib.suppress(KeyError, TypeError):
                apps.append(
                    RunnerApplication(
                        os=str(item["os"]),
                        architecture=str(item["architecture"]),
                        download_url=str(item["download_url"]),
                        filename=str(item["filename"]),
                        sha256_checksum=str(item.get("sha256_checksum") or ""),
                    )
                )
        return apps

    def job_for_runner(self, repository: str, run_id: int, runner_name: str) -> JobInfo | None:
        """Find the job of a workflow run that a runner ran.

        Args:
            repository: `owner/repo` of the workflow run.
            run_id: the workflow run id.
            runner_name: the runner's name.

        Returns:
            The job, or None when no job of the run names the runner.
        """
        for job in self._get_pages(f"/repos/{repository}/actions/runs/{run_id}/jobs", "jobs"):
            if job.get("runner_name") == runner_name:
                return JobInfo(
                    id=int(job["id"]),
                    created_at=str(job["created_at"]),
                    started_at=job.get("started_at"),
                    conclusion=job.get("conclusion"),
                    runner_name=job.get("runner_name"),
                )
        return None

    def rate_limit(self) -> RateLimit | None:
        """The rate limit as last reported.

        Returns:
            The rate limit, or None before any call reported it.
        """
        return self._cache.rate_limit

    def call_count(self) -> int:
        """How many HTTP requests were sent (retries and 304s included).

        Returns:
            The count.
        """
        return self._calls

    def not_modified_count(self) -> int:
        """How many requests GitHub answered with 304 Not Modified.

        Returns:
            The count.
        """
        return self._not_modified

    def save_cache(self) -> None:
        """Persist the ETag cache and the rate limit for the next run."""
        self._cache.save()


def _decode(body: Any, headers: dict[str, str]) -> Any:
    """Decode a JSON body that ghapi left as text.

    ghapi decodes JSON only when the header is spelled exactly `Content-Type`; HTTP/2 front ends
    and some proxies send `content-type`, and ghapi then hands back the raw text (a listing
    would silently read as empty).

    Args:
        body: what ghapi returned.
        headers: the response headers, with lower-case names.

    Returns:
        The decoded body.

    Raises:
        GitHubUnavailableError: a body labelled JSON that is not JSON.
    """
    if not isinstance(body, (str, bytes)) or "json" not in headers.get("content-type", ""):
        return body
    if not body.strip():
        return None
    try:
        return json.loads(body)
    except ValueError as exc:
        raise GitHubUnavailableError(f"GitHub answered malformed JSON: {exc}") from None


def _plain(value: Any) -> Any:
    """Turn ghapi's attribute dicts and fastcore lists into plain JSON values."""
    if isinstance(value, (str, bytes, int, float, bool)) or value is None:
        return value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, Iterable):
        return [_plain(v) for v in value]
    return value


def _runner(item: dict[str, Any]) -> GitHubRunner:
    """A GitHub runner object as the manager's type."""
    return GitHubRunner(
        id=int(item["id"]),
        name=str(item["name"]),
        online=item.get("status") == "online",
        busy=bool(item.get("busy")),
        labels=tuple(str(label["name"]) for label in item.get("labels", [])),
    )


def _redact_url(url: str) -> str:
    """Drop the query string of a URL before logging it."""
    return url.split("?", 1)[0]


def _describe(exc: Exception | None) -> str:
    if exc is None:
        return "no error recorded"
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code}"
    return str(getattr(exc, "reason", exc))
