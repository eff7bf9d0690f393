# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""status.py: the unit status and the action messages, both read from the error table."""

from __future__ import annotations

from typing import Any

import ops
import pytest

import status
from github_runner_manager import (
    EXIT_BUSY,
    EXIT_TRANSIENT,
    KINDS,
    CheckResult,
    ErrorClass,
    ErrorKind,
)

from .charm_fakes import make_report
from .test_charm_state import make_state

FIXABLE = [kind for kind, info in KINDS.items() if info.error_class is ErrorClass.OPERATOR_FIXABLE]
NOTED = [
    kind
    for kind, info in KINDS.items()
    if info.note and info.error_class in (ErrorClass.TRANSIENT, ErrorClass.UNEXPECTED)
]


def document(*errors: tuple[ErrorKind, str]) -> dict[str, Any]:
    return {"ok": False, "errors": [{"kind": kind.value, "message": msg} for kind, msg in errors]}


@pytest.mark.parametrize("kind", FIXABLE, ids=str)
def test_the_status_and_the_action_say_the_same_for_an_operator_fixable_error(kind):
    """Actions and status cannot disagree: both read the table's note and the same message.

    arrange: an error of an operator-fixable kind, in a report and in a command's document.
    act: map the report to a status, and the document to an action's failure message.
    assert: the unit is Blocked with the very message the action fails with.
    """
    report = make_report(ok=False, errors=[{"kind": kind.value, "message": "what went wrong"}])

    unit_status = status.report_status(report, make_state())
    message = status.action_failure(
        "reconcile", KINDS[kind].exit_code, document((kind, "what went wrong")), "github-runner"
    )

    assert unit_status == ops.BlockedStatus(message)


def test_the_first_fixable_kind_of_the_table_names_the_problem():
    """A token error is named before a configuration error, as before the table.

    arrange: a report with a config error and a token error.
    act: report_status.
    assert: Blocked, naming the token and its fix.
    """
    report = make_report(
        ok=False,
        errors=[
            {"kind": "config", "message": "runners.cpu: too small"},
            {"kind": "token", "message": "401"},
        ],
    )

    unit_status = status.report_status(report, make_state())

    assert unit_status == ops.BlockedStatus(
        "GitHub rejected the token: set a valid token with "
        "`juju config github-runner token=<token or secret URI>`"
    )


@pytest.mark.parametrize("kind", NOTED, ids=str)
def test_each_transient_kind_adds_a_note(kind):
    """Every transient or unexpected kind with a note shows it, without blocking the unit.

    arrange: a report with one error of the kind.
    act: report_status.
    assert: Active, with a note.
    """
    report = make_report(ok=False, errors=[{"kind": kind.value, "message": "m"}])

    unit_status = status.report_status(report, make_state())

    assert isinstance(unit_status, ops.ActiveStatus)
    assert unit_status.message.endswith(f"({status.transient_notes(report, make_state())[0]})")


@pytest.mark.parametrize(
    ("exit_code", "errors", "expected"),
    [
        pytest.param(
            EXIT_BUSY, [], status.BUSY_ACTION, id="the lock is busy: try again in a minute"
        ),
        pytest.param(
            EXIT_TRANSIENT,
            [(ErrorKind.LXD, "LXD said no"), (ErrorKind.LXD, "LXD said no")],
            "reconcile failed (exit code 4): LXD said no",
            id="transient: the command, the exit code and each message once",
        ),
        pytest.param(
            EXIT_TRANSIENT,
            [],
            "reconcile failed (exit code 4): see the unit's log",
            id="no message: the log",
        ),
    ],
)
def test_action_failure(exit_code, errors, expected):
    """An action failure names what the operator can do, from the kinds of the errors.

    arrange: a failed command's exit code and errors.
    act: action_failure.
    assert: the message.
    """
    assert status.action_failure("reconcile", exit_code, document(*errors), "app") == expected


def test_check_results_come_from_the_typed_check():
    """The check-runners action's results keep the keys the original charm had.

    arrange: a check result with online, busy and unknown runners.
    act: check_results.
    assert: counts, names per state, `runners` for the online ones, the runner version.
    """
    check = CheckResult(
        online=2,
        busy=1,
        idle=1,
        unknown=1,
        runners={"online": ["a", "b"], "busy": ["a"], "idle": ["b"], "unknown": ["c"]},
        runner_version="2.331.0",
    )

    results = status.check_results(check)

    assert results == {
        "online": 2,
        "offline": 0,
        "unknown": 1,
        "busy": 1,
        "idle": 1,
        "runners": "a,b",
        "online-runners": "a,b",
        "offline-runners": "",
        "unknown-runners": "c",
        "busy-runners": "a",
        "idle-runners": "b",
        "runner-version": "2.331.0",
    }


@pytest.mark.parametrize(
    ("fields", "flush"),
    [
        pytest.param({"runner_updated": True}, True, id="a new runner application"),
        pytest.param({"image_updated": True}, True, id="a new image"),
        pytest.param({"image_updated": None}, False, id="nothing new"),
    ],
)
def test_update_results_say_whether_outdated_runners_were_replaced(fields, flush):
    """update-dependencies reports `flush` when something new came and runners were replaced.

    arrange: a report that replaced a stale runner, with or without something new.
    act: update_results.
    assert: `flush`.
    """
    report = make_report(
        removed=[{"name": "r", "reason": "stale-config", "instance_type": "container"}],
        **fields,
    )

    assert status.update_results(report)["flush"] is flush
