# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""RunnerManager commands against the in-memory fakes."""

from __future__ import annotations

import datetime
import json
import threading
import time

import pytest

from github_runner_manager.errors import (
    GitHubConflictError,
    GitHubUnavailableError,
    LxdError,
    RateLimitError,
    RunnerBinaryError,
    StorageFullError,
    TokenError,
)
from github_runner_manager.lxd import TAG_UNIT
from github_runner_manager.models import InstanceType, RunnerApplication
from github_runner_manager.report import read_report
from github_runner_manager.utils import manager_lock

from .conftest import PREFIX, UNIT
from .fakes import FakeBinaryCache, FakeGitHub

UTC = datetime.timezone.utc


def names(prefix: str, count: int) -> list[str]:
    return [f"{prefix}-{i:012x}" for i in range(count)]


def test_reconcile_from_zero_creates_runners(make_manager, lxd, github, tmp_path):
    """A first reconcile creates the wanted runners, tagged for the unit, and writes the report.

    arrange: containers=2, nothing exists.
    act: reconcile.
    assert: 2 running runners tagged with the unit, registered with the default and extra labels,
        counted as booting, and the report written.
    """
    manager = make_manager()

    report = manager.reconcile()

    assert report.ok, report.errors
    assert len(report.created) == 2
    assert sorted(lxd.instances) == sorted(report.created)
    for name in report.created:
        instance = lxd.instances[name]
        assert instance.spec.config[TAG_UNIT] == UNIT
        assert instance.status == "Running"
        assert name.startswith(f"{PREFIX}-")
    assert [labels for _, labels in github.registered] == [
        ("github-runner", "jammy", "container", "extra")
    ] * 2
    assert report.counts["container"] == {"booting": 2}
    written = read_report(manager.config.report_file)
    assert written is not None and written.created == report.created


def test_reconcile_steady_state_changes_nothing(make_manager, lxd, github):
    """A reconcile of a healthy fleet changes nothing.

    arrange: two healthy runners from a first reconcile.
    act: reconcile.
    assert: no change.
    """
    manager = make_manager()
    first = manager.reconcile()
    for name in first.created:
        runner = github.by_name(name)
        assert runner is not None
        github.runners[runner.id] = runner.__class__(runner.id, name, online=True, busy=False)

    report = manager.reconcile()

    assert report.ok
    assert report.created == [] and report.removed == []
    assert report.counts["container"] == {"idle": 2}
    assert github.calls.count("delete_runner") == 0


def test_token_error_creates_nothing_deletes_nothing(make_manager, lxd, github):
    """A rejected token stops the run before anything is created or deleted.

    arrange: GitHub rejects the token; a stopped instance.
    act: reconcile.
    assert: a token error; nothing created or removed; the instance kept.
    """
    lxd.add(names(PREFIX, 1)[0], UNIT, status="Stopped")
    github.fail["list_runners"] = TokenError(
        "GitHub rejected the token (401 Bad credentials)", 401
    )
    manager = make_manager()

    report = manager.reconcile()

    assert not report.ok
    assert report.error_kinds() == {"token"}
    assert report.created == [] and report.removed == []
    assert len(lxd.instances) == 1 and lxd.deleted == []


def test_token_error_while_registering_stops_the_batch(make_manager, lxd, github):
    """A token rejected while registering stops the whole batch.

    arrange: registration gets 401.
    act: reconcile 5.
    assert: one error, no instance made.
    """
    github.fail["register_runner"] = TokenError("GitHub rejected the token (401)", 401)
    manager = make_manager(runners={"containers": 5})

    report = manager.reconcile()

    assert report.error_kinds() == {"token"}
    assert len(report.errors) == 1
    assert lxd.instances == {}


def test_failed_spawn_leaves_no_orphan(make_manager, lxd, github):
    """A failed spawn leaves neither an instance nor a registration.

    arrange: LXD cannot start instances.
    act: reconcile.
    assert: no instance or registration.
    """
    lxd.fail["start_instance"] = LxdError("cannot start: out of memory")
    manager = make_manager()

    report = manager.reconcile()

    assert report.error_kinds() == {"runner-create"}
    assert len(report.errors) == 2
    assert lxd.instances == {}
    assert github.runners == {}, "the JIT registrations of failed runners must be deleted"


