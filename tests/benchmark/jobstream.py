# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""The job-stream benchmark: K queued jobs on a fleet of N runners, as production runs it.

The manager runs as the charm runs it: the replenisher as a long-running process (the
`replenish` command, as its systemd service starts it), and the check-interval timer's
reconcile as a separate process every interval. After the initial fill the benchmark calls no
reconcile itself; it queues K jobs at once in the emulator and watches.

Measured, per mode:

- makespan: from queueing the K jobs to the last one completed;
- the ideal makespan: ceil(K/N) x (job time + the floor of one runner), the floor being a raw
  pylxd create + start of one container shaped like a runner, measured in the same run;
- queue wait per job: queued -> picked up by a runner (median, p95, max);
- recovery per job end: the job seen completed -> the next fresh runner seen online (the i-th
  job end is paired with the i-th fresh runner, both in time order; median, p95, max);
- GitHub API calls and rate-limit units per job (the emulator's counters, the runners' own
  calls excluded).

Modes: `service` (replenisher on, timer at the default interval: it does not fire within the
run) and `timer` (replenisher off, timer only, at a short interval so the stream ends in bounded
time). The timer is simulated without its random delay (its best case).
"""

from __future__ import annotations

import ast
import contextlib
import datetime
import math
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from github_runner_manager.errors import LxdError
from github_runner_manager.lxd import TAG_STANDBY, TAG_UNIT, InstanceEvent, LxdEventStream

from . import harness, scenarios
from .scenarios import Bench

RUNNERS = 4
JOBS = 24
JOB_SECONDS = 5
DEFAULT_INTERVAL_MINUTES = 10
TIMER_ONLY_INTERVAL = 30.0
STREAM_TIMEOUT = 1800.0
# API routes the manager calls (the runners' own calls, to the job and run-service routes, are
# not the manager's cost).
MANAGER_ROUTE_MARKERS = ("/actions/runners",)


def _percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))
    return round(ordered[index], 2)


def _spread(values: list[float]) -> dict[str, float | None]:
    return {
        "median": round(statistics.median(values), 2) if values else None,
        "p95": _percentile(values, 0.95),
        "max": round(max(values), 2) if values else None,
        "n": len(values),
    }


_LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \w+ [\w.]+: (.*)$")
_BATCH = re.compile(
    r"batch of (\d+) request\(s\): coalesced ([\d.]+)s, lock wait ([\d.]+)s, (\d+) live, "
    r"(\d+) created \(([^)]*)\) in ([\d.]+)s"
)
_CREATED = re.compile(r"runner (\S+) \(\w+\) created: (\{.*\})")
_ADOPTED = re.compile(r"standby (\S+) is runner now: (\{.*\})")


def _log_entries(log_path: Path) -> list[tuple[float, str]]:
    entries = []
    for line in log_path.read_text(errors="replace").splitlines():
        match = _LOG_LINE.match(line)
        if match:
            stamp = datetime.datetime.strptime(match[1], "%Y-%m-%d %H:%M:%S,%f").timestamp()
            entries.append((stamp, match[2]))
    return entries


def replenisher_phases(log_path: Path, online: dict[str, float]) -> dict[str, Any]:
    """Where a replacement's time goes, per replacement runner, from the replenisher's log.

    The replenisher logs one line per batch (requests, coalescing delay, lock wait, live count,
    runners created, duration) and the spawner one per runner (its stages: register, create,
    push, start for a new instance; register, adopt for a standby made a runner); the benchmark
    saw each runner online.

    Args:
        log_path: the replenisher's log.
        online: when the benchmark first saw each runner online (unix seconds).

    Returns:
        Per phase: median, p95, max over the replacement runners; and the batches.
    """
    phases: dict[str, list[float]] = {
        "coalesce": [],
        "lock_wait": [],
        "register": [],
        "create": [],
        "push": [],
        "start": [],
        "adopt": [],
        "started_to_online": [],
    }
    batches = []
    adopted = 0
    for stamp, message in _log_entries(log_path):
        created = _CREATED.search(message) or _ADOPTED.search(message)
        if created:
            stages = ast.literal_eval(created[2])
            adopted += "adopt" in stages
            for stage in ("register", "create", "push", "start", "adopt"):
                if stage in stages:
                    phases[stage].append(float(stages[stage]))
            if created[1] in online:
                phases["started_to_online"].append(online[created[1]] - stamp)
            continue
        batch = _BATCH.search(message)
        if batch:
            batches.append(
                {"requests": int(batch[1]), "live": int(batch[4]), "created": int(batch[5])}
            )
            if int(batch[5]):
                phases["coalesce"].append(float(batch[2]))
                phases["lock_wait"].append(float(batch[3]))
    return {
        "phases": {name: _spread(values) for name, values in phases.items()},
        "batches": len(batches),
        "from_standby": adopted,
        "empty_batches": sum(1 for b in batches if not b["created"]),
        "batch_sizes": [b["created"] for b in batches if b["created"]],
    }


class StreamWatcher:
    """Polls the emulator's jobs and runners, noting when things were first seen.

    When each job started and ended, and when each runner was first seen online (busy or idle:
    with jobs queued a fresh runner takes one at once).
    """

    def __init__(self, bench: Bench, interval: float = 0.1):
        self._control = bench.control
        self._interval = interval
        self._stop = threading.Event()
        self.job_started: dict[int, float] = {}
        self.job_ended: dict[int, float] = {}
        self.runner_online: dict[str, float] = {}
        self._thread = threading.Thread(target=self._run, name="stream-watcher", daemon=True)

    def __enter__(self) -> StreamWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                jobs = self._control.jobs()
                runners = self._control.runners(harness.REPO)
            except Exception:  # a missed poll is retried
                jobs, runners = None, None
            now = time.time()
            for job in jobs or []:
                if job["status"] in ("in_progress", "completed") or job.get("runner_name"):
                    self.job_started.setdefault(int(job["id"]), now)
                if job["status"] == "completed":
                    self.job_ended.setdefault(int(job["id"]), now)
            for runner in runners or []:
                name = str(runner["name"])
                if name.startswith(harness.PREFIX) and runner["status"] == "online":
                    self.runner_online.setdefault(name, now)
            self._stop.wait(self._interval)


class EndWatcher:
    """Notes when LXD reports each instance stopped or gone (its own event stream)."""

    def __init__(self) -> None:
        self._stream = LxdEventStream(project=harness.PROJECT)
        self.ended: dict[str, float] = {}
        self.by_action: dict[str, dict[str, float]] = {}
        self._thread = threading.Thread(target=self._run, name="bench-events", daemon=True)
        self._connected = threading.Event()

    def __enter__(self) -> EndWatcher:
        self._thread.start()
        self._connected.wait(30)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stream.close()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        def on_event(event: InstanceEvent) -> None:
            if event.ended:
                now = time.time()
                self.ended.setdefault(event.name, now)
                self.by_action.setdefault(event.action, {}).setdefault(event.name, now)

        with contextlib.suppress(LxdError):
            self._stream.follow(on_event, self._connected.set)


class Timer:
    """The check-interval timer: a reconcile process every interval (OnUnitActiveSec)."""

    def __init__(self, config_path: Path, interval: float, first_at: float):
        self._config_path = config_path
        self._interval = interval
        self._next = first_at
        self._stop = threading.Event()
        self.runs: list[dict[str, float]] = []
        self._thread = threading.Thread(target=self._run, name="bench-timer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=600)

    def _run(self) -> None:
        while not self._stop.wait(max(0.0, self._next - time.time())):
            started = time.time()
            result = scenarios.cli_reconcile(self._config_path)
            self.runs.append({"at": started, "wall": result["wall"]})
            self._next = started + self._interval


def _running_standbys(bench: Bench) -> int:
    """How many of the benchmark unit's standbys are running."""
    response = bench.client.api.instances.get(params={"recursion": "1"})
    return sum(
        1
        for item in response.json()["metadata"]
        if (item.get("config") or {}).get(TAG_UNIT) == harness.UNIT
        and (item.get("config") or {}).get(TAG_STANDBY) == "true"
        and item.get("status") == "Running"
    )


