# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""Standbys end to end: real LXD, a baked image, the replenisher and the emulator.

A standby is a booted container with no registration and no configuration; when a runner ends,
the replenisher registers a runner with the standby's name and sets its configuration keys, and
the standby's waiting boot program starts the runner. No test here calls reconcile to replace a
runner.
"""

from __future__ import annotations

from collections.abc import Callable

import pylxd
import pytest

from github_runner_manager.lxd import TAG_STANDBY
from github_runner_manager.manager import RunnerManager
from github_runner_manager.models import RunnerState
from tests.github_emulator import Emulator

from .conftest import TEST_REPO
from .test_baked_runner import FILES_KEY, JIT_KEY, baked, file_calls  # noqa: F401 - fixtures
from .test_manager import LABELS, gh_runners, ours, wait_job, wait_online
from .test_replenish import Running, wait_until

pytestmark = pytest.mark.lxd


def standbys(lxd_client: pylxd.Client, unit: str) -> dict[str, pylxd.models.Instance]:
    """The unit's standby instances, by name."""
    return {i.name: i for i in ours(lxd_client, unit) if i.config.get(TAG_STANDBY) == "true"}


def runners(lxd_client: pylxd.Client, unit: str) -> set[str]:
    """The unit's runner instances (standbys left out)."""
    return {i.name for i in ours(lxd_client, unit) if i.config.get(TAG_STANDBY) != "true"}


def test_a_standby_becomes_the_runner_that_replaces_a_finished_one(
    baked: Callable[..., RunnerManager], emulator: Emulator, lxd_client: pylxd.Client
) -> None:
    """A job's end makes a standby the fresh runner: no create, no start, one GitHub call.

    arrange: a baked image; a replenisher keeping 1 runner (and so 1 standby); the runner
        online and the standby running, holding no registration and no configuration.
    act: run a job on the runner.
    assert: the runner that replaces it is the standby (its stages: register and adopt, one
        GitHub call in its batch), it comes online and runs a second job; a new standby is
        made; at no time are there two runner instances beside the busy one.
    """
    manager = baked(1)
    unit = manager.config.unit
    prefix = f"{manager.config.name_prefix}-"
    running = Running(manager)
    try:
        wait_online(emulator, 1, prefix=prefix)
        wait_until(lambda: len(standbys(lxd_client, unit)) == 1, 120, "a standby")
        (standby_name, standby), first = next(iter(standbys(lxd_client, unit).items())), None
        wait_until(lambda: standby.state().status == "Running", 60, "the standby running")
        assert JIT_KEY not in standby.config and FILES_KEY not in standby.config
        assert standby_name not in {r["name"] for r in gh_runners(emulator, prefix)}
        (first,) = runners(lxd_client, unit)

        job = emulator.control.queue_job(TEST_REPO, LABELS, "echo first")
        assert wait_job(emulator, job["id"], "completed")["runner_name"] == first
        wait_until(lambda: standby_name in running.created(), 60, "the standby adopted")

        batch = next(b for b in running.replenisher.batches if standby_name in b.created)
        assert set(batch.runner_timings[standby_name]) == {"register", "adopt"}
        assert batch.github_calls == 1
        wait_online(emulator, 1, prefix=prefix)
        assert {r["name"] for r in gh_runners(emulator, prefix) if r["status"] == "online"} == {
            standby_name
        }
        adopted = lxd_client.instances.get(standby_name)
        assert adopted.config.get(TAG_STANDBY) is None and adopted.config[JIT_KEY]
        wait_until(
            lambda: set(standbys(lxd_client, unit)) - {standby_name} != set(), 120, "a new standby"
        )
        assert len(runners(lxd_client, unit) - {first}) == 1
        second = emulator.control.queue_job(TEST_REPO, LABELS, "echo second")
        assert wait_job(emulator, second["id"], "completed")["runner_name"] == standby_name
    finally:
        running.stop()


def test_a_reconcile_keeps_current_standbys_and_flush_removes_them(
    baked: Callable[..., RunnerManager], emulator: Emulator, lxd_client: pylxd.Client
) -> None:
    """A reconcile neither counts a standby as a runner nor removes it; a flush removes it.

    arrange: a baked image; a replenisher has made 1 runner and 1 standby, then stopped.
    act: reconcile; then flush.
    assert: the reconcile creates and removes nothing and reports the standby in its own
        state; the flush removes both instances.
    """
    manager = baked(1)
    unit = manager.config.unit
    prefix = f"{manager.config.name_prefix}-"
    running = Running(manager)
    try:
        wait_online(emulator, 1, prefix=prefix)
        wait_until(lambda: len(standbys(lxd_client, unit)) == 1, 120, "a standby")
    finally:
        running.stop()
    (standby_name,) = standbys(lxd_client, unit)

    report = manager.reconcile()

    assert report.ok, report.errors
    assert report.created == [] and report.removed == []
    states = {entry.name: entry.state for entry in report.runners}
    assert states[standby_name] is RunnerState.STANDBY
    assert report.counts["container"].get("standby") == 1
    flushed = manager.flush(reconcile=False)
    assert flushed.ok, flushed.errors
    assert ours(lxd_client, unit) == []
