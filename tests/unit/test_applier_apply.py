# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""Applier: a whole plan applied, removals first, then creations with their short-circuits."""

from __future__ import annotations

import datetime
import threading

from github_runner_manager.applier import Applier, RunnerRemover
from github_runner_manager.errors import RunnerCreateError, StorageFullError, TokenError
from github_runner_manager.models import (
    GitHubRunner,
    InstanceStatus,
    InstanceType,
    RunnerInstance,
    RunnerState,
)
from github_runner_manager.planner import Plan, Reason, Removal, RunnerView
from github_runner_manager.runner import SpawnResult

from .conftest import PREFIX, UNIT, make_config

UTC = datetime.timezone.utc
CREATED = datetime.datetime(2026, 6, 1, 11, 0, tzinfo=UTC)
HASHES = {InstanceType.CONTAINER: "container-hash"}


class ScriptedSpawner:
    """Creates runners in the fake LXD, or raises the errors it is given, call by call.

    `outcomes[i]` is the error the i-th call raises (None: it succeeds); calls past the list
    succeed. Every call is noted in `order`, shared with whoever else notes there.
    """

    def __init__(
        self, lxd, outcomes: list[Exception | None] | None = None, order: list[str] | None = None
    ) -> None:
        self.lxd = lxd
        self.outcomes = list(outcomes or [])
        self.order = order if order is not None else []
        self.calls: list[tuple[InstanceType, str]] = []
        self._lock = threading.Lock()

    def spawn(self, instance_type: InstanceType, config_hash: str) -> SpawnResult:
        with self._lock:
            self.calls.append((instance_type, config_hash))
            self.order.append("create")
            name = f"{PREFIX}-{len(self.calls):012x}"
            error = self.outcomes.pop(0) if self.outcomes else None
        if error is not None:
            raise error
        self.lxd.add(name, UNIT, created_at=CREATED)
        return SpawnResult(name=name, instance_type=instance_type, timings={"create": 1.0})


def make_applier(tmp_path, lxd, github, clock, **overrides) -> Applier:
    config = make_config(tmp_path, **overrides)
    remover = RunnerRemover(lxd, github, sleep=clock.sleep, monotonic=clock.monotonic)
    return Applier(config, lxd, remover, clock=clock, monotonic=clock.monotonic)


def idle_removal(lxd, github) -> Removal:
    """An idle runner in both fakes, planned for removal."""
    runner_name = f"{PREFIX}-{0xFFF:012x}"
    lxd.add(runner_name, UNIT, created_at=CREATED)
    instance = RunnerInstance(
        name=runner_name,
        instance_type=InstanceType.CONTAINER,
        status=InstanceStatus.RUNNING,
        created_at=CREATED,
        config_hash="old-hash",
    )
    registered: GitHubRunner = github.add(runner_name)
    view = RunnerView(
        name=runner_name, state=RunnerState.IDLE, instance=instance, github=registered
    )
    return Removal(view, Reason.STALE_CONFIG)


def test_apply_removes_then_creates(tmp_path, lxd, github, clock):
    """A plan with a removal and two creations is applied whole.

    arrange: an idle runner of an old configuration planned for removal; two containers
        planned for creation.
    act: apply the plan.
    assert: the runner is removed before any creation, two runners are created with the
        container's hash, no error, and both phases are timed.
    """
    applier = make_applier(tmp_path, lxd, github, clock)
    target = idle_removal(lxd, github)
    order: list[str] = []
    real_delete = lxd.delete_instance

    def delete_instance(name: str) -> None:
        order.append("remove")
        real_delete(name)

    lxd.delete_instance = delete_instance
    spawner = ScriptedSpawner(lxd, order=order)
    plan = Plan(runners=(target.runner,), removals=(target,), create={InstanceType.CONTAINER: 2})

    outcome = applier.apply(plan, spawner, HASHES)

    assert order == ["remove", "create", "create"]
    assert [o.removed for o in outcome.removals] == [True]
    assert [r.instance_type for r in outcome.created] == [InstanceType.CONTAINER] * 2
    assert spawner.calls == [(InstanceType.CONTAINER, "container-hash")] * 2
    assert outcome.errors == []
    assert set(outcome.timings) == {"remove", "spawn"}