def _start_replenisher(config_path: Path, log_path: Path) -> subprocess.Popen[bytes]:
    log = log_path.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "github_runner_manager", "--config", str(config_path), "replenish"],
        cwd=harness.ROOT,
        env=harness.child_env(),
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    log.close()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if "counting the fleet" in log_path.read_text(errors="replace"):
            return process
        if process.poll() is not None:
            break
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"the replenisher did not start; see {log_path}")


def _stop_replenisher(process: subprocess.Popen[bytes]) -> int | None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=300)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)
            return None
    return process.returncode


def run(
    bench: Bench,
    mode: str,
    floor_one: float,
    runners: int = RUNNERS,
    jobs: int = JOBS,
    job_seconds: int = JOB_SECONDS,
    interval: float | None = None,
) -> dict[str, Any]:
    """Run one job stream.

    Args:
        bench: the benchmark.
        mode: `service` (replenisher on) or `timer` (timer only).
        floor_one: the floor of one runner, seconds (measured in the same run).
        runners: N.
        jobs: K.
        job_seconds: each job's duration.
        interval: the timer's interval in seconds (default: 10 minutes with the service, 30 s
            without).

    Returns:
        The measurements.
    """
    if interval is None:
        interval = DEFAULT_INTERVAL_MINUTES * 60.0 if mode == "service" else TIMER_ONLY_INTERVAL
    bench.to_zero()
    data = harness.manager_config_data(
        bench.emulator.url, bench.work, runners, 4, baked_from=bench.baked_from
    )
    data["timing"] = {}  # production's defaults (spawn_concurrency 4)
    config_path = harness.write_config(bench.work / f"jobstream-{mode}.json", data)
    manager = bench.manager(runners, 4)
    fill = scenarios.settle(manager)  # the initial fill: the only reconcile the benchmark runs
    if fill.errors:
        raise RuntimeError(f"the initial fill failed: {fill.errors}")
    harness.wait_until(
        lambda: (
            len(
                [
                    r
                    for r in bench.control.runners(harness.REPO)
                    if r["name"].startswith(harness.PREFIX) and r["status"] == "online"
                ]
            )
            >= runners
        ),
        scenarios.ONLINE_TIMEOUT,
        0.2,
    )
    replenisher = None
    log_path = bench.work / f"replenish-{mode}.log"
    if mode == "service":
        replenisher = _start_replenisher(config_path, log_path)
        # As in production, where the replenisher runs all along: its standbys are up.
        standbys_up = harness.wait_until(
            lambda: _running_standbys(bench) >= runners, scenarios.ONLINE_TIMEOUT, 0.2
        )
        if not standbys_up:
            harness.logger.warning("only %d standbys came up", _running_standbys(bench))
    timer = Timer(config_path, interval, first_at=time.time() + interval)
    timer.start()
    labels = [harness.FLAVOR]
    try:
        with StreamWatcher(bench) as watcher, EndWatcher() as lxd_events:
            bench.control.reset_stats()
            before = set(watcher.runner_online) | {
                r["name"] for r in bench.control.runners(harness.REPO)
            }
            queued_at = time.time()
            ids = [
                int(bench.control.queue_job(harness.REPO, labels, f"sleep {job_seconds}")["id"])
                for _ in range(jobs)
            ]
            ok = harness.wait_until(
                lambda: set(ids) <= watcher.job_ended.keys(), STREAM_TIMEOUT, 0.2
            )
            if not ok:
                raise TimeoutError(f"the job stream did not finish in {STREAM_TIMEOUT}s")
            done_at = max(watcher.job_ended[i] for i in ids)
            # Every job end is followed by a fresh runner: wait for the last ones to come up.
            harness.wait_until(
                lambda: len(set(watcher.runner_online) - before) >= jobs,
                max(120.0, interval * 1.5) if mode == "timer" else 120.0,
                0.2,
            )
            stats = bench.control.stats()
            ends = sorted(watcher.job_ended[i] for i in ids)
            fresh = sorted(t for n, t in watcher.runner_online.items() if n not in before)
            recovery = [f - e for e, f in zip(ends, fresh, strict=False) if f >= e]
            waits = [watcher.job_started[i] - queued_at for i in ids]
            # Recovery in two parts: the job's end -> LXD reports its instance stopped or gone
            # (the runner exits, the container shuts down), and that -> a fresh runner online.
            workers = {int(job["id"]): str(job.get("runner_name")) for job in bench.control.jobs()}
            seen_gone = [i for i in ids if workers.get(i, "") in lxd_events.ended]
            gone = sorted(lxd_events.ended[workers[i]] for i in seen_gone)
            shutdown = [lxd_events.ended[workers[i]] - watcher.job_ended[i] for i in seen_gone]
            respawn = [f - g for g, f in zip(gone, fresh, strict=False) if f >= g]
            lxd_actions = {
                action: _spread(
                    [seen[workers[i]] - watcher.job_ended[i] for i in ids if workers[i] in seen]
                )
                for action, seen in lxd_events.by_action.items()
            }
            online = dict(watcher.runner_online)
    finally:
        timer.stop()
        exit_code = _stop_replenisher(replenisher) if replenisher is not None else None
    manager_calls = {
        route: count
        for route, count in stats["by_route"].items()
        if any(marker in route for marker in MANAGER_ROUTE_MARKERS)
    }
    makespan = done_at - queued_at
    ideal = math.ceil(jobs / runners) * (job_seconds + floor_one)
    result = {
        "mode": mode,
        "n": runners,
        "k": jobs,
        "job_seconds": job_seconds,
        "interval": interval,
        "timer_runs": len(timer.runs),
        "floor_one": round(floor_one, 2),
        "makespan": round(makespan, 1),
        "ideal": round(ideal, 1),
        "ratio": round(makespan / ideal, 2),
        "queue_wait": _spread(waits),
        "recovery": _spread(recovery),
        "recovery_pairs": len(recovery),
        "recovery_shutdown": _spread(shutdown),
        "recovery_respawn": _spread(respawn),
        "lxd_events_after_job_end": lxd_actions,
        "replenisher": replenisher_phases(log_path, online) if replenisher is not None else None,
        "api_calls": sum(manager_calls.values()),
        "api_calls_per_job": round(sum(manager_calls.values()) / jobs, 2),
        "rate_limit_used": stats["rate_limit_used"],
        "rate_limit_per_job": round(stats["rate_limit_used"] / jobs, 2),
        "manager_routes": manager_calls,
        "replenisher_exit": exit_code,
        "load": round(os.getloadavg()[0], 2),
    }
    bench.to_zero()
    return result


def default_interval_estimate(timer_only: dict[str, Any], minutes: int) -> dict[str, Any]:
    """What the timer alone would give at the default interval, from the measured rounds.

    With jobs queued, each of the ceil(K/N) rounds but the first waits for the next timer run:
    makespan ~ (rounds - 1) x interval + job time + spawn.

    Args:
        timer_only: the timer-only run.
        minutes: the default interval.

    Returns:
        The estimate.
    """
    rounds = math.ceil(timer_only["k"] / timer_only["n"])
    measured = timer_only["makespan"] - (rounds - 1) * timer_only["interval"]
    makespan = (rounds - 1) * minutes * 60 + measured
    return {
        "interval_minutes": minutes,
        "rounds": rounds,
        "makespan": round(makespan, 0),
        "ratio": round(makespan / timer_only["ideal"], 1),
        "recovery_median": round(minutes * 60 / 2, 0),
        "note": "each round waits for the next timer run; a runner ending at a random moment "
        "waits half an interval on average, plus a random delay of up to a quarter of it",
    }
