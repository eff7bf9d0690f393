# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""The GitHub adapter at its library boundary: ghapi talking HTTP to the emulator on loopback.

No sleeping: the client's sleep is a recorder, and faults answer at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from github_runner_manager.errors import (
    GitHubConflictError,
    GitHubUnavailableError,
    PathNotFoundError,
    PermissionDeniedError,
    RateLimitError,
    TokenError,
)
from github_runner_manager.github import GhApiClient, ResponseCache
from github_runner_manager.models import GitHubOrg, GitHubRepo
from tests.github_emulator import Emulator

TOKEN = "ghp_unitGitHubClientToken0000000000000000"
REPO = GitHubRepo("acme", "widgets")
ORG = GitHubOrg("acme-org", "default")


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    emu = Emulator(token=TOKEN, repos=[str(REPO)], orgs=[ORG.org], offline_after=30.0)
    emu.start()
    yield emu
    emu.stop()


@pytest.fixture(autouse=True)
def _reset(emulator: Emulator) -> Iterator[None]:
    yield
    emulator.control.clear_faults()
    emulator.control.set_rate_limit(limit=5000, remaining=5000, reset_in=3600)
    emulator.control.set_token(TOKEN, ["repo", "admin:org"])
    emulator.control.settings(jit_enabled=True, lowercase_headers=False)
    for runner in emulator.control.runners():
        emulator.control.delete_runner(runner["id"])


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def client(emulator, path=REPO, token=TOKEN, cache=None, sleeps=None, retries=3) -> GhApiClient:
    return GhApiClient(
        path,
        token,
        emulator.api_url,
        timeout=5,
        retries=retries,
        cache=cache,
        sleep=sleeps if sleeps is not None else Sleeps(),
    )


@pytest.mark.parametrize("path", [REPO, ORG], ids=["repo", "org"])
def test_register_list_delete(emulator, path):
    """A JIT registration can be listed and deleted, and a second deletion is fine.

    arrange: a client for a repository or an organisation.
    act: JIT-register, list, delete twice.
    assert: the emulator agrees: a JIT config and id, listed offline with its labels, then gone.
    """
    github = client(emulator, path)

    registration = github.register_runner("unit-0-0123456789ab", ["unit", "container"])
    listed = {r.name: r for r in github.list_runners()}
    github.delete_runner(registration.runner_id or 0)
    github.delete_runner(registration.runner_id or 0)  # already gone: still fine

    assert registration.jit_config and registration.runner_id
    assert listed["unit-0-0123456789ab"].online is False
    assert {"unit", "container", "self-hosted"} <= set(listed["unit-0-0123456789ab"].labels)
    assert github.list_runners() == []


@pytest.mark.parametrize(
    ("machine", "arch"), [("x86_64", "X64"), ("aarch64", "ARM64")], ids=["x64", "arm64"]
)
def test_jit_runner_gets_the_default_labels(emulator, machine, arch):
    """A JIT-registered runner gets the default labels config.sh would add.

    arrange: a client for a given host architecture.
    act: JIT-register.
    assert: GitHub (which adds nothing to a JIT registration) lists the labels config.sh would have
        added, before the configured ones, once each.
    """
    github = GhApiClient(REPO, TOKEN, emulator.api_url, timeout=5, sleep=Sleeps(), machine=machine)

    github.register_runner("unit-0-labels000000", ["unit", "self-hosted", "container"])

    sent = [r for r in emulator.control.recent_requests() if "generate-jitconfig" in r["path"]]
    assert sent, "a JIT configuration was asked for"
    (runner,) = emulator.control.runners()
    assert [label["name"] for label in runner["labels"]] == [
        "self-hosted",
        "Linux",
        arch,
        "unit",
        "container",
    ]


def test_full_pagination(emulator):
    """Listing runners follows every page.

    arrange: 230 runners.
    act: list.
    assert: all 230 from 3 requests.
    """
    for index in range(230):
        emulator.control.add_runner(str(REPO), f"page-{index:03d}")
    emulator.control.reset_stats()

    runners = client(emulator).list_runners()

    assert len({r.name for r in runners}) == 230
    assert emulator.control.stats()["total"] == 3


