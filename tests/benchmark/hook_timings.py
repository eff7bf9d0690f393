# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""How long each hook holds the machine lock: the charm's handlers, timed, with what they run.

Juju runs one hook at a time per machine, under the machine lock. This runs every hook of the
charm through ops.testing with the charm's real code below it: the real `host.Host` and
`storage.StoragePool` (their commands recorded and answered at once, as a prepared host answers
them) and the real `service.ManagerService` writing its files under a temporary directory
(systemctl and the manager's command line recorded, answered at once). For each hook it prints:

- the wall time of the charm's own work in ops.testing (ops, handlers, file reads and writes;
  not the interpreter's start-up), fastest and median of RUNS runs;
- how many LXD commands, systemctl operations and manager runs the hook makes;
- an estimate: the charm's time plus each LXD command at the latency measured here against the
  real LXD daemon (`lxc query /1.0`, read-only) and each systemctl operation at
  SYSTEMCTL_SECONDS;
- the bound: the sum of the timeouts of what it runs, the longest it can hold the lock.

Run: `tox -e hook-timings` (no LXD needed; with `lxc` on PATH the latency is measured).
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ops import testing

sys.path[:0] = [str(Path(__file__).resolve().parents[2] / "src")]

import charm  # noqa: E402 - after the path is set
import command  # noqa: E402 - after the path is set
import firewall  # noqa: E402 - after the path is set
import host  # noqa: E402 - after the path is set
import service  # noqa: E402 - after the path is set
import storage  # noqa: E402 - after the path is set
from storage import POOL_LAYOUT_DIR  # noqa: E402 - after the path is set

REPOSITORY = Path(__file__).resolve().parents[2]
# The real classes, kept before charm.host.Host (the same attribute) is replaced below.
REAL_HOST = host.Host
REAL_STORAGE_POOL = storage.StoragePool
REAL_FIREWALL = firewall.Firewall
CONFIG = {"path": "test-owner/test-repo", "token": "ghp_hookTimingToken000000000000000000000"}
RUNS = 15
# A systemctl call on a quiet machine (daemon-reload is slower; is-active faster).
SYSTEMCTL_SECONDS = 0.05


class Recorder:
    """Everything a hook asks the machine to do, with the timeouts it allows."""

    def __init__(self) -> None:
        self.lxd: list[tuple[str, float]] = []
        self.systemctl: list[str] = []
        self.manager: list[tuple[str, float]] = []

    def clear(self) -> None:
        self.lxd.clear()
        self.systemctl.clear()
        self.manager.clear()


class Runner:
    """command.CommandRunner answering like a prepared host (pool, network, ACL in place)."""

    def __init__(self, recorder: Recorder, storage: Path):
        self.recorder = recorder
        self.storage = storage

    def __call__(
        self, argv: Sequence[str], *, input_text: str | None = None, timeout: float = 300
    ) -> str:
        command = " ".join([Path(argv[0]).name, *argv[1:]])
        if Path(argv[0]).name in ("lxc", "lxd"):
            self.recorder.lxd.append((command, timeout))
        if command.startswith("lxc storage show"):
            return f"driver: dir\nconfig:\n  source: {self.storage}\n"
        if command.startswith("lxc query /1.0/storage-pools"):
            return '["/1.0/storage-pools/default"]'
        if command.startswith("lxc query /1.0/networks"):
            return '[{"name": "lxdbr0", "managed": true}]'
        if command.startswith("lxc network show"):
            return (
                "config:\n  ipv4.address: 10.1.2.1/24\n  security.acls: github-runner\n"
                "  security.acls.default.egress.action: allow\n"
            )
        if command.startswith("ip "):
            return "[]"
        return ""


class Systemd:
    """service.Systemd recording every operation; units stay active once enabled."""

    def __init__(self, recorder: Recorder):
        self.recorder = recorder
        self.active: set[str] = set()

    def daemon_reload(self) -> None:
        self.recorder.systemctl.append("daemon-reload")

    def is_active(self, unit: str) -> bool:
        self.recorder.systemctl.append(f"is-active {unit}")
        return unit in self.active

    def enable_now(self, unit: str) -> None:
        self.recorder.systemctl.append(f"enable --now {unit}")
        self.active.add(unit)

    def disable_now(self, unit: str) -> None:
        self.recorder.systemctl.append(f"disable --now {unit}")
        self.active.discard(unit)

    def restart(self, unit: str) -> None:
        self.recorder.systemctl.append(f"restart {unit}")

    def start_no_block(self, unit: str) -> None:
        self.recorder.systemctl.append(f"start --no-block {unit}")

    def stop(self, unit: str) -> None:
        self.recorder.systemctl.append(f"stop {unit}")


def machine(
    root: Path, recorder: Recorder
) -> tuple[Callable[[], Any], Callable[..., Any], Callable[..., Any], Callable[..., Any]]:
    """Factories for the charm's host, storage pool, manager and firewall under `root`."""
    storage_dir = root / "storage"
    (storage_dir / POOL_LAYOUT_DIR).mkdir(parents=True)
    tools = root / "bin"
    tools.mkdir()
    for name in ("lxc", "lxd", "ip"):
        (tools / name).touch()
    (root / "proc").mkdir()
    (root / "proc" / "filesystems").write_text("nodev\ttmpfs\n")
    (root / "proc" / "mounts").write_text("")
    paths = service.ManagerPaths.for_unit(
        "github-runner",
        0,
        config_root=root / "etc",
        state_root=root / "var",
        systemd_dir=root / "systemd",
    )
    paths.systemd_dir.mkdir()
    systemd = Systemd(recorder)

    def run_manager(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        recorder.manager.append((" ".join(argv[5:]), float(kwargs.get("timeout", 0))))
        return subprocess.CompletedProcess(argv, 0, "{}", "")

    manager = service.ManagerService(
        paths, REPOSITORY, python="/usr/bin/python3", systemd_client=systemd, run=run_manager
    )

    class BenchHost(REAL_HOST):
        def ensure_logrotate(self, log_path: Path, config_file: Path = root / "logrotate") -> bool:
            # Under the temporary directory, never the machine's /etc/logrotate.d.
            return super().ensure_logrotate(root / "metrics.log", config_file)

    def make_host() -> host.Host:
        return BenchHost(
            Runner(recorder, storage_dir),
            binary_dirs=(tools,),
            tool_dirs=(tools,),
            proc_dir=root / "proc",
            os_release=root / "os-release",
            machine=lambda: "x86_64",
        )

    def make_storage(app: str | None = None) -> storage.StoragePool:
        return REAL_STORAGE_POOL(
            Runner(recorder, storage_dir),
            app=app,
            binary_dirs=(tools,),
            tool_dirs=(tools,),
            juju_storage_dir=storage_dir,
            proc_dir=root / "proc",
            disk_total=lambda path: 1 << 40,
        )

    def make_manager(paths: Any, charm_dir: Any) -> service.ManagerService:
        return manager

    def make_firewall(app: str | None) -> firewall.Firewall:
        return REAL_FIREWALL(
            firewall.NETWORK,
            command.scoped_name(app) if app else firewall.ACL,
            Runner(recorder, storage_dir),
            binary_dirs=(tools,),
            tool_dirs=(tools,),
        )

    return make_host, make_storage, make_manager, make_firewall


def lxc_latency() -> float | None:
    """Median seconds of a read-only `lxc query /1.0` against this machine's LXD, or None."""
    lxc = shutil.which("lxc")
    if lxc is None:
        return None
    samples = []
    for _ in range(10):
        start = time.perf_counter()
        completed = subprocess.run(
            [lxc, "query", "/1.0"], capture_output=True, check=False, timeout=30
        )
        if completed.returncode:
            return None
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    """Time every hook and print the table."""
    latency = lxc_latency()
    recorder = Recorder()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        make_host, make_storage, make_manager, make_firewall = machine(Path(tmp), recorder)
        charm.host.Host = make_host  # type: ignore[misc,assignment]  # swapping the class for a factory
        charm.storage.StoragePool = make_storage  # type: ignore[misc,assignment]  # swapping the class for a factory
        charm.firewall.Firewall.for_app = make_firewall  # type: ignore[method-assign]  # recorded
        charm.service.ManagerService = make_manager  # type: ignore[misc,assignment]  # swapping the class for a factory
        ctx = testing.Context(charm.GithubRunnerCharm, charm_root=None)
        # A unit that has converged once (the first config-changed of a deployment).
        first = testing.State(config=CONFIG, leader=True)

        def timed(
            name: str, event: Callable[[], Any], state: testing.State, runs: int = RUNS
        ) -> testing.State:
            durations = []
            out = state
            counts: tuple[int, int, int] = (0, 0, 0)
            bound = 0.0
            for _ in range(runs):
                recorder.clear()
                start = time.perf_counter()
                out = ctx.run(event(), state)
                durations.append(time.perf_counter() - start)
                counts = (len(recorder.lxd), len(recorder.systemctl), len(recorder.manager))
                bound = sum(t for _, t in recorder.lxd) + sum(t for _, t in recorder.manager)
                bound += len(recorder.systemctl) * 90  # systemctl's default job timeout
            # The minimum: on a busy machine it is the closest to the work's own cost.
            fastest = min(durations)
            estimate = fastest + counts[0] * (latency or 0) + counts[1] * SYSTEMCTL_SECONDS
            rows.append((name, fastest, statistics.median(durations), *counts, estimate, bound))
            return out

        converged = timed(
            "config-changed (first: writes files, units)", ctx.on.config_changed, first
        )
        # The first run wrote the files: the next runs of the same hook change nothing.
        timed("config-changed (nothing changed)", ctx.on.config_changed, converged)
        timed("update-status (steady state)", ctx.on.update_status, converged)
        failed = testing.State(config=CONFIG, leader=True)  # never converged: full path
        timed("update-status (after a failure: full)", ctx.on.update_status, failed)
        timed("upgrade-charm", ctx.on.upgrade_charm, converged)
        timed("start", ctx.on.start, converged)
        timed("check-runners action", lambda: ctx.on.action("check-runners"), converged)
        stopped = timed("stop (flushes every runner)", ctx.on.stop, converged)
        # Once: remove deletes the manager's files.
        timed("remove (after that stop)", ctx.on.remove, stopped, runs=1)

    print(
        f"LXD command latency here: {latency * 1000:.1f} ms (lxc query /1.0, median of 10)"
        if latency is not None
        else "LXD command latency: not measured (no lxc)"
    )
    print(f"systemctl operation: {SYSTEMCTL_SECONDS * 1000:.0f} ms assumed; {RUNS} runs per hook")
    print(
        f"{'hook':<44} {'min ms':>7} {'med ms':>7} {'lxd':>4} {'systemctl':>9} {'manager':>7} "
        f"{'est. ms':>8} {'bound s':>8}"
    )
    for name, fastest, median, lxd, systemctl, manager, estimate, bound in rows:
        print(
            f"{name:<44} {fastest * 1000:>7.1f} {median * 1000:>7.1f} {lxd:>4} {systemctl:>9} "
            f"{manager:>7} {estimate * 1000:>8.0f} {bound:>8.0f}"
        )


if __name__ == "__main__":
    main()
