# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""Event-driven replenishment: the manager's count-and-spawn, and the replenisher's coalescing."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from github_runner_manager.errors import LockBusyError, LxdError, TokenError
from github_runner_manager.lxd import (
    TAG_START_AFTER_LOCK,
    InstanceEvent,
    never_started,
    parse_lifecycle_event,
)
from github_runner_manager.models import InstanceType
from github_runner_manager.planner import runner_name_pattern
from github_runner_manager.replenish import Replenisher
from github_runner_manager.report import Report
from github_runner_manager.utils import manager_lock

from .conftest import PREFIX, UNIT


def name(index: int, prefix: str = PREFIX) -> str:
    return f"{prefix}-{index:012x}"


# ----- RunnerManager.replenish -----------------------------------------------------------------


def test_replenish_spawns_the_difference_with_one_github_call_each(make_manager, lxd, github):
    """Replenishing spawns the missing runners with one GitHub call each.

    arrange: count 4, one live, one stopped.
    act: replenish.
    assert: 3 spawns, 3 calls.
    """
    lxd.add(name(1), UNIT)
    lxd.add(name(2), UNIT, status="Stopped")
    lxd.add(name(3, "other-unit"), "other/0")  # another unit's runner does not count
    manager = make_manager(runners={"containers": 4})

    report = manager.replenish()

    assert report.ok, report.errors
    assert len(report.created) == 3
    assert github.calls == ["register_runner"] * 3  # no listing, only the JIT configurations
    assert report.github_calls == 3
    assert report.counts["container"] == {"live": 1}
    live = [i for i in lxd.list_instances(UNIT) if i.status.value != "stopped"]
    assert len(live) == 4


def test_replenish_at_the_count_does_nothing(make_manager, lxd, github):
    """Replenishing a full fleet does nothing.

    arrange: the configured two runners live.
    act: replenish.
    assert: no spawn, no call.
    """
    lxd.add(name(1), UNIT)
    lxd.add(name(2), UNIT)
    manager = make_manager()

    report = manager.replenish()

    assert report.ok and report.created == []
    assert github.calls == []
    assert lxd.created == []


def test_replenish_never_goes_beyond_the_count(make_manager, lxd, github):
    """Replenishing never goes beyond the count, nor removes.

    arrange: more live runners than configured.
    act: replenish.
    assert: nothing removed/made.
    """
    for index in range(5):
        lxd.add(name(index), UNIT)
    manager = make_manager()

    report = manager.replenish()

    assert report.created == [] and lxd.deleted == []


def test_replenish_waits_for_the_lock_and_counts_after_it(make_manager, lxd, github, tmp_path):
    """Replenishing takes the lock before counting, and reports it busy.

    arrange: a reconcile holds the lock.
    act: replenish.
    assert: LockBusyError, nothing made.
    """
    manager = make_manager()
    with (
        manager_lock(manager.config.state_dir / "manager.lock", 0),
        pytest.raises(LockBusyError),
    ):
        manager.replenish(lock_timeout=0)
    assert lxd.created == [] and github.calls == []


def test_replenish_starts_its_instances_after_releasing_the_lock(make_manager, lxd, github):
    """Replenishing creates under the lock and starts after it; an overlapping batch adds none.

    arrange: count 2, none live; every instance start checks the manager's lock and, the first
        time, runs a second replenish (another batch) while the instances are created, not
        started.
    act: replenish.
    assert: the starts ran with the lock free; the second batch counted the two tagged,
        not-yet-started instances and made nothing; two runners, both tagged to start after
        the lock, both running.
    """
    manager = make_manager(runners={"containers": 2})
    lock_path = manager.config.state_dir / "manager.lock"
    lock_free: list[bool] = []
    overlapping: list[Report] = []
    start = lxd.start_instance
    one_at_a_time = threading.Lock()  # the starts run in parallel: check them one at a time

    def checking_start(instance_name: str) -> None:
        with one_at_a_time:
            try:
                with manager_lock(lock_path, 0):
                    lock_free.append(True)
            except LockBusyError:
                lock_free.append(False)
            if not overlapping:
                overlapping.append(manager.replenish(lock_timeout=0))
        start(instance_name)

    lxd.start_instance = checking_start

    report = manager.replenish()

    assert report.ok, report.errors
    assert len(report.created) == 2
    assert lock_free == [True, True]
    assert overlapping[0].ok and overlapping[0].created == []
    assert overlapping[0].counts["container"] == {"live": 2}
    assert github.calls == ["register_runner"] * 2
    instances = lxd.list_instances(UNIT)
    assert len(instances) == 2
    assert all(i.status.value == "running" and not i.awaiting_start for i in instances)
    tags = [lxd.instances[i.name].spec.config.get(TAG_START_AFTER_LOCK) for i in instances]
    assert tags == ["true", "true"]


