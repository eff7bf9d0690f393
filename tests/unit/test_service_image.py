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

from .builders import service_config, service_manager, service_paths
from .charm_fakes import charm_dir
from .test_service import FakeRun, FakeSystemd, directives

UTC = datetime.timezone.utc
NOW = datetime.datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def paths(tmp_path: Path) -> service.ManagerPaths:
    return service_paths(tmp_path)


@pytest.fixture
def fake_systemd() -> FakeSystemd:
    return FakeSystemd()


@pytest.fixture
def manager(paths: service.ManagerPaths, fake_systemd: FakeSystemd) -> service.ManagerService:
    return service_manager(paths, fake_systemd)


def config(paths: service.ManagerPaths, build: bool = True, **runners: Any) -> ManagerConfig:
    return service_config(paths, runners, image={"build": build})


def test_image_unit_names_are_scoped_per_unit(paths: service.ManagerPaths) -> None:
    """The image build's unit names are scoped by application and unit.

    arrange: the paths of unit github-runner/3.
    act: read the image service, timer and timer file.
    assert: both names carry github-runner-3; the timer file is in the systemd directory.
    """
    assert paths.image_service.name == "github-runner-image-github-runner-3.service"
    assert paths.image_timer.name == "github-runner-image-github-runner-3.timer"
    assert paths.image_timer.file.parent == paths.systemd_dir


def test_image_service_runs_build_image_with_absolute_paths(
    manager: service.ManagerService, paths: service.ManagerPaths
) -> None:
    """The image service runs build-image by absolute paths, with room for the build.

    arrange: a unit's manager service and a building configuration.
    act: render the image service.
    assert: a oneshot running this python's manager build-image on the config file, the charm's
        PYTHONPATH, and the build timeout plus overhead.
    """
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
    """The image build's time limit covers one build per instance type.

    arrange: a configuration with containers and VMs.
    act: compute the build's time limit.
    assert: twice the build timeout plus overhead.
    """
    both = config(paths, containers=1, virtual_machines=1)

    assert service.image_timeout_seconds(both) == 2 * (3600 + service.IMAGE_BUILD_OVERHEAD)


def test_image_timer_runs_every_six_hours_and_catches_up(
    manager: service.ManagerService,
) -> None:
    """The image timer runs every six hours, spread, and catches up after downtime.

    arrange: a unit's manager service.
    act: render the image timer.
    assert: it starts the image service on 00/6:00 with a fixed random delay of 6h, persistent; the
        file ends with a newline.
    """
    timer = directives(manager.render_image_timer())

    assert timer["Unit"] == manager.paths.image_service.name
    assert timer["OnCalendar"] == "00/6:00"
    assert timer["RandomizedDelaySec"] == "6h"
    assert timer["FixedRandomDelay"] == "true"
    assert timer["Persistent"] == "true"
    # No cron line: a systemd timer, its unit file ending with a newline.
    assert manager.render_image_timer().endswith("\n")


def test_first_image_units_are_written_and_the_timer_enabled(
    manager: service.ManagerService, paths: service.ManagerPaths, fake_systemd: FakeSystemd
) -> None:
    """The first image units are written, systemd reloaded and the timer enabled.

    arrange: no image unit written; building on.
    act: ensure the image units.
    assert: changed; both files as rendered; a reload then enable --now of the image timer.
    """
    assert manager.ensure_image_units(config(paths))

    assert paths.image_service.file.read_text() == manager.render_image_service(config(paths))
    assert paths.image_timer.file.read_text() == manager.render_image_timer()
    assert fake_systemd.calls == [("daemon-reload",), ("enable --now", paths.image_timer.name)]


def test_unchanged_image_units_touch_nothing(
    manager: service.ManagerService, paths: service.ManagerPaths, fake_systemd: FakeSystemd
) -> None:
    """Unchanged image units touch nothing.

    arrange: the image units written.
    act: ensure them again.
    assert: not changed; no systemd call.
    """
    manager.ensure_image_units(config(paths))
    fake_systemd.calls.clear()

    assert not manager.ensure_image_units(config(paths))
    assert fake_systemd.calls == []