def test_one_failed_spawn_does_not_abort_the_others(make_manager, lxd, github):
    """One failed spawn does not abort the others.

    arrange: the second instance creation fails.
    act: reconcile 3.
    assert: 2 runners exist.
    """
    real_create = lxd.create_instance
    calls = []

    def flaky_create(spec):
        calls.append(spec.name)
        if len(calls) == 2:
            raise LxdError("storage pool full")
        real_create(spec)

    lxd.create_instance = flaky_create
    manager = make_manager(
        runners={"containers": 3}, timing={"spawn_concurrency": 1, "lock_timeout": 0}
    )

    report = manager.reconcile()

    assert len(report.created) == 2
    assert len(report.errors) == 1
    assert sorted(lxd.instances) == sorted(report.created)
    assert {r.name for r in github.runners.values()} == set(report.created)


def test_scale_down_removes_oldest_idle_and_keeps_busy(make_manager, lxd, github, clock):
    """Scaling down removes idle runners and keeps the busy one, even the oldest.

    arrange: 3 runners (oldest busy).
    act: reconcile with containers=1.
    assert: 2 idle go.
    """
    manager = make_manager(runners={"containers": 1})
    hashes = manager._hashes(manager._binary.ensure())  # the current configuration hash
    old, mid, new = names(PREFIX, 3)
    for index, name in enumerate((old, mid, new)):
        lxd.add(
            name,
            UNIT,
            created_at=clock.now - datetime.timedelta(minutes=60 - index * 10),
            config_hash=hashes[InstanceType.CONTAINER],
        )
    github.add(old, busy=True)
    github.add(mid)
    github.add(new)

    report = manager.reconcile()

    assert {r.name: r.reason for r in report.removed} == {mid: "scale-down", new: "scale-down"}
    assert sorted(lxd.instances) == [old]
    assert report.created == []


def test_stale_idle_runner_is_replaced(make_manager, lxd, github):
    """An idle runner of an old configuration is replaced.

    arrange: an idle runner with an old config hash.
    act: reconcile.
    assert: replaced.
    """
    name = names(PREFIX, 1)[0]
    lxd.add(name, UNIT, config_hash="old-hash")
    github.add(name)
    manager = make_manager(runners={"containers": 1})

    report = manager.reconcile()

    assert [r.reason for r in report.removed] == ["stale-config"]
    assert len(report.created) == 1 and report.created[0] != name
    assert name not in lxd.instances


def test_other_units_instances_are_never_touched(make_manager, lxd, github):
    """Another unit's instances and runners are never touched.

    arrange: another unit's instances and runners.
    act: reconcile with 0.
    assert: untouched.
    """
    lxd.add("github-runner-1-0123456789ab", "github-runner/1", status="Stopped")
    github.add("github-runner-1-0123456789ab", online=False)
    manager = make_manager(runners={"containers": 0})

    report = manager.reconcile()

    assert report.ok
    assert "github-runner-1-0123456789ab" in lxd.instances
    assert len(github.runners) == 1


def test_github_orphan_is_deleted(make_manager, github):
    """A GitHub registration without an instance is deleted.

    arrange: an offline GitHub runner without instance.
    act: reconcile.
    assert: deleted.
    """
    ghost = names(PREFIX, 1)[0]
    github.add(ghost, online=False)
    manager = make_manager(runners={"containers": 0})

    report = manager.reconcile()

    assert [(r.name, r.reason) for r in report.removed] == [(ghost, "github-orphan")]
    assert github.runners == {}


def test_idle_runner_that_took_a_job_is_kept(make_manager, lxd, github):
    """An idle runner that takes a job during its removal is kept.

    arrange: a scale-down target turns busy (GitHub 422).
    act: reconcile.
    assert: kept.
    """
    name = names(PREFIX, 1)[0]
    manager = make_manager(runners={"containers": 0})
    lxd.add(name, UNIT)
    runner = github.add(name)
    real_delete = github.delete_runner

    def becomes_busy(runner_id):
        github.runners[runner.id] = runner.__class__(runner.id, name, online=True, busy=True)
        real_delete(runner_id)

    github.delete_runner = becomes_busy

    report = manager.reconcile()

    assert report.removed == []
    assert name in lxd.instances


