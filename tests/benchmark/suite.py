# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""The benchmark run: arguments, the order of the measurements, clean-up, goals, output."""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import logging
import os
import platform
import shutil
import signal
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from github_runner_manager.errors import RunnerManagerError

from . import harness, jobstream, planner_bench, scenarios, table
from .harness import EmulatorProcess
from .scenarios import STAGES, Bench, median

logger = logging.getLogger("bench")

# Samples of the one-runner floor the job stream's ideal makespan is computed from (median).
FLOOR_ONE_SAMPLES = 3
SECTIONS = ("spawn", "replacement", "api", "overhead", "planner", "jobstream")
GOAL_RATIO = 1.3
GOAL_RECONCILE_WALL = 1.0
GOAL_PLANNER_MS = 50.0
GOAL_SIZE = 8
GOAL_STREAM_RATIO = 1.2


def _sizes(value: str) -> list[int]:
    sizes = sorted({int(part) for part in value.split(",") if part.strip()})
    if not sizes or sizes[0] < 1:
        raise argparse.ArgumentTypeError("sizes are positive integers, e.g. 1,4,8")
    return sizes


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench.py", description="Benchmark the runner manager on real LXD + the emulator."
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per size (median)")
    parser.add_argument("--sizes", type=_sizes, default=[1, 4, 8], help="runner counts: 1,4,8")
    parser.add_argument(
        "--output", type=Path, default=harness.ROOT / "bench-results" / "bench.json"
    )
    parser.add_argument(
        "--concurrency",
        choices=("n", "both"),
        default="both",
        help="spawn_concurrency = N only, or also 4 for sizes above 4 (default)",
    )
    parser.add_argument("--overhead-runs", type=int, default=5, help="no-change reconciles")
    parser.add_argument("--planner-size", type=int, default=1000)
    parser.add_argument("--planner-runs", type=int, default=200)
    parser.add_argument("--poll", type=float, default=0.1, help="emulator poll interval (s)")
    parser.add_argument(
        "--profile",
        choices=("auto", "always", "never"),
        default="auto",
        help="profile what misses its goal (auto), everything, or nothing",
    )
    parser.add_argument(
        "--skip", default="", help=f"comma-separated sections to skip: {','.join(SECTIONS)}"
    )
    parser.add_argument(
        "--runner-size",
        choices=("real", "small"),
        default="real",
        help="the runner archive the manager pushes: padded to the real size (default) or the "
        "bare stand-in",
    )
    parser.add_argument(
        "--image",
        choices=("baked", "base"),
        default="baked",
        help="runners start from an image with the runner application and scripts baked in "
        "(default), or from the test bed's image with everything pushed",
    )
    parser.add_argument(
        "--stream-interval",
        type=float,
        default=jobstream.TIMER_ONLY_INTERVAL,
        help="the timer's interval (s) in the job stream without the replenisher",
    )
    parser.add_argument(
        "--stream-modes",
        default="service,timer",
        help="job-stream modes: service (replenisher on), timer (timer only)",
    )
    parser.add_argument("--keep-work", action="store_true", help="keep the working directory")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    args.skip = {part.strip() for part in args.skip.split(",") if part.strip()}
    unknown = args.skip - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections: {sorted(unknown)}")
    return args


def _terminate(signum: int, frame: FrameType | None) -> None:
    del frame
    raise KeyboardInterrupt(f"signal {signum}")


# ----- summaries -----------------------------------------------------------------------------


def summarise_spawn(runs: list[dict[str, Any]]) -> dict[str, Any]:
    stage_values: dict[str, list[float]] = {stage: [] for stage in STAGES}
    for run in runs:
        for stages in run["runners"].values():
            for stage in STAGES:
                if stages.get(stage) is not None:
                    stage_values[stage].append(stages[stage])
    totals = [run["total"] for run in runs]
    return {
        "runs": len(runs),
        "total": median(totals),
        "min": min(totals),
        "max": max(totals),
        "reconcile": median([run["reconcile"] for run in runs]),
        "load": median([run["load"] for run in runs]),
        "quiet_wait": median([run["quiet_wait"]["waited"] for run in runs]),
        "stages": {stage: median(values) for stage, values in stage_values.items()},
        "stages_max": {
            stage: round(max(values), 3) if values else None
            for stage, values in stage_values.items()
        },
        "calls_per_runner": median([run["api"]["calls_per_runner"] for run in runs]),
        "rate_per_runner": median([run["api"]["rate_per_runner"] for run in runs]),
        "by_route": runs[-1]["api"]["by_route"],
    }


