# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""The report of a manager run, written atomically as JSON for the charm to read.

A report never holds the token, a registration token or a JIT configuration.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import pydantic

from .utils import atomic_write

REPORT_VERSION = 1


class RunnerEntry(pydantic.BaseModel):
    """One runner in a report.

    Attributes:
        name: the runner name.
        instance_type: `container`, `virtual-machine`, or None for a GitHub-only runner.
        state: the classified state (idle, busy, booting, unhealthy, stopped, github-only).
        github_id: GitHub's runner id, if registered.
        online: whether GitHub sees it online.
        busy: whether it runs a job.
        created_at: when its instance was created.
        stale: whether it was created with another configuration.
    """

    name: str
    instance_type: str | None
    state: str
    github_id: int | None = None
    online: bool = False
    busy: bool = False
    created_at: datetime.datetime | None = None
    stale: bool = False


class RemovedEntry(pydantic.BaseModel):
    """A removed runner.

    Attributes:
        name: the runner name.
        reason: the planner rule that removed it.
        instance_type: `container`, `virtual-machine`, or None for a GitHub-only runner.
    """

    name: str
    reason: str
    instance_type: str | None = None


class ErrorEntry(pydantic.BaseModel):
    """An error of the run.

    Attributes:
        kind: a stable short name (`token`, `permission`, `path`, `rate-limit`, `lxd`, ...).
        message: what went wrong, safe to show an operator.
        runner: the runner concerned, if any.
    """

    kind: str
    message: str
    runner: str | None = None


class Report(pydantic.BaseModel):
    """What a manager run saw and did.

    Attributes:
        version: the report format version.
        command: `reconcile`, `flush` or `check`.
        unit: the unit identity.
        started_at: when the run started.
        finished_at: when it finished.
        duration: seconds.
        ok: whether the run met no error.
        desired: runners to keep per instance type.
        counts: runners per instance type and state, after the run's changes.
        runners: the runners as observed at the start of the run.
        created: the runners created.
        removed: the runners removed.
        delta: per instance type, runners created minus runners removed.
        errors: what went wrong.
        crashed: runners that died (unhealthy, or lost during their job).
        quarantined: runners whose exchange data was corrupt, and kept aside.
        runner_version: the runner application version in use.
        latest_runner_version: the newest runner version GitHub offers (the last one listed).
        runner_versions: runner instances per runner version after the run (`unknown`: created
            before the manager recorded versions).
        outdated_runners: runner instances on a version older than the newest offered (None:
            the run did not count them).
        newer_version_since: when the manager first saw a runner version newer than the oldest
            one still running (unix seconds); None when no runner is outdated.
        rate_limit_remaining: GitHub calls left in the rate-limit window, if known.
        rate_limit_reset_at: when the window resets (epoch seconds), if known.
        github_calls: HTTP requests sent to GitHub in this run.
        github_not_modified: of those, how many GitHub answered with 304.
        timings: seconds per phase, and per created runner per stage.
    """

    version: int = REPORT_VERSION
    command: str
    unit: str
    started_at: datetime.datetime
    finished_at: datetime.datetime | None = None
    duration: float = 0.0
    ok: bool = True
    desired: dict[str, int] = {}
    counts: dict[str, dict[str, int]] = {}
    runners: list[RunnerEntry] = []
    created: list[str] = []
    removed: list[RemovedEntry] = []
    delta: dict[str, int] = {}
    errors: list[ErrorEntry] = []
    crashed: list[str] = []
    quarantined: list[str] = []
    runner_version: str | None = None
    latest_runner_version: str | None = None
    runner_versions: dict[str, int] = {}
    outdated_runners: int | None = None
    newer_version_since: float | None = None
    rate_limit_remaining: int | None = None
    rate_limit_reset_at: float | None = None
    github_calls: int = 0
    github_not_modified: int = 0
    timings: dict[str, Any] = {}

    def error_kinds(self) -> set[str]:
        """The kinds of the run's errors.

        Returns:
            The set of kinds.
        """
        return {error.kind for error in self.errors}

    def write(self, path: Path) -> None:
        """Write the report atomically (readers never see half a report).

        Args:
            path: the destination.
        """
        atomic_write(path, self.model_dump_json(indent=2).encode(), mode=0o644)


def read_report(path: Path) -> Report | None:
    """Read a report written by `Report.write`.

    Args:
        path: the report file.

    Returns:
        The report, or None when the file is missing or unreadable.
    """
    try:
        return Report.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return None
