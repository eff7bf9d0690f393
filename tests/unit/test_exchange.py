# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""Runners' host directories: the capped tmpfs, reading untrusted data, quarantine."""

from __future__ import annotations

import json
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from github_runner_manager.errors import RunnerManagerError
from github_runner_manager.exchange import (
    EXCHANGE_SIZE,
    FILE_LIMIT,
    INSTANCE_PATH,
    CorruptDataError,
    Installed,
    PostJob,
    PreJob,
    RunnerExchange,
)
from github_runner_manager.templates import TemplateRenderer, package_templates

from .conftest import PREFIX

RUNNER = f"{PREFIX}-00000000beef"
NOW = 1_780_000_000.0
PRE_JOB = {
    "timestamp": NOW - 100,
    "workflow": "CI",
    "repository": "test-owner/test-repo",
    "event": "push",
    "workflow_run_id": 42,
}
POST_JOB = {"timestamp": NOW - 10, "status": "normal", "exit_code": 0}


class FakeRun:
    """Records mount/umount commands instead of running them."""

    def __init__(self) -> None:
        self.commands: list[list[str]] = []
        self.fail: Exception | None = None

    def __call__(self, command: list[str]) -> None:
        self.commands.append(command)
        if self.fail is not None:
            raise self.fail


@pytest.fixture
def run() -> FakeRun:
    return FakeRun()


@pytest.fixture
def root(tmp_path) -> Path:
    return tmp_path / "runners"


@pytest.fixture
def store(tmp_path, root, run) -> RunnerExchange:
    return RunnerExchange(root, tmp_path / "quarantine", run=run, clock=lambda: NOW)


@pytest.fixture
def exchange(store) -> Path:
    """A created runner's exchange directory (a plain directory here: nothing is mounted)."""
    store.create(RUNNER)
    return store.exchange_dir(RUNNER)


def write_valid(exchange: Path) -> None:
    (exchange / "boot.timestamp").write_text(f"{NOW - 300}\n")
    (exchange / "online.timestamp").write_text(f"{NOW - 200}")
    (exchange / "pre-job.json").write_text(json.dumps(PRE_JOB))
    (exchange / "post-job.json").write_text(json.dumps(POST_JOB))


def test_create_mounts_a_capped_tmpfs_and_returns_the_device(store, root, run):
    """Creating an exchange mounts a capped tmpfs and returns the disk device for it.

    arrange: a store with a 64 KiB cap.
    act: create.
    assert: the directory, one tmpfs mount with size and mode options, and the disk device putting
        it at /metrics-exchange.
    """
    store = RunnerExchange(root, root.parent / "q", size=64 * 1024, run=run)

    device = store.create(RUNNER)

    exchange = root / RUNNER / "exchange"
    assert exchange.is_dir()
    assert device == {"type": "disk", "source": str(exchange), "path": INSTANCE_PATH}
    assert run.commands == [
        [
            "/usr/bin/mount",
            "-t",
            "tmpfs",
            "-o",
            "size=65536,mode=1777,nosuid,nodev,noexec",
            f"grt-{RUNNER}",
            str(exchange),
        ]
    ]


def test_create_uses_the_default_cap(store, run):
    """An exchange is capped at EXCHANGE_SIZE by default.

    arrange: the default store.
    act: create.
    assert: the mount is capped at EXCHANGE_SIZE.
    """
    store.create(RUNNER)

    assert f"size={EXCHANGE_SIZE}," in run.commands[0][4]


@pytest.mark.parametrize(
    "failure",
    [subprocess.CalledProcessError(32, ["mount"]), FileNotFoundError("/usr/bin/mount")],
)
def test_failed_mount_removes_the_directory(store, root, run, failure):
    """A failed mount leaves no exchange directory behind.

    arrange: mount fails.
    act: create.
    assert: RunnerManagerError naming the runner, no directory left.
    """
    run.fail = failure

    with pytest.raises(
        RunnerManagerError, match=f"cannot mount the exchange directory of {RUNNER}"
    ):
        store.create(RUNNER)

    assert not (root / RUNNER).exists()


