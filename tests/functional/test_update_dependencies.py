# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""`update-dependencies` end to end through the command line, on real LXD and the emulator.

Runners start from an image the manager built (the real build script, with apt served by the stub
repository on loopback that tests/functional/test_image.py uses). Then GitHub lists a newer
runner application and `update-dependencies` runs as the charm's action runs it: it rebuilds the
image, downloads the new runner, replaces the idle runner with one on the new image and the new
runner, and lets the busy one finish its job first; the next reconciliation replaces that one.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pylxd
import pytest

from github_runner_manager.cli import build_manager
from github_runner_manager.config import ManagerConfig
from github_runner_manager.image import (
    BOOT_KEYS,
    PROPERTY_RUNNER_VERSION,
    ImageBuilder,
    stable_alias,
)
from github_runner_manager.lxd import TAG_UNIT, PylxdClient
from github_runner_manager.manager import RunnerManager
from github_runner_manager.models import InstanceType
from tests.github_emulator import Emulator

from .conftest import PROJECT, TEST_REPO, TEST_TOKEN, run_in
from .test_image import (  # noqa: F401 - module fixtures
    PREFIX,
    SUITE,
    YQ_STUB,
    RepositoryProxy,
    adapter,
    host_arch,
    repo_proxy,
    source_image,
)
from .test_manager import wait_gone, wait_job

pytestmark = pytest.mark.lxd

UNIT = "grt-update/0"
NAME_PREFIX = f"{PREFIX}-upd"  # images are cleaned up with the image tests' prefix
LABELS = ["self-hosted", "grt-update"]
RELEASE = "/var/tmp/grt-release"  # the busy job runs until this file exists
ROOT = Path(__file__).resolve().parents[2]


def update_config(
    emulator: Emulator, tmp_path: Path, source: str, proxy: RepositoryProxy
) -> ManagerConfig:
    token_file = tmp_path / "token"
    token_file.write_text(TEST_TOKEN)
    return ManagerConfig.model_validate(
        {
            "unit": UNIT,
            "name_prefix": NAME_PREFIX,
            "flavor": "grt-update",
            "github": {"url": emulator.url, "path": TEST_REPO, "token_file": str(token_file)},
            "runners": {
                "containers": 2,
                "base_image": SUITE,
                "cpu": 1,
                "memory": "512MiB",
                "disk": "4GiB",
            },
            "lxd": {"project": PROJECT, "storage_pool": "default"},
            "proxy": {"http": proxy.url},
            "image": {
                "build": True,
                "source": source,
                "yq_url": f"{proxy.url}/yq/yq_linux_{{arch}}",
                "yq_sha256": {host_arch(): hashlib.sha256(YQ_STUB).hexdigest()},
                "timeout": 900,
            },
            "timing": {"registration_timeout": 300, "probe_after": 1, "api_timeout": 5},
            "state_dir": str(tmp_path / "state"),
        }
    )


@pytest.fixture
def manager(
    emulator: Emulator,
    tmp_path: Path,
    source_image: str,  # noqa: F811 - a pytest fixture imported above
    repo_proxy: RepositoryProxy,  # noqa: F811 - a pytest fixture imported above
    adapter: PylxdClient,  # noqa: F811 - a pytest fixture imported above
) -> Iterator[RunnerManager]:
    config = update_config(emulator, tmp_path, source_image, repo_proxy)
    built = build_manager(config)
    yield built
    built.flush(busy=True, reconcile=False)
    ImageBuilder(config, adapter).remove_all()


def base_fingerprint(lxd_client: pylxd.Client, name: str) -> str:
    return lxd_client.instances.get(name).config["volatile.base_image"]


def wait_runners(emulator: Emulator, names: set[str], timeout: float = 180) -> list[dict]:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runners = [r for r in emulator.control.runners() if r["name"] in names]
        if len(runners) == len(names) and all(r["status"] == "online" for r in runners):
            return runners
        time.sleep(1)
    raise AssertionError(f"{names} never all came online: {emulator.control.runners()}")


