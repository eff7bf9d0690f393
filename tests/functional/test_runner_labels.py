# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""The `labels` option on real runners: real LXD containers, the emulator's runner application.

Runners register with every configured label (beside the application, image and instance type),
take a job asking for those labels, and leave alone a job asking for a label they lack.
"""

from __future__ import annotations

import time

import pylxd
import pytest

from tests.github_emulator import Emulator

from . import test_manager
from .conftest import TEST_REPO
from .test_manager import gh_runners, wait_job, wait_online

pytestmark = pytest.mark.lxd

make_manager = test_manager.make_manager  # the fixture: managers flushed at teardown

CONFIGURED = ("gpu", "large-disk")


def test_runners_carry_every_configured_label_and_take_only_matching_jobs(
    make_manager, emulator: Emulator, lxd_client: pylxd.Client
):
    """Runners carry every configured label and take only matching jobs.

    arrange: runners with labels gpu and large-disk.
    act: queue a job lacking, one matching.
    assert: registered with every label; the matching job ran; the other is still queued.
    """
    manager = make_manager(containers=2, labels=list(CONFIGURED))

    report = manager.reconcile()

    assert report.ok, report.errors
    runners = wait_online(emulator, 2)
    for runner in runners:
        labels = {label["name"] for label in runner["labels"]}
        assert {"self-hosted", "functional", "container", *CONFIGURED} <= labels, runner

    unmatched = emulator.control.queue_job(TEST_REPO, ["self-hosted", "gpu", "arm64"], "true")
    matched = emulator.control.queue_job(
        TEST_REPO, ["self-hosted", "functional", *CONFIGURED], 'echo "ran on $RUNNER_NAME"'
    )

    done = wait_job(emulator, matched["id"], "completed")
    assert done["conclusion"] == "success"
    assert done["runner_name"] in {runner["name"] for runner in runners}
    # The other runner stays online and idle for a while, and never takes the unmatched job.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        assert emulator.control.job(unmatched["id"])["status"] == "queued"
        time.sleep(1)
    idle = [r for r in gh_runners(emulator) if r["status"] == "online" and not r["busy"]]
    assert [r["name"] for r in idle] == [
        r["name"] for r in runners if r["name"] != done["runner_name"]
    ]
    assert emulator.control.job(unmatched["id"])["runner_name"] in (None, "")
