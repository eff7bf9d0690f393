# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""The shipped logrotate configuration, run by the real `logrotate` against the metrics log.

The manager's own writer (`MetricsLog`) fills the log with numbered events; a reader follows the
file the way a log shipper does (it keeps the file it has open until it has read it to the end,
then moves to the file now at the path) and lags behind the writer at each rotation. Below the
configured size nothing happens; at and past it the log is rotated to one uncompressed copy;
across two rotations the reader gets every event exactly once, in order.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from github_runner_manager.metrics import Event, MetricsLog
from host import logrotate_config

SIZE = 10 * 1024 * 1024  # the configuration's `size 10M`
# Long events keep the number of writes (each one open, append, close) small.
FLAVOR = "logrotate-" + "f" * 4000


class Follower:
    """Follows a log across renames: finish the open file, then continue with the new one."""

    def __init__(self, path: Path):
        self.path = path
        self.handle = path.open("rb")
        self.partial = b""
        self.lines: list[bytes] = []

    def _drain(self) -> None:
        data = self.handle.read()
        if self.handle.tell() < os.fstat(self.handle.fileno()).st_size:
            raise AssertionError("short read")
        chunks = (self.partial + data).split(b"\n")
        self.partial = chunks.pop()
        self.lines.extend(chunks)

    def poll(self, limit: int | None = None) -> None:
        """Read what is there (at most `limit` bytes, to lag behind); follow a rotation."""
        if limit is not None:
            chunks = (self.partial + self.handle.read(limit)).split(b"\n")
            self.partial = chunks.pop()
            self.lines.extend(chunks)
            return
        self._drain()
        try:
            moved = os.stat(self.path).st_ino != os.fstat(self.handle.fileno()).st_ino
        except FileNotFoundError:
            return
        if moved:
            self.handle.close()
            self.handle = self.path.open("rb")
            self._drain()

    def close(self) -> None:
        self.handle.close()


@pytest.fixture
def logrotate() -> str:
    found = shutil.which("logrotate") or shutil.which("logrotate", path="/usr/sbin:/sbin")
    if found is None:
        pytest.fail("the logrotate tool is needed (apt-get install logrotate)", pytrace=False)
    return found


def test_metrics_log_rotation_loses_and_repeats_nothing(logrotate: str, tmp_path: Path) -> None:
    """Rotating the metrics log loses and repeats no event.

    arrange: the shipped configuration; the metrics log filled by the manager's writer.
    act: run logrotate below, at and past the size, twice, with a lagging reader.
    assert: one uncompressed rotated copy; every event read once, in order; none duplicated.
    """
    log_dir = tmp_path / "log"
    log_dir.mkdir(mode=0o755)
    log_path = log_dir / "github-runner-metrics.log"
    config = tmp_path / "github-runner-metrics"
    config.write_text(logrotate_config(log_path))
    config.chmod(0o644)
    writer = MetricsLog(log_path)
    written = 0

    def write_until(size: int) -> None:
        """Write numbered events until the log holds `size` bytes, or just below it."""
        nonlocal written
        while True:
            line = Event(event="test", timestamp=written, flavor=FLAVOR)
            length = len(line.model_dump_json(exclude_none=True, by_alias=True)) + 1
            current = log_path.stat().st_size if log_path.exists() else 0
            if current + length > size:
                return
            writer.issue(line)
            written += 1

    def rotate() -> None:
        subprocess.run(
            [logrotate, "--state", str(tmp_path / "state"), str(config)],
            check=True,
            capture_output=True,
            timeout=60,
        )

    def rotated() -> list[str]:
        return sorted(p.name for p in log_dir.iterdir() if p != log_path)

    write_until(1)  # the first event creates the file
    writer.issue(Event(event="test", timestamp=written, flavor=FLAVOR))
    written += 1
    reader = Follower(log_path)
    try:
        write_until(SIZE - 1)
        rotate()
        assert rotated() == [], "below its size the log is left alone"

        write_until(SIZE)
        padding = SIZE - log_path.stat().st_size
        with log_path.open("ab") as handle:  # exactly at the size, with a final line
            handle.write(b"x" * (padding - 1) + b"\n")
        assert log_path.stat().st_size == SIZE
        reader.poll(limit=SIZE // 2)  # the reader lags behind
        rotate()
        assert rotated() == ["github-runner-metrics.log.1"], "rotated at its size"
        assert log_path.stat().st_size == 0
        assert (log_path.stat().st_mode & 0o777) == 0o644

        write_until(SIZE // 4)
        reader.poll()
        write_until(SIZE + SIZE // 8)  # past its size
        reader.poll(limit=SIZE // 3)
        rotate()
        write_until(4096)
        assert rotated() == ["github-runner-metrics.log.1"], "one rotated copy, uncompressed"
        reader.poll()
        reader.poll()
    finally:
        reader.close()

    events = [line for line in reader.lines if not line.startswith(b"x")]
    numbers = [int(Event.model_validate_json(line).timestamp) for line in events]
    assert numbers == list(range(written)), "every event once, in order"
    assert len(reader.lines) == len(events) + 1, "the padding line once"
    on_disk = (log_dir / "github-runner-metrics.log.1").read_bytes() + log_path.read_bytes()
    kept = [line for line in on_disk.split(b"\n") if line]
    assert len(kept) == len(set(kept)), "no event is in both files"
