# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""The registration grace period on a real runner: real LXD, the emulator's runner application.

The emulator holds the runner's session request (a slow GitHub), so the runner, registered and
with its process alive, stays offline. Within `registration_timeout` the manager keeps it; after
it (the manager's clock moved past the grace period) the manager removes the instance and the
registration and says why in its report.
"""

from __future__ import annotations

import datetime
import time

import pylxd
import pytest

from github_runner_manager.cli import build_manager
from tests.github_emulator import Emulator

from . import test_manager
from .test_manager import gh_runners

pytestmark = pytest.mark.lxd

make_manager = test_manager.make_manager  # the fixture: managers flushed at teardown

GRACE = 300  # seconds: registration_timeout
HOLD = 28  # seconds the emulator holds each session request (the runner's own timeout is 30)


def test_slow_runner_is_kept_within_grace_then_removed(
    make_manager, emulator: Emulator, lxd_client: pylxd.Client
):
    """A slow runner is kept within the grace period, then removed.

    arrange: a runner whose session requests are held: registered, process alive, offline.
    act: reconcile now, then with the clock past the grace period.
    assert: kept first; then removed (instance and registration) with reason unhealthy.
    """
    emulator.control.add_fault(
        path=r"/_emulator/runner/sessions$", method="POST", delay=HOLD, count=-1
    )
    config = make_manager(containers=1).config  # flushed at teardown
    config = config.model_copy(
        update={"timing": config.timing.model_copy(update={"registration_timeout": GRACE})}
    )
    manager = build_manager(config)
    (name,) = manager.reconcile().created
    # Wait until the runner process has asked for its session (and is being held).
    deadline = time.monotonic() + 120
    while emulator.control.stats().get("faults_fired", 0) < 1:
        assert time.monotonic() < deadline, "the runner never asked for a session"
        time.sleep(0.5)
    assert [(r["name"], r["status"]) for r in gh_runners(emulator)] == [(name, "offline")]

    within = manager.reconcile()

    assert within.ok, within.errors
    assert within.removed == [] and within.created == []
    assert lxd_client.instances.exists(name)
    assert [r["name"] for r in gh_runners(emulator)] == [name]

    later = build_manager(
        config,
        clock=lambda: (
            datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=GRACE + 1)
        ),
    )
    after = later.reconcile()

    assert [(r.name, r.reason) for r in after.removed] == [(name, "unhealthy")]
    assert not lxd_client.instances.exists(name)
    assert name not in {r["name"] for r in gh_runners(emulator)}, "registration deleted"
    assert len(after.created) == 1, "a replacement is started"
    emulator.control.clear_faults()
