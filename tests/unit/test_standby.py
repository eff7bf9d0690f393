# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""Standbys: made ahead from the baked image, made runners when runners end (in-memory fakes)."""

from __future__ import annotations

import datetime
import json

import pytest

from github_runner_manager import planner
from github_runner_manager.errors import LxdError, TokenError
from github_runner_manager.image import (
    BOOT_KEYS,
    BOOT_WAITS,
    PROPERTY_BOOT,
    PROPERTY_RUNNER_SHA256,
)
from github_runner_manager.lxd import (
    TAG_CREATED_AT,
    TAG_REGISTRATION,
    TAG_RUNNER_ID,
    TAG_STANDBY,
    TAG_START_AFTER_LOCK,
)
from github_runner_manager.models import InstanceStatus, InstanceType, RunnerState
from github_runner_manager.report_assembly import check_result
from github_runner_manager.runner import SpawnResult
from github_runner_manager.standby import StandbyFirst, Standbys, ready_standbys

from .builders import make_config
from .test_baked_image import SHA, bake_image, make_spawner
from .test_planner import NOW, inst, standby

CONTAINER = InstanceType.CONTAINER
VM = InstanceType.VIRTUAL_MACHINE
TOKEN = "ghp_unit_test_token"  # make_config's token: it must never reach an instance
JIT_KEY = BOOT_KEYS["jit_key"]
FILES_KEY = BOOT_KEYS["files_key"]
UNIT = "github-runner/0"
HASHES = {CONTAINER: "hash-1"}
# The fake runner application cache's SHA-256 (FakeBinaryCache).
CACHE_SHA = "0" * 64


def baked(sha: str) -> dict[str, str]:
    """The properties of an image baked with a runner of this SHA-256, as a build records them."""
    return {PROPERTY_RUNNER_SHA256: sha, PROPERTY_BOOT: BOOT_WAITS}


@pytest.fixture
def baked_spawner(tmp_path, lxd, github, clock):
    """A spawner whose image has the current runner application baked in."""
    bake_image(lxd, "jammy", baked(SHA))
    return make_spawner(tmp_path, lxd, github, clock)


def test_a_standby_is_a_started_container_with_nothing_to_run(baked_spawner, lxd, github):
    """A standby holds no registration, no configuration and no secret.

    arrange: a current baked image.
    act: create a standby.
    assert: its container runs, tagged standby and start-after-lock, devlxd on; no JIT or files
        key, no runner id; GitHub was not called; the token is nowhere in its configuration.
    """
    name = baked_spawner.create_standby(CONTAINER, "hash-1")

    instance = lxd.instances[name]
    assert instance.status == "Running"
    config = instance.spec.config
    assert config[TAG_STANDBY] == "true" and config[TAG_START_AFTER_LOCK] == "true"
    assert config["security.devlxd"] == "true"
    assert not {JIT_KEY, FILES_KEY, TAG_RUNNER_ID} & set(config)
    assert github.registered == []
    assert TOKEN not in json.dumps(config)


def test_adopting_a_standby_registers_it_and_sets_its_keys_live(baked_spawner, lxd, github, clock):
    """A standby becomes a runner with one registration and one configuration update.

    arrange: a running standby, created a while ago.
    act: adopt it.
    assert: GitHub registered one runner with the standby's name; the instance (not restarted,
        no file pushed) now has the JIT and files keys, the runner id, `jit` registration and a
        creation time of now, and no standby or start-after-lock tag; timings: register, adopt.
    """
    name = baked_spawner.create_standby(CONTAINER, "hash-1")
    clock.advance(300)
    # Neither a start nor a file write: either would fail now.
    for method in ("start_instance", "push_file", "make_directory", "push_symlink"):
        lxd.fail[method] = LxdError(f"{method} called")

    result = baked_spawner.adopt_standby(name, CONTAINER)

    assert result.name == name and set(result.timings) == {"register", "adopt"}
    assert [registered for registered, _ in github.registered] == [name]
    instance = lxd.instances[name]
    config = instance.spec.config
    assert config[JIT_KEY] == f"jit-for-{name}" and config[FILES_KEY]
    assert config[TAG_REGISTRATION] == "jit"
    assert config[TAG_RUNNER_ID] == str(github.find_runner(name).id)
    assert config[TAG_CREATED_AT] == clock().isoformat()
    assert TAG_STANDBY not in config and TAG_START_AFTER_LOCK not in config
    assert (instance.files, instance.links) == ({}, {})


