# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""The measured scenarios: spawn against the LXD floor, replacement, API cost, reconcile cost."""

from __future__ import annotations

import concurrent.futures
import contextlib
import cProfile
import json
import logging
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

import pylxd

from github_runner_manager.cli import build_manager
from github_runner_manager.config import ManagerConfig
from github_runner_manager.exchange import RunnerExchange
from github_runner_manager.image import ImageBuilder
from github_runner_manager.lxd import TAG_UNIT, PylxdClient
from github_runner_manager.manager import RunnerManager
from github_runner_manager.models import InstanceType
from github_runner_manager.report import Report
from github_runner_manager.runner import RunnerSpawner
from github_runner_manager.templates import TemplateRenderer

from . import harness
from .harness import FLOOR_PREFIX, FLOOR_UNIT, PREFIX, REPO, EmulatorProcess, OnlineWatcher
from .sampler import StackSampler, cprofile_summary

logger = logging.getLogger("bench")

ONLINE_TIMEOUT = 180.0
STAGES = ("wait", "register", "create", "push", "start", "boot", "online", "seen")


def median(values: list[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


class Bench:
    """The benchmark's shared state: emulator, LXD clients, working directory."""

    def __init__(self, work: Path, emulator: EmulatorProcess, poll: float = 0.1):
        self.work = work
        self.emulator = emulator
        self.control = emulator.control
        self.poll = poll
        self.client = pylxd.Client(project=harness.PROJECT, timeout=120)
        self.lxd = PylxdClient(project=harness.PROJECT, timeout=120)
        self.managers: list[RunnerManager] = []
        self.flush_errors: dict[str, int] = {}
        # The image the manager's runner image is baked from (None: no baked image).
        self.baked_from: str | None = None

    def config_data(self, containers: int, concurrency: int) -> dict[str, Any]:
        return harness.manager_config_data(
            self.emulator.url, self.work, containers, concurrency, baked_from=self.baked_from
        )

    def bake(self) -> None:
        """Bake the cached runner application and scripts into the runners' image (not timed)."""
        record = ImageBuilder(self.config(0, 1), self.lxd).build(
            [InstanceType.CONTAINER], bake_only=True
        )
        if not record.ok or not record.images:
            raise RuntimeError(f"baking the runner image failed: {record.errors}")

    def config(self, containers: int, concurrency: int) -> ManagerConfig:
        return ManagerConfig.model_validate(self.config_data(containers, concurrency))

    def manager(self, containers: int, concurrency: int) -> RunnerManager:
        manager = build_manager(self.config(containers, concurrency))
        self.managers.append(manager)
        return manager

    def to_zero(self) -> None:
        """Remove every runner of the benchmark's unit, and wait until LXD and GitHub agree."""
        report = self.manager(0, 8).flush(busy=True, reconcile=False)
        for error in report.errors:
            # Kept for the report: the manager's own removal errors are a finding.
            message = error.message.replace(error.runner or "", "<runner>")
            self.flush_errors[message] = self.flush_errors.get(message, 0) + 1
        if report.errors:
            logger.warning("flush reported %d errors (listed at the end)", len(report.errors))
        gone = harness.wait_until(lambda: not harness.ours(self.client), 60)
        harness.wait_until(
            lambda: not [r for r in self.control.runners(REPO) if r["name"].startswith(PREFIX)],
            30,
        )
        if not gone:
            harness.delete_bench_instances(self.lxd, self.client)
        # Let LXD and btrfs finish deleting before the next measurement.
        time.sleep(1.0)

    def cleanup(self) -> list[str]:
        """Delete what the benchmark made, whatever state it is in (never raises)."""
        # An interrupted spawn's threads may still be creating instances: let them finish.
        deadline = time.monotonic() + 180
        for thread in threading.enumerate():
            if thread is not threading.main_thread() and not thread.daemon:
                thread.join(max(0.0, deadline - time.monotonic()))
        with contextlib.suppress(Exception):
            self.manager(0, 8).flush(busy=True, reconcile=False)
        left: list[str] = []
        with contextlib.suppress(Exception):
            harness.delete_bench_instances(self.lxd, self.client)
            left = [
                name
                for name, tag, _ in harness.instance_tags(self.client)
                if tag in (harness.UNIT, FLOOR_UNIT) or name.startswith(FLOOR_PREFIX)
            ]
        with contextlib.suppress(Exception):
            harness.unmount_exchanges(self.work)
        if self.baked_from:
            with contextlib.suppress(Exception):
                ImageBuilder(self.config(0, 1), self.lxd).remove_all()
        return left


# ----- spawn ---------------------------------------------------------------------------------


def _runner_stages(
    exchange: RunnerExchange, name: str, t0_wall: float, seen: float
) -> dict[str, float | None]:
    """One runner's timeline, split into stages (seconds).

    wait: from the reconcile's start to this runner's spawn (observe, plan, a free thread).
    register/create/push/start: the manager's own stage timings (report and installed.json).
    boot: from LXD's start returning to the runner service starting (the runner's stamp).
    online: from the service starting to the runner listening for jobs (the runner's stamp).
    seen: from listening to the emulator listing it online and idle (poll resolution).
    """
    data = None
    for _ in range(20):
        data = exchange.read(name)
        if data.online is not None:
            break
        time.sleep(0.1)
    stages: dict[str, float | None] = dict.fromkeys(STAGES)
    if data is None or data.installed is None:
        return stages
    installed = data.installed
    stages["wait"] = round(installed.started - t0_wall, 3)
    for key in ("register", "create", "push", "start"):
        stages[key] = installed.stages.get(key)
    if data.boot is not None:
        stages["boot"] = round(data.boot - installed.finished, 3)
    if data.boot is not None and data.online is not None:
        stages["online"] = round(data.online - data.boot, 3)
    if data.online is not None:
        stages["seen"] = round(seen - data.online, 3)
    return stages


def spawn(bench: Bench, count: int, concurrency: int, profile: bool = False) -> dict[str, Any]:
    """From zero to `count` runners online and idle on the emulator.

    Args:
        bench: the benchmark.
        count: runners.
        concurrency: `timing.spawn_concurrency`.
        profile: sample the stacks of the spawning threads.

    Returns:
        The run's total, the reconcile's own duration, per-runner stages and the API cost.
    """
    quiet_wait = harness.wait_quiet()
    manager = bench.manager(count, concurrency)
    exchange = RunnerExchange(bench.work / "state" / "runners", bench.work / "state" / "q")
    bench.control.reset_stats()
    sampler = StackSampler(lambda key: key.endswith("RunnerSpawner.spawn"), interval=0.005)
    with OnlineWatcher(bench.control, PREFIX + "-", bench.poll) as watcher:
        t0_wall, t0 = time.time(), time.monotonic()
        if profile:
            with sampler:
                report = manager.reconcile()
        else:
            report = manager.reconcile()
        reconcile_wall = time.monotonic() - t0
        stats = bench.control.stats()
        if len(report.created) != count:
            raise RuntimeError(f"reconcile created {report.created}: {report.errors}")
        seen = watcher.wait_idle(set(report.created), ONLINE_TIMEOUT)
    total = max(seen.values()) - t0_wall
    runners = {name: _runner_stages(exchange, name, t0_wall, seen[name]) for name in seen}
    result = {
        "n": count,
        "concurrency": concurrency,
        "load": round(os.getloadavg()[0], 2),
        "quiet_wait": quiet_wait,
        "total": round(total, 3),
        "reconcile": round(reconcile_wall, 3),
        "report_duration": report.duration,
        "phases": {k: v for k, v in report.timings.items() if k != "runners"},
        "runners": runners,
        "api": _api_cost(stats, report, count),
        "errors": [e.model_dump() for e in report.errors],
    }
    if profile:
        result["profile"] = sampler.summary()
    return result


def _api_cost(stats: dict[str, Any], report: Report, count: int) -> dict[str, Any]:
    return {
        "calls": stats["total"],
        "not_modified": stats["not_modified"],
        "rate_limit_used": stats["rate_limit_used"],
        "calls_per_runner": round(stats["total"] / count, 2) if count else None,
        "rate_per_runner": round(stats["rate_limit_used"] / count, 2) if count else None,
        "by_route": stats["by_route"],
        # None when the emulator ran without GitHub's description to check requests against.
        "request_violations": (
            len(stats["request_violations"]) if stats.get("request_validation") else None
        ),
        "report_github_calls": report.github_calls,
        "report_not_modified": report.github_not_modified,
    }


# ----- the floor -----------------------------------------------------------------------------


def floor(bench: Bench, count: int, threads: int) -> dict[str, Any]:
    """Raw pylxd create + start of `count` containers in parallel, as the manager shapes them.

    Each container gets the spec the manager's spawner builds (limits, root disk size on the
    same pool, nesting, the loopback proxy device, ephemeral), with a plain directory where the
    manager mounts the metrics tmpfs, and the floor's own unit tag. One pylxd client is shared
    by `threads` threads, as the manager shares one.

    Args:
        bench: the benchmark.
        count: containers.
        threads: threads creating them.

    Returns:
        The total (all started) and per-container create and start medians.
    """
    config = bench.config(count, threads)
    spawner = RunnerSpawner(
        config,
        bench.lxd,
        None,  # type: ignore[arg-type]  # instance_spec needs no GitHub client
        TemplateRenderer(config.templates),
        runner_tarball=b"",
    )
    requests = []
    for _ in range(count):
        name = f"{FLOOR_PREFIX}{secrets.token_hex(6)}"
        directory = bench.work / "floor" / name
        directory.mkdir(parents=True, exist_ok=True)
        device = {"type": "disk", "source": str(directory), "path": "/metrics-exchange"}
        spec = spawner.instance_spec(
            name, InstanceType.CONTAINER, "floor", {"metrics-exchange": device}
        )
        requests.append(
            {
                "name": spec.name,
                "type": spec.instance_type.value,
                "source": {"type": "image", "alias": spec.image},
                "ephemeral": spec.ephemeral,
                "profiles": list(spec.profiles),
                "config": {**spec.config, TAG_UNIT: FLOOR_UNIT},
                "devices": spec.devices,
            }
        )
    client = pylxd.Client(project=harness.PROJECT, timeout=120)
    quiet_wait = harness.wait_quiet()

    def one(request: dict[str, Any]) -> tuple[float, float]:
        started = time.monotonic()
        instance = client.instances.create(request, wait=True)
        created = time.monotonic()
        instance.start(wait=True)
        return created - started, time.monotonic() - created

    t0 = time.monotonic()
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=threads) as pool:
            laps = list(pool.map(one, requests))
        total = time.monotonic() - t0
    finally:
        with concurrent.futures.ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(lambda r: bench.lxd.delete_instance(r["name"]), requests))
    names = {request["name"] for request in requests}
    harness.wait_until(
        lambda: not [n for n, _, _ in harness.instance_tags(bench.client) if n in names], 60
    )
    time.sleep(1.0)
    return {
        "n": count,
        "threads": threads,
        "load": round(os.getloadavg()[0], 2),
        "quiet_wait": quiet_wait,
        "total": round(total, 3),
        "create": median([c for c, _ in laps]),
        "start": median([s for _, s in laps]),
    }