def test_read_valid_data(store, exchange):
    """Valid runner reports and the installed record are read back.

    arrange: an installed record and every runner report, valid.
    act: read.
    assert: each parsed; the installed event not yet reported.
    """
    installed = Installed(
        started=NOW - 400,
        finished=NOW - 350,
        instance_type="container",
        stages={"register": 1.0, "create": 20.0},
        start_requested=NOW - 360,
    )
    store.record_installed(RUNNER, installed)
    write_valid(exchange)

    data = store.read(RUNNER)

    assert data.name == RUNNER
    assert data.installed == installed
    assert data.boot == NOW - 300
    assert data.online == NOW - 200
    assert data.pre_job == PreJob(**PRE_JOB)
    assert data.post_job == PostJob(**POST_JOB)
    assert data.installed_reported is False


def test_read_a_new_runner_has_nothing_yet(store, exchange):
    """A runner that has reported nothing reads as all None.

    arrange: a runner just created, nothing reported.
    act: read.
    assert: all None, the installed event not reported.
    """
    data = store.read(RUNNER)

    assert (data.installed, data.boot, data.online, data.pre_job, data.post_job) == (None,) * 5
    assert data.installed_reported is False


def test_installed_reported_is_remembered(store, exchange):
    """A reported runner_installed event is remembered.

    arrange: a runner.
    act: mark its runner_installed event reported.
    assert: read says so.
    """
    store.mark_installed_reported(RUNNER)

    assert store.read(RUNNER).installed_reported is True


def test_unreadable_installed_record_is_ignored(store, exchange, root):
    """A broken installed record is ignored.

    arrange: a broken installed.json (written by no runner).
    act: read.
    assert: installed is None.
    """
    (root / RUNNER / "installed.json").write_text('{"started": 1}')

    assert store.read(RUNNER).installed is None


def test_extra_fields_in_runner_reports_are_ignored(store, exchange):
    """Unknown fields in a runner report are ignored.

    arrange: pre-job.json with an unknown field.
    act: read.
    assert: parsed anyway.
    """
    (exchange / "pre-job.json").write_text(json.dumps({**PRE_JOB, "note": "extra"}))

    data = store.read(RUNNER)

    assert data.pre_job == PreJob(**PRE_JOB)


def corrupt_cases() -> list[tuple[str, str, bytes]]:
    pre = {**PRE_JOB}
    return [
        ("oversized", "pre-job.json", b" " * (FILE_LIMIT + 1)),
        ("invalid-json", "pre-job.json", b"{not json"),
        ("json-array", "post-job.json", b"[]"),
        ("bad-repository", "pre-job.json", json.dumps({**pre, "repository": "a/b;rm"}).encode()),
        ("repository-no-owner", "pre-job.json", json.dumps({**pre, "repository": "x"}).encode()),
        ("negative-run-id", "pre-job.json", json.dumps({**pre, "workflow_run_id": -1}).encode()),
        ("long-workflow", "pre-job.json", json.dumps({**pre, "workflow": "w" * 257}).encode()),
        ("zero-timestamp", "pre-job.json", json.dumps({**pre, "timestamp": 0}).encode()),
        ("bad-status", "post-job.json", json.dumps({**POST_JOB, "status": "crashed"}).encode()),
        ("exit-code", "post-job.json", json.dumps({**POST_JOB, "exit_code": 256}).encode()),
        ("not-a-number", "boot.timestamp", b"yesterday"),
        ("future", "boot.timestamp", str(NOW + 3601).encode()),
        ("negative", "online.timestamp", b"-5"),
        ("zero", "boot.timestamp", b"0"),
        ("nan", "boot.timestamp", b"nan"),
        ("infinity", "online.timestamp", b"inf"),
        ("non-utf8-timestamp", "boot.timestamp", b"\xff\xfe1780000000"),
        ("non-utf8-json", "pre-job.json", b'{"workflow": "\xe9t\xe9"}'),
    ]


@pytest.mark.parametrize(
    ("filename", "content"),
    [case[1:] for case in corrupt_cases()],
    ids=[case[0] for case in corrupt_cases()],
)
def test_corrupt_runner_data_is_refused(store, exchange, filename, content):
    """Corrupt runner-written data is refused.

    arrange: one runner-written file oversized, malformed, out of range or not UTF-8.
    act: read.
    assert: CorruptDataError.
    """
    write_valid(exchange)
    (exchange / filename).write_bytes(content)

    with pytest.raises(CorruptDataError):
        store.read(RUNNER)


def test_timestamp_just_inside_the_future_margin_is_accepted(store, exchange):
    """A timestamp just within the future margin for clock skew is kept.

    arrange: a boot timestamp within an hour ahead (clock skew).
    act: read.
    assert: kept.
    """
    (exchange / "boot.timestamp").write_text(str(NOW + 3599))

    assert store.read(RUNNER).boot == NOW + 3599


