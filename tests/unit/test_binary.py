# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""The runner application cache: download, verification, fallback and replacement."""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import os
import tarfile
import urllib.error
from pathlib import Path
from typing import BinaryIO

import pytest

from github_runner_manager.binary import RunnerBinaryCache, runner_architecture
from github_runner_manager.errors import (
    GitHubUnavailableError,
    RateLimitError,
    RunnerBinaryError,
)
from github_runner_manager.models import RunnerApplication

from .fakes import FakeGitHub


def runner_tarball(version: str) -> bytes:
    """A small but real runner tarball (gzip-compressed tar)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        content = f"runner {version}\n".encode()
        info = tarfile.TarInfo("bin/Runner.Listener")
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def application(
    version: str, payload: bytes, arch: str = "x64", checksum: str | None = None
) -> RunnerApplication:
    filename = f"actions-runner-linux-{arch}-{version}.tar.gz"
    return RunnerApplication(
        "linux",
        arch,
        f"https://example.invalid/{filename}",
        filename,
        hashlib.sha256(payload).hexdigest() if checksum is None else checksum,
    )


class FakeOpener:
    """Serves fixed bodies by URL from memory, and remembers what was asked."""

    def __init__(self) -> None:
        self.bodies: dict[str, bytes] = {}
        self.opened: list[tuple[str, float]] = []
        self.fail: Exception | None = None

    def serve(self, app: RunnerApplication, body: bytes) -> None:
        self.bodies[app.download_url] = body

    def __call__(self, url: str, timeout: float) -> BinaryIO:
        self.opened.append((url, timeout))
        if self.fail is not None:
            raise self.fail
        return io.BytesIO(self.bodies[url])


@pytest.fixture
def opener() -> FakeOpener:
    return FakeOpener()


@pytest.fixture
def cache_dir(tmp_path) -> Path:
    return tmp_path / "runner-binary"


@pytest.fixture
def cache(cache_dir, github, opener) -> RunnerBinaryCache:
    return RunnerBinaryCache(cache_dir, github, "x64", timeout=42.0, opener=opener)


def offer(github: FakeGitHub, opener: FakeOpener, version: str, body: bytes | None = None):
    """List one linux/x64 application on the fake GitHub (beside an osx one) and serve it."""
    payload = runner_tarball(version)
    app = application(version, payload)
    github.applications = [github.applications[0], app]
    opener.serve(app, payload if body is None else body)
    return app, payload


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []


def test_downloads_and_verifies_the_listed_runner(cache, cache_dir, github, opener):
    """The listed runner is downloaded, verified and cached with its metadata.

    arrange: GitHub lists a runner, nothing cached.
    act: ensure.
    assert: the verified tarball is cached (mode 0644) beside its metadata, downloaded once with
        the timeout, and reported as updated; cached() then finds it, not updated.
    """
    app, payload = offer(github, opener, "2.330.0")

    cached = cache.ensure()

    assert cached.updated is True
    assert cached.application == app
    assert cached.path == cache_dir / app.filename
    assert cached.path.read_bytes() == payload
    assert cached.path.stat().st_mode & 0o777 == 0o644
    assert opener.opened == [(app.download_url, 42.0)]
    assert leftovers(cache_dir) == [app.filename, "runner-application.json"]
    again = cache.cached()
    assert again is not None and again.application == app and again.updated is False


def test_cached_runner_is_not_downloaded_again(cache, github, opener):
    """A runner already cached is not downloaded again.

    arrange: the listed runner is cached.
    act: ensure again.
    assert: no second download, not updated.
    """
    app, _ = offer(github, opener, "2.330.0")
    cache.ensure()

    cached = cache.ensure()

    assert cached.updated is False
    assert cached.application == app
    assert len(opener.opened) == 1


def test_checksum_listed_in_upper_case_is_accepted(cache, github, opener):
    """A SHA-256 listed in upper case still matches.

    arrange: GitHub lists the SHA-256 in upper case.
    act: ensure.
    assert: the tarball is downloaded and cached.
    """
    payload = runner_tarball("2.330.0")
    app = application("2.330.0", payload, checksum=hashlib.sha256(payload).hexdigest().upper())
    github.applications = [app]
    opener.serve(app, payload)

    assert cache.ensure().path.read_bytes() == payload


def test_wrong_checksum_is_refused_and_nothing_is_kept(cache, cache_dir, github, opener):
    """A download that does not match the listed checksum is refused and nothing is kept.

    arrange: the download differs from the listed SHA-256.
    act: ensure.
    assert: RunnerBinaryError, no tarball, no temporary file, nothing cached.
    """
    offer(github, opener, "2.330.0", body=runner_tarball("tampered"))

    with pytest.raises(RunnerBinaryError, match="checksum"):
        cache.ensure()

    assert leftovers(cache_dir) == []
    assert cache.cached() is None


def test_file_that_is_not_a_tar_archive_is_refused(cache, cache_dir, github):
    """A listed file that is not a tar archive is refused even with the right checksum.

    arrange: the listed file (checksum right) is not a tar archive.
    act: ensure.
    assert: RunnerBinaryError, nothing left, nothing cached.
    """
    body = b"<html>not a runner</html>"
    app = application("2.330.0", body)
    github.applications = [app]
    opener = FakeOpener()
    opener.serve(app, body)
    cache = RunnerBinaryCache(cache_dir, github, "x64", opener=opener)

    with pytest.raises(RunnerBinaryError, match="not a tar archive"):
        cache.ensure()

    assert leftovers(cache_dir) == []
    assert cache.cached() is None


@pytest.mark.parametrize(
    "error",
    [
        GitHubUnavailableError("GitHub answered 503 three times"),
        RateLimitError("rate limit spent", reset_at=0.0),
    ],
)
def test_github_error_keeps_using_the_cached_runner(cache, github, opener, error):
    """A GitHub error while listing keeps the cached runner in use.

    arrange: a cached runner; GitHub fails to list the runner applications.
    act: ensure.
    assert: the cached one, not updated, not downloaded again.
    """
    app, payload = offer(github, opener, "2.330.0")
    cache.ensure()
    github.fail["runner_applications"] = error

    cached = cache.ensure()

    assert cached.application == app
    assert cached.updated is False
    assert cached.path.read_bytes() == payload
    assert len(opener.opened) == 1


def test_github_error_without_a_cached_runner_is_an_error(cache, github):
    """A GitHub error while listing with nothing cached is a RunnerBinaryError.

    arrange: nothing cached; GitHub fails to list (502).
    act: ensure.
    assert: RunnerBinaryError caused by the GitHub error.
    """
    github.fail["runner_applications"] = GitHubUnavailableError("GitHub answered 502")

    with pytest.raises(RunnerBinaryError, match="cannot list runner applications") as caught:
        cache.ensure()

    assert isinstance(caught.value.__cause__, GitHubUnavailableError)


def test_new_version_replaces_the_cached_one(cache, cache_dir, github, opener):
    """A newly listed version replaces the cached one.

    arrange: 2.330.0 cached; GitHub now lists 2.331.0.
    act: ensure.
    assert: the new tarball is downloaded and cached with its metadata, the old tarball deleted.
    """
    old_app, _ = offer(github, opener, "2.330.0")
    cache.ensure()
    new_app, new_payload = offer(github, opener, "2.331.0")

    cached = cache.ensure()

    assert cached.updated is True
    assert cached.application == new_app
    assert cached.path.read_bytes() == new_payload
    assert leftovers(cache_dir) == [new_app.filename, "runner-application.json"]
    assert not (cache_dir / old_app.filename).exists()
    meta = json.loads((cache_dir / "runner-application.json").read_text())
    assert meta["filename"] == new_app.filename
    assert cache.cached() == cached.__class__(path=cached.path, application=new_app)


def test_failed_update_keeps_the_old_runner_cached(cache, cache_dir, github, opener):
    """A failed update keeps the old runner cached.

    arrange: 2.330.0 cached; 2.331.0 listed but its download is tampered.
    act: ensure.
    assert: RunnerBinaryError; the old runner is still the cached one, nothing else left.
    """
    old_app, old_payload = offer(github, opener, "2.330.0")
    cache.ensure()
    offer(github, opener, "2.331.0", body=b"tampered")

    with pytest.raises(RunnerBinaryError):
        cache.ensure()

    cached = cache.cached()
    assert cached is not None and cached.application == old_app
    assert cached.path.read_bytes() == old_payload
    assert leftovers(cache_dir) == [old_app.filename, "runner-application.json"]


def test_no_checksum_listed_is_refused_without_downloading(cache, github, opener):
    """A listed runner without a checksum is refused before any download.

    arrange: the linux/x64 entry has no SHA-256.
    act: ensure.
    assert: RunnerBinaryError, no download.
    """
    payload = runner_tarball("2.330.0")
    app = application("2.330.0", payload, checksum="")
    github.applications = [app]
    opener.serve(app, payload)

    with pytest.raises(RunnerBinaryError, match="no SHA-256 checksum"):
        cache.ensure()

    assert opener.opened == []


def test_no_entry_for_the_architecture_is_an_error(cache_dir, github, opener):
    """A missing entry for the host's architecture is an error.

    arrange: GitHub lists osx and linux/x64 only.
    act: ensure for arm64.
    assert: RunnerBinaryError naming linux arm64, no download.
    """
    cache = RunnerBinaryCache(cache_dir, github, "arm64", opener=opener)

    with pytest.raises(RunnerBinaryError, match="no runner application for linux arm64"):
        cache.ensure()

    assert opener.opened == []


@pytest.mark.parametrize(
    "failure",
    [
        urllib.error.URLError("name resolution failed"),
        TimeoutError("the download stalled"),
        ConnectionResetError("connection reset by peer"),
    ],
)
def test_download_failure_is_a_runner_binary_error(cache, cache_dir, github, opener, failure):
    """A failed download is a RunnerBinaryError and leaves nothing behind.

    arrange: the download fails.
    act: ensure.
    assert: RunnerBinaryError, nothing left.
    """
    offer(github, opener, "2.330.0")
    opener.fail = failure

    with pytest.raises(RunnerBinaryError, match="cannot download"):
        cache.ensure()

    assert leftovers(cache_dir) == []


class _TruncatedChunkedBody(io.BytesIO):
    """A response whose chunked body is cut: http.client raises IncompleteRead."""

    def read(self, size: int | None = -1) -> bytes:
        raise http.client.IncompleteRead(b"partial", 1024)


def test_cut_chunked_download_is_a_runner_binary_error(cache, cache_dir, github, opener):
    """A cut chunked download is a RunnerBinaryError, not a raw HTTP exception.

    arrange: the download's chunked body is cut (http.client.IncompleteRead).
    act: ensure.
    assert: RunnerBinaryError (so the manager falls back to the cached runner), nothing left.
    """
    # Guards the translation of http.client.HTTPException in RunnerBinaryCache._download: its
    # subclasses that are not OSError (IncompleteRead on a cut chunked body, BadStatusLine or
    # LineTooLong from a misbehaving proxy, which urllib does not wrap) must leave ensure() as a
    # RunnerBinaryError. The manager catches only RunnerManagerError around ensure(); anything
    # else would abort the whole reconcile as "unexpected" instead of carrying on with the
    # cached runner.
    offer(github, opener, "2.330.0")
    original = opener.__call__

    def cut(url: str, timeout: float) -> BinaryIO:
        original(url, timeout)
        return _TruncatedChunkedBody()

    cache = RunnerBinaryCache(cache_dir, github, "x64", opener=cut)

    with pytest.raises(RunnerBinaryError):
        cache.ensure()

    assert leftovers(cache_dir) == []


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://example.invalid/runner.tar.gz", "/tmp/runner.tar.gz"]
)
def test_download_url_that_is_not_http_is_refused(cache, github, opener, url):
    """A download URL that is not http(s) is refused.

    arrange: the listed URL is not http(s).
    act: ensure.
    assert: RunnerBinaryError, the URL never opened.
    """
    payload = runner_tarball("2.330.0")
    app = application("2.330.0", payload)
    github.applications = [
        RunnerApplication(app.os, app.architecture, url, app.filename, app.sha256_checksum)
    ]

    with pytest.raises(RunnerBinaryError, match="refusing to download"):
        cache.ensure()

    assert opener.opened == []


@pytest.mark.parametrize(
    "filename", ["../actions-runner-linux-x64-2.330.0.tar.gz", "actions-runner-linux-x64.zip"]
)
def test_unexpected_file_name_is_refused(cache, cache_dir, github, opener, filename):
    """A listed file name that escapes the cache or is no .tar.gz is refused.

    arrange: the listed file name escapes the cache or is no .tar.gz.
    act: ensure.
    assert: refused before anything is downloaded or written.
    """
    payload = runner_tarball("2.330.0")
    github.applications = [
        RunnerApplication(
            "linux",
            "x64",
            "https://example.invalid/r.tar.gz",
            filename,
            hashlib.sha256(payload).hexdigest(),
        )
    ]

    with pytest.raises(RunnerBinaryError, match="unexpected runner file name"):
        cache.ensure()

    assert opener.opened == []
    assert not (cache_dir.parent / "actions-runner-linux-x64-2.330.0.tar.gz").exists()


@pytest.mark.parametrize(
    "meta",
    [None, b"{not json", b'{"os": "linux"}', b"[]"],
    ids=["no-metadata", "invalid-json", "missing-fields", "not-a-mapping"],
)
def test_cached_is_none_without_usable_metadata(cache, cache_dir, meta):
    """A tarball without usable metadata is not taken as cached.

    arrange: missing or broken metadata beside a tarball.
    act: cached.
    assert: None.
    """
    cache_dir.mkdir()
    (cache_dir / "actions-runner-linux-x64-2.330.0.tar.gz").write_bytes(b"x")
    if meta is not None:
        (cache_dir / "runner-application.json").write_bytes(meta)

    assert cache.cached() is None


def test_cached_is_none_when_the_tarball_is_gone(cache, cache_dir, github, opener):
    """A cached runner whose tarball was deleted is downloaded again.

    arrange: a cached runner whose tarball was deleted.
    act: cached, then ensure.
    assert: cached is None; ensure downloads it again.
    """
    app, _ = offer(github, opener, "2.330.0")
    cache.ensure()
    (cache_dir / app.filename).unlink()

    assert cache.cached() is None
    assert cache.ensure().updated is True
    assert len(opener.opened) == 2


@pytest.mark.parametrize(
    ("machine", "expected"),
    [
        ("x86_64", "x64"),
        ("amd64", "x64"),
        ("AMD64", "x64"),
        ("aarch64", "arm64"),
        ("arm64", "arm64"),
    ],
)
def test_runner_architecture_mapping(machine, expected):
    """A machine name maps to GitHub's runner architecture name.

    arrange: a platform.machine() value.
    act: map it.
    assert: GitHub's architecture name.
    """
    assert runner_architecture(machine) == expected


@pytest.mark.parametrize("machine", ["s390x", "ppc64le", "armv7l", "i686"])
def test_runner_architecture_without_a_linux_runner_is_refused(machine):
    """An architecture GitHub has no Linux runner for is refused.

    arrange: an architecture GitHub has no runner for.
    act: map it.
    assert: RunnerBinaryError naming it.
    """
    with pytest.raises(RunnerBinaryError, match=f"unsupported architecture {machine}"):
        runner_architecture(machine)


class _Trickle(io.RawIOBase):
    """A body that hands out a few bytes per read, each read taking `step` seconds."""

    def __init__(self, payload: bytes, clock: list[float], step: float):
        self._data = io.BytesIO(payload)
        self._clock = clock
        self._step = step

    def readable(self) -> bool:
        return True

    def read1(self, size: int = -1) -> bytes:
        self._clock[0] += self._step
        return self._data.read(min(size, 16) if size > 0 else 16)

    def read(self, size: int = -1) -> bytes:
        return self.read1(size)


def test_download_is_bounded_in_total_time(cache_dir, github, opener):
    """A download that trickles is given up at its total deadline.

    arrange: a download that never stalls long enough for the socket timeout, but trickles.
    act: ensure with a 60 s deadline.
    assert: RunnerBinaryError saying so, nothing kept, and the download was given up soon after the
        deadline (not after the whole body).
    """
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        content = os.urandom(8192)  # incompressible: the body stays about this long
        info = tarfile.TarInfo("bin/Runner.Listener")
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))
    payload = buffer.getvalue()
    app = application("2.330.0", payload)
    github.applications = [app]
    clock = [0.0]
    trickle = _Trickle(payload, clock, step=1.0)

    def slow(url: str, timeout: float) -> BinaryIO:
        opener.opened.append((url, timeout))
        return trickle  # type: ignore[return-value]  # a file-like stand-in for the response

    cache = RunnerBinaryCache(
        cache_dir,
        github,
        "x64",
        timeout=5.0,
        opener=slow,
        deadline=60.0,
        monotonic=lambda: clock[0],
    )

    with pytest.raises(RunnerBinaryError, match="did not finish within 60s"):
        cache.ensure()

    assert 60.0 < clock[0] <= 62.0
    assert len(payload) > 62 * 16  # the body was longer than what the deadline let through
    assert opener.opened == [(app.download_url, 5.0)]
    assert leftovers(cache_dir) == []
