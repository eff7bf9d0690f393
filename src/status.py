# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""What the operator reads: the unit status and the actions' results and failure messages.

Everything here is a lookup in the runner manager's error table (`KINDS`): an operator-fixable
kind blocks the unit with its note and the fix or the manager's message, a busy lock waits, a
transient or unexpected kind adds its note to the Active status. The charm passes in what it
knows (the last report, its state, the time, whether an image build runs) and sets what comes
back.
"""

from __future__ import annotations

import dataclasses
import datetime
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import ops

from charm_state import CharmState
from github_runner_manager import (
    EXIT_BUSY,
    KINDS,
    CheckResult,
    ErrorClass,
    ErrorEntry,
    ErrorKind,
    InstanceType,
    Reason,
    Report,
    RunnerState,
)

# A report older than this many intervals (plus the margin) says the timer no longer runs.
STALE_INTERVALS = 3
STALE_MARGIN = datetime.timedelta(minutes=5)
MESSAGE_LIMIT = 300

BUSY_STATUS = "another run of the runner manager held the lock: waiting"
BUSY_ACTION = "another run of the runner manager is in progress: try again in a minute"
FIRST_BUILD = "building the runner image"
REBUILD_NOTE = "building a new runner image"
NO_REPORT = "waiting for the first reconciliation"

_CHECK_KEYS = ("online", "offline", "unknown", "busy", "idle")
_ALIVE_STATES = (RunnerState.IDLE, RunnerState.BUSY, RunnerState.BOOTING)
# The fix an operator-fixable kind's message names instead of the manager's own words.
_FIXES = {
    ErrorKind.TOKEN: "set a valid token with `juju config {app} token=<token or secret URI>`"
}


@dataclasses.dataclass
class Outcome:
    """What one reconciliation of the charm found, for collect-status.

    Attributes:
        blocked: a problem the operator must fix (invalid config, storage too small).
        host_error: a failure preparing the host; the next event retries.
        state: the validated state, when it was valid.
    """

    blocked: str | None = None
    host_error: str | None = None
    state: CharmState | None = None


def shorten(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """Put a message on one line and cut it to a length a status can show.

    Args:
        text: the message.
        limit: the most characters kept.

    Returns:
        The message, with `...` when it was cut.
    """
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _messages(errors: Iterable[ErrorEntry], kind: ErrorKind | None = None) -> list[str]:
    """The distinct messages of the errors (of one kind, if given), in order."""
    found = (error.message for error in errors if kind is None or error.kind == kind)
    return list(dict.fromkeys(message for message in found if message))


def _fixable(errors: list[ErrorEntry], app: str, join: bool) -> str | None:
    """The message of the first operator-fixable kind among the errors, in the table's order.

    `join`: all the messages of that kind (an action's message) rather than the first (a status).
    """
    kinds = {error.kind for error in errors}
    for kind, info in KINDS.items():
        if info.error_class is not ErrorClass.OPERATOR_FIXABLE or kind not in kinds:
            continue
        messages = _messages(errors, kind)
        body = _FIXES[kind].format(app=app) if kind in _FIXES else None
        body = body or ("; ".join(messages) if join else (messages or [""])[0])
        return shorten(f"{info.note}: {body}" if info.note else body)
    return None


def runner_summary(report: Report) -> str:
    """Summarise a report's runners, e.g. `3/3 container, 1/1 virtual-machine runners`.

    A type with no desired runner is left out unless it has runners.

    Args:
        report: the report.

    Returns:
        The summary.
    """
    parts = []
    for instance_type in InstanceType:
        desired = report.desired.get(instance_type.value, 0)
        counts = report.counts.get(instance_type.value, {})
        alive = sum(counts.get(state.value, 0) for state in _ALIVE_STATES)
        if desired or alive:
            parts.append(f"{alive}/{desired} {instance_type.value}")
    if not parts:
        return "no runners configured: set containers or virtual-machines"
    return ", ".join(parts) + " runners"


def _rate_limit_note(report: Report, _: CharmState, note: str) -> str:
    if not report.rate_limit_reset_at:
        return note
    return (
        f"rate limited until {time.strftime('%H:%M', time.gmtime(report.rate_limit_reset_at))} UTC"
    )


def _image_note(_: Report, state: CharmState, __: str) -> str:
    return f"image {state.config.base_image} missing"


def _creation_note(report: Report, _: CharmState, note: str) -> str:
    failures = sum(1 for error in report.errors if error.kind == ErrorKind.RUNNER_CREATE)
    return f"{failures} {note}{'s' if failures > 1 else ''}"


# Notes that say more than the table's words: when the rate limit resets, which image, how many.
_NOTE_DETAILS: Mapping[ErrorKind, Callable[[Report, CharmState, str], str]] = {
    ErrorKind.RATE_LIMIT: _rate_limit_note,
    ErrorKind.IMAGE: _image_note,
    ErrorKind.RUNNER_CREATE: _creation_note,
}


def transient_notes(report: Report, state: CharmState) -> list[str]:
    """The short notes of a report's transient and unexpected errors, in the table's order.

    Args:
        report: the report.
        state: the charm state.

    Returns:
        The notes.
    """
    kinds = report.error_kinds()
    notes = []
    for kind, info in KINDS.items():
        if kind in kinds and info.note and info.error_class is not ErrorClass.OPERATOR_FIXABLE:
            detail = _NOTE_DETAILS.get(kind)
            notes.append(detail(report, state, info.note) if detail else info.note)
    return notes


def _stale_minutes(report: Report, state: CharmState, now: datetime.datetime) -> int | None:
    """Minutes since the report's run ended, when so long that the timer no longer runs."""
    finished = report.finished_at or report.started_at
    if finished.tzinfo is None:
        finished = finished.replace(tzinfo=datetime.timezone.utc)
    interval = datetime.timedelta(minutes=state.config.check_interval)
    if now - finished > STALE_INTERVALS * interval + STALE_MARGIN:
        return int((now - finished).total_seconds() // 60)
    return None


def report_status(
    report: Report | None,
    state: CharmState,
    now: datetime.datetime | None = None,
    *,
    image_building: bool = False,
) -> ops.StatusBase:
    """Map the manager's last report to a unit status.

    Args:
        report: the last report, or None.
        state: the charm state.
        now: the current time (UTC).
        image_building: whether a runner image build runs now.

    Returns:
        The status.
    """
    # The first build (no image yet) is maintenance; a rebuild while runners serve is a note.
    first_build = image_building and (report is None or ErrorKind.IMAGE in report.error_kinds())
    if report is None:
        return ops.MaintenanceStatus(FIRST_BUILD) if first_build else ops.WaitingStatus(NO_REPORT)
    minutes = _stale_minutes(report, state, now or datetime.datetime.now(datetime.timezone.utc))
    if minutes is not None:
        return ops.WaitingStatus(
            f"the last reconciliation was {minutes} minutes ago: waiting for the next one"
        )
    blocked = _fixable(report.errors, state.app_name, join=False)
    if blocked is not None:
        return ops.BlockedStatus(blocked)
    if report.error_kinds() == {ErrorKind.BUSY} and not report.counts:
        return ops.WaitingStatus(BUSY_STATUS)
    if first_build:
        return ops.MaintenanceStatus(FIRST_BUILD)
    summary = runner_summary(report)
    notes = transient_notes(report, state) + ([REBUILD_NOTE] if image_building else [])
    return ops.ActiveStatus(f"{summary} ({'; '.join(notes)})" if notes else summary)


def host_error_status(host_error: str) -> ops.StatusBase:
    """The status while preparing the host fails (the next event retries).

    Args:
        host_error: what failed.

    Returns:
        The status.
    """
    return ops.MaintenanceStatus(f"preparing the host failed, retrying: {shorten(host_error)}")


def document_errors(document: Mapping[str, Any]) -> list[ErrorEntry]:
    """The errors a manager command printed, skipping any that is not one.

    Args:
        document: the JSON document the command printed.

    Returns:
        The errors.
    """
    errors = []
    for error in document.get("errors") or []:
        try:
            errors.append(ErrorEntry.model_validate(error))
        except ValueError:
            continue
    return errors


def action_failure(command: str, exit_code: int, document: Mapping[str, Any], app: str) -> str:
    """Explain a failed manager run to the operator, without any secret.

    Args:
        command: the manager command that ran.
        exit_code: its exit code.
        document: the JSON document it printed.
        app: the application name (for the `juju config` fix).

    Returns:
        The action's failure message.
    """
    errors = document_errors(document)
    if exit_code == EXIT_BUSY or {error.kind for error in errors} == {ErrorKind.BUSY}:
        return BUSY_ACTION
    fixable = _fixable(errors, app, join=True)
    if fixable is not None:
        return fixable
    details = shorten("; ".join(_messages(errors))) or "see the unit's log"
    return f"{command} failed (exit code {exit_code}): {details}"


def check_results(check: CheckResult) -> dict[str, Any]:
    """The check-runners action's results.

    Args:
        check: what `check` found.

    Returns:
        Counts per state, `runners` (the online ones, as the original charm had it), the names
        per state (`<state>-runners`), and the runner version when known.
    """
    results: dict[str, Any] = {key: getattr(check, key) for key in _CHECK_KEYS}
    results["runners"] = ",".join(check.runners.get("online") or [])
    for key in _CHECK_KEYS:
        results[f"{key}-runners"] = ",".join(check.runners.get(key) or [])
    if check.runner_version:
        results["runner-version"] = check.runner_version
    return results


def update_results(report: Report) -> dict[str, Any]:
    """The update-dependencies action's results.

    Args:
        report: the run's report.

    Returns:
        `flush` (whether something new came and outdated runners were replaced), the runner
        version and the delta.
    """
    updated = report.runner_updated or bool(report.image_updated)
    replaced = any(removal.reason == Reason.STALE_CONFIG for removal in report.removed)
    return {
        "flush": updated and replaced,
        "runner-version": report.runner_version or "unknown",
        "delta": dict(report.delta),
    }


def teardown_failure(exit_code: int, document: Mapping[str, Any]) -> str:
    """What the unit's log says when the final flush of its runners failed.

    Args:
        exit_code: the flush's exit code.
        document: the JSON document it printed.

    Returns:
        The message: what failed, and where to remove what is left by hand.
    """
    details = shorten("; ".join(_messages(document_errors(document))))
    return (
        f"removing the runners failed (exit code {exit_code}): {details}; remove what is left "
        "with lxc and in the repository or organisation settings"
    )
