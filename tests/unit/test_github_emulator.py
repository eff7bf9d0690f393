# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.

"""In-process tests of the GitHub API emulator over HTTP on 127.0.0.1 (no LXD)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.github_emulator import Emulator, EmulatorControl, EmulatorControlError
from tests.github_emulator.simulated_runner import (
    RunnerProtocolError,
    SimulatedRunner,
    decode_jit_config,
)

TOKEN = "ghp_unitTestToken"
REPO = "owner/repo"
ORG = "org"
REPO_ROOT = Path(__file__).resolve().parents[2]


class Answer:
    def __init__(self, status: int, headers: Any, raw: bytes):
        self.status = status
        self.headers = headers
        self.raw = raw
        self.body: Any = json.loads(raw) if raw else None


def call(
    emu: Emulator,
    method: str,
    path: str,
    body: Any = None,
    token: str | None = TOKEN,
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
    scheme: str = "token",
) -> Answer:
    """One request to the emulator's REST API."""
    url = path if path.startswith("http") else f"{emu.api_url}{path}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    if token is not None:
        request.add_header("Authorization", f"{scheme} {token}")
    for key, value in (headers or {}).items():
        request.add_header(key, value)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return Answer(answer.status, answer.headers, answer.read())
    except urllib.error.HTTPError as exc:
        return Answer(exc.code, exc.headers, exc.read())


@pytest.fixture
def emu() -> Iterator[Emulator]:
    emulator = Emulator(token=TOKEN, repos=[REPO], orgs=[ORG], offline_after=5.0)
    emulator.start()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def control(emu: Emulator) -> EmulatorControl:
    return emu.control


def reg_token(
    emu: Emulator, scope_path: str = f"/repos/{REPO}", kind: str = "registration"
) -> str:
    answer = call(emu, "POST", f"{scope_path}/actions/runners/{kind}-token")
    assert answer.status == 201, answer.body
    return answer.body["token"]


def online_runner(
    emu: Emulator, name: str, labels: tuple[str, ...] = (), scope: str = REPO
) -> SimulatedRunner:
    scope_path = f"/repos/{scope}" if "/" in scope else f"/orgs/{scope}"
    runner = SimulatedRunner.register(
        emu.url, f"{emu.url}/{scope}", reg_token(emu, scope_path), name, labels
    )
    runner.open_session()
    return runner


# --- process and binding ---------------------------------------------------------------------


ALL_INTERFACES = "0.0.0.0"  # noqa: S104 - the address the emulator must refuse


@pytest.mark.parametrize("host", [ALL_INTERFACES, "10.1.2.3", "192.168.0.1", "example.com", "::"])
def test_refuses_non_loopback_hosts(host: str) -> None:
    """The emulator refuses to listen on anything but loopback.

    arrange: all interfaces, private addresses, a name, or "::".
    act: create an emulator on that host.
    assert: a ValueError mentions loopback.
    """
    with pytest.raises(ValueError, match="loopback"):
        Emulator(token=TOKEN, host=host)


def test_properties_and_restart_guard(emu: Emulator) -> None:
    """The emulator's URLs point at its loopback port, and it cannot be started twice.

    arrange: a started emulator.
    act: read its URL, API URL and port, then start it again.
    assert: the URLs are on 127.0.0.1 and its port (API under /api/v3), and the second start raises
        RuntimeError.
    """
    assert emu.url == f"http://127.0.0.1:{emu.port}"
    assert emu.api_url == f"{emu.url}/api/v3"
    assert emu.port > 0
    with pytest.raises(RuntimeError):
        emu.start()


def test_ipv6_loopback() -> None:
    """The emulator serves on the IPv6 loopback.

    arrange: an emulator on ::1 (skipped without IPv6 or if ::1 cannot be bound).
    act: list a repository's runners through it.
    assert: the URL is http://[::1]:port and the listing answers 200.
    """
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this host")
    try:
        emulator = Emulator(token=TOKEN, repos=[REPO], host="::1")
        emulator.start()
    except OSError as exc:
        pytest.skip(f"cannot bind ::1: {exc}")
    try:
        assert emulator.url.startswith("http://[::1]:")
        assert call(emulator, "GET", f"/repos/{REPO}/actions/runners").status == 200
    finally:
        emulator.stop()