def run_cli(config: ManagerConfig, tmp_path: Path, command: str) -> tuple[int, dict[str, Any]]:
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(config.model_dump(mode="json", exclude_none=True)))
    process = subprocess.run(
        [sys.executable, "-m", "github_runner_manager", "--config", str(config_file), command],
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    assert process.stdout, process.stderr[-3000:]
    return process.returncode, json.loads(process.stdout)


def test_update_dependencies_rebuilds_the_image_and_replaces_idle_runners_busy_finish_first(
    manager: RunnerManager,
    emulator: Emulator,
    lxd_client: pylxd.Client,
    adapter: PylxdClient,  # noqa: F811 - a pytest fixture imported above
    tmp_path: Path,
) -> None:
    """update-dependencies rebuilds the image and replaces runners, busy ones after their job.

    arrange: 2 runners on a built image, one busy; GitHub lists a newer runner.
    act: `update-dependencies` through the command line; the busy job ends; reconcile.
    assert: image rebuilt, new runner downloaded; the idle runner replaced at once on both; the
        busy one kept until its job finished, then replaced too.
    """
    config = manager.config
    alias = stable_alias(config, InstanceType.CONTAINER)
    first_build = ImageBuilder(config, adapter).build()
    assert first_build.ok, first_build.errors
    old_image = adapter.image_fingerprint(alias)
    first = manager.reconcile()
    assert first.ok, first.errors
    wait_runners(emulator, set(first.created))
    script = f"while [ ! -e {RELEASE} ]; do sleep 1; done; echo released"
    job = emulator.control.queue_job(TEST_REPO, LABELS, script)
    busy = wait_job(emulator, job["id"], "in_progress")["runner_name"]
    (idle,) = set(first.created) - {busy}
    assert {base_fingerprint(lxd_client, name) for name in first.created} == {old_image}
    emulator.control.settings(runner_version="2.331.0")

    code, report = run_cli(config, tmp_path, "update-dependencies")

    assert code == 0, report
    assert report["image_updated"] is True
    assert report["runner_updated"] is True
    assert report["runner_version"] == "2.331.0"
    new_image = adapter.image_fingerprint(alias)
    assert new_image not in (None, old_image)
    assert [(r["name"], r["reason"]) for r in report["removed"]] == [(idle, "stale-config")]
    (replacement,) = report["created"]
    # The first image predates any cached runner: its runners got theirs pushed. The new one
    # bakes in the new runner, so the replacement boots from its configuration keys.
    assert BOOT_KEYS["jit_key"] not in lxd_client.instances.get(busy).config
    assert lxd_client.images.get(new_image).properties[PROPERTY_RUNNER_VERSION] == "2.331.0"
    assert BOOT_KEYS["jit_key"] in lxd_client.instances.get(replacement).config
    assert "push" not in report["runner_timings"][replacement]
    assert not lxd_client.instances.exists(idle)
    assert base_fingerprint(lxd_client, replacement) == new_image
    assert base_fingerprint(lxd_client, busy) == old_image, "the busy runner is kept"
    assert emulator.control.job(job["id"])["status"] == "in_progress", "its job goes on"
    (fresh,) = wait_runners(emulator, {replacement})
    assert fresh["version"] == "2.331.0"

    # The busy runner finishes its job; the next reconciliation replaces it on the new image.
    assert run_in(lxd_client.instances.get(busy), ["touch", RELEASE]).exit_code == 0
    assert wait_job(emulator, job["id"], "completed")["conclusion"] == "success"
    wait_gone(lxd_client, busy, timeout=120)
    after = manager.reconcile()

    assert after.ok, after.errors
    (last,) = after.created
    instances = [i.name for i in lxd_client.instances.all() if i.config.get(TAG_UNIT) == UNIT]
    assert sorted(instances) == sorted([replacement, last])
    assert {base_fingerprint(lxd_client, name) for name in instances} == {new_image}
    assert {r["version"] for r in wait_runners(emulator, {replacement, last})} == {"2.331.0"}
