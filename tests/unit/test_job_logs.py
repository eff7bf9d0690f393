# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""Per-job runner log files: labels, bounds, hostile content and pruning."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from github_runner_manager.exchange import RunnerExchange
from github_runner_manager.github import JobInfo
from github_runner_manager.job_logs import (
    LINE_LIMIT,
    JobLabels,
    JobLogs,
    gather,
    sanitise,
)
from github_runner_manager.manager import RunnerManager

from .builders import manager_on_fakes
from .conftest import make_config

NOW = 1_780_000_000.0
DAY = 24 * 3600
LABELS = JobLabels(
    runner="grt-0-00000000abcd",
    instance_type="container",
    flavor="github-runner",
    repository="owner/repo",
    workflow="CI build",
    job_id=42,
    run_id=7,
    conclusion="failure",
)


def lines_of(path: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in path.read_text(encoding="ascii").splitlines()]


def test_each_line_carries_the_sanitised_labels(tmp_path):
    """Each stored line is a JSON record with the job's sanitised labels and the text.

    arrange: a handed-over log.
    act: store.
    assert: JSON lines with labels and the text.
    """
    source = tmp_path / "runner-logs.txt"
    source.write_text("==> _diag/Runner_1.log <==\nListening for Jobs\nJob failed\n")
    keeper = JobLogs(tmp_path / "jobs", clock=lambda: NOW)

    path = keeper.store(source, LABELS)

    assert path is not None and path.parent == tmp_path / "jobs"
    records = lines_of(path)
    assert [r["line"] for r in records] == [
        "==> _diag/Runner_1.log <==",
        "Listening for Jobs",
        "Job failed",
    ]
    assert {k: v for k, v in records[0].items() if k != "line"} == {
        "runner": "grt-0-00000000abcd",
        "instance_type": "container",
        "flavor": "github-runner",
        "repository": "owner/repo",
        "workflow": "CI_build",
        "job_id": "42",
        "run_id": "7",
        "conclusion": "failure",
    }


def test_hostile_text_cannot_add_or_change_a_label(tmp_path):
    """Hostile log text cannot add or change a label.

    arrange: a log holding JSON, quotes, control bytes, invalid UTF-8.
    act: store.
    assert: every line parses to exactly the labels and the text; the text is kept escaped.
    """
    source = tmp_path / "runner-logs.txt"
    evil = b'{"repository": "evil/x", "conclusion": "success"}\n"\x00\x1b[31m\xff\xfe\r\n'
    source.write_bytes(evil)
    keeper = JobLogs(tmp_path / "jobs", clock=lambda: NOW)

    path = keeper.store(source, LABELS)

    assert path is not None
    for record in lines_of(path):
        assert record["repository"] == "owner/repo"
        assert record["conclusion"] == "failure"
        assert set(record) == {*LABELS.as_dict(), "line"}
    assert '"repository": "evil/x"' in lines_of(path)[0]["line"]


def test_label_values_are_sanitised_strictly():
    """Label values are sanitised to a small character set and a bounded length.

    arrange: hostile label values.
    act: sanitise.
    assert: a small set, bounded length.
    """
    assert sanitise('a"b}\n{c=d') == "a_b___c_d"
    assert sanitise("x" * 500) == "x" * 100
    assert sanitise("") == "unknown"
    assert sanitise(None) == "unknown"
    assert sanitise("owner/repo.name-1") == "owner/repo.name-1"


def test_a_huge_log_is_cut_at_the_limit_with_a_marker(tmp_path):
    """A huge log is cut at the limit, with a marker.

    arrange: a long line, then 50 KiB, read with a limit 1 KiB past the line.
    act: store.
    assert: at most the limit of text, the marker, long lines cut.
    """
    source = tmp_path / "runner-logs.txt"
    source.write_bytes(b"y" * (LINE_LIMIT * 2) + b"\n" + b"z" * 50 * 1024)
    limit = 2 * LINE_LIMIT + 1024
    keeper = JobLogs(tmp_path / "jobs", limit=limit, clock=lambda: NOW)

    path = keeper.store(source, LABELS)

    assert path is not None
    texts = [r["line"] for r in lines_of(path)]
    assert texts[0] == "y" * LINE_LIMIT + " [github-runner: line truncated]"
    assert texts[1] == "z" * 1023
    assert texts[-1] == f"[github-runner: log truncated to {limit} bytes]"
    assert len(texts) == 3