def test_create_without_runner_application_reports_once(tmp_path, lxd, github, clock):
    """No runner application: nothing is created and one error says why.

    arrange: three containers wanted and no spawner (no runner application).
    act: create.
    assert: nothing created; one runner-binary error.
    """
    applier = make_applier(tmp_path, lxd, github, clock)

    created, errors = applier.create([InstanceType.CONTAINER] * 3, None, HASHES)

    assert created == []
    assert [(e.kind, e.message) for e in errors] == [
        ("runner-binary", "no runner application to create runners with")
    ]


def test_create_skips_a_type_without_image(tmp_path, lxd, github, clock):
    """A type whose image is missing is reported once; the other type is still created.

    arrange: one container and two virtual machines wanted; only the container has a hash.
    act: create.
    assert: one container created; one image error naming the virtual machines' image.
    """
    applier = make_applier(tmp_path, lxd, github, clock)
    spawner = ScriptedSpawner(lxd)
    wanted = [InstanceType.CONTAINER, InstanceType.VIRTUAL_MACHINE, InstanceType.VIRTUAL_MACHINE]

    created, errors = applier.create(wanted, spawner, HASHES)

    assert [r.instance_type for r in created] == [InstanceType.CONTAINER]
    assert [e.kind for e in errors] == ["image"]
    assert "does not exist yet" in errors[0].message
    assert spawner.calls == [(InstanceType.CONTAINER, "container-hash")]


def test_create_stops_at_a_fatal_github_error(tmp_path, lxd, github, clock):
    """A refused token stops the batch: no further creation is tried, one error is reported.

    arrange: four containers wanted, one at a time; the first creation fails with a token error.
    act: create.
    assert: only one creation tried, nothing created, one token error reported.
    """
    applier = make_applier(tmp_path, lxd, github, clock, timing={"spawn_concurrency": 1})
    spawner = ScriptedSpawner(lxd, [TokenError("the token was refused")])

    created, errors = applier.create([InstanceType.CONTAINER] * 4, spawner, HASHES)

    assert len(spawner.calls) == 1
    assert created == []
    assert [(e.kind, e.message) for e in errors] == [(TokenError.kind, "the token was refused")]


def test_create_in_a_full_pool_reports_it_once_and_goes_cautious(tmp_path, lxd, github, clock):
    """A full pool stops the batch, is reported once, and makes the next run go one at a time.

    arrange: three containers wanted, one at a time; the second creation finds the pool full.
    act: create, then create three more.
    assert: one created and one runner-create error naming the pool; the full-pool marker is
        written; the next batch, which all fits, clears it.
    """
    applier = make_applier(tmp_path, lxd, github, clock, timing={"spawn_concurrency": 1})
    full = RunnerCreateError("cannot create the instance")
    full.__cause__ = StorageFullError("no space left on device")
    # The batch: one made, the second finds the pool full; the retry one at a time too.
    spawner = ScriptedSpawner(lxd, [None, full, full])
    marker = make_config(tmp_path).state_dir / "storage-full"
    marker.parent.mkdir(parents=True, exist_ok=True)

    created, errors = applier.create([InstanceType.CONTAINER] * 3, spawner, HASHES)

    assert len(created) == 1
    assert [e.kind for e in errors] == ["runner-create"]
    assert "storage pool" in errors[0].message and "created 1 of the 3" in errors[0].message
    assert marker.exists()

    created, errors = applier.create([InstanceType.CONTAINER] * 3, spawner, HASHES)

    assert len(created) == 3 and errors == []
    assert not marker.exists()
