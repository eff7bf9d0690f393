# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""service.py's image build units: rendering, systemd calls, the lock test, starting a build."""

from __future__ import annotations

import datetime
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import service
from github_runner_manager.config import ManagerConfig
from github_runner_manager.image import BuildRecord, lock_path, recipe, record_path
from github_runner_manager.utils import manager_lock

from .charm_fakes import charm_dir
from .test_service import FakeRun, FakeSystemd, directives

UTC = datetime.timezone.utc
NOW = datetime.datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def paths(tmp_path: Path) -> service.ManagerPaths:
    return service.ManagerPaths.for_unit(
        "github-runner",
        3,
        config_root=tmp_path / "etc",
        state_root=tmp_path / "state",
        systemd_dir=tmp_path / "systemd",
    )


@pytest.fixture
def fake_systemd() -> FakeSystemd:
    return FakeSystemd()


@pytest.fixture
def manager(paths: service.ManagerPaths, fake_systemd: FakeSystemd) -> service.ManagerService:
    paths.systemd_dir.mkdir(parents=True)
    return service.ManagerService(paths, charm_dir(), systemd_client=fake_systemd)


def config(paths: service.ManagerPaths, build: bool = True, **runners: Any) -> ManagerConfig:
    return ManagerConfig.model_validate(
        {
            "unit": "github-runner/3",
            "name_prefix": "github-runner-3",
            "flavor": "github-runner",
            "github": {"path": "test-owner/test-repo", "token_file": str(paths.token_file)},
            "runners": {"containers": 1, **runners},
            "state_dir": str(paths.state_dir),
            "image": {"build": build},
        }
    )


def test_image_unit_names_are_scoped_per_unit(paths: service.ManagerPaths) -> None:
    assert paths.image_service == "github-runner-image-github-runner-3.service"
    assert paths.image_timer == "github-runner-image-github-runner-3.timer"
    assert paths.image_timer_file.parent == paths.systemd_dir


def test_image_service_runs_build_image_with_absolute_paths(
    manager: service.ManagerService, paths: service.ManagerPaths
) -> None:
    unit = directives(manager.render_image_service(config(paths)))

    argv = shlex.split(unit["ExecStart"])
    assert argv == [
        sys.executable,
        "-m",
        "github_runner_manager",
        "--config",
        str(paths.config_file),
        "build-image",
    ]
    assert unit["Type"] == "oneshot"
    assert unit["Environment"] == f"PYTHONPATH={manager.python_path}"
    assert unit["TimeoutStartSec"] == str(3600 + service.IMAGE_BUILD_OVERHEAD)


def test_image_build_time_limit_covers_each_image_type(paths: service.ManagerPaths) -> None:
    both = config(paths, containers=1, virtual_machines=1)

    assert service.image_timeout_seconds(both) == 2 * (3600 + service.IMAGE_BUILD_OVERHEAD)


def test_image_timer_runs_every_six_hours_and_catches_up(
    manager: service.ManagerService,
) -> None:
    timer = directives(manager.render_image_timer())

    assert timer["Unit"] == manager.paths.image_service
    assert timer["OnCalendar"] == "00/6:00"
    assert timer["RandomizedDelaySec"] == "6h"
    assert timer["FixedRandomDelay"] == "true"
    assert timer["Persistent"] == "true"
    # No cron line: a systemd timer, its unit file ending with a newline.
    assert manager.render_image_timer().endswith("\n")


def test_first_image_units_are_written_and_the_timer_enabled(
    manager: service.ManagerService, paths: service.ManagerPaths, fake_systemd: FakeSystemd
) -> None:
    assert manager.ensure_image_units(config(paths))

    assert paths.image_service_file.read_text() == manager.render_image_service(config(paths))
    assert paths.image_timer_file.read_text() == manager.render_image_timer()
    assert fake_systemd.calls == [("daemon-reload",), ("enable --now", paths.image_timer)]


def test_unchanged_image_units_touch_nothing(
    manager: service.ManagerService, paths: service.ManagerPaths, fake_systemd: FakeSystemd
) -> None:
    manager.ensure_image_units(config(paths))
    fake_systemd.calls.clear()

    assert not manager.ensure_image_units(config(paths))
    assert fake_systemd.calls == []


def test_a_new_time_limit_restarts_the_timer(
    manager: service.ManagerService, paths: service.ManagerPaths, fake_systemd: FakeSystemd
) -> None:
    manager.ensure_image_units(config(paths))
    fake_systemd.calls.clear()

    assert manager.ensure_image_units(config(paths, virtual_machines=1))
    assert fake_systemd.calls == [("daemon-reload",), ("restart", paths.image_timer)]


def test_image_units_are_removed_when_building_is_off(
    manager: service.ManagerService, paths: service.ManagerPaths, fake_systemd: FakeSystemd
) -> None:
    manager.ensure_image_units(config(paths))
    fake_systemd.calls.clear()

    assert manager.ensure_image_units(config(paths, build=False))
    assert not paths.image_timer_file.exists()
    assert not paths.image_service_file.exists()
    assert fake_systemd.calls == [
        ("disable --now", paths.image_timer),
        ("stop", paths.image_service),
        ("daemon-reload",),
    ]
    assert not manager.ensure_image_units(config(paths, build=False))