def summarise_floor(runs: list[dict[str, Any]]) -> dict[str, Any]:
    totals = [run["total"] for run in runs]
    return {
        "runs": len(runs),
        "threads": runs[0]["threads"],
        "total": median(totals),
        "min": min(totals),
        "max": max(totals),
        "create": median([run["create"] for run in runs]),
        "start": median([run["start"] for run in runs]),
        "load": median([run["load"] for run in runs]),
    }


def _spawn_row(spawn: dict[str, Any], floor: dict[str, Any] | None) -> dict[str, Any]:
    row: dict[str, Any] = {"manager": spawn}
    if floor is not None:
        row["floor"] = floor
        row["ratio"] = _ratio(spawn["total"], floor["total"])
    return row


def _summarise_size(summary: dict[str, Any], key: str, raw: dict[str, Any]) -> None:
    """Add one runner count's spawn, replacement and API rows to the summary."""
    spawn = summarise_spawn(raw["spawn"]) if raw.get("spawn") else None
    rows = summary["spawn"].setdefault(key, {})
    if spawn is not None:
        rows[key] = _spawn_row(spawn, summarise_floor(raw["floor"]) if raw.get("floor") else None)
    if raw.get("spawn_c4"):
        floor4 = summarise_floor(raw["floor_c4"]) if raw.get("floor_c4") else None
        rows["4"] = _spawn_row(summarise_spawn(raw["spawn_c4"]), floor4)
    if raw.get("replacement"):
        summary["replacement"][key] = summarise_replacement(raw["replacement"])
    if raw.get("steady_api"):
        summary["api"][key] = {
            "steady": raw["steady_api"],
            "spawn_calls_per_runner": spawn["calls_per_runner"] if spawn else None,
            "spawn_rate_per_runner": spawn["rate_per_runner"] if spawn else None,
            "spawn_by_route": spawn["by_route"] if spawn else None,
        }


def summarise_replacement(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "runs": len(runs),
        "latency": median([run["latency"] for run in runs]),
        "min": min(run["latency"] for run in runs),
        "max": max(run["latency"] for run in runs),
        "immediate_replaced": sum(run["immediate_replaced"] for run in runs),
        "worker_state": sorted({run["attempts"][0]["worker_state"] for run in runs}),
        "worker_age": median(
            [run["attempts"][0]["worker_age"] or 0.0 for run in runs],
        ),
        "reconciles": median([float(run["reconciles"]) for run in runs]),
        "replacing_reconcile_at": median([run["replacing_reconcile_at"] for run in runs]),
        "errors": sorted({e["message"].split(":")[-1].strip() for r in runs for e in r["errors"]}),
    }


# ----- the run -------------------------------------------------------------------------------