def test_a_standby_that_cannot_take_its_keys_is_removed_with_its_registration(
    baked_spawner, lxd, github
):
    """A failed hand-over leaves neither the standby nor a ghost registration.

    arrange: a standby; LXD fails to update instance configurations.
    act: adopt it.
    assert: it raises; the instance is gone and its GitHub registration deleted.
    """
    name = baked_spawner.create_standby(CONTAINER, "hash-1")
    lxd.fail["update_instance_config"] = LxdError("LXD is down")

    with pytest.raises(Exception, match="cannot make standby"):
        baked_spawner.adopt_standby(name, CONTAINER)

    assert name not in lxd.instances
    assert github.find_runner(name) is None and len(github.deleted) == 1


def test_a_refused_registration_leaves_the_standby_as_it_was(baked_spawner, lxd, github):
    """GitHub refusing the token keeps the standby for a later try.

    arrange: a standby; GitHub refuses the token.
    act: adopt it.
    assert: the token error is raised; the standby is still there, still a standby.
    """
    name = baked_spawner.create_standby(CONTAINER, "hash-1")
    github.fail["register_runner"] = TokenError("bad credentials", 401)

    with pytest.raises(TokenError):
        baked_spawner.adopt_standby(name, CONTAINER)

    assert lxd.instances[name].spec.config[TAG_STANDBY] == "true"


@pytest.mark.parametrize(
    "baked_sha, waits, instance_type, expected",
    [
        pytest.param(SHA, True, CONTAINER, True, id="container, current baked image"),
        pytest.param(SHA, True, VM, False, id="virtual machines have none"),
        pytest.param("b" * 64, True, CONTAINER, False, id="another runner version baked"),
        pytest.param(None, True, CONTAINER, False, id="no runner baked"),
        pytest.param(SHA, False, CONTAINER, False, id="an older build's boot does not wait"),
    ],
)
def test_only_containers_from_a_current_baked_image_have_standbys(
    tmp_path, lxd, github, clock, baked_sha, waits, instance_type, expected
):
    """Standbys need the waiting boot program of an image with the current runner.

    arrange: the runners' image with the given baked runner (or none), its boot program
        recorded as waiting (or not: built before standbys).
    act: ask whether a type can have standbys.
    assert: only a container from an image with the current runner and a waiting boot can.
    """
    properties = baked(baked_sha) if baked_sha else {}
    if not waits:
        properties.pop(PROPERTY_BOOT, None)
    bake_image(lxd, "jammy", properties)
    spawner = make_spawner(tmp_path, lxd, github, clock)

    assert spawner.standby_possible(instance_type) is expected


def test_ready_standbys_are_running_current_and_oldest_first():
    """Only running standbys with the current hash can be made runners, the oldest first.

    arrange: standbys: young, old, stale, stopped, one being removed; a runner.
    act: pick the ready ones.
    assert: the old then the young one.
    """
    instances = [
        standby("young", age_min=1),
        standby("old", age_min=9),
        standby("stale", config_hash="old"),
        standby("stopped", status=InstanceStatus.STOPPED),
        standby("removed"),
        inst("runner"),
    ]

    ready = ready_standbys(instances, {CONTAINER: "hash-c"}, exclude={"removed"})

    assert [instance.name for instance in ready] == ["old", "young"]


def _standbys(lxd, clock, wanted: int = 2) -> Standbys:
    return Standbys(lxd, UNIT, lambda t: wanted if t is CONTAINER else 0, 4, clock)


def _spawner_for_unit(tmp_path, lxd, github, clock):
    bake_image(lxd, "jammy", baked(SHA))
    return make_spawner(tmp_path, lxd, github, clock)


