# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""Builders shared by the unit tests: configurations, the charm's manager service, runners.

Each builder makes a valid object with the values most tests want; a test passes only what it
is about. Fakes live in `fakes.py` and `charm_fakes.py`; fixtures in `conftest.py` and in the
test modules (which call these builders).
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import service
from github_runner_manager.config import ManagerConfig
from github_runner_manager.manager import RunnerManager
from github_runner_manager.models import (
    GitHubRunner,
    InstanceStatus,
    InstanceType,
    RunnerInstance,
)

from .charm_fakes import charm_dir
from .fakes import FakeBinaryCache

UNIT = "github-runner/0"
PREFIX = "github-runner-0"
# The unit of the charm-side manager service tests (`service.py`).
SERVICE_APP = "github-runner"
SERVICE_UNIT_NUMBER = 3


def merged(data: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A configuration document with overrides merged in, one level deep.

    Args:
        data: the document.
        overrides: top-level keys; a dict merges into a dict of the document, anything else
            replaces the value.

    Returns:
        A new document.
    """
    result = dict(data)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = {**result[key], **value}
        else:
            result[key] = value
    return result


def config_data(tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    """A valid manager configuration document (2 containers, extra label), overrides merged in.

    Args:
        tmp_path: where the state and job logs go.
        overrides: top-level keys merged in (see `merged`).

    Returns:
        The document, as the manager reads it from its JSON file.
    """
    data: dict[str, Any] = {
        "unit": UNIT,
        "name_prefix": PREFIX,
        "flavor": "github-runner",
        "github": {"path": "test-owner/test-repo", "token": "ghp_unit_test_token"},
        "runners": {"containers": 2, "virtual_machines": 0, "labels": ["extra"]},
        "state_dir": str(tmp_path / "state"),
        "job_log_dir": str(tmp_path / "jobs"),
        "timing": {"lock_timeout": 0},
    }
    return merged(data, overrides)


def make_config(tmp_path: Path, **overrides: Any) -> ManagerConfig:
    """A valid manager configuration, with nested overrides merged in.

    Args:
        tmp_path: where the state and job logs go.
        overrides: top-level keys merged in (see `merged`).

    Returns:
        The configuration.
    """
    return ManagerConfig.model_validate(config_data(tmp_path, **overrides))


def manager_on_fakes(
    config: ManagerConfig,
    lxd: Any,
    github: Any,
    clock: Any,
    tmp_path: Path,
    binary: FakeBinaryCache | None = None,
    **kwargs: Any,
) -> RunnerManager:
    """A RunnerManager on the in-memory fakes and the fake clock.

    Args:
        config: the manager configuration.
        lxd: the fake LXD.
        github: the fake GitHub.
        clock: the fake clock (its time, sleep and monotonic clock).
        tmp_path: where the fake runner application cache keeps its tarball.
        binary: a runner application cache (a fresh FakeBinaryCache by default).
        kwargs: further RunnerManager arguments (`exchange`, `github_for_target`, ...).

    Returns:
        The manager.
    """
    return RunnerManager(
        config,
        lxd,
        github,
        binary=binary or FakeBinaryCache(tmp_path),  # type: ignore[arg-type]  # a fake, not a RunnerBinaryCache subclass
        clock=clock,
        sleep=clock.sleep,
        monotonic=clock.monotonic,
        **kwargs,
    )


def service_paths(tmp_path: Path) -> service.ManagerPaths:
    """The charm-side paths of unit github-runner/3, all below a temporary directory.

    Args:
        tmp_path: the temporary directory.

    Returns:
        The paths.
    """
    return service.ManagerPaths.for_unit(
        SERVICE_APP,
        SERVICE_UNIT_NUMBER,
        config_root=tmp_path / "etc",
        state_root=tmp_path / "state",
        systemd_dir=tmp_path / "systemd",
    )


def service_manager(paths: service.ManagerPaths, systemd_client: Any) -> service.ManagerService:
    """The charm's manager service on a fake systemd, its unit directory made.

    Args:
        paths: from `service_paths`.
        systemd_client: the fake systemd.

    Returns:
        The manager service.
    """
    paths.systemd_dir.mkdir(parents=True)
    return service.ManagerService(paths, charm_dir(), systemd_client=systemd_client)


def service_config(
    paths: service.ManagerPaths, runners: dict[str, Any], **extra: Any
) -> ManagerConfig:
    """The manager configuration the charm writes for unit github-runner/3.

    Args:
        paths: from `service_paths`.
        runners: runner settings merged over one container.
        extra: further top-level keys (`report_path`, `image`, ...).

    Returns:
        The configuration.
    """
    return ManagerConfig.model_validate(
        {
            "unit": f"{SERVICE_APP}/{SERVICE_UNIT_NUMBER}",
            "name_prefix": f"{SERVICE_APP}-{SERVICE_UNIT_NUMBER}",
            "flavor": "github-runner",
            "github": {"path": "test-owner/test-repo", "token_file": str(paths.token_file)},
            "runners": {"containers": 1, **runners},
            "state_dir": str(paths.state_dir),
            **extra,
        }
    )


def runner_instance(
    name: str,
    created_at: datetime.datetime,
    *,
    kind: InstanceType = InstanceType.CONTAINER,
    status: InstanceStatus = InstanceStatus.RUNNING,
    config_hash: str = "hash",
    jit: bool = False,
    runner_id: int | None = None,
    github_url: str | None = None,
    github_path: str | None = None,
) -> RunnerInstance:
    """A runner instance as the LXD client lists it.

    Args:
        name: the instance name.
        created_at: when it was created.
        kind: container or virtual machine.
        status: its LXD status.
        config_hash: the configuration hash it was created with.
        jit: whether it was registered before it started (JIT).
        runner_id: the GitHub runner id it was registered with.
        github_url: the GitHub it was registered on.
        github_path: the repository or organisation it was registered on.

    Returns:
        The instance.
    """
    return RunnerInstance(
        name=name,
        instance_type=kind,
        status=status,
        created_at=created_at,
        config_hash=config_hash,
        registered_first=jit,
        runner_id=runner_id,
        github_url=github_url,
        github_path=github_path,
    )


def github_runner(
    name: str, online: bool = True, busy: bool = False, runner_id: int = 0
) -> GitHubRunner:
    """A runner as GitHub lists it.

    Args:
        name: the runner name.
        online: whether it is online.
        busy: whether it runs a job.
        runner_id: its id (0: one derived from the name).

    Returns:
        The runner.
    """
    return GitHubRunner(
        id=runner_id or abs(hash(name)) % 10_000 + 1, name=name, online=online, busy=busy
    )
