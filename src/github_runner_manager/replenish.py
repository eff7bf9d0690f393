# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""Event-driven replenishment: a finished runner is replaced within about a second.

The check-interval timer's reconcile leaves a hole in the fleet for minutes after each job. The
replenisher is a long-running process (its own systemd service) that follows LXD's event
stream, and when one of the unit's runner instances stops or goes (an ephemeral runner ends
after its job), it runs `RunnerManager.replenish`: under the manager's lock it counts the unit's
live instances in LXD and spawns the difference to the configured count in one parallel batch.

- Cheap: a replacement costs one GitHub call (its JIT configuration); nothing lists runners.
- Bursts coalesce: after the first event it waits `debounce` seconds for more (at most
  `max_delay` in all), so ten runners ending together make one batch of ten spawns. An
  instance's stop is its request: its deletion that follows (ephemeral) is not another.
- Never beyond the count, never racing the timer: it counts under the same lock as a reconcile,
  and waits for that lock rather than failing.
- Nothing missed: every (re)connection of the stream is followed by a count; a broken stream
  is reconnected with exponential back-off.
- Failures back off: a batch with errors (GitHub refusing, a missing image) delays the next
  one, so the deletions its own clean-up causes do not turn into a loop of failing spawns.
- Batches do not queue behind each other: each batch runs on its own thread, and holds the lock
  only to count and create its instances (`RunnerManager.replenish` starts them after releasing
  it), so a runner ending while a batch starts its instances is answered by the next batch
  within about a second, not after the whole batch.
- Stops cleanly: `stop` (SIGTERM) lets the batches in progress finish (a spawn that fails removes
  what it made); no spawn starts after it.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from typing import Protocol

from .errors import LockBusyError, LxdError
from .lxd import InstanceEvent
from .report import Report

logger = logging.getLogger(__name__)

# Seconds to wait for more events after one, so a burst makes one batch.
DEBOUNCE = 0.2
# The longest an event waits for its batch while more keep coming.
MAX_DELAY = 1.0
# Seconds a batch waits for the lock in one go (between two looks at `stop`).
LOCK_SLICE = 1.0
# Seconds a runner's stop is remembered, so that its deletion is not a second request.
STOPPED_MEMORY = 60.0
# Reconnection back-off of the event stream: first and longest wait, in seconds.
RECONNECT_FIRST = 0.5
RECONNECT_MAX = 30.0
# Back-off after a batch with errors: first and longest wait, in seconds.
ERROR_FIRST = 5.0
ERROR_MAX = 300.0


class EventSource(Protocol):
    """A stream of instance lifecycle events (`lxd.LxdEventStream`)."""

    def follow(
        self, on_event: Callable[[InstanceEvent], None], on_connected: Callable[[], None]
    ) -> None:
        """Deliver events until the stream ends; raise LxdError when it breaks."""

    def close(self) -> None:
        """End the stream for good (from another thread)."""


class Replenishing(Protocol):
    """What the replenisher asks of the manager (`RunnerManager.replenish`)."""

    def replenish(self, lock_timeout: float | None = None) -> Report:
        """Count the live instances under the lock and spawn the difference."""


