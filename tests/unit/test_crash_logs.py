# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""Copying crashed runners' logs from an untrusted archive, and pruning old copies."""

from __future__ import annotations

import io
import os
import tarfile
import zlib
from pathlib import Path

import pytest

from github_runner_manager.crash_logs import MAX_AGE, SIZE_LIMIT, CrashLogs
from github_runner_manager.errors import LxdError
from github_runner_manager.lxd import ExecResult

from .conftest import PREFIX, UNIT

RUNNER = f"{PREFIX}-00000000abcd"
STAGING = "/tmp/github-runner-crash-logs"
NOW = 1_780_000_000.0
DAY = 24 * 3600


def tar_bytes(entries: list[tarfile.TarInfo | tuple[str, bytes]], compress: bool = True) -> bytes:
    """Build a tar (gzip-compressed by default) from (name, content) pairs or bare TarInfos."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz" if compress else "w") as tar:
        for entry in entries:
            if isinstance(entry, tarfile.TarInfo):
                tar.addfile(entry)
                continue
            name, content = entry
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


def directory(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    return info


@pytest.fixture
def staged(lxd):
    """A running runner whose collect command leaves the given archive and journal behind."""
    lxd.add(RUNNER, UNIT)
    commands: list[list[str]] = []

    def stage(diag: bytes, journal: bytes = b"journal line\n") -> list[list[str]]:
        def handler(name: str, command: list[str], env: dict[str, str]) -> ExecResult:
            commands.append(command)
            files = lxd.instances[name].files
            files[f"{STAGING}/diag.tar.gz"] = (diag, 0o644)
            files[f"{STAGING}/journal.log"] = (journal, 0o644)
            return ExecResult(0, "", "")

        lxd.exec_handler = handler
        return commands

    return stage


@pytest.fixture
def logs(lxd, tmp_path) -> CrashLogs:
    return CrashLogs(lxd, tmp_path / "crashed", clock=lambda: NOW)


def tree(root: Path) -> dict[str, bytes]:
    """Every regular file under root, by relative path."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def test_collect_copies_diag_files_and_the_journal(staged, logs, tmp_path):
    """A crashed runner's _diag files and journal are copied into its own directory.

    arrange: a runner with _diag logs and a journal.
    act: collect.
    assert: the _diag files and journal.log are in the runner's directory; one shell command ran to
        read both.
    """
    commands = staged(
        tar_bytes(
            [
                directory("_diag"),
                ("_diag/Runner_20260601.log", b"runner log"),
                ("_diag/pages/Worker_1.log", b"worker log"),
            ]
        ),
        journal=b"Jun 01 boot\nJun 01 crash\n",
    )

    target = logs.collect(RUNNER)

    assert target == tmp_path / "crashed" / RUNNER
    assert tree(target) == {
        "_diag/Runner_20260601.log": b"runner log",
        "_diag/pages/Worker_1.log": b"worker log",
        "journal.log": b"Jun 01 boot\nJun 01 crash\n",
    }
    assert len(commands) == 1
    assert commands[0][:2] == ["/bin/sh", "-c"]
    assert "_diag" in commands[0][2] and "journalctl" in commands[0][2]


@pytest.mark.parametrize(
    "entry",
    [
        ("/_diag/absolute.log", b"absolute"),
        ("_diag/../escape.log", b"dot-dot"),
        ("../_diag/escape.log", b"dot-dot"),
        ("_diag/../../etc/cron.d/evil", b"dot-dot"),
        ("outside/secret.log", b"outside"),
        ("journal.log", b"overwrite the journal"),
        link("_diag/passwd", "/etc/passwd"),
        link("_diag/hard", "/etc/shadow", tarfile.LNKTYPE),
        link("_diag/rel", "../../../../etc/passwd"),
    ],
    ids=[
        "absolute",
        "dot-dot-inside",
        "dot-dot-first",
        "dot-dot-deep",
        "outside-diag",
        "journal-overwrite",
        "symlink",
        "hardlink",
        "relative-symlink",
    ],
)
def test_collect_ignores_path_tricks(staged, logs, tmp_path, entry):
    """Archive members that try to escape the target are not written.

    arrange: an archive with one hostile member beside a good one.
    act: collect.
    assert: only the good _diag file and the journal are written, nothing outside the target, no
        symlink.
    """
    staged(tar_bytes([entry, ("_diag/good.log", b"good")]))

    target = logs.collect(RUNNER)

    assert target is not None
    assert tree(tmp_path) == {
        f"crashed/{RUNNER}/_diag/good.log": b"good",
        f"crashed/{RUNNER}/journal.log": b"journal line\n",
    }
    assert not any(p.is_symlink() for p in tmp_path.rglob("*"))


def test_collect_with_an_empty_archive_keeps_the_journal(staged, logs):
    """A runner without _diag files still gets its journal copied.

    arrange: no _diag (tar produced nothing).
    act: collect.
    assert: only journal.log.
    """
    staged(b"", journal=b"the journal")

    target = logs.collect(RUNNER)

    assert target is not None
    assert tree(target) == {"journal.log": b"the journal"}


def test_collect_keeps_only_the_tail_of_a_huge_journal(staged, logs):
    """A journal over the size limit is cut to its tail.

    arrange: a journal over the size limit.
    act: collect.
    assert: its last SIZE_LIMIT bytes.
    """
    journal = b"a" * 10 + b"b" * SIZE_LIMIT
    staged(b"", journal=journal)

    target = logs.collect(RUNNER)

    assert target is not None
    assert (target / "journal.log").read_bytes() == b"b" * SIZE_LIMIT


