# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""The printed form of the benchmark results: one table per section, goals, profiles."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .scenarios import STAGES


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.2f}"
    return str(value)


def grid(header: Sequence[str], rows: Sequence[Sequence[Any]], indent: str = "  ") -> str:
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [
        max(len(header[i]), *(len(row[i]) for row in cells)) if cells else len(header[i])
        for i in range(len(header))
    ]
    lines = [indent + "  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True))]
    lines.append(indent + "  ".join("-" * w for w in widths))
    lines.extend(
        indent + "  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in cells
    )
    return "\n".join(lines)


def _span(summary: dict[str, Any]) -> str:
    return f"{_cell(summary['min'])}-{_cell(summary['max'])}"


def spawn_section(summary: dict[str, Any]) -> list[str]:
    rows = []
    floors = []
    for count in sorted(summary, key=int):
        for concurrency in sorted(summary[count], key=int):
            entry = summary[count][concurrency]
            manager, floor = entry["manager"], entry.get("floor")
            stages = manager["stages"]
            rows.append(
                [
                    count,
                    concurrency,
                    manager["runs"],
                    manager["total"],
                    _span(manager),
                    floor["total"] if floor else None,
                    _span(floor) if floor else None,
                    entry.get("ratio"),
                    manager["load"],
                    manager["reconcile"],
                    *(stages[stage] for stage in STAGES),
                ]
            )
            if floor:
                floors.append(
                    [count, floor["threads"], floor["create"], floor["start"], floor["load"]]
                )
    header = [
        "N",
        "conc",
        "runs",
        "manager",
        "range",
        "floor",
        "range",
        "ratio",
        "load",
        "reconcile",
    ]
    out = [
        "1. Spawn latency: from zero to N runners online and idle on the emulator (s, median)",
        grid([*header, *STAGES], rows),
        "  stages: median per runner over all runs; wait = reconcile start -> this runner's",
        "  spawn; boot = LXD start returned -> runner service started; online = service started",
        "  -> listening for jobs; seen = listening -> the emulator lists it online and idle.",
        "  floor: raw pylxd create+start of N containers, same spec, in as many threads as the",
        "  row's spawn_concurrency (N, or 4); its per-container medians:",
        grid(["N", "threads", "create", "start", "load"], floors),
        "  each run (manager and floor) started once btrfs had no subvolume deletion pending;",
        "  the manager runs waited for that "
        + ", ".join(
            f"N={count}: {summary[count][count]['manager']['quiet_wait']} s"
            for count in sorted(summary, key=int)
            if count in summary[count]
        )
        + " (median).",
    ]
    return out


def replacement_section(summary: dict[str, Any]) -> list[str]:
    rows = [
        [
            count,
            entry["runs"],
            entry["latency"],
            _span(entry),
            f"{entry['immediate_replaced']}/{entry['runs']}",
            ",".join(entry["worker_state"]),
            entry["worker_age"],
            entry["reconciles"],
            entry["replacing_reconcile_at"],
        ]
        for count, entry in sorted(summary.items(), key=lambda item: int(item[0]))
    ]
    return [
        "2. Replacement by a reconcile the benchmark calls the moment the job completes (no "
        "production path does that; the job stream, section 5, measures the real one): job "
        "completed -> a fresh runner online and idle (s, median)",
        grid(
            [
                "N",
                "runs",
                "latency",
                "range",
                "immediate reconcile replaced",
                "finished runner seen as",
                "its age",
                "reconciles",
                "replacing reconcile at",
            ],
            rows,
        ),
        "  reconcile runs as soon as the job is completed, then every second until it creates",
        "  the replacement; 'at' is that reconcile's start after the job completed.",
        *(f"  error seen: {error}" for entry in summary.values() for error in entry["errors"]),
    ]


def _routes(by_route: dict[str, int] | None) -> str:
    if not by_route:
        return "-"
    return ", ".join(f"{route} x{n}" for route, n in sorted(by_route.items()))


def api_section(summary: dict[str, Any]) -> list[str]:
    rows = []
    routes = []
    for count, entry in sorted(summary.items(), key=lambda item: int(item[0])):
        steady = entry["steady"]
        rows.append(
            [
                count,
                steady["calls"],
                steady["not_modified"],
                steady["rate_limit_used"],
                entry["spawn_calls_per_runner"],
                entry["spawn_rate_per_runner"],
            ]
        )
        routes.append(f"  N={count} steady: {_routes(steady['runs'][-1]['by_route'])}")
        routes.append(f"  N={count} spawn:  {_routes(entry['spawn_by_route'])}")
    return [
        "3. GitHub API cost (counted by the emulator)",
        grid(
            [
                "N",
                "calls/reconcile",
                "304s",
                "rate units",
                "spawn calls/runner",
                "spawn units/runner",
            ],
            rows,
        ),
        *routes,
    ]


def overhead_section(summary: dict[str, Any], planner: dict[str, Any] | None) -> list[str]:
    rows = [
        [
            count,
            entry["cli_wall"],
            entry["cli_wall_min"],
            entry["cli_cpu"],
            entry["cli_max_rss_mib"],
            entry["cli_report_duration"],
            entry["in_process_wall"],
            entry["tracemalloc_peak_mib"],
        ]
        for count, entry in sorted(summary.items(), key=lambda item: int(item[0]))
    ]
    out = [
        "4. No-change reconcile overhead (median)",
        grid(
            [
                "runners",
                "CLI wall s",
                "min",
                "CLI CPU s",
                "CLI peak RSS MiB",
                "CLI report.duration s",
                "in-process wall s",
                "tracemalloc peak MiB",
            ],
            rows,
        ),
    ]
    if planner:
        out.append(
            f"  planner.classify + planner.plan, {planner['runners']} runners "
            f"(+{planner['github_runners'] - planner['runners']} GitHub-only): median "
            f"{planner['median_ms']} ms, p95 {planner['p95_ms']} ms, min {planner['min_ms']} ms "
            f"({planner['runs']} runs)"
        )
    return out


def jobstream_section(stream: dict[str, Any]) -> list[str]:
    """The job stream: K queued jobs on N runners, with the replenisher and the timer only."""
    rows = []
    for mode in ("service", "timer"):
        run = stream.get(mode)
        if not run:
            continue
        wait, recovery = run["queue_wait"], run["recovery"]
        rows.append(
            [
                "replenisher + timer 10 min"
                if mode == "service"
                else f"timer {run['interval']:g} s",
                run["makespan"],
                run["ideal"],
                run["ratio"],
                f"{_cell(wait['median'])}/{_cell(wait['p95'])}/{_cell(wait['max'])}",
                f"{_cell(recovery['median'])}/{_cell(recovery['p95'])}/{_cell(recovery['max'])}",
                run["api_calls_per_job"],
                run["rate_limit_per_job"],
            ]
        )
    any_run = stream.get("service") or stream.get("timer") or {}
    lines = [
        f"Job stream: K={any_run.get('k')} queued jobs of {any_run.get('job_seconds')} s on "
        f"N={any_run.get('n')} runners; floor of one runner {any_run.get('floor_one')} s; "
        "no reconcile by the benchmark after the initial fill",
        grid(
            [
                "mode",
                "makespan s",
                "ideal s",
                "ratio",
                "queue wait med/p95/max s",
                "recovery med/p95/max s",
                "API calls/job",
                "rate/job",
            ],
            rows,
        ),
    ]
    for mode in ("service", "timer"):
        run = stream.get(mode)
        if run and run.get("recovery_shutdown"):
            down, up = run["recovery_shutdown"], run["recovery_respawn"]
            lines.append(
                f"  {mode}: recovery = job end -> LXD reports the instance gone "
                f"(med/p95/max {_cell(down['median'])}/{_cell(down['p95'])}/"
                f"{_cell(down['max'])} s) + that -> fresh runner online "
                f"({_cell(up['median'])}/{_cell(up['p95'])}/{_cell(up['max'])} s)"
            )
    lines += _phase_lines(stream.get("service") or {})
    estimate = stream.get("timer_at_default_interval")
    if estimate:
        lines.append(
            f"  timer only at the default {estimate['interval_minutes']} min (estimated from "
            f"the timer run): makespan ~{estimate['makespan']:.0f} s ({estimate['ratio']} x "
            f"ideal), a finished runner waits ~{estimate['recovery_median']:.0f} s on average"
        )
    return lines


def _spread_cell(spread: dict[str, Any]) -> str:
    return f"{_cell(spread['median'])}/{_cell(spread['p95'])}/{_cell(spread['max'])}"


def _phase_lines(run: dict[str, Any]) -> list[str]:
    """Where the replenisher's recovery goes: LXD's events, then each replacement's phases."""
    lines = []
    events = run.get("lxd_events_after_job_end") or {}
    if events:
        lines.append(
            "  service: job end -> LXD event (med/p95/max s): "
            + "; ".join(f"{action} {_spread_cell(events[action])}" for action in sorted(events))
        )
    replenisher = run.get("replenisher")
    if replenisher:
        phases = replenisher["phases"]
        rows = [
            [name, *[_cell(spread[k]) for k in ("median", "p95", "max")], spread["n"]]
            for name, spread in phases.items()
        ]
        lines += [
            f"  service: {replenisher['batches']} batches ({replenisher['empty_batches']} "
            f"spawned nothing), sizes {replenisher['batch_sizes']}, "
            f"{replenisher.get('from_standby', 0)} replacements from standbys; coalesce (first"
            " request -> batch start) and lock wait per batch that spawned, the rest per"
            " replacement runner (started_to_online: LXD start returned, or the standby got its"
            " keys -> the benchmark saw the runner online):",
            grid(["phase", "median s", "p95 s", "max s", "n"], rows),
        ]
    return lines


def goals_section(goals: list[dict[str, Any]]) -> list[str]:
    rows = [[g["status"], g["goal"], g["value"], g["note"] or ""] for g in goals]
    return ["Goals", grid(["", "goal", "measured", "note"], rows)]


def profiles_section(profiles: dict[str, Any]) -> list[str]:
    out = []
    spawn = profiles.get("spawn")
    if spawn:
        out.append(
            f"Profile: spawn of {spawn['n']} runners (wall-clock stack samples of the spawning"
            f" threads, {spawn['samples']} samples every {spawn['interval'] * 1000:.0f} ms)"
        )
        out.append(grid(["function (cumulative)", "share", "thread-s"], spawn["cumulative"]))
        out.append(grid(["function (self)", "share", "thread-s"], spawn["self"][:5]))
    overhead = profiles.get("overhead")
    if overhead:
        out.append(f"Profile: no-change CLI reconcile with {overhead['n']} runners (cProfile)")
        out.append(grid(["function", "calls", "own s", "cum s"], overhead["cli"]["cprofile"]))
        out.append(grid(["slowest imports", "s"], overhead["cli"]["imports"]))
        out.append("Profile: the same reconcile in-process (cProfile)")
        out.append(grid(["function", "calls", "own s", "cum s"], overhead["in_process"]))
    planner = profiles.get("planner")
    if planner:
        out.append("Profile: planner (cProfile, 20 runs)")
        out.append(grid(["function", "calls", "own s", "cum s"], planner))
    return out


def _background(info: dict[str, Any] | None) -> str:
    if not info:
        return "-"
    others = ", ".join(f"{p}: {n}" for p, n in sorted(info["other_running"].items())) or "none"
    return f"load {info['load']}, running instances in other projects: {others}"


def _archive(info: dict[str, Any] | None) -> str:
    if not info:
        return "runner archive: unknown"
    return (
        f"runner archive: {info['filename']}, {info['bytes'] / 2**20:.1f} MiB, "
        f"{info['files']} files (--runner-size {info['size']}; the real one is over 100 MB)"
    )


def _header(results: dict[str, Any]) -> list[str]:
    env = results.get("environment", {})
    git = env.get("git", {})
    dirty = f" + {len(git.get('dirty', []))} uncommitted files" if git.get("dirty") else ""
    shape = env.get("runner_shape", {})
    return [
        f"github-runner benchmark - {env.get('started_at')} - {env.get('cpus')} CPUs, "
        f"LXD {env.get('lxd')}, project {env.get('project')}, pool {env.get('pool')}, "
        f"image {env.get('image')}",
        f"commit {git.get('commit')}{dirty}; repeat {env.get('repeat')}, sizes "
        f"{env.get('sizes')}; runners: {shape.get('cpu')} CPU, {shape.get('memory')}, "
        f"{shape.get('disk')} root, ephemeral, metrics on; elapsed {results.get('elapsed')} s",
        f"background: before {_background(env.get('background_before'))}; after "
        f"{_background(env.get('background_after'))}",
        _archive(env.get("runner_archive")),
        "",
    ]


def _failures(results: dict[str, Any]) -> list[str]:
    failures = [
        f"  N={key} {failure['measurement']}: {failure['error']}"
        for key, raw in results.get("raw", {}).items()
        if isinstance(raw, dict)
        for failure in raw.get("failures", [])
    ]
    if not failures:
        return []
    return ["Failed measurements (left out of the medians):", *failures, ""]


def render(results: dict[str, Any]) -> str:
    lines = _header(results)
    summary = results["summary"]
    if summary["spawn"]:
        lines += [*spawn_section(summary["spawn"]), ""]
    if summary["replacement"]:
        lines += [*replacement_section(summary["replacement"]), ""]
    if summary["api"]:
        lines += [*api_section(summary["api"]), ""]
    if summary["overhead"] or results.get("planner"):
        lines += [*overhead_section(summary["overhead"], results.get("planner")), ""]
    if summary.get("jobstream"):
        lines += [*jobstream_section(summary["jobstream"]), ""]
    if results.get("goals"):
        lines += [*goals_section(results["goals"]), ""]
    lines += _failures(results)
    if results.get("flush_errors"):
        lines.append("Errors the manager reported while the benchmark flushed its runners:")
        lines += [f"  {n} x {message}" for message, n in results["flush_errors"].items()]
        lines.append("")
    if results.get("profiles"):
        lines += profiles_section(results["profiles"])
    if results.get("interrupted") or results.get("error"):
        lines.append(f"INCOMPLETE: {results.get('error') or 'interrupted'}")
    return "\n".join(lines)
