# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""The report's typed fields, and reading a report the previous version wrote."""

from __future__ import annotations

import json

import ops

import service
from github_runner_manager import (
    ErrorKind,
    InstanceType,
    Reason,
    Report,
    RunnerState,
    read_report,
)
from github_runner_manager.report import REPORT_VERSION
from status import report_status

from .test_charm_state import make_state

# A report as the version before the typed contract wrote it (version 1).
V1_REPORT = {
    "version": 1,
    "command": "update-dependencies",
    "unit": "github-runner/0",
    "started_at": "2026-06-01T12:00:00Z",
    "finished_at": "2026-06-01T12:00:30Z",
    "duration": 30.0,
    "ok": False,
    "desired": {"container": 1, "virtual-machine": 0},
    "counts": {"container": {"idle": 1}},
    "runners": [{"name": "github-runner-0-1a2b3c", "instance_type": "container", "state": "idle"}],
    "removed": [
        {"name": "github-runner-0-4d5e6f", "reason": "stale-config", "instance_type": "container"}
    ],
    "errors": [{"kind": "rate-limit", "message": "rate limited"}],
    "timings": {
        "runner_updated": True,
        "image_updated": False,
        "image_build": "already running",
        "observe": 0.5,
        "runners": {"github-runner-0-1a2b3c": {"start": 1.5}},
    },
}


def test_a_version_1_report_loads_with_its_flags_out_of_the_timings(tmp_path):
    """A report written before an upgrade still loads, typed, after it.

    arrange: a version 1 report file with flags among its timings.
    act: read_report.
    assert: the flags are fields, the timings hold only seconds, the enums are typed.
    """
    path = tmp_path / "report.json"
    path.write_text(json.dumps(V1_REPORT))

    report = read_report(path)

    assert report is not None
    assert report.version == REPORT_VERSION
    assert (report.runner_updated, report.image_updated, report.image_build_running) == (
        True,
        False,
        True,
    )
    assert report.timings == {"observe": 0.5}
    assert report.runner_timings == {"github-runner-0-1a2b3c": {"start": 1.5}}
    assert report.runners[0].state is RunnerState.IDLE
    assert report.runners[0].instance_type is InstanceType.CONTAINER
    assert report.removed[0].reason is Reason.STALE_CONFIG
    assert report.error_kinds() == {ErrorKind.RATE_LIMIT}


def test_an_action_reads_a_version_1_document():
    """An action that ran the previous manager still reads its report.

    arrange: a command's result whose document is a version 1 report.
    act: ManagerResult.report.
    assert: the report, with the flags as fields.
    """
    result = service.ManagerResult(exit_code=4, document=V1_REPORT)

    report = result.report()

    assert report is not None
    assert report.runner_updated is True


def test_a_written_report_reads_back_the_same(tmp_path):
    """The current version round-trips through its file.

    arrange: a report with typed fields and flags.
    act: write it, read it.
    assert: the same report.
    """
    report = Report.model_validate({**V1_REPORT, "version": REPORT_VERSION, "timings": {}})
    report.image_updated = True
    report.add_runner_timings({"github-runner-0-1a2b3c": {"start": 1.5}})
    path = tmp_path / "report.json"

    report.write(path)

    assert read_report(path) == report
    assert json.loads(path.read_text())["runners"][0]["state"] == "idle"


def test_a_report_of_an_unknown_kind_reads_as_none_and_the_unit_waits(tmp_path):
    """A report the charm cannot read (a newer kind, a damaged file) is treated as absent.

    arrange: a report whose error kind this version does not know.
    act: read it, and map it to a status.
    assert: no report; the unit waits for the next run, which writes a readable one.
    """
    path = tmp_path / "report.json"
    path.write_text(json.dumps({**V1_REPORT, "errors": [{"kind": "future-kind", "message": "m"}]}))

    report = read_report(path)
    status = report_status(report, make_state())

    assert report is None
    assert status == ops.WaitingStatus("waiting for the first reconciliation")
