# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""`check` counts and names the runners by state against a real fleet: real LXD, the emulator.

The fleet holds one runner of each kind `check` tells apart: busy (running a job), idle (online,
waiting), an offline registration (GitHub lists it, no instance) and an instance GitHub does not
list (unknown). The manager's command line is run as the charm runs it, and its JSON document is
read as the `check-runners` action reads it.
"""

from __future__ import annotations

import datetime
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pylxd
import pytest

from github_runner_manager.lxd import TAG_CREATED_AT, TAG_TYPE, TAG_UNIT
from tests.github_emulator import Emulator

from . import test_manager
from .conftest import IMAGE, TEST_REPO, TEST_TOKEN
from .test_manager import LABELS, wait_job, wait_online

pytestmark = pytest.mark.lxd

make_manager = test_manager.make_manager  # the fixture: managers flushed at teardown

ROOT = Path(__file__).resolve().parents[2]


def cli_check(config_file: Path) -> dict:
    """Run `github-runner-manager check` as the charm does; its JSON document."""
    process = subprocess.run(
        [sys.executable, "-m", "github_runner_manager", "--config", str(config_file), "check"],
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert process.returncode == 0, process.stderr[-2000:]
    return json.loads(process.stdout)


def test_check_counts_and_names_every_state(
    make_manager, emulator: Emulator, lxd_client: pylxd.Client, tmp_path: Path
):
    """The check command counts and names the runners of every state.

    arrange: a busy runner, an idle one, an offline registration, an unregistered instance.
    act: run `check` through the command line.
    assert: each state's count and names.
    """
    manager = make_manager(containers=2)
    created = manager.reconcile().created
    wait_online(emulator, 2)
    job = emulator.control.queue_job(TEST_REPO, LABELS, "sleep 300")
    busy = wait_job(emulator, job["id"], "in_progress")["runner_name"]
    (idle,) = [name for name in created if name != busy]
    offline = emulator.control.add_runner(
        TEST_REPO, f"functional-0-{secrets.token_hex(6)}", status="offline"
    )["name"]
    unknown = f"functional-0-{secrets.token_hex(6)}"
    now = datetime.datetime.now(datetime.timezone.utc).isoformat()
    lxd_client.instances.create(
        {
            "name": unknown,
            "source": {"type": "image", "alias": IMAGE},
            "ephemeral": True,
            "profiles": ["default"],
            "config": {TAG_UNIT: "functional/0", TAG_TYPE: "container", TAG_CREATED_AT: now},
        },
        wait=True,
    ).start(wait=True)
    token_file = tmp_path / "token"
    token_file.write_text(TEST_TOKEN)
    config = manager.config
    github = config.github.model_copy(update={"token": None, "token_file": token_file})
    config_file = tmp_path / "config.json"
    config_file.write_text(
        json.dumps(
            config.model_copy(update={"github": github}).model_dump(mode="json", exclude_none=True)
        )
    )

    document = cli_check(config_file)

    counts = {key: document[key] for key in ("online", "offline", "busy", "idle", "unknown")}
    assert counts == {"online": 2, "offline": 1, "busy": 1, "idle": 1, "unknown": 1}, document
    assert document["runners"] == {
        "online": sorted([busy, idle]),
        "busy": [busy],
        "idle": [idle],
        "offline": [offline],
        "unknown": [unknown],
    }
    assert emulator.control.job(job["id"])["status"] == "in_progress", "check changed nothing"
    assert lxd_client.instances.exists(unknown)
    assert offline in {runner["name"] for runner in emulator.control.runners()}
