# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""What the charm may ask about the runner image: is a build due, is one running.

The rule (`image.build_due`), the build record and the build's lock file stay the image
module's; the charm asks through `image_status` and never reads them itself.
"""

from __future__ import annotations

import dataclasses
import datetime
import fcntl
import os
from pathlib import Path

from . import image
from .config import ManagerConfig
from .models import InstanceType


@dataclasses.dataclass(frozen=True)
class ImageStatus:
    """The runner image build, as the charm sees it.

    Attributes:
        due_reason: why a build should start now rather than at the next scheduled one, or
            None when none is due (or images are not built).
        building: whether a build runs now (the timer's, an action's or the charm's).
    """

    due_reason: str | None
    building: bool


def image_building(state_dir: Path) -> bool:
    """Tell whether an image build of the manager with this state directory runs now.

    The build holds an exclusive lock on its lock file for as long as it runs; a shared lock
    taken here for an instant tells whether it is held (the build waits a few seconds for its
    lock, so this test never makes it fail).

    Args:
        state_dir: the manager's state directory.

    Returns:
        Whether a build holds the lock.
    """
    try:
        fd = os.open(state_dir / image.LOCK_FILE, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def image_status(config: ManagerConfig, now: datetime.datetime | None = None) -> ImageStatus:
    """Tell whether an image build is due and whether one runs.

    A build is due when none has been built yet, when what the image is made from changed
    (source, packages, proxies, the build script, the runner types), and an hour after a failed
    build; never while one runs, nor when the configuration does not build images.

    Args:
        config: the manager configuration.
        now: the current time (UTC).

    Returns:
        The status.

    Raises:
        ImageBuildError: if what the image is built from cannot be read (its script template).
    """
    if not config.image.build:
        return ImageStatus(due_reason=None, building=False)
    if image_building(config.state_dir):
        return ImageStatus(due_reason=None, building=True)
    now = now or datetime.datetime.now(datetime.timezone.utc)
    record = image.read_record(image.record_path(config))
    return ImageStatus(due_reason=image.build_due(config, record, now), building=False)


def image_types(config: ManagerConfig) -> list[InstanceType]:
    """The instance types an image is built for: those with runners configured.

    Args:
        config: the manager configuration.

    Returns:
        The types.
    """
    return image.needed_types(config)
