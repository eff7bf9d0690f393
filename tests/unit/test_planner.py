# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""The planner's rules, as tables: observed runners in, removals and creations out."""

from __future__ import annotations

import dataclasses
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

from .builders import github_runner, runner_instance

UTC = datetime.timezone.utc
NOW = datetime.datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
TIMEOUT = datetime.timedelta(minutes=10)
C = InstanceType.CONTAINER
VM = InstanceType.VIRTUAL_MACHINE
HASHES = {C: "hash-c", VM: "hash-vm"}
URL = "https://github.com"
TARGET = (URL, "owner/new")


def inst(
    name: str,
    age_min: float = 60,
    kind: InstanceType = C,
    status: InstanceStatus = InstanceStatus.RUNNING,
    config_hash: str | None = None,
    jit: bool = False,
    runner_id: int | None = None,
    path: str | None = None,
) -> RunnerInstance:
    return runner_instance(
        name,
        NOW - datetime.timedelta(minutes=age_min),
        kind=kind,
        status=status,
        config_hash=config_hash if config_hash is not None else HASHES[kind],
        jit=jit,
        runner_id=runner_id,
        github_url=URL if path else None,
        github_path=path,
    )


def gh(name: str, online: bool = True, busy: bool = False, runner_id: int = 0) -> GitHubRunner:
    return github_runner(name, online, busy, runner_id)


