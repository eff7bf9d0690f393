# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""The fleet at the edges of what the host gives: real LXD, the GitHub API emulator, no fakes.

- a storage pool with room for only some of the wanted runners: what fits is made, and the
  report says, once and readably, that the pool is full;
- sizes written with spaces (`512 MiB`), which LXD itself refuses;
- an LXD project that does not exist, reported as such;
- a runner application download that hangs, bounded like any GitHub call.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pylxd
import pylxd.exceptions
import pytest

from github_runner_manager.cli import build_manager
from github_runner_manager.config import ManagerConfig
from github_runner_manager.lxd import TAG_UNIT
from github_runner_manager.manager import RunnerManager
from tests.github_emulator import Emulator

from .conftest import IMAGE, PROJECT, TEST_REPO, TEST_TOKEN

pytestmark = pytest.mark.lxd

SRC = Path(__file__).resolve().parents[2] / "src"
UNIT = "fleet-limits/0"
# A person reads a few hundred characters of an error; LXD's raw text ran to 77-164 KB.
READABLE = 2000


def config_data(emulator: Emulator, state_dir: Path, **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "unit": UNIT,
        "name_prefix": "fleet-limits-0",
        "flavor": "fleet-limits",
        "github": {"url": emulator.url, "path": TEST_REPO, "token": TEST_TOKEN},
        "runners": {
            "containers": 1,
            "base_image": IMAGE,
            "cpu": 1,
            "memory": "256MiB",
            "disk": "2GiB",
        },
        "lxd": {"project": PROJECT, "storage_pool": "default"},
        "timing": {
            "registration_timeout": 120,
            "probe_after": 1,
            "api_timeout": 5,
            "api_retries": 2,
            "lock_timeout": 30,
        },
        "state_dir": str(state_dir),
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return data


def ours(lxd_client: pylxd.Client) -> list[str]:
    return sorted(i.name for i in lxd_client.instances.all() if i.config.get(TAG_UNIT) == UNIT)


@pytest.fixture
def managers(lxd_client: pylxd.Client) -> Iterator[list[RunnerManager]]:
    """Managers built by a test; each flushes every runner it has at teardown."""
    built: list[RunnerManager] = []
    yield built
    for manager in built:
        manager.flush(busy=True, reconcile=False)
    assert ours(lxd_client) == []


def _run(command: list[str]) -> None:
    subprocess.run(command, check=True, capture_output=True, timeout=120)


@pytest.fixture
def small_pool(
    lxd_client: pylxd.Client, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, int]]:
    """A `dir` storage pool on its own small loop-mounted file system, with room for 2 runners.

    The room is measured: one instance is created from the test image and its usage taken;
    a filler file then leaves 2.5 times that free. Everything is removed afterwards.

    Yields:
        The pool's name and the bytes one runner's root file system takes.
    """
    base = tmp_path_factory.mktemp("small-pool")
    image, mount = base / "pool.img", base / "mnt"
    name = f"grt-small-{secrets.token_hex(3)}"
    mount.mkdir()
    with image.open("wb") as file:
        file.truncate(2 * 1024**3)
    _run(["mkfs.ext4", "-q", "-F", "-m", "0", str(image)])
    _run(["mount", "-o", "loop", str(image), str(mount)])
    try:
        (mount / "pool").mkdir()
        pool = lxd_client.storage_pools.create(
            {"name": name, "driver": "dir", "config": {"source": str(mount / "pool")}}
        )
        try:
            probe = f"grt-probe-{secrets.token_hex(3)}"
            free_before = shutil.disk_usage(mount).free
            lxd_client.instances.create(
                {
                    "name": probe,
                    "source": {"type": "image", "alias": IMAGE},
                    "profiles": ["default"],
                    "devices": {"root": {"type": "disk", "path": "/", "pool": name}},
                },
                wait=True,
            )
            per_runner = free_before - shutil.disk_usage(mount).free
            lxd_client.instances.get(probe).delete(wait=True)
            filler = shutil.disk_usage(mount).free - int(2.5 * per_runner)
            _run(["fallocate", "-l", str(filler), str(mount / "filler")])
            yield name, per_runner
        finally:
            for listed in lxd_client.instances.all():
                if listed.devices.get("root", {}).get("pool") != name:
                    continue
                # pylxd's listing may carry the project in the name: look the instance up again.
                instance = lxd_client.instances.get(listed.name.split("?")[0])
                with contextlib.suppress(pylxd.exceptions.LXDAPIException):
                    instance.stop(force=True, wait=True)
                with contextlib.suppress(pylxd.exceptions.LXDAPIException):
                    instance.delete(wait=True)
            pool.delete()
    finally:
        _run(["umount", str(mount)])
        image.unlink()


