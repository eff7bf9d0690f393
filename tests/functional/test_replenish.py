# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""Event-driven replenishment end to end: real LXD events, real containers, the emulator.

No test here calls reconcile: the replenisher fills the fleet on its first connection to LXD's
event stream and replaces runners as their jobs end. The stream is cut from the test side (the
adapter's `cut`, and a stream that refuses to reconnect for a while), never by restarting the
shared LXD daemon, which other test runs on this machine use.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pylxd
import pylxd.exceptions
import pytest

from github_runner_manager.cli import build_manager
from github_runner_manager.errors import LxdError
from github_runner_manager.lxd import LxdEventStream
from github_runner_manager.manager import RunnerManager
from github_runner_manager.planner import runner_name_pattern
from github_runner_manager.replenish import Replenisher
from tests.github_emulator import Emulator

from .conftest import PROJECT, TEST_REPO, TEST_TOKEN
from .test_manager import gh_runners, manager_config, ours, wait_job, wait_online

pytestmark = pytest.mark.lxd

ROOT = Path(__file__).resolve().parents[2]


class HoldableStream(LxdEventStream):
    """The real event stream, which the test can also keep from reconnecting (LXD "down")."""

    def __init__(self, project: str):
        super().__init__(project=project)
        self.down = threading.Event()

    def follow(self, on_event, on_connected) -> None:
        if self.down.is_set():
            raise LxdError("cannot follow LXD's events: connection refused (test fault)")
        super().follow(on_event, on_connected)


class Running:
    """A replenisher on a thread, with its manager and stream."""

    def __init__(self, manager: RunnerManager):
        self.manager = manager
        self.stream = HoldableStream(PROJECT)
        self.replenisher = Replenisher(
            manager, self.stream, runner_name_pattern(manager.config.name_prefix)
        )
        self.thread = threading.Thread(target=self.replenisher.run, daemon=True)
        self.thread.start()

    def created(self) -> list[str]:
        return [name for report in self.replenisher.batches for name in report.created]

    def stop(self) -> None:
        self.replenisher.stop()
        self.thread.join(120)
        assert not self.thread.is_alive(), "the replenisher did not stop"


@pytest.fixture
def replenishing(
    emulator: Emulator, tmp_path: Path, lxd_client: pylxd.Client
) -> Iterator[Callable[..., Running]]:
    """Start replenishers on real managers; stop them and flush their runners at teardown."""
    started: list[Running] = []

    def _start(unit: str = "replenish/0", **runners: Any) -> Running:
        state_dir = tmp_path / unit.replace("/", "-")
        running = Running(build_manager(manager_config(emulator, state_dir, unit, **runners)))
        started.append(running)
        return running

    yield _start
    for running in started:
        running.stop()
    emulator.control.clear_faults()
    for running in started:
        running.manager.flush(busy=True, reconcile=False)


def live(lxd_client: pylxd.Client, unit: str = "replenish/0") -> list[Any]:
    """The unit's instances that are not stopped (a stopped ephemeral one is going away)."""
    return [i for i in ours(lxd_client, unit) if i.status != "Stopped"]


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def jit_calls(emulator: Emulator) -> int:
    routes = emulator.control.stats()["by_route"]
    return sum(count for route, count in routes.items() if "generate-jitconfig" in route)


def runner_list_calls(emulator: Emulator) -> int:
    routes = emulator.control.stats()["by_route"]
    return sum(
        count for route, count in routes.items() if route.startswith("GET") and "runners" in route
    )


PREFIX = "replenish-0-"
LABELS = ["self-hosted", "replenish"]  # the flavor is the application name


def test_a_job_end_brings_a_fresh_idle_runner_without_reconcile(
    replenishing, emulator, lxd_client
):
    """A job's end brings a fresh idle runner without a reconcile.

    arrange: 2 runners filled by the replenisher.
    act: one job runs and ends.
    assert: a fresh runner is idle again with no reconcile; it cost one GitHub call, no listing.
    """
    running = replenishing(containers=2)
    wait_online(emulator, 2, PREFIX)
    first = {r["name"] for r in gh_runners(emulator, PREFIX)}
    emulator.control.reset_stats()

    job = emulator.control.queue_job(TEST_REPO, LABELS, "echo replenish")
    done = wait_job(emulator, job["id"], "completed")
    ended = time.monotonic()
    wait_until(
        lambda: done["runner_name"] not in {r["name"] for r in gh_runners(emulator, PREFIX)},
        60,
        "the worker to go",
    )
    runners = wait_online(emulator, 2, PREFIX)
    recovered = time.monotonic() - ended

    names = {r["name"] for r in runners}
    assert done["runner_name"] in first and done["runner_name"] not in names
    assert len(names - first) == 1, "exactly one fresh runner"
    assert len(live(lxd_client)) == 2
    assert jit_calls(emulator) == 1
    assert runner_list_calls(emulator) == 0
    assert running.replenisher.connections == 1
    print(f"job end -> fresh runner idle: {recovered:.1f}s")


def test_ten_jobs_ending_together_make_ten_spawns(replenishing, emulator, lxd_client):
    """Ten jobs ending together make exactly ten spawns in one batch.

    arrange: 10 idle runners.
    act: 10 jobs that end at the same second.
    assert: exactly ten spawns, in one batch; ten JIT calls and no listing.
    """
    running = replenishing(containers=10)
    wait_online(emulator, 10, PREFIX)
    # The fill's batch is recorded once its last spawn returns, which can be after the runners
    # come online: count from after it.
    wait_until(
        lambda: sum(len(b.created) for b in running.replenisher.batches) >= 10,
        60,
        "the fill's batch",
    )
    batches_before = len(running.replenisher.batches)
    emulator.control.reset_stats()

    end_at = int(time.time()) + 25
    script = f"while [ $(date +%s) -lt {end_at} ]; do sleep 0.1; done"
    jobs = [emulator.control.queue_job(TEST_REPO, LABELS, script) for _ in range(10)]
    for job in jobs:
        wait_job(emulator, job["id"], "completed", timeout=120)
    wait_online(emulator, 10, PREFIX)
    wait_until(lambda: len(live(lxd_client)) == 10, 60, "ten live instances")
    time.sleep(3)  # any late batch would show now

    batches = [b for b in running.replenisher.batches[batches_before:] if b.created]
    assert sum(len(b.created) for b in batches) == 10
    assert [len(b.created) for b in batches] == [10], "one batch of ten"
    assert jit_calls(emulator) == 10
    assert runner_list_calls(emulator) == 0
    assert len(live(lxd_client)) == 10


def test_a_cut_event_stream_reconnects_and_converges(replenishing, emulator, lxd_client):
    """A cut LXD event stream reconnects and the fleet converges.

    arrange: 2 runners.
    act: cut the stream; LXD refuses reconnection while a runner goes.
    assert: it reconnects with back-off, counts again and replaces the unseen loss.
    """
    running = replenishing(containers=2)
    wait_online(emulator, 2, PREFIX)
    # Runners listen before their spawn returns (LXD may still be finishing the start
    # operation): wait for the fill's batch, so that the deletion below is not refused.
    wait_until(lambda: len(running.replenisher.batches) >= 1, 60, "the fill's batch")
    assert running.replenisher.connections == 1

    running.stream.down.set()
    assert running.stream.cut()
    victim = live(lxd_client)[0].name
    deadline = time.monotonic() + 60
    while (
        subprocess.run(
            ["lxc", "delete", "--force", "--project", PROJECT, victim], check=False, timeout=60
        ).returncode
        != 0
    ):
        assert time.monotonic() < deadline, f"LXD refused to delete {victim} for 60 s"
        time.sleep(1)
    time.sleep(3)  # several refused reconnections; the deletion went unseen
    assert len(live(lxd_client)) == 1
    running.stream.down.clear()

    wait_until(lambda: running.replenisher.connections == 2, 60, "a reconnection")
    wait_until(lambda: len(live(lxd_client)) == 2, 60, "the fleet to converge")
    runners = wait_online(emulator, 2, PREFIX)
    assert victim not in {i.name for i in live(lxd_client)}
    assert len([r for r in runners if r["status"] == "online"]) >= 2


def _config_file(manager: RunnerManager, tmp_path: Path) -> Path:
    config = manager.config
    token_file = tmp_path / "token"
    token_file.write_text(TEST_TOKEN)
    github = config.github.model_copy(update={"token": None, "token_file": token_file})
    path = tmp_path / "config.json"
    path.write_text(
        json.dumps(
            config.model_copy(update={"github": github}).model_dump(mode="json", exclude_none=True)
        )
    )
    return path


def replenish_command(config_file: Path) -> subprocess.Popen[str]:
    """Start the `replenish` command as its systemd service does; its stderr is piped."""
    return subprocess.Popen(
        [sys.executable, "-m", "github_runner_manager", "--config", str(config_file), "replenish"],
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_sigterm_during_a_spawn_leaves_nothing_half_made(emulator, lxd_client, tmp_path):
    """SIGTERM during a spawn leaves nothing half made.

    arrange: the replenish command filling 3 runners.
    act: SIGTERM once the first exists.
    assert: it exits 0 in bounded time; every instance left is a registered runner that comes
        online, and every registration has its instance.
    """
    manager = build_manager(
        manager_config(emulator, tmp_path / "state", "replenish/0", containers=3)
    )
    process = replenish_command(_config_file(manager, tmp_path))
    try:
        wait_until(lambda: bool(ours(lxd_client, "replenish/0")), 60, "the first instance")
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == 0, stderr[-2000:]
        assert "stopping (signal 15)" in stderr

        names = sorted(i.name for i in ours(lxd_client, "replenish/0"))
        registered = sorted(r["name"] for r in gh_runners(emulator, PREFIX))
        assert names == registered, "no orphan instance, no ghost registration"
        assert all(i.status == "Running" for i in ours(lxd_client, "replenish/0"))
        if names:
            wait_online(emulator, len(names), PREFIX)
        time.sleep(3)
        assert sorted(i.name for i in ours(lxd_client, "replenish/0")) == names, "none after stop"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(30)
        manager.flush(busy=True, reconcile=False)


def test_replenisher_and_reconcile_together_never_exceed_the_count(
    replenishing, emulator, lxd_client
):
    """The replenisher and reconciles together never exceed the runner count.

    arrange: 3 runners, replenisher running.
    act: jobs end while reconciles run in a loop.
    assert: the unit's live instances never exceed 3, and the fleet ends full.
    """
    running = replenishing(containers=3)
    wait_online(emulator, 3, PREFIX)
    peak = [0]
    samples = [0]
    stop = threading.Event()

    def sample() -> None:
        # Raw listing: pylxd's Instance objects can lack fields while LXD deletes one.
        client = pylxd.Client(project=PROJECT)
        while not stop.is_set():
            try:
                items = client.api.instances.get(params={"recursion": "1"}).json()["metadata"]
            except (pylxd.exceptions.LXDAPIException, ValueError, KeyError, OSError):
                continue
            count = sum(
                1
                for item in items
                if (item.get("config") or {}).get("user.github-runner.unit") == "replenish/0"
                and item.get("status") != "Stopped"
            )
            peak[0] = max(peak[0], count)
            samples[0] += 1
            time.sleep(0.05)

    def reconcile_loop() -> None:
        while not stop.is_set():
            report = running.manager.reconcile()
            assert report.ok or report.error_kinds() <= {"busy"}, report.errors
            # A tight loop: the lock is re-taken the instant it is released; the replenisher
            # waiting for it still goes next (the lock is first come, first served).

    threads = [threading.Thread(target=sample), threading.Thread(target=reconcile_loop)]
    for thread in threads:
        thread.start()
    try:
        jobs = [emulator.control.queue_job(TEST_REPO, LABELS, "sleep 2") for _ in range(6)]
        for job in jobs:
            wait_job(emulator, job["id"], "completed", timeout=180)
        wait_online(emulator, 3, PREFIX)
    finally:
        stop.set()
        for thread in threads:
            thread.join(300)

    assert not threads[0].is_alive()
    assert samples[0] > 100, "the sampler must have watched the whole run"
    assert peak[0] == 3, f"{peak[0]} live instances at most, for a count of 3"
    wait_until(lambda: len(live(lxd_client)) == 3, 60, "a full fleet")
    # Both raced for the lock: the replenisher counted (and spawned when short) between reconciles.
    assert len(running.replenisher.batches) >= 2


def test_a_runner_ending_while_a_batch_starts_is_not_held_up_by_it(
    replenishing, emulator, lxd_client
):
    """A runner ending while a batch starts its instances is replaced by an overlapping batch.

    arrange: 3 runners, replenisher running; every instance start of its manager is held 6 s
        (after the lock is released), so the first replacement batch is still starting when
        the second runner ends.
    act: one job ends; once it has, a second job is queued and ends.
    assert: the second batch ran while the first was still starting (their times overlap);
        the unit never had more than 3 live instances; exactly 2 replacements; the fleet ends
        full and online.
    """
    running = replenishing(containers=3)
    wait_online(emulator, 3, PREFIX)
    wait_until(lambda: len(running.replenisher.batches) >= 1, 60, "the initial fill")
    lxd = running.manager._lxd
    start = lxd.start_instance

    def held_start(name: str) -> None:
        time.sleep(6)
        start(name)

    lxd.start_instance = held_start
    peak = [0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            with contextlib.suppress(pylxd.exceptions.LXDAPIException, OSError, KeyError):
                peak[0] = max(peak[0], len(live(lxd_client)))
            time.sleep(0.1)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        first = emulator.control.queue_job(TEST_REPO, LABELS, "sleep 1")
        wait_job(emulator, first["id"], "completed", timeout=180)
        second = emulator.control.queue_job(TEST_REPO, LABELS, "sleep 1")
        wait_job(emulator, second["id"], "completed", timeout=180)
        wait_until(lambda: len(running.created()) >= 5, 180, "two replacements")
        wait_online(emulator, 3, PREFIX)
    finally:
        stop.set()
        sampler.join(30)

    spawning = [report for report in running.replenisher.batches[1:] if report.created]
    assert len(spawning) == 2, [report.created for report in spawning]
    assert len(running.created()) == 5  # the initial 3, then one per ended job
    a, b = sorted(spawning, key=lambda report: report.started_at)
    assert a.finished_at is not None and b.started_at < a.finished_at, (
        "the second batch waited for the first"
    )
    assert peak[0] <= 3, f"{peak[0]} live instances at most, for a count of 3"
