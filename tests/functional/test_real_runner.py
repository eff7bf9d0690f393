# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""The manager against the stand-in runner where it behaves like GitHub's real runner (issue 17).

Labels of JIT runners, the listener's real exit codes, GitHub's update demand, and the real
archive size on the spawn path, with real LXD containers and the emulator.
"""

from __future__ import annotations

import platform

import pytest

from github_runner_manager.github import default_runner_labels

from .conftest import TEST_REPO
from .test_manager import gh_runners, wait_gone, wait_job, wait_online
from .test_manager import make_manager  # noqa: F401 - the fixture, shared with test_manager

pytestmark = pytest.mark.lxd


def test_real_size_runner_takes_a_self_hosted_job_for_its_architecture(
    make_manager, emulator, lxd_client
):
    """arrange: the real archive's size. act: spawn, queue `self-hosted` + architecture.

    assert: the runner registered with exactly GitHub's default labels and the manager's, and
    took the job (a JIT runner gets no label the request did not name).
    """
    emulator.control.settings(runner_size="real")
    listed = emulator.control.downloads()
    manager = make_manager(containers=1)

    created = manager.reconcile().created
    (runner,) = wait_online(emulator, 1)
    arch = default_runner_labels(platform.machine())[2]
    job = emulator.control.queue_job(TEST_REPO, ["self-hosted", arch], "echo taken")
    done = wait_job(emulator, job["id"], "completed")

    assert created == [runner["name"]]
    names = [label["name"] for label in runner["labels"]]
    assert names[:3] == ["self-hosted", "Linux", arch]
    assert len(names) == len({name.lower() for name in names})
    assert (done["runner_name"], done["conclusion"]) == (runner["name"], "success")
    cached = next((manager.config.state_dir / "runner-binary").glob("*.tar.gz"))
    linux = next(a for a in listed if a["os"] == "linux" and a["architecture"] == "x64")
    assert cached.name == linux["filename"]
    assert cached.stat().st_size > 100 * 10**6, "the spawn pushed an archive of the real size"


def test_update_demand_on_a_jit_runner_updates_it_in_place(make_manager, emulator, lxd_client):
    """arrange: a host cache one version behind GitHub (its listing unreachable).

    act: spawn. assert: GitHub's update demand (no --disableupdate for JIT runners) makes the
    listener update itself; the start script starts the updated listener, which takes a job.
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