def test_a_link_or_missing_file_stores_nothing(tmp_path):
    """A symbolic link or a missing file stores nothing.

    arrange: a symbolic link to a secret, then nothing.
    act: store.
    assert: None, no file.
    """
    secret = tmp_path / "secret"
    secret.write_text("token")
    source = tmp_path / "runner-logs.txt"
    source.symlink_to(secret)
    keeper = JobLogs(tmp_path / "jobs", clock=lambda: NOW)

    assert keeper.store(source, LABELS) is None
    source.unlink()
    assert keeper.store(source, LABELS) is None
    assert not (tmp_path / "jobs").exists() or not list((tmp_path / "jobs").iterdir())


def test_prune_drops_old_files_then_the_oldest_past_the_total(tmp_path):
    """Pruning drops files past the retention, then the oldest past the total size.

    arrange: files aged 10, 3, 2, 1 days of 1 KiB each, a 2.5 KiB total.
    act: prune.
    assert: the 10-day one (retention) and the 3-day one (total) go; others stay.
    """
    directory = tmp_path / "jobs"
    directory.mkdir()
    names = {}
    for age in (10, 3, 2, 1):
        path = directory / f"20260101T0000{age:02d}-000000-grt-0-runner{age}.log"
        path.write_bytes(b"x" * 1024)
        os.utime(path, (NOW - age * DAY, NOW - age * DAY))
        names[age] = path.name
    other = directory / "not-ours.txt"
    other.write_text("kept")
    os.utime(other, (NOW - 30 * DAY, NOW - 30 * DAY))
    keeper = JobLogs(directory, retention_days=7, total_limit=2560, clock=lambda: NOW)

    pruned = keeper.prune()

    assert pruned == [names[10], names[3]]
    assert sorted(p.name for p in directory.iterdir()) == sorted(
        [names[2], names[1], "not-ours.txt"]
    )


def test_storing_prunes(tmp_path):
    """Storing a log prunes the directory.

    arrange: a total limit of one file.
    act: store two.
    assert: only the newer is left.
    """
    source = tmp_path / "runner-logs.txt"
    source.write_text("line\n")
    clock = [NOW]
    keeper = JobLogs(tmp_path / "jobs", total_limit=400, clock=lambda: clock[0])
    first = keeper.store(source, LABELS)
    assert first is not None
    os.utime(first, (NOW - 60, NOW - 60))
    clock[0] = NOW + 1
    second = keeper.store(source, LABELS)

    assert second is not None and second.exists()
    assert not first.exists()


def test_gather_concatenates_oldest_first_and_keeps_head_and_tail(tmp_path):
    """Gathering joins the runner's logs oldest first and keeps the head and tail of a long one.

    arrange: a small runner log, then a large worker log.
    act: gather with a 2000-byte limit.
    assert: at most the limit; the head, the marker and the tail are there.
    """
    diag = tmp_path / "_diag"
    diag.mkdir()
    (diag / "Runner_1.log").write_text("Listening for Jobs\n")
    os.utime(diag / "Runner_1.log", (NOW - 10, NOW - 10))
    (diag / "Worker_2.log").write_bytes(b"x" * 50_000 + b"END")
    (diag / "link.log").symlink_to(diag / "Runner_1.log")

    small = gather(diag)
    text = gather(diag, limit=2000)

    assert small.startswith(b"==> _diag/Runner_1.log <==\nListening for Jobs\n")
    assert b"==> _diag/Worker_2.log <==\n" in small and b"link.log" not in small
    assert len(text) <= 2000
    assert text.startswith(b"==> _diag/Runner_1.log <==")
    assert b"bytes left out here]" in text
    assert text.endswith(b"END\n")
    assert gather(tmp_path / "missing") == b""