def test_etag_makes_the_second_listing_free(emulator, tmp_path: Path):
    """A listing cached on disk with its ETag costs no rate limit the next time.

    arrange: a listing cached on disk.
    act: list anew with a new client on the same cache.
    assert: the same runners from a 304, no rate limit used, the token not in the cache file.
    """
    emulator.control.add_runner(str(REPO), "cached-runner", status="online")
    cache_file = tmp_path / "cache.json"
    first = client(emulator, cache=ResponseCache(cache_file))
    first.list_runners()
    first.save_cache()
    emulator.control.reset_stats()

    again = client(emulator, cache=ResponseCache(cache_file))
    runners = again.list_runners()

    assert [r.name for r in runners] == ["cached-runner"]
    stats = emulator.control.stats()
    assert stats["not_modified"] == 1 and stats["rate_limit_used"] == 0
    assert again.not_modified_count() == 1
    assert TOKEN not in cache_file.read_text()


def test_jit_falls_back_to_registration_token(emulator):
    """Without a JIT endpoint the client falls back to registration tokens and remembers it.

    arrange: no JIT endpoint (old GHES).
    act: register twice.
    assert: registration tokens, no JIT config, one 404 only.
    """
    emulator.control.settings(jit_enabled=False)
    github = client(emulator)

    first = github.register_runner("unit-0-aaaaaaaaaaaa", ["unit"])
    second = github.register_runner("unit-0-bbbbbbbbbbbb", ["unit"])

    assert first.registration_token and second.registration_token
    assert first.jit_config is None
    assert github.call_count() == 3, "one 404 from the JIT endpoint, remembered, then 2 tokens"


def test_unknown_token_is_a_token_error(emulator):
    """A token GitHub does not know is a TokenError that does not hold it.

    arrange: a wrong token.
    act: list.
    assert: TokenError (401) without the token in the message.
    """
    with pytest.raises(TokenError) as caught:
        client(emulator, token="ghp_wrong").list_runners()

    assert "ghp_wrong" not in str(caught.value)
    assert caught.value.status == 401


def test_missing_scope_is_a_permission_error(emulator):
    """A token without the needed scope is a PermissionDeniedError naming it.

    arrange: a token without admin:org.
    act: list org runners.
    assert: PermissionDeniedError naming admin:org.
    """
    emulator.control.set_token(TOKEN, ["repo"])

    with pytest.raises(PermissionDeniedError, match="admin:org"):
        client(emulator, ORG).list_runners()


def test_unknown_repository_is_a_path_error(emulator):
    """A repository the server does not know is a PathNotFoundError.

    arrange: a repository the server does not know.
    act: list.
    assert: PathNotFoundError naming it.
    """
    with pytest.raises(PathNotFoundError, match="acme/nope"):
        client(emulator, GitHubRepo("acme", "nope")).list_runners()


def test_unknown_runner_group_is_a_path_error(emulator):
    """An organisation runner group that does not exist is a PathNotFoundError.

    arrange: an org group that does not exist.
    act: register.
    assert: PathNotFoundError naming the group.
    """
    with pytest.raises(PathNotFoundError, match="gpu-runners"):
        client(emulator, GitHubOrg(ORG.org, "gpu-runners")).register_runner(
            "x-0-0123456789ab", ["x"]
        )


def test_named_runner_group_is_used(emulator):
    """A runner registers into the named organisation group, whatever its case.

    arrange: an org group, named in another case.
    act: register.
    assert: the runner joined that group.
    """
    group = emulator.control.add_runner_group(ORG.org, "builders")

    registration = client(emulator, GitHubOrg(ORG.org, "Builders")).register_runner(
        "x-0-0123456789ab", ["x"]
    )

    runner = next(r for r in emulator.control.runners() if r["id"] == registration.runner_id)
    assert runner["runner_group_id"] == group["id"]


def test_server_errors_are_retried_with_backoff(emulator):
    """Server errors are retried with backoff.

    arrange: two 502s then success.
    act: list.
    assert: backoff sleeps of 1 s and 2 s, then the (empty) result.
    """
    emulator.control.add_fault(status=502, count=2)
    sleeps = Sleeps()

    runners = client(emulator, sleeps=sleeps).list_runners()

    assert runners == []
    assert sleeps == [1.0, 2.0]


def test_server_errors_give_up_after_the_retries(emulator):
    """Server errors give up after the retries.

    arrange: 503 forever.
    act: list.
    assert: GitHubUnavailableError after exactly 3 calls.
    """
    emulator.control.add_fault(status=503, count=-1)
    github = client(emulator)

    with pytest.raises(GitHubUnavailableError):
        github.list_runners()

    assert github.call_count() == 3


