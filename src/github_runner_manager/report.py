# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""The report of a manager run, written atomically as JSON for the charm to read.

A report never holds the token, a registration token or a JIT configuration. Its fields use the
manager's enums (`RunnerState`, `InstanceType`, `Reason`, `ErrorKind`), so the charm reads the
same types the manager wrote.

Across an upgrade the charm may read a report the previous version wrote: a version 1 report
kept `runner_updated`, `image_updated` and `image_build` among its timings, and the created
runners' stage timings under `timings["runners"]`; it loads with them moved to their fields. A
report that does not validate (a newer kind, a damaged file) reads as no report: the charm then
waits for the next run, which writes a report of its own.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import pydantic

from .errors import ErrorKind
from .models import InstanceType, RunnerState
from .planner import Reason
from .utils import atomic_write

REPORT_VERSION = 2
# Keys a version 1 report kept among its timings, although they are not durations.
_V1_TIMINGS_FIELDS = ("runner_updated", "image_updated")
_V1_IMAGE_BUILD_RUNNING = "already running"


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
    instance_type: InstanceType | None
    state: RunnerState
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
    reason: Reason
    instance_type: InstanceType | None = None


class ErrorEntry(pydantic.BaseModel):
    """An error of the run.

    Attributes:
        kind: what kind of error it is (its row in `errors.KINDS`).
        message: what went wrong, safe to show an operator.
        runner: the runner concerned, if any.
    """

    kind: ErrorKind
    message: str
    runner: str | None = None


class Report(pydantic.BaseModel):
    """What a manager run saw and did.

    Attributes:
        version: the report format version.
        command: `reconcile`, `flush`, `update-dependencies` or `replenish`.
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
        runner_updated: whether the run downloaded a new runner application.
        image_updated: whether the run built a new runner image (None: it did not build one).
        image_build_running: whether the run left the image to a build already running.
        timings: seconds per phase (`observe`, `runner_binary`, `plan`, `remove`, `spawn`, ...).
        runner_timings: per created runner, seconds per stage.
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
    runner_updated: bool = False
    image_updated: bool | None = None
    image_build_running: bool = False
    timings: dict[str, float] = {}
    runner_timings: dict[str, dict[str, float]] = {}

    @pydantic.model_validator(mode="before")
    @classmethod
    def _upgrade(cls, data: Any) -> Any:
        """Load a version 1 report: move what is not a duration out of its timings."""
        if not isinstance(data, dict) or data.get("version", 1) >= REPORT_VERSION:
            return data
        timings = dict(data.get("timings") or {})
        upgraded = {**data, "version": REPORT_VERSION}
        for key in _V1_TIMINGS_FIELDS:
            if key in timings:
                upgraded[key] = timings.pop(key)
        if timings.pop("image_build", None) == _V1_IMAGE_BUILD_RUNNING:
            upgraded["image_build_running"] = True
        if "runners" in timings:
            upgraded["runner_timings"] = timings.pop("runners")
        upgraded["timings"] = timings
        return upgraded

    def add_runner_timings(self, runners: dict[str, dict[str, float]]) -> None:
        """Add the seconds per stage of created runners.

        Args:
            runners: per runner name, seconds per stage.
        """
        self.runner_timings.update(runners)

    def error_kinds(self) -> set[ErrorKind]:
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


class CheckResult(pydantic.BaseModel):
    """What `check` found: the unit's runners by GitHub state, without changing anything.

    Attributes:
        online: runners GitHub sees online.
        offline: runners registered but offline.
        busy: online runners running a job.
        idle: online runners waiting for a job.
        unknown: runner instances GitHub does not know.
        runners: the runners' names per state (`online`, `offline`, `busy`, `idle`, `unknown`).
        by_type: runners per instance type (`github-only` for registrations without an
            instance) and classified state.
        desired: runners to keep per instance type.
        rate_limit_remaining: GitHub calls left in the rate-limit window, if known.
        runner_version: the runner application version in use, if one was downloaded.
    """

    online: int = 0
    offline: int = 0
    busy: int = 0
    idle: int = 0
    unknown: int = 0
    runners: dict[str, list[str]] = {}
    by_type: dict[str, dict[str, int]] = {}
    desired: dict[str, int] = {}
    rate_limit_remaining: int | None = None
    runner_version: str | None = None