def test_replenish_failed_start_after_the_lock_leaves_nothing(make_manager, lxd, github):
    """A start that fails after the lock was released removes the runner and is reported.

    arrange: count 1, none live; LXD fails every start.
    act: replenish.
    assert: an error, nothing created, no instance left, the registration deleted.
    """
    manager = make_manager(runners={"containers": 1})
    lxd.fail["start_instance"] = LxdError("cannot start: boom")

    report = manager.replenish()

    assert not report.ok and report.created == []
    assert "boom" in report.errors[0].message
    assert lxd.list_instances(UNIT) == []
    assert "delete_runner" in github.calls


class TightLoop:
    """A reconcile in a tight loop: takes the lock, holds it a moment, releases, at once again."""

    def __init__(self, path, hold: float = 0.05):
        self.path = path
        self.hold = hold
        self.runs = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            with manager_lock(self.path, 60):
                self.runs += 1
                time.sleep(self.hold)

    def __enter__(self) -> TightLoop:
        self.thread.start()
        while self.runs == 0:
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=10)


def test_lock_waiter_gets_it_after_a_release_under_a_tight_loop(tmp_path):
    """A run waiting for the lock gets it after a release although the holder retakes it at once.

    arrange: a reconcile loop retaking the lock the instant it releases it.
    act: wait for the lock (5 s, about a hundred of the loop's runs).
    assert: the lock is held by the waiter, and the loop ran while it waited and after.
    """
    path = tmp_path / "manager.lock"
    with TightLoop(path) as loop:
        with manager_lock(path, timeout=5):
            runs_while_held = loop.runs
            time.sleep(0.2)
            assert loop.runs == runs_while_held  # the loop waits while the waiter holds it
        assert runs_while_held >= 1
        deadline = time.monotonic() + 5
        while loop.runs == runs_while_held and time.monotonic() < deadline:
            time.sleep(0.01)
        assert loop.runs > runs_while_held  # the loop goes on afterwards


def test_replenish_under_a_tight_reconcile_loop_spawns_to_the_count(make_manager, lxd, github):
    """The replenisher's batch gets the lock from a reconcile loop and spawns no more than needed.

    arrange: count 2, none live; a reconcile loop retaking the manager's lock at once.
    act: replenish (waiting up to 5 s for the lock), then again.
    assert: the first batch spawns 2, the second none: never beyond the count.
    """
    manager = make_manager()
    with TightLoop(manager.config.state_dir / "manager.lock"):
        first = manager.replenish(lock_timeout=5)
        second = manager.replenish(lock_timeout=5)
    assert first.ok, first.errors
    assert len(first.created) == 2
    assert second.created == []
    assert len(lxd.created) == 2


def test_lock_timeout_zero_fails_while_held_and_succeeds_after(tmp_path):
    """A run that cannot wait fails while another holds the lock, and gets it once released.

    arrange: the lock held.
    act: take it with timeout 0 while held, then after the release.
    assert: LockBusyError first; the second time it is held.
    """
    path = tmp_path / "manager.lock"
    with manager_lock(path, 0), pytest.raises(LockBusyError), manager_lock(path, 0):
        pass
    with manager_lock(path, 0):
        assert (tmp_path / "manager.lock.queue").exists()


def test_replenish_without_runner_application_downloads_it_or_reports(
    make_manager, lxd, github, tmp_path
):
    """Replenishing without the runner application reports it and asks GitHub nothing.

    arrange: no cached runner application.
    act: replenish.
    assert: error, no GitHub call.
    """
    from .fakes import FakeBinaryCache

    manager = make_manager(binary=FakeBinaryCache(tmp_path, fail=TokenError("no", 401)))

    report = manager.replenish()

    assert report.error_kinds() == {"token"}  # the download was tried, and failed
    assert github.calls == [] and lxd.created == []


