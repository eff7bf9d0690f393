# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""Turning a runner's host data into metric events, once, after the fact.

`RunnerBookkeeping` goes through the runners' host data after a run: a live runner gets its
runner_installed event once it is online; a finished one gets its job events, its logs are kept
with its job's labels, and its host data is deleted. `reconciliation_event` sums a run up.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import re
from collections.abc import Callable, Collection

from .errors import GitHubError
from .exchange import CorruptDataError, RunnerData, RunnerExchange
from .github import JobInfo
from .job_logs import JobLabels, JobLogs
from .metrics import (
    Event,
    MetricsLog,
    Reconciliation,
    RunnerInstalled,
    RunnerStart,
    RunnerStop,
    SpawnStages,
)
from .models import RunnerState
from .report import Report

logger = logging.getLogger(__name__)

JobLookup = Callable[[str, int, str], "JobInfo | None"]


def _parse_time(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def installed_event(data: RunnerData, flavor: str) -> RunnerInstalled | None:
    """The runner_installed event of a runner, with every stage known so far.

    Args:
        data: the runner's data.
        flavor: the runner flavor.

    Returns:
        The event, or None without the manager's creation record.
    """
    installed = data.installed
    if installed is None:
        return None
    known = {"register", "create", "push", "start", "adopt"}
    stages = SpawnStages.model_validate({k: v for k, v in installed.stages.items() if k in known})
    end = installed.finished
    booting_from = installed.start_requested or installed.finished
    if data.boot is not None and data.boot >= booting_from:
        stages = stages.model_copy(update={"boot": round(data.boot - booting_from, 3)})
        end = max(end, data.boot)
        if data.online is not None and data.online >= data.boot:
            stages = stages.model_copy(update={"online": round(data.online - data.boot, 3)})
            end = max(end, data.online)
    return RunnerInstalled(
        timestamp=end,
        flavor=flavor,
        runner=data.name,
        instance_type=installed.instance_type,
        duration=round(end - installed.started, 3),
        stages=stages,
    )


def failed_at_start_up(data: RunnerData) -> bool:
    """Whether a runner's listener failed before it ever listened for jobs.

    Too old a version (GitHub refuses it), a missing library, a bad JIT configuration: the
    listener exits with an error code before it goes online, and no job event would tell. A
    runner that was online and then stopped (its registration deleted by a flush, say) is not
    counted here.

    Args:
        data: the runner's data.

    Returns:
        True when the runner exited abnormally without ever coming online or taking a job.
    """
    post = data.post_job
    return (
        post is not None
        and post.status != "normal"
        and data.online is None
        and data.pre_job is None
    )


def killed(data: RunnerData) -> bool:
    """Whether a runner's listener was killed by a signal (its exit code is 128 + the signal).

    The start script then hands over the runner's logs and powers the instance off, and LXD
    deletes it: only the exit report tells that the runner crashed.

    Args:
        data: the runner's data.

    Returns:
        True when the listener died of a signal.
    """
    return data.post_job is not None and data.post_job.exit_code >= 128


def job_events(data: RunnerData, flavor: str, lookup: JobLookup | None) -> list[Event]:
    """The runner_start and runner_stop events of a finished runner that took a job.

    Args:
        data: the runner's data.
        flavor: the runner flavor.
        lookup: finds the job on GitHub (queue time, conclusion); None skips it.

    Returns:
        The events (none when the runner never took a job).
    """
    pre = data.pre_job
    if pre is None:
        return []
    job: JobInfo | None = None
    if lookup is not None and pre.workflow_run_id:
        try:
            job = lookup(pre.repository, pre.workflow_run_id, data.name)
        except GitHubError as exc:
            logger.warning("cannot look up the job of runner %s: %s", data.name, exc)
    queue_duration = None
    if job is not None:
        created, started = _parse_time(job.created_at), _parse_time(job.started_at)
        if created is not None and started is not None:
            queue_duration = round(max(started - created, 0.0), 3)
    ready = data.online or (data.installed.finished if data.installed else None)
    start = RunnerStart(
        timestamp=pre.timestamp,
        flavor=flavor,
        runner=data.name,
        workflow=pre.workflow,
        repo=pre.repository,
        github_event=pre.event,
        idle=round(max(pre.timestamp - ready, 0.0), 3) if ready else 0.0,
        queue_duration=queue_duration,
    )
    post = data.post_job
    stop = RunnerStop(
        timestamp=post.timestamp if post else pre.timestamp,
        flavor=flavor,
        runner=data.name,
        workflow=pre.workflow,
        repo=pre.repository,
        github_event=pre.event,
        status=post.status if post else "crashed",
        status_info={"code": post.exit_code} if post and post.status != "normal" else None,
        job_duration=round(max(post.timestamp - pre.timestamp, 0.0), 3) if post else None,
        job_conclusion=job.conclusion if job is not None else None,
    )
    return [start, stop]


# How a finished runner's exit report tells it crashed, though no job event says so.
_CRASH_SIGNS: tuple[tuple[Callable[[RunnerData], bool], str], ...] = (
    (killed, "the listener of runner %s was killed (exit code %s)"),
    (failed_at_start_up, "runner %s failed before it came online; its listener exited with %s"),
)


@dataclasses.dataclass(frozen=True)
class Bookkeeping:
    """What going through the runners' host data found.

    Attributes:
        crashed: the runners that crashed (sorted).
        quarantined: the runners whose data was corrupt and was set aside.
    """

    crashed: list[str]
    quarantined: list[str]


class RunnerBookkeeping:
    """Issues the metric events of the runners' host data, and cleans up finished runners."""

    def __init__(
        self,
        exchange: RunnerExchange,
        job_logs: JobLogs,
        metrics: MetricsLog,
        *,
        name_pattern: re.Pattern[str],
        flavor: str,
        lookup: JobLookup | None,
    ):
        """Create the bookkeeping.

        Args:
            exchange: the runners' host directories.
            job_logs: keeps the finished runners' logs.
            metrics: the metrics log events are issued to.
            name_pattern: the names of the manager's runners.
            flavor: the runner flavor.
            lookup: finds a runner's job on GitHub; None (metrics off) skips it.
        """
        self._exchange = exchange
        self._job_logs = job_logs
        self._metrics = metrics
        self._name_pattern = name_pattern
        self._flavor = flavor
        self._lookup = lookup

    def issue(self, event: Event | None) -> None:
        """Issue a metric event (None: nothing to issue).

        Args:
            event: the event.
        """
        if event is not None:
            self._metrics.issue(event)

    def process(self, live: Collection[str], crashed: Collection[str]) -> Bookkeeping:
        """Go through the host data of every runner of the manager.

        A runner still alive only gets its runner_installed event (once it is online); a
        finished one (its instance gone) gets its job events, then its host data is deleted.

        Args:
            live: the runners whose instances remain.
            crashed: the runners already known to have crashed (removed as unhealthy).

        Returns:
            The crashed and the quarantined runners.
        """
        found = set(crashed)
        quarantined = []
        for runner in self._exchange.runners():
            if not self._name_pattern.match(runner):
                continue
            try:
                data = self._exchange.read(runner)
            except CorruptDataError as exc:
                logger.warning("runner %s reported corrupt data (%s); quarantined", runner, exc)
                self._exchange.quarantine(runner)
                quarantined.append(runner)
                continue
            if runner in live:
                if data.online is not None and not data.installed_reported:
                    self.issue(installed_event(data, self._flavor))
                    self._exchange.mark_installed_reported(runner)
            elif self._finish(data, runner in found):
                found.add(runner)
        return Bookkeeping(crashed=sorted(found), quarantined=quarantined)

    def _finish(self, data: RunnerData, crashed: bool) -> bool:
        """Issue a finished runner's events, keep its logs, delete its data; whether it crashed."""
        if not data.installed_reported:
            self.issue(installed_event(data, self._flavor))
        jobs: list[JobInfo | None] = []
        lookup = _remembering(self._lookup, jobs) if self._lookup is not None else None
        for event in job_events(data, self._flavor, lookup):
            self.issue(event)
            crashed |= isinstance(event, RunnerStop) and event.status == "crashed"
        exit_code = data.post_job.exit_code if data.post_job else None
        for sign, message in _CRASH_SIGNS:
            if sign(data):
                logger.warning(message, data.name, exit_code)
                crashed = True
        self._keep_job_logs(data, jobs[0] if jobs else None, crashed)
        self._exchange.delete(data.name)
        return crashed

    def _keep_job_logs(self, data: RunnerData, job: JobInfo | None, crashed: bool) -> None:
        """Keep the runner logs a finished runner handed over, labelled with its job."""
        pre, post = data.pre_job, data.post_job
        if crashed:
            conclusion = "crashed"
        elif job is not None and job.conclusion:
            conclusion = job.conclusion
        elif post is not None:
            conclusion = "no-job" if pre is None else post.status
        else:
            conclusion = "unknown"
        labels = JobLabels(
            runner=data.name,
            instance_type=data.installed.instance_type if data.installed else None,
            flavor=self._flavor,
            repository=pre.repository if pre else None,
            workflow=pre.workflow if pre else None,
            job_id=job.id if job is not None else None,
            run_id=pre.workflow_run_id if pre else None,
            conclusion=conclusion,
        )
        try:
            self._job_logs.store(self._exchange.log_file(data.name), labels)
        except OSError as exc:
            logger.error("cannot keep the runner logs of %s: %s", data.name, exc)


def _remembering(lookup: JobLookup, found: list[JobInfo | None]) -> JobLookup:
    """A job lookup that also keeps what it found."""

    def _lookup(repository: str, run_id: int, runner: str) -> JobInfo | None:
        job = lookup(repository, run_id, runner)
        found.append(job)
        return job

    return _lookup


def reconciliation_event(
    report: Report, flavor: str, now: Callable[[], datetime.datetime]
) -> Reconciliation:
    """The reconciliation event summing up a run's report.

    Args:
        report: the run's report.
        flavor: the runner flavor.
        now: the current time, for a report that has no finishing time.

    Returns:
        The event.
    """

    def total(state: str) -> int:
        return sum(counts.get(state, 0) for counts in report.counts.values())

    return Reconciliation(
        timestamp=(report.finished_at or now()).timestamp(),
        flavor=flavor,
        crashed_runners=len(report.crashed),
        idle_runners=total(RunnerState.IDLE.value),
        busy_runners=total(RunnerState.BUSY.value),
        expected_runners=sum(report.desired.values()),
        created=len(report.created),
        removed=len(report.removed),
        duration=report.duration,
        rate_limit_remaining=report.rate_limit_remaining,
        errors=len(report.errors),
        runner_version=report.runner_version,
    )
