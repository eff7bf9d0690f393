# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""Every job's runner logs, kept on the host for Loki with labels a person filters on.

After the runner process exits (success, failure, cancellation, or killed), the instance's start
script concatenates the runner's `_diag` logs into `runner-logs.txt` of the runner's exchange
directory (at most `LOG_LIMIT` bytes: the head and the tail, with a marker between), before it
powers the instance off. Once the instance is gone, the manager turns that file into one file per
job under `/var/log/github-runner-jobs/`, where the COS agent ships it to Loki.

Each line of a job file is a JSON object: the labels (`repository`, `workflow`, `job_id`,
`run_id`, `runner`, `instance_type`, `conclusion`, `flavor`) and the log line (`line`). LogQL's
`| json` turns the labels into query-time labels (`{filename=~".*/github-runner-jobs/.*"} | json
| repository="owner/repo"`). The log text is untrusted (the job writes it): it only ever lands in
the `line` string, JSON-escaped, so it cannot add or change a label; label values are sanitised
to a small character set and length. The file is bounded (`LOG_LIMIT` bytes of log text, lines
cut at `LINE_LIMIT`, the stored file at most `FILE_FACTOR` times `LOG_LIMIT`), and the directory
is bounded in age (`retention_days`) and in total size (oldest files pruned first).
"""

from __future__ import annotations

import collections
import dataclasses
import json
import logging
import os
import re
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from .utils import atomic_write

logger = logging.getLogger(__name__)

DEFAULT_DIRECTORY = Path("/var/log/github-runner-jobs")
LOG_FILE = "runner-logs.txt"
LOG_LIMIT = 2 * 1024 * 1024
LINE_LIMIT = 4096
# The stored file (labels and JSON escaping included) is at most this many times LOG_LIMIT.
FILE_FACTOR = 2
RETENTION_DAYS = 7
TOTAL_LIMIT = 512 * 1024 * 1024
TRUNCATED = "[github-runner: log truncated to {limit} bytes]"
_LABEL_RE = re.compile(r"[^A-Za-z0-9._/@+-]")
_LABEL_LENGTH = 100
_FILE_RE = re.compile(r"^\d{8}T\d{6}-\d{6}-[a-z][a-z0-9-]{0,62}\.log$")


def sanitise(value: object) -> str:
    """A label value made safe: a small character set, a bounded length.

    Args:
        value: the raw value (possibly written by a job).

    Returns:
        The value with every other character replaced by `_`, cut to 100 characters; `unknown`
        for an empty value.
    """
    text = _LABEL_RE.sub("_", str(value if value is not None else ""))[:_LABEL_LENGTH]
    return text or "unknown"


@dataclasses.dataclass(frozen=True)
class JobLabels:
    """The labels of one job's logs.

    Attributes:
        runner: the runner name.
        instance_type: `container` or `virtual-machine`.
        flavor: the runner flavor (the application).
        repository: `owner/repo`.
        workflow: the workflow name.
        job_id: the GitHub job id.
        run_id: the workflow run id.
        conclusion: success, failure, cancelled, crashed...
    """

    runner: str
    instance_type: str | None = None
    flavor: str | None = None
    repository: str | None = None
    workflow: str | None = None
    job_id: int | None = None
    run_id: int | None = None
    conclusion: str | None = None

    def as_dict(self) -> dict[str, str]:
        """The sanitised labels.

        Returns:
            Label name to sanitised value.
        """
        return {key: sanitise(value) for key, value in dataclasses.asdict(self).items()}


def read_bounded(path: Path, limit: int = LOG_LIMIT) -> tuple[bytes, bool]:
    """Read at most `limit` bytes of an untrusted regular file, never following a link.

    Args:
        path: the file.
        limit: the most bytes read.

    Returns:
        The bytes and whether the file held more.

    Raises:
        OSError: if the file is missing, a link, or not a regular file.
    """
    descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise OSError(f"{path.name} is not a regular file")
        with os.fdopen(descriptor, "rb", closefd=False) as stream:
            data = stream.read(limit + 1)
    finally:
        os.close(descriptor)
    return data[:limit], len(data) > limit


def gather(diag: Path, limit: int = LOG_LIMIT) -> bytes:
    """Concatenate a `_diag` directory's logs as the start script does, bounded the same way.

    For a runner whose start script could not hand its logs over (the runner died with it), from
    the copy the crash-log collector made. Each file is introduced by a `==> _diag/<file> <==`
    line, oldest first; past `limit` bytes, the head and the tail are kept with a marker between.

    Args:
        diag: the copied `_diag` directory.
        limit: the most bytes returned.

    Returns:
        The concatenated logs (empty without logs).
    """
    try:
        files = sorted(
            (p for p in diag.glob("*.log") if p.is_file() and not p.is_symlink()),
            key=lambda p: (p.stat().st_mtime, p.name),
        )
    except OSError:
        return b""
    half = limit // 2 - 128
    head = bytearray()
    last = b""  # the last `limit` bytes
    total = 0
    for chunk in _chunks(files):
        total += len(chunk)
        if len(head) < half:
            head += chunk[: half - len(head)]
        last = (last + chunk)[-limit:]
    if total <= limit:
        return last
    left_out = total - 2 * half
    marker = f"\n[github-runner: {total} bytes of runner logs; {left_out} bytes left out here]\n"
    return bytes(head) + marker.encode() + last[-half:]


def _chunks(files: list[Path]) -> Iterator[bytes]:
    """The files' content with their header lines, in blocks of at most 1 MiB."""
    for path in files:
        yield f"==> _diag/{path.name} <==\n".encode()
        try:
            with path.open("rb") as stream:
                while block := stream.read(1 << 20):
                    yield block
        except OSError:
            pass
        yield b"\n"