def test_replenish_token_refused_stops_the_batch(make_manager, lxd, github):
    """A refused token stops the replenishing batch.

    arrange: GitHub refuses the token.
    act: replenish 2.
    assert: one error, nothing left.
    """
    github.fail["register_runner"] = TokenError("GitHub rejected the token", 401)
    manager = make_manager()

    report = manager.replenish()

    assert report.error_kinds() == {"token"}
    assert len(report.errors) == 1
    assert lxd.instances == {}


def test_replenish_missing_image_is_reported(make_manager, lxd, github):
    """A missing runner image is reported by replenishing.

    arrange: the runner image is gone.
    act: replenish.
    assert: image error, no GitHub call.
    """
    lxd.images.clear()
    manager = make_manager()

    report = manager.replenish()

    assert report.error_kinds() == {"image"}
    assert github.calls == []


# ----- lifecycle events ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "document, expected",
    [
        (
            {
                "type": "lifecycle",
                "metadata": {
                    "action": "instance-deleted",
                    "source": "/1.0/instances/r-1?project=p",
                },
            },
            InstanceEvent("instance-deleted", "r-1"),
        ),
        (
            {
                "type": "lifecycle",
                "metadata": {"action": "instance-started", "source": "/1.0/instances/x"},
            },
            InstanceEvent("instance-started", "x"),
        ),
        (
            {
                "type": "lifecycle",
                "metadata": {
                    "action": "instance-snapshot-created",
                    "source": "/1.0/instances/x/snapshots/s",
                },
            },
            None,
        ),
        (
            {
                "type": "lifecycle",
                "metadata": {"action": "image-created", "source": "/1.0/images/f"},
            },
            None,
        ),
        ({"type": "logging", "metadata": {"message": "x"}}, None),
        ({"type": "lifecycle"}, None),
        ("not a dict", None),
    ],
)
def test_parse_lifecycle_event(document, expected):
    """A lifecycle message of the event stream parses to an instance event.

    arrange: a message of the event stream.
    act: parse.
    assert: instance events only.
    """
    assert parse_lifecycle_event(document) == expected


def test_only_stop_and_delete_count_as_ended():
    """Only stop, shutdown and delete actions count as an instance ending.

    arrange: the lifecycle actions.
    act: ended.
    assert: stopped, shutdown, deleted only.
    """
    assert InstanceEvent("instance-stopped", "x").ended
    assert InstanceEvent("instance-shutdown", "x").ended
    assert InstanceEvent("instance-deleted", "x").ended
    assert not InstanceEvent("instance-started", "x").ended
    assert not InstanceEvent("instance-created", "x").ended


# ----- the Replenisher, with a fake stream and a fake manager -----------------------------------


