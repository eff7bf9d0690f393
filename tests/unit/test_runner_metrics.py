# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""Metric events built from a runner's host data: runner_installed, runner_start/stop."""

from __future__ import annotations

import pytest

from github_runner_manager.errors import GitHubUnavailableError, RateLimitError
from github_runner_manager.exchange import Installed, PostJob, PreJob, RunnerData
from github_runner_manager.github import JobInfo
from github_runner_manager.metrics import RunnerStart, RunnerStop
from github_runner_manager.runner_metrics import (
    failed_at_start_up,
    installed_event,
    job_events,
    killed,
)

from .conftest import PREFIX

RUNNER = f"{PREFIX}-000000000123"
FLAVOR = "github-runner"
STAGES = {"register": 0.5, "create": 4.0, "push": 1.0, "start": 2.5}
T0 = 1_780_000_000.0


def installed(**overrides) -> Installed:
    fields = {
        "started": T0,
        "finished": T0 + 8.0,
        "instance_type": "container",
        "stages": dict(STAGES),
        "start_requested": T0 + 5.5,
    }
    return Installed(**{**fields, **overrides})


def data(**overrides) -> RunnerData:
    fields = {
        "name": RUNNER,
        "installed": installed(),
        "boot": None,
        "online": None,
        "pre_job": None,
        "post_job": None,
        "installed_reported": False,
    }
    return RunnerData(**{**fields, **overrides})


PRE = PreJob(
    timestamp=T0 + 100.0,
    workflow="CI",
    repository="test-owner/test-repo",
    event="pull_request",
    workflow_run_id=777,
)


class FakeJobLookup:
    """Answers job lookups from a fixed JobInfo (or error), recording each question."""

    def __init__(self, job: JobInfo | None = None, error: Exception | None = None) -> None:
        self.job = job
        self.error = error
        self.asked: list[tuple[str, int, str]] = []

    def __call__(self, repository: str, run_id: int, runner_name: str) -> JobInfo | None:
        self.asked.append((repository, run_id, runner_name))
        if self.error is not None:
            raise self.error
        return self.job


def job(
    created_at: str = "2026-06-01T12:00:00Z",
    started_at: str | None = "2026-06-01T12:00:42Z",
    conclusion: str | None = "success",
) -> JobInfo:
    return JobInfo(
        id=9,
        created_at=created_at,
        started_at=started_at,
        conclusion=conclusion,
        runner_name=RUNNER,
    )


# ----- runner_installed -------------------------------------------------------------------------


def test_installed_without_boot_or_online():
    """Without boot or online times, the installed event has the creation stages only.

    arrange: only the manager's record.
    act: installed_event.
    assert: creation stages only, duration from started to finished.
    """
    event = installed_event(data(), FLAVOR)

    assert event is not None
    assert event.event == "runner_installed"
    assert event.runner == RUNNER and event.flavor == FLAVOR
    assert event.instance_type == "container"
    assert event.timestamp == T0 + 8.0
    assert event.duration == 8.0
    assert event.stages.model_dump(by_alias=True) == {
        **STAGES,
        "adopt": None,
        "boot": None,
        "online": None,
    }


def test_installed_with_boot_and_online():
    """With boot and online times, the installed event has those stages and lasts until online.

    arrange: boot 10 s after the start request, online 20 s after boot.
    act: installed_event.
    assert: boot and online stages; duration until online.
    """
    event = installed_event(data(boot=T0 + 15.5, online=T0 + 35.5), FLAVOR)

    assert event is not None
    assert event.stages.boot == 10.0
    assert event.stages.online == 20.0
    assert event.timestamp == T0 + 35.5
    assert event.duration == 35.5


def test_installed_boot_measured_from_finished_without_a_start_request():
    """Without a start request time, boot is measured from the end of creation.

    arrange: an older record without start_requested.
    act: installed_event.
    assert: boot is measured from the end of creation.
    """
    record = installed(start_requested=None)

    event = installed_event(data(installed=record, boot=T0 + 11.0), FLAVOR)

    assert event is not None
    assert event.stages.boot == 3.0
    assert event.duration == 11.0