@pytest.mark.parametrize("target", ["/etc/hostname", "other.txt"])
def test_symlink_is_refused(store, exchange, target):
    """A runner report that is a symlink is refused without reading its target.

    arrange: a runner report that is a symlink (to a host file or a sibling).
    act: read.
    assert: CorruptDataError; the link target is never read.
    """
    (exchange / "other.txt").write_text("1780000000")
    (exchange / "boot.timestamp").symlink_to(target)

    with pytest.raises(CorruptDataError, match="symbolic link"):
        store.read(RUNNER)


def test_directory_in_place_of_a_report_is_refused(store, exchange):
    """A directory in place of a runner report is refused.

    arrange: pre-job.json is a directory.
    act: read.
    assert: CorruptDataError saying it is not a regular file.
    """
    (exchange / "pre-job.json").mkdir()

    with pytest.raises(CorruptDataError, match="not a regular file"):
        store.read(RUNNER)


def test_oversized_exchange_directory_is_refused(tmp_path, root, run, exchange):
    """An exchange directory holding more than its cap is refused.

    arrange: small files totalling more than the cap.
    act: read.
    assert: CorruptDataError saying how many bytes it holds.
    """
    store = RunnerExchange(root, tmp_path / "q", size=2048, run=run, clock=lambda: NOW)
    for index in range(3):
        (exchange / f"junk-{index}").write_bytes(b"x" * 1000)

    with pytest.raises(CorruptDataError, match="holds 3000 bytes"):
        store.read(RUNNER)


def test_the_handed_over_log_does_not_count_as_metadata(tmp_path, root, run, exchange):
    """The runner log handed over for collection does not count towards the metadata cap.

    arrange: a 2 MiB runner log next to valid metadata.
    act: read.
    assert: the metadata is read, no quarantine.
    """
    store = RunnerExchange(root, tmp_path / "q", run=run, clock=lambda: NOW)
    (exchange / "boot.timestamp").write_text(f"{NOW - 5}")
    store.log_file(RUNNER).write_bytes(b"x" * 2 * 1024 * 1024)

    assert store.read(RUNNER).boot == NOW - 5


def test_quarantine_archives_regular_files_and_deletes_the_directory(
    store, exchange, root, tmp_path, run
):
    """Quarantine archives the regular files and deletes the runner's directory.

    arrange: a runner with corrupt data, a symlink and a subdirectory.
    act: quarantine.
    assert: a tar.gz of the regular files only; the runner's directory is gone; no umount (the
        directory is not a mount point).
    """
    write_valid(exchange)
    (exchange / "pre-job.json").write_text("{corrupt")
    (exchange / "sub").mkdir()
    (exchange / "sub" / "note.txt").write_text("note")
    (exchange / "link").symlink_to("/etc/hostname")
    run.commands.clear()

    archive = store.quarantine(RUNNER)

    assert archive == tmp_path / "quarantine" / f"{RUNNER}.tar.gz"
    with tarfile.open(archive, "r:gz") as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]  # regular files always have a reader
        assert all(m.isfile() for m in tar.getmembers())
    assert members == {
        "boot.timestamp": f"{NOW - 300}\n".encode(),
        "online.timestamp": f"{NOW - 200}".encode(),
        "post-job.json": json.dumps(POST_JOB).encode(),
        "pre-job.json": b"{corrupt",
        "sub/note.txt": b"note",
    }
    assert not (root / RUNNER).exists()
    assert run.commands == []


def test_quarantine_that_cannot_write_still_deletes(store, exchange, root, tmp_path):
    """A quarantine that cannot write its archive still deletes the directory.

    arrange: the quarantine path is a file, so no archive can be written.
    act: quarantine.
    assert: None, and the runner's directory is deleted anyway.
    """
    (tmp_path / "quarantine").write_text("in the way")

    assert store.quarantine(RUNNER) is None
    assert not (root / RUNNER).exists()


def test_delete_of_a_plain_directory_does_not_unmount(store, exchange, root, run):
    """Deleting a runner directory that is not a mount point does not unmount.

    arrange: a runner directory that is not a mount point.
    act: delete.
    assert: no umount command, the directory is gone and no runner listed.
    """
    write_valid(exchange)
    run.commands.clear()

    store.delete(RUNNER)

    assert run.commands == []
    assert not (root / RUNNER).exists()
    assert store.runners() == []


