# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""The runner application tarball, downloaded once on the host and cached.

Each reconciliation asks GitHub which runner application is current (a conditional request: a
304 costs no rate limit). A new one is downloaded, its SHA-256 checked against GitHub's listing
and its format checked, then it replaces the cached one atomically. When GitHub cannot be asked,
the cached tarball keeps being used.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import http.client
import json
import logging
import os
import platform
import tarfile
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from .errors import GitHubError, RunnerBinaryError
from .github import GitHubClient
from .models import RunnerApplication
from .utils import atomic_write

logger = logging.getLogger(__name__)

_CHUNK = 128 * 1024
# GitHub's runner application is about 200 MB; anything far larger is not it.
MAX_DOWNLOAD_BYTES = 1024**3
_ARCHITECTURES = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64"}


def runner_architecture(machine: str | None = None) -> str:
    """Map the host architecture to GitHub's runner architecture name.

    Args:
        machine: `platform.machine()` output; the host's by default.

    Returns:
        `x64` or `arm64`.

    Raises:
        RunnerBinaryError: for an architecture GitHub publishes no Linux runner for.
    """
    machine = (machine or platform.machine()).lower()
    try:
        return _ARCHITECTURES[machine]
    except KeyError:
        raise RunnerBinaryError(f"unsupported architecture {machine}") from None


@dataclasses.dataclass(frozen=True)
class CachedRunner:
    """The runner application on the host.

    Attributes:
        path: the tarball.
        application: what GitHub listed for it.
        updated: whether this run downloaded it.
    """

    path: Path
    application: RunnerApplication
    updated: bool = False


META_FILE = "runner-application.json"


def read_cache(directory: Path) -> CachedRunner | None:
    """Read the runner application cached in a directory, without asking GitHub.

    Args:
        directory: the cache directory (see `RunnerBinaryCache`).

    Returns:
        The cached tarball, or None when there is none (or its metadata cannot be read).
    """
    try:
        meta = json.loads((directory / META_FILE).read_text(encoding="utf-8"))
        application = RunnerApplication(**meta)
    except (OSError, ValueError, TypeError):
        return None
    path = directory / application.filename
    if not path.is_file():
        return None
    return CachedRunner(path=path, application=application)


def _urlopen(url: str, timeout: float) -> BinaryIO:
    # Only http(s) URLs that GitHub listed reach here; see _check_url.
    return urllib.request.urlopen(url, timeout=timeout)  # noqa: S310 - only http(s) URLs GitHub listed, see _check_url


def _check_url(url: str) -> None:
    if not url.startswith(("https://", "http://")):
        raise RunnerBinaryError(f"refusing to download the runner from {url!r}")


class RunnerBinaryCache:
    """Keeps the current runner application tarball in a directory."""

    def __init__(
        self,
        directory: Path,
        github: GitHubClient,
        architecture: str,
        timeout: float = 30.0,
        opener: Callable[[str, float], BinaryIO] = _urlopen,
        *,
        deadline: float = 900.0,
        monotonic: Callable[[], float] = time.monotonic,
    ):
        """Create the cache.

        Args:
            directory: where the tarball and its metadata live.
            github: the GitHub client listing runner applications.
            architecture: `x64` or `arm64`.
            timeout: seconds the download may stall (connecting, or waiting for data), like
                any other GitHub call.
            opener: opens a URL for reading (tests pass a fake).
            deadline: seconds the whole download may take, however steadily data trickles.
            monotonic: the clock for the deadline (tests pass a fake).
        """
        self._dir = directory
        self._github = github
        self._arch = architecture
        self._timeout = timeout
        self._opener = opener
        self._deadline = deadline
        self._monotonic = monotonic
        self._meta_path = directory / META_FILE
        # What GitHub listed in the last `ensure` (None: not asked, or it could not answer).
        self.offered: RunnerApplication | None = None

    def cached(self) -> CachedRunner | None:
        """Return the cached runner application, if there is one.

        Returns:
            The cached tarball, or None.
        """
        return read_cache(self._dir)

    def _select(self, applications: list[RunnerApplication]) -> RunnerApplication:
        for application in applications:
            if application.os == "linux" and application.architecture == self._arch:
                if not application.sha256_checksum:
                    raise RunnerBinaryError(
                        f"GitHub lists no SHA-256 checksum for {application.filename}; "
                        "refusing to run an unverified runner"
                    )
                return application
        raise RunnerBinaryError(f"GitHub lists no runner application for linux {self._arch}")

    def ensure(self) -> CachedRunner:
        """Make sure the current runner application is cached, downloading it if needed.

        Returns:
            The cached runner application.

        Raises:
            RunnerBinaryError: if there is no usable runner application.
        """
        current = self.cached()
        self.offered = None
        try:
            wanted = self._select(self._github.runner_applications())
            self.offered = wanted
        except GitHubError as exc:
            if current is not None:
                logger.warning("cannot list runner applications (%s); using the cached one", exc)
                return current
            raise RunnerBinaryError(f"cannot list runner applications: {exc}") from exc
        if current is not None and current.application == wanted:
            return current
        path = self._download(wanted)
        atomic_write(self._meta_path, json.dumps(dataclasses.asdict(wanted)).encode())
        for old in self._dir.glob("*.tar.gz"):
            if old != path:
                with contextlib.suppress(OSError):
                    old.unlink()
        logger.info("runner application %s downloaded and verified", wanted.filename)
        return CachedRunner(path=path, application=wanted, updated=True)

    def _download(self, application: RunnerApplication) -> Path:
        _check_url(application.download_url)
        if "/" in application.filename or not application.filename.endswith(".tar.gz"):
            raise RunnerBinaryError(f"unexpected runner file name {application.filename!r}")
        self._dir.mkdir(parents=True, exist_ok=True)
        destination = self._dir / application.filename
        fd, tmp_name = tempfile.mkstemp(dir=self._dir, prefix=".download.")
        tmp = Path(tmp_name)
        digest = hashlib.sha256()
        end = self._monotonic() + self._deadline
        size = 0
        try:
            with (
                os.fdopen(fd, "wb") as out,
                self._opener(application.download_url, self._timeout) as response,
            ):
                # read1: return what arrived rather than wait for a whole chunk, so the
                # deadline is looked at however slowly the data comes.
                read = getattr(response, "read1", response.read)
                while chunk := read(_CHUNK):
                    size += len(chunk)
                    if size > MAX_DOWNLOAD_BYTES:
                        raise RunnerBinaryError(
                            f"{application.filename} is larger than {MAX_DOWNLOAD_BYTES} bytes"
                        )
                    if self._monotonic() > end:
                        raise RunnerBinaryError(
                            f"the download of {application.filename} did not finish within "
                            f"{self._deadline:.0f}s"
                        )
                    digest.update(chunk)
                    out.write(chunk)
            if digest.hexdigest() != application.sha256_checksum.lower():
                raise RunnerBinaryError(
                    f"the checksum of {application.filename} does not match GitHub's listing"
                )
            if not tarfile.is_tarfile(tmp):
                raise RunnerBinaryError(f"{application.filename} is not a tar archive")
            os.chmod(tmp, 0o644)
            os.replace(tmp, destination)
        except (OSError, http.client.HTTPException) as exc:
            raise RunnerBinaryError(
                f"cannot download the runner application {application.filename}: {exc}"
            ) from exc
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()
        return destination
