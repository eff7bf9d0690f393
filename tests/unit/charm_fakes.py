# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""In-memory fakes of the charm's host layer and manager (`service.ManagerService`).

The host layer is one fake machine (`FakeHost`) seen as the charm's `host.Host`, its
`storage.StoragePool` (`FakeStoragePool`) and its `firewall.Firewall` (`FakeFirewall`). The
charm tests swap them in at the charm's module boundary (`use_fake_host`); nothing here runs a
command.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import yaml
from ops import testing

import charm
import command
import service
import storage
from charm import GithubRunnerCharm
from github_runner_manager.config import ManagerConfig
from github_runner_manager.report import Report

GIB = 1024**3
UTC = datetime.timezone.utc


class FakeHost:
    """A machine with LXD, memory and Juju storage as plain attributes."""

    def __init__(self, app: str | None = None) -> None:
        self.installed = True
        self.initialised = True
        self.machine_name = "x86_64"
        self.storage_in_use: str | None = None
        self.memory = 64 * GIB
        self.juju_storage = 1024 * GIB
        self.ensure_error: Exception | None = None
        self.calls: list[str] = []
        self.storage: tuple[str, int] | None = None
        self.firewall_applied: list[tuple[ipaddress.IPv4Network, ...]] = []
        self.firewall_error: Exception | None = None
        # The host's calls when the firewall was first applied: the host is prepared first.
        self.calls_before_firewall: list[str] | None = None
        self.app = app
        self.storage_pool = command.scoped_name(app) if app else storage.LEGACY_STORAGE_POOL
        self.lxd_proxy: tuple[str | None, str | None, str | None] = (None, None, None)
        self.rotated_log: Path | None = None
        # What the remove hook deleted, in order ("acl", "pool"), and what it keeps.
        self.removed: list[str] = []
        self.pool_volumes_left: list[str] = []

    def as_host(self) -> FakeHost:
        """Stand in for `host.Host()`."""
        return self

    def storage_for(self, app: str | None = None) -> FakeStoragePool:
        """Stand in for `storage.StoragePool(app=...)`: the pool is the application's own."""
        self.app = app
        self.storage_pool = command.scoped_name(app) if app else storage.LEGACY_STORAGE_POOL
        return FakeStoragePool(self)

    def machine(self) -> str:
        return self.machine_name

    def lxd_installed(self) -> bool:
        return self.installed

    def ensure_lxd(self) -> bool:
        self.calls.append("ensure_lxd")
        if self.ensure_error is not None:
            raise self.ensure_error
        changed = not (self.installed and self.initialised)
        self.installed = self.initialised = True
        return changed

    def runner_storage_in_use(self) -> str | None:
        return self.storage_in_use

    def check_storage(self, kind: str, required: int) -> None:
        total = self.memory if kind == storage.MEMORY else self.juju_storage
        if required > total:
            raise storage.StorageTooSmallError(
                f"runner-storage: the runners need {required} bytes but {kind} has {total}"
            )

    def ensure_logrotate(self, log_path: Path) -> bool:
        self.calls.append("ensure_logrotate")
        self.rotated_log = log_path
        return False

    def firewall_for(self, app: str | None) -> FakeFirewall:
        """Stand in for `firewall.Firewall.for_app(app)`: this fake records what it applies."""
        return FakeFirewall(self)

    def ensure_firewall(self, denylist: Iterable[ipaddress.IPv4Network]) -> bool:
        if self.calls_before_firewall is None:
            self.calls_before_firewall = list(self.calls)
        if self.firewall_error is not None:
            raise self.firewall_error
        networks = tuple(denylist)
        changed = not self.firewall_applied or self.firewall_applied[-1] != networks
        self.firewall_applied.append(networks)
        return changed

    def ensure_lxd_proxy(self, http: str | None, https: str | None, no_proxy: str | None) -> bool:
        changed = self.lxd_proxy != (http, https, no_proxy)
        self.lxd_proxy = (http, https, no_proxy)
        return changed

    def ensure_runner_storage(self, kind: str, required: int) -> bool:
        self.calls.append("ensure_runner_storage")
        changed = self.storage != (kind, required)
        self.storage = (kind, required)
        self.storage_in_use = kind
        return changed


class FakeStoragePool:
    """The charm's `storage.StoragePool`, recording into the host fake."""

    def __init__(self, host: FakeHost) -> None:
        self._host = host

    @property
    def storage_pool(self) -> str:
        return self._host.storage_pool

    def runner_storage_in_use(self) -> str | None:
        return self._host.runner_storage_in_use()

    def check_storage(self, kind: str, required: int) -> None:
        self._host.check_storage(kind, required)

    def ensure_runner_storage(self, kind: str, required: int) -> bool:
        return self._host.ensure_runner_storage(kind, required)

    def remove(self) -> bool:
        if self._host.pool_volumes_left:
            return False
        self._host.removed.append("pool")
        return True


class FakeFirewall:
    """The charm's `firewall.Firewall`, recording into the host fake."""

    def __init__(self, host: FakeHost) -> None:
        self._host = host

    def ensure(self, denylist: Iterable[ipaddress.IPv4Network]) -> bool:
        return self._host.ensure_firewall(denylist)

    def remove(self) -> bool:
        self._host.removed.append("acl")
        return True


def use_fake_host(monkeypatch: pytest.MonkeyPatch, fake: FakeHost) -> FakeHost:
    """Make the charm's host, storage pool and firewall the fake machine's.

    Args:
        monkeypatch: the test's monkeypatch.
        fake: the fake machine.

    Returns:
        The fake machine.
    """
    monkeypatch.setattr(charm.host, "Host", fake.as_host)
    monkeypatch.setattr(charm.storage, "StoragePool", fake.storage_for)
    monkeypatch.setattr(charm.firewall.Firewall, "for_app", fake.firewall_for)
    return fake