def test_installed_ignores_a_boot_before_the_start_request_and_online_before_boot():
    """Boot before the start request and online before boot are left out.

    arrange: boot before the start request, online before boot.
    act: installed_event.
    assert: neither boot nor online stage; duration of the creation.
    """
    event = installed_event(data(boot=T0 + 1.0, online=T0 + 0.5), FLAVOR)

    assert event is not None
    assert event.stages.boot is None and event.stages.online is None
    assert event.duration == 8.0


def test_installed_online_before_boot_is_left_out():
    """An online time earlier than boot is left out.

    arrange: a valid boot, but online earlier than boot.
    act: installed_event.
    assert: the boot stage only; duration until boot.
    """
    event = installed_event(data(boot=T0 + 20.0, online=T0 + 19.0), FLAVOR)

    assert event is not None
    assert event.stages.boot == 14.5
    assert event.stages.online is None
    assert event.duration == 20.0


def test_installed_duration_is_never_shorter_than_the_creation():
    """The installed duration is never shorter than the creation.

    arrange: boot before the creation finished, no online.
    act: installed_event.
    assert: the duration covers at least the creation (started to finished). The runner service may
        start (after the start request) before LXD's start call returns.
    """
    # Guards installed_event's end of the installation: the latest of the creation's end and
    # the boot. When the boot timestamp falls between start_requested and finished (the
    # service starts while LXD's start call is still returning), ending at the boot would give
    # a duration (and timestamp) before the creation finished: here 7 s for a creation whose
    # stages add up to 8 s.
    event = installed_event(data(boot=T0 + 7.0), FLAVOR)

    assert event is not None
    assert event.stages.boot == 1.5
    assert event.duration >= 8.0
    assert event.timestamp >= T0 + 8.0


def test_installed_without_a_record_is_none():
    """Without the manager's record there is no installed event.

    arrange: no manager record (created by an older manager).
    act: installed_event.
    assert: None.
    """
    assert installed_event(data(installed=None, boot=T0, online=T0 + 1), FLAVOR) is None


def test_installed_keeps_only_known_stages():
    """The installed event keeps only the stages it knows.

    arrange: a record with an unknown stage.
    act: installed_event.
    assert: it is dropped.
    """
    record = installed(stages={**STAGES, "mystery": 99.0})

    event = installed_event(data(installed=record), FLAVOR)

    assert event is not None
    assert "mystery" not in event.model_dump_json()


# ----- runner_start / runner_stop ---------------------------------------------------------------


def test_no_pre_job_no_events():
    """A runner that took no job gives no job events.

    arrange: a runner that never took a job.
    act: job_events.
    assert: none, no lookup.
    """
    lookup = FakeJobLookup(job())

    assert job_events(data(online=T0 + 30.0), FLAVOR, lookup) == []
    assert lookup.asked == []


def test_normal_job():
    """A normal job gives start and stop events with every field.

    arrange: a job that ran 60 s after 70 s idle; GitHub says it queued 42 s.
    act: job_events.
    assert: start and stop events with every field.
    """
    post = PostJob(timestamp=PRE.timestamp + 60.0, status="normal", exit_code=0)
    lookup = FakeJobLookup(job())

    start, stop = job_events(data(online=T0 + 30.0, pre_job=PRE, post_job=post), FLAVOR, lookup)

    assert lookup.asked == [("test-owner/test-repo", 777, RUNNER)]
    assert isinstance(start, RunnerStart)
    assert start.timestamp == PRE.timestamp
    assert (start.workflow, start.repo, start.github_event) == (
        "CI",
        "test-owner/test-repo",
        "pull_request",
    )
    assert start.idle == 70.0
    assert start.queue_duration == 42.0
    assert isinstance(stop, RunnerStop)
    assert stop.timestamp == post.timestamp
    assert stop.status == "normal"
    assert stop.status_info is None
    assert stop.job_duration == 60.0
    assert stop.job_conclusion == "success"


@pytest.mark.parametrize("conclusion", ["failure", "cancelled", None])
def test_conclusion_is_passed_through(conclusion):
    """The job's conclusion from GitHub is passed through to runner_stop.

    arrange: GitHub reports a conclusion (or none yet).
    act: job_events.
    assert: runner_stop carries it.
    """
    post = PostJob(timestamp=PRE.timestamp + 1, status="normal", exit_code=0)

    _, stop = job_events(
        data(pre_job=PRE, post_job=post), FLAVOR, FakeJobLookup(job(conclusion=conclusion))
    )

    assert isinstance(stop, RunnerStop)
    assert stop.job_conclusion == conclusion


