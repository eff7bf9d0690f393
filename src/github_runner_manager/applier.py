# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""Carrying out removals: deleting GitHub registrations and LXD instances in a safe order.

A runner that may still take a job (idle or booting) is first deleted on GitHub: GitHub refuses
(422) when the runner has just taken a job, and then the instance is left alone. A runner that is
dead (stopped, unhealthy) or that the operator flushes while busy loses its instance first, then
its registration.

GitHub refuses to delete the registration of a runner whose job was just killed for as long as
it counts the job as running: minutes, until it notices the runner lost its connection. Those
registrations are retried together, for a bounded time, once every removal has run; one that
GitHub still holds at the end is reported with its id, and the runner is not reported removed.

A runner registered on another path than the configured one (the option changed) is deleted
there, with the client `github_for` gives for it.
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
from .planner import Reason, Removal, RunnerView
from .utils import run_parallel

logger = logging.getLogger(__name__)

# How long to keep asking GitHub to delete the registration of a runner whose job was killed.
# GitHub lets go once it notices the runner lost its connection, which can take minutes.
BUSY_RELEASE_TIMEOUT = 600.0
# Waits between those attempts (the last one repeats).
_RELEASE_DELAYS = (2.0, 4.0, 8.0, 15.0)


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
        lxd: LxdClient,
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