class FakeStream:
    """An event stream the test drives: connect, deliver events, break."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.on_event: Callable[[InstanceEvent], None] | None = None
        self.broken = threading.Event()
        self.closed = threading.Event()
        self.connects = 0
        self.fail_connects = 0
        self.connected = threading.Event()

    def follow(self, on_event, on_connected) -> None:
        with self.lock:
            self.connects += 1
            if self.fail_connects:
                self.fail_connects -= 1
                raise LxdError("cannot follow LXD's events: refused")
            self.on_event = on_event
            self.broken.clear()
        on_connected()
        self.connected.set()
        while not self.closed.is_set() and not self.broken.is_set():
            time.sleep(0.005)
        self.connected.clear()
        if not self.closed.is_set():
            raise LxdError("LXD's event stream broke")

    def emit(self, event: InstanceEvent) -> None:
        assert self.on_event is not None
        self.on_event(event)

    def cut(self) -> None:
        self.broken.set()

    def close(self) -> None:
        self.closed.set()


class FakeFleet:
    """A manager whose replenish counts a live set under a lock and fills it to `count`."""

    def __init__(self, count: int, live: int) -> None:
        self.count = count
        self.live = live
        self.lock = threading.Lock()
        self.batches: list[int] = []
        self.errors: list[str] = []
        self.batch_started = threading.Event()
        self.release = threading.Event()
        self.release.set()

    def end(self, runners: int) -> None:
        with self.lock:
            self.live -= runners

    def replenish(self, lock_timeout: float | None = None) -> Report:
        if not self.lock.acquire(timeout=lock_timeout or 0):
            raise LockBusyError("busy")
        try:
            self.batch_started.set()
            self.release.wait(5)
            missing = max(0, self.count - self.live)
            self.batches.append(missing)
            self.live += missing
            report = Report(command="replenish", unit=UNIT, started_at=_now())
            report.created = [f"new-{i}" for i in range(missing)]
            for message in self.errors:
                report.errors.append(_error(message))
            return report
        finally:
            self.lock.release()


def _now():
    import datetime

    return datetime.datetime.now(datetime.timezone.utc)


def _error(message: str):
    from github_runner_manager.report import ErrorEntry

    return ErrorEntry(kind="token", message=message)


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


@pytest.fixture
def running():
    """Start replenishers on threads; stop and join them at the end."""
    started: list[tuple[Replenisher, threading.Thread]] = []

    def start(fleet: FakeFleet, stream: FakeStream, **kwargs) -> Replenisher:
        kwargs.setdefault("debounce", 0.05)
        kwargs.setdefault("max_delay", 0.5)
        kwargs.setdefault("reconnect", (0.01, 0.05))
        kwargs.setdefault("error_backoff", (0.05, 0.2))
        kwargs.setdefault("lock_slice", 0.02)
        replenisher = Replenisher(fleet, stream, runner_name_pattern(PREFIX), **kwargs)
        thread = threading.Thread(target=replenisher.run, daemon=True)
        thread.start()
        started.append((replenisher, thread))
        return replenisher

    yield start
    for replenisher, thread in started:
        replenisher.stop()
        thread.join(5)
        assert not thread.is_alive()


def test_first_connection_counts_and_fills(running):
    """The first connection counts the fleet and fills it.

    arrange: 2 of 4 live.
    act: start.
    assert: one batch of 2 once connected.
    """
    fleet, stream = FakeFleet(count=4, live=2), FakeStream()

    running(fleet, stream)

    wait_for(lambda: fleet.batches == [2])
    assert fleet.live == 4


def test_a_burst_of_ten_endings_makes_one_batch_of_ten(running):
    """A burst of ten endings makes one batch of ten.

    arrange: a full fleet of 10.
    act: all ten end within 50 ms.
    assert: one batch of ten.
    """
    fleet, stream = FakeFleet(count=10, live=10), FakeStream()
    running(fleet, stream, debounce=0.1)
    wait_for(lambda: fleet.batches == [0])

    for index in range(10):
        fleet.end(1)
        stream.emit(InstanceEvent("instance-deleted", name(index)))
        time.sleep(0.005)

    wait_for(lambda: len(fleet.batches) == 2)
    time.sleep(0.3)
    assert fleet.batches == [0, 10]
    assert fleet.live == 10


def test_events_of_other_instances_and_starts_are_ignored(running):
    """Events of other instances and starts are ignored.

    arrange: full fleet.
    act: other units' deletions, own starts.
    assert: no new batch.
    """
    fleet, stream = FakeFleet(count=2, live=2), FakeStream()
    running(fleet, stream)
    wait_for(lambda: fleet.batches == [0])

    stream.emit(InstanceEvent("instance-deleted", name(1, "github-runner-1")))
    stream.emit(InstanceEvent("instance-deleted", "builder-xyz"))
    stream.emit(InstanceEvent("instance-started", name(1)))
    stream.emit(InstanceEvent("instance-created", name(2)))
    time.sleep(0.3)

    assert fleet.batches == [0]


def test_a_continuous_trickle_is_batched_within_max_delay(running):
    """A continuous trickle of events is batched within the maximum delay.

    arrange: events every 30 ms with a 100 ms debounce.
    act: 1 s of them.
    assert: batches.
    """
    fleet, stream = FakeFleet(count=100, live=100), FakeStream()
    running(fleet, stream, debounce=0.1, max_delay=0.25)
    wait_for(lambda: fleet.batches == [0])

    started = time.monotonic()
    while time.monotonic() - started < 1.0:
        fleet.end(1)
        stream.emit(InstanceEvent("instance-stopped", name(1)))
        time.sleep(0.03)
    wait_for(lambda: fleet.live == 100)

    # The debounce alone would never fire; max_delay bounds each event's wait.
    assert 3 <= len(fleet.batches) - 1 <= 8
    assert sum(fleet.batches) == 100 - (100 - sum(fleet.batches))


def test_events_during_a_batch_make_one_more_batch(running):
    """Events during a batch make one more batch after it.

    arrange: a batch held open.
    act: 3 runners end meanwhile.
    assert: one batch after it.
    """
    fleet, stream = FakeFleet(count=5, live=4), FakeStream()
    fleet.release.clear()
    running(fleet, stream)
    fleet.batch_started.wait(2)

    for index in range(3):
        fleet.end(1)
        stream.emit(InstanceEvent("instance-deleted", name(index)))
    fleet.release.set()

    wait_for(lambda: len(fleet.batches) == 2)
    time.sleep(0.2)
    assert len(fleet.batches) == 2
    assert fleet.live == 5


def test_a_busy_lock_is_waited_for_not_failed(running):
    """A busy lock is waited for, not failed.

    arrange: a reconcile holds the lock.
    act: an event.
    assert: the batch runs after it.
    """
    fleet, stream = FakeFleet(count=3, live=3), FakeStream()
    running(fleet, stream)
    wait_for(lambda: fleet.batches == [0])

    with fleet.lock:  # the "reconcile"
        fleet.live -= 1
        stream.emit(InstanceEvent("instance-deleted", name(1)))
        time.sleep(0.3)
        assert fleet.batches == [0]
        fleet.live += 1  # the reconcile replaced it itself
    wait_for(lambda: len(fleet.batches) == 2)

    assert fleet.batches == [0, 0]  # counted under the lock: no duplicate
    assert fleet.live == 3


def test_a_broken_stream_reconnects_and_counts_again(running):
    """A broken stream reconnects and counts again.

    arrange: connected, then runners end while it is cut.
    act: cut.
    assert: reconnect, fill.
    """
    fleet, stream = FakeFleet(count=4, live=4), FakeStream()
    replenisher = running(fleet, stream)
    wait_for(lambda: fleet.batches == [0])

    stream.fail_connects = 2  # LXD is restarting: two refused reconnections
    fleet.end(2)  # ...and two runners end meanwhile, unseen
    stream.cut()

    wait_for(lambda: fleet.live == 4)
    assert stream.connects == 4
    assert replenisher.connections == 2
    assert fleet.batches == [0, 2]


def test_reconnection_backs_off(running, monkeypatch):
    """Reconnection backs off.

    arrange: LXD refuses connections.
    act: run.
    assert: growing waits up to the maximum.
    """
    fleet, stream = FakeFleet(count=1, live=1), FakeStream()
    stream.fail_connects = 6
    waits: list[float] = []
    replenisher = running(fleet, stream, reconnect=(0.01, 0.04))
    original = replenisher._stopping.wait

    def recording(timeout=None):
        waits.append(timeout)
        return original(timeout)

    monkeypatch.setattr(replenisher._stopping, "wait", recording)
    wait_for(lambda: stream.connected.is_set())

    reconnect_waits = [w for w in waits if w is not None]
    assert reconnect_waits and max(reconnect_waits) == 0.04
    assert reconnect_waits == sorted(reconnect_waits)


def test_errors_back_off_then_retry(running):
    """Failing batches back off, then retry.

    arrange: batches fail (GitHub refuses).
    act: one event.
    assert: retries, spaced out.
    """
    fleet, stream = FakeFleet(count=1, live=1), FakeStream()
    fleet.errors = ["refused"]
    running(fleet, stream, error_backoff=(0.1, 0.1))
    wait_for(lambda: len(fleet.batches) >= 1)

    time.sleep(0.45)

    # One batch then one retry per back-off (not a tight loop).
    assert 3 <= len(fleet.batches) <= 6


def test_stop_lets_the_batch_in_progress_finish(running):
    """Stopping lets the batch in progress finish.

    arrange: a batch in progress.
    act: stop.
    assert: it finishes, no later batch starts.
    """
    fleet, stream = FakeFleet(count=3, live=1), FakeStream()
    fleet.release.clear()
    replenisher = Replenisher(fleet, stream, runner_name_pattern(PREFIX), debounce=0.01)
    thread = threading.Thread(target=replenisher.run, daemon=True)
    thread.start()
    fleet.batch_started.wait(2)

    replenisher.stop()
    fleet.end(1)
    stream.emit(InstanceEvent("instance-deleted", name(1)))
    fleet.release.set()
    thread.join(5)

    assert not thread.is_alive()
    assert fleet.batches == [2]
    assert stream.closed.is_set()


def test_real_manager_burst_makes_one_batch_with_one_call_per_runner(make_manager, lxd, github):
    """With the real manager, a burst makes one batch with one GitHub call per runner.

    arrange: a manager on fakes, 10 runners.
    act: all end.
    assert: 10 spawns, 10 calls.
    """
    manager = make_manager(runners={"containers": 10}, timing={"lock_timeout": 0})
    stream = FakeStream()
    replenisher = Replenisher(
        manager, stream, runner_name_pattern(PREFIX), debounce=0.1, lock_slice=0.05
    )
    thread = threading.Thread(target=replenisher.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: len(replenisher.batches) == 1)
        first = list(lxd.instances)
        assert len(first) == 10
        calls = len(github.calls)

        for runner in first:
            del lxd.instances[runner]
            stream.emit(InstanceEvent("instance-deleted", runner))
        wait_for(lambda: len(replenisher.batches) == 2)
    finally:
        replenisher.stop()
        thread.join(5)

    assert len(replenisher.batches[1].created) == 10
    assert len(lxd.instances) == 10
    assert github.calls[calls:] == ["register_runner"] * 10
    assert InstanceType.CONTAINER  # the fleet is of containers only


def test_an_unexpected_error_in_the_stream_does_not_end_following(running):
    """An unexpected error in the stream does not end the following.

    arrange: the stream raises a non-LXD error once.
    act: run.
    assert: it reconnects.
    """
    fleet, stream = FakeFleet(count=2, live=2), FakeStream()
    original = stream.follow
    failed: list[bool] = []

    def follow(on_event, on_connected):
        if not failed:
            failed.append(True)
            raise TypeError("a bug in the adapter")
        original(on_event, on_connected)

    stream.follow = follow  # type: ignore[method-assign]  # patching one method to fail once
    replenisher = running(fleet, stream)

    wait_for(lambda: replenisher.connections == 1 and fleet.batches == [0])
    fleet.end(1)
    stream.emit(InstanceEvent("instance-deleted", name(1)))
    wait_for(lambda: fleet.live == 2 and len(fleet.batches) == 2)


def test_endings_during_a_batch_make_one_next_batch_logged_with_its_requests(running, caplog):
    """Runners ending while a batch spawns are answered by one next batch, logged per batch.

    arrange: a full fleet of 4; a batch held in progress after one runner ended.
    act: two more runners end while it runs; the batch is let go.
    assert: batches of 1 then 2 (never beyond the count); each batch's log line says how many
        requests it answered and what it created.
    """
    caplog.set_level("INFO", logger="github_runner_manager.replenish")
    fleet, stream = FakeFleet(count=4, live=4), FakeStream()
    running(fleet, stream)
    wait_for(lambda: fleet.batches == [0])
    fleet.batch_started.clear()
    fleet.release.clear()

    fleet.end(1)
    stream.emit(InstanceEvent("instance-deleted", name(1)))
    assert fleet.batch_started.wait(5)
    for index in (2, 3):
        fleet.end(1)
        stream.emit(InstanceEvent("instance-deleted", name(index)))
    fleet.release.set()

    wait_for(lambda: len(fleet.batches) == 3)
    time.sleep(0.2)
    assert fleet.batches == [0, 1, 2]
    assert fleet.live == 4
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("batch of")]
    assert lines[1].startswith("batch of 1 request(s)") and "1 created" in lines[1]
    assert lines[2].startswith("batch of 2 request(s)") and "2 created" in lines[2]


class TwoPhaseFleet(FakeFleet):
    """A manager whose replenish counts and creates under the lock, then starts outside it."""

    def __init__(self, count: int, live: int) -> None:
        super().__init__(count, live)
        self.starting = threading.Event()
        self.starting.set()
        self.in_start_phase = 0

    def replenish(self, lock_timeout: float | None = None) -> Report:
        report = super().replenish(lock_timeout)  # count and create, under the lock
        if report.created:
            with self.lock:
                self.in_start_phase += 1
            self.starting.wait(5)  # start the instances, the lock released
            with self.lock:
                self.in_start_phase -= 1
        return report


def test_a_batch_starting_its_instances_does_not_hold_up_the_next(running):
    """A batch starting its instances (outside the lock) does not hold up the next batch.

    arrange: a full fleet of 4 whose batches start their instances after releasing the lock;
        one runner ended and its batch is held in that start phase.
    act: another runner ends.
    assert: its batch counts and creates while the first is still starting (never beyond the
        count); both finish once the starts are let go.
    """
    fleet, stream = TwoPhaseFleet(count=4, live=4), FakeStream()
    replenisher = running(fleet, stream)
    wait_for(lambda: fleet.batches == [0])
    fleet.starting.clear()

    fleet.end(1)
    stream.emit(InstanceEvent("instance-deleted", name(1)))
    wait_for(lambda: fleet.in_start_phase == 1)
    fleet.end(1)
    stream.emit(InstanceEvent("instance-deleted", name(2)))

    wait_for(lambda: fleet.batches == [0, 1, 1], timeout=3)
    assert fleet.in_start_phase == 2
    fleet.starting.set()
    wait_for(lambda: len(replenisher.batches) == 3)
    assert fleet.live == 4


def test_a_replenished_runner_that_ran_and_stopped_is_replaced(make_manager, lxd, github):
    """A runner the replenisher started, whose instance stopped after its job, is replaced.

    arrange: count 1; one replenish made and started a runner (tagged to start after the lock);
        its job ends and its instance is stopped, not yet deleted, well within the creation grace.
    act: replenish again (the `instance-shutdown` event's batch).
    assert: it is not taken for an instance in creation: one more runner is created.
    """
    manager = make_manager(runners={"containers": 1})
    first = manager.replenish()
    assert first.created, first.errors
    lxd.instances[first.created[0]].status = "Stopped"  # powered off after its job

    report = manager.replenish()

    assert report.ok, report.errors
    assert report.counts["container"] == {"live": 0}
    assert len(report.created) == 1


@pytest.mark.parametrize(
    ("last_used_at", "expected"),
    [
        pytest.param("1970-01-01T00:00:00Z", True, id="epoch: never started"),
        pytest.param("0001-01-01T00:00:00Z", True, id="zero time: never started"),
        pytest.param(None, True, id="absent"),
        pytest.param("2026-11-28T14:36:42.072566352Z", False, id="started once"),
    ],
)
def test_never_started_reads_lxd_last_used_at(last_used_at, expected):
    """LXD's `last_used_at` tells an instance never started from one that ran.

    arrange: the values LXD gives before and after a first start.
    act: never_started.
    assert: only the epoch, Go's zero time or nothing mean never started.
    """
    assert never_started(last_used_at) is expected


def test_a_runner_deleted_after_its_shutdown_is_one_request(running, caplog):
    """A runner's deletion after its shutdown is not a second request; a bare deletion is one.

    arrange: a full fleet of 4, a long debounce and delay.
    act: one runner shuts down, then is deleted (as LXD reports an ephemeral runner's end);
        another is deleted without a shutdown first (removed by a reconcile).
    assert: one batch answering 2 requests (the shutdown and the bare deletion), not 3; it
        replaces both runners.
    """
    caplog.set_level("INFO", logger="github_runner_manager.replenish")
    fleet, stream = FakeFleet(count=4, live=4), FakeStream()
    running(fleet, stream, debounce=0.3, max_delay=2.0)
    wait_for(lambda: fleet.batches == [0])

    fleet.end(2)
    stream.emit(InstanceEvent("instance-shutdown", name(1)))
    stream.emit(InstanceEvent("instance-deleted", name(1)))
    stream.emit(InstanceEvent("instance-deleted", name(2)))

    wait_for(lambda: len(fleet.batches) == 2)
    time.sleep(0.4)
    assert fleet.batches == [0, 2]
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("batch of")]
    assert lines[1].startswith("batch of 2 request(s)"), lines