class Suite:
    """Runs the sections in order and collects the results."""

    def __init__(self, args: argparse.Namespace, bench: Bench, results: dict[str, Any]):
        self.args = args
        self.bench = bench
        self.results = results
        self.raw: dict[str, Any] = results.setdefault("raw", {})

    def want(self, section: str) -> bool:
        return section not in self.args.skip

    def log(self, message: str, *args: Any) -> None:
        logger.info(message, *args)

    def warm_up(self) -> None:
        """Download the runner application and prime the ETag cache (not measured)."""
        self.bench.to_zero()
        if self.args.image == "baked":
            self.bench.baked_from = harness.IMAGE
        report = scenarios.settle(self.bench.manager(0, 1))
        if report.errors:
            raise RuntimeError(f"the warm-up reconcile failed: {report.errors}")
        if self.args.image == "baked":
            self.log("baking the runner application into the runner image")
            self.bench.bake()

    def run(self) -> None:
        self.warm_up()
        if self.want("overhead"):
            self.log("overhead with 0 runners")
            self.raw.setdefault("overhead", []).append(
                scenarios.overhead(self.bench, 0, self.args.overhead_runs)
            )
        if self.want("spawn") or self.want("replacement") or self.want("api"):
            for count in self.args.sizes:
                self.size(count)
        if self.want("jobstream"):
            self.job_stream()
        if self.want("planner"):
            self.log("planner with %d runners", self.args.planner_size)
            self.results["planner"] = planner_bench.run(
                self.args.planner_size, self.args.planner_runs
            )

    def measure(self, raw: dict[str, Any], key: str, run: Callable[[], dict[str, Any]]) -> bool:
        """Run one measurement; a failure (say an LXD hiccup) is recorded, not fatal.

        Returns:
            Whether it succeeded.
        """
        try:
            raw.setdefault(key, []).append(run())
        except (RunnerManagerError, RuntimeError, TimeoutError, OSError) as exc:
            logger.error("%s failed: %s", key, exc)
            raw.setdefault("failures", []).append({"measurement": key, "error": str(exc)})
            return False
        return True

    def size(self, count: int) -> None:
        raw = self.raw.setdefault(str(count), {})
        bench = self.bench
        for index in range(self.args.repeat):
            bench.to_zero()
            floor_first = index % 2 == 0
            if self.want("spawn") and floor_first:
                self.floor(raw, count)
            self.log("spawn %d runners (concurrency %d), run %d", count, count, index + 1)
            spawned = self.measure(raw, "spawn", lambda: scenarios.spawn(bench, count, count))
            if spawned and self.want("replacement"):
                self.log("replacement with %d runners, run %d", count, index + 1)
                self.measure(
                    raw, "replacement", lambda: scenarios.replacement(bench, count, count)
                )
            if spawned and index == self.args.repeat - 1:
                self.steady(raw, count)
            bench.to_zero()
            if self.want("spawn") and not floor_first:
                self.floor(raw, count)
            if self.want("spawn") and count > 4 and self.args.concurrency == "both":
                if floor_first:
                    self.floor(raw, count, 4)
                self.log("spawn %d runners (concurrency 4), run %d", count, index + 1)
                self.measure(raw, "spawn_c4", lambda: scenarios.spawn(bench, count, 4))
                bench.to_zero()
                if not floor_first:
                    self.floor(raw, count, 4)

    def job_stream(self) -> None:
        """K queued jobs on N runners, with the replenisher and with the timer only."""
        raw = self.raw.setdefault("jobstream", {})
        self.bench.to_zero()
        # The floor of one runner is noisy on a shared machine: its median over a few samples.
        for sample in range(FLOOR_ONE_SAMPLES):
            self.log("floor of one runner (for the ideal makespan), sample %d", sample + 1)
            self.measure(raw, "floor_one", lambda: scenarios.floor(self.bench, 1, 1))
            self.bench.to_zero()
        if not raw.get("floor_one"):
            return
        floor_one = statistics.median(sample["total"] for sample in raw["floor_one"])
        raw["floor_one_median"] = round(floor_one, 2)
        for mode in [m.strip() for m in self.args.stream_modes.split(",") if m.strip()]:
            interval = self.args.stream_interval if mode == "timer" else None
            self.log(
                "job stream: %d jobs of %d s on %d runners, %s",
                jobstream.JOBS,
                jobstream.JOB_SECONDS,
                jobstream.RUNNERS,
                mode,
            )
            self.measure(raw, mode, functools.partial(self._stream, mode, floor_one, interval))
        if raw.get("timer"):
            raw["timer_at_default_interval"] = jobstream.default_interval_estimate(
                raw["timer"][-1], jobstream.DEFAULT_INTERVAL_MINUTES
            )

    def _stream(self, mode: str, floor_one: float, interval: float | None) -> dict[str, Any]:
        return jobstream.run(self.bench, mode, floor_one, interval=interval)

    def floor(self, raw: dict[str, Any], count: int, threads: int | None = None) -> None:
        threads = threads or count
        self.log("floor: %d containers, %d threads", count, threads)
        key = "floor" if threads == count else f"floor_c{threads}"
        self.measure(raw, key, lambda: scenarios.floor(self.bench, count, threads))

    def steady(self, raw: dict[str, Any], count: int) -> None:
        manager = self.bench.manager(count, count)
        report = scenarios.settle(manager)
        raw["settled"] = {
            "calls": report.github_calls,
            "not_modified": report.github_not_modified,
            "changed": bool(report.created or report.removed),
        }
        if self.want("api"):
            self.log("steady-state API cost with %d runners", count)
            raw["steady_api"] = scenarios.steady_api(self.bench, manager)
        if self.want("overhead"):
            self.log("no-change reconcile overhead with %d runners", count)
            self.raw.setdefault("overhead", []).append(
                scenarios.overhead(self.bench, count, self.args.overhead_runs)
            )

    # ----- summary, goals and profiles --------------------------------------------------------

    def summarise(self) -> None:
        summary: dict[str, Any] = {"spawn": {}, "replacement": {}, "api": {}, "overhead": {}}
        for key, raw in self.raw.items():
            if key.isdigit():
                _summarise_size(summary, key, raw)
        for entry in self.raw.get("overhead", []):
            summary["overhead"][str(entry["n"])] = {
                "cli_wall": entry["cli"]["wall"],
                "cli_wall_min": entry["cli"]["wall_min"],
                "cli_cpu": entry["cli"]["cpu"],
                "cli_max_rss_mib": entry["cli"]["max_rss_mib"],
                "cli_report_duration": entry["cli"]["report_duration"],
                "in_process_wall": entry["in_process"]["wall"],
                "tracemalloc_peak_mib": entry["in_process"]["tracemalloc_peak_mib"],
            }
        stream = self.raw.get("jobstream")
        if stream:
            summary["jobstream"] = {
                key: value[-1] if isinstance(value, list) else value
                for key, value in stream.items()
                if key != "failures"
            }
        self.results["summary"] = summary

    def goals(self) -> list[dict[str, Any]]:
        summary = self.results["summary"]
        goals = []
        size = str(GOAL_SIZE)
        ratio = summary["spawn"].get(size, {}).get(size, {}).get("ratio")
        goals.append(
            _goal(
                "spawn",
                f"manager/floor ratio for N={GOAL_SIZE} <= {GOAL_RATIO}",
                ratio,
                None if ratio is None else ratio <= GOAL_RATIO,
            )
        )
        steady = [entry["steady"] for entry in summary["api"].values()]
        worst = max(steady, key=lambda s: s["rate_limit_used"]) if steady else None
        api_ok = None
        if worst is not None:
            all_304 = worst["not_modified"] == worst["calls"]
            api_ok = worst["rate_limit_used"] <= (0 if all_304 else 1)
        goals.append(
            _goal(
                "api",
                "steady-state reconcile: <= 1 rate-limited call (0 with a 304)",
                None if worst is None else worst["rate_limit_used"],
                api_ok,
                None
                if worst is None
                else f"{worst['calls']} calls, {worst['not_modified']} answered 304",
            )
        )
        overhead = summary["overhead"].get(size)
        wall = overhead["cli_wall"] if overhead else None
        goals.append(
            _goal(
                "overhead",
                f"no-change reconcile with {GOAL_SIZE} runners < {GOAL_RECONCILE_WALL} s (CLI)",
                wall,
                None if wall is None else wall < GOAL_RECONCILE_WALL,
                None if overhead is None else f"in-process {overhead['in_process_wall']} s",
            )
        )
        stream = summary.get("jobstream", {}).get("service")
        if stream is not None:
            goals.append(
                _goal(
                    "jobstream",
                    f"job stream with the replenisher: makespan <= {GOAL_STREAM_RATIO} x ideal",
                    stream["ratio"],
                    stream["ratio"] <= GOAL_STREAM_RATIO,
                    f"makespan {stream['makespan']} s, ideal {stream['ideal']} s",
                )
            )
            recovery = stream["recovery"]["p95"]
            limit = round(stream["floor_one"] + 1.0, 2)
            goals.append(
                _goal(
                    "recovery",
                    "job end -> fresh runner: p95 <= one-runner floor + 1 s",
                    recovery,
                    None if recovery is None else recovery <= limit,
                    f"limit {limit} s",
                )
            )
            goals.append(
                _goal(
                    "replacement-api",
                    "<= 1 rate-limited GitHub call per job replaced",
                    stream["rate_limit_per_job"],
                    stream["rate_limit_per_job"] <= 1.0,
                    f"{stream['api_calls_per_job']} calls per job",
                )
            )
        planner = self.results.get("planner")
        planner_ms = planner["median_ms"] if planner else None
        goals.append(
            _goal(
                "planner",
                f"planner with {self.args.planner_size} runners < {GOAL_PLANNER_MS} ms",
                planner_ms,
                None if planner_ms is None else planner_ms < GOAL_PLANNER_MS,
            )
        )
        self.results["goals"] = goals
        return goals

    def profile(self, goals: list[dict[str, Any]]) -> None:
        """Profile what missed its goal (or everything with --profile always)."""
        mode = self.args.profile
        if mode == "never":
            return
        wanted = {g["id"] for g in goals if mode == "always" or g["status"] == "MISS"}
        profiles: dict[str, Any] = self.results.setdefault("profiles", {})
        count = GOAL_SIZE if GOAL_SIZE in self.args.sizes else max(self.args.sizes)
        if "spawn" in wanted and self.want("spawn"):
            self.log("profiling a spawn of %d runners", count)
            self.bench.to_zero()
            run = scenarios.spawn(self.bench, count, count, profile=True)
            profiles["spawn"] = {"n": count, "total": run["total"], **run["profile"]}
            self.bench.to_zero()
        if "overhead" in wanted and self.want("overhead"):
            self.log("profiling a no-change reconcile with %d runners", count)
            self.bench.to_zero()
            manager = self.bench.manager(count, count)
            manager.reconcile()
            self._wait_idle(count)
            scenarios.settle(manager)
            harness.write_config(
                self.bench.work / f"config-{count}.json", self.bench.config_data(count, count)
            )
            profiles["overhead"] = {
                "n": count,
                "cli": scenarios.profile_cli(self.bench, count),
                "in_process": scenarios.profile_reconcile(manager),
            }
            self.bench.to_zero()
        if "planner" in wanted and self.want("planner"):
            profiles["planner"] = planner_bench.profile(self.args.planner_size)

    def _wait_idle(self, count: int) -> None:
        def idle() -> bool:
            runners = self.bench.control.runners(harness.REPO)
            return len([r for r in runners if r["status"] == "online" and not r["busy"]]) >= count

        harness.wait_until(idle, scenarios.ONLINE_TIMEOUT, 0.2)