class Replenisher:
    """Keeps the fleet at its size between reconciles, driven by LXD's lifecycle events."""

    def __init__(
        self,
        manager: Replenishing,
        events: EventSource,
        name_pattern: re.Pattern[str],
        *,
        debounce: float = DEBOUNCE,
        max_delay: float = MAX_DELAY,
        reconnect: tuple[float, float] = (RECONNECT_FIRST, RECONNECT_MAX),
        error_backoff: tuple[float, float] = (ERROR_FIRST, ERROR_MAX),
        lock_slice: float = LOCK_SLICE,
        monotonic: Callable[[], float] = time.monotonic,
    ):
        """Describe the replenisher.

        Args:
            manager: runs one batch (count under the lock, spawn the difference).
            events: the LXD event stream.
            name_pattern: matches the names of the unit's runners; other instances' events are
                ignored (the count itself selects the unit's instances by their tag).
            debounce: seconds to wait for more events after one.
            max_delay: the longest an event waits for its batch.
            reconnect: first and longest wait before reconnecting a broken stream.
            error_backoff: first and longest wait after a batch with errors.
            lock_slice: seconds a batch waits for the lock between two looks at `stop`.
            monotonic: a monotonic clock.
        """
        self._manager = manager
        self._events = events
        self._pattern = name_pattern
        self._debounce = debounce
        self._max_delay = max_delay
        self._reconnect = reconnect
        self._error_backoff = error_backoff
        self._lock_slice = lock_slice
        self._monotonic = monotonic
        self._wake = threading.Condition()
        self._pending = False
        self._first_pending: float | None = None
        self._last_event = 0.0
        self._events_pending = 0
        self._stopping = threading.Event()
        self._errors_in_a_row = 0
        self._resume_at = 0.0
        # Runners whose stop was seen (name -> when), so their deletion is not a second request.
        self._stopped: dict[str, float] = {}
        self.batches: list[Report] = []
        self.connections = 0

    # ----- events (the stream's thread) ------------------------------------------------------

    def _request(self) -> None:
        with self._wake:
            now = self._monotonic()
            if not self._pending:
                self._pending = True
                self._first_pending = now
            self._last_event = now
            self._events_pending += 1
            self._wake.notify_all()

    def _on_event(self, event: InstanceEvent) -> None:
        if not event.ended or not self._pattern.match(event.name):
            return
        logger.debug("runner %s: %s", event.name, event.action)
        if event.action == "instance-deleted" and self._stopped.pop(event.name, None) is not None:
            # An ephemeral runner's deletion right after its stop: the stop was the request (the
            # count leaves stopped instances out), and waiting for this one would only stretch
            # the coalescing window.
            return
        if event.action != "instance-deleted":
            now = self._monotonic()
            self._stopped = {
                name: at for name, at in self._stopped.items() if now - at < STOPPED_MEMORY
            }
            self._stopped[event.name] = now
        self._request()

    def _on_connected(self) -> None:
        self.connections += 1
        logger.info("following LXD's events (connection %d); counting the fleet", self.connections)
        self._request()  # whatever happened while not connected is observed afresh

    def _follow(self) -> None:
        delay = self._reconnect[0]
        while not self._stopping.is_set():
            connected_before = self.connections
            try:
                self._events.follow(self._on_event, self._on_connected)
            except LxdError as exc:
                logger.warning("%s; reconnecting in %.1fs", exc, delay)
            except Exception:
                # Never let the stream's thread die: without it no event would arrive again.
                logger.exception("unexpected error following LXD's events; reconnecting")
            else:
                if self._stopping.is_set():
                    return
                logger.warning("LXD's event stream ended; reconnecting in %.1fs", delay)
            if self.connections > connected_before:
                delay = self._reconnect[0]  # it was connected: start the back-off afresh
            if self._stopping.wait(delay):
                return
            delay = min(delay * 2, self._reconnect[1])

    # ----- batches (the main thread) ---------------------------------------------------------

    def _next_batch(self) -> tuple[int, float] | None:
        """Wait for a request, then for the burst to settle.

        Returns:
            How many requests the batch answers and how long the first waited for it (the
            coalescing delay); None once stopping.
        """
        with self._wake:
            while not self._pending and not self._stopping.is_set():
                self._wake.wait(1.0)
            while not self._stopping.is_set():
                now = self._monotonic()
                first = self._first_pending if self._first_pending is not None else now
                due = min(self._last_event + self._debounce, first + self._max_delay)
                if now >= due:
                    break
                self._wake.wait(due - now)
            if self._stopping.is_set():
                return None
            first = self._first_pending if self._first_pending is not None else self._monotonic()
            batch = (self._events_pending, self._monotonic() - first)
            self._pending = False
            self._first_pending = None
            self._events_pending = 0
            return batch

    def _run_batch(self) -> Report | None:
        while not self._stopping.is_set():
            try:
                return self._manager.replenish(lock_timeout=self._lock_slice)
            except LockBusyError:
                continue  # a reconcile runs: wait for it (and count after it)
        return None

    def _after(self, report: Report, batch: tuple[int, float]) -> None:
        self.batches.append(report)
        requests, coalesced = batch
        # One line per batch, with where its time went (the job-stream benchmark reads it).
        logger.info(
            "batch of %d request(s): coalesced %.3fs, lock wait %.3fs, %d live, %d created (%s) "
            "in %.3fs, %d GitHub calls, %d standbys made%s",
            requests,
            coalesced,
            report.timings.get("lock_wait", 0.0),
            sum(count.get("live", 0) for count in report.counts.values()),
            len(report.created),
            ", ".join(report.created),
            report.duration or 0.0,
            report.github_calls,
            sum(count.get("standbys_made", 0) for count in report.counts.values()),
            "".join(f"; {e.kind}: {e.message}" for e in report.errors),
        )
        if not report.errors:
            self._errors_in_a_row = 0
            return
        first, longest = self._error_backoff
        delay = min(first * 2**self._errors_in_a_row, longest)
        self._errors_in_a_row += 1
        # No batch starts before the back-off is over (see `_hold_back`).
        self._resume_at = max(self._resume_at, self._monotonic() + delay)
        logger.warning("the batch had errors: trying again in %.0fs", delay)
        if not self._stopping.wait(delay):
            self._request()  # the fleet may still be short: try again after the back-off

    def _hold_back(self) -> None:
        """Wait out the back-off after a batch with errors (or until stopping)."""
        remaining = self._resume_at - self._monotonic()
        if remaining > 0:
            self._stopping.wait(remaining)

    def _batch(self, batch: tuple[int, float]) -> None:
        try:
            report = self._run_batch()
        except Exception:
            # A batch's thread must not die silently: the fleet would stay short until the timer.
            logger.exception("unexpected error in a replenishing batch")
            self._resume_at = self._monotonic() + self._error_backoff[0]
            self._request()
            return
        if report is not None:
            self._after(report, batch)

    def run(self) -> None:
        """Follow the events and replenish until `stop`; returns once stopped cleanly.

        Each batch runs on its own thread, so a batch starting its instances (after releasing
        the lock) does not hold up the next one.
        """
        follower = threading.Thread(target=self._follow, name="lxd-events", daemon=True)
        follower.start()
        running: list[threading.Thread] = []
        try:
            while (batch := self._next_batch()) is not None:
                self._hold_back()
                if self._stopping.is_set():
                    break
                thread = threading.Thread(
                    target=self._batch, args=(batch,), name="replenish-batch", daemon=True
                )
                thread.start()
                running = [t for t in running if t.is_alive()] + [thread]
        finally:
            self._stopping.set()
            for thread in running:
                thread.join()  # the batches in progress finish: nothing is left half-made
            self._events.close()
            follower.join(timeout=10)

    def stop(self) -> None:
        """Stop: the batch in progress finishes, no new one starts (safe from a signal handler)."""
        self._stopping.set()
        # A signal handler must not block on the condition: wake the waiter from a thread.
        threading.Thread(target=self._notify, daemon=True).start()

    def _notify(self) -> None:
        with self._wake:
            self._wake.notify_all()