class FakeManagerService:
    """The runner manager's files, units and command line, kept in memory."""

    def __init__(self, paths: service.ManagerPaths | None = None) -> None:
        self.paths = paths or service.ManagerPaths.for_unit("github-runner", 0)
        self.config: ManagerConfig | None = None
        self.config_text: str | None = None
        self.token: str | None = None
        self.interval: int | None = None
        self.timer_active = False
        self.exporter_active = False
        self.reconciles_started = 0
        self.stopped = False
        self.files_removed = False
        self.preconfigured = False
        self.report: Report | None = None
        self.results: dict[str, list[service.ManagerResult]] = {}
        self.runs: list[list[str]] = []
        self.image_timer_active = False
        self.image_building = False
        self.image_build_due: str | None = None
        self.image_builds_started: list[str] = []
        self.images_removed = False
        self.replenisher_active = False
        self.replenisher_restarts = 0
        # Other units of the application configured on this machine.
        self.other_units: list[str] = []

    def ensure_config(self, config: ManagerConfig, token: str) -> bool:
        text = json.dumps(config.model_dump(mode="json", exclude_none=True), sort_keys=True)
        changed = (text, token) != (self.config_text, self.token)
        self.config, self.config_text, self.token = config, text, token
        return changed

    def configured(self) -> bool:
        return self.preconfigured or self.config is not None

    def timer_running(self) -> bool:
        return self.timer_active

    def ensure_units(self, interval_minutes: int) -> bool:
        changed = self.interval != interval_minutes or not self.timer_active
        self.interval, self.timer_active = interval_minutes, True
        return changed

    def ensure_replenisher(self, config_changed: bool = False) -> bool:
        if not self.replenisher_active:
            self.replenisher_active = True
            return True
        if config_changed:
            self.replenisher_restarts += 1
        return config_changed

    def ensure_exporter(self, enabled: bool) -> bool:
        changed = self.exporter_active != enabled
        self.exporter_active = enabled
        return changed

    def start_reconcile(self) -> None:
        self.reconciles_started += 1

    def ensure_image_units(self, config: ManagerConfig) -> bool:
        changed = self.image_timer_active != config.image.build
        self.image_timer_active = config.image.build
        return changed

    def image_build_in_progress(self) -> bool:
        return self.image_building

    def start_image_build_if_due(self, config: ManagerConfig) -> str | None:
        if self.image_building or not self.image_build_due:
            return None
        self.image_builds_started.append(self.image_build_due)
        self.image_building = True
        return self.image_build_due

    def remove_images(self, timeout: float) -> None:
        assert timeout > 0
        self.images_removed = self.configured()

    def stop(self) -> None:
        self.stopped = True
        self.timer_active = False
        self.replenisher_active = False

    def remove_files(self) -> None:
        self.files_removed = True

    def other_units_here(self) -> list[str]:
        return list(self.other_units)

    def run(self, args: list[str], timeout: float) -> service.ManagerResult:
        assert timeout > 0
        self.runs.append(list(args))
        queue = self.results.get(args[0])
        if queue:
            return queue.pop(0) if len(queue) > 1 else queue[0]
        return service.ManagerResult(0, {})

    def read_report(self) -> Report | None:
        return self.report


def make_report(**fields: Any) -> Report:
    """A report that finished just now, with fields overridden."""
    now = datetime.datetime.now(UTC)
    data: dict[str, Any] = {
        "command": "reconcile",
        "unit": "github-runner/0",
        "started_at": now - datetime.timedelta(seconds=20),
        "finished_at": now,
        "desired": {"container": 0, "virtual-machine": 1},
        "counts": {"container": {}, "virtual-machine": {"idle": 1}},
    }
    data.update(fields)
    return Report.model_validate(data)


def result(exit_code: int = 0, **document: Any) -> service.ManagerResult:
    """A manager command-line result."""
    return service.ManagerResult(exit_code, json.loads(json.dumps(document, default=str)))


def report_result(report: Report, exit_code: int = 0) -> service.ManagerResult:
    """A manager result whose document is a report."""
    return service.ManagerResult(exit_code, report.model_dump(mode="json"))


def charm_dir() -> Path:
    """The project directory (what the charm directory holds once packed)."""
    return Path(__file__).resolve().parents[2]


# What the packed charm ships beside src/ and that the charm reads at run time.
SHIPPED_DIRS = ("templates", "grafana_dashboards", "prometheus_alert_rules", "loki_alert_rules")


def charm_context(root: Path, app_name: str | None = None) -> testing.Context:
    """A Scenario context whose charm directory is `root`, a temporary copy of the charm's tree.

    ops.testing writes metadata.yaml, config.yaml and actions.yaml into the charm root it is
    given: that must never be the repository (charmcraft refuses those files beside
    charmcraft.yaml). `root` gets links to the shipped directories, and the metadata comes from
    charmcraft.yaml, as charmcraft puts it in the packed charm.

    Args:
        root: an empty temporary directory.
        app_name: the application's name, when not the charm's own.

    Returns:
        The context.
    """
    project = charm_dir()
    for name in SHIPPED_DIRS:
        (root / name).symlink_to(project / name, target_is_directory=True)
    spec = yaml.safe_load((project / "charmcraft.yaml").read_text(encoding="utf-8"))
    meta = {
        key: value
        for key, value in spec.items()
        if key not in ("type", "platforms", "parts", "config", "actions", "links")
    }
    return testing.Context(
        GithubRunnerCharm,
        meta=meta,
        config=spec.get("config"),
        actions=spec.get("actions"),
        charm_root=root,
        app_name=app_name,
    )