def test_a_new_time_limit_restarts_the_timer(
    manager: service.ManagerService, paths: service.ManagerPaths, fake_systemd: FakeSystemd
) -> None:
    """A new build time limit rewrites the units and restarts the timer.

    arrange: the image units written for containers.
    act: ensure them with a VM runner added (a longer limit).
    assert: changed; a reload then a restart of the image timer.
    """
    manager.ensure_image_units(config(paths))
    fake_systemd.calls.clear()

    assert manager.ensure_image_units(config(paths, virtual_machines=1))
    assert fake_systemd.calls == [("daemon-reload",), ("restart", paths.image_timer.name)]


def test_image_units_are_removed_when_building_is_off(
    manager: service.ManagerService, paths: service.ManagerPaths, fake_systemd: FakeSystemd
) -> None:
    """Turning building off removes the image units, once.

    arrange: the image units written.
    act: ensure the image units with building off, twice.
    assert: changed the first time: timer disabled, service stopped, files gone, reload; not
        changed the second.
    """
    manager.ensure_image_units(config(paths))
    fake_systemd.calls.clear()

    assert manager.ensure_image_units(config(paths, build=False))
    assert not paths.image_timer.file.exists()
    assert not paths.image_service.file.exists()
    assert fake_systemd.calls == [
        ("disable --now", paths.image_timer.name),
        ("stop", paths.image_service.name),
        ("daemon-reload",),
    ]
    assert not manager.ensure_image_units(config(paths, build=False))


def test_systemd_refusing_the_image_units_is_a_service_error(
    manager: service.ManagerService, paths: service.ManagerPaths, fake_systemd: FakeSystemd
) -> None:
    """A systemd that refuses the image units is a ServiceError.

    arrange: systemd fails to enable.
    act: ensure the image units.
    assert: ServiceError naming the image.
    """
    fake_systemd.fail.add("enable --now")

    with pytest.raises(service.ServiceError, match="image"):
        manager.ensure_image_units(config(paths))


def test_a_build_holding_its_lock_is_in_progress(
    manager: service.ManagerService, paths: service.ManagerPaths
) -> None:
    """A build is in progress exactly while its lock is held.

    arrange: no lock file, then the image lock held, then released.
    act: ask whether a build is in progress at each step.
    assert: no, yes, no.
    """
    assert not manager.image_build_in_progress()  # no lock file yet
    with manager_lock(lock_path(config(paths)), 0):
        assert manager.image_build_in_progress()
    assert not manager.image_build_in_progress()


def test_the_lock_test_does_not_keep_a_build_from_starting(
    manager: service.ManagerService, paths: service.ManagerPaths
) -> None:
    """Testing the lock does not hold it.

    arrange: an image lock file that is not held.
    act: ask whether a build is in progress, then take the lock without waiting.
    assert: the lock is taken.
    """
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
    """The first build starts at once.

    arrange: no build record.
    act: start an image build if due.
    assert: the reason says no image was built yet; the image service started without waiting.
    """
    reason = manager.start_image_build_if_due(config(paths), NOW)

    assert reason == "no runner image has been built yet"
    assert fake_systemd.calls == [("start --no-block", paths.image_service.name)]


def test_a_changed_recipe_starts_a_build(
    manager: service.ManagerService, paths: service.ManagerPaths, fake_systemd: FakeSystemd
) -> None:
    """A changed recipe starts a build.

    arrange: a record of another recipe.
    act: start an image build if due.
    assert: a reason; the image service started.
    """
    write_record(config(paths), recipe="old")

    assert manager.start_image_build_if_due(config(paths), NOW)
    assert fake_systemd.calls == [("start --no-block", paths.image_service.name)]


