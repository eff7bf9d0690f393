# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""Applying a plan: removals first (in a safe order), then creations.

Removals delete GitHub registrations and LXD instances in a safe order. A runner that may still
take a job (idle or booting) is first deleted on GitHub: GitHub refuses (422) when the runner
has just taken a job, and then the instance is left alone. A runner that is dead (stopped,
unhealthy) or that the operator flushes while busy loses its instance first, then its
registration.

GitHub refuses to delete the registration of a runner whose job was just killed for as long as
it counts the job as running: minutes, until it notices the runner lost its connection. Those
registrations are retried together, for a bounded time, once every removal has run; one that
GitHub still holds at the end is reported with its id, and the runner is not reported removed.

A runner registered on another path than the configured one (the option changed) is deleted
there, with the client `github_for` gives for it.

Creations run in parallel batches. An error after which no GitHub call can succeed (a bad token,
a missing path, the rate limit) stops the rest of the batch, and is reported once. A storage pool
that runs out of space stops the batch too: what fits is then made one at a time, the pool is
reported full once, and the next runs create one runner at a time until everything fits again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

from .config import ManagerConfig
from .errors import (
    ErrorKind,
    GitHubConflictError,
    GitHubError,
    PathNotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RunnerManagerError,
    StorageFullError,
    TokenError,
)
from .github import GitHubClient
from .image import runner_image
from .lxd import InstanceClient
from .models import InstanceType, RunnerState
from .planner import Plan, Reason, Removal, RunnerView
from .report import ErrorEntry
from .runner import SpawnResult
from .utils import run_parallel

logger = logging.getLogger(__name__)

# How long to keep asking GitHub to delete the registration of a runner whose job was killed.
# GitHub lets go once it notices the runner lost its connection, which can take minutes.
BUSY_RELEASE_TIMEOUT = 600.0
# Waits between those attempts (the last one repeats).
_RELEASE_DELAYS = (2.0, 4.0, 8.0, 15.0)
# Errors after which no further GitHub call in this run can succeed: stop spawning.
_FATAL_GITHUB_ERRORS = (TokenError, PermissionDeniedError, PathNotFoundError, RateLimitError)


@dataclasses.dataclass(frozen=True)
class RemovalOutcome:
    """What happened to one removal.

    Attributes:
        removal: the planned removal.
        removed: whether the runner is gone: its instance and its registration.
        error: the error that stopped it, if any.
        note: why it was skipped, when it was skipped without an error.
        instance_deleted: whether its instance was deleted (even if its registration is left).
        registration_left: the GitHub id of a registration left behind, if any.
        releasing: the instance is gone and GitHub still counts the killed job: the
            registration is retried until GitHub lets go (internal to `remove_all`).
    """

    removal: Removal
    removed: bool
    error: RunnerManagerError | None = None
    note: str = ""
    instance_deleted: bool = False
    registration_left: int | None = None
    releasing: bool = False


def _registration_id(view: RunnerView) -> int | None:
    """The registration to delete with a runner, if it may exist.

    A runner GitHub listed has its id. One GitHub did not list may still be registered when the
    listing is incomplete (`unlisted`) or was never asked for (`moved`): its id, noted on the
    instance at creation, is used. A finished or stopped runner that GitHub did not list has no
    registration left: GitHub deletes an ephemeral runner's registration after its job.
    """
    if view.github is not None:
        return view.github.id
    if view.instance is not None and (view.moved or view.state is RunnerState.UNLISTED):
        return view.instance.runner_id
    return None


