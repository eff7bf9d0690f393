# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""The runner manager end to end: real LXD containers, the GitHub API emulator, no fakes.

Every test asserts real state on both sides: the instances LXD has and the runners and jobs the
emulator has.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pylxd
import pytest

from github_runner_manager.cli import build_manager
from github_runner_manager.config import ManagerConfig
from github_runner_manager.github import default_runner_labels
from github_runner_manager.lxd import TAG_UNIT
from github_runner_manager.manager import RunnerManager
from tests.github_emulator import Emulator

from .conftest import IMAGE, PROJECT, TEST_REPO, TEST_TOKEN, run_in

pytestmark = pytest.mark.lxd

# What a workflow writes: GitHub's default labels (sent by the manager for JIT runners, as
# config.sh would add them) and the application's.
LABELS = ["self-hosted", "Linux", default_runner_labels()[2], "functional"]


def manager_config(
    emulator: Emulator, state_dir: Path, unit: str = "functional/0", **runners: Any
) -> ManagerConfig:
    app, number = unit.split("/")
    return ManagerConfig.model_validate(
        {
            "unit": unit,
            "name_prefix": f"{app}-{number}",
            "flavor": app,
            "github": {"url": emulator.url, "path": TEST_REPO, "token": TEST_TOKEN},
            "runners": {
                "containers": 0,
                "base_image": IMAGE,
                "cpu": 1,
                "memory": "512MiB",
                "disk": "2GiB",
                **runners,
            },
            "lxd": {"project": PROJECT, "storage_pool": "default"},
            "timing": {
                "registration_timeout": 120,
                "probe_after": 1,
                "api_timeout": 5,
                "api_retries": 3,
                "lock_timeout": 30,
            },
            "state_dir": str(state_dir),
        }
    )


@pytest.fixture
def make_manager(
    emulator: Emulator, tmp_path: Path, lxd_client: pylxd.Client
) -> Iterator[Callable[..., RunnerManager]]:
    """Build managers on the real adapters; every one flushes all its runners at teardown."""
    built: list[RunnerManager] = []

    def _make(unit: str = "functional/0", **runners: Any) -> RunnerManager:
        state_dir = tmp_path / unit.replace("/", "-")
        manager = build_manager(manager_config(emulator, state_dir, unit, **runners))
        built.append(manager)
        return manager

    yield _make
    emulator.control.clear_faults()
    for manager in built:
        manager.flush(busy=True, reconcile=False)


@pytest.fixture(autouse=True)
def _real_size_runner(emulator: Emulator) -> None:
    """Every spawn here pushes a runner archive of the real one's size (over 100 MB)."""
    emulator.control.settings(runner_size="real")


def ours(lxd_client: pylxd.Client, unit: str = "functional/0") -> list[Any]:
    """The LXD instances tagged with a unit."""
    return [i for i in lxd_client.instances.all() if i.config.get(TAG_UNIT) == unit]


def gh_runners(emulator: Emulator, prefix: str = "functional-0-") -> list[dict[str, Any]]:
    return [r for r in emulator.control.runners() if r["name"].startswith(prefix)]


