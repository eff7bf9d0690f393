# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""Every job's runner logs reach the host, labelled, bounded: real runners on real LXD."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from github_runner_manager.job_logs import LINE_LIMIT, LOG_LIMIT

from . import test_metrics
from .conftest import TEST_REPO, run_in
from .test_manager import LABELS, wait_gone, wait_job, wait_online
from .test_metrics import events

# The metrics-enabled manager factory of test_metrics, shared as a fixture of this module.
metrics_manager = test_metrics.metrics_manager

pytestmark = pytest.mark.lxd

# The stand-in listener runs as `python3 .../bin/Runner.Listener run` (the image has no pkill).
SIGNAL_LISTENER = """
found=1
for d in /proc/[0-9]*; do
    command=$(tr '\\0' ' ' < "$d/cmdline" 2>/dev/null)
    case "$command" in
        *python3\\ */bin/Runner.Listener*) kill "-$1" "${d#/proc/}" && found=0 ;;
    esac
done
exit $found
"""
LABEL_KEYS = {
    "repository",
    "workflow",
    "job_id",
    "run_id",
    "runner",
    "instance_type",
    "conclusion",
    "flavor",
}


def job_files(tmp_path: Path) -> list[Path]:
    directory = tmp_path / "jobs"
    return sorted(directory.glob("*.log")) if directory.is_dir() else []


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="ascii").splitlines()]


def labels_of(path: Path) -> dict[str, Any]:
    lines = records(path)
    assert lines, f"{path} holds log lines"
    first = {k: v for k, v in lines[0].items() if k != "line"}
    assert set(first) == LABEL_KEYS
    assert all({k: v for k, v in r.items() if k != "line"} == first for r in lines)
    return first


def signal_listener(lxd_client, runner: str, signal: str) -> None:
    command = ["/bin/bash", "-c", SIGNAL_LISTENER, "signal", signal]
    result = run_in(lxd_client.instances.get(runner), command)
    assert result.exit_code == 0, result


def test_a_job_cancelled_by_a_stop_signal_leaves_its_log(
    metrics_manager, emulator, lxd_client, tmp_path
):
    """A job cancelled by a stop signal leaves its log, labelled cancelled.

    arrange: a runner in a job.
    act: SIGTERM its listener (the runner stopped); reconcile.
    assert: the job ends cancelled, and its log is kept, labelled so.
    """
    manager = metrics_manager(containers=1)
    runner = manager.reconcile().created[0]
    wait_online(emulator, 1)
    job = emulator.control.queue_job(TEST_REPO, LABELS, "echo stop-me; sleep 600")
    wait_job(emulator, job["id"], "in_progress")
    signal_listener(lxd_client, runner, "TERM")
    wait_job(emulator, job["id"], "completed")
    wait_gone(lxd_client, runner)

    report = manager.reconcile()

    assert report.ok and report.crashed == []
    (path,) = job_files(tmp_path)
    assert labels_of(path)["conclusion"] == "cancelled"
    assert "stop-me" in "\n".join(r["line"] for r in records(path))


def test_success_failure_and_cancelled_jobs_each_leave_one_labelled_log(
    metrics_manager,
    emulator,
    lxd_client,
    tmp_path,
):
    """Succeeded, failed and cancelled jobs each leave one labelled log.

    arrange: three runners.
    act: a job succeeds, one fails, one is cancelled; reconcile.
    assert: one job file per job, labelled with its repository, workflow, job, run, runner,
        instance type and conclusion, holding the runner's and the worker's _diag logs.
    """
    manager = metrics_manager(containers=3)
    manager.reconcile()
    wait_online(emulator, 3)
    good = emulator.control.queue_job(
        TEST_REPO, LABELS, "echo all-good-output", workflow="logs-ok", event="push"
    )
    bad = emulator.control.queue_job(
        TEST_REPO, LABELS, "echo about-to-fail; exit 3", workflow="logs-bad", event="push"
    )
    slow = emulator.control.queue_job(
        TEST_REPO, LABELS, "echo cancel-me; sleep 600", workflow="logs-cancel", event="push"
    )
    wait_job(emulator, good["id"], "completed")
    wait_job(emulator, bad["id"], "completed")
    wait_job(emulator, slow["id"], "in_progress")
    emulator.control.cancel_job(slow["id"])
    wait_job(emulator, slow["id"], "completed")
    runners = {}
    for job in (good, bad, slow):
        record = emulator.control.job(job["id"])
        runners[job["id"]] = record
        wait_gone(lxd_client, record["runner_name"])

    report = manager.reconcile()

    assert report.ok, report.errors
    files = job_files(tmp_path)
    assert len(files) == 3, files
    by_job = {labels_of(path)["job_id"]: path for path in files}
    expected = {good["id"]: "success", bad["id"]: "failure", slow["id"]: "cancelled"}
    assert set(by_job) == {str(job_id) for job_id in expected}
    marker = {good["id"]: "all-good-output", bad["id"]: "about-to-fail", slow["id"]: "cancel-me"}
    for job_id, conclusion in expected.items():
        path = by_job[str(job_id)]
        labels = labels_of(path)
        record = runners[job_id]
        assert labels["conclusion"] == conclusion
        assert labels["repository"] == TEST_REPO
        assert labels["run_id"] == str(record["run_id"])
        assert labels["runner"] == record["runner_name"]
        assert labels["instance_type"] == "container"
        assert labels["workflow"] == {"success": "logs-ok", "failure": "logs-bad"}.get(
            conclusion, "logs-cancel"
        )
        text = "\n".join(r["line"] for r in records(path))
        assert "==> _diag/Runner_" in text and "==> _diag/Worker_" in text
        assert "Listening for Jobs" in text
        assert marker[job_id] in text
    cancelled = "\n".join(r["line"] for r in records(by_job[str(slow["id"])]))
    assert "The job was cancelled" in cancelled
    assert report.crashed == []