def test_rate_limit_is_reported_without_changes(make_manager, lxd, github):
    """A spent rate limit is reported and nothing changes.

    arrange: the rate limit is spent.
    act: reconcile.
    assert: rate-limit error.
    """
    github.fail["list_runners"] = RateLimitError("rate limit spent", reset_at=0)
    manager = make_manager()

    report = manager.reconcile()

    assert report.error_kinds() == {"rate-limit"}
    assert lxd.instances == {}


def test_binary_unavailable_still_cleans_up(make_manager, lxd, github, tmp_path):
    """Without the runner application the run still cleans up.

    arrange: no runner application, a ghost.
    act: reconcile.
    assert: ghost gone, error.
    """
    github.add(names(PREFIX, 1)[0], online=False)
    manager = make_manager(binary=FakeBinaryCache(tmp_path, fail=RunnerBinaryError("no download")))

    report = manager.reconcile()

    assert report.error_kinds() == {"runner-binary"}
    assert [r.reason for r in report.removed] == ["github-orphan"]
    assert lxd.instances == {}


def test_missing_image_is_reported(make_manager, lxd):
    """A missing base image is reported and nothing is made.

    arrange: the base image is missing.
    act: reconcile.
    assert: image error, nothing made.
    """
    lxd.images.clear()
    manager = make_manager()

    report = manager.reconcile()

    assert report.error_kinds() == {"image"}
    assert lxd.instances == {}


@pytest.mark.parametrize(
    ("busy", "left"),
    [pytest.param(False, {"busy"}, id="idle only"), pytest.param(True, set(), id="busy too")],
)
def test_flush(make_manager, lxd, github, busy, left):
    """Flush removes idle runners, and busy ones only when asked.

    arrange: an idle and a busy runner; GitHub lets go of the busy one once its instance is gone.
    act: flush without reconcile, with or without busy.
    assert: the idle runner gone; the busy one left only without busy; every removal for flush;
        GitHub keeps only what is left.
    """
    manager = make_manager(runners={"containers": 0})
    idle, busy_name = names(PREFIX, 2)
    lxd.add(idle, UNIT)
    lxd.add(busy_name, UNIT)
    github.add(idle)
    busy_runner = github.add(busy_name, busy=True)
    real_delete = github.delete_runner

    def delete(runner_id):
        # Once its instance is gone, GitHub lets go of the busy runner.
        if runner_id == busy_runner.id and busy_name not in lxd.instances:
            github.runners[runner_id] = busy_runner.__class__(runner_id, busy_name, False, False)
        real_delete(runner_id)

    github.delete_runner = delete

    report = manager.flush(busy=busy, reconcile=False)

    remaining = {"busy" for n in lxd.instances if n == busy_name}
    assert remaining == left
    assert idle not in lxd.instances
    assert all(r.reason == "flush" for r in report.removed)
    assert {r.name for r in github.runners.values()} == ({busy_name} if left else set())


def test_flush_busy_waits_for_github_to_release_the_runner(make_manager, lxd, github, clock):
    """Flush --busy waits for GitHub to release a killed runner before deleting it.

    arrange: GitHub keeps a killed runner busy twice.
    act: flush --busy.
    assert: deleted.
    """
    manager = make_manager(runners={"containers": 0})
    name = names(PREFIX, 1)[0]
    lxd.add(name, UNIT)
    runner = github.add(name, busy=True)
    attempts = []
    real_delete = github.delete_runner

    def delete(runner_id):
        attempts.append(runner_id)
        if len(attempts) >= 3:
            github.runners[runner.id] = runner.__class__(runner.id, name, False, False)
        real_delete(runner_id)

    github.delete_runner = delete

    report = manager.flush(busy=True, reconcile=False)

    assert report.ok, report.errors
    assert github.runners == {}
    assert clock.slept[:2] == [2.0, 4.0]