def test_abnormal_exit_reports_the_exit_code():
    """An abnormal exit reports the exit code.

    arrange: the runner exited with code 2.
    act: job_events.
    assert: status abnormal, status_info holds the code.
    """
    post = PostJob(timestamp=PRE.timestamp + 5, status="abnormal", exit_code=2)

    _, stop = job_events(data(pre_job=PRE, post_job=post), FLAVOR, None)

    assert isinstance(stop, RunnerStop)
    assert stop.status == "abnormal"
    assert stop.status_info == {"code": 2}
    assert stop.job_duration == 5.0


def test_job_without_post_job_crashed():
    """A job without a post-job report crashed.

    arrange: the runner took a job and never reported its exit.
    act: job_events.
    assert: status crashed, stop at the job's start, no duration.
    """
    _, stop = job_events(data(pre_job=PRE), FLAVOR, None)

    assert isinstance(stop, RunnerStop)
    assert stop.status == "crashed"
    assert stop.timestamp == PRE.timestamp
    assert stop.job_duration is None
    assert stop.status_info is None
    assert "job_duration" not in stop.model_dump_json(exclude_none=True)


def test_post_job_before_pre_job_has_zero_duration():
    """A post-job before the pre-job (clock skew) gives a zero duration.

    arrange: post-job timestamp earlier than pre-job (clock skew).
    act: job_events.
    assert: job_duration 0, never negative.
    """
    post = PostJob(timestamp=PRE.timestamp - 3, status="normal", exit_code=0)

    _, stop = job_events(data(pre_job=PRE, post_job=post), FLAVOR, None)

    assert isinstance(stop, RunnerStop)
    assert stop.job_duration == 0.0


@pytest.mark.parametrize(
    ("online", "finished", "expected_idle"),
    [
        (T0 + 30.0, T0 + 8.0, 70.0),  # idle since online
        (None, T0 + 8.0, 92.0),  # never reported online: since the creation finished
        (PRE.timestamp + 5, T0 + 8.0, 0.0),  # online after the job started: never negative
    ],
)
def test_idle_time(online, finished, expected_idle):
    """Idle time runs from online, else from the end of creation, and is never negative.

    arrange: online or only the creation's end known.
    act: job_events.
    assert: idle measured from online, else from the end of creation, never negative.
    """
    runner = data(installed=installed(finished=finished), online=online, pre_job=PRE)

    start, _ = job_events(runner, FLAVOR, None)

    assert isinstance(start, RunnerStart)
    assert start.idle == expected_idle


def test_idle_is_zero_without_any_reference():
    """Idle time is zero without anything to measure it from.

    arrange: neither an installed record nor online.
    act: job_events.
    assert: idle 0.
    """
    start, _ = job_events(data(installed=None, pre_job=PRE), FLAVOR, None)

    assert isinstance(start, RunnerStart)
    assert start.idle == 0.0


@pytest.mark.parametrize(
    ("found", "expected"),
    [
        (job("2026-06-01T12:00:00Z", "2026-06-01T12:01:30Z"), 90.0),
        (job("2026-06-01T12:00:00+00:00", "2026-06-01T12:00:00.5+00:00"), 0.5),
        (job("2026-06-01T12:00:10Z", "2026-06-01T12:00:00Z"), 0.0),
        (job(started_at=None), None),
        (job(created_at="not a time"), None),
        (job(created_at=""), None),
        (None, None),
    ],
    ids=["Z-suffix", "offset", "negative", "not-started", "bad-created", "empty", "not-found"],
)
def test_queue_duration(found, expected):
    """The queue duration is GitHub's start minus creation, never negative.

    arrange: GitHub's created_at/started_at (or no job).
    act: job_events.
    assert: started - created, never negative; None when unknown.
    """
    start, _ = job_events(data(pre_job=PRE), FLAVOR, FakeJobLookup(found))

    assert isinstance(start, RunnerStart)
    assert start.queue_duration == expected


