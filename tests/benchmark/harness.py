# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""The benchmark's test bed: the emulator process, the manager configuration, LXD clean-up.

Everything stays on loopback: the emulator binds 127.0.0.1, the runner containers sit in the
benchmark's own LXD project (address-less bridge, see tests/testbed/setup.sh) and reach the
emulator through the proxy device the manager gives them.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import logging
import os
import select
import signal
import subprocess
import sys
import tarfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pylxd
import pylxd.exceptions

from github_runner_manager.exchange import RunnerExchange
from github_runner_manager.lxd import TAG_UNIT, PylxdClient
from tests.github_emulator import EmulatorControl, request_validation

logger = logging.getLogger("bench")

ROOT = Path(__file__).resolve().parents[2]
PROJECT = os.environ.get("GRT_PROJECT", "github-runner-tests")
IMAGE = os.environ.get("GRT_IMAGE", "github-runner-test")
TOKEN = "ghp_benchmarkToken0000000000000000000000"
REPO = "bench-owner/bench-repo"
UNIT = "bench/0"
PREFIX = "bench-0"
FLAVOR = "bench"
FLOOR_UNIT = "bench-floor/0"
FLOOR_PREFIX = "bench-floor-"
# The shape of every runner (and of the floor's containers): the functional suite's values.
RUNNER_SHAPE = {"cpu": 1, "memory": "512MiB", "disk": "2GiB"}


def child_env() -> dict[str, str]:
    """The environment for the emulator and CLI processes (the repository on the path)."""
    env = dict(os.environ)
    paths = [str(ROOT), str(ROOT / "src")]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


class EmulatorProcess:
    """The GitHub API emulator in its own process, so that it shares no GIL with the manager."""

    def __init__(self, log_path: Path, offline_after: float = 10.0, rate_limit: int = 100000):
        self._log_path = log_path
        self._offline_after = offline_after
        self._rate_limit = rate_limit
        self._process: subprocess.Popen[str] | None = None
        self.url = ""

    def start(self, timeout: float = 30.0) -> None:
        command = [
            sys.executable,
            "-m",
            "tests.github_emulator",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--token",
            TOKEN,
            "--repo",
            REPO,
            "--offline-after",
            str(self._offline_after),
            "--rate-limit",
            str(self._rate_limit),
        ]
        spec = request_validation.cache_dir() / request_validation.SPEC_FILE
        if spec.is_file() and importlib.util.find_spec("openapi_schema_validator") is not None:
            # Requests breaking GitHub's description are refused and listed in the stats.
            command += ["--openapi", str(spec)]
        log = self._log_path.open("w", encoding="utf-8")
        self._process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=child_env(),
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            start_new_session=True,  # a Ctrl-C of the benchmark reaches it through stop()
        )
        log.close()
        assert self._process.stdout is not None
        ready, _, _ = select.select([self._process.stdout], [], [], timeout)
        line = self._process.stdout.readline().strip() if ready else ""
        if not line.startswith("ready "):
            self.stop()
            raise RuntimeError(f"the emulator did not start (got {line!r}; see {self._log_path})")
        self.url = line.split(" ", 1)[1]
        if not self.url.startswith("http://127.0.0.1:"):
            self.stop()
            raise RuntimeError(f"the emulator is not on loopback: {self.url}")

    @property
    def control(self) -> EmulatorControl:
        return EmulatorControl(self.url)

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