def test_full_pool_makes_what_fits_and_says_so_once(
    small_pool, emulator, tmp_path, lxd_client, managers
):
    """A full storage pool makes the runners that fit and says so once per run.

    arrange: a storage pool with room for 2 runners; 4 wanted, created 4 at a time.
    act: reconcile, twice.
    assert: 2 runners after each run (the first run made what fits; the second lost none), each
        report with exactly one short runner-create error saying the pool is full and how full, and
        GitHub holding exactly the 2 runners' registrations.
    """
    pool, per_runner = small_pool
    data = config_data(
        emulator,
        tmp_path / "state",
        runners={"containers": 4},
        lxd={"storage_pool": pool},
        timing={"spawn_concurrency": 4},
    )
    manager = build_manager(ManagerConfig.model_validate(data))
    managers.append(manager)

    first = manager.reconcile()
    after_first = ours(lxd_client)
    second = manager.reconcile()

    assert len(first.created) == 2, [e.message[:300] for e in first.errors]
    assert after_first == sorted(first.created)
    assert ours(lxd_client) == after_first
    assert second.created == []
    for report in (first, second):
        assert [e.kind for e in report.errors] == ["runner-create"], report.errors
        message = report.errors[0].message
        assert re.search(
            rf"storage pool '{pool}' is full \(\d+\.\dGiB of \d+\.\dGiB used, \d+%\)", message
        ), message[:500]
        assert len(message) < READABLE, len(message)
        assert "no space left on device" in message.lower()
    assert "created 2 of the 4 runners wanted" in first.errors[0].message
    assert "created 0 of the 2 runners wanted" in second.errors[0].message
    assert manager.config.report_file.stat().st_size < 20_000
    names = sorted(r["name"] for r in emulator.control.runners())
    assert names == after_first
    assert per_runner > 0


def test_sizes_written_with_spaces_create_runners(emulator, tmp_path, lxd_client, managers):
    """Sizes written with spaces still create runners.

    arrange: memory `256 MiB` and disk `2 GiB` (LXD refuses both as written).
    act: reconcile.
    assert: the runner is created, with the limits LXD reads.
    """
    data = config_data(
        emulator, tmp_path / "state", runners={"memory": "256 MiB", "disk": "2 GiB"}
    )
    manager = build_manager(ManagerConfig.model_validate(data))
    managers.append(manager)

    report = manager.reconcile()

    assert report.ok, report.errors
    assert len(report.created) == 1
    instance = lxd_client.instances.get(report.created[0])
    assert instance.config["limits.memory"] == "256MiB"
    assert instance.devices["root"]["size"] == "2GiB"


def run_cli(config: Path, command: str) -> tuple[int, dict[str, Any], str]:
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    result = subprocess.run(
        [sys.executable, "-m", "github_runner_manager", "--config", str(config), command],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    return result.returncode, json.loads(result.stdout), result.stderr


@pytest.mark.parametrize("command", ["check", "reconcile"])
def test_missing_project_is_reported_as_such(emulator, tmp_path, lxd_client, command):
    """A missing LXD project is reported as such.

    arrange: lxd.project names a project LXD does not have.
    act: the command line.
    assert: one error saying the project does not exist (not that the image is missing), a failing
        exit code, and no runner registered on GitHub.
    """
    missing = f"grt-missing-{secrets.token_hex(3)}"
    path = tmp_path / "config.json"
    path.write_text(
        json.dumps(config_data(emulator, tmp_path / "state", lxd={"project": missing}))
    )

    code, document, stderr = run_cli(path, command)

    assert code == 4, (document, stderr[-2000:])
    assert document["ok"] is False
    assert len(document["errors"]) == 1, document["errors"]
    message = document["errors"][0]["message"]
    assert f"the LXD project {missing!r} does not exist" in message
    assert "image" not in message
    assert emulator.control.runners() == []


def test_runner_download_is_bounded_like_a_github_call(emulator, tmp_path, lxd_client, managers):
    """The runner application download is bounded like a GitHub call.

    arrange: the runner application download answers only after 40 s; api_timeout 3 s.
    act: reconcile.
    assert: the run gives the download up within seconds (a runner-binary error), not after the 40
        s; no runner is made without a runner application.
    """
    emulator.control.add_fault(path="/_emulator/downloads/", delay=40.0, count=-1)
    data = config_data(emulator, tmp_path / "state", timing={"api_timeout": 3, "api_retries": 1})
    manager = build_manager(ManagerConfig.model_validate(data))
    managers.append(manager)
    started = time.monotonic()

    report = manager.reconcile()

    elapsed = time.monotonic() - started
    emulator.control.clear_faults()
    assert report.timings["runner_binary"] < 20, report.timings
    assert elapsed < 30
    assert {e.kind for e in report.errors} == {"runner-binary"}, report.errors
    assert "timed out" in report.errors[0].message
    assert report.created == []
