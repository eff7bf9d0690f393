# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""Carrying out removals: deleting GitHub registrations and LXD instances in a safe order.

A runner that may still take a job (idle or booting) is first deleted on GitHub: GitHub refuses
(422) when the runner has just taken a job, and then the instance is left alone. A runner that is
dead (stopped, unhealthy) or that the operator flushes while busy loses its instance first, then
its registration.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence

from .errors import GitHubConflictError, GitHubError, RunnerManagerError
from .github import GitHubClient
from .lxd import LxdClient
from .models import RunnerState
from .planner import Removal
from .utils import run_parallel

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class RemovalOutcome:
    """What happened to one removal.

    Attributes:
        removal: the planned removal.
        removed: whether the runner is gone (instance and, where possible, registration).
        error: the error that stopped it, if any.
        note: why it was skipped, when it was skipped without an error.
    """

    removal: Removal
    removed: bool
    error: RunnerManagerError | None = None
    note: str = ""


class RunnerRemover:
    """Removes runners of one manager."""

    def __init__(
        self,
        lxd: LxdClient,
        github: GitHubClient,
        *,
        before_delete: Callable[[Removal], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        busy_retry_delays: Sequence[float] = (2.0, 4.0, 8.0),
    ):
        """Create the remover.

        Args:
            lxd: the LXD client.
            github: the GitHub client.
            before_delete: called before an instance is deleted (e.g. to keep crash logs).
            sleep: the sleep function (tests pass a fake).
            busy_retry_delays: waits between attempts to delete the registration of a runner
                whose job was just killed (GitHub keeps it busy for a moment).
        """
        self._lxd = lxd
        self._github = github
        self._before_delete = before_delete
        self._sleep = sleep
        self._busy_retry_delays = tuple(busy_retry_delays)

    def remove_all(self, removals: Sequence[Removal], workers: int) -> list[RemovalOutcome]:
        """Carry out removals in parallel.

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
        return outcomes

    def remove(self, removal: Removal) -> RemovalOutcome:
        """Remove one runner.

        Args:
            removal: what to remove and why.

        Returns:
            The outcome.
        """
        view = removal.runner
        may_take_job = view.instance is not None and view.state in (
            RunnerState.IDLE,
            RunnerState.BOOTING,
        )
        if may_take_job and view.github is not None:
            try:
                self._github.delete_runner(view.github.id)
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
        if view.github is not None and not may_take_job:
            error = self._delete_registration(view.github.id, killed_job=view.busy)
            if error is not None:
                return RemovalOutcome(removal, removed=view.instance is not None, error=error)
        logger.info("removed runner %s (%s)", view.name, removal.reason.value)
        return RemovalOutcome(removal, removed=True)

    def _delete_registration(self, runner_id: int, killed_job: bool) -> GitHubError | None:
        delays = self._busy_retry_delays if killed_job else ()
        for attempt in range(len(delays) + 1):
            try:
                self._github.delete_runner(runner_id)
                return None
            except GitHubConflictError as exc:
                # GitHub still counts the killed job; it lets go within moments.
                if attempt == len(delays):
                    return exc
                self._sleep(delays[attempt])
            except GitHubError as exc:
                return exc
        return None  # pragma: no cover - the loop always returns