def test_top_up_makes_the_missing_standbys_and_clears_stale_ones(tmp_path, lxd, github, clock):
    """A top-up keeps the wanted number of current standbys.

    arrange: 2 standbys wanted; one current standby and one stale one exist.
    act: top up, then top up again.
    assert: the stale one is deleted and one is made; the second top-up makes none.
    """
    spawner = _spawner_for_unit(tmp_path, lxd, github, clock)
    current = spawner.create_standby(CONTAINER, "hash-1")
    stale = spawner.create_standby(CONTAINER, "hash-0")
    standbys = _standbys(lxd, clock)

    made, errors = standbys.top_up(spawner, {CONTAINER: "hash-1"})
    again, _ = standbys.top_up(spawner, {CONTAINER: "hash-1"})

    assert errors == [] and len(made) == 1 and again == []
    assert stale not in lxd.instances
    assert set(lxd.instances) == {current, made[0]}


class CountingSpawner:
    """A fallback spawner that only counts what it was asked for."""

    def __init__(self) -> None:
        self.asked: list[tuple[InstanceType, str]] = []

    def spawn(self, instance_type: InstanceType, config_hash: str):
        self.asked.append((instance_type, config_hash))
        return SpawnResult(
            name=f"fresh-{len(self.asked)}", instance_type=instance_type, timings={}
        )


def test_standby_first_uses_each_standby_once_then_spawns(tmp_path, lxd, github, clock):
    """Runners come from the standbys while any is left, then from the fallback.

    arrange: two current standbys.
    act: make three runners through StandbyFirst.
    assert: the first two are the standbys (one registration each), the third is spawned.
    """
    spawner = _spawner_for_unit(tmp_path, lxd, github, clock)
    names = [spawner.create_standby(CONTAINER, "hash-1") for _ in range(2)]
    fallback = CountingSpawner()
    first = StandbyFirst(spawner, fallback, ready_standbys(lxd.list_instances(UNIT), HASHES))

    made = [first.spawn(CONTAINER, "hash-1") for _ in range(3)]

    assert [result.name for result in made[:2]] == names
    assert first.adopted == names
    assert made[2].name == "fresh-1" and fallback.asked == [(CONTAINER, "hash-1")]
    assert [registered for registered, _ in github.registered] == names


def test_standby_first_spawns_when_a_standby_fails(tmp_path, lxd, github, clock):
    """A standby that cannot take its keys is removed and its runner spawned instead.

    arrange: one current standby; LXD fails to update configurations.
    act: make one runner through StandbyFirst.
    assert: the fallback made it; the standby is gone with its registration.
    """
    spawner = _spawner_for_unit(tmp_path, lxd, github, clock)
    name = spawner.create_standby(CONTAINER, "hash-1")
    lxd.fail["update_instance_config"] = LxdError("LXD is down")
    fallback = CountingSpawner()
    first = StandbyFirst(spawner, fallback, ready_standbys(lxd.list_instances(UNIT), HASHES))

    made = first.spawn(CONTAINER, "hash-1")

    assert made.name == "fresh-1" and first.adopted == []
    assert name not in lxd.instances and github.find_runner(name) is None


def test_replenish_makes_runners_from_standbys_then_tops_them_up(make_manager, lxd, github):
    """A replenishing batch uses standbys first (one GitHub call each), then makes new ones.

    arrange: a current baked image; 2 runners and 2 standbys wanted; a first batch has filled
        the fleet and made the standbys; then both runners end.
    act: replenish.
    assert: the two runners are the two standbys (stages register and adopt, no instance
        created for them), 2 GitHub calls; 2 new standbys are made after.
    """
    bake_image(lxd, "jammy", baked(CACHE_SHA))
    manager = make_manager(runners={"containers": 2})
    first = manager.replenish()
    assert first.ok, first.errors
    standbys = {i.name for i in lxd.list_instances(manager.config.unit) if i.standby}
    assert len(standbys) == 2 and first.counts["container"]["standbys_made"] == 2
    for name in first.created:
        lxd.instances[name].status = "Stopped"  # their jobs are done
    github.calls.clear()

    report = manager.replenish()

    assert report.ok, report.errors
    assert set(report.created) == standbys
    assert all(set(report.runner_timings[n]) == {"register", "adopt"} for n in standbys)
    assert github.calls == ["register_runner"] * 2 and report.github_calls == 2
    assert report.counts["container"]["standbys_made"] == 2
    now_standbys = {i.name for i in lxd.list_instances(manager.config.unit) if i.standby}
    assert len(now_standbys) == 2 and not now_standbys & standbys


