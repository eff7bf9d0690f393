# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""Profiling helpers: a wall-clock stack sampler for threads, and a cProfile summary.

cProfile and pyinstrument only see the thread that starts them, but the manager creates runners
in a thread pool. The sampler reads every thread's stack (`sys._current_frames`) at a fixed
interval and counts, per function, the samples in which it is on the stack (cumulative) and on
top (self). Blocking I/O shows as time in the function that waits (a socket read under pylxd's
HTTP call), which is what a wall-clock profile of an I/O-bound spawn needs.
"""

from __future__ import annotations

import collections
import cProfile
import io
import pstats
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

_SITE_MARKERS = ("site-packages/", "dist-packages/", "/src/", "/lib/python3")


def _short(path: str) -> str:
    for marker in _SITE_MARKERS:
        if marker in path:
            return path.rsplit(marker, 1)[1]
    return Path(path).name


def frame_key(frame: FrameType) -> str:
    code = frame.f_code
    name = getattr(code, "co_qualname", code.co_name)
    return f"{_short(code.co_filename)}:{name}"


class StackSampler:
    """Samples the stacks of all threads whose stack contains a frame matching `require`."""

    def __init__(self, require: Callable[[str], bool], interval: float = 0.005):
        self._require = require
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True)
        self.samples = 0
        self.cumulative: collections.Counter[str] = collections.Counter()
        self.own: collections.Counter[str] = collections.Counter()

    def __enter__(self) -> StackSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        me = threading.get_ident()
        while not self._stop.wait(self._interval):
            for ident, frame in sys._current_frames().items():
                if ident == me:
                    continue
                keys: list[str] = []
                current: FrameType | None = frame
                while current is not None:
                    keys.append(frame_key(current))
                    current = current.f_back
                if not any(self._require(key) for key in keys):
                    continue
                self.samples += 1
                self.own[keys[0]] += 1
                for key in set(keys):
                    self.cumulative[key] += 1

    def summary(self, top: int = 15, focus: str = "github_runner_manager/") -> dict[str, Any]:
        """The top functions by share of the sampled thread time.

        Args:
            top: how many functions per list.
            focus: the path part of the functions worth listing by cumulative time.

        Returns:
            `samples`, `interval`, and `cumulative` (functions under `focus`) and `self`
            (any function) lists of [function, share, thread-seconds].
        """

        def rows(counter: collections.Counter[str], keep: Callable[[str], bool]) -> list[Any]:
            return [
                [key, round(count / self.samples, 3), round(count * self._interval, 2)]
                for key, count in counter.most_common()
                if keep(key)
            ][:top]

        if not self.samples:
            return {"samples": 0, "interval": self._interval, "cumulative": [], "self": []}
        return {
            "samples": self.samples,
            "interval": self._interval,
            "cumulative": rows(self.cumulative, lambda key: key.startswith(focus)),
            "self": rows(self.own, lambda key: True),
        }


def cprofile_summary(profile: cProfile.Profile | str, top: int = 15) -> list[list[Any]]:
    """The top functions of a cProfile run by cumulative time.

    Args:
        profile: a profile, or the path of a saved one.
        top: how many rows.

    Returns:
        Rows of [function, calls, own seconds, cumulative seconds].
    """
    stats = pstats.Stats(profile, stream=io.StringIO())
    entries = stats.stats  # type: ignore[attr-defined]  # pstats keeps its table undeclared
    rows = []
    for (path, line, name), (_, calls, own, cumulative, _) in entries.items():
        label = f"{_short(path)}:{line}({name})" if line else name
        rows.append([label, calls, round(own, 4), round(cumulative, 4)])
    rows.sort(key=lambda row: row[3], reverse=True)
    return rows[:top]