def test_flush_then_reconcile_replaces_idle(make_manager, lxd, github):
    """Flush with reconcile replaces the idle runners.

    arrange: 2 idle runners.
    act: flush (with reconcile).
    assert: 2 new runners replace them.
    """
    manager = make_manager()
    first = manager.reconcile().created
    for name in first:
        runner = github.by_name(name)
        github.runners[runner.id] = runner.__class__(runner.id, name, True, False)

    report = manager.flush()

    assert {r.name for r in report.removed} == set(first)
    assert len(report.created) == 2
    assert set(lxd.instances) == set(report.created)


def test_lock_busy_is_reported_and_keeps_the_last_report(make_manager, tmp_path):
    """A run that cannot take the lock is reported busy and keeps the last report.

    arrange: a report, then another run holds the lock.
    act: reconcile.
    assert: a busy error, nothing created, and the report file still the first run's.
    """
    manager = make_manager()
    first = manager.reconcile()
    with manager_lock(manager.config.state_dir / "manager.lock", timeout=0):
        report = manager.reconcile()

    assert report.error_kinds() == {"busy"}
    assert report.created == []
    written = read_report(manager.config.report_file)
    assert written is not None and written.created == first.created


def test_delta_counts_created_minus_removed_per_type(make_manager, lxd, github):
    """The report's delta counts created minus removed runners per type.

    arrange: a stale VM and no container.
    act: reconcile 2 containers, 1 VM; then flush --busy.
    assert: delta of 2 containers and 0 VMs (the VM replaced); the flush's delta of -2 and -1.
    """
    vm = names(PREFIX, 1)[0]
    lxd.add(vm, UNIT, instance_type=InstanceType.VIRTUAL_MACHINE, config_hash="old")
    github.add(vm)
    manager = make_manager(runners={"containers": 2, "virtual_machines": 1})

    report = manager.reconcile()

    assert report.delta == {"container": 2, "virtual-machine": 0}
    assert [(r.name, r.instance_type) for r in report.removed] == [(vm, "virtual-machine")]
    assert manager.flush(busy=True, reconcile=False).delta == {
        "container": -2,
        "virtual-machine": -1,
    }


def test_check_counts_by_state(make_manager, lxd, github):
    """The check command counts the runners by state.

    arrange: idle, busy, offline and unknown runners.
    act: check.
    assert: counts and names.
    """
    idle, busy, booting, ghost = names(PREFIX, 4)
    for name in (idle, busy, booting):
        lxd.add(name, UNIT, created_at=datetime.datetime(2026, 6, 1, 11, 59, tzinfo=UTC))
    github.add(idle)
    github.add(busy, busy=True)
    github.add(ghost, online=False)
    manager = make_manager()

    result = manager.check()

    assert (
        result.online,
        result.offline,
        result.busy,
        result.idle,
        result.unknown,
    ) == (
        2,
        1,
        1,
        1,
        1,
    )
    assert result.runners["unknown"] == [booting]
    assert result.runners["offline"] == [ghost]
    json.dumps(result.model_dump(mode="json"))


def test_report_never_holds_the_token(make_manager, github):
    """The report never holds the token.

    arrange: a failing GitHub.
    act: reconcile.
    assert: the token is nowhere in the report.
    """
    github.fail["list_runners"] = GitHubUnavailableError("GitHub kept failing")
    manager = make_manager()

    manager.reconcile()

    assert "ghp_unit_test_token" not in manager.config.report_file.read_text()


def test_lxd_failure_is_reported(make_manager, lxd):
    """An LXD failure is reported.

    arrange: LXD cannot list.
    act: reconcile.
    assert: lxd error.
    """
    lxd.fail["list_instances"] = LxdError("cannot reach LXD")
    manager = make_manager()

    report = manager.reconcile()

    assert report.error_kinds() == {"lxd"}