@pytest.mark.parametrize(
    "error",
    [GitHubUnavailableError("GitHub answered 502"), RateLimitError("spent", reset_at=0.0)],
)
def test_lookup_github_error_is_tolerated(error):
    """A GitHub error in the job lookup is tolerated.

    arrange: the job lookup fails with a GitHub error.
    act: job_events.
    assert: both events, without queue duration or conclusion.
    """
    post = PostJob(timestamp=PRE.timestamp + 1, status="normal", exit_code=0)

    start, stop = job_events(data(pre_job=PRE, post_job=post), FLAVOR, FakeJobLookup(error=error))

    assert isinstance(start, RunnerStart) and isinstance(stop, RunnerStop)
    assert start.queue_duration is None
    assert stop.job_conclusion is None
    assert stop.status == "normal"


def test_no_lookup_without_a_workflow_run_id():
    """GitHub is not asked without a workflow run id.

    arrange: pre-job with workflow_run_id 0.
    act: job_events.
    assert: GitHub not asked.
    """
    lookup = FakeJobLookup(job())
    pre = PRE.model_copy(update={"workflow_run_id": 0})

    start, _ = job_events(data(pre_job=pre), FLAVOR, lookup)

    assert lookup.asked == []
    assert isinstance(start, RunnerStart)
    assert start.queue_duration is None


def test_events_serialise_without_unknown_fields():
    """Events are written without fields nobody knows.

    arrange: a crashed job, no lookup.
    act: dump both events as the metrics log does.
    assert: the event names, no null fields.
    """
    events = job_events(data(pre_job=PRE), FLAVOR, None)

    lines = [e.model_dump(exclude_none=True, by_alias=True) for e in events]
    assert [line["event"] for line in lines] == ["runner_start", "runner_stop"]
    assert all(value is not None for line in lines for value in line.values())
    assert "queue_duration" not in lines[0]


@pytest.mark.parametrize(
    ("online", "pre_job", "status", "code", "failed"),
    [
        (None, None, "abnormal", 7, True),  # refused as deprecated: never listened
        (None, None, "abnormal", 1, True),  # bad JIT configuration, missing library
        (None, None, "normal", 0, False),
        (T0 + 20.0, None, "abnormal", 1, False),  # was online: registration deleted (flush)
        (T0 + 20.0, PRE, "abnormal", 1, False),  # took a job: its runner_stop tells
    ],
    ids=["deprecated", "terminated", "clean", "deleted-while-idle", "after-a-job"],
)
def test_failed_at_start_up(online, pre_job, status, code, failed):
    """A runner failed at start-up when it exited abnormally before it ever came online.

    arrange: an exit report of a runner that never listened (deprecated or terminated), exited
        cleanly, was online when deleted, or took a job.
    act: ask whether it failed at start-up.
    assert: only the runners that never came online and exited abnormally failed at start-up.
    """
    post = PostJob(timestamp=T0 + 30.0, status=status, exit_code=code)
    assert failed_at_start_up(data(online=online, pre_job=pre_job, post_job=post)) is failed


def test_no_exit_report_is_not_a_start_up_failure():
    """Without an exit report nothing failed at start-up.

    arrange: runner data without an exit report.
    act: ask whether it failed at start-up.
    assert: no.
    """
    assert failed_at_start_up(data()) is False


@pytest.mark.parametrize(
    "code, expected",
    [(137, True), (143, True), (128, True), (0, False), (1, False), (7, False)],
    ids=["sigkill", "sigterm", "128", "clean", "terminated", "deprecated"],
)
def test_killed_listener(code, expected):
    """A listener that died of a signal (128 + signal) is a crash, whatever it was doing.

    arrange: an online runner that took a job and exited with 137, 143, 128, 0, 1 or 7.
    act: ask whether the listener was killed.
    assert: killed only for codes of 128 and above.
    """
    status = "normal" if code == 0 else "abnormal"
    post = PostJob(timestamp=T0 + 30.0, status=status, exit_code=code)
    assert killed(data(online=T0 + 10.0, pre_job=PRE, post_job=post)) is expected


def test_no_exit_report_is_not_killed():
    """Without an exit report the listener was not killed.

    arrange: runner data without an exit report.
    act: ask whether the listener was killed.
    assert: no.
    """
    assert killed(data()) is False
