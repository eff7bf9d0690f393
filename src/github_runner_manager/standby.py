# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""Standbys: booted containers that become runners the moment runners end.

Creating and starting a container is most of a replacement's time (and several at once share the
host's CPUs). A standby is a container from the baked runner image, created and started ahead,
with no GitHub registration and no configuration: its boot program waits on /dev/lxd's event
stream for the keys that make it a runner. When runners end, the replenisher (under the manager's
lock, see `RunnerManager.replenish`) registers one runner just in time per missing runner, with a
standby's name, and sets the keys on that standby: one GitHub call and one LXD call, and the
runner starts at once, with no create and no start. Then, after the lock, it makes new standbys.
A reconciliation that creates runners makes them from standbys the same way.

- Only the replenisher makes standbys (`Standbys.top_up`); both the replenisher and a
  reconciliation make runners from them (`StandbyFirst`), and a reconciliation removes the
  stale, stopped and extra ones (see `planner`). A standby is not a runner: it is never counted
  as one, never registered, and holds nothing secret; it costs an idle container (about 40 MiB
  of memory and, on a btrfs pool, next to no disk).
- Only containers from an image with the current runner application baked in have standbys
  (`RunnerSpawner.standby_possible`): the boot program that waits is part of the baked image.
- How many: `runners.standby` in the manager's configuration, by default one per container
  runner, so that the whole fleet ending at once is replaced from standbys.
- A standby made with another configuration (its hash differs) is never made a runner; the
  replenisher deletes it (it has no registration and ran no job: there is nothing to lose) and
  makes a current one.