def test_debug_ssh_change_replaces_idle_runners(make_manager, lxd, github):
    """A debug-ssh change replaces the idle runners.

    arrange: an idle runner, then a tmate server appears.
    act: reconcile.
    assert: replaced.
    """
    manager = make_manager(runners={"containers": 1})
    name = manager.reconcile().created[0]
    runner = github.by_name(name)
    github.runners[runner.id] = runner.__class__(runner.id, name, online=True, busy=False)
    tmate = {
        "host": "10.10.10.10",
        "port": 10022,
        "rsa_fingerprint": "SHA256:rsa",
        "ed25519_fingerprint": "SHA256:ed",
    }
    with_tmate = make_manager(runners={"containers": 1}, ssh_debug=[tmate])

    report = with_tmate.reconcile()

    assert [(r.name, r.reason) for r in report.removed] == [(name, "stale-config")]
    (new,) = report.created
    env = lxd.instances[new].files["/opt/github-runner/runner.env"][0].decode()
    assert "TMATE_SERVER_HOST=10.10.10.10" in env


def test_runner_version_age_is_reported_from_the_first_sighting(
    make_manager, lxd, github, clock, tmp_path
):
    """arrange: two runners on 2.330.0; then GitHub lists 2.331.0 but the cache keeps 2.330.0.

    act: reconcile, then reconcile again 15 days later.
    assert: both reports count the runners by version and as outdated, and date the newer
    version from the run that first saw it listed.
    """
    binary = FakeBinaryCache(tmp_path)
    manager = make_manager(binary=binary)
    first = manager.reconcile()
    assert first.runner_versions == {"2.330.0": 2}
    assert first.outdated_runners == 0 and first.newer_version_since is None
    binary.offers = RunnerApplication(
        "linux",
        "x64",
        "https://example.invalid/n.tar.gz",
        "actions-runner-linux-x64-2.331.0.tar.gz",
        "1" * 64,
    )
    seen_at = clock.now.timestamp()

    report = manager.reconcile()
    clock.advance(15 * 86400)
    later = manager.reconcile()

    for run in (report, later):
        assert run.runner_version == "2.330.0"
        assert run.latest_runner_version == "2.331.0"
        assert run.runner_versions == {"2.330.0": 2}
        assert run.outdated_runners == 2
        assert run.newer_version_since == seen_at
    written = read_report(manager.config.report_file)
    assert written is not None and written.newer_version_since == seen_at


def test_full_pool_makes_what_fits_with_one_clear_error(make_manager, lxd, github):
    """A full pool makes what fits, with one clear error.

    arrange: a pool with room for 2 runners; 4 wanted, created 4 at a time.
    act: reconcile twice.
    assert: 2 runners each time (none lost, no orphan registration), and each report holds one
        runner-create error saying the pool is full and how full.
    """
    lxd.capacity = 2
    manager = make_manager(
        runners={"containers": 4}, timing={"spawn_concurrency": 4, "lock_timeout": 0}
    )

    first = manager.reconcile()
    second = manager.reconcile()

    assert len(first.created) == 2
    assert second.created == []
    assert len(lxd.instances) == 2
    assert {r.name for r in github.runners.values()} == set(lxd.instances)
    for report in (first, second):
        assert [e.kind for e in report.errors] == ["runner-create"], report.errors
        message = report.errors[0].message
        assert "storage pool 'default' is full (20.0GiB of 20.0GiB used, 100%)" in message
    assert "created 2 of the 4 runners wanted" in first.errors[0].message
    assert "created 0 of the 2 runners wanted" in second.errors[0].message
    for report in (first, second):
        message = report.errors[0].message
        assert "no space left on device" in message


def test_parallel_creations_that_all_lose_the_race_for_space_are_made_one_at_a_time(
    make_manager, lxd, github
):
    """Parallel creations that all lose the race for space are made again one at a time.

    arrange: a pool with room for 2, where parallel creations all fail for space. (As when four
        unpacks fill the pool together; one made alone fails only when it is full.)
    act: reconcile 4 wanted, 4 at a time.
    assert: 2 runners made one at a time, one error, no orphan registration, and the next run
        starts one at a time.
    """
    lxd.capacity = 2
    real_create = lxd.create_instance
    parallel = threading.main_thread()

    def create(spec):
        if threading.current_thread() is not parallel:
            raise StorageFullError(f"cannot create instance {spec.name}: no space left on device")
        real_create(spec)

    lxd.create_instance = create
    manager = make_manager(
        runners={"containers": 4}, timing={"spawn_concurrency": 4, "lock_timeout": 0}
    )

    report = manager.reconcile()

    assert len(report.created) == 2, report.errors
    assert [e.kind for e in report.errors] == ["runner-create"]
    assert "created 2 of the 4 runners wanted" in report.errors[0].message
    assert {r.name for r in github.runners.values()} == set(lxd.instances)
    assert (manager.config.state_dir / "storage-full").exists()