def wait_online(emulator: Emulator, count: int, prefix: str = "functional-0-") -> list[dict]:
    """Wait until `count` runners of a prefix are online and idle."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        runners = gh_runners(emulator, prefix)
        idle = [r for r in runners if r["status"] == "online" and not r["busy"]]
        if len(idle) >= count:
            return runners
        time.sleep(0.5)
    raise AssertionError(f"{count} idle runners never came online: {gh_runners(emulator, prefix)}")


def wait_job(emulator: Emulator, job_id: int, status: str, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = emulator.control.job(job_id)
        if job["status"] == status:
            return job
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} never reached {status}: {emulator.control.job(job_id)}")


def wait_gone(lxd_client: pylxd.Client, name: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not lxd_client.instances.exists(name):
            return
        time.sleep(0.5)
    raise AssertionError(f"instance {name} still exists")


def test_reconcile_from_zero_to_three(make_manager, emulator, lxd_client):
    """A reconcile from nothing makes three idle online container runners.

    arrange: containers=3 and no runner yet.
    act: reconcile.
    assert: the report is ok with 3 created: 3 running ephemeral containers, 3 online runners with
        the manager's labels.
    """
    manager = make_manager(containers=3)

    report = manager.reconcile()

    assert report.ok, report.errors
    assert len(report.created) == 3
    instances = ours(lxd_client)
    assert sorted(i.name for i in instances) == sorted(report.created)
    assert {i.type for i in instances} == {"container"}
    assert all(i.status == "Running" for i in instances)
    assert all(i.ephemeral for i in instances)
    runners = wait_online(emulator, 3)
    assert sorted(r["name"] for r in runners) == sorted(report.created)
    labels = {label["name"] for label in runners[0]["labels"]}
    assert {"functional", IMAGE, "container", "self-hosted"} <= labels


def test_job_runs_once_and_runner_is_replaced(make_manager, emulator, lxd_client):
    """A job runs once on one runner, which the next reconcile replaces.

    arrange: 3 idle runners.
    act: queue a job, wait for it, then reconcile.
    assert: the job succeeds on one runner that took only that job, whose instance and registration
        are gone; the reconcile creates one runner and 3 are online again.
    """
    manager = make_manager(containers=3)
    manager.reconcile()
    wait_online(emulator, 3)

    job = emulator.control.queue_job(TEST_REPO, LABELS, 'echo hello; test -n "$RUNNER_NAME"')
    done = wait_job(emulator, job["id"], "completed")

    assert done["conclusion"] == "success"
    worker = done["runner_name"]
    busy_seen = [r for r in emulator.control.jobs() if r["runner_name"] == worker]
    assert len(busy_seen) == 1, "exactly one job went to that runner"
    wait_gone(lxd_client, worker)
    assert worker not in {r["name"] for r in gh_runners(emulator)}, "ephemeral runner deleted"

    report = manager.reconcile()

    assert report.ok, report.errors
    assert len(report.created) == 1
    wait_online(emulator, 3)
    assert len(ours(lxd_client)) == 3


def test_scale_down_removes_oldest_idle_never_busy(make_manager, emulator, lxd_client):
    """Scaling down removes the oldest idle runners, never a busy one.

    arrange: 4 runners made one after another, one of them busy.
    act: reconcile with containers=2.
    assert: the 2 oldest idle runners are removed for scale-down; the busy one and the newest idle
        remain in LXD and on GitHub, and the job is untouched.
    """
    order = []
    for count in range(1, 5):
        created = make_manager(containers=count).reconcile().created
        order.extend(created)
        wait_online(emulator, count)
    job = emulator.control.queue_job(TEST_REPO, LABELS, "sleep 120")
    busy_name = wait_job(emulator, job["id"], "in_progress")["runner_name"]
    idle_by_age = [name for name in order if name != busy_name]

    report = make_manager(containers=2).reconcile()

    assert report.ok, report.errors
    assert {r.name for r in report.removed} == set(idle_by_age[:2])
    assert {r.reason for r in report.removed} == {"scale-down"}
    remaining = {i.name for i in ours(lxd_client)}
    assert remaining == {busy_name, idle_by_age[2]}
    assert emulator.control.job(job["id"])["status"] == "in_progress", "the job is untouched"
    assert {r["name"] for r in gh_runners(emulator)} == remaining


def test_killed_runner_is_removed_and_replaced(make_manager, emulator, lxd_client):
    """A runner whose service was killed is removed and replaced.

    arrange: a runner whose service was killed: offline on GitHub, its instance still running.
    act: reconcile.
    assert: it is removed as unhealthy, instance and registration, and one new runner comes online.
    """
    manager = make_manager(containers=1)
    name = manager.reconcile().created[0]
    wait_online(emulator, 1)
    instance = lxd_client.instances.get(name)

    run_in(instance, ["systemctl", "kill", "--signal=KILL", "github-runner"])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if all(r["status"] == "offline" for r in gh_runners(emulator)):
            break
        time.sleep(0.5)
    assert [r["status"] for r in gh_runners(emulator)] == ["offline"]
    assert lxd_client.instances.get(name).status == "Running", "the instance outlived its runner"

    report = manager.reconcile()

    assert [(r.name, r.reason) for r in report.removed] == [(name, "unhealthy")]
    assert not lxd_client.instances.exists(name)
    assert name not in {r["name"] for r in gh_runners(emulator)}
    assert len(report.created) == 1
    wait_online(emulator, 1)


def test_offline_github_runner_without_instance_is_deleted(make_manager, emulator):
    """An offline registration of the unit without an instance is deleted.

    arrange: an offline registration named like the unit's runners without an instance, and another
        manager's.
    act: reconcile with no runner wanted.
    assert: the unit's ghost is deleted as a github-orphan; the other manager's is kept.
    """
    ghost = emulator.control.add_runner(TEST_REPO, "functional-0-0123456789ab", status="offline")
    stranger = emulator.control.add_runner(
        TEST_REPO, "someone-else-0123456789ab", status="offline"
    )
    manager = make_manager(containers=0)

    report = manager.reconcile()

    assert [(r.name, r.reason) for r in report.removed] == [(ghost["name"], "github-orphan")]
    names = {r["name"] for r in emulator.control.runners()}
    assert ghost["name"] not in names
    assert stranger["name"] in names, "runners of other managers are not touched"


def test_rejected_token_changes_nothing(make_manager, emulator, lxd_client):
    """A rejected token changes nothing.

    arrange: 1 runner, then the token revoked.
    act: reconcile wanting 3.
    assert: only a token error; nothing created or removed; the one runner stays in LXD and on
        GitHub.
    """
    manager = make_manager(containers=1)
    name = manager.reconcile().created[0]
    wait_online(emulator, 1)
    emulator.control.revoke_token(TEST_TOKEN)
    try:
        report = make_manager(containers=3).reconcile()

        assert report.error_kinds() == {"token"}
        assert report.created == [] and report.removed == []
        assert [i.name for i in ours(lxd_client)] == [name]
        assert [r["name"] for r in gh_runners(emulator)] == [name]
    finally:
        emulator.control.set_token(TEST_TOKEN, ["repo", "admin:org"])


def test_server_errors_are_retried_then_reported_then_converge(make_manager, emulator, lxd_client):
    """GitHub server errors are retried, reported, and then the fleet converges.

    arrange: GitHub answering 502 to every call.
    act: reconcile; then with JIT registration failing with 503; then with the faults cleared.
    assert: first a github-unavailable error after 3 calls and no instance; then an error and no
        instance or registration left; finally 2 runners created and online.
    """
    manager = make_manager(containers=2)
    emulator.control.add_fault(status=502, count=-1)

    failed = manager.reconcile()

    assert failed.error_kinds() == {"github-unavailable"}
    assert failed.github_calls == 3, "one call, retried up to api_retries times"
    assert ours(lxd_client) == []

    # Now registration itself fails half-way: instances must not be left behind.
    emulator.control.clear_faults()
    emulator.control.add_fault(status=503, count=-1, path="generate-jitconfig")
    partial = manager.reconcile()

    assert partial.error_kinds() == {"runner-create"} or partial.error_kinds() == {
        "github-unavailable"
    }
    assert ours(lxd_client) == []
    assert gh_runners(emulator) == []

    emulator.control.clear_faults()
    healed = manager.reconcile()

    assert healed.ok, healed.errors
    assert len(healed.created) == 2
    wait_online(emulator, 2)
    assert len(ours(lxd_client)) == 2


def test_two_units_never_touch_each_other(make_manager, emulator, lxd_client):
    """Two units never touch each other's runners.

    arrange: units alpha/0 and beta/0 with one runner each.
    act: flush alpha/0 with busy runners.
    assert: alpha's runner is removed; beta's instance and registration are intact and its next
        reconcile creates nothing.
    """
    first = make_manager("alpha/0", containers=1)
    second = make_manager("beta/0", containers=1)
    first.reconcile()
    second_name = second.reconcile().created[0]
    wait_online(emulator, 1, prefix="alpha-0-")
    wait_online(emulator, 1, prefix="beta-0-")

    report = first.flush(busy=True, reconcile=False)

    assert len(report.removed) == 1
    assert ours(lxd_client, "alpha/0") == []
    assert [i.name for i in ours(lxd_client, "beta/0")] == [second_name]
    assert [r["name"] for r in gh_runners(emulator, "beta-0-")] == [second_name]
    assert make_manager("beta/0", containers=1).reconcile().created == []


def test_flush_idle_then_busy(make_manager, emulator, lxd_client):
    """A flush removes idle runners; a busy flush removes the busy one too.

    arrange: 2 runners, one busy with a long job.
    act: flush without busy, then with busy.
    assert: the first removes only the idle runner; the second removes the busy one, leaving no
        instance and no registration.
    """
    manager = make_manager(containers=2)
    manager.reconcile()
    wait_online(emulator, 2)
    job = emulator.control.queue_job(TEST_REPO, LABELS, "sleep 300")
    busy_name = wait_job(emulator, job["id"], "in_progress")["runner_name"]

    idle_flush = manager.flush(busy=False, reconcile=False)

    assert [r.name for r in idle_flush.removed] != [busy_name]
    assert len(idle_flush.removed) == 1
    assert [i.name for i in ours(lxd_client)] == [busy_name]

    busy_flush = manager.flush(busy=True, reconcile=False)

    assert busy_flush.ok, busy_flush.errors
    assert [r.name for r in busy_flush.removed] == [busy_name]
    assert ours(lxd_client) == []
    assert gh_runners(emulator) == [], "no ghost registration is left"


def test_registration_token_flow(make_manager, emulator, lxd_client):
    """Without JIT, a runner registers with a registration token and runs a job.

    arrange: the emulator's JIT endpoint disabled.
    act: reconcile one runner and queue a job.
    assert: the runner registers through the config.sh flow, comes online and runs the job
        successfully.
    """
    emulator.control.settings(jit_enabled=False)
    try:
        manager = make_manager(containers=1)

        report = manager.reconcile()

        assert report.ok, report.errors
        runners = wait_online(emulator, 1)
        assert runners[0].get("registered_via") in (None, "registration-token", "config.sh")
        job = emulator.control.queue_job(TEST_REPO, LABELS, "echo via config.sh")
        assert wait_job(emulator, job["id"], "completed")["conclusion"] == "success"
    finally:
        emulator.control.settings(jit_enabled=True)


def test_steady_state_costs_no_rate_limit(make_manager, emulator):
    """A reconcile in steady state costs no rate limit.

    arrange: 2 idle runners online and a reconcile that saw them.
    act: reconcile again.
    assert: nothing created or removed; every GitHub call got 304 and no rate limit was used.
    """
    manager = make_manager(containers=2)
    manager.reconcile()
    wait_online(emulator, 2)
    manager.reconcile()  # the runners' status changed since the first listing
    emulator.control.reset_stats()

    report = manager.reconcile()

    stats = emulator.control.stats()
    assert report.ok and report.created == [] and report.removed == []
    assert stats["rate_limit_used"] == 0, stats
    assert stats["not_modified"] == stats["total"] == report.github_calls, stats


def test_a_run_killed_mid_spawn_leaves_nothing_behind(
    make_manager, emulator, lxd_client, tmp_path
):
    """A reconcile killed while it creates runners leaves nothing behind.

    arrange: a reconcile process killed while it creates runners.
    act: reconcile again.
    assert: exactly the wanted runners exist; no orphan instance, no ghost registration.
    """
    import json as json_module
    import os
    import signal
    import subprocess
    import sys

    manager = make_manager(containers=2)  # for the teardown flush, and the same state dir
    config = manager.config
    token_file = tmp_path / "token"
    token_file.write_text(TEST_TOKEN)
    github = config.github.model_copy(update={"token": None, "token_file": token_file})
    config_file = tmp_path / "config.json"
    config_file.write_text(
        json_module.dumps(
            config.model_copy(update={"github": github}).model_dump(mode="json", exclude_none=True)
        )
    )
    root = Path(__file__).resolve().parents[2]
    process = subprocess.Popen(
        [sys.executable, "-m", "github_runner_manager", "--config", str(config_file), "reconcile"],
        env={**os.environ, "PYTHONPATH": str(root / "src")},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # Kill it once the first instance exists: mid-way through creating the runners.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not ours(lxd_client):
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)

    # The next run holds the lock, so it knows nobody else is creating anything: the half-made
    # instances and their registrations go at once, not after a creation grace period.
    recovery = manager.reconcile()
    wait_online(emulator, 2)
    final = manager.reconcile()

    assert recovery.ok, recovery.errors
    assert {r.reason for r in recovery.removed} <= {"stopped", "github-orphan"}
    names = sorted(i.name for i in ours(lxd_client))
    assert len(names) == 2
    assert sorted(r["name"] for r in gh_runners(emulator)) == names
    assert all(r["status"] == "online" for r in gh_runners(emulator))
    assert final.created == [] and final.removed == []


def test_new_runner_version_replaces_idle_runners(make_manager, emulator, lxd_client):
    """A new runner version replaces the idle runners and keeps the busy one.

    arrange: 2 idle runners, then GitHub lists a newer runner.
    act: reconcile.
    assert: the new tarball is downloaded and verified, idle runners are replaced, busy kept.
    """
    manager = make_manager(containers=2)
    first = manager.reconcile()
    wait_online(emulator, 2)
    job = emulator.control.queue_job(TEST_REPO, LABELS, "sleep 120")
    busy = wait_job(emulator, job["id"], "in_progress")["runner_name"]
    idle = next(name for name in first.created if name != busy)
    emulator.control.settings(runner_version="2.331.0")

    report = manager.reconcile()

    assert report.ok, report.errors
    assert report.runner_version == "2.331.0"
    assert report.runner_updated is True
    assert [(r.name, r.reason) for r in report.removed] == [(idle, "stale-config")]
    assert len(report.created) == 1
    assert lxd_client.instances.exists(busy), "the busy runner finishes its job first"
    cached = list((manager.config.state_dir / "runner-binary").glob("*.tar.gz"))
    assert [path.name for path in cached] == ["actions-runner-linux-x64-2.331.0.tar.gz"]
    assert manager.check().runner_version == "2.331.0"


# ----- the real runner application's behaviour (issue 17) ----------------------------------


def test_real_size_runner_takes_a_self_hosted_job_for_its_architecture(
    make_manager, emulator, lxd_client
):
    """A runner of the real archive size takes a job for its architecture.

    arrange: the real archive's size.
    act: spawn, queue `self-hosted` + architecture.
    assert: the runner registered with exactly GitHub's default labels and the manager's, and took
        the job (a JIT runner gets no label the request did not name).
    """
    listed = emulator.control.downloads()
    manager = make_manager(containers=1)

    created = manager.reconcile().created
    (runner,) = wait_online(emulator, 1)
    instance = lxd_client.instances.get(runner["name"])
    command_lines = run_in(
        instance, ["sh", "-c", "cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' '"]
    ).stdout
    arch = default_runner_labels(platform.machine())[2]
    job = emulator.control.queue_job(TEST_REPO, ["self-hosted", arch], "echo taken")
    done = wait_job(emulator, job["id"], "completed")

    assert created == [runner["name"]]
    names = [label["name"] for label in runner["labels"]]
    assert names[:3] == ["self-hosted", "Linux", arch]
    assert len(names) == len({name.lower() for name in names})
    assert (done["runner_name"], done["conclusion"]) == (runner["name"], "success")
    assert "Runner.Listener" in command_lines
    assert "jitconfig" not in command_lines.lower(), "the JIT credential is on a command line"
    cached = next((manager.config.state_dir / "runner-binary").glob("*.tar.gz"))
    linux = next(a for a in listed if a["os"] == "linux" and a["architecture"] == "x64")
    assert cached.name == linux["filename"]
    assert cached.stat().st_size > 100 * 10**6, "the spawn pushed an archive of the real size"


def test_update_demand_on_a_jit_runner_updates_it_in_place(make_manager, emulator, lxd_client):
    """GitHub's update demand makes a JIT runner update itself in place.

    arrange: a host cache one version behind GitHub (its listing unreachable).
    act: spawn.
    assert: GitHub's update demand (no --disableupdate for JIT runners) makes the listener update
        itself; the start script starts the updated listener, which takes a job.
    """
    manager = make_manager(containers=1)
    first = manager.reconcile().created
    wait_online(emulator, 1)
    emulator.control.delete_runner(gh_runners(emulator)[0]["id"])  # its instance ends
    wait_gone(lxd_client, first[0], timeout=90)
    emulator.control.settings(runner_version="2.331.0")
    emulator.control.add_fault(status=500, count=-1, path=r"/actions/runners/downloads$")

    report = manager.reconcile()

    (name,) = report.created
    updated = emulator.control.wait_for(
        lambda s: any(
            r["name"] == name and r["version"] == "2.331.0" and r["status"] == "online"
            for r in s["runners"]
        ),
        timeout=120,
    )
    assert updated
    job = emulator.control.queue_job(TEST_REPO, ["self-hosted"], "true")
    done = wait_job(emulator, job["id"], "completed")
    assert (done["runner_name"], done["conclusion"]) == (name, "success")
    wait_gone(lxd_client, name, timeout=90)