def manager_config_data(
    url: str,
    work: Path,
    containers: int,
    concurrency: int,
    metrics: bool = True,
    baked_from: str | None = None,
) -> dict[str, Any]:
    """The manager configuration the benchmark runs with (JSON-serialisable).

    Timing settings are the production defaults except `spawn_concurrency`.

    Args:
        url: the emulator URL.
        work: the benchmark's working directory (state, metrics log, crash logs).
        containers: container runners to keep.
        concurrency: `timing.spawn_concurrency`.
        metrics: whether metrics are on (they give the runners' own boot and online times).
        baked_from: runners start from the manager's image baked (runner application and
            scripts) from this image; None: from the test bed's image, with everything pushed.

    Returns:
        The configuration.
    """
    image = {"build": True, "source": baked_from, "timeout": 900} if baked_from else {}
    return {
        "image": image,
        "unit": UNIT,
        "name_prefix": PREFIX,
        "flavor": FLAVOR,
        "github": {"url": url, "path": REPO, "token": TOKEN},
        "runners": {"containers": containers, "base_image": IMAGE, **RUNNER_SHAPE},
        "lxd": {"project": PROJECT, "storage_pool": "default"},
        "metrics": {"enabled": metrics, "log_path": str(work / "metrics.log")},
        "timing": {"spawn_concurrency": concurrency},
        "crash_log_dir": str(work / "crashed"),
        "job_log_dir": str(work / "jobs"),
        "state_dir": str(work / "state"),
    }


