# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""The planner alone (`planner.classify` + `planner.plan`) on simulated runners."""

from __future__ import annotations

import cProfile
import datetime
import random
import statistics
import time
from typing import Any

from github_runner_manager import planner
from github_runner_manager.models import (
    GitHubRunner,
    InstanceStatus,
    InstanceType,
    RunnerInstance,
)

from .sampler import cprofile_summary

NOW = datetime.datetime(2026, 1, 1, 12, 0, tzinfo=datetime.timezone.utc)
TIMEOUT = datetime.timedelta(seconds=600)
HASHES = {InstanceType.CONTAINER: "current", InstanceType.VIRTUAL_MACHINE: "current-vm"}


def simulated_fleet(
    count: int, seed: int = 8
) -> tuple[list[RunnerInstance], list[GitHubRunner], dict[InstanceType, int]]:
    """A fleet of `count` runners in a realistic mix of states, plus 2 % GitHub-only ghosts.

    70 % idle, 20 % busy, 5 % booting (registered, offline, young), 3 % stale idle, 1 % stopped,
    1 % unhealthy (offline, older than the registration timeout); nine in ten are containers.

    Args:
        count: runners with an instance.
        seed: the random seed (the fleet is the same on every run).

    Returns:
        The instances, the GitHub runners, and the desired counts (the fleet's own size).
    """
    rng = random.Random(seed)
    instances = []
    runners = []
    desired = {InstanceType.CONTAINER: 0, InstanceType.VIRTUAL_MACHINE: 0}
    for index in range(count):
        name = f"bench-0-{index:012x}"
        kind = InstanceType.CONTAINER if index % 10 else InstanceType.VIRTUAL_MACHINE
        desired[kind] += 1
        roll = rng.random()
        age = datetime.timedelta(seconds=rng.randint(60, 3000))
        status = InstanceStatus.RUNNING
        online, busy, config_hash = True, False, HASHES[kind]
        if roll < 0.20:
            busy = True
        elif roll < 0.25:
            online, age = False, datetime.timedelta(seconds=rng.randint(1, 60))
        elif roll < 0.28:
            config_hash = "stale"
        elif roll < 0.29:
            status = InstanceStatus.STOPPED
        elif roll < 0.30:
            online, age = False, datetime.timedelta(seconds=3600)
        instances.append(
            RunnerInstance(
                name=name,
                instance_type=kind,
                status=status,
                created_at=NOW - age,
                config_hash=config_hash,
            )
        )
        labels = ("self-hosted", "Linux", "X64", "bench", kind.value)
        runners.append(GitHubRunner(index + 1, name, online, busy and online, labels))
    for index in range(count // 50):
        runners.append(
            GitHubRunner(100000 + index, f"bench-0-{0xFFFF00 + index:012x}", False, False)
        )
    rng.shuffle(instances)
    rng.shuffle(runners)
    return instances, runners, desired


def plan_once(
    instances: list[RunnerInstance],
    runners: list[GitHubRunner],
    desired: dict[InstanceType, int],
) -> planner.Plan:
    views = planner.classify(
        instances, runners, now=NOW, registration_timeout=TIMEOUT, current_hash=HASHES
    )
    return planner.plan(views, desired)


def run(count: int = 1000, runs: int = 200) -> dict[str, Any]:
    """Time classify + plan on a simulated fleet.

    Args:
        count: runners.
        runs: timed runs (after 5 warm-up runs).

    Returns:
        Median, p95, min and max in milliseconds, and what the plan decided.
    """
    instances, runners, desired = simulated_fleet(count)
    for _ in range(5):
        result = plan_once(instances, runners, desired)
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        result = plan_once(instances, runners, desired)
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return {
        "runners": count,
        "github_runners": len(runners),
        "runs": runs,
        "median_ms": round(statistics.median(samples), 3),
        "p95_ms": round(samples[int(0.95 * (len(samples) - 1))], 3),
        "min_ms": round(samples[0], 3),
        "max_ms": round(samples[-1], 3),
        "removals": len(result.removals),
        "create": {kind.value: n for kind, n in result.create.items()},
    }


def profile(count: int = 1000, runs: int = 20) -> list[list[Any]]:
    instances, runners, desired = simulated_fleet(count)
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(runs):
        plan_once(instances, runners, desired)
    profiler.disable()
    return cprofile_summary(profiler)