def test_systemd_refusing_the_image_units_is_a_service_error(
    manager: service.ManagerService, paths: service.ManagerPaths, fake_systemd: FakeSystemd
) -> None:
    fake_systemd.fail.add("enable --now")

    with pytest.raises(service.ServiceError, match="image"):
        manager.ensure_image_units(config(paths))


def test_a_build_holding_its_lock_is_in_progress(
    manager: service.ManagerService, paths: service.ManagerPaths
) -> None:
    assert not manager.image_build_in_progress()  # no lock file yet
    with manager_lock(lock_path(config(paths)), 0):
        assert manager.image_build_in_progress()
    assert not manager.image_build_in_progress()


def test_the_lock_test_does_not_keep_a_build_from_starting(
    manager: service.ManagerService, paths: service.ManagerPaths
) -> None:
    lock = lock_path(config(paths))
    lock.parent.mkdir(parents=True)
    lock.touch()

    manager.image_build_in_progress()

    with manager_lock(lock, 0):
        pass


def write_record(cfg: ManagerConfig, **fields: Any) -> None:
    BuildRecord(
        started_at=NOW - datetime.timedelta(minutes=10),
        finished_at=NOW - datetime.timedelta(minutes=5),
        recipe=fields.pop("recipe", recipe(cfg)),
        **fields,
    ).write(record_path(cfg))


def test_the_first_build_starts_at_once(
    manager: service.ManagerService, paths: service.ManagerPaths, fake_systemd: FakeSystemd
) -> None:
    reason = manager.start_image_build_if_due(config(paths), NOW)

    assert reason == "no runner image has been built yet"
    assert fake_systemd.calls == [("start --no-block", paths.image_service)]


def test_a_changed_recipe_starts_a_build(
    manager: service.ManagerService, paths: service.ManagerPaths, fake_systemd: FakeSystemd
) -> None:
    write_record(config(paths), recipe="old")

    assert manager.start_image_build_if_due(config(paths), NOW)
    assert fake_systemd.calls == [("start --no-block", paths.image_service)]


def test_no_build_starts_when_the_image_is_current(
    manager: service.ManagerService, paths: service.ManagerPaths, fake_systemd: FakeSystemd
) -> None:
    write_record(config(paths))

    assert manager.start_image_build_if_due(config(paths), NOW) is None
    assert fake_systemd.calls == []


def test_no_build_starts_while_one_runs(
    manager: service.ManagerService, paths: service.ManagerPaths, fake_systemd: FakeSystemd
) -> None:
    with manager_lock(lock_path(config(paths)), 0):
        assert manager.start_image_build_if_due(config(paths), NOW) is None
    assert fake_systemd.calls == []


def test_no_build_starts_when_building_is_off(
    manager: service.ManagerService, paths: service.ManagerPaths, fake_systemd: FakeSystemd
) -> None:
    assert manager.start_image_build_if_due(config(paths, build=False), NOW) is None
    assert fake_systemd.calls == []


def test_systemd_refusing_to_start_a_build_is_a_service_error(
    manager: service.ManagerService, paths: service.ManagerPaths, fake_systemd: FakeSystemd
) -> None:
    fake_systemd.fail.add("start --no-block")

    with pytest.raises(service.ServiceError, match="refused to start"):
        manager.start_image_build_if_due(config(paths), NOW)


def test_stop_stops_a_build_in_progress_too(
    manager: service.ManagerService, paths: service.ManagerPaths, fake_systemd: FakeSystemd
) -> None:
    manager.ensure_units(10)
    manager.ensure_image_units(config(paths))
    fake_systemd.calls.clear()

    manager.stop()

    assert fake_systemd.calls == [
        ("disable --now", paths.image_timer),
        ("stop", paths.image_service),
        ("disable --now", paths.timer),
        ("stop", paths.service),
    ]


def test_remove_files_deletes_the_image_units(
    manager: service.ManagerService, paths: service.ManagerPaths
) -> None:
    manager.ensure_image_units(config(paths))

    manager.remove_files()

    assert not paths.image_service_file.exists()
    assert not paths.image_timer_file.exists()


def test_remove_images_runs_the_command_line(
    paths: service.ManagerPaths, fake_systemd: FakeSystemd
) -> None:
    run = FakeRun(subprocess.CompletedProcess([], 0, '{"ok": true, "removed": []}', ""))
    manager = service.ManagerService(paths, charm_dir(), systemd_client=fake_systemd, run=run)
    manager.ensure_config(config(paths), "token")

    manager.remove_images(60)

    ((argv, kwargs),) = run.calls
    assert argv[-1] == "remove-images"
    assert kwargs["timeout"] == 60


def test_remove_images_failures_are_logged(
    paths: service.ManagerPaths, fake_systemd: FakeSystemd, caplog: pytest.LogCaptureFixture
) -> None:
    failure = subprocess.CalledProcessError(4, [], '{"ok": false, "errors": [{"message": "x"}]}')
    manager = service.ManagerService(
        paths, charm_dir(), systemd_client=fake_systemd, run=FakeRun(failure)
    )
    manager.ensure_config(config(paths), "token")

    manager.remove_images(60)

    assert "removing the runner images failed (exit code 4): x" in caplog.text


def test_remove_images_before_any_configuration_runs_nothing(
    paths: service.ManagerPaths, fake_systemd: FakeSystemd
) -> None:
    run = FakeRun()
    manager = service.ManagerService(paths, charm_dir(), systemd_client=fake_systemd, run=run)

    manager.remove_images(60)

    assert run.calls == []
