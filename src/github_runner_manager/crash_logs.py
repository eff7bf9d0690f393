# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""Logs of crashed runners, copied to the host before their instance is deleted.

GitHub asks that ephemeral runners' logs be kept outside the runner. For a runner that died
(unhealthy), the manager copies its runner logs (`_diag`) and its system journal into
`/var/log/github-runner-crashed/<runner>/`, where the COS agent ships them to Loki. Copies older
than a week are pruned.
"""

from __future__ import annotations

import io
import logging
import shutil
import tarfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from .errors import LxdError
from .image import RUNNER_USER
from .lxd import LxdClient

logger = logging.getLogger(__name__)

DEFAULT_DIRECTORY = Path("/var/log/github-runner-crashed")
MAX_AGE = 7 * 24 * 3600
SIZE_LIMIT = 20 * 1024 * 1024
_STAGING = "/tmp/github-runner-crash-logs"  # noqa: S108 - inside the runner instance
_COLLECT = (
    f"rm -rf {_STAGING} && mkdir -p {_STAGING} && "
    f"(tar -C /home/{RUNNER_USER}/actions-runner -czf - _diag 2>/dev/null | head -c {SIZE_LIMIT} "
    f"> {_STAGING}/diag.tar.gz; "
    f"journalctl -b --no-pager -o short-iso 2>&1 | tail -c {SIZE_LIMIT} > {_STAGING}/journal.log; "
    "true)"
)


class CrashLogs:
    """Copies and prunes crashed runners' logs."""

    def __init__(
        self,
        lxd: LxdClient,
        directory: Path = DEFAULT_DIRECTORY,
        clock: Callable[[], float] = time.time,
    ):
        """Create the collector.

        Args:
            lxd: the LXD client.
            directory: where the copies go, one directory per runner.
            clock: the wall clock.
        """
        self._lxd = lxd
        self._directory = directory
        self._clock = clock

    def collect(self, runner: str) -> Path | None:
        """Copy a runner's `_diag` logs and journal to the host.

        Args:
            runner: the runner (and instance) name.

        Returns:
            The directory holding the copies, or None when nothing could be copied.
        """
        try:
            self._lxd.execute(runner, ["/bin/sh", "-c", _COLLECT], timeout=60)
            diag = self._lxd.pull_file(runner, f"{_STAGING}/diag.tar.gz")
            journal = self._lxd.pull_file(runner, f"{_STAGING}/journal.log")
        except LxdError as exc:
            logger.warning("cannot copy the logs of crashed runner %s: %s", runner, exc)
            return None
        target = self._directory / runner
        target.mkdir(parents=True, exist_ok=True)
        (target / "journal.log").write_bytes(journal[-SIZE_LIMIT:])
        self._extract(diag, target)
        logger.info("kept the logs of crashed runner %s in %s", runner, target)
        return target

    @staticmethod
    def _extract(archive: bytes, target: Path) -> None:
        """Unpack `_diag/*` from an untrusted archive: regular files only, no path tricks."""
        if not archive:
            return
        written = 0
        try:
            with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
                for member in tar:
                    path = PurePosixPath(member.name)
                    if (
                        not member.isfile()
                        or path.is_absolute()
                        or ".." in path.parts
                        or path.parts[:1] != ("_diag",)
                    ):
                        continue
                    written += member.size
                    if written > SIZE_LIMIT:
                        break
                    source = tar.extractfile(member)
                    if source is None:
                        continue
                    destination = target.joinpath(*path.parts)
                    destination.parent.mkdir(parents=True, exist_ok=True)
                    destination.write_bytes(source.read())
        except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
            logger.warning("the runner log archive is damaged (%s); kept what was readable", exc)

    def prune(self) -> list[str]:
        """Delete copies older than a week.

        Returns:
            The runners whose copies were deleted.
        """
        if not self._directory.is_dir():
            return []
        cutoff = self._clock() - MAX_AGE
        pruned = []
        for path in self._directory.iterdir():
            try:
                if path.is_dir() and path.stat().st_mtime < cutoff:
                    shutil.rmtree(path)
                    pruned.append(path.name)
            except OSError as exc:
                logger.warning("cannot prune %s: %s", path, exc)
        return sorted(pruned)