# ----- replacement ---------------------------------------------------------------------------


def replacement(bench: Bench, count: int, concurrency: int) -> dict[str, Any]:
    """A job runs on one of `count` idle runners; time until a fresh idle runner is back.

    The first reconcile runs as soon as the emulator reports the job completed; while it creates
    nothing (the finished runner's instance is still there, shutting down), reconcile runs again
    every second, as a fast timer would.

    Args:
        bench: the benchmark (with `count` idle runners up).
        count: runners.
        concurrency: `timing.spawn_concurrency`.

    Returns:
        The latency and how many reconciles it took.
    """
    harness.wait_quiet()
    manager = bench.manager(count, concurrency)
    with OnlineWatcher(bench.control, PREFIX + "-", bench.poll) as watcher:
        job = bench.control.queue_job(REPO, [harness.FLAVOR], "true")
        deadline = time.monotonic() + 60
        while (finished := bench.control.job(job["id"]))["status"] != "completed":
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job['id']} never completed")
            time.sleep(0.05)
        done = time.time()
        worker = finished["runner_name"]
        attempts: list[dict[str, Any]] = []
        created: list[str] = []
        while not created and time.time() - done < 120:
            if attempts:
                time.sleep(1.0)
            started = time.time()
            report = manager.reconcile()
            attempts.append(
                {
                    "at": round(started - done, 3),
                    "duration": report.duration,
                    "created": list(report.created),
                    "removed": [r.model_dump() for r in report.removed],
                    "worker_state": next(
                        (r.state for r in report.runners if r.name == worker), "gone"
                    ),
                    "worker_age": next(
                        (
                            round(started - r.created_at.timestamp(), 1)
                            for r in report.runners
                            if r.name == worker and r.created_at is not None
                        ),
                        None,
                    ),
                    "phases": {k: v for k, v in report.timings.items() if k != "runners"},
                    "errors": [e.model_dump() for e in report.errors],
                }
            )
            created = list(report.created)
        if not created:
            raise RuntimeError(f"no replacement within 120 s: {attempts}")
        back = watcher.wait_idle(set(created), ONLINE_TIMEOUT)
    return {
        "n": count,
        "latency": round(max(back.values()) - done, 3),
        "immediate_replaced": bool(attempts[0]["created"]),
        "reconciles": len(attempts),
        "replacing_reconcile_at": attempts[-1]["at"],
        "errors": [e for attempt in attempts for e in attempt["errors"]],
        "attempts": attempts,
    }


