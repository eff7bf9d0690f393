# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""Turning a runner's host data into metric events, once, after the fact."""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable

from .errors import GitHubError
from .exchange import RunnerData
from .github import JobInfo
from .metrics import Event, RunnerInstalled, RunnerStart, RunnerStop, SpawnStages

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
    known = {"register", "create", "push", "start"}
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
