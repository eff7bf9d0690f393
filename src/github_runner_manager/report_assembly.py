# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""Assembling a run's report from what the run saw and did: pure functions, no I/O.

The manager observes, plans and applies; these functions note the outcome in its `Report`: the
runners as classified, what the applier removed and created, the errors, the counts per type and
state once the changes are made, and which runners remain for the bookkeeping and the version
count. `check_result` sums the runners up for `check`.
"""

from __future__ import annotations

import collections
import datetime
import logging
from collections.abc import Sequence

from .applier import ApplyOutcome, RemovalOutcome
from .config import ManagerConfig
from .errors import ErrorKind, RunnerManagerError
from .models import InstanceType, RunnerState
from .planner import RunnerView
from .report import CheckResult, ErrorEntry, RemovedEntry, Report, RunnerEntry
from .runner import SpawnResult

logger = logging.getLogger(__name__)


def new_report(command: str, config: ManagerConfig, started_at: datetime.datetime) -> Report:
    """Start the report of a run: the desired counts, and no change yet.

    Args:
        command: the command run (`reconcile`, `flush`...).
        config: the manager's configuration.
        started_at: when the run started.

    Returns:
        The report.
    """
    return Report(
        command=command,
        unit=config.unit,
        started_at=started_at,
        desired={t.value: config.runners.count(t) for t in InstanceType},
        delta={t.value: 0 for t in InstanceType},
    )


def record_error(report: Report, exc: BaseException) -> None:
    """Note an error that stopped (part of) the run: its kind, or `unexpected`.

    Args:
        report: the report.
        exc: the error; a `RunnerManagerError` keeps its kind and message, anything else is
            unexpected and noted by its representation.
    """
    if isinstance(exc, RunnerManagerError):
        report.errors.append(ErrorEntry(kind=exc.kind, message=str(exc)))
    else:
        report.errors.append(ErrorEntry(kind=ErrorKind.UNEXPECTED, message=repr(exc)))


def finish(
    report: Report,
    finished_at: datetime.datetime,
    duration: float,
    github_calls: tuple[int, int],
) -> None:
    """Close the report: when and how long, whether it met no error, what it asked GitHub.

    Args:
        report: the report.
        finished_at: when the run finished.
        duration: seconds the run took.
        github_calls: the HTTP requests sent to GitHub during the run, and how many of them
            GitHub answered with 304.
    """
    report.finished_at = finished_at
    report.duration = round(duration, 3)
    report.ok = not report.errors
    report.github_calls, report.github_not_modified = github_calls


def runner_entry(view: RunnerView) -> RunnerEntry:
    """One classified runner, as the report lists it.

    Args:
        view: the runner as classified.

    Returns:
        Its entry.
    """
    return RunnerEntry(
        name=view.name,
        instance_type=view.instance_type.value if view.instance_type else None,
        state=view.state.value,
        github_id=view.github.id if view.github else None,
        online=bool(view.github and view.github.online),
        busy=view.busy,
        created_at=view.instance.created_at if view.instance else None,
        stale=view.stale,
    )


def record_removals(report: Report, outcomes: Sequence[RemovalOutcome]) -> None:
    """Note the removals: the runners removed, the delta per type, the errors.

    A removal skipped without an error (a busy runner left to finish its job) is logged.

    Args:
        report: the report.
        outcomes: one outcome per planned removal.
    """
    for outcome in outcomes:
        instance_type = outcome.removal.runner.instance_type
        if (outcome.removed or outcome.instance_deleted) and instance_type is not None:
            report.delta[instance_type.value] -= 1
        if outcome.removed:
            report.removed.append(
                RemovedEntry(
                    name=outcome.removal.name,
                    reason=outcome.removal.reason.value,
                    instance_type=instance_type.value if instance_type else None,
                )
            )
        if outcome.error is not None:
            report.errors.append(
                ErrorEntry(
                    kind=outcome.error.kind,
                    message=str(outcome.error),
                    runner=outcome.removal.name,
                )
            )
        elif outcome.note:
            logger.info("kept runner %s: %s", outcome.removal.name, outcome.note)


def record_created(report: Report, created: Sequence[SpawnResult]) -> None:
    """Note the runners created, their stage timings and the delta per type.

    Args:
        report: the report.
        created: the runners created.
    """
    report.created.extend(result.name for result in created)
    for result in created:
        report.delta[result.instance_type.value] += 1
    report.add_runner_timings({result.name: dict(result.timings) for result in created})


def record_outcome(report: Report, outcome: ApplyOutcome) -> None:
    """Note what applying the plan did: removals, creations, errors and times.

    Args:
        report: the report.
        outcome: what the applier did.
    """
    record_removals(report, outcome.removals)
    report.errors.extend(outcome.errors)
    report.timings.update(outcome.timings)
    record_created(report, outcome.created)


def _gone(outcomes: Sequence[RemovalOutcome]) -> set[str]:
    """The runners whose instance is gone (removed, or deleted with its registration left)."""
    return {o.removal.name for o in outcomes if o.removed or o.instance_deleted}


def counts(
    views: Sequence[RunnerView],
    outcomes: Sequence[RemovalOutcome],
    created: Sequence[SpawnResult],
) -> dict[str, dict[str, int]]:
    """Runners per instance type and state once the run's changes are made.

    Args:
        views: the runners as classified.
        outcomes: the removals' outcomes.
        created: the runners created (they count as booting).

    Returns:
        Per instance type, runners per state.
    """
    # A standby made a runner counts as the runner created, not as a standby.
    removed = _gone(outcomes) | {spawned.name for spawned in created}
    result: dict[str, dict[str, int]] = {t.value: {} for t in InstanceType}
    for view in views:
        if view.name in removed or view.instance_type is None:
            continue
        bucket = result[view.instance_type.value]
        bucket[view.state.value] = bucket.get(view.state.value, 0) + 1
    for spawned in created:
        bucket = result[spawned.instance_type.value]
        bucket[RunnerState.BOOTING.value] = bucket.get(RunnerState.BOOTING.value, 0) + 1
    return result


def live_and_crashed(
    views: Sequence[RunnerView],
    outcomes: Sequence[RemovalOutcome],
    created: Sequence[SpawnResult],
) -> tuple[set[str], set[str]]:
    """The runners whose instance is still there, and those removed because they died.

    Args:
        views: the runners as classified.
        outcomes: the removals' outcomes.
        created: the runners created.

    Returns:
        The live runners' names and the crashed runners' names.
    """
    removed = _gone(outcomes)
    live = {v.name for v in views if v.instance is not None and v.name not in removed}
    live |= {result.name for result in created}
    crashed = {
        o.removal.name
        for o in outcomes
        if o.removed and o.removal.runner.state is RunnerState.UNHEALTHY
    }
    return live, crashed


def remaining_hashes(
    views: Sequence[RunnerView],
    outcomes: Sequence[RemovalOutcome],
    created: Sequence[SpawnResult],
    hashes: dict[InstanceType, str],
) -> list[str]:
    """The configuration hash of every runner instance left after the run.

    Args:
        views: the runners as classified.
        outcomes: the removals' outcomes.
        created: the runners created.
        hashes: the current configuration hash per instance type (the created runners').

    Returns:
        One hash per remaining instance.
    """
    removed = {outcome.removal.name for outcome in outcomes if outcome.removed}
    instance_hashes = [
        view.instance.config_hash
        for view in views
        if view.instance is not None and view.name not in removed
    ]
    return instance_hashes + [hashes[result.instance_type] for result in created]


def check_result(
    views: Sequence[RunnerView],
    desired: dict[str, int],
    rate_limit_remaining: int | None,
    runner_version: str | None,
) -> CheckResult:
    """Count the runners by GitHub state and by type, for `check`.

    Args:
        views: the runners as classified.
        desired: runners to keep per instance type.
        rate_limit_remaining: GitHub calls left in the rate-limit window, if known.
        runner_version: the runner application version in use, if one was downloaded.

    Returns:
        The counts and the names per state.
    """
    names: dict[str, list[str]] = collections.defaultdict(list)
    for view in views:
        github = view.github
        if view.state is RunnerState.STANDBY:
            continue  # not a runner (counted by type below)
        if github is None:
            names["unknown"].append(view.name)
            continue
        names["online" if github.online else "offline"].append(view.name)
        if github.online:
            names["busy" if github.busy else "idle"].append(view.name)
    by_type: dict[str, dict[str, int]] = {}
    for view in views:
        type_name = view.instance_type.value if view.instance_type else "github-only"
        by_type.setdefault(type_name, collections.Counter())[view.state.value] += 1
    return CheckResult(
        online=len(names["online"]),
        offline=len(names["offline"]),
        busy=len(names["busy"]),
        idle=len(names["idle"]),
        unknown=len(names["unknown"]),
        runners={state: sorted(found) for state, found in names.items()},
        by_type={key: dict(value) for key, value in by_type.items()},
        desired=desired,
        rate_limit_remaining=rate_limit_remaining,
        runner_version=runner_version,
    )