def test_spent_rate_limit_stops_all_calls(emulator):
    """A spent rate limit stops all calls until it resets.

    arrange: 1 call left.
    act: list 3 times.
    assert: the 2nd raises RateLimitError with its reset time, the 3rd raises with no request; the
        remaining limit is 0.
    """
    emulator.control.set_rate_limit(remaining=1, reset_in=600)
    github = client(emulator)
    github.list_runners()

    with pytest.raises(RateLimitError) as caught:
        github.list_runners()
    calls = github.call_count()
    with pytest.raises(RateLimitError):
        github.list_runners()

    assert caught.value.reset_at is not None
    assert github.call_count() == calls, "no request is sent while the limit is spent"
    assert github.rate_limit() is not None and github.rate_limit().remaining == 0  # type: ignore[union-attr]  # checked for None just before


def test_secondary_rate_limit_honours_retry_after(emulator):
    """A secondary rate limit honours Retry-After.

    arrange: a 429 with Retry-After.
    act: list twice.
    assert: RateLimitError naming the secondary limit, then no more calls.
    """
    emulator.control.add_fault(status=429, retry_after=120)
    github = client(emulator)

    with pytest.raises(RateLimitError, match="secondary"):
        github.list_runners()
    with pytest.raises(RateLimitError):
        github.list_runners()

    assert github.call_count() == 1


def test_busy_runner_deletion_is_a_conflict(emulator):
    """Deleting a busy runner is a conflict.

    arrange: a busy runner.
    act: delete it.
    assert: GitHubConflictError (422).
    """
    runner = emulator.control.add_runner(str(REPO), "busy-one", status="online", busy=True)

    with pytest.raises(GitHubConflictError):
        client(emulator).delete_runner(runner["id"])


def test_runner_downloads_list_one_linux_x64_entry_with_a_checksum(emulator):
    """The runner downloads list one linux x64 entry with a checksum.

    arrange: the emulator.
    act: list the runner downloads.
    assert: one linux x64 entry with a SHA-256 checksum and the emulator's runner version.
    """
    apps = client(emulator).runner_applications()

    linux = [a for a in apps if a.os == "linux" and a.architecture == "x64"]
    assert len(linux) == 1
    assert len(linux[0].sha256_checksum) == 64
    assert linux[0].version == emulator.control.settings()["runner_version"]


@pytest.mark.parametrize("path", [REPO, ORG], ids=["repo", "org"])
def test_lowercase_header_names_decode_the_same(emulator, path):
    """Lower-case response header names are decoded the same.

    arrange: the server sends lower-case header names (as HTTP/2 front ends do).
    act: register, list, look up, download list, delete.
    assert: every answer is decoded, including the rate limit.
    """
    emulator.control.settings(lowercase_headers=True)
    github = client(emulator, path)

    registration = github.register_runner("unit-0-00000000cafe", ["unit"])
    listed = github.list_runners()
    found = github.get_runner(registration.runner_id or 0)
    by_name = github.find_runner("unit-0-00000000cafe")
    applications = github.runner_applications()
    github.delete_runner(registration.runner_id or 0)

    assert registration.jit_config and registration.runner_id
    assert [r.name for r in listed] == ["unit-0-00000000cafe"]
    assert found is not None and found.id == registration.runner_id
    assert by_name is not None and by_name.id == registration.runner_id
    assert {a.os for a in applications} >= {"linux"}
    assert github.list_runners() == []
    rate = github.rate_limit()
    assert rate is not None and rate.remaining < 5000


def test_json_bodies_are_sent_as_json(emulator):
    """Request bodies are sent labelled as JSON.

    arrange: a client.
    act: JIT-register.
    assert: the body is labelled application/json.
    """
    before = len(emulator.control.recent_requests())
    client(emulator).register_runner("unit-0-0000000000aa", ["unit"])

    posts = [
        r for r in emulator.control.recent_requests()[before:] if r["route"].startswith("POST")
    ]

    assert [r["content_type"] for r in posts] == ["application/json"]


def test_runner_lookup_by_id_and_name(emulator):
    """A runner is found by id and by name, and unknown ones are None.

    arrange: one runner.
    act: look it up by id and name, and an unknown id and name.
    assert: the runner for the known ones, None for the others.
    """
    github = client(emulator)
    runner_id = github.register_runner("unit-0-0000000000bb", ["unit"]).runner_id or 0

    found, by_name = github.get_runner(runner_id), github.find_runner("unit-0-0000000000bb")

    assert found is not None and found.name == "unit-0-0000000000bb"
    assert github.get_runner(runner_id + 1000) is None
    assert by_name is not None and by_name.id == runner_id
    assert github.find_runner("unit-0-000000000000") is None
