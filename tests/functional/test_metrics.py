# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""Metric events, crash logs and the exchange directory, with real runners on real LXD."""

from __future__ import annotations

import json
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest

from github_runner_manager.cli import build_manager
from github_runner_manager.exchange import EXCHANGE_SIZE
from github_runner_manager.manager import RunnerManager

from .conftest import TEST_REPO, run_in
from .test_manager import LABELS, manager_config, wait_gone, wait_job, wait_online

pytestmark = pytest.mark.lxd


@pytest.fixture
def metrics_manager(emulator, tmp_path, lxd_client):
    built: list[RunnerManager] = []

    def _make(**runners: Any) -> RunnerManager:
        config = manager_config(emulator, tmp_path / "state", **runners)
        config = config.model_copy(
            update={
                "metrics": config.metrics.model_copy(
                    update={"enabled": True, "log_path": tmp_path / "metrics.log"}
                ),
                "crash_log_dir": tmp_path / "crashed",
                "job_log_dir": tmp_path / "jobs",
            }
        )
        manager = build_manager(config)
        built.append(manager)
        return manager

    yield _make
    for manager in built:
        manager.flush(busy=True, reconcile=False)
    leftovers = list((tmp_path / "state" / "runners").glob("*"))
    assert leftovers == [], "every runner's host directory is cleaned up"


def events(tmp_path: Path, name: str | None = None) -> list[dict[str, Any]]:
    path = tmp_path / "metrics.log"
    if not path.exists():
        return []
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    return [line for line in lines if name is None or line["event"] == name]


def test_a_job_produces_the_four_events(metrics_manager, emulator, lxd_client, tmp_path):
    """A job's runner produces the installed, start, stop and reconciliation events.

    arrange: a runner with metrics on, online.
    act: reconcile, run a job that sleeps 2 seconds, wait for its runner to go, reconcile.
    assert: runner_installed once with every stage and a duration matching them; runner_start with
        the workflow, repository, event, queue duration and idle time; runner_stop normal with the
        job's success and duration; 3 reconciliation events with no crash.
    """
    manager = metrics_manager(containers=1)
    runner = manager.reconcile().created[0]
    wait_online(emulator, 1)
    time.sleep(1)
    manager.reconcile()  # the runner is online: runner_installed is issued now
    installed = events(tmp_path, "runner_installed")
    assert [e["runner"] for e in installed] == [runner]
    stages = installed[0]["stages"]
    assert set(stages) == {"register", "create", "push", "start", "boot", "online"}
    assert all(value >= 0 for value in stages.values())
    # `start` overlaps with boot and online (LXD may return after the runner is already up):
    # the duration runs until the later of the runner listening and the creation's end.
    to_online = sum(stages[s] for s in ("register", "create", "push", "boot", "online"))
    creation = sum(stages[s] for s in ("register", "create", "push", "start"))
    assert installed[0]["duration"] == pytest.approx(max(to_online, creation), abs=0.1)

    job = emulator.control.queue_job(
        TEST_REPO, LABELS, "sleep 2; echo done", workflow="metrics-flow", event="push"
    )
    done = wait_job(emulator, job["id"], "completed")
    wait_gone(lxd_client, runner)
    report = manager.reconcile()

    assert report.ok, report.errors
    start = events(tmp_path, "runner_start")
    stop = events(tmp_path, "runner_stop")
    assert len(start) == 1 and len(stop) == 1
    assert start[0]["runner"] == stop[0]["runner"] == runner
    assert (start[0]["workflow"], start[0]["repo"], start[0]["github_event"]) == (
        "metrics-flow",
        TEST_REPO,
        "push",
    )
    api_job = emulator.control.job(done["id"])
    expected_queue = _seconds(api_job["started_at"]) - _seconds(api_job["created_at"])
    assert start[0]["queue_duration"] == pytest.approx(expected_queue, abs=1.0)
    assert start[0]["idle"] >= 0
    assert stop[0]["status"] == "normal"
    assert stop[0]["job_conclusion"] == "success"
    assert 2 <= stop[0]["job_duration"] < 30
    reconciliations = events(tmp_path, "reconciliation")
    assert len(reconciliations) == 3
    assert reconciliations[-1]["crashed_runners"] == 0
    assert reconciliations[-1]["expected_runners"] == 1
    assert reconciliations[-1]["rate_limit_remaining"] > 0
    again = [e for e in events(tmp_path, "runner_installed") if e["runner"] == runner]
    assert len(again) == 1, "runner_installed is issued once per runner"


