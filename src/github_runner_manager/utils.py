# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""Small helpers shared by the runner manager's modules.

Atomic file writes, running calls in parallel, and the manager's file lock (`manager_lock`),
which waiting runs get first come, first served.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import errno
import fcntl
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TypeVar

from .errors import LockBusyError

T = TypeVar("T")
R = TypeVar("R")

# Seconds between two tries of a lock file while waiting for it.
LOCK_POLL = 0.02


def atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write a file so that readers see either the old or the new content, never a part.

    Args:
        path: the destination.
        data: the content.
        mode: the file's permissions.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def run_parallel(
    function: Callable[[T], R], items: Iterable[T], workers: int
) -> list[tuple[T, R | None, BaseException | None]]:
    """Call a function on every item with a bounded number of threads.

    Args:
        function: what to call; its exceptions are collected, not raised.
        items: the arguments.
        workers: the maximum number of calls at the same time.

    Returns:
        For each item, in order: the item, the result (or None) and the exception (or None).
    """
    items = list(items)
    if not items:
        return []
    results: list[tuple[T, R | None, BaseException | None]] = []
    with concurrent.futures.ThreadPoolExecutor(
        max_workers=max(1, min(workers, len(items)))
    ) as pool:
        futures = [pool.submit(function, item) for item in items]
        for item, future in zip(items, futures, strict=True):
            try:
                results.append((item, future.result(), None))
            except Exception as exc:
                results.append((item, None, exc))
    return results


def _try_flock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno not in (errno.EAGAIN, errno.EACCES):
            raise
        return False
    return True


def _wait_flock(fd: int, deadline: float, sleep: Callable[[float], None]) -> bool:
    while not _try_flock(fd):
        if time.monotonic() >= deadline:
            return False
        sleep(LOCK_POLL)
    return True


@contextlib.contextmanager
def manager_lock(
    path: Path, timeout: float, sleep: Callable[[float], None] = time.sleep
) -> Iterator[None]:
    """Hold the manager's file lock; waiting runs get it first come, first served.

    A run that releases the lock and at once wants it again (a reconcile in a tight loop) must
    not starve a run waiting for it (the replenisher). So a waiter first takes a second file
    lock, the queue (`<path>.queue`), then the lock itself, and gives the queue back once it
    holds the lock. Whoever holds the queue is next: a run that just released the lock has to
    take the queue before the lock again, and the queue is held by the waiter, so the waiter
    gets the lock within one try (`LOCK_POLL`) of its release.

    Args:
        path: the lock file.
        timeout: seconds to wait for another run to finish.
        sleep: the sleep function.

    Yields:
        Nothing; the lock is held inside the block.

    Raises:
        LockBusyError: if another run held the lock for the whole timeout.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout
    queue = os.open(path.with_name(f"{path.name}.queue"), os.O_RDWR | os.O_CREAT, 0o600)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            locked = _wait_flock(queue, deadline, sleep) and _wait_flock(fd, deadline, sleep)
        finally:
            os.close(queue)  # the queue is given back as soon as the lock is held (or not)
        if not locked:
            raise LockBusyError(f"another run of the runner manager holds {path}; try again later")
        yield
    finally:
        os.close(fd)