def _encode(lines: list[str], labels: dict[str, str], limit: int) -> list[str]:
    """The JSON lines of a log, at most `limit` bytes: past it, the head and the tail are kept.

    Labels and escaping make a line longer than its text (a log of empty lines, or of control
    characters, would grow many times over): the bound is on what is stored.
    """
    prefix = json.dumps(labels, ensure_ascii=True)[:-1] + ', "line": '
    half = limit // 2 - 1024
    head: list[str] = []
    tail: collections.deque[str] = collections.deque()
    head_size = tail_size = dropped = 0
    for line in lines:
        if len(line) > LINE_LIMIT:
            line = line[:LINE_LIMIT] + " [github-runner: line truncated]"
        encoded = f"{prefix}{json.dumps(line, ensure_ascii=True)}}}\n"
        if not tail and head_size + len(encoded) <= half:
            head.append(encoded)
            head_size += len(encoded)
            continue
        tail.append(encoded)
        tail_size += len(encoded)
        while tail_size > half:
            tail_size -= len(tail.popleft())
            dropped += 1
    if dropped:
        note = f"[github-runner: {dropped} lines left out: a job's log is stored in {limit} bytes]"
        head.append(f"{prefix}{json.dumps(note)}}}\n")
    return head + list(tail)


class JobLogs:
    """Keeps, and prunes, the per-job runner log files."""

    def __init__(
        self,
        directory: Path = DEFAULT_DIRECTORY,
        *,
        limit: int = LOG_LIMIT,
        retention_days: float = RETENTION_DAYS,
        total_limit: int = TOTAL_LIMIT,
        clock: Callable[[], float] = time.time,
    ):
        """Create the keeper.

        Args:
            directory: where the job files go.
            limit: the most bytes of log text kept per job.
            retention_days: files older than this are deleted.
            total_limit: the most bytes the directory holds; the oldest files go first.
            clock: the wall clock.
        """
        self._directory = directory
        self._limit = limit
        self._retention = retention_days * 24 * 3600
        self._total_limit = total_limit
        self._clock = clock

    @property
    def directory(self) -> Path:
        """The directory of the job files."""
        return self._directory

    def store(self, source: Path, labels: JobLabels) -> Path | None:
        """Turn a runner's handed-over log file into a labelled job file.

        Args:
            source: the runner's `runner-logs.txt` (untrusted).
            labels: the job's labels.

        Returns:
            The job file, or None when the runner handed over no log.
        """
        try:
            data, truncated = read_bounded(source, self._limit)
        except FileNotFoundError:
            return None
        except OSError as exc:
            logger.warning("cannot read the logs of runner %s: %s", labels.runner, exc)
            return None
        lines = data.decode("utf-8", errors="replace").splitlines()
        if truncated:
            lines.append(TRUNCATED.format(limit=self._limit))
        out = _encode(lines, labels.as_dict(), FILE_FACTOR * self._limit)
        now = self._clock()
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now))
        micro = int((now % 1) * 1_000_000)
        target = self._directory / f"{stamp}-{micro:06d}-{sanitise(labels.runner)}.log"
        self._directory.mkdir(parents=True, exist_ok=True, mode=0o755)
        atomic_write(target, "".join(out).encode("ascii"))
        logger.info("kept the runner logs of %s in %s", labels.runner, target)
        self.prune()
        return target

    def prune(self) -> list[str]:
        """Delete job files past the retention, then the oldest ones past the total limit.

        Returns:
            The names of the deleted files.
        """
        if not self._directory.is_dir():
            return []
        files = []
        for path in self._directory.iterdir():
            try:
                info = path.lstat()
            except OSError:
                continue
            if stat.S_ISREG(info.st_mode) and _FILE_RE.match(path.name):
                files.append((info.st_mtime, path.name, info.st_size, path))
        files.sort()
        cutoff = self._clock() - self._retention
        total = sum(size for _, _, size, _ in files)
        pruned = []
        for mtime, name, size, path in files:
            if mtime >= cutoff and total <= self._total_limit:
                break
            try:
                path.unlink()
            except OSError as exc:
                logger.warning("cannot prune %s: %s", path, exc)
                continue
            total -= size
            pruned.append(name)
        return pruned
