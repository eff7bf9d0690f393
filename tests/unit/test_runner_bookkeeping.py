# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""RunnerBookkeeping: the runners' host data after a run, turned into events and kept logs."""

from __future__ import annotations

import json
import logging

from github_runner_manager.exchange import Installed, RunnerExchange
from github_runner_manager.job_logs import JobLogs
from github_runner_manager.metrics import MetricsLog
from github_runner_manager.planner import runner_name_pattern
from github_runner_manager.runner_metrics import RunnerBookkeeping

from .conftest import PREFIX

T0 = 1_780_000_000.0
LIVE = f"{PREFIX}-{1:012x}"
FAILED = f"{PREFIX}-{2:012x}"
CORRUPT = f"{PREFIX}-{3:012x}"


def write_runner(exchange: RunnerExchange, runner: str, files: dict[str, str]) -> None:
    """A runner's host directory: the manager's creation record, and what it handed over."""
    exchange.create(runner)
    installed = Installed(
        started=T0,
        finished=T0 + 8.0,
        instance_type="container",
        stages={"create": 2.0},
        start_requested=T0 + 5.5,
    )
    exchange.record_installed(runner, installed)
    for name, text in files.items():
        (exchange.exchange_dir(runner) / name).write_text(text)


def test_bookkeeping_sorts_live_finished_and_corrupt_runners(tmp_path, caplog):
    """Live runners reported once, a start-up failure crashed, corrupt data set aside.

    arrange: a live runner that came online, a finished runner whose listener exited with 1
        before it came online, and a runner whose pre-job report is not JSON.
    act: process the host data twice.
    assert: the live runner's runner_installed event is issued once and its data kept; the
        failed runner is crashed (one warning), its event issued and its data deleted; the
        corrupt one is quarantined.
    """
    exchange = RunnerExchange(tmp_path / "runners", tmp_path / "quarantine", run=lambda c: None)
    write_runner(exchange, LIVE, {"online.timestamp": str(T0 + 20)})
    post = {"timestamp": T0 + 30, "status": "abnormal", "exit_code": 1}
    write_runner(exchange, FAILED, {"post-job.json": json.dumps(post)})
    write_runner(exchange, CORRUPT, {"pre-job.json": "{not json"})
    metrics = MetricsLog(tmp_path / "metrics.log")
    bookkeeping = RunnerBookkeeping(
        exchange,
        JobLogs(tmp_path / "jobs"),
        metrics,
        name_pattern=runner_name_pattern(PREFIX),
        flavor="github-runner",
        lookup=None,
    )

    with caplog.at_level(logging.WARNING):
        first = bookkeeping.process(live={LIVE}, crashed=set())
    second = bookkeeping.process(live={LIVE}, crashed=set())

    assert first.crashed == [FAILED] and first.quarantined == [CORRUPT]
    assert second.crashed == [] and second.quarantined == []
    events = [json.loads(line) for line in metrics.path.read_text().splitlines()]
    assert sorted((e["event"], e["runner"]) for e in events) == [
        ("runner_installed", LIVE),
        ("runner_installed", FAILED),
    ]
    warnings = [r.getMessage() for r in caplog.records if "before it came online" in r.message]
    assert warnings == [
        f"runner {FAILED} failed before it came online; its listener exited with 1"
    ]
    assert exchange.runners() == [LIVE]