class RunnerRemover:
    """Removes runners of one manager."""

    def __init__(
        self,
        lxd: InstanceClient,
        github: GitHubClient,
        *,
        github_for: Callable[[RunnerView], GitHubClient] | None = None,
        before_delete: Callable[[Removal], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        release_timeout: float = BUSY_RELEASE_TIMEOUT,
    ):
        """Create the remover.

        Args:
            lxd: the LXD client.
            github: the GitHub client of the configured path.
            github_for: the GitHub client of a runner registered on another path (`moved`).
            before_delete: called before an instance is deleted (e.g. to keep crash logs).
            sleep: the sleep function (tests pass a fake).
            monotonic: a monotonic clock for the release deadline (tests pass a fake).
            release_timeout: how long to retry deleting the registration of a runner whose
                job was killed (GitHub keeps it busy for a while).
        """
        self._lxd = lxd
        self._github = github
        self._github_for = github_for
        self._before_delete = before_delete
        self._sleep = sleep
        self._monotonic = monotonic
        self._release_timeout = release_timeout

    def _client(self, view: RunnerView) -> GitHubClient:
        if view.moved and self._github_for is not None:
            return self._github_for(view)
        return self._github

    def remove_all(self, removals: Sequence[Removal], workers: int) -> list[RemovalOutcome]:
        """Carry out removals in parallel, then wait for GitHub to release killed jobs' runners.

        Args:
            removals: what to remove.
            workers: how many removals run at the same time.

        Returns:
            One outcome per removal, in order.
        """
        outcomes = []
        for removal, outcome, exc in run_parallel(self.remove, removals, workers):
            if outcome is None:
                error = exc if isinstance(exc, RunnerManagerError) else None
                if error is None:
                    logger.exception("unexpected error removing %s", removal.name, exc_info=exc)
                    error = RunnerManagerError(f"unexpected error: {exc!r}")
                outcome = RemovalOutcome(removal, removed=False, error=error)
            outcomes.append(outcome)
        return self._release(outcomes)

    def remove(self, removal: Removal) -> RemovalOutcome:
        """Remove one runner (a registration GitHub holds busy is left `releasing`).

        Args:
            removal: what to remove and why.

        Returns:
            The outcome.
        """
        view = removal.runner
        github = self._client(view)
        runner_id = _registration_id(view)
        may_take_job = view.instance is not None and view.state in (
            RunnerState.IDLE,
            RunnerState.BOOTING,
        )
        if may_take_job and runner_id is not None:
            try:
                github.delete_runner(runner_id)
            except GitHubConflictError:
                return RemovalOutcome(removal, removed=False, note="it took a job meanwhile")
            except GitHubError as exc:
                # Keep a possibly healthy runner rather than delete its instance blindly.
                return RemovalOutcome(removal, removed=False, error=exc)
        if view.instance is not None:
            if self._before_delete is not None:
                try:
                    self._before_delete(removal)
                except Exception:
                    logger.exception("could not keep the logs of %s", view.name)
            try:
                self._lxd.delete_instance(view.name)
            except RunnerManagerError as exc:
                return RemovalOutcome(removal, removed=False, error=exc)
        deleted = view.instance is not None
        if runner_id is not None and not may_take_job:
            failed = self._delete_registration(removal, github, runner_id, deleted)
            if failed is not None:
                return failed
        logger.info("removed runner %s (%s)", view.name, removal.reason.value)
        return RemovalOutcome(removal, removed=True, instance_deleted=deleted)

    def _delete_registration(
        self, removal: Removal, github: GitHubClient, runner_id: int, deleted: bool
    ) -> RemovalOutcome | None:
        """Delete a registration once the instance is gone; the outcome if that failed."""
        busy = removal.runner.busy
        try:
            github.delete_runner(runner_id)
        except GitHubError as exc:
            if isinstance(exc, GitHubConflictError) and busy:
                if deleted and removal.reason is Reason.FLUSH:
                    # The operator cancelled its job with its instance: GitHub lets go in a
                    # while, and `remove_all` retries (releasing) for a bounded time.
                    return RemovalOutcome(
                        removal,
                        removed=False,
                        error=exc,
                        instance_deleted=True,
                        registration_left=runner_id,
                        releasing=True,
                    )
                # GitHub still counts a job that died with its instance (which is gone now, or
                # was already). A later run deletes the registration; a timer's run does not
                # wait minutes for it.
                return RemovalOutcome(
                    removal,
                    removed=False,
                    note="GitHub still counts its job; a later run deletes its registration",
                    instance_deleted=deleted,
                    registration_left=runner_id,
                )
            return RemovalOutcome(
                removal,
                removed=False,
                error=exc,
                instance_deleted=deleted,
                registration_left=runner_id,
            )
        return None

    def _release(self, outcomes: list[RemovalOutcome]) -> list[RemovalOutcome]:
        """Retry the registrations GitHub holds busy, all together, until the deadline."""
        pending = {index for index, outcome in enumerate(outcomes) if outcome.releasing}
        if not pending:
            return outcomes
        logger.info(
            "GitHub still counts the killed jobs of %d runners; retrying their registrations "
            "for up to %.0f s",
            len(pending),
            self._release_timeout,
        )
        deadline = self._monotonic() + self._release_timeout
        attempt = 0
        while pending:
            remaining = deadline - self._monotonic()
            if remaining <= 0:
                break
            self._sleep(min(_RELEASE_DELAYS[min(attempt, len(_RELEASE_DELAYS) - 1)], remaining))
            attempt += 1
            for index in sorted(pending):
                outcome = outcomes[index]
                view = outcome.removal.runner
                try:
                    self._client(view).delete_runner(outcome.registration_left or 0)
                except GitHubConflictError:
                    continue
                except GitHubError as exc:
                    outcomes[index] = dataclasses.replace(outcome, error=exc, releasing=False)
                else:
                    logger.info("removed runner %s (%s)", view.name, outcome.removal.reason.value)
                    outcomes[index] = RemovalOutcome(
                        outcome.removal, removed=True, instance_deleted=True
                    )
                pending.discard(index)
        for index in pending:
            outcome = outcomes[index]
            error = GitHubConflictError(
                f"the registration of runner {outcome.removal.name} (GitHub id "
                f"{outcome.registration_left}) is left: GitHub still counted its killed job "
                f"{self._release_timeout:.0f} s after its instance was deleted. A later "
                "reconciliation deletes it once GitHub lets go; without one, delete it in the "
                "repository or organisation settings (Actions, Runners)",
                422,
            )
            outcomes[index] = dataclasses.replace(outcome, error=error, releasing=False)
        return outcomes


class Spawner(Protocol):
    """Creates one runner (`runner.RunnerSpawner` is one)."""

    def spawn(self, instance_type: InstanceType, config_hash: str) -> SpawnResult:
        """Create, register and start one runner of a type."""
        ...  # pragma: no cover


@dataclasses.dataclass(frozen=True)
class ApplyOutcome:
    """What applying a plan did.

    Attributes:
        removals: one outcome per planned removal, in order (their errors are in them).
        created: the runners created.
        errors: what went wrong creating runners.
        timings: seconds spent removing (`remove`) and creating (`spawn`).
    """

    removals: list[RemovalOutcome]
    created: list[SpawnResult]
    errors: list[ErrorEntry]
    timings: dict[str, float]


class Applier:
    """Applies a manager's plans: the removals, then the creations."""

    def __init__(
        self,
        config: ManagerConfig,
        lxd: InstanceClient,
        remover: RunnerRemover,
        *,
        clock: Callable[[], datetime.datetime],
        monotonic: Callable[[], float] = time.monotonic,
    ):
        """Create the applier.

        Args:
            config: the configuration (concurrency, storage pool, images, state directory).
            lxd: the LXD client (asked how full the pool is).
            remover: carries out the removals.
            clock: the current time (the full-pool marker's stamp).
            monotonic: a monotonic clock for the timings.
        """
        self._config = config
        self._lxd = lxd
        self._remover = remover
        self._clock = clock
        self._monotonic = monotonic

    def apply(
        self, plan: Plan, spawner: Spawner | None, hashes: Mapping[InstanceType, str]
    ) -> ApplyOutcome:
        """Carry out a plan: its removals, then its creations.

        Args:
            plan: the plan.
            spawner: creates runners (None: there is no runner application to create them with).
            hashes: the configuration hash per instance type; a type without one has no image.

        Returns:
            What was done.
        """
        started = self._monotonic()
        removals = self.remove(plan.removals)
        removed = self._monotonic()
        wanted = [t for t, count in plan.create.items() for _ in range(count)]
        created, errors = self.create(wanted, spawner, hashes)
        timings = {
            "remove": round(removed - started, 3),
            "spawn": round(self._monotonic() - removed, 3),
        }
        return ApplyOutcome(removals, created, errors, timings)

    def remove(self, removals: Sequence[Removal]) -> list[RemovalOutcome]:
        """Carry out removals only (a flush).

        Args:
            removals: what to remove.

        Returns:
            One outcome per removal, in order.
        """
        return self._remover.remove_all(removals, self._config.timing.spawn_concurrency)

    def create(
        self,
        wanted: Sequence[InstanceType],
        spawner: Spawner | None,
        hashes: Mapping[InstanceType, str],
    ) -> tuple[list[SpawnResult], list[ErrorEntry]]:
        """Create runners: one per item of `wanted`, those whose image exists.

        Args:
            wanted: the instance type of each runner to create.
            spawner: creates runners (None: there is no runner application to create them with).
            hashes: the configuration hash per instance type; a type without one has no image.

        Returns:
            The runners created, and what went wrong.
        """
        errors: list[ErrorEntry] = []
        if not wanted:
            return [], errors
        if spawner is None:
            message = "no runner application to create runners with"
            return [], [ErrorEntry(kind=ErrorKind.RUNNER_BINARY, message=message)]
        for instance_type in sorted({t for t in wanted if t not in hashes}, key=lambda t: t.value):
            errors.append(
                ErrorEntry(kind=ErrorKind.IMAGE, message=self._missing_image(instance_type))
            )
        wanted = [t for t in wanted if t in hashes]
        if not wanted:
            return [], errors
        return self._spawn(errors, spawner, wanted, hashes), errors

    def _missing_image(self, instance_type: InstanceType) -> str:
        image = runner_image(self._config, instance_type)
        if self._config.image.build:
            return f"the LXD image {image!r} does not exist yet: it is built by build-image"
        return f"the LXD image {image!r} does not exist yet"

    def _spawn(
        self,
        errors: list[ErrorEntry],
        spawner: Spawner,
        wanted: Sequence[InstanceType],
        hashes: Mapping[InstanceType, str],
    ) -> list[SpawnResult]:
        fatal: list[GitHubError] = []
        full: list[BaseException] = []
        # After the pool ran out of space, one at a time: parallel creations in a nearly full
        # pool race for the last space, and all of them can lose.
        cautious = self._space_marker().exists()

        def spawn_one(instance_type: InstanceType) -> SpawnResult | None:
            if fatal or full:
                # GitHub refuses us, or the pool is full: do not go on with the rest
                return None
            try:
                return spawner.spawn(instance_type, hashes[instance_type])
            except _FATAL_GITHUB_ERRORS as exc:
                fatal.append(exc)
                raise
            except RunnerManagerError as exc:
                if _storage_full(exc):
                    full.append(exc)
                raise

        concurrency = 1 if cautious else self._config.timing.spawn_concurrency
        created, not_made = _collect_spawns(errors, run_parallel(spawn_one, wanted, concurrency))
        if full and not fatal and not cautious:
            # The failed creations have been cleaned up: make what fits, one at a time, until
            # the pool is full again.
            created += _spawn_one_at_a_time(errors, spawner, not_made, hashes)
        if full:
            errors.append(
                ErrorEntry(
                    kind=ErrorKind.RUNNER_CREATE, message=self._pool_full(full[0], created, wanted)
                )
            )
            self._mark_space_limited(True)
        elif cautious and len(created) == len(wanted):
            self._mark_space_limited(False)  # everything fitted: back to parallel creation
        return created

    def _space_marker(self) -> Path:
        return self._config.state_dir / "storage-full"

    def _mark_space_limited(self, limited: bool) -> None:
        """Remember (in the state directory) that the pool was full, for the next runs."""
        marker = self._space_marker()
        try:
            if limited:
                marker.write_text(self._clock().isoformat() + "\n", encoding="utf-8")
            else:
                marker.unlink(missing_ok=True)
        except OSError as exc:
            logger.warning("cannot update %s: %s", marker, exc)

    def _pool_full(
        self, first: BaseException, created: Sequence[SpawnResult], wanted: Sequence[InstanceType]
    ) -> str:
        """One message for every creation that found the storage pool full."""
        pool = self._config.lxd.storage_pool
        usage = None
        with contextlib.suppress(Exception):  # a courtesy: never let it hide the real error
            usage = self._lxd.storage_pool_usage(pool)
        how_full = ""
        if usage is not None and usage[1] > 0:
            used, total = usage
            how_full = f" ({_gib(used)} of {_gib(total)} used, {100 * used / total:.0f}%)"
        return (
            f"the LXD storage pool {pool!r} is full{how_full}: created {len(created)} of the "
            f"{len(wanted)} runners wanted; the other {len(wanted) - len(created)} are created "
            "once there is room (free space in the pool, give it more, or lower the runner "
            f"count or the disk size). LXD said: {first}"
        )


def _spawn_one_at_a_time(
    errors: list[ErrorEntry],
    spawner: Spawner,
    wanted: Sequence[InstanceType],
    hashes: Mapping[InstanceType, str],
) -> list[SpawnResult]:
    """Create runners one after the other; stop when the pool is full or GitHub says no."""
    created = []
    for instance_type in wanted:
        try:
            created.append(spawner.spawn(instance_type, hashes[instance_type]))
        except Exception as exc:
            if _storage_full(exc):
                break
            if not isinstance(exc, RunnerManagerError):
                logger.error("unexpected error creating a runner", exc_info=exc)
                errors.append(ErrorEntry(kind=ErrorKind.UNEXPECTED, message=repr(exc)))
                break
            errors.append(ErrorEntry(kind=exc.kind, message=str(exc)))
            if isinstance(exc, _FATAL_GITHUB_ERRORS):
                break
    return created


def _collect_spawns(
    errors: list[ErrorEntry],
    results: Sequence[tuple[InstanceType, SpawnResult | None, BaseException | None]],
) -> tuple[list[SpawnResult], list[InstanceType]]:
    """Sort a batch's outcomes: runners made, errors reported, types not made for lack of space.

    A space failure is not reported here: the caller reports the full pool once.
    """
    created: list[SpawnResult] = []
    not_made: list[InstanceType] = []
    errors_seen: set[str] = set()
    for instance_type, result, exc in results:
        if result is not None:
            created.append(result)
        elif exc is None or _storage_full(exc):
            not_made.append(instance_type)  # skipped, or lost the race for space
        else:
            kind = exc.kind if isinstance(exc, RunnerManagerError) else ErrorKind.UNEXPECTED
            message = str(exc) if isinstance(exc, RunnerManagerError) else repr(exc)
            if isinstance(exc, _FATAL_GITHUB_ERRORS) and message in errors_seen:
                continue  # one token error is enough, not one per runner
            errors_seen.add(message)
            if not isinstance(exc, RunnerManagerError):
                logger.error("unexpected error creating a runner", exc_info=exc)
            errors.append(ErrorEntry(kind=kind, message=message))
    return created, not_made


def _storage_full(exc: BaseException) -> bool:
    """Whether an error (or one it was raised from) says LXD ran out of space."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, StorageFullError):
            return True
        seen = seen.__cause__
    return False


def _gib(size: int) -> str:
    return f"{size / 1024**3:.1f}GiB"
