# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""Fleet safety end to end: no live runner deleted on a doubtful signal, no ghost left.

Real LXD containers and the GitHub API emulator.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pylxd
import pytest

from github_runner_manager.cli import build_manager
from github_runner_manager.manager import RunnerManager
from tests.github_emulator import Emulator

from .conftest import TEST_ORG, TEST_REPO
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


@pytest.fixture
def make_manager(
    emulator: Emulator, tmp_path: Path, lxd_client: pylxd.Client
) -> Iterator[Callable[..., RunnerManager]]:
    """Build managers (optionally on another path); each flushes all its runners at teardown."""
    built: list[RunnerManager] = []

    def _make(path: str = TEST_REPO, release: float = 600.0, **runners: Any) -> RunnerManager:
        config = manager_config(emulator, tmp_path / "state", **runners)
        github = config.github.model_copy(update={"path": path})
        manager = build_manager(
            config.model_copy(update={"github": github}), busy_release_timeout=release
        )
        built.append(manager)
        return manager

    yield _make
    emulator.control.clear_faults()
    emulator.control.settings(lost_job_after=None, lowercase_headers=False)
    for manager in reversed(built):
        manager.flush(busy=True, reconcile=False)


def test_lower_case_header_names(make_manager, emulator, lxd_client):
    """The manager works with GitHub's header names in lower case.

    arrange: GitHub sends lower-case header names (an HTTP/2 front end).
    act: create runners, reconcile again, run a job, replace its runner, flush.
    assert: every step works as with canonical names; nothing is deleted on an empty reading.
    """
    emulator.control.settings(lowercase_headers=True)
    manager = make_manager(containers=2)

    first = manager.reconcile()
    assert first.ok, first.errors
    assert len(first.created) == 2
    wait_online(emulator, 2)

    ghost = emulator.control.add_runner(TEST_REPO, "functional-0-00000000dead", status="offline")
    steady = manager.reconcile()
    assert steady.ok, steady.errors
    assert [(r.name, r.reason) for r in steady.removed] == [(ghost["name"], "github-orphan")]
    assert steady.created == []
    assert sorted(i.name for i in ours(lxd_client)) == sorted(first.created)

    job = emulator.control.queue_job(TEST_REPO, LABELS, "echo lower-case")
    done = wait_job(emulator, job["id"], "completed")
    assert done["conclusion"] == "success"
    wait_gone(lxd_client, done["runner_name"])
    replaced = manager.reconcile()
    assert replaced.ok, replaced.errors
    assert len(replaced.created) == 1
    wait_online(emulator, 2)

    flushed = manager.flush(busy=True, reconcile=False)
    assert flushed.ok, flushed.errors
    assert len(flushed.removed) == 2
    assert ours(lxd_client) == []
    assert gh_runners(emulator) == []


def test_a_lost_listing_page_deletes_no_live_instance(make_manager, emulator, lxd_client):
    """A lost page of GitHub's listing deletes no live instance.

    arrange: 2 runners, one busy; GitHub's listing then loses its page (a pagination race).
    act: reconcile.
    assert: no instance deleted, nothing created, the job untouched; the next run (whole listing)
        changes nothing either.
    """
    manager = make_manager(containers=2)
    created = manager.reconcile().created
    wait_online(emulator, 2)
    job = emulator.control.queue_job(TEST_REPO, LABELS, "sleep 300")
    busy = wait_job(emulator, job["id"], "in_progress")["runner_name"]
    emulator.control.add_fault(path=r"/actions/runners$", method="GET", mode="drop-page", count=1)

    report = manager.reconcile()

    assert report.removed == [], report.removed
    assert report.created == []
    assert sorted(i.name for i in ours(lxd_client)) == sorted(created)
    assert emulator.control.job(job["id"])["status"] == "in_progress"
    assert {r["name"]: r["busy"] for r in gh_runners(emulator)}[busy] is True
    after = manager.reconcile()
    assert after.removed == [] and after.created == []