def _metrics_manager(tmp_path, lxd, github, clock) -> RunnerManager:
    config = make_config(
        tmp_path,
        runners={"containers": 1},
        metrics={"enabled": True, "log_path": str(tmp_path / "metrics.log")},
    )
    exchange = RunnerExchange(tmp_path / "state" / "runners", tmp_path / "q", run=lambda c: None)
    return manager_on_fakes(config, lxd, github, clock, tmp_path, exchange=exchange)


def _finish(tmp_path, lxd, runner: str, exit_code: int) -> None:
    """What a runner leaves in its exchange directory after a job, then its instance goes."""
    exchange = tmp_path / "state" / "runners" / runner / "exchange"
    now = time.time()
    (exchange / "pre-job.json").write_text(
        json.dumps(
            {
                "timestamp": now - 5,
                "workflow": "CI",
                "repository": "test-owner/test-repo",
                "event": "push",
                "workflow_run_id": 77,
            }
        )
    )
    status = "normal" if exit_code == 0 else "abnormal"
    (exchange / "post-job.json").write_text(
        json.dumps({"timestamp": now, "status": status, "exit_code": exit_code})
    )
    (exchange / "runner-logs.txt").write_text("==> _diag/Worker_1.log <==\nstep failed\n")
    lxd.delete_instance(runner)


@pytest.mark.parametrize(
    "exit_code, github_conclusion, conclusion, crashed",
    [(0, "failure", "failure", False), (137, None, "crashed", True), (0, None, "normal", False)],
    ids=["github-says-failure", "listener-killed", "job-unknown-to-github"],
)
def test_a_finished_runner_leaves_one_labelled_job_log(
    tmp_path, lxd, github, clock, exit_code, github_conclusion, conclusion, crashed
):
    """A finished runner leaves one job log, labelled with its job.

    arrange: a runner that ran a job and handed its logs over; its instance is gone.
    act: reconcile.
    assert: one job file with the job's labels; a killed listener is crashed.
    """
    manager = _metrics_manager(tmp_path, lxd, github, clock)
    (runner,) = manager.reconcile().created
    _finish(tmp_path, lxd, runner, exit_code)
    if github_conclusion is not None:
        github.jobs[runner] = JobInfo(
            id=4242,
            created_at="2026-06-01T12:00:00Z",
            started_at="2026-06-01T12:00:01Z",
            conclusion=github_conclusion,
            runner_name=runner,
        )

    report = manager.reconcile()

    assert report.crashed == ([runner] if crashed else [])
    (path,) = (tmp_path / "jobs").glob("*.log")
    records = lines_of(path)
    assert [r["line"] for r in records] == ["==> _diag/Worker_1.log <==", "step failed"]
    assert {k: v for k, v in records[0].items() if k != "line"} == {
        "runner": runner,
        "instance_type": "container",
        "flavor": "github-runner",
        "repository": "test-owner/test-repo",
        "workflow": "CI",
        "job_id": "4242" if github_conclusion else "unknown",
        "run_id": "77",
        "conclusion": conclusion,
    }
    assert not (tmp_path / "state" / "runners" / runner).exists()


def test_the_stored_file_is_bounded_whatever_the_lines(tmp_path):
    """The stored file stays bounded whatever the lines are.

    arrange: 64 KiB of empty lines, then of control characters: labels and escaping would grow them
        many times over.
    act: store each with a 64 KiB limit.
    assert: the file holds at most twice the limit, with a marker, the first and last lines.
    """
    limit = 64 * 1024
    keeper = JobLogs(tmp_path / "jobs", limit=limit, clock=lambda: NOW)
    cases = (("empty", b"\n" * (limit - 100)), ("control", (b"\x01" * 99 + b"\n") * 600))
    for name, content in cases:
        source = tmp_path / f"{name}.txt"
        source.write_bytes(b"first\n" + content + b"last\n")
        assert source.stat().st_size <= limit

        path = keeper.store(source, LABELS)

        assert path is not None
        assert path.stat().st_size <= 2 * limit, name
        texts = [r["line"] for r in lines_of(path)]
        assert (texts[0], texts[-1]) == ("first", "last"), name
        assert any("lines left out" in t for t in texts), name
        path.unlink()
