# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""The systemd units the charm renders, checked by systemd and run for real.

The units are rendered by service.py into a temporary directory and checked with
`systemd-analyze verify`; then the service's ExecStart, parsed from the rendered unit with the
Environment= it declares, runs one reconciliation against real LXD and the GitHub API emulator,
exactly as systemd would run it.
"""

from __future__ import annotations

import json
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pylxd
import pytest

import service
from github_runner_manager.config import ManagerConfig
from github_runner_manager.lxd import TAG_UNIT
from tests.github_emulator import Emulator

from .conftest import IMAGE, PROJECT, TEST_REPO, TEST_TOKEN

pytestmark = pytest.mark.lxd

APP = "charm-service"
UNIT = f"{APP}/7"
PREFIX = f"{APP}-7-"
CHARM_DIR = Path(__file__).resolve().parents[2]
SYSTEMD_ANALYZE = "/usr/bin/systemd-analyze"
RUN_TIMEOUT = 300


class NoSystemd:
    """Stands in for systemctl: the test machine's PID 1 is not systemd."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []

    def daemon_reload(self) -> None:
        self.calls.append(("daemon-reload",))

    def is_active(self, unit: str) -> bool:
        return False

    def enable_now(self, unit: str) -> None:
        self.calls.append(("enable --now", unit))

    def disable_now(self, unit: str) -> None:
        self.calls.append(("disable --now", unit))

    def restart(self, unit: str) -> None:
        self.calls.append(("restart", unit))

    def start_no_block(self, unit: str) -> None:
        self.calls.append(("start --no-block", unit))

    def stop(self, unit: str) -> None:
        self.calls.append(("stop", unit))


def unit_directives(path: Path) -> dict[str, list[str]]:
    """Every `Key=value` directive of a unit file, in order."""
    found: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "[")) and "=" in line:
            key, value = line.split("=", 1)
            found.setdefault(key, []).append(value)
    return found


def exec_start(service_file: Path) -> tuple[list[str], dict[str, str]]:
    """The command and environment systemd would run the service with."""
    directives = unit_directives(service_file)
    (command,) = directives["ExecStart"]
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
    for value in directives.get("Environment", []):
        for assignment in shlex.split(value):
            key, _, setting = assignment.partition("=")
            env[key] = setting
    return shlex.split(command), env


def manager_config(emulator: Emulator, paths: service.ManagerPaths) -> ManagerConfig:
    """What the charm would write, pointed at the test bed (project, image, pool, emulator)."""
    return ManagerConfig.model_validate(
        {
            "unit": UNIT,
            "name_prefix": PREFIX.rstrip("-"),
            "flavor": APP,
            "github": {
                "url": emulator.url,
                "path": TEST_REPO,
                "token_file": str(paths.token_file),
            },
            "runners": {
                "containers": 1,
                "virtual_machines": 0,
                "base_image": IMAGE,
                "cpu": 1,
                "memory": "512MiB",
                "disk": "1GiB",
            },
            "lxd": {"project": PROJECT, "storage_pool": "default"},
            "timing": {"registration_timeout": 120, "api_timeout": 5, "lock_timeout": 30},
            "state_dir": str(paths.state_dir),
            "report_path": str(paths.report_file),
        }
    )


@pytest.fixture
def paths(tmp_path: Path) -> service.ManagerPaths:
    return service.ManagerPaths.for_unit(
        APP,
        7,
        config_root=tmp_path / "etc",
        state_root=tmp_path / "state",
        systemd_dir=tmp_path / "systemd",
    )


@pytest.fixture
def manager(paths: service.ManagerPaths) -> service.ManagerService:
    paths.systemd_dir.mkdir(parents=True)
    return service.ManagerService(
        paths, CHARM_DIR, python=sys.executable, systemd_client=NoSystemd()
    )


def run(argv: list[str], env: dict[str, str]) -> tuple[int, dict[str, Any], str]:
    completed = subprocess.run(
        argv, env=env, capture_output=True, text=True, check=False, timeout=RUN_TIMEOUT
    )
    try:
        document = json.loads(completed.stdout)
    except ValueError:
        document = {}
    return completed.returncode, document, completed.stderr


def test_rendered_units_pass_systemd_analyze_verify(manager: service.ManagerService) -> None:
    """The manager's service and timer units pass systemd-analyze verify.

    arrange: the manager's service and timer units installed as the charm installs them (10 min
        interval).
    act: run systemd-analyze verify on both units.
    assert: it exits 0 with no warning about our units; the timer runs every 10min with a 150s
        random delay, and the service's start timeout is under 600s.
    """
    manager.ensure_units(10)
    paths = manager.paths

    completed = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", str(paths.service.file), str(paths.timer.file)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )

    # Verify prints warnings about the units it checks on stderr; ours has none.
    ours = [line for line in completed.stderr.splitlines() if paths.service.stem in line]
    assert completed.returncode == 0, completed.stderr
    assert ours == []
    timer = unit_directives(paths.timer.file)
    assert timer["OnUnitActiveSec"] == ["10min"]
    assert timer["RandomizedDelaySec"] == ["150s"]
    assert int(unit_directives(paths.service.file)["TimeoutStartSec"][0]) < 600