def test_command_line_prints_ready_and_stops_on_sigterm() -> None:
    """The emulator's command line prints its URL when ready and stops cleanly on SIGTERM.

    arrange: the emulator started as a process with a token, a repository, an organisation and a
        rate limit of 7.
    act: read its first line, list the organisation's runners at its URL, then send SIGTERM.
    assert: it printed "ready" with a loopback URL, answers with the rate limit of 7, exits 0 and
        prints nothing more.
    """
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "tests.github_emulator", "--port", "0", "--token", TOKEN),
            *("--repo", REPO, "--org", ORG, "--rate-limit", "7"),
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        assert line.startswith("ready http://127.0.0.1:"), line
        url = line.split(" ", 1)[1]
        request = urllib.request.Request(f"{url}/api/v3/orgs/{ORG}/actions/runners")
        request.add_header("Authorization", f"Bearer {TOKEN}")
        with urllib.request.urlopen(request, timeout=5) as answer:
            assert answer.headers["X-RateLimit-Limit"] == "7"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        assert process.stdout.read() == ""
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_command_line_refuses_non_loopback() -> None:
    """The emulator's command line refuses a non-loopback host.

    arrange: the command line with --host on all interfaces.
    act: run it.
    assert: it exits non-zero, mentions loopback on stderr and never prints ready.
    """
    result = subprocess.run(
        [sys.executable, "-m", "tests.github_emulator", "--host", ALL_INTERFACES, "--token", "t"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        check=False,
    )
    assert result.returncode != 0
    assert "loopback" in result.stderr
    assert "ready" not in result.stdout


# --- authentication, scopes, existence -----------------------------------------------------


def test_missing_and_bad_credentials(emu: Emulator, control: EmulatorControl) -> None:
    """Missing, wrong and revoked tokens get GitHub's 401 answers.

    arrange: an emulator with one token.
    act: list runners without a token, with a wrong one, with the Bearer scheme, and after revoking
        the token.
    assert: 401 "Requires authentication" without rate-limit headers; 401 "Bad credentials" with
        GitHub's body; 200 with Bearer; 401 once revoked.
    """
    missing = call(emu, "GET", f"/repos/{REPO}/actions/runners", token=None)
    assert missing.status == 401
    assert missing.body["message"] == "Requires authentication"
    assert "X-RateLimit-Remaining" not in missing.headers
    bad = call(emu, "GET", f"/repos/{REPO}/actions/runners", token="ghp_wrong")
    assert bad.status == 401
    assert bad.body == {
        "message": "Bad credentials",
        "documentation_url": "https://docs.github.com/rest",
        "status": "401",
    }
    assert call(emu, "GET", f"/repos/{REPO}/actions/runners", scheme="Bearer").status == 200
    control.revoke_token(TOKEN)
    assert call(emu, "GET", f"/repos/{REPO}/actions/runners").status == 401


def test_scopes(emu: Emulator, control: EmulatorControl) -> None:
    """A classic token's scopes decide which endpoints it may use, as on GitHub.

    arrange: one token with only repo and one with only admin:org.
    act: list a repository's and an organisation's runners and ask a repository registration token
        with each.
    assert: each gets 200 within its scope; outside it 403 "Resource not accessible by personal
        access token" with the accepted and granted scope headers.
    """
    control.set_token("ghp_repoOnly", ["repo"])
    control.set_token("ghp_orgOnly", ["admin:org"])
    ok = call(emu, "GET", f"/repos/{REPO}/actions/runners", token="ghp_repoOnly")
    assert ok.status == 200
    assert ok.headers["X-OAuth-Scopes"] == "repo"
    denied = call(emu, "GET", f"/orgs/{ORG}/actions/runners", token="ghp_repoOnly")
    assert denied.status == 403
    assert denied.body["message"] == "Resource not accessible by personal access token"
    assert denied.headers["X-Accepted-OAuth-Scopes"] == "admin:org"
    assert denied.headers["X-OAuth-Scopes"] == "repo"
    assert call(emu, "GET", f"/orgs/{ORG}/actions/runners", token="ghp_orgOnly").status == 200
    denied = call(
        emu, "POST", f"/repos/{REPO}/actions/runners/registration-token", token="ghp_orgOnly"
    )
    assert denied.status == 403
    assert denied.headers["X-Accepted-OAuth-Scopes"] == "repo"


def test_unknown_repo_org_and_route(emu: Emulator) -> None:
    """Unknown repositories, organisations, routes and runners are 404 Not Found.

    arrange: an emulator with one repository and one organisation.
    act: GET unknown repositories, organisations, a route and a runner id; then a repository of the
        organisation and the repository in other letter case.
    assert: 404 "Not Found" for each unknown; 200 for the organisation's repository and for the
        other case.
    """
    for path in (
        "/repos/owner/other/actions/runners",
        "/repos/nobody/repo/actions/runners",
        "/orgs/nobody/actions/runners",
        "/orgs/nobody/actions/runner-groups",
        "/repos/owner/repo/not-an-endpoint",
        f"/repos/{REPO}/actions/runners/999",
    ):
        answer = call(emu, "GET", path)
        assert answer.status == 404, path
        assert answer.body["message"] == "Not Found"
    assert call(emu, "GET", f"/repos/{ORG}/anything/actions/runners").status == 200
    assert call(emu, "GET", "/repos/OWNER/Repo/actions/runners").status == 200


# --- pagination, ETags, rate limits, faults -------------------------------------------------


def test_pagination_and_link_header(emu: Emulator, control: EmulatorControl) -> None:
    """Runner listings paginate with GitHub's Link header.

    arrange: five runners on a repository.
    act: list with per_page 2 on each page, follow the next links, and list with no page size, a
        size of 1000, a name and a page past the end.
    assert: the totals, pages and Link relations (next, prev, last, first) match GitHub's;
        following next visits each runner once; no Link on a single page; the name filters; a page
        past the end is empty.
    """
    for index in range(5):
        control.add_runner(REPO, f"ghost-{index}")
    first = call(emu, "GET", f"/repos/{REPO}/actions/runners?per_page=2")
    assert first.body["total_count"] == 5
    assert [r["name"] for r in first.body["runners"]] == ["ghost-0", "ghost-1"]
    base = f"{emu.api_url}/repos/{REPO}/actions/runners"
    assert first.headers["Link"] == (
        f'<{base}?per_page=2&page=2>; rel="next", <{base}?per_page=2&page=3>; rel="last"'
    )
    middle = call(emu, "GET", f"/repos/{REPO}/actions/runners?per_page=2&page=2")
    assert middle.headers["Link"] == (
        f'<{base}?per_page=2&page=1>; rel="prev", <{base}?per_page=2&page=3>; rel="next", '
        f'<{base}?per_page=2&page=3>; rel="last", <{base}?per_page=2&page=1>; rel="first"'
    )
    last = call(emu, "GET", f"/repos/{REPO}/actions/runners?per_page=2&page=3")
    assert [r["name"] for r in last.body["runners"]] == ["ghost-4"]
    assert 'rel="next"' not in last.headers["Link"]
    assert 'rel="prev"' in last.headers["Link"]
    # Following the links from page 1 visits every runner once.
    names, url = [], f"{base}?per_page=2"
    while url:
        page = call(emu, "GET", url)
        names += [r["name"] for r in page.body["runners"]]
        links = {
            part.split("; ")[1][5:-1]: part.split("; ")[0][1:-1]
            for part in page.headers.get("Link", "").split(", ")
            if part
        }
        url = links.get("next", "")
    assert names == [f"ghost-{i}" for i in range(5)]
    single = call(emu, "GET", f"/repos/{REPO}/actions/runners")
    assert single.body["total_count"] == 5 and "Link" not in single.headers
    capped = call(emu, "GET", f"/repos/{REPO}/actions/runners?per_page=1000")
    assert len(capped.body["runners"]) == 5
    named = call(emu, "GET", f"/repos/{REPO}/actions/runners?name=ghost-3")
    assert named.body["total_count"] == 1 and named.body["runners"][0]["name"] == "ghost-3"
    beyond = call(emu, "GET", f"/repos/{REPO}/actions/runners?page=9")
    assert beyond.body == {"total_count": 5, "runners": []}


def test_etag_304_costs_no_rate_limit(emu: Emulator, control: EmulatorControl) -> None:
    """A conditional request with the ETag gets 304 and costs no rate limit.

    arrange: a first listing and its weak ETag, and the stats reset.
    act: list again with If-None-Match, then again after a runner is added.
    assert: 304 with no body, the same ETag and remaining count, counted as not modified; after the
        change 200 with a new ETag and one less remaining.
    """
    path = f"/repos/{REPO}/actions/runners"
    first = call(emu, "GET", path)
    etag = first.headers["ETag"]
    assert etag.startswith('W/"')
    remaining = int(first.headers["X-RateLimit-Remaining"])
    control.reset_stats()
    again = call(emu, "GET", path, headers={"If-None-Match": etag})
    assert again.status == 304
    assert again.raw == b""
    assert int(again.headers["X-RateLimit-Remaining"]) == remaining
    assert again.headers["ETag"] == etag
    stats = control.stats()
    assert stats["not_modified"] == 1
    assert stats["rate_limit_used"] == 0
    assert stats["by_route"] == {"GET /repos/{owner}/{repo}/actions/runners": 1}
    control.add_runner(REPO, "changed")
    changed = call(emu, "GET", path, headers={"If-None-Match": etag})
    assert changed.status == 200
    assert changed.headers["ETag"] != etag
    assert int(changed.headers["X-RateLimit-Remaining"]) == remaining - 1


def test_rate_limit_exhaustion(emu: Emulator, control: EmulatorControl) -> None:
    """An exhausted rate limit gets 403 until it resets.

    arrange: a rate limit of 10 with 2 remaining, resetting in 100 seconds.
    act: list runners three times, read /rate_limit, then move the reset to the past and list
        again.
    assert: the rate-limit headers count down to 0; the third call is 403 "API rate limit
        exceeded"; /rate_limit shows 0 remaining and 10 used; after the reset 9 remain.
    """
    control.set_rate_limit(limit=10, remaining=2, reset_in=100)
    path = f"/orgs/{ORG}/actions/runners"
    first = call(emu, "GET", path)
    assert first.headers["X-RateLimit-Limit"] == "10"
    assert first.headers["X-RateLimit-Remaining"] == "1"
    assert first.headers["X-RateLimit-Used"] == "9"
    assert first.headers["X-RateLimit-Resource"] == "core"
    reset = int(first.headers["X-RateLimit-Reset"])
    assert 0 < reset - time.time() <= 101
    assert call(emu, "GET", path).headers["X-RateLimit-Remaining"] == "0"
    spent = call(emu, "GET", path)
    assert spent.status == 403
    assert spent.body["message"].startswith("API rate limit exceeded")
    assert spent.headers["X-RateLimit-Remaining"] == "0"
    limits = call(emu, "GET", "/rate_limit")
    assert limits.status == 200
    assert limits.body["rate"]["remaining"] == 0
    assert limits.body["resources"]["core"]["used"] == 10
    assert control.stats()["rate_limit_used"] == 2
    control.set_rate_limit(reset_in=-1)
    refreshed = call(emu, "GET", path)
    assert refreshed.status == 200
    assert refreshed.headers["X-RateLimit-Remaining"] == "9"


def test_faults(emu: Emulator, control: EmulatorControl) -> None:
    """Injected faults answer with their status, filters, Retry-After, body and delay.

    arrange: an emulator and a repository listing path.
    act: inject two 502s, a POST-only 503, a 429 and a custom 403 with Retry-After, a delay, and a
        fault forever; then clear them and inject a 200 fault.
    assert: each fault answers as set, only for its method and path and as many times as set; the
        delay times a client out; clearing restores 200; nine faults fired; a 200 fault is refused
        with 422.
    """
    path = f"/repos/{REPO}/actions/runners"
    control.add_fault(status=502, count=2, path=r"/actions/runners$", method="GET")
    first, second = call(emu, "GET", path), call(emu, "GET", path)
    assert (first.status, second.status) == (502, 502)
    assert first.body["message"] == "Server Error"
    assert "X-RateLimit-Remaining" not in first.headers
    assert call(emu, "GET", path).status == 200
    # Method and path filters.
    control.add_fault(status=503, method="POST")
    assert call(emu, "GET", path).status == 200
    assert call(emu, "POST", f"{path}/registration-token").status == 503
    # A secondary rate limit.
    control.add_fault(status=429, retry_after=7)
    limited = call(emu, "GET", path)
    assert limited.status == 429
    assert limited.headers["Retry-After"] == "7"
    assert "secondary rate limit" in limited.body["message"]
    control.add_fault(status=403, retry_after=3, body={"message": "custom"})
    custom = call(emu, "GET", path)
    assert (custom.status, custom.body, custom.headers["Retry-After"]) == (
        403,
        {"message": "custom"},
        "3",
    )
    # A slow answer: the client times out, the next request is fast again.
    control.add_fault(delay=0.5)
    with pytest.raises((TimeoutError, urllib.error.URLError)):
        call(emu, "GET", path, timeout=0.1)
    started = time.monotonic()
    assert call(emu, "GET", path).status == 200
    assert time.monotonic() - started < 0.4
    # Forever until cleared.
    control.add_fault(status=500, count=-1)
    assert [call(emu, "GET", path).status for _ in range(3)] == [500, 500, 500]
    assert len(control.state()["faults"]) == 1
    control.clear_faults()
    assert call(emu, "GET", path).status == 200
    assert control.stats()["faults_fired"] == 9
    with pytest.raises(EmulatorControlError) as error:
        control.add_fault(status=200)
    assert error.value.status == 422


def test_fault_on_download_only_with_explicit_path(
    emu: Emulator, control: EmulatorControl
) -> None:
    """A fault hits a runner download only when its path names the downloads.

    arrange: the download URL of a runner application.
    act: download it with a general 500 fault, then with a 503 fault on the downloads path.
    assert: the first download succeeds; the second fails with 503.
    """
    url = control.downloads()[0]["download_url"]
    control.add_fault(status=500, count=-1)
    with urllib.request.urlopen(url, timeout=5) as answer:
        assert answer.status == 200
    control.clear_faults()
    control.add_fault(status=503, path="/_emulator/downloads/")
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(url, timeout=5)
    assert error.value.code == 503


def test_stats_by_route(emu: Emulator, control: EmulatorControl) -> None:
    """The stats count requests by route template, status and rate limit.

    arrange: the stats reset.
    act: make six requests over four routes and an unknown path, then reset again.
    assert: counts by route template (unknown as GET <unknown>), total 6, 5 counted against the
        rate limit, 4 times 200 and 2 times 404; the last request's path is recorded; reset zeroes
        the total.
    """
    control.reset_stats()
    call(emu, "GET", f"/repos/{REPO}/actions/runners")
    call(emu, "GET", f"/orgs/{ORG}/actions/runners")
    call(emu, "GET", f"/orgs/{ORG}/actions/runners")
    call(emu, "DELETE", f"/orgs/{ORG}/actions/runners/77")
    call(emu, "GET", "/rate_limit")
    call(emu, "GET", "/nowhere")
    stats = control.stats()
    assert stats["by_route"] == {
        "GET /repos/{owner}/{repo}/actions/runners": 1,
        "GET /orgs/{org}/actions/runners": 2,
        "DELETE /orgs/{org}/actions/runners/{runner_id}": 1,
        "GET /rate_limit": 1,
        "GET <unknown>": 1,
    }
    assert stats["total"] == 6
    assert stats["rate_limit_used"] == 5
    assert stats["by_status"] == {"200": 4, "404": 2}
    assert control.recent_requests()[-1]["path"] == "/api/v3/nowhere"
    control.reset_stats()
    assert control.stats()["total"] == 0


# --- registration, JIT and the runner lifecycle -----------------------------------------------


def test_registration_flow(emu: Emulator, control: EmulatorControl) -> None:
    """A registration token registers runners, as config.sh does, with GitHub's rules.

    arrange: a registration token for a repository.
    act: register two runners, open a session, re-register a taken name, replace it, register for
        another scope and an unknown repository, poll the replaced runner, and remove a runner.
    assert: listed offline with their ephemerality and labels, then online; a taken name is 409 and
        replace gives a new id; wrong scope 401, unknown 404; the replaced runner's poll is 404;
        removal needs a remove token.
    """
    token = call(emu, "POST", f"/repos/{REPO}/actions/runners/registration-token")
    assert token.status == 201
    assert set(token.body) == {"token", "expires_at"}
    assert token.body["expires_at"].endswith("+00:00")
    url = f"{emu.url}/{REPO}"
    runner = SimulatedRunner.register(emu.url, url, token.body["token"], "r1", ["gpu"])
    # The token can be used again until it expires.
    SimulatedRunner.register(emu.url, url, token.body["token"], "r2", ephemeral=False)
    listed = call(emu, "GET", f"/repos/{REPO}/actions/runners").body["runners"]
    assert [(r["name"], r["status"], r["ephemeral"]) for r in listed] == [
        ("r1", "offline", True),
        ("r2", "offline", False),
    ]
    assert [(lb["name"], lb["type"]) for lb in listed[0]["labels"]] == [
        ("self-hosted", "read-only"),
        ("Linux", "read-only"),
        ("X64", "read-only"),
        ("gpu", "custom"),
    ]
    assert listed[0]["version"] is None
    runner.open_session()
    got = call(emu, "GET", f"/repos/{REPO}/actions/runners/{runner.runner_id}").body
    assert (got["status"], got["busy"], got["version"]) == ("online", False, "simulated")
    # Name taken; replace; wrong scope; bad token.
    with pytest.raises(RunnerProtocolError) as error:
        SimulatedRunner.register(emu.url, url, token.body["token"], "R1")
    assert error.value.status == 409
    replaced = SimulatedRunner.register(emu.url, url, token.body["token"], "r1", replace=True)
    assert replaced.runner_id != runner.runner_id
    with pytest.raises(RunnerProtocolError) as error:
        SimulatedRunner.register(emu.url, f"{emu.url}/{ORG}", token.body["token"], "x")
    assert error.value.status == 401
    with pytest.raises(RunnerProtocolError) as error:
        SimulatedRunner.register(emu.url, f"{emu.url}/nobody/x", token.body["token"], "x")
    assert error.value.status == 404
    # The replaced runner's process learns its registration is gone.
    with pytest.raises(RunnerProtocolError) as error:
        runner.poll()
    assert error.value.status == 404
    # Remove with a remove token (not with a registration token).
    with pytest.raises(RunnerProtocolError):
        replaced.remove(url, token.body["token"])
    replaced.remove(url, reg_token(emu, kind="remove"))
    assert [r["name"] for r in control.runners(REPO)] == ["r2"]


def test_registration_token_expiry(emu: Emulator, control: EmulatorControl) -> None:
    """An expired registration token is refused.

    arrange: registration tokens that live 0.2 seconds, and one that has expired.
    act: register a runner with it.
    assert: 401.
    """
    control.settings(registration_token_ttl=0.2)
    token = reg_token(emu)
    time.sleep(0.3)
    with pytest.raises(RunnerProtocolError) as error:
        SimulatedRunner.register(emu.url, f"{emu.url}/{REPO}", token, "late")
    assert error.value.status == 401


def test_org_registration_with_runner_group(emu: Emulator, control: EmulatorControl) -> None:
    """An organisation runner registers into a named runner group.

    arrange: an organisation with a second runner group.
    act: list the groups and register an arm64 runner into the group, then into an unknown group.
    assert: the default and the new group are listed; the runner is in the group with the ARM64
        label; an unknown group is 404; the runner is not visible under a repository.
    """
    group = control.add_runner_group(ORG, "special")
    groups = call(emu, "GET", f"/orgs/{ORG}/actions/runner-groups").body
    assert groups["total_count"] == 2
    assert [(g["id"], g["name"], g["default"]) for g in groups["runner_groups"]] == [
        (1, "Default", True),
        (group["id"], "special", False),
    ]
    token = reg_token(emu, f"/orgs/{ORG}")
    runner = SimulatedRunner.register(
        emu.url, f"{emu.url}/{ORG}", token, "org-r", runner_group="special", arch="arm64"
    )
    got = call(emu, "GET", f"/orgs/{ORG}/actions/runners/{runner.runner_id}").body
    assert got["runner_group_id"] == group["id"]
    assert "ARM64" in [label["name"] for label in got["labels"]]
    with pytest.raises(RunnerProtocolError) as error:
        SimulatedRunner.register(emu.url, f"{emu.url}/{ORG}", token, "x", runner_group="nope")
    assert error.value.status == 404
    assert call(emu, "GET", f"/repos/{REPO}/actions/runners/{runner.runner_id}").status == 404


def test_jit_config(emu: Emulator, control: EmulatorControl) -> None:
    """A JIT config creates an offline runner with exactly the asked labels and starts it.

    arrange: an organisation and a JIT request body.
    act: generate a JIT config, start a runner from it, and request again with the same name, bad
        bodies, unknown groups, for a repository, and with JIT disabled.
    assert: 201 with an offline ephemeral runner with only the asked labels and the .runner and
        .credentials files; it comes online; the same name is 409, each bad body 422, an unknown
        group 404; the name is free in another scope; disabled JIT is 404.
    """
    path = f"/orgs/{ORG}/actions/runners/generate-jitconfig"
    body = {"name": "jit-1", "runner_group_id": 1, "labels": ["self-hosted", "large"]}
    answer = call(emu, "POST", path, body)
    assert answer.status == 201
    runner = answer.body["runner"]
    assert (runner["name"], runner["status"], runner["ephemeral"], runner["busy"]) == (
        "jit-1",
        "offline",
        True,
        False,
    )
    # GitHub registers a JIT runner with exactly the labels asked for: nothing is added.
    assert [(lb["name"], lb["type"]) for lb in runner["labels"]] == [
        ("self-hosted", "read-only"),
        ("large", "custom"),
    ]
    files = decode_jit_config(answer.body["encoded_jit_config"])
    assert set(files) == {".runner", ".credentials"}
    settings = files[".runner"]
    assert settings["serverUrl"] == emu.url and settings["gitHubUrl"] == f"{emu.url}/{ORG}"
    simulated = SimulatedRunner.from_jit_config(emu.url, answer.body["encoded_jit_config"])
    simulated.open_session()
    assert control.runners(ORG)[0]["status"] == "online"
    assert call(emu, "POST", path, body).status == 409
    for bad in (
        {"runner_group_id": 1, "labels": ["a"]},
        {"name": "x", "labels": ["a"]},
        {"name": "x", "runner_group_id": 1},
        {"name": "x", "runner_group_id": 1, "labels": []},
        {"name": "x", "runner_group_id": "1", "labels": ["a"]},
        {"name": "x", "runner_group_id": 1, "labels": ["a"], "work_folder": 3},
        ["not", "an", "object"],
    ):
        rejected = call(emu, "POST", path, bad)
        assert rejected.status == 422, bad
        assert rejected.body["message"].startswith("Invalid request.")
    assert call(emu, "POST", path, {**body, "name": "y", "runner_group_id": 42}).status == 404
    repo_path = f"/repos/{REPO}/actions/runners/generate-jitconfig"
    assert call(emu, "POST", repo_path, {**body, "runner_group_id": 2}).status == 404
    assert call(emu, "POST", repo_path, body).status == 201  # names are per scope
    control.settings(jit_enabled=False)
    disabled = call(emu, "POST", repo_path, {**body, "name": "other"})
    assert disabled.status == 404


def test_job_assignment_by_labels(emu: Emulator, control: EmulatorControl) -> None:
    """A queued job goes to the first idle runner whose labels match, in its scope.

    arrange: a plain, a GPU and an organisation runner, all online.
    act: queue jobs for GPU labels, for self-hosted, for windows, for the organisation label, and
        for an unknown repository.
    assert: the GPU job goes to the GPU runner (in any letter case) and the next to the plain one;
        a job nobody matches stays queued; the organisation runner takes only its organisation's
        jobs; an unknown repository is 404.
    """
    plain = online_runner(emu, "plain")
    gpu = online_runner(emu, "gpu", ("GPU", "large"))
    org_runner = online_runner(emu, "org-runner", ("org-only",), scope=ORG)
    job = control.queue_job(REPO, ["self-hosted", "linux", "gpu"], "true")
    assert (job["status"], job["runner_name"]) == ("in_progress", "gpu")
    assert plain.poll() is None
    message = gpu.poll()
    assert message is not None and message["job"]["id"] == job["id"]
    assert message["job"]["script"] == "true"
    # The first matching idle runner (by registration order) gets the next job.
    second = control.queue_job(REPO, ["self-hosted"], "true")
    assert second["runner_name"] == "plain"
    # Nobody matches: the job stays queued.
    waiting = control.queue_job(REPO, ["self-hosted", "windows"], "true")
    assert (waiting["status"], waiting["runner_id"]) == ("queued", None)
    # An organisation runner takes jobs of the organisation's repositories only.
    org_job = control.queue_job(f"{ORG}/service", ["org-only"], "true")
    assert org_job["runner_name"] == "org-runner"
    assert org_runner.poll()["job"]["repository"] == f"{ORG}/service"  # type: ignore[index]  # poll returns an untyped JSON object
    assert control.queue_job(REPO, ["org-only"], "true")["status"] == "queued"
    with pytest.raises(EmulatorControlError) as error:
        control.queue_job("stranger/repo", [], "true")
    assert error.value.status == 404


def test_job_lifecycle_busy_delete_and_ephemeral_removal(
    emu: Emulator, control: EmulatorControl
) -> None:
    """A busy runner cannot be deleted; an ephemeral runner goes away after its job.

    arrange: an online ephemeral runner that took a job.
    act: delete it while busy, complete the job as failed, read the job, its run and the runs; then
        delete an idle runner.
    assert: the busy delete is 422 and the runner stays busy; completion deletes the runner; job
        and run show the failure with the runner, group and times; the idle delete is 204 and that
        runner's poll gets 404.
    """
    runner = online_runner(emu, "eph", ("x",))
    job = control.queue_job(REPO, ["x"], "echo hi", workflow="wf", event="push")
    assert job["created_at"] <= job["started_at"]
    message = runner.poll(wait=1)
    assert message is not None
    delete_path = f"/repos/{REPO}/actions/runners/{runner.runner_id}"
    busy = call(emu, "DELETE", delete_path)
    assert busy.status == 422
    assert "still running a job" in busy.body["message"]
    got = call(emu, "GET", delete_path).body
    assert (got["busy"], got["status"]) == (True, "online")
    api_job = call(emu, "GET", f"/repos/{REPO}/actions/jobs/{job['id']}").body
    assert (api_job["status"], api_job["conclusion"], api_job["runner_name"]) == (
        "in_progress",
        None,
        "eph",
    )
    assert api_job["workflow_name"] == "wf"
    assert runner.complete(job["id"], "failure", exit_code=3, log="boom") == {"deleted": True}
    assert call(emu, "GET", delete_path).status == 404
    done = call(emu, "GET", f"/repos/{REPO}/actions/jobs/{job['id']}").body
    assert (done["status"], done["conclusion"]) == ("completed", "failure")
    assert done["completed_at"] >= done["started_at"]
    assert (done["runner_id"], done["runner_group_id"], done["runner_group_name"]) == (
        runner.runner_id,
        1,
        "Default",
    )
    run = call(emu, "GET", f"/repos/{REPO}/actions/runs/{job['run_id']}").body
    assert (run["status"], run["conclusion"], run["event"], run["name"]) == (
        "completed",
        "failure",
        "push",
        "wf",
    )
    jobs = call(emu, "GET", f"/repos/{REPO}/actions/runs/{job['run_id']}/jobs").body
    assert jobs["total_count"] == 1 and jobs["jobs"][0]["id"] == job["id"]
    runs = call(emu, "GET", f"/repos/{REPO}/actions/runs?status=completed").body
    assert [r["id"] for r in runs["workflow_runs"]] == [job["run_id"]]
    record = control.job(job["id"])
    assert (record["exit_code"], record["log"], record["script"]) == (3, "boom", "echo hi")
    assert call(emu, "GET", f"/repos/{REPO}/actions/jobs/999").status == 404
    assert call(emu, "GET", f"/repos/{ORG}/x/actions/jobs/{job['id']}").status == 404
    # An idle runner can be deleted; its process then gets 404.
    idle = online_runner(emu, "idle")
    assert call(emu, "DELETE", f"/repos/{REPO}/actions/runners/{idle.runner_id}").status == 204
    with pytest.raises(RunnerProtocolError) as error:
        idle.poll()
    assert error.value.status == 404


def test_non_ephemeral_runner_stays(emu: Emulator, control: EmulatorControl) -> None:
    """A non-ephemeral runner stays registered after its job and takes the next.

    arrange: a non-ephemeral registered runner with a job.
    act: complete the job, queue another, then complete the first job again.
    assert: it is not deleted and not busy; the next job goes to it; a second completion is 409.
    """
    token = reg_token(emu)
    runner = SimulatedRunner.register(emu.url, f"{emu.url}/{REPO}", token, "keep", ephemeral=False)
    runner.open_session()
    job = control.queue_job(REPO, [], "true")
    runner.poll()
    assert runner.complete(job["id"]) == {"deleted": False}
    assert control.runners(REPO)[0]["busy"] is False
    second = control.queue_job(REPO, [], "true")
    assert second["runner_name"] == "keep"
    with pytest.raises(RunnerProtocolError) as error:
        runner.complete(job["id"])
    assert error.value.status == 409


def test_long_poll_returns_when_job_arrives(emu: Emulator, control: EmulatorControl) -> None:
    """A runner's long poll returns as soon as a job arrives.

    arrange: an online runner polling with a 2 second wait in a thread.
    act: queue a job 0.1 seconds later.
    assert: the poll returns the job in under 1.5 seconds.
    """
    runner = online_runner(emu, "waiter")
    import threading

    results: list[Any] = []
    thread = threading.Thread(target=lambda: results.append(runner.poll(wait=2.0)))
    started = time.monotonic()
    thread.start()
    time.sleep(0.1)
    control.queue_job(REPO, [], "true")
    thread.join(timeout=5)
    assert results and results[0]["job"]["script"] == "true"
    assert time.monotonic() - started < 1.5


def test_offline_detection() -> None:
    """A runner goes offline when it stops polling and online when it polls again.

    arrange: an emulator with 0.3 seconds to offline and an online runner.
    act: wait 0.35 seconds, poll, then close the session.
    assert: online, then offline, online again after the poll, offline after closing; its poll wait
        is short enough.
    """
    with Emulator(token=TOKEN, repos=[REPO], offline_after=0.3) as emu:
        runner = online_runner(emu, "quiet")
        assert emu.control.runners()[0]["status"] == "online"
        assert runner.timings["poll_wait"] <= 0.15
        time.sleep(0.35)
        assert emu.control.runners()[0]["status"] == "offline"
        runner.poll()
        assert emu.control.runners()[0]["status"] == "online"
        runner.close_session()
        assert emu.control.runners()[0]["status"] == "offline"


def test_lost_busy_runner_fails_its_job() -> None:
    """A busy runner that goes silent has its job failed after the lost-job delay.

    arrange: an emulator with 0.2 seconds to offline and 0.4 seconds to a lost job, and a runner
        that took a job.
    act: wait until it is offline, then until the job completes.
    assert: offline but still busy with the job in progress at first; then the job fails with "lost
        communication" and the runner is idle and offline.
    """
    with Emulator(token=TOKEN, repos=[REPO], offline_after=0.2) as emu:
        emu.control.settings(lost_job_after=0.4)
        runner = online_runner(emu, "doomed")
        job = emu.control.queue_job(REPO, [], "sleep 100")
        runner.poll()
        runner.heartbeat()
        time.sleep(0.25)
        assert emu.control.runners()[0]["status"] == "offline"
        assert emu.control.runners()[0]["busy"] is True
        assert emu.control.job(job["id"])["status"] == "in_progress"
        state = emu.control.wait_for(lambda s: s["jobs"][0]["status"] == "completed", timeout=3)
        assert state["jobs"][0]["conclusion"] == "failure"
        assert "lost communication" in state["jobs"][0]["log"]
        assert [(r["name"], r["busy"], r["status"]) for r in state["runners"]] == [
            ("doomed", False, "offline")
        ]


def test_injected_runners(emu: Emulator, control: EmulatorControl) -> None:
    """Injected runners have no process: they never take jobs and are deleted like others.

    arrange: an offline injected runner and a busy online one.
    act: delete the busy one, queue a job, mark it idle and delete it, delete the other, add one to
        an unknown repository.
    assert: the busy delete is 422; the job stays queued; the idle delete is 204; none is left; the
        unknown repository is 404.
    """
    ghost = control.add_runner(REPO, "ghost", labels=["x"], status="offline")
    busy = control.add_runner(ORG, "stuck", status="online", busy=True)
    assert (ghost["registered_via"], ghost["status"]) == ("injected", "offline")
    assert call(emu, "DELETE", f"/orgs/{ORG}/actions/runners/{busy['id']}").status == 422
    # Injected runners have no process: they never get jobs.
    assert control.queue_job(f"{ORG}/r", [], "true")["status"] == "queued"
    control.update_runner(busy["id"], busy=False)
    assert call(emu, "DELETE", f"/orgs/{ORG}/actions/runners/{busy['id']}").status == 204
    control.delete_runner(ghost["id"])
    assert control.runners() == []
    with pytest.raises(EmulatorControlError) as error:
        control.add_runner("nobody/none", "x")
    assert error.value.status == 404


def test_wait_for_times_out_with_summary(control: EmulatorControl) -> None:
    """wait_for times out with a summary of the runners.

    arrange: one injected offline runner.
    act: wait for a condition that never holds, with a short timeout.
    assert: TimeoutError naming the runner, its repository and its status.
    """
    control.add_runner(REPO, "ghost")
    with pytest.raises(TimeoutError, match=r"ghost\[owner/repo\]:offline"):
        control.wait_for(lambda s: False, timeout=0.2, interval=0.05)


# --- downloads ------------------------------------------------------------------------------


def test_downloads_and_tarball(emu: Emulator, control: EmulatorControl) -> None:
    """The runner downloads list serves real tarballs with their checksums, old versions included.

    arrange: an emulator with runner version 2.330.0.
    act: list the downloads, fetch the Linux x64 tarball, change the runner version and list again,
        fetch the old one and an unknown name.
    assert: four platforms; the tarball matches its checksum and holds config.sh, an executable
        run.sh and the listener with the version; organisation and repository lists agree; the new
        version has a new file and checksum; the old one still downloads; an unknown name is 404.
    """
    apps = call(emu, "GET", f"/repos/{REPO}/actions/runners/downloads").body
    assert {(a["os"], a["architecture"]) for a in apps} == {
        ("linux", "x64"),
        ("linux", "arm64"),
        ("osx", "x64"),
        ("win", "x64"),
    }
    linux = next(a for a in apps if a["os"] == "linux" and a["architecture"] == "x64")
    assert linux["filename"] == "actions-runner-linux-x64-2.330.0.tar.gz"
    assert linux["download_url"] == f"{emu.url}/_emulator/downloads/{linux['filename']}"
    with urllib.request.urlopen(linux["download_url"], timeout=5) as answer:
        data = answer.read()
    assert hashlib.sha256(data).hexdigest() == linux["sha256_checksum"]
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        members = {m.name: m for m in archive.getmembers()}
        info = json.load(archive.extractfile("./bin/runner.json"))  # type: ignore[arg-type]  # the member exists (asserted below)
    assert {"./config.sh", "./run.sh", "./bin/Runner.Listener"} <= set(members)
    assert members["./run.sh"].mode & 0o111
    assert info == {"version": "2.330.0", "os": "linux", "arch": "x64"}
    assert call(emu, "GET", f"/orgs/{ORG}/actions/runners/downloads").body == apps
    control.settings(runner_version="2.331.1")
    newer = call(emu, "GET", f"/repos/{REPO}/actions/runners/downloads").body
    newer_linux = next(a for a in newer if a["os"] == "linux" and a["architecture"] == "x64")
    assert newer_linux["filename"] == "actions-runner-linux-x64-2.331.1.tar.gz"
    assert newer_linux["sha256_checksum"] != linux["sha256_checksum"]
    # Old versions stay downloadable, as GitHub's releases do; unknown names are 404.
    with urllib.request.urlopen(linux["download_url"], timeout=5) as answer:
        assert hashlib.sha256(answer.read()).hexdigest() == linux["sha256_checksum"]
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(f"{emu.url}/_emulator/downloads/evil.tar.gz", timeout=5)
    assert error.value.code == 404


def test_settings_validation(control: EmulatorControl) -> None:
    """The emulator's settings refuse unknown keys and wrong values.

    arrange: the default settings (JIT enabled).
    act: set an unknown key, a text JIT flag and the runner version "latest".
    assert: each is refused with 422.
    """
    assert control.settings()["jit_enabled"] is True
    for bad in ({"nope": 1}, {"jit_enabled": "yes"}, {"runner_version": "latest"}):
        with pytest.raises(EmulatorControlError) as error:
            control.settings(**bad)
        assert error.value.status == 422


def test_fault_after_the_request_took_effect(emu: Emulator, control: EmulatorControl) -> None:
    """A fault in after mode answers an error once the request has taken effect.

    arrange: a 502 fault after the JIT config request.
    act: generate a JIT config, then again; then add after-faults without a status and with an
        unknown mode.
    assert: the first is 502 but the runner exists; the retry is 409; both bad faults are refused.
    """
    path = f"/repos/{REPO}/actions/runners/generate-jitconfig"
    body = {"name": "half-made", "runner_group_id": 1, "labels": ["x"]}
    control.add_fault(status=502, path="generate-jitconfig", method="POST", mode="after")

    answer = call(emu, "POST", path, body)

    assert answer.status == 502
    assert [r["name"] for r in control.runners()] == ["half-made"], "GitHub made the runner"
    assert call(emu, "POST", path, body).status == 409, "a retry finds the name taken"
    with pytest.raises(EmulatorControlError):
        control.add_fault(mode="after")  # an 'after' fault needs a status
    with pytest.raises(EmulatorControlError):
        control.add_fault(status=500, mode="sideways")


def test_fault_dropping_a_page(emu: Emulator, control: EmulatorControl) -> None:
    """A drop-page fault answers a listing with its total but no runners, once.

    arrange: two online runners and a drop-page fault on the listing.
    act: list the runners twice.
    assert: the first answer has total 2 and no runners; the second lists both.
    """
    for name in ("one", "two"):
        control.add_runner(REPO, name, status="online")
    path = f"/repos/{REPO}/actions/runners"
    control.add_fault(path=r"/actions/runners$", method="GET", mode="drop-page")

    dropped = call(emu, "GET", path)
    whole = call(emu, "GET", path)

    assert dropped.status == 200
    assert dropped.body == {"total_count": 2, "runners": []}
    assert [r["name"] for r in whole.body["runners"]] == ["one", "two"]


def test_lowercase_header_names(emu: Emulator, control: EmulatorControl) -> None:
    """The emulator can send lower-case header names, as an HTTP/2 front end does.

    arrange: an emulator with canonical header names.
    act: list runners, then switch on lower-case headers and list again.
    assert: Content-Type first; then every header name is lower case, content-type and
        x-ratelimit-remaining among them.
    """
    path = f"/repos/{REPO}/actions/runners"
    with urllib.request.urlopen(
        urllib.request.Request(
            f"{emu.api_url}{path}", headers={"Authorization": f"token {TOKEN}"}
        ),
        timeout=5,
    ) as answer:
        assert "Content-Type" in answer.headers.keys()  # noqa: SIM118 - spelling matters here
    control.settings(lowercase_headers=True)
    with urllib.request.urlopen(
        urllib.request.Request(
            f"{emu.api_url}{path}", headers={"Authorization": f"token {TOKEN}"}
        ),
        timeout=5,
    ) as answer:
        names = list(answer.headers.keys())
    assert "content-type" in names and "x-ratelimit-remaining" in names
    assert all(name == name.lower() for name in names), names


def test_killed_jobs_runner_stays_busy_for_lost_job_after() -> None:
    """A runner killed during a job stays busy until the lost-job delay has passed.

    arrange: a runner that took a job and then went silent (offline after 0.2 seconds, lost job
        after 1.5).
    act: delete it after 0.5 seconds, then after it is no longer busy.
    assert: the first delete is 422 with the runner still busy; once idle the delete is 204.
    """
    with Emulator(token=TOKEN, repos=[REPO], offline_after=0.2) as emu:
        emu.control.settings(lost_job_after=1.5)
        runner = online_runner(emu, "held")
        emu.control.queue_job(REPO, [], "sleep 100")
        runner.poll()
        runner_id = emu.control.runners()[0]["id"]
        time.sleep(0.5)  # the process is gone: offline, but GitHub still counts the job

        held = call(emu, "DELETE", f"/repos/{REPO}/actions/runners/{runner_id}")
        assert held.status == 422
        assert emu.control.runners()[0]["busy"] is True
        emu.control.wait_for(lambda s: not s["runners"][0]["busy"], timeout=3)
        assert call(emu, "DELETE", f"/repos/{REPO}/actions/runners/{runner_id}").status == 204