def test_killed_runner_leaves_crash_logs(metrics_manager, emulator, lxd_client, tmp_path):
    """A runner whose service was killed leaves its crash logs and is counted.

    arrange: a runner whose service was killed (offline).
    act: reconcile.
    assert: the runner is reported crashed; its journal and _diag logs are kept; the reconciliation
        event counts 1 crashed runner.
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
    crash_dir = tmp_path / "crashed" / runner
    assert (crash_dir / "journal.log").stat().st_size > 0
    diag = list((crash_dir / "_diag").glob("*.log"))
    assert diag, "the runner's _diag logs were copied"
    assert any("Listening for Jobs" in path.read_text() for path in diag)
    assert events(tmp_path, "reconciliation")[-1]["crashed_runners"] == 1


def test_oversized_exchange_data_is_quarantined(metrics_manager, emulator, lxd_client, tmp_path):
    """Oversized exchange data from a job is quarantined, not believed.

    arrange: a runner whose job tries to write 10 MiB into the metrics exchange tmpfs.
    act: reconcile after the job.
    assert: the capped tmpfs held at most its size; the runner is quarantined with a capped
        archive; no runner_start is issued; the tmpfs is removed.
    """
    manager = metrics_manager(containers=1)
    runner = manager.reconcile().created[0]
    wait_online(emulator, 1)
    exchange = tmp_path / "state" / "runners" / runner / "exchange"
    assert exchange.is_mount(), "the exchange directory is a capped tmpfs"
    script = "head -c 10485760 /dev/zero > /metrics-exchange/pre-job.json || true"
    job = emulator.control.queue_job(TEST_REPO, LABELS, script)
    wait_job(emulator, job["id"], "completed")
    wait_gone(lxd_client, runner)
    written = (exchange / "pre-job.json").stat().st_size

    report = manager.reconcile()

    assert written <= EXCHANGE_SIZE < 10 * 1024 * 1024, "the job could not grow the directory"
    assert report.quarantined == [runner]
    assert events(tmp_path, "runner_start") == [], "nothing from corrupt data is believed"
    archive = tmp_path / "state" / "quarantine" / f"{runner}.tar.gz"
    with tarfile.open(archive) as tar:
        assert sum(member.size for member in tar) <= EXCHANGE_SIZE
    assert not exchange.exists(), "the tmpfs is unmounted and removed"


def _seconds(iso: str) -> float:
    import datetime

    return datetime.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def test_a_runner_refused_at_start_up_is_counted_crashed(
    metrics_manager, emulator, lxd_client, tmp_path
):
    """A runner GitHub refuses at start-up is counted as crashed with its own exit code.

    arrange: GitHub refuses the runner's version as deprecated.
    act: spawn, reconcile.
    assert: the listener's own exit code 7 (RunnerVersionDeprecated) is recorded, not the 0 the
        runner's run.sh would have turned it into (run-helper.sh.template), and the runner, dead
        before any job, is counted as crashed.
    """
    emulator.control.settings(deprecated_below="9.0.0")
    manager = metrics_manager(containers=1)
    (name,) = manager.reconcile().created
    post_job = tmp_path / "state" / "runners" / name / "exchange" / "post-job.json"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not post_job.exists():
        time.sleep(0.5)
    recorded = json.loads(post_job.read_text())
    wait_gone(lxd_client, name)
    emulator.control.settings(deprecated_below=None)

    report = manager.reconcile()

    assert (recorded["status"], recorded["exit_code"]) == ("abnormal", 7)
    assert name in report.crashed
    assert events(tmp_path, "reconciliation")[-1]["crashed_runners"] == 1