def test_collect_stops_at_the_size_limit(staged, logs):
    """Copying _diag files stops at the size limit.

    arrange: _diag files totalling more than the size limit.
    act: collect.
    assert: the files within the limit are written, the one crossing it is not.
    """
    first = b"\0" * (SIZE_LIMIT - 100)
    staged(tar_bytes([("_diag/first.log", first), ("_diag/second.log", b"\0" * 200)]))

    target = logs.collect(RUNNER)

    assert target is not None
    assert (target / "_diag" / "first.log").stat().st_size == len(first)
    assert not (target / "_diag" / "second.log").exists()


@pytest.mark.parametrize(
    "archive",
    [
        b"this is not gzip",
        tar_bytes([("_diag/a.log", b"x" * 4096)])[:200],
        tar_bytes([("_diag/a.log", b"x")], compress=False),
    ],
    ids=["garbage", "truncated", "uncompressed"],
)
def test_collect_tolerates_an_unreadable_archive(staged, logs, archive):
    """An unreadable archive does not stop the journal from being kept.

    arrange: an archive that is garbage, truncated or not gzip.
    act: collect.
    assert: no exception; the journal is kept.
    """
    staged(archive)

    target = logs.collect(RUNNER)

    assert target is not None
    assert (target / "journal.log").read_bytes() == b"journal line\n"


def test_collect_keeps_what_was_readable_of_a_truncated_archive(staged, logs):
    """A truncated archive keeps the files read before the cut.

    arrange: an archive cut in its second file (as `head -c` does).
    act: collect.
    assert: the first file is kept.
    """
    archive = tar_bytes(
        [("_diag/first.log", b"first"), ("_diag/second.log", os.urandom(64 * 1024))]
    )
    staged(archive[: len(archive) // 2])

    target = logs.collect(RUNNER)

    assert target is not None
    assert (target / "_diag" / "first.log").read_bytes() == b"first"


def test_collect_tolerates_a_corrupt_compressed_stream(staged, logs):
    """A compressed stream that turns corrupt inside a file does not raise.

    arrange: an archive whose deflate stream turns invalid inside a _diag file.
    act: collect.
    assert: no exception; the directory with the journal is returned.
    """
    # Guards CrashLogs._extract's handling of zlib.error: reading a member of a gzip stream
    # that is corrupt past the member's header raises it (tarfile wraps zlib.error as
    # ReadError only while reading headers), and it is neither tarfile.TarError, OSError nor
    # EOFError. Escaping, it would make collect() raise instead of keeping what was readable,
    # leave the crash copy half-written and break collect's contract (a path or None).
    raw = tar_bytes([("_diag/Runner.log", b"runner log line\n" * 8192)], compress=False)
    compressor = zlib.compressobj(wbits=31)  # gzip container
    # A valid start, then a deflate block with the reserved block type 3: invalid data.
    archive = compressor.compress(raw[: len(raw) // 2]) + compressor.flush(zlib.Z_SYNC_FLUSH)
    staged(archive + b"\x07\x00\x00")

    target = logs.collect(RUNNER)

    assert target is not None
    assert (target / "journal.log").read_bytes() == b"journal line\n"


@pytest.mark.parametrize("method", ["execute", "pull_file"])
def test_collect_returns_none_on_lxd_errors(staged, logs, lxd, tmp_path, method):
    """An LXD error while collecting answers None and writes nothing.

    arrange: LXD fails to run the command or to pull a file.
    act: collect.
    assert: None, nothing written.
    """
    staged(tar_bytes([("_diag/a.log", b"a")]))
    lxd.fail[method] = LxdError(f"{method} failed: instance is gone")

    assert logs.collect(RUNNER) is None
    assert not (tmp_path / "crashed").exists()


def test_collect_from_a_stopped_instance_returns_none(lxd, logs):
    """Nothing is collected from a stopped instance.

    arrange: the runner's instance is stopped.
    act: collect.
    assert: None.
    """
    lxd.add(RUNNER, UNIT, status="Stopped")

    assert logs.collect(RUNNER) is None


def age(path: Path, days: float) -> None:
    stamp = NOW - days * DAY
    os.utime(path, (stamp, stamp))


def test_prune_deletes_only_copies_older_than_a_week(logs, tmp_path):
    """Pruning deletes only crash copies older than a week.

    arrange: copies 8 days, 6 days and a moment old, and an old stray file.
    act: prune.
    assert: only the 8-day-old copy is deleted; the stray file is kept.
    """
    root = tmp_path / "crashed"
    for name, days in [("old-runner", 8), ("recent-runner", 6), ("new-runner", 0)]:
        (root / name / "_diag").mkdir(parents=True)
        (root / name / "journal.log").write_text("j")
        age(root / name, days)
    (root / "stray.txt").write_text("not a copy")
    age(root / "stray.txt", 30)

    pruned = logs.prune()

    assert pruned == ["old-runner"]
    assert sorted(p.name for p in root.iterdir()) == ["new-runner", "recent-runner", "stray.txt"]


def test_prune_boundary_is_seven_days(logs, tmp_path):
    """The pruning boundary is exactly seven days.

    arrange: copies one second either side of 7 days.
    act: prune.
    assert: only the older is deleted.
    """
    root = tmp_path / "crashed"
    for name, seconds in [("just-older", MAX_AGE + 1), ("just-younger", MAX_AGE - 1)]:
        (root / name).mkdir(parents=True)
        os.utime(root / name, (NOW - seconds, NOW - seconds))

    assert logs.prune() == ["just-older"]
    assert (root / "just-younger").is_dir()


def test_prune_without_a_directory(logs):
    """Pruning without a crash directory is a no-op.

    arrange: no copies were ever made.
    act: prune.
    assert: nothing pruned, no error.
    """
    assert logs.prune() == []
