# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""Metric events: one JSON object per line in the metrics log, shipped to Loki by COS.

Every event has `event` (its snake_case name) and `timestamp` (unix seconds, float). Fields that
are unknown are left out of the line rather than written as null.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Literal

import pydantic

from .errors import ErrorKind, RunnerManagerError

logger = logging.getLogger(__name__)


class MetricsError(RunnerManagerError):
    """A metric event could not be written."""

    kind = ErrorKind.METRICS


class Event(pydantic.BaseModel):
    """Fields every metric event has.

    Attributes:
        event: the event name.
        timestamp: when it happened (unix seconds).
        flavor: the runner flavor (the application name).
    """

    model_config = pydantic.ConfigDict(frozen=True)

    event: str
    timestamp: float
    flavor: str


class SpawnStages(pydantic.BaseModel):
    """Seconds spent in each stage of bringing a runner up.

    Attributes:
        register: getting the JIT configuration or registration token from GitHub.
        create: creating the LXD instance.
        push: writing the runner application and scripts into it.
        start: starting it.
        adopt: handing its configuration to a standby (instead of create, push and start).
        boot: from started (or adopted) until its runner service ran.
        online: from the runner service start until the runner listened for jobs.
    """

    # `register` would shadow ABCMeta.register on the model class, hence the alias.
    model_config = pydantic.ConfigDict(populate_by_name=True, frozen=True)

    register_: float | None = pydantic.Field(None, alias="register")
    create: float | None = None
    push: float | None = None
    start: float | None = None
    adopt: float | None = None
    boot: float | None = None
    online: float | None = None


class RunnerInstalled(Event):
    """A runner came up (or, if it never reported online, finished its creation).

    Attributes:
        runner: the runner name.
        instance_type: `container` or `virtual-machine`.
        duration: seconds from the start of its creation until it listened for jobs (or until
            its creation ended, when it never reported).
        stages: seconds per stage.
    """

    event: Literal["runner_installed"] = "runner_installed"
    runner: str
    instance_type: str
    duration: float
    stages: SpawnStages


class RunnerStart(Event):
    """A runner started a job.

    Attributes:
        runner: the runner name.
        workflow: the workflow name.
        repo: `owner/repo` of the job.
        github_event: the event that triggered the workflow.
        idle: seconds the runner waited for the job, from coming online.
        queue_duration: seconds the job waited for a runner (GitHub's started_at - created_at).
    """

    event: Literal["runner_start"] = "runner_start"
    runner: str
    workflow: str
    repo: str
    github_event: str
    idle: float
    queue_duration: float | None = None


class RunnerStop(Event):
    """A runner finished (or lost) its job.

    Attributes:
        runner: the runner name.
        workflow: the workflow name.
        repo: `owner/repo` of the job.
        github_event: the event that triggered the workflow.
        status: `normal` (the runner exited cleanly), `abnormal` (non-zero exit) or `crashed`
            (no post-job data: the runner died during the job).
        status_info: details, such as the exit code.
        job_duration: seconds from the job's start to its end.
        job_conclusion: GitHub's conclusion (success, failure, cancelled...).
    """

    event: Literal["runner_stop"] = "runner_stop"
    runner: str
    workflow: str
    repo: str
    github_event: str
    status: Literal["normal", "abnormal", "crashed"]
    status_info: dict[str, int | str] | None = None
    job_duration: float | None = None
    job_conclusion: str | None = None


class Reconciliation(Event):
    """A reconciliation ended.

    Attributes:
        crashed_runners: runners that died (unhealthy, or started a job without finishing it).
        idle_runners: idle runners after the reconciliation.
        busy_runners: busy runners.
        expected_runners: the configured total.
        created: runners created.
        removed: runners removed.
        duration: seconds the reconciliation took.
        rate_limit_remaining: GitHub calls left in the rate-limit window, if known.
        errors: how many errors the run met.
        runner_version: the runner application version in use.
    """

    event: Literal["reconciliation"] = "reconciliation"
    crashed_runners: int
    idle_runners: int
    busy_runners: int
    expected_runners: int
    created: int
    removed: int
    duration: float
    rate_limit_remaining: int | None = None
    errors: int = 0
    runner_version: str | None = None


class MetricsLog:
    """Appends metric events to the metrics log, one JSON line each."""

    def __init__(self, path: Path, enabled: bool = True):
        """Create the writer.

        Args:
            path: the log file (`/var/log/github-runner-metrics.log`).
            enabled: whether events are written at all (only when COS is related).
        """
        self.path = path
        self.enabled = enabled

    def issue(self, event: Event) -> None:
        """Write one event; failures are logged, never raised (metrics never stop a run).

        Args:
            event: the event.
        """
        if not self.enabled:
            return
        line = event.model_dump_json(exclude_none=True, by_alias=True) + "\n"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # One write of one line with O_APPEND: concurrent writers never interleave lines.
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line.encode())
            finally:
                os.close(fd)
        except OSError as exc:
            logger.error("cannot write the metric event %s: %s", event.event, exc)