def test_path_change_moves_the_fleet_without_ghosts(make_manager, emulator, lxd_client):
    """A change of path moves the fleet without leaving ghost registrations.

    arrange: 2 runners on a repository, one busy; then `path` changes to an organisation.
    act: reconcile on the new path; let the job finish; reconcile again.
    assert: the idle runner goes at once, its registration deleted on the old path; the busy one
        finishes its job; the new path gets its 2 runners; nothing left on the old path.
    """
    old = make_manager(containers=2)
    old.reconcile()
    wait_online(emulator, 2)
    job = emulator.control.queue_job(TEST_REPO, LABELS, "sleep 25")
    busy = wait_job(emulator, job["id"], "in_progress")["runner_name"]
    idle = next(r["name"] for r in gh_runners(emulator) if r["name"] != busy)
    new = make_manager(path=TEST_ORG, containers=2)

    moved = new.reconcile()

    assert moved.ok, moved.errors
    assert [(r.name, r.reason) for r in moved.removed] == [(idle, "moved")]
    assert [r["name"] for r in emulator.control.runners(TEST_REPO)] == [busy]
    assert lxd_client.instances.exists(busy), "the busy runner finishes its job first"
    assert len(moved.created) == 2
    assert emulator.control.job(job["id"])["status"] == "in_progress"

    assert wait_job(emulator, job["id"], "completed", timeout=120)["conclusion"] == "success"
    wait_gone(lxd_client, busy)
    settled = new.reconcile()

    assert settled.ok, settled.errors
    assert emulator.control.runners(TEST_REPO) == [], "no ghost on the old path"
    org_runners = sorted(r["name"] for r in emulator.control.runners(TEST_ORG))
    assert sorted(i.name for i in ours(lxd_client)) == org_runners
    assert len(org_runners) == 2


def test_a_lost_registration_answer_leaves_no_ghost(make_manager, emulator, lxd_client):
    """A lost answer to a JIT registration leaves no ghost.

    arrange: GitHub creates the JIT runner, then the answer is lost (502; the retry gets 409).
    act: reconcile.
    assert: the creation is reported, and neither a registration nor an instance is left (no later
        run needed).
    """
    manager = make_manager(containers=1)
    emulator.control.add_fault(
        status=502, path="generate-jitconfig", method="POST", mode="after", count=1
    )

    report = manager.reconcile()

    assert report.created == []
    assert report.errors
    assert gh_runners(emulator) == [], "the runner GitHub made is deleted"
    assert ours(lxd_client) == []


def test_flush_busy_outlasts_github_holding_the_killed_job(make_manager, emulator, lxd_client):
    """A busy flush waits out GitHub holding a killed job's runner.

    arrange: 2 runners, one busy; GitHub keeps a killed job's runner busy for 40 s.
    act: flush --busy (then reconcile).
    assert: the registration is deleted once GitHub lets go (no ghost), the report lists both
        removed without error, and the reconcile refills the fleet.
    """
    emulator.control.settings(lost_job_after=40.0)
    manager = make_manager(containers=2)
    manager.reconcile()
    wait_online(emulator, 2)
    job = emulator.control.queue_job(TEST_REPO, LABELS, "sleep 600")
    busy = wait_job(emulator, job["id"], "in_progress")["runner_name"]
    started = time.monotonic()

    report = manager.flush(busy=True)

    assert report.ok, report.errors
    assert time.monotonic() - started > 20, "GitHub held the runner longer than the old 14 s"
    assert busy in {r.name for r in report.removed}
    assert len(report.removed) == 2
    assert busy not in {r["name"] for r in gh_runners(emulator)}, "no ghost registration"
    assert len(report.created) == 2, "the flush's reconcile refilled the fleet"
    wait_online(emulator, 2)
    assert len(ours(lxd_client)) == 2


def test_stop_flush_reports_a_registration_github_still_holds(make_manager, emulator, lxd_client):
    """The stop hook's flush reports a registration GitHub still holds.

    arrange: a busy runner; GitHub holds a killed job's runner 45 s, the flush waits 15 s.
    act: flush --busy --no-reconcile (the stop hook), then reconcile once GitHub let go.
    assert: the flush reports the registration left with its id and does not call the runner
        removed; the later reconcile deletes the registration.
    """
    emulator.control.settings(lost_job_after=45.0)
    manager = make_manager(containers=1, release=15.0)
    manager.reconcile()
    wait_online(emulator, 1)
    job = emulator.control.queue_job(TEST_REPO, LABELS, "sleep 600")
    busy = wait_job(emulator, job["id"], "in_progress")["runner_name"]
    runner_id = gh_runners(emulator)[0]["id"]

    report = manager.flush(busy=True, reconcile=False)

    assert busy not in {r.name for r in report.removed}
    assert [(e.kind, e.runner) for e in report.errors] == [("github-conflict", busy)]
    assert f"GitHub id {runner_id}" in report.errors[0].message
    assert ours(lxd_client) == []
    assert [r["id"] for r in gh_runners(emulator)] == [runner_id]

    emulator.control.wait_for(
        lambda state: not any(r["busy"] for r in state["runners"]), timeout=90
    )
    later = make_manager(containers=0).reconcile()

    assert [(r.name, r.reason) for r in later.removed] == [(busy, "github-orphan")]
    assert gh_runners(emulator) == []