def test_no_build_starts_when_the_image_is_current(
    manager: service.ManagerService, paths: service.ManagerPaths, fake_systemd: FakeSystemd
) -> None:
    """No build starts when the image is current.

    arrange: a record of the current recipe.
    act: start an image build if due.
    assert: None; no systemd call.
    """
    write_record(config(paths))

    assert manager.start_image_build_if_due(config(paths), NOW) is None
    assert fake_systemd.calls == []


def test_no_build_starts_while_one_runs(
    manager: service.ManagerService, paths: service.ManagerPaths, fake_systemd: FakeSystemd
) -> None:
    """No build starts while one runs.

    arrange: the image lock held.
    act: start an image build if due.
    assert: None; no systemd call.
    """
    with manager_lock(lock_path(config(paths)), 0):
        assert manager.start_image_build_if_due(config(paths), NOW) is None
    assert fake_systemd.calls == []


def test_no_build_starts_when_building_is_off(
    manager: service.ManagerService, paths: service.ManagerPaths, fake_systemd: FakeSystemd
) -> None:
    """No build starts when building is off.

    arrange: a configuration with building off.
    act: start an image build if due.
    assert: None; no systemd call.
    """
    assert manager.start_image_build_if_due(config(paths, build=False), NOW) is None
    assert fake_systemd.calls == []


def test_systemd_refusing_to_start_a_build_is_a_service_error(
    manager: service.ManagerService, paths: service.ManagerPaths, fake_systemd: FakeSystemd
) -> None:
    """A systemd that refuses to start a build is a ServiceError.

    arrange: systemd fails start --no-block; a build is due.
    act: start an image build if due.
    assert: ServiceError saying systemd refused to start.
    """
    fake_systemd.fail.add("start --no-block")

    with pytest.raises(service.ServiceError, match="refused to start"):
        manager.start_image_build_if_due(config(paths), NOW)


def test_stop_stops_a_build_in_progress_too(
    manager: service.ManagerService, paths: service.ManagerPaths, fake_systemd: FakeSystemd
) -> None:
    """Stopping stops the image timer and a build in progress too, first.

    arrange: the manager's units and the image units written.
    act: stop.
    assert: the image timer disabled and the image service stopped, then the manager's timer and
        service.
    """
    manager.ensure_units(10)
    manager.ensure_image_units(config(paths))
    fake_systemd.calls.clear()

    manager.stop()

    assert fake_systemd.calls == [
        ("disable --now", paths.image_timer.name),
        ("stop", paths.image_service.name),
        ("disable --now", paths.timer.name),
        ("stop", paths.service.name),
    ]


def test_remove_files_deletes_the_image_units(
    manager: service.ManagerService, paths: service.ManagerPaths
) -> None:
    """Removing files deletes the image units.

    arrange: the image units written.
    act: remove the files.
    assert: both image unit files gone.
    """
    manager.ensure_image_units(config(paths))

    manager.remove_files()

    assert not paths.image_service.file.exists()
    assert not paths.image_timer.file.exists()


def test_remove_images_runs_the_command_line(
    paths: service.ManagerPaths, fake_systemd: FakeSystemd
) -> None:
    """Removing images runs the manager's remove-images command.

    arrange: a configured manager service whose run succeeds.
    act: remove the images with a 60 s limit.
    assert: one run of remove-images with that timeout.
    """
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
    """A failure to remove the images is logged with its exit code and message.

    arrange: a configured manager service whose run exits 4 with an error message.
    act: remove the images.
    assert: the log names the exit code and the message.
    """
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
    """Removing images before any configuration runs nothing.

    arrange: a manager service with no config written.
    act: remove the images.
    assert: nothing run.
    """
    run = FakeRun()
    manager = service.ManagerService(paths, charm_dir(), systemd_client=fake_systemd, run=run)

    manager.remove_images(60)

    assert run.calls == []