def write_config(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    path.chmod(0o600)
    return path


class OnlineWatcher:
    """Polls the emulator and notes when each runner was first seen, and first seen idle."""

    def __init__(self, control: EmulatorControl, prefix: str, interval: float = 0.1):
        self._control = control
        self._prefix = prefix
        self._interval = interval
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self.first_seen: dict[str, float] = {}
        self.first_idle: dict[str, float] = {}
        self.idle_now: set[str] = set()
        self.polls = 0
        self._thread = threading.Thread(target=self._run, name="bench-watcher", daemon=True)

    def __enter__(self) -> OnlineWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                runners = self._control.runners(REPO)
            except Exception as exc:  # a missed poll is retried
                logger.debug("poll failed: %s", exc)
                runners = None
            now = time.time()
            if runners is not None:
                with self._changed:
                    self.polls += 1
                    self.idle_now = set()
                    for runner in runners:
                        name = str(runner["name"])
                        if not name.startswith(self._prefix):
                            continue
                        self.first_seen.setdefault(name, now)
                        if runner["status"] == "online" and not runner["busy"]:
                            self.first_idle.setdefault(name, now)
                            self.idle_now.add(name)
                    self._changed.notify_all()
            self._stop.wait(self._interval)

    def wait_idle(self, names: set[str], timeout: float) -> dict[str, float]:
        """Wait until every named runner has been seen online and idle.

        Args:
            names: the runners.
            timeout: seconds to wait.

        Returns:
            When each was first seen idle (epoch seconds).

        Raises:
            TimeoutError: if some never came online.
        """
        deadline = time.monotonic() + timeout
        with self._changed:
            while not names <= self.first_idle.keys():
                left = deadline - time.monotonic()
                if left <= 0:
                    missing = sorted(names - self.first_idle.keys())
                    raise TimeoutError(f"runners never online and idle: {missing}")
                self._changed.wait(min(left, 1.0))
            return {name: self.first_idle[name] for name in names}


def runner_archive(control: EmulatorControl, size: str) -> dict[str, Any]:
    """What every spawn pushes: the linux x64 runner archive's name, bytes and file count."""
    listing = control.downloads()
    linux = next(a for a in listing if a["os"] == "linux" and a["architecture"] == "x64")
    with urllib.request.urlopen(linux["download_url"], timeout=300) as answer:  # the emulator
        data = answer.read()
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        files = sum(1 for member in archive.getmembers() if member.isfile())
    logger.info(
        "runner archive %s: %.1f MiB, %d files", linux["filename"], len(data) / 2**20, files
    )
    return {"filename": linux["filename"], "bytes": len(data), "files": files, "size": size}


def instance_tags(client: pylxd.Client) -> list[tuple[str, str, str]]:
    """Every instance of the project: name, unit tag, status."""
    response = client.api.instances.get(params={"recursion": "1"})
    return [
        (item["name"], (item.get("config") or {}).get(TAG_UNIT, ""), item.get("status", ""))
        for item in response.json()["metadata"]
    ]


def ours(client: pylxd.Client, unit: str = UNIT) -> list[str]:
    return [name for name, tag, _ in instance_tags(client) if tag == unit]


def delete_bench_instances(lxd: PylxdClient, client: pylxd.Client) -> list[str]:
    """Delete every instance the benchmark made (its unit tags or the floor's name prefix)."""
    deleted = []
    for name, tag, _ in instance_tags(client):
        if tag in (UNIT, FLOOR_UNIT) or name.startswith(FLOOR_PREFIX):
            with contextlib.suppress(Exception):
                lxd.delete_instance(name)
                deleted.append(name)
    return deleted


def unmount_exchanges(work: Path) -> None:
    """Unmount the runners' exchange tmpfs the manager left (runners still alive at the end)."""
    exchange = RunnerExchange(work / "state" / "runners", work / "state" / "quarantine")
    for runner in exchange.runners():
        exchange.delete(runner)


def wait_until(predicate: Any, timeout: float, interval: float = 0.25) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def lxd_version(client: pylxd.Client) -> str:
    with contextlib.suppress(Exception):
        return str(client.host_info["environment"]["server_version"])
    return "unknown"


def git_state() -> dict[str, Any]:
    def git(*args: str) -> str:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            return subprocess.run(
                ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=False
            ).stdout.rstrip()
        return ""

    dirty = [line[3:] for line in git("status", "--porcelain").splitlines() if line]
    return {"commit": git("rev-parse", "--short", "HEAD"), "dirty": dirty}


def lxd_project_ready(client: pylxd.Client) -> None:
    """Fail early, with a hint, when the test bed is missing."""
    try:
        client.images.get_by_alias(IMAGE)
    except pylxd.exceptions.LXDAPIException as exc:
        raise RuntimeError(
            f"the LXD test bed is not ready ({exc}); run `GRT_PROJECT={PROJECT} bash "
            "tests/testbed/setup.sh` as root"
        ) from exc


def background(client: pylxd.Client) -> dict[str, Any]:
    """What else loads the machine: load averages and other projects' running instances."""
    running: dict[str, int] = {}
    with contextlib.suppress(Exception):
        response = client.api.instances.get(params={"recursion": "1", "all-projects": "true"})
        for item in response.json()["metadata"]:
            project = str(item.get("project", "default"))
            if project != PROJECT and item.get("status") == "Running":
                running[project] = running.get(project, 0) + 1
    return {"load": [round(x, 2) for x in os.getloadavg()], "other_running": running}


POOL_PATH = Path("/var/lib/lxd/storage-pools/default")


def pending_deletions(pool: Path = POOL_PATH) -> int | None:
    """Deleted btrfs subvolumes of the pool that the kernel has not cleaned up yet.

    Returns:
        The count, or None when the pool is not btrfs (or `btrfs` is missing).
    """
    try:
        result = subprocess.run(
            ["btrfs", "subvolume", "list", "-d", str(pool)],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return len([line for line in result.stdout.splitlines() if line.strip()])


def wait_quiet(timeout: float = 300.0) -> dict[str, Any]:
    """Wait until btrfs has cleaned up the subvolumes of the instances deleted before.

    LXD deletes a container's btrfs subvolume at once, but the kernel's btrfs-cleaner thread
    frees it later, slowly (seconds per subvolume with the quotas that root disk sizes set) and
    busily: meanwhile a container start took 7 s instead of 1.5 s. Every measurement starts
    once the pool has no deletion pending, so runs and the floor see the same machine.

    Args:
        timeout: the longest wait in seconds.

    Returns:
        The deletions pending at first, and the seconds waited.
    """
    started = time.monotonic()
    first = pending = pending_deletions()
    while pending and time.monotonic() - started < timeout:
        time.sleep(1.0)
        pending = pending_deletions()
    return {"pending": first, "left": pending, "waited": round(time.monotonic() - started, 1)}