def test_verify_rejects_a_missing_executable(manager: service.ManagerService) -> None:
    """systemd-analyze verify fails on a unit whose interpreter does not exist.

    arrange: the service unit rendered for a python path that does not exist.
    act: run systemd-analyze verify on it.
    assert: it exits non-zero, so the verify test above can fail.
    """
    broken = service.ManagerService(
        manager.paths, CHARM_DIR, python="/nonexistent/python3", systemd_client=NoSystemd()
    )
    broken.ensure_units(10)

    completed = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", str(manager.paths.service.file)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )

    assert completed.returncode != 0


def test_exec_start_reconciles_for_real(
    manager: service.ManagerService,
    emulator: Emulator,
    lxd_client: pylxd.Client,
) -> None:
    """The service unit's ExecStart line reconciles a real fleet.

    arrange: the config and token files and the units as the charm writes them (the token not in
        the config); ExecStart and its environment parsed from the unit.
    act: run exactly that command line (reconcile), then flush through the same command line.
    assert: reconcile exits 0 with one runner created in LXD and registered in the emulator,
        reported in the report file; the flush leaves no instance and no registration.
    """
    paths = manager.paths
    assert manager.ensure_config(manager_config(emulator, paths), TEST_TOKEN)
    assert TEST_TOKEN not in paths.config_file.read_text()
    manager.ensure_units(10)
    argv, env = exec_start(paths.service.file)
    assert argv[0] == sys.executable
    assert argv[-1] == "reconcile"
    assert env["PYTHONPATH"].split(":") == [
        str(CHARM_DIR / "venv"),
        str(CHARM_DIR / "lib"),
        str(CHARM_DIR / "src"),
    ]

    try:
        # Exactly the command systemd would run.
        code, document, stderr = run(argv, env)

        # One runner instance in LXD, registered in the emulator.
        assert code == 0, (document, stderr[-3000:])
        assert document["ok"] is True
        assert len(document["created"]) == 1
        (name,) = document["created"]
        instances = [i for i in lxd_client.instances.all() if i.config.get(TAG_UNIT) == UNIT]
        assert [instance.name for instance in instances] == [name]
        assert name.startswith(PREFIX)
        registered = [r["name"] for r in emulator.control.runners() if r["name"] == name]
        assert registered == [name]
        report = manager.read_report()
        assert report is not None
        assert report.created == [name]
    finally:
        # Clean up through the same command line, as the charm's stop hook does.
        flush = [*argv[:-1], "flush", "--busy", "--no-reconcile"]
        code, document, stderr = run(flush, env)
    assert code == 0, (document, stderr[-3000:])
    assert [i for i in lxd_client.instances.all() if i.config.get(TAG_UNIT) == UNIT] == []
    assert [r for r in emulator.control.runners() if r["name"].startswith(PREFIX)] == []


def test_replenisher_unit_passes_systemd_analyze_verify(manager: service.ManagerService) -> None:
    """The replenisher's unit passes systemd-analyze verify.

    arrange: the replenisher's unit installed as the charm installs it.
    act: run systemd-analyze verify on it.
    assert: it exits 0 with no warning about the unit, which is a simple service restarted on
        failure.
    """
    manager.ensure_replenisher()
    paths = manager.paths

    completed = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", str(paths.replenish.file)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )

    ours = [line for line in completed.stderr.splitlines() if paths.replenish.stem in line]
    assert completed.returncode == 0, completed.stderr
    assert ours == []
    directives = unit_directives(paths.replenish.file)
    assert directives["Restart"] == ["on-failure"]
    assert directives["Type"] == ["simple"]


def test_replenisher_exec_start_fills_the_fleet_and_stops_on_sigterm(
    manager: service.ManagerService,
    emulator: Emulator,
    lxd_client: pylxd.Client,
) -> None:
    """The replenisher's ExecStart fills the fleet alone and stops cleanly on SIGTERM.

    arrange: the config and token files and the replenisher unit as the charm writes them.
    act: start the unit's ExecStart command, wait for an online runner, then send SIGTERM.
    assert: one runner came online without any reconcile, the process exits 0, LXD holds exactly
        that runner, and no report file is written.
    """
    paths = manager.paths
    manager.ensure_config(manager_config(emulator, paths), TEST_TOKEN)
    manager.ensure_replenisher()
    argv, env = exec_start(paths.replenish.file)
    assert argv[-1] == "replenish"

    # The command systemd runs; then systemd's stop (SIGTERM).
    process = subprocess.Popen(
        argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 120
        online: list[str] = []
        while time.monotonic() < deadline and not online:
            online = [
                r["name"]
                for r in emulator.control.runners()
                if r["name"].startswith(PREFIX) and r["status"] == "online"
            ]
            time.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=120)

        # It filled the fleet without any reconcile, and stopped cleanly.
        assert len(online) == 1, stderr[-3000:]
        assert process.returncode == 0, stderr[-3000:]
        instances = [i for i in lxd_client.instances.all() if i.config.get(TAG_UNIT) == UNIT]
        assert [instance.name for instance in instances] == online
        assert not paths.report_file.exists(), "replenish writes no report"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(30)
        reconcile_argv, _ = exec_start(paths.replenish.file)
        flush = [*reconcile_argv[:-1], "flush", "--busy", "--no-reconcile"]
        code, document, stderr = run(flush, env)
    assert code == 0, (document, stderr[-3000:])