def test_a_runner_writing_50_mib_leaves_at_most_the_cap(
    metrics_manager,
    emulator,
    lxd_client,
    tmp_path,
):
    """A runner writing 50 MiB of logs leaves at most the cap.

    arrange: a runner.
    act: its job prints 50 MiB of garbage; reconcile.
    assert: one job file, at most the cap of log text, with the truncation marker, the head and the
        tail of the logs; nothing from the garbage became a label.
    """
    manager = metrics_manager(containers=1)
    runner = manager.reconcile().created[0]
    wait_online(emulator, 1)
    script = (
        'echo \'{"repository": "evil/inject", "conclusion": "success"}\'; '
        "head -c 39321600 /dev/urandom | base64 -w 400; echo tail-of-the-job"
    )
    job = emulator.control.queue_job(TEST_REPO, LABELS, script, workflow="huge", event="push")
    wait_job(emulator, job["id"], "completed", timeout=300)
    wait_gone(lxd_client, runner, timeout=120)
    handed = (tmp_path / "state" / "runners" / runner / "exchange" / "runner-logs.txt").stat()

    report = manager.reconcile()

    assert report.ok, report.errors
    assert handed.st_size <= LOG_LIMIT
    (path,) = job_files(tmp_path)
    labels = labels_of(path)
    assert labels["repository"] == TEST_REPO
    assert labels["job_id"] == str(job["id"])
    lines = [r["line"] for r in records(path)]
    text = "\n".join(lines)
    assert sum(len(line) + 1 for line in lines) <= LOG_LIMIT + 2 * LINE_LIMIT
    assert "bytes of runner logs;" in text, "the truncation marker"
    assert "Listening for Jobs" in text, "the head"
    assert "tail-of-the-job" in text, "the tail"
    assert path.stat().st_size <= 2 * LOG_LIMIT
    print(f"50 MiB job: {handed.st_size} bytes handed over, {path.stat().st_size} bytes stored")


def test_a_killed_listener_is_crashed_with_its_logs(
    metrics_manager,
    emulator,
    lxd_client,
    tmp_path,
):
    """A killed listener makes a crashed runner whose logs are kept.

    arrange: a runner in a job.
    act: kill its listener (SIGKILL); reconcile.
    assert: the instance powers off and goes; the runner counts as crashed and its logs are kept,
        labelled `crashed`.
    """
    manager = metrics_manager(containers=1)
    runner = manager.reconcile().created[0]
    wait_online(emulator, 1)
    job = emulator.control.queue_job(
        TEST_REPO, LABELS, "echo doomed-job; sleep 600", workflow="killed", event="push"
    )
    wait_job(emulator, job["id"], "in_progress")
    signal_listener(lxd_client, runner, "KILL")
    started = time.monotonic()
    wait_gone(lxd_client, runner)
    gone_after = time.monotonic() - started

    report = manager.reconcile()

    assert report.crashed == [runner]
    assert events(tmp_path, "reconciliation")[-1]["crashed_runners"] == 1
    (path,) = job_files(tmp_path)
    labels = labels_of(path)
    assert labels["conclusion"] == "crashed"
    assert labels["runner"] == runner
    assert labels["workflow"] == "killed"
    text = "\n".join(r["line"] for r in records(path))
    assert "doomed-job" in text
    print(f"instance gone {gone_after:.1f} s after the listener was killed")


def test_a_runner_killed_with_its_start_script_is_crashed_with_its_logs(
    metrics_manager, emulator, lxd_client, tmp_path
):
    """A runner killed with its start script is crashed, its logs kept.

    arrange: a runner whose whole service is killed (no hand-over, the instance stays up).
    act: reconcile.
    assert: crashed; its _diag logs, copied before the instance was deleted, are kept as its job
        log, labelled `crashed`.
    """
    manager = metrics_manager(containers=1)
    runner = manager.reconcile().created[0]
    wait_online(emulator, 1)
    run_in(
        lxd_client.instances.get(runner), ["systemctl", "kill", "--signal=KILL", "github-runner"]
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(
        r["status"] == "online" for r in emulator.control.runners()
    ):
        time.sleep(0.5)

    report = manager.reconcile()

    assert report.crashed == [runner]
    (path,) = job_files(tmp_path)
    labels = labels_of(path)
    assert (labels["conclusion"], labels["runner"]) == ("crashed", runner)
    assert labels["repository"] == "unknown", "it never took a job"
    text = "\n".join(r["line"] for r in records(path))
    assert "==> _diag/Runner_" in text and "Listening for Jobs" in text