"""

from __future__ import annotations

import datetime
import logging
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Protocol

from .errors import RunnerCreateError, RunnerManagerError
from .lxd import InstanceClient
from .models import InstanceStatus, InstanceType, RunnerInstance
from .planner import CREATION_GRACE, in_creation
from .runner import SpawnResult
from .utils import run_parallel

logger = logging.getLogger(__name__)


class StandbySpawner(Protocol):
    """What standbys need of the spawner (`runner.RunnerSpawner`)."""

    def standby_possible(self, instance_type: InstanceType) -> bool:
        """Whether runners of a type can have standbys."""
        ...  # pragma: no cover

    def create_standby(self, instance_type: InstanceType, config_hash: str) -> str:
        """Create and start a standby; return its name."""
        ...  # pragma: no cover

    def adopt_standby(self, name: str, instance_type: InstanceType) -> SpawnResult:
        """Make a standby a runner."""
        ...  # pragma: no cover

    def discard_standby(self, name: str) -> None:
        """Delete a standby and its host directory."""
        ...  # pragma: no cover


def ready_standbys(
    instances: Sequence[RunnerInstance],
    hashes: Mapping[InstanceType, str],
    exclude: Collection[str] = (),
) -> list[RunnerInstance]:
    """The standbys that can be made runners now: running and current, oldest first.

    Args:
        instances: the unit's instances.
        hashes: the configuration hash a runner of each type is created with now.
        exclude: standbys not to use (those a reconciliation removes).

    Returns:
        The standbys, the longest booted first.
    """
    found = [
        instance
        for instance in instances
        if instance.standby
        and instance.status is InstanceStatus.RUNNING
        and instance.name not in exclude
        and instance.config_hash == hashes.get(instance.instance_type)
    ]
    return sorted(found, key=lambda instance: instance.created_at)


def _creator(spawner: StandbySpawner, instance_type: InstanceType) -> Callable[[str], str]:
    """A function creating a standby of a type with a configuration hash."""

    def create(config_hash: str) -> str:
        return spawner.create_standby(instance_type, config_hash)

    return create


class Spawning(Protocol):
    """Makes one runner (`runner.RunnerSpawner`, or `runner.ReservingSpawner`)."""

    def spawn(self, instance_type: InstanceType, config_hash: str) -> SpawnResult:
        """Make one runner of a type."""
        ...  # pragma: no cover


class StandbyFirst:
    """A spawner that makes each runner from a ready standby while there is one, else spawns.

    The reconciliation and the replenisher hand it to the applier instead of their spawner, with
    the standbys listed under the lock: a standby is given to one runner only. A standby that
    cannot be made a runner has been removed with its registration; the runner is then spawned.
    A refused registration (token, permission, rate limit) is raised: no spawn would do better.
    """

    def __init__(
        self,
        spawner: StandbySpawner,
        fallback: Spawning,
        standbys: Sequence[RunnerInstance],
    ):
        """Describe it.

        Args:
            spawner: makes a standby a runner.
            fallback: spawns a runner when no standby is left.
            standbys: the ready standbys (`ready_standbys`), used in this order.
        """
        self._spawner = spawner
        self._fallback = fallback
        self._standbys = list(standbys)
        self._lock = threading.Lock()
        self.adopted: list[str] = []

    def _take(self, instance_type: InstanceType, config_hash: str) -> RunnerInstance | None:
        with self._lock:
            for standby in self._standbys:
                if standby.instance_type is instance_type and standby.config_hash == config_hash:
                    self._standbys.remove(standby)
                    return standby
        return None

    def spawn(self, instance_type: InstanceType, config_hash: str) -> SpawnResult:
        """Make one runner: from a standby if one is left, else by the fallback.

        Args:
            instance_type: container or virtual machine.
            config_hash: the configuration hash the runner is made with.

        Returns:
            The runner (already running when made from a standby).
        """
        standby = self._take(instance_type, config_hash)
        if standby is not None:
            try:
                result = self._spawner.adopt_standby(standby.name, instance_type)
            except RunnerCreateError as exc:
                logger.warning("%s; spawning a runner instead", exc)
            else:
                with self._lock:
                    self.adopted.append(result.name)
                return result
        return self._fallback.spawn(instance_type, config_hash)


class Standbys:
    """Keeps the number of current standbys up (after the lock)."""

    def __init__(
        self,
        lxd: InstanceClient,
        unit: str,
        wanted: Callable[[InstanceType], int],
        concurrency: int,
        clock: Callable[[], datetime.datetime],
    ):
        """Describe the standbys of a unit.

        Args:
            lxd: the LXD client.
            unit: the unit whose instances are listed.
            wanted: how many standbys of a type to keep.
            concurrency: how many standbys to create at the same time.
            clock: the current time.
        """
        self._lxd = lxd
        self._unit = unit
        self._wanted = wanted
        self._concurrency = concurrency
        self._clock = clock
        # Only one top-up at a time in this process: each counts what the last one made.
        self._top_up_lock = threading.Lock()

    def top_up(
        self, spawner: StandbySpawner, hashes: Mapping[InstanceType, str]
    ) -> tuple[list[str], list[BaseException]]:
        """Make the standbys that are missing; delete the stale and stopped ones.

        Call it after the manager's lock is released (a reconciliation takes a standby in
        creation for one, see `planner.in_creation`).

        Args:
            spawner: the spawner.
            hashes: the configuration hash per instance type.

        Returns:
            The standbys made, and the errors.
        """
        with self._top_up_lock:
            instances = self._lxd.list_instances(self._unit)
            made: list[str] = []
            errors: list[BaseException] = []
            for instance_type in InstanceType:
                wanted = self._wanted(instance_type)
                config_hash = hashes.get(instance_type)
                if (
                    config_hash is None
                    or not wanted
                    or not spawner.standby_possible(instance_type)
                ):
                    continue
                kept = self._clear_out(spawner, instances, instance_type, config_hash, errors)
                missing = max(0, wanted - kept)
                results = run_parallel(
                    _creator(spawner, instance_type), [config_hash] * missing, self._concurrency
                )
                made.extend(name for _, name, _ in results if name is not None)
                errors.extend(exc for _, _, exc in results if exc is not None)
            return made, errors

    def _clear_out(
        self,
        spawner: StandbySpawner,
        instances: Sequence[RunnerInstance],
        instance_type: InstanceType,
        config_hash: str,
        errors: list[BaseException],
    ) -> int:
        """Delete a type's stale or dead standbys; return how many good ones there are."""
        now = self._clock()
        kept = 0
        for instance in instances:
            if not instance.standby or instance.instance_type is not instance_type:
                continue
            alive = instance.status is InstanceStatus.RUNNING or in_creation(
                instance, now, CREATION_GRACE
            )
            if alive and instance.config_hash == config_hash:
                kept += 1
                continue
            try:
                spawner.discard_standby(instance.name)
                logger.info("deleted standby %s (stale or stopped)", instance.name)
            except RunnerManagerError as exc:
                errors.append(exc)
        return kept
