# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""The planner's rules, as tables: observed runners in, removals and creations out."""

from __future__ import annotations

import datetime

import pytest

from github_runner_manager import planner
from github_runner_manager.models import (
    GitHubRunner,
    InstanceStatus,
    InstanceType,
    RunnerInstance,
    RunnerState,
)
from github_runner_manager.planner import Reason

UTC = datetime.timezone.utc
NOW = datetime.datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
TIMEOUT = datetime.timedelta(minutes=10)
C = InstanceType.CONTAINER
VM = InstanceType.VIRTUAL_MACHINE
HASHES = {C: "hash-c", VM: "hash-vm"}


def inst(
    name: str,
    age_min: float = 60,
    kind: InstanceType = C,
    status: InstanceStatus = InstanceStatus.RUNNING,
    config_hash: str | None = None,
    jit: bool = False,
) -> RunnerInstance:
    return RunnerInstance(
        name=name,
        instance_type=kind,
        status=status,
        created_at=NOW - datetime.timedelta(minutes=age_min),
        config_hash=config_hash if config_hash is not None else HASHES[kind],
        registered_first=jit,
    )


def gh(name: str, online: bool = True, busy: bool = False, runner_id: int = 0) -> GitHubRunner:
    return GitHubRunner(
        id=runner_id or abs(hash(name)) % 10_000 + 1, name=name, online=online, busy=busy
    )


def run_plan(instances, runners, desired, alive=None):
    views = planner.classify(
        instances,
        runners,
        now=NOW,
        registration_timeout=TIMEOUT,
        current_hash=HASHES,
        alive=alive,
    )
    return planner.plan(views, desired)


def removed(plan: planner.Plan) -> dict[str, Reason]:
    return {removal.name: removal.reason for removal in plan.removals}


@pytest.mark.parametrize(
    ("instances", "runners", "desired", "want_removed", "want_create"),
    [
        pytest.param([], [], {C: 3}, {}, {C: 3, VM: 0}, id="from zero: spawn all"),
        pytest.param(
            [inst("r1"), inst("r2"), inst("r3")],
            [gh("r1"), gh("r2"), gh("r3")],
            {C: 3},
            {},
            {C: 0, VM: 0},
            id="steady state: nothing to do",
        ),
        pytest.param(
            [],
            [gh("ghost", online=False)],
            {C: 0},
            {"ghost": Reason.GITHUB_ORPHAN},
            {C: 0, VM: 0},
            id="github-orphan: offline GitHub runner without instance is deleted",
        ),
        pytest.param(
            [],
            [gh("gone", online=True)],
            {C: 0},
            {},
            {C: 0, VM: 0},
            id="online GitHub runner without instance is left for GitHub to notice",
        ),
        pytest.param(
            [inst("r1", status=InstanceStatus.STOPPED)],
            [gh("r1", online=False)],
            {C: 1},
            {"r1": Reason.STOPPED},
            {C: 1, VM: 0},
            id="stopped: a leftover instance is deleted and replaced",
        ),
        pytest.param(
            [inst("r1", age_min=1, jit=True)],
            [],
            {C: 1},
            {"r1": Reason.FINISHED},
            {C: 1, VM: 0},
            id="finished: JIT registration gone, instance powering off, replaced at once",
        ),
        pytest.param(
            [inst("r1", age_min=0.05, jit=True)],
            [],
            {C: 1},
            {},
            {C: 0, VM: 0},
            id="finished needs a few seconds: a brand new JIT runner may not be listed yet",
        ),
        pytest.param(
            [inst("r1", age_min=1, jit=False)],
            [],
            {C: 1},
            {},
            {C: 0, VM: 0},
            id="registration-token runner not listed yet is still booting",
        ),
        pytest.param(
            [inst("r1", age_min=0.5, status=InstanceStatus.STOPPED)],
            [],
            {C: 1},
            {},
            {C: 1, VM: 0},
            id="creating: a young stopped instance is neither counted nor deleted",
        ),
        pytest.param(
            [inst("r1", age_min=30)],
            [gh("r1", online=False)],
            {C: 1},
            {"r1": Reason.UNHEALTHY},
            {C: 1, VM: 0},
            id="unhealthy: offline after the grace period is replaced",
        ),
        pytest.param(
            [inst("r1", age_min=30)],
            [],
            {C: 1},
            {"r1": Reason.UNHEALTHY},
            {C: 1, VM: 0},
            id="unhealthy: never registered within the grace period",
        ),
        pytest.param(
            [inst("r1", age_min=2)],
            [gh("r1", online=False)],
            {C: 1},
            {},
            {C: 0, VM: 0},
            id="booting: offline within the grace period counts as capacity",
        ),
        pytest.param(
            [inst("r1", config_hash="old")],
            [gh("r1")],
            {C: 1},
            {"r1": Reason.STALE_CONFIG},
            {C: 1, VM: 0},
            id="stale-config: idle runner replaced",
        ),
        pytest.param(
            [inst("r1", config_hash="old")],
            [gh("r1", busy=True)],
            {C: 1},
            {},
            {C: 0, VM: 0},
            id="stale-config: busy runner finishes its job first",
        ),
        pytest.param(
            [inst("r1", age_min=2, config_hash="old")],
            [],
            {C: 1},
            {"r1": Reason.STALE_CONFIG},
            {C: 1, VM: 0},
            id="stale-config: booting runner replaced",
        ),
        pytest.param(
            [inst("old", age_min=90), inst("mid", age_min=60), inst("new", age_min=30)],
            [gh("old"), gh("mid"), gh("new")],
            {C: 1},
            {"old": Reason.SCALE_DOWN, "mid": Reason.SCALE_DOWN},
            {C: 0, VM: 0},
            id="scale-down: oldest idle first",
        ),
        pytest.param(
            [inst("old", age_min=90), inst("mid", age_min=60), inst("new", age_min=30)],
            [gh("old", busy=True), gh("mid"), gh("new")],
            {C: 1},
            {"mid": Reason.SCALE_DOWN, "new": Reason.SCALE_DOWN},
            {C: 0, VM: 0},
            id="scale-down: busy runners are never removed",
        ),
        pytest.param(
            [inst("b1"), inst("b2")],
            [gh("b1", busy=True), gh("b2", busy=True)],
            {C: 0},
            {},
            {C: 0, VM: 0},
            id="scale-down to zero leaves busy runners",
        ),
        pytest.param(
            [inst("idle", age_min=50), inst("boot", age_min=1)],
            [gh("idle"), gh("boot", online=False)],
            {C: 1},
            {"idle": Reason.SCALE_DOWN},
            {C: 0, VM: 0},
            id="scale-down: idle before booting",
        ),
        pytest.param(
            [inst("c1"), inst("v1", kind=VM)],
            [gh("c1"), gh("v1")],
            {C: 2, VM: 2},
            {},
            {C: 1, VM: 1},
            id="per type: each type topped up on its own",
        ),
        pytest.param(
            [inst("v1", kind=VM), inst("v2", kind=VM, age_min=10)],
            [gh("v1"), gh("v2")],
            {C: 1, VM: 1},
            {"v1": Reason.SCALE_DOWN},
            {C: 1, VM: 0},
            id="per type: surplus VMs removed while containers are created",
        ),
    ],
)
def test_plan_rules(instances, runners, desired, want_removed, want_create):
    """arrange: observed instances and GitHub runners. act: plan. assert: removals, creations."""
    plan = run_plan(instances, runners, desired)

    assert removed(plan) == want_removed
    assert dict(plan.create) == want_create


