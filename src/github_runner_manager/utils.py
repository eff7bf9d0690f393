# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""Small helpers shared by the runner manager's modules."""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


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