def test_a_reconcile_neither_counts_nor_removes_a_current_standby(make_manager, lxd, github):
    """A reconcile of a full fleet keeps its standby, and reports it apart from the runners.

    arrange: a current baked image; 1 runner wanted; a replenisher batch made the runner and
        its standby.
    act: reconcile; check.
    assert: nothing created or removed; the standby is kept and counted as a standby; `check`
        lists it in no runner state.
    """
    bake_image(lxd, "jammy", baked(CACHE_SHA))
    manager = make_manager(runners={"containers": 1})
    manager.replenish()
    (standby_name,) = [i.name for i in lxd.list_instances(manager.config.unit) if i.standby]

    report = manager.reconcile()

    assert report.ok, report.errors
    assert report.created == [] and report.removed == []
    assert standby_name in lxd.instances
    assert report.counts["container"].get(RunnerState.STANDBY.value) == 1
    checked = manager.check()
    assert not any(standby_name in names for names in checked.runners.values())


@pytest.mark.parametrize(
    "runners, expected",
    [
        pytest.param({"containers": 3}, {CONTAINER: 3, VM: 0}, id="one per container by default"),
        pytest.param({"containers": 3, "standby": 1}, {CONTAINER: 1, VM: 0}, id="fewer"),
        pytest.param(
            {"containers": 2, "standby": 5}, {CONTAINER: 2, VM: 0}, id="at most one each"
        ),
        pytest.param({"containers": 3, "standby": 0}, {CONTAINER: 0, VM: 0}, id="none"),
        pytest.param(
            {"containers": 0, "virtual_machines": 2}, {CONTAINER: 0, VM: 0}, id="no VM standbys"
        ),
    ],
)
def test_the_number_of_standbys(tmp_path, runners, expected):
    """How many standbys a configuration keeps.

    arrange: a configuration with the given runners and standby setting.
    act: ask for the standbys per type.
    assert: as listed.
    """
    config = make_config(tmp_path, runners=runners)

    assert {t: config.runners.standbys(t) for t in InstanceType} == expected


def test_check_leaves_standbys_out_of_the_runner_states():
    """`check` counts a standby by type only, never as a runner of unknown state.

    arrange: one standby view.
    act: build the check result.
    assert: no runner in any state; by type, one standby.
    """
    views = planner.classify(
        [standby("s1")],
        [],
        now=NOW,
        registration_timeout=datetime.timedelta(minutes=10),
        current_hash={CONTAINER: "hash-c"},
    )

    result = check_result(views, {"container": 1}, None, None)

    assert result.unknown == 0 and not any(result.runners.values())
    assert result.by_type == {"container": {"standby": 1}}


def test_a_reconcile_makes_the_missing_runner_from_a_standby(make_manager, lxd, github):
    """A reconcile short of a runner makes it from a current standby, not a new instance.

    arrange: a current baked image; 1 runner wanted; a replenisher batch made the runner and
        its standby; then the runner's instance went.
    act: reconcile.
    assert: the created runner is the standby (stages register and adopt); no new instance;
        the report counts it as booting, not as a standby.
    """
    bake_image(lxd, "jammy", baked(CACHE_SHA))
    manager = make_manager(runners={"containers": 1})
    (runner,) = manager.replenish().created
    del lxd.instances[runner]
    (standby_name,) = [i.name for i in lxd.list_instances(manager.config.unit) if i.standby]
    created_before = len(lxd.created)

    report = manager.reconcile()

    assert report.ok, report.errors
    assert report.created == [standby_name]
    assert set(report.runner_timings[standby_name]) == {"register", "adopt"}
    assert len(lxd.created) == created_before
    assert report.counts["container"] == {RunnerState.BOOTING.value: 1}