# ----- steady state: API cost and reconcile overhead ------------------------------------------


def settle(manager: RunnerManager, tries: int = 4) -> Report:
    """Reconcile until a run changes nothing and costs only 304s (or `tries` runs)."""
    report = manager.reconcile()
    for _ in range(tries - 1):
        quiet = not report.created and not report.removed
        if quiet and report.github_calls == report.github_not_modified:
            break
        time.sleep(0.5)
        report = manager.reconcile()
    return report


def steady_api(bench: Bench, manager: RunnerManager, runs: int = 3) -> dict[str, Any]:
    """The GitHub API cost of a reconcile that has nothing to do."""
    per_run = []
    for _ in range(runs):
        bench.control.reset_stats()
        report = manager.reconcile()
        stats = bench.control.stats()
        per_run.append(
            {
                "calls": stats["total"],
                "not_modified": stats["not_modified"],
                "rate_limit_used": stats["rate_limit_used"],
                "by_route": stats["by_route"],
                "changed": bool(report.created or report.removed),
            }
        )
    return {
        "runs": per_run,
        "calls": max(r["calls"] for r in per_run),
        "not_modified": min(r["not_modified"] for r in per_run),
        "rate_limit_used": max(r["rate_limit_used"] for r in per_run),
    }


# Runs the CLI as its own child and reports that child's resource usage. A child of the
# benchmark would not do: Linux carries the parent's peak RSS over into a forked child's
# ru_maxrss (the copied memory map counts until exec), so the CLI would show the benchmark's
# own, growing, peak. This small process forks the CLI from a small memory map instead.
_RUSAGE_STUB = """
import json, os, sys, time
started = time.monotonic()
pid = os.fork()
if pid == 0:
    os.execv(sys.executable, [sys.executable, *sys.argv[2:]])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as out:
    json.dump({"wall": time.monotonic() - started, "status": status,
               "max_rss_kib": usage.ru_maxrss, "cpu": usage.ru_utime + usage.ru_stime}, out)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def cli_reconcile(config_path: Path, profile_path: Path | None = None) -> dict[str, Any]:
    """Run `python -m github_runner_manager --config F reconcile`: wall time and peak RSS.

    Args:
        config_path: the manager configuration file.
        profile_path: where to save a cProfile of the run, if wanted.

    Returns:
        Wall and CPU time, peak RSS, exit code, and what the printed report says.
    """
    command = []
    if profile_path is not None:
        command += ["-m", "cProfile", "-o", str(profile_path)]
    command += ["-m", "github_runner_manager", "--config", str(config_path), "reconcile"]
    with tempfile.NamedTemporaryFile("r", suffix=".json") as usage_file:
        result = subprocess.run(
            [sys.executable, "-c", _RUSAGE_STUB, usage_file.name, *command],
            cwd=harness.ROOT,
            env=harness.child_env(),
            capture_output=True,
            timeout=300,
            check=False,
        )
        usage = json.loads(usage_file.read() or "{}")
    report: dict[str, Any] = {}
    with contextlib.suppress(ValueError):
        report = json.loads(result.stdout or b"{}")
    return {
        "wall": round(usage.get("wall", 0.0), 3),
        "max_rss_mib": round(usage.get("max_rss_kib", 0) / 1024, 1),
        "cpu": round(usage.get("cpu", 0.0), 3),
        "exit_code": result.returncode,
        "report_duration": report.get("duration"),
        "github_calls": report.get("github_calls"),
        "created": len(report.get("created", [])),
        "removed": len(report.get("removed", [])),
        "stderr_tail": result.stderr.decode(errors="replace").strip().splitlines()[-3:],
    }


def in_process(manager: RunnerManager, runs: int) -> dict[str, Any]:
    """Wall time (median of `runs`) and tracemalloc peak of one `manager.reconcile()`."""
    walls = []
    for _ in range(runs):
        started = time.monotonic()
        report = manager.reconcile()
        walls.append(time.monotonic() - started)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        manager.reconcile()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return {
        "wall": median(walls),
        "walls": [round(w, 3) for w in walls],
        "tracemalloc_peak_mib": round(peak / 2**20, 2),
        "changed": bool(report.created or report.removed),
        "timings": {k: v for k, v in report.timings.items() if k != "runners"},
    }


def overhead(bench: Bench, count: int, runs: int) -> dict[str, Any]:
    """No-change reconcile: the real CLI in a subprocess, and `manager.reconcile()` in-process.

    Args:
        bench: the benchmark (with `count` idle runners up and settled).
        count: runners.
        runs: runs of each.

    Returns:
        Medians of the CLI's wall time and peak RSS, and the in-process numbers.
    """
    config_path = harness.write_config(
        bench.work / f"config-{count}.json", bench.config_data(count, max(count, 1))
    )
    cli_runs = [cli_reconcile(config_path) for _ in range(runs)]
    manager = bench.manager(count, max(count, 1))
    return {
        "n": count,
        "cli": {
            "wall": median([r["wall"] for r in cli_runs]),
            "wall_min": min(r["wall"] for r in cli_runs),
            "cpu": median([r["cpu"] for r in cli_runs]),
            "max_rss_mib": median([r["max_rss_mib"] for r in cli_runs if r["max_rss_mib"]]),
            "report_duration": median([r["report_duration"] or 0.0 for r in cli_runs]),
            "runs": cli_runs,
        },
        "in_process": in_process(manager, runs),
    }


def profile_cli(bench: Bench, count: int) -> dict[str, Any]:
    """Profile one no-change CLI reconcile (cProfile), and list the slowest imports."""
    config_path = bench.work / f"config-{count}.json"
    profile_path = bench.work / f"cli-{count}.prof"
    cli_reconcile(config_path, profile_path)
    rows = [
        row
        for row in cprofile_summary(str(profile_path), top=200)
        if not str(row[0]).startswith(("<frozen", "<built-in method builtins.exec", "<string>"))
    ]
    return {"cprofile": rows[:20], "imports": import_times()}


def import_times(top: int = 10) -> list[list[Any]]:
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import github_runner_manager.cli"],
        cwd=harness.ROOT,
        env=harness.child_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    rows: list[tuple[str, float]] = []
    for line in result.stderr.splitlines():
        parts = [p.strip() for p in line.removeprefix("import time:").split("|")]
        if len(parts) == 3 and parts[1].isdigit():
            rows.append((parts[2], int(parts[1]) / 1e6))
    rows.sort(key=lambda row: row[1], reverse=True)
    return [[name, round(seconds, 3)] for name, seconds in rows[:top]]


def profile_reconcile(manager: RunnerManager) -> list[list[Any]]:
    profiler = cProfile.Profile()
    profiler.enable()
    manager.reconcile()
    profiler.disable()
    return cprofile_summary(profiler, top=20)