def run_plan(instances, runners, desired, alive=None, looked_up=None, target=None, **kwargs):
    views = planner.classify(
        instances,
        runners,
        now=NOW,
        registration_timeout=TIMEOUT,
        current_hash=HASHES,
        alive=alive,
        looked_up=looked_up,
        target=target,
        **kwargs,
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
            {},
            {C: 0, VM: 0},
            id="unlisted: absent from the listing alone, kept and counted",
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
            {},
            {C: 0, VM: 0},
            id="unlisted: token-flow runner absent after the grace period, process not known dead",
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
    """The planner's rules, one table row each: what is removed and how many are created.

    arrange: observed instances and GitHub runners, and the wanted count per type.
    act: plan.
    assert: the removals with their reasons, and the creations per type.
    """
    plan = run_plan(instances, runners, desired)

    assert removed(plan) == want_removed
    assert dict(plan.create) == want_create


def test_dead_process_is_unhealthy_before_the_grace_period():
    """A runner whose process died is replaced even before its grace period ends.

    arrange: a young instance whose runner process is dead.
    act: plan.
    assert: replaced.
    """
    plan = run_plan([inst("r1", age_min=2)], [gh("r1", online=False)], {C: 1}, alive={"r1": False})

    assert removed(plan) == {"r1": Reason.UNHEALTHY}
    assert plan.create[C] == 1


def test_unknown_probe_keeps_a_booting_runner():
    """A probe that could not tell keeps a booting runner.

    arrange: a young instance whose probe could not tell.
    act: plan.
    assert: kept as booting.
    """
    plan = run_plan([inst("r1", age_min=2)], [], {C: 1}, alive={"r1": None})

    assert removed(plan) == {}
    assert plan.runners[0].state is RunnerState.BOOTING


def test_missing_current_hash_marks_nothing_stale():
    """Without a current hash nothing counts as stale.

    arrange: no current hash (runner application unknown).
    act: classify.
    assert: not stale.
    """
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
    """Only booting runners old enough are probed.

    arrange: booting runners of several ages and an idle one.
    act: pick the instances to probe with a 30 s minimum age.
    assert: only the old booting one.
    """
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
    """A flush removes every runner, busy ones only with busy.

    arrange: runners in every state: idle, booting, stopped, busy, and a ghost registration.
    act: plan a flush, with or without busy.
    assert: all but the busy runner go, or all with busy; every reason is flush.
    """
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
    """The runner name pattern matches only the manager's own runners.

    arrange: a prefix.
    act: match names.
    assert: only the manager's own runners match.
    """
    assert bool(planner.runner_name_pattern("app-1").match(name)) is matches


def test_plan_of_a_thousand_runners_is_consistent():
    """A plan of a thousand runners removes exactly the surplus, oldest first.

    arrange: 1000 idle runners, want 900.
    act: plan.
    assert: the 100 oldest go, none created.
    """
    instances = [inst(f"r{i:04d}", age_min=2000 - i) for i in range(1000)]
    runners = [gh(f"r{i:04d}", runner_id=i + 1) for i in range(1000)]

    plan = run_plan(instances, runners, {C: 900})

    assert {r.name for r in plan.removals} == {f"r{i:04d}" for i in range(100)}
    assert plan.create[C] == 0


@pytest.mark.parametrize(
    ("evidence", "want_state"),
    [
        pytest.param({}, RunnerState.UNLISTED, id="absence alone: unlisted"),
        pytest.param({"alive": {"r1": True}}, RunnerState.UNLISTED, id="process runs: unlisted"),
        pytest.param({"alive": {"r1": False}}, RunnerState.FINISHED, id="process exited"),
        pytest.param({"looked_up": {"r1": None}}, RunnerState.FINISHED, id="GitHub: 404"),
        pytest.param(
            {"looked_up": {"r1": gh("r1", busy=True)}}, RunnerState.BUSY, id="lookup: busy"
        ),
    ],
)
def test_finished_needs_positive_evidence(evidence, want_state):
    """A runner counts as finished only on positive evidence, never on its absence alone.

    arrange: a JIT runner absent from GitHub's listing, with no evidence, a live or exited process,
        a 404, or a lookup saying busy.
    act: plan.
    assert: unlisted without evidence or with a live process; finished (removed and replaced) on an
        exit or a 404; busy when looked up busy.
    """
    plan = run_plan([inst("r1", age_min=3, jit=True, runner_id=7)], [], {C: 1}, **evidence)

    assert plan.runners[0].state is want_state
    finished = want_state is RunnerState.FINISHED
    assert removed(plan) == ({"r1": Reason.FINISHED} if finished else {})
    assert plan.create[C] == (1 if finished else 0), "only a finished runner is replaced"


def test_empty_listing_deletes_no_live_instance():
    """An empty listing deletes no live instance.

    arrange: 3 live runners, 2 busy, and a listing that came back empty.
    act: plan.
    assert: nothing removed, nothing created; all three are looked up.
    """
    instances = [inst(f"r{i}", jit=True, runner_id=i) for i in range(1, 4)]

    views = planner.classify(
        instances, [], now=NOW, registration_timeout=TIMEOUT, current_hash=HASHES
    )
    plan = planner.plan(views, {C: 3})

    assert plan.removals == () and plan.create[C] == 0
    assert {v.state for v in views} == {RunnerState.UNLISTED}
    assert [v.name for v in planner.runners_to_look_up(views)] == ["r1", "r2", "r3"]
    assert planner.instances_to_probe(views, now=NOW, min_age=TIMEOUT) == ["r1", "r2", "r3"]


def test_unlisted_runner_is_flushed_only_with_busy():
    """An unlisted runner is flushed only with busy: it may be running a job.

    arrange: an unlisted runner (busy or not, GitHub did not say).
    act: plan a flush without, then with busy.
    assert: kept without busy; removed with busy.
    """
    views = planner.classify(
        [inst("r1", jit=True)], [], now=NOW, registration_timeout=TIMEOUT, current_hash=HASHES
    )

    assert planner.plan_flush(views, busy=False) == []
    assert [r.name for r in planner.plan_flush(views, busy=True)] == ["r1"]


@pytest.mark.parametrize(
    ("old_runner", "want_state", "want_reason"),
    [
        pytest.param(gh("m1"), RunnerState.IDLE, Reason.MOVED, id="idle: removed"),
        pytest.param(gh("m1", online=False), RunnerState.BOOTING, Reason.MOVED, id="booting"),
        pytest.param(gh("m1", busy=True), RunnerState.BUSY, None, id="busy: finishes first"),
        pytest.param(None, RunnerState.FINISHED, Reason.FINISHED, id="gone on the old path"),
    ],
)
def test_runner_of_the_old_path(old_runner, want_state, want_reason):
    """A runner of the previous path goes when idle and stays while busy.

    arrange: a runner registered on the previous path, looked up there.
    act: plan.
    assert: idle ones go (reason moved), busy ones stay; none counts for the new path.
    """
    age = 60 if want_state is not RunnerState.BOOTING else 1
    instances = [
        inst("m1", age_min=age, jit=True, runner_id=5, path="owner/old", config_hash="old"),
        inst("n1", jit=True, runner_id=6, path="Owner/New"),
    ]

    plan = run_plan(instances, [gh("n1")], {C: 1}, looked_up={"m1": old_runner}, target=TARGET)

    view = next(v for v in plan.runners if v.name == "m1")
    assert view.moved and view.state is want_state
    assert view.target == (URL, "owner/old")
    assert removed(plan) == ({"m1": want_reason} if want_reason else {})
    assert plan.create[C] == 0, "the new path already has its one runner (n1)"
    assert not next(v for v in plan.runners if v.name == "n1").moved, "path case is ignored"


def test_moved_runner_not_looked_up_is_kept():
    """A runner of the old path that GitHub was not asked about is kept.

    arrange: a runner of the old path GitHub was not asked about.
    act: plan.
    assert: kept.
    """
    plan = run_plan(
        [inst("m1", jit=True, runner_id=5, path="owner/old")], [], {C: 1}, target=TARGET
    )

    assert plan.runners[0].state is RunnerState.UNLISTED
    assert removed(plan) == {}
    assert plan.create[C] == 1, "moved runners do not count for the new path"


@pytest.mark.parametrize(
    ("grace", "want_state", "want_removed"),
    [
        pytest.param(planner.CREATION_GRACE, RunnerState.CREATING, {}, id="outside the lock"),
        pytest.param(
            datetime.timedelta(0), RunnerState.STOPPED, {"r1": Reason.STOPPED}, id="under lock"
        ),
    ],
)
def test_half_made_instance_goes_at_once_under_the_lock(grace, want_state, want_removed):
    """A half-made instance goes at once under the lock, and waits its grace outside it.

    arrange: a young, never started instance with its offline registration.
    act: plan with the creation grace (outside the lock) and without it (under the lock).
    assert: creating and kept outside the lock; stopped and removed under it.
    """
    plan = run_plan(
        [inst("r1", age_min=0.2, status=InstanceStatus.STOPPED, jit=True)],
        [gh("r1", online=False)],
        {C: 1},
        creation_grace=grace,
    )

    assert plan.runners[0].state is want_state
    assert removed(plan) == want_removed


@pytest.mark.parametrize(
    ("age_min", "want_state", "want_removed", "want_create"),
    [
        pytest.param(0.2, RunnerState.CREATING, {}, 0, id="young: being started"),
        pytest.param(
            planner.CREATION_GRACE.total_seconds() / 60 + 1,
            RunnerState.STOPPED,
            {"r1": Reason.STOPPED},
            1,
            id="past the grace: a leftover",
        ),
    ],
)
def test_instance_started_after_the_lock_is_kept_under_the_lock(
    age_min, want_state, want_removed, want_create
):
    """An instance the replenisher starts after releasing the lock is in creation, even under it.

    arrange: a never started instance tagged to start after the lock (`awaiting_start`), young
        or past the grace.
    act: plan under the lock (no creation grace for untagged instances).
    assert: a young one is creating, kept and counted (nothing more is created); one past the
        creation grace is a stopped leftover, removed and replaced.
    """
    instance = dataclasses.replace(
        inst("r1", age_min=age_min, status=InstanceStatus.STOPPED, jit=True),
        awaiting_start=True,
    )

    plan = run_plan(
        [instance], [gh("r1", online=False)], {C: 1}, creation_grace=datetime.timedelta(0)
    )

    assert plan.runners[0].state is want_state
    assert removed(plan) == want_removed
    assert plan.create[C] == want_create
    assert planner.in_creation(instance, NOW) is (want_state is RunnerState.CREATING)


def standby(name: str, age_min: float = 5, **kwargs) -> RunnerInstance:
    """A standby instance (booted, unregistered)."""
    return dataclasses.replace(inst(name, age_min=age_min, **kwargs), standby=True)


@pytest.mark.parametrize(
    "instances, standbys, want_states, want_removed, want_create",
    [
        pytest.param(
            [inst("r1", jit=True, runner_id=1), standby("s1")],
            {C: 1},
            {"r1": RunnerState.IDLE, "s1": RunnerState.STANDBY},
            {},
            0,
            id="a current standby is kept and not counted",
        ),
        pytest.param(
            [standby("s1")],
            {C: 1},
            {"s1": RunnerState.STANDBY},
            {},
            1,
            id="a standby is no runner: the missing runner is created",
        ),
        pytest.param(
            [inst("r1", jit=True, runner_id=1), standby("s1", config_hash="old")],
            {C: 1},
            {"r1": RunnerState.IDLE, "s1": RunnerState.STANDBY},
            {"s1": Reason.STALE_CONFIG},
            0,
            id="a stale standby goes",
        ),
        pytest.param(
            [inst("r1", jit=True, runner_id=1), standby("s1", status=InstanceStatus.STOPPED)],
            {C: 1},
            {"r1": RunnerState.IDLE, "s1": RunnerState.STOPPED},
            {"s1": Reason.STOPPED},
            0,
            id="a stopped standby goes",
        ),
        pytest.param(
            [inst("r1", jit=True, runner_id=1), standby("s1", age_min=9), standby("s2")],
            {C: 1},
            {"r1": RunnerState.IDLE, "s1": RunnerState.STANDBY, "s2": RunnerState.STANDBY},
            {"s1": Reason.SCALE_DOWN},
            0,
            id="standbys beyond the wanted number go, oldest first",
        ),
        pytest.param(
            [inst("r1", jit=True, runner_id=1), standby("s1")],
            {},
            {"r1": RunnerState.IDLE, "s1": RunnerState.STANDBY},
            {"s1": Reason.SCALE_DOWN},
            0,
            id="no standby wanted: every one goes",
        ),
    ],
)
def test_standbys_are_kept_apart_from_runners(
    instances, standbys, want_states, want_removed, want_create
):
    """A standby is neither a runner nor counted; stale, stopped and extra ones go.

    arrange: an idle runner (or none) and standbys, current or stale, running or stopped.
    act: plan with 1 container runner wanted and the given number of standbys.
    assert: each standby is in the standby state (or stopped); the removals and the number of
        runners to create are as listed.
    """
    views = planner.classify(
        instances,
        [gh("r1", runner_id=1)] if any(i.name == "r1" for i in instances) else [],
        now=NOW,
        registration_timeout=TIMEOUT,
        current_hash=HASHES,
    )

    plan = planner.plan(views, {C: 1}, standbys)

    assert {view.name: view.state for view in plan.runners} == want_states
    assert removed(plan) == want_removed
    assert plan.create[C] == want_create


def test_a_standby_in_creation_is_kept_but_not_counted():
    """A never started standby, young and tagged to start after the lock, is kept, not counted.

    arrange: a young, never started standby tagged `awaiting_start`; no runner.
    act: plan under the lock with 1 runner and 1 standby wanted.
    assert: the standby is creating and kept; the runner is still created.
    """
    instance = dataclasses.replace(
        standby("s1", age_min=0.5, status=InstanceStatus.STOPPED), awaiting_start=True
    )
    views = planner.classify(
        [instance],
        [],
        now=NOW,
        registration_timeout=TIMEOUT,
        current_hash=HASHES,
        creation_grace=datetime.timedelta(0),
    )

    plan = planner.plan(views, {C: 1}, {C: 1})

    assert plan.runners[0].state is RunnerState.CREATING
    assert removed(plan) == {}
    assert plan.create[C] == 1