def _ratio(manager: float | None, floor: float | None) -> float | None:
    if not manager or not floor:
        return None
    return round(manager / floor, 2)


def _goal(
    goal_id: str, text: str, value: Any, ok: bool | None, note: str | None = None
) -> dict[str, Any]:
    status = "N/A" if ok is None else ("PASS" if ok else "MISS")
    return {"id": goal_id, "goal": text, "value": value, "status": status, "note": note}


def environment(args: argparse.Namespace, bench: Bench) -> dict[str, Any]:
    return {
        "started_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "lxd": harness.lxd_version(bench.client),
        "project": harness.PROJECT,
        "image": harness.IMAGE,
        "runner_image": args.image,
        "pool": "default",
        "runner_shape": harness.RUNNER_SHAPE,
        "metrics": True,
        "repeat": args.repeat,
        "sizes": args.sizes,
        "poll": args.poll,
        "floor_threads": "same as the row's spawn_concurrency (N, or 4)",
        "background_before": harness.background(bench.client),
        "git": harness.git_state(),
        "runner_archive": harness.runner_archive(bench.emulator.control, args.runner_size),
    }


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s bench: %(message)s",
        datefmt="%H:%M:%S",
    )
    # pylxd's pool (one connection) warns whenever parallel calls share it: harmless here.
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    for noisy in ("ws4py", "fastcore", "github_runner_manager"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if args.verbose else logging.WARNING)
    # Ctrl-C and SIGTERM both end in the clean-up (also when started with SIGINT ignored).
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, _terminate)
    work = Path(tempfile.mkdtemp(prefix="grt-bench-"))
    emulator = EmulatorProcess(work / "emulator.log")
    results: dict[str, Any] = {"version": 1}
    started = time.monotonic()
    exit_code = 0
    bench: Bench | None = None
    try:
        emulator.start()
        # Every spawn pushes the runner archive: with the real one's size, as in production.
        emulator.control.settings(runner_size=args.runner_size)
        bench = Bench(work, emulator, args.poll)
        harness.lxd_project_ready(bench.client)
        results["environment"] = environment(args, bench)
        suite = Suite(args, bench, results)
        try:
            suite.run()
        finally:
            suite.summarise()
        results["environment"]["background_after"] = harness.background(bench.client)
        goals = suite.goals()
        suite.profile(goals)
    except KeyboardInterrupt:
        logger.warning("interrupted: cleaning up")
        results["interrupted"] = True
        exit_code = 130
    except Exception as exc:
        logger.exception("the benchmark failed")
        results["error"] = repr(exc)
        exit_code = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if bench is not None:
            results["flush_errors"] = bench.flush_errors
            left = bench.cleanup()
            results["left_behind"] = left
            if left:
                logger.error("instances left behind: %s", left)
        emulator.stop()
        if args.keep_work:
            logger.info("working directory kept: %s", work)
        else:
            shutil.rmtree(work, ignore_errors=True)
        signal.signal(signal.SIGINT, signal.default_int_handler)
    results["elapsed"] = round(time.monotonic() - started, 1)
    if "summary" in results:
        print(table.render(results))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"\nresults written to {args.output}")
    return exit_code