def test_delete_of_an_unknown_runner_is_a_no_op(store, run):
    """Deleting an unknown runner is a no-op.

    arrange: nothing created.
    act: delete.
    assert: no command, no error.
    """
    store.delete(RUNNER)

    assert run.commands == []


def test_runners_lists_only_valid_runner_directories(store, root):
    """Listing runners finds only directories with valid runner names.

    arrange: two runners, a stray file and a directory with an invalid name.
    act: runners.
    assert: the two runners, sorted.
    """
    other = f"{PREFIX}-00000000aaaa"
    store.create(RUNNER)
    store.create(other)
    (root / "stray-file").write_text("x")
    (root / "Not_A_Runner").mkdir()

    assert store.runners() == sorted([other, RUNNER])


def test_runners_without_a_root(store):
    """Listing runners without a root directory finds none.

    arrange: no runner ever created.
    act: runners.
    assert: empty.
    """
    assert store.runners() == []


@pytest.mark.parametrize(
    "name",
    ["../etc", "Runner", "runner/../../x", "", "-runner", "a" * 64, "runner name", "1runner"],
)
def test_invalid_runner_names_are_refused(store, run, tmp_path, name):
    """Every method refuses a name that is no runner name.

    arrange: a name that is no runner name (path tricks, case, length).
    act: every method.
    assert: ValueError each time, no command run, nothing written.
    """
    calls = [
        lambda: store.create(name),
        lambda: store.exchange_dir(name),
        lambda: store.read(name),
        lambda: store.quarantine(name),
        lambda: store.delete(name),
        lambda: store.mark_installed_reported(name),
        lambda: store.record_installed(name, Installed(1.0, 2.0, "container", {})),
    ]
    for call in calls:
        with pytest.raises(ValueError, match="invalid runner name"):
            call()

    assert run.commands == []
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_dangling_symlink_is_refused(store, exchange):
    """A runner report that is a dangling symlink is refused.

    arrange: a report that is a dangling symlink.
    act: read.
    assert: CorruptDataError saying it is a symbolic link.
    """
    (exchange / "pre-job.json").symlink_to(exchange / "missing")

    with pytest.raises(CorruptDataError, match="symbolic link"):
        store.read(RUNNER)


def test_empty_timestamp_is_not_written_yet(store, exchange):
    """An empty timestamp file is taken as not written yet.

    arrange: an empty timestamp file (a write in progress).
    act: read.
    assert: no value.
    """
    (exchange / "online.timestamp").write_bytes(b"")

    assert store.read(RUNNER).online is None


@pytest.mark.parametrize(
    "workflow",
    [
        "deploy " * 300,  # long
        "ビルドとテスト" * 60,  # non-ASCII: 6 bytes each when escaped
        "🚀 release " * 100,  # characters outside the BMP: 12 bytes each when escaped
        "bad \udcff bytes",  # an undecodable byte in the environment
    ],
    ids=["long", "non-ascii", "astral", "undecodable"],
)
def test_the_job_started_hook_stays_within_the_file_limit(tmp_path, root, run, workflow):
    """The pre-job hook's report stays within the file limit for long workflow names.

    arrange: a long or non-ASCII workflow name.
    act: run the hook's writer, then read.
    assert: the report is under the 1 KiB limit and accepted (not quarantined), with the name cut,
        not replaced.
    """
    store = RunnerExchange(root, tmp_path / "quarantine", run=run, clock=time.time)
    store.create(RUNNER)
    exchange = store.exchange_dir(RUNNER)
    script = TemplateRenderer(package_templates()).render("pre-job.sh.j2", dockerhub_mirror="")
    writer = script.split("<<'PYTHON'", 1)[1].split("\n", 1)[1].split("\nPYTHON\n", 1)[0]
    environment = {
        "PATH": "/usr/bin:/bin",
        "GITHUB_WORKFLOW": workflow,
        "GITHUB_REPOSITORY": "owner/repo",
        "GITHUB_EVENT_NAME": "push",
        "GITHUB_RUN_ID": "123",
    }

    subprocess.run(
        ["/usr/bin/python3", "-c", writer, str(exchange / "pre-job.json")],
        env=environment,
        check=True,
        timeout=30,
    )
    data = store.read(RUNNER)

    assert (exchange / "pre-job.json").stat().st_size <= FILE_LIMIT
    assert data.pre_job is not None
    assert data.pre_job.workflow[:4] == workflow[:4], "cut, not replaced"
    assert data.pre_job.workflow_run_id == 123