def test_after_a_full_pool_runners_are_created_one_at_a_time_until_all_fit(
    make_manager, lxd, github
):
    """After a full pool, runners are created one at a time until all fit.

    arrange: a run found the pool full; then the pool gets room.
    act: reconcile.
    assert: the creations run one at a time (never two at once); once all fitted, the next run
        creates in parallel again.
    """
    lxd.capacity = 1
    manager = make_manager(
        runners={"containers": 3}, timing={"spawn_concurrency": 3, "lock_timeout": 0}
    )
    manager.reconcile()
    marker = manager.config.state_dir / "storage-full"
    assert marker.exists()
    lxd.capacity = None
    real_create = lxd.create_instance
    active = []
    most = [0]
    lock = threading.Lock()

    def create(spec):
        with lock:
            active.append(spec.name)
            most[0] = max(most[0], len(active))
        try:
            time.sleep(0.05)
            real_create(spec)
        finally:
            with lock:
                active.remove(spec.name)

    lxd.create_instance = create

    report = manager.reconcile()

    assert report.ok, report.errors
    assert len(lxd.instances) == 3
    assert most[0] == 1
    assert not marker.exists()


REPO_PATH = "test-owner/test-repo"


def test_listing_that_lost_live_runners_deletes_nothing(make_manager, lxd, github, clock):
    """A listing that lost live runners deletes nothing.

    arrange: 2 JIT runners, one busy, and then a listing that comes back empty.
    act: reconcile.
    assert: both looked up by id, nothing removed, nothing created.
    """
    manager = make_manager()
    idle, busy = manager.reconcile().created
    for name, is_busy in ((idle, False), (busy, True)):
        runner = github.by_name(name)
        github.runners[runner.id] = runner.__class__(runner.id, name, online=True, busy=is_busy)
    clock.advance(60)
    github.list_runners = lambda: []

    report = manager.reconcile()

    assert report.removed == [] and report.created == []
    assert set(lxd.instances) == {idle, busy}
    assert github.calls.count("get_runner") == 2
    assert {r.name: r.state for r in report.runners} == {idle: "idle", busy: "busy"}


def test_runner_gone_on_github_is_finished_and_replaced(make_manager, lxd, github):
    """A runner GitHub no longer knows is finished and replaced.

    arrange: a running JIT runner GitHub no longer knows (404 by id).
    act: reconcile.
    assert: removed as finished and replaced in the same run.
    """
    manager = make_manager(runners={"containers": 1})
    name = names(PREFIX, 1)[0]
    lxd.add(name, UNIT, runner_id=4242, github_path=REPO_PATH)

    report = manager.reconcile()

    assert [(r.name, r.reason) for r in report.removed] == [(name, "finished")]
    assert len(report.created) == 1
    assert name not in lxd.instances


def test_unlisted_runner_that_cannot_be_looked_up_is_kept(make_manager, lxd, github):
    """An unlisted runner that cannot be looked up is kept.

    arrange: a JIT runner absent from the listing; GitHub fails the lookup.
    act: reconcile.
    assert: nothing removed or created; the instance kept and reported unlisted.
    """
    manager = make_manager(runners={"containers": 1})
    name = names(PREFIX, 1)[0]
    lxd.add(name, UNIT, runner_id=4242, github_path=REPO_PATH)
    github.fail["get_runner"] = GitHubUnavailableError("down")

    report = manager.reconcile()

    assert report.removed == [] and report.created == []
    assert name in lxd.instances
    assert [r.state for r in report.runners] == ["unlisted"]