def test_dead_process_is_unhealthy_before_the_grace_period():
    """arrange: a young instance whose runner process is dead. act: plan. assert: replaced."""
    plan = run_plan([inst("r1", age_min=2)], [gh("r1", online=False)], {C: 1}, alive={"r1": False})

    assert removed(plan) == {"r1": Reason.UNHEALTHY}
    assert plan.create[C] == 1


def test_unknown_probe_keeps_a_booting_runner():
    """arrange: a young instance whose probe could not tell. act: plan. assert: kept as booting."""
    plan = run_plan([inst("r1", age_min=2)], [], {C: 1}, alive={"r1": None})

    assert removed(plan) == {}
    assert plan.runners[0].state is RunnerState.BOOTING


def test_missing_current_hash_marks_nothing_stale():
    """arrange: no current hash (runner application unknown). act: classify. assert: not stale."""
    views = planner.classify(
        [inst("r1", config_hash="anything")],
        [gh("r1")],
        now=NOW,
        registration_timeout=TIMEOUT,
        current_hash={},
    )

    assert views[0].stale is False
    assert views[0].state is RunnerState.IDLE


def test_instances_to_probe_only_old_enough_booting_ones():
    """arrange: booting runners of several ages and an idle one. act: pick. assert: old booting."""
    views = planner.classify(
        [inst("young", age_min=0.1), inst("late", age_min=5), inst("idle", age_min=5)],
        [gh("idle")],
        now=NOW,
        registration_timeout=TIMEOUT,
        current_hash=HASHES,
    )

    picked = planner.instances_to_probe(views, now=NOW, min_age=datetime.timedelta(seconds=30))

    assert picked == ["late"]


@pytest.mark.parametrize(
    ("busy", "want"),
    [
        pytest.param(False, {"idle", "boot", "dead", "ghost"}, id="flush keeps busy runners"),
        pytest.param(
            True, {"idle", "boot", "dead", "ghost", "busy"}, id="flush --busy removes all"
        ),
    ],
)
def test_plan_flush(busy, want):
    """arrange: runners in every state. act: plan a flush. assert: what goes."""
    views = planner.classify(
        [
            inst("idle"),
            inst("boot", age_min=1),
            inst("dead", status=InstanceStatus.STOPPED),
            inst("busy"),
        ],
        [gh("idle"), gh("busy", busy=True), gh("ghost", online=False)],
        now=NOW,
        registration_timeout=TIMEOUT,
        current_hash=HASHES,
    )

    removals = planner.plan_flush(views, busy=busy)

    assert {r.name for r in removals} == want
    assert {r.reason for r in removals} == {Reason.FLUSH}


@pytest.mark.parametrize(
    ("name", "matches"),
    [
        pytest.param("app-1-0123456789ab", True, id="own runner"),
        pytest.param("app-1-2-0123456789ab", False, id="app-1 unit 2 is not app unit 1"),
        pytest.param("app-10-0123456789ab", False, id="unit 10 is not unit 1"),
        pytest.param("app-1-0123456789", False, id="short suffix"),
        pytest.param("app-1-0123456789AB", False, id="upper-case suffix"),
    ],
)
def test_runner_name_pattern(name, matches):
    """arrange: a prefix. act: match names. assert: only the manager's own runners match."""
    assert bool(planner.runner_name_pattern("app-1").match(name)) is matches


def test_plan_of_a_thousand_runners_is_consistent():
    """arrange: 1000 idle runners, want 900. act: plan. assert: the 100 oldest go, none created."""
    instances = [inst(f"r{i:04d}", age_min=2000 - i) for i in range(1000)]
    runners = [gh(f"r{i:04d}", runner_id=i + 1) for i in range(1000)]

    plan = run_plan(instances, runners, {C: 900})

    assert {r.name for r in plan.removals} == {f"r{i:04d}" for i in range(100)}
    assert plan.create[C] == 0
