# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""Per-runner data on the host: what the manager knows, and what the runner reports.

Each runner gets a host directory `<root>/<runner>/` with two parts:

- `installed.json`, written by the manager when it creates the runner (trusted);
- `exchange/`, a small tmpfs (capped at a few hundred KiB plus room for the runner's logs)
  mounted into the runner instance at `/metrics-exchange`, where the runner's start script and
  job hooks write timestamps and job metadata, and where the start script hands over the
  runner's `_diag` logs (`runner-logs.txt`, see `job_logs`) before the instance powers off.
  A job runs as the same user as the hooks, so it can write there too: the data is untrusted.
  The tmpfs cap keeps a job from filling the host; on reading, a file over its size limit,
  invalid JSON or out-of-range values move the whole directory to quarantine and nothing from
  it is believed (the log file is read apart, bounded, by `job_logs`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import re
import shutil
import subprocess
import tarfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pydantic

from .errors import ErrorKind, RunnerManagerError
from .job_logs import LOG_FILE, LOG_LIMIT
from .utils import atomic_write

logger = logging.getLogger(__name__)

INSTANCE_PATH = "/metrics-exchange"
METADATA_SIZE = 256 * 1024
# The runner's logs (at most LOG_LIMIT and a marker) fit next to the metadata.
EXCHANGE_SIZE = METADATA_SIZE + LOG_LIMIT + 64 * 1024
FILE_LIMIT = 1024
_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,62}$")


class CorruptDataError(RunnerManagerError):
    """A runner's exchange data is oversized or malformed: it is quarantined."""

    kind = ErrorKind.CORRUPT_RUNNER_DATA


class PreJob(pydantic.BaseModel):
    """What the job-started hook reports.

    Attributes:
        timestamp: when the job started.
        workflow: the workflow name.
        repository: `owner/repo`.
        event: the triggering event.
        workflow_run_id: the workflow run id.
    """

    model_config = pydantic.ConfigDict(extra="ignore", frozen=True)

    timestamp: float = pydantic.Field(gt=0)
    workflow: str = pydantic.Field(max_length=256)
    repository: str = pydantic.Field(pattern=r"^[A-Za-z0-9._-]+/[A-Za-z0-9._-]+$")
    event: str = pydantic.Field(max_length=64)
    workflow_run_id: int = pydantic.Field(ge=0)


class PostJob(pydantic.BaseModel):
    """What the start script reports when the runner process exited.

    Attributes:
        timestamp: when the runner exited.
        status: `normal` for exit code 0, `abnormal` otherwise.
        exit_code: the runner's exit code.
    """

    model_config = pydantic.ConfigDict(extra="ignore", frozen=True)

    timestamp: float = pydantic.Field(gt=0)
    status: str = pydantic.Field(pattern=r"^(normal|abnormal)$")
    exit_code: int = pydantic.Field(ge=-1, le=255)


@dataclasses.dataclass(frozen=True)
class Installed:
    """What the manager recorded when it created a runner.

    Attributes:
        started: when the creation started.
        finished: when the creation ended (the instance running).
        instance_type: `container` or `virtual-machine`.
        stages: seconds per creation stage.
        start_requested: when LXD was asked to start the instance (boot is measured from it).
    """

    started: float
    finished: float
    instance_type: str
    stages: dict[str, float]
    start_requested: float | None = None


@dataclasses.dataclass(frozen=True)
class RunnerData:
    """Everything known about one runner from its host directory.

    Attributes:
        name: the runner name.
        installed: the manager's record, if any.
        boot: when the runner's service started inside the instance.
        online: when the runner listened for jobs.
        pre_job: the job-started report, if the runner took a job.
        post_job: the exit report, if the runner process exited.
        installed_reported: whether the runner_installed event was already issued.
    """

    name: str
    installed: Installed | None
    boot: float | None
    online: float | None
    pre_job: PreJob | None
    post_job: PostJob | None
    installed_reported: bool


def _run(command: list[str]) -> None:
    subprocess.run(command, check=True, capture_output=True, timeout=30)


class RunnerExchange:
    """The host directories of a manager's runners."""

    def __init__(
        self,
        root: Path,
        quarantine: Path,
        *,
        size: int = EXCHANGE_SIZE,
        run: Callable[[list[str]], None] = _run,
        clock: Callable[[], float] = time.time,
    ):
        """Create the store.

        Args:
            root: the directory holding one directory per runner.
            quarantine: where corrupt exchange data is kept for inspection.
            size: the cap of each runner's exchange tmpfs, in bytes.
            run: runs mount/umount (tests pass a fake).
            clock: the wall clock.
        """
        self._root = root
        self._quarantine = quarantine
        self._size = size
        self._run = run
        self._clock = clock

    def _dir(self, runner: str) -> Path:
        if not _NAME_RE.match(runner):
            raise ValueError(f"invalid runner name {runner!r}")
        return self._root / runner

    def exchange_dir(self, runner: str) -> Path:
        """The runner's exchange directory on the host.

        Args:
            runner: the runner name.

        Returns:
            The directory mounted into the instance.
        """
        return self._dir(runner) / "exchange"

    def log_file(self, runner: str) -> Path:
        """The runner's handed-over `_diag` logs (untrusted, bounded by the tmpfs).

        Args:
            runner: the runner name.

        Returns:
            The file (it may not exist).
        """
        return self.exchange_dir(runner) / LOG_FILE

    def create(self, runner: str) -> dict[str, str]:
        """Create a runner's directories and mount its capped exchange tmpfs.

        Args:
            runner: the runner name.

        Returns:
            The LXD disk device that puts the exchange directory into the instance.

        Raises:
            RunnerManagerError: if the tmpfs cannot be mounted.
        """
        exchange = self.exchange_dir(runner)
        exchange.mkdir(parents=True, exist_ok=True)
        try:
            self._run(
                [
                    "/usr/bin/mount",
                    "-t",
                    "tmpfs",
                    "-o",
                    f"size={self._size},mode=1777,nosuid,nodev,noexec",
                    f"grt-{runner}",
                    str(exchange),
                ]
            )
        except (subprocess.SubprocessError, OSError) as exc:
            shutil.rmtree(self._dir(runner), ignore_errors=True)
            raise RunnerManagerError(
                f"cannot mount the exchange directory of {runner}: {exc}"
            ) from exc
        return {"type": "disk", "source": str(exchange), "path": INSTANCE_PATH}

    def record_installed(self, runner: str, installed: Installed) -> None:
        """Write the manager's creation record (outside the runner-writable directory).

        Args:
            runner: the runner name.
            installed: the record.
        """
        atomic_write(
            self._dir(runner) / "installed.json",
            json.dumps(dataclasses.asdict(installed)).encode(),
        )

    def mark_installed_reported(self, runner: str) -> None:
        """Remember that the runner_installed event of a runner was issued.

        Args:
            runner: the runner name.
        """
        (self._dir(runner) / "installed-reported").touch()

    def runners(self) -> list[str]:
        """List the runners that have a host directory.

        Returns:
            Runner names.
        """
        if not self._root.is_dir():
            return []
        return sorted(
            p.name for p in self._root.iterdir() if p.is_dir() and _NAME_RE.match(p.name)
        )

    def _read_file(self, path: Path) -> str | None:
        # A symbolic link (even a dangling one) is never followed: it is corrupt data.
        if path.is_symlink():
            raise CorruptDataError(f"{path.name} is a symbolic link")
        if not path.exists():
            return None
        if not path.is_file():
            raise CorruptDataError(f"{path.name} is not a regular file")
        if path.stat().st_size > FILE_LIMIT:
            raise CorruptDataError(f"{path.name} is larger than {FILE_LIMIT} bytes")
        return path.read_text(encoding="utf-8", errors="strict")

    def _read_timestamp(self, path: Path) -> float | None:
        text = self._read_file(path)
        if text is None or not text.strip():
            return None  # not written (yet)
        try:
            value = float(text.strip())
        except ValueError:
            raise CorruptDataError(f"{path.name} does not hold a timestamp") from None
        if not 0 < value < self._clock() + 3600:
            raise CorruptDataError(f"{path.name} holds an impossible timestamp")
        return value

    def _read_json(self, path: Path, model: type[pydantic.BaseModel]) -> Any:
        text = self._read_file(path)
        if text is None:
            return None
        try:
            return model.model_validate_json(text)
        except pydantic.ValidationError as exc:
            raise CorruptDataError(
                f"{path.name} is malformed: {exc.error_count()} errors"
            ) from None

    def read(self, runner: str) -> RunnerData:
        """Read everything about a runner, checking the untrusted part.

        Args:
            runner: the runner name.

        Returns:
            The runner's data.

        Raises:
            CorruptDataError: if the exchange data is oversized or malformed (call
                `quarantine` then).
        """
        directory = self._dir(runner)
        installed = None
        with contextlib.suppress(OSError, ValueError, TypeError):
            installed = Installed(**json.loads((directory / "installed.json").read_text()))
        exchange = self.exchange_dir(runner)
        try:
            if exchange.is_dir():
                # The log file is read apart, bounded (job_logs): the rest is metadata.
                total = sum(
                    p.stat().st_size
                    for p in exchange.rglob("*")
                    if p.is_file() and p.name != LOG_FILE
                )
                if total > min(self._size, METADATA_SIZE):
                    raise CorruptDataError(f"the exchange directory holds {total} bytes")
            boot = self._read_timestamp(exchange / "boot.timestamp")
            online = self._read_timestamp(exchange / "online.timestamp")
            pre_job = self._read_json(exchange / "pre-job.json", PreJob)
            post_job = self._read_json(exchange / "post-job.json", PostJob)
        except UnicodeDecodeError:
            raise CorruptDataError("the exchange data is not UTF-8 text") from None
        except OSError as exc:
            raise CorruptDataError(f"the exchange data is unreadable: {exc}") from None
        return RunnerData(
            name=runner,
            installed=installed,
            boot=boot,
            online=online,
            pre_job=pre_job,
            post_job=post_job,
            installed_reported=(directory / "installed-reported").exists(),
        )

    def quarantine(self, runner: str) -> Path | None:
        """Keep a runner's exchange data in the quarantine directory, then delete it.

        Args:
            runner: the runner name.

        Returns:
            The quarantine archive, if one could be written.
        """
        archive = None
        exchange = self.exchange_dir(runner)
        try:
            self._quarantine.mkdir(parents=True, exist_ok=True, mode=0o700)
            archive = self._quarantine / f"{runner}.tar.gz"
            with tarfile.open(archive, "w:gz") as tar:
                for path in sorted(exchange.rglob("*")):
                    if path.is_file() and not path.is_symlink():
                        tar.add(path, arcname=str(path.relative_to(exchange)), recursive=False)
            logger.warning("quarantined the exchange data of runner %s in %s", runner, archive)
        except OSError as exc:
            logger.error("cannot quarantine the exchange data of %s: %s", runner, exc)
            archive = None
        self.delete(runner)
        return archive

    def delete(self, runner: str) -> None:
        """Unmount and delete a runner's host directory.

        Args:
            runner: the runner name.
        """
        exchange = self.exchange_dir(runner)
        if exchange.is_mount():
            try:
                self._run(["/usr/bin/umount", "--lazy", str(exchange)])
            except (subprocess.SubprocessError, OSError) as exc:
                logger.error("cannot unmount %s: %s", exchange, exc)
                return
        shutil.rmtree(self._dir(runner), ignore_errors=True)