def test_path_change_removes_idle_runners_on_the_old_path(make_manager, lxd, github):
    """A path change removes the idle runners on the old path and fills the new one.

    arrange: an idle and a busy runner registered on the old path; `path` now names another.
    act: reconcile.
    assert: the idle one's registration is deleted on the old path, then its instance; the busy one
        stays; the new path gets its full count.
    """
    old_github = FakeGitHub()
    asked: list[tuple[str, str]] = []

    def github_for_target(url: str, path: str) -> FakeGitHub:
        asked.append((url, path))
        return old_github

    manager = make_manager(
        github_for_target=github_for_target, github={"path": "new-org"}, runners={"containers": 2}
    )
    idle, busy = names(PREFIX, 2)
    for name, is_busy in ((idle, False), (busy, True)):
        runner = old_github.add(name, busy=is_busy)
        lxd.add(name, UNIT, runner_id=runner.id, github_path=REPO_PATH)

    report = manager.reconcile()

    assert report.ok, report.errors
    assert [(r.name, r.reason) for r in report.removed] == [(idle, "moved")]
    assert [r.name for r in old_github.runners.values()] == [busy]
    assert idle not in lxd.instances and busy in lxd.instances
    assert len(report.created) == 2
    assert asked == [("https://github.com", REPO_PATH)]

    # The busy one finishes: GitHub deletes its registration, its instance powers off.
    old_github.runners.clear()
    lxd.instances[busy].status = "Stopped"
    settled = manager.reconcile()

    assert [(r.name, r.reason) for r in settled.removed] == [(busy, "stopped")]
    assert settled.created == []


def test_flush_busy_with_a_registration_left_still_reconciles(make_manager, lxd, github):
    """Flush --busy with a registration GitHub keeps still reconciles.

    arrange: a busy runner GitHub never lets go.
    act: flush --busy with reconcile.
    assert: the registration left is reported with its id, the runner not listed as removed, and
        the reconcile refills the fleet.
    """
    manager = make_manager(runners={"containers": 1})
    name = names(PREFIX, 1)[0]
    runner = github.add(name, busy=True)
    lxd.add(name, UNIT, runner_id=runner.id, github_path=REPO_PATH)

    report = manager.flush(busy=True)

    assert name not in {r.name for r in report.removed}
    assert name not in lxd.instances
    [error] = [e for e in report.errors if e.runner == name]
    assert error.kind == GitHubConflictError.kind
    assert f"GitHub id {runner.id}" in error.message
    assert len(report.created) == 1, "the reconcile ran"


def test_half_made_instance_goes_in_the_next_run(make_manager, lxd, github, clock):
    """A half-made instance goes in the next run.

    arrange: an instance created seconds ago, never started, with its offline registration.
    act: reconcile (holding the lock).
    assert: both go at once, and a runner replaces them.
    """
    manager = make_manager(runners={"containers": 1})
    name = names(PREFIX, 1)[0]
    runner = github.add(name, online=False)
    lxd.add(
        name,
        UNIT,
        status="Stopped",
        created_at=clock.now - datetime.timedelta(seconds=10),
        runner_id=runner.id,
        github_path=REPO_PATH,
    )

    report = manager.reconcile()

    assert [(r.name, r.reason) for r in report.removed] == [(name, "stopped")]
    assert name not in lxd.instances and runner.id not in github.runners
    assert len(report.created) == 1


def test_name_search_that_finds_nothing_is_no_evidence(make_manager, lxd, github, clock):
    """A name search that finds nothing is no evidence that a runner finished.

    arrange: a token-flow runner (no id noted) absent from the listing, its process running.
    act: reconcile.
    assert: searched by name, not found, and still kept (not finished).
    """
    manager = make_manager(runners={"containers": 1})
    name = names(PREFIX, 1)[0]
    lxd.add(name, UNIT, created_at=clock.now - datetime.timedelta(hours=1), github_path=REPO_PATH)

    report = manager.reconcile()

    assert github.calls.count("find_runner") == 1
    assert report.removed == [] and report.created == []
    assert [r.state for r in report.runners] == ["unlisted"]
