# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""image_status: what the charm may ask about the runner image, from the package root."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

import service
from github_runner_manager import ImageStatus, image_status
from github_runner_manager.image import lock_path
from github_runner_manager.manager import manager_lock

from .test_service_image import config

NOW = datetime.datetime(2026, 6, 1, 12, 0, tzinfo=datetime.timezone.utc)


@pytest.fixture
def paths(tmp_path: Path) -> service.ManagerPaths:
    return service.ManagerPaths.for_unit(
        "github-runner", 3, config_root=tmp_path / "etc", state_root=tmp_path / "state"
    )


def test_no_image_yet_is_due(paths: service.ManagerPaths) -> None:
    """The first build is due at once.

    arrange: a configuration that builds images, no build record.
    act: image_status.
    assert: due, with the reason; no build runs.
    """
    assert image_status(config(paths), NOW) == ImageStatus(
        due_reason="no runner image has been built yet", building=False
    )


def test_a_running_build_is_building_and_not_due(paths: service.ManagerPaths) -> None:
    """No second build is due while one runs.

    arrange: a build holding the image lock.
    act: image_status.
    assert: building, nothing due.
    """
    manager_config = config(paths)
    paths.state_dir.mkdir(parents=True)

    with manager_lock(lock_path(manager_config), 0):
        found = image_status(manager_config, NOW)

    assert found == ImageStatus(due_reason=None, building=True)


def test_nothing_is_due_when_images_are_not_built(paths: service.ManagerPaths) -> None:
    """A configuration on a stock image never builds.

    arrange: image.build off.
    act: image_status.
    assert: nothing due, no build.
    """
    assert image_status(config(paths, build=False), NOW) == ImageStatus(None, False)
