# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""An organisation path with a runner group, through the manager on real LXD and the emulator.

The runners register in the named group of the organisation (not in the default group), take a
job of a repository of the organisation, and the manager deletes the organisation's offline
registrations of its own runners, leaving other managers' alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pylxd
import pytest

from github_runner_manager.cli import build_manager
from github_runner_manager.manager import RunnerManager
from tests.github_emulator import Emulator

from .conftest import TEST_ORG
from .test_manager import (
    LABELS,
    gh_runners,
    manager_config,
    ours,
    wait_gone,
    wait_job,
    wait_online,
)

pytestmark = pytest.mark.lxd

GROUP = "ci-runners"


@pytest.fixture
def org_manager(
    emulator: Emulator, tmp_path: Path, lxd_client: pylxd.Client
) -> Iterator[Callable[..., RunnerManager]]:
    """Managers of the organisation's runner group; every one flushes its runners at teardown."""
    built: list[RunnerManager] = []

    def _make(**runners: Any) -> RunnerManager:
        config = manager_config(emulator, tmp_path / "state", **runners)
        github = config.github.model_copy(update={"path": TEST_ORG, "group": GROUP})
        manager = build_manager(config.model_copy(update={"github": github}))
        built.append(manager)
        return manager

    yield _make
    for manager in built:
        manager.flush(busy=True, reconcile=False)


def test_org_group_runners_register_take_jobs_and_are_cleaned_up(
    org_manager, emulator: Emulator, lxd_client: pylxd.Client
):
    """Runners of an organisation's group register, take jobs and are cleaned up.

    arrange: an organisation with a runner group; ghost offline registrations.
    act: reconcile 2 runners, run a job of an organisation repository, reconcile.
    assert: runners in the group; the job ran; the unit's ghost deleted, a stranger's kept.
    """
    group = emulator.control.add_runner_group(TEST_ORG, GROUP)
    ghost = emulator.control.add_runner(TEST_ORG, "functional-0-0123456789ab", status="offline")
    stranger = emulator.control.add_runner(TEST_ORG, "other-0-0123456789ab", status="offline")
    manager = org_manager(containers=2)

    first = manager.reconcile()

    assert first.ok, first.errors
    assert [(r.name, r.reason) for r in first.removed] == [(ghost["name"], "github-orphan")]
    assert len(first.created) == 2
    runners = wait_online(emulator, 2)
    assert sorted(r["name"] for r in runners) == sorted(first.created)
    assert {(r["scope"], r["runner_group_id"], r["runner_group_name"]) for r in runners} == {
        (TEST_ORG, group["id"], GROUP)
    }
    names = {r["name"] for r in emulator.control.runners()}
    assert ghost["name"] not in names
    assert stranger["name"] in names, "runners of other managers are not touched"

    job = emulator.control.queue_job(f"{TEST_ORG}/service", LABELS, "echo org job")
    done = wait_job(emulator, job["id"], "completed")

    assert done["conclusion"] == "success"
    assert done["runner_name"] in first.created
    wait_gone(lxd_client, done["runner_name"])
    second = manager.reconcile()
    assert second.ok, second.errors
    assert len(second.created) == 1
    wait_online(emulator, 2)
    assert len(ours(lxd_client)) == 2
    assert {r["runner_group_id"] for r in gh_runners(emulator)} == {group["id"]}
