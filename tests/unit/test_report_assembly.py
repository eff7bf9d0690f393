# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""Noting a run's errors and end in its report (report_assembly.py), without a manager."""

from __future__ import annotations

import datetime

from github_runner_manager import ErrorKind, Report
from github_runner_manager.errors import LxdError
from github_runner_manager.report_assembly import finish, record_error

STARTED = datetime.datetime(2026, 6, 1, 12, 0, tzinfo=datetime.timezone.utc)


def test_record_error_keeps_a_manager_error_kind_and_marks_others_unexpected() -> None:
    """A manager error keeps its kind and message; any other error is unexpected.

    arrange: an empty report, an LXD error and a KeyError.
    act: record both.
    assert: an lxd entry with the message, then an unexpected entry with the error's repr.
    """
    report = Report(command="reconcile", unit="github-runner/0", started_at=STARTED)

    record_error(report, LxdError("LXD is down"))
    record_error(report, KeyError("surprise"))

    assert [(e.kind, e.message) for e in report.errors] == [
        (ErrorKind.LXD, "LXD is down"),
        (ErrorKind.UNEXPECTED, "KeyError('surprise')"),
    ]


def test_finish_closes_the_report() -> None:
    """Finishing notes the end, the rounded duration, the outcome and the GitHub calls.

    arrange: a report with one error.
    act: finish it after 1.23456 s with 7 calls, 2 of them answered 304.
    assert: the end time, 1.235 s, not ok, 7 calls and 2 not modified.
    """
    report = Report(command="reconcile", unit="github-runner/0", started_at=STARTED)
    record_error(report, LxdError("LXD is down"))
    finished = STARTED + datetime.timedelta(seconds=1.23456)

    finish(report, finished, 1.23456, (7, 2))

    assert report.finished_at == finished
    assert report.duration == 1.235
    assert report.ok is False
    assert (report.github_calls, report.github_not_modified) == (7, 2)
