# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""Runners from an image with the runner application baked in, on real LXD and the emulator.

The image is made by the real build script in its bake-only mode from the test bed's image
(no packages: no mirror is reachable here), with the runner application the manager cached and
verified. A spawn is then one create request (the runner's files and JIT configuration as
`user.*` keys) and a start: the tests count the LXD file API calls the manager makes.

Standbys come from such an image only: a booted container with no registration and no
configuration, which the replenisher makes the runner that replaces a finished one by
registering it and setting its configuration keys (its waiting boot program starts the runner).
"""

from __future__ import annotations

import secrets
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pylxd
import pylxd.exceptions
import pytest

from github_runner_manager.cli import build_manager
from github_runner_manager.config import ManagerConfig
from github_runner_manager.image import (
    BOOT_KEYS,
    PROPERTY_RUNNER_SHA256,
    PROPERTY_RUNNER_VERSION,
    ImageBuilder,
    stable_alias,
)
from github_runner_manager.lxd import TAG_STANDBY, PylxdClient
from github_runner_manager.manager import RunnerManager
from github_runner_manager.models import InstanceType, RunnerState
from tests.github_emulator import Emulator

from .conftest import IMAGE, PROJECT, TEST_REPO, TEST_TOKEN, run_in
from .test_manager import LABELS, gh_runners, ours, wait_job, wait_online
from .test_replenish import Running, _config_file, replenish_command, wait_until

pytestmark = pytest.mark.lxd

JIT_KEY = BOOT_KEYS["jit_key"]
FILES_KEY = BOOT_KEYS["files_key"]
# What a runner reads from LXD's guest API: the list of its configuration keys, then its JIT key.
DEVLXD_QUERY = f"""
import http.client, socket
class C(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect("/dev/lxd/sock")
for path in ("/1.0/config", "/1.0/config/{JIT_KEY}"):
    c = C("lxd")
    c.request("GET", path)
    r = c.getresponse()
    print(r.status, r.read().decode())
"""


def baked_config(emulator: Emulator, state_dir: Path, app: str, containers: int) -> ManagerConfig:
    return ManagerConfig.model_validate(
        {
            "unit": f"{app}/0",
            "name_prefix": f"{app}-0",
            "flavor": "functional",
            "github": {"url": emulator.url, "path": TEST_REPO, "token": TEST_TOKEN},
            "runners": {
                "containers": containers,
                "base_image": IMAGE,
                "cpu": 1,
                "memory": "512MiB",
                "disk": "2GiB",
            },
            "lxd": {"project": PROJECT, "storage_pool": "default"},
            "image": {"build": True, "source": IMAGE, "timeout": 600},
            "timing": {"registration_timeout": 120, "probe_after": 1, "api_timeout": 5},
            "state_dir": str(state_dir),
        }
    )


@pytest.fixture
def file_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, str]]:
    """Every LXD file API call (push, symlink, directory) made in this process."""
    calls: list[tuple[str, str, str]] = []
    for method in ("push_file", "push_symlink", "make_directory"):
        original = getattr(PylxdClient, method)

        def counting(self: Any, name: str, path: str, *args: Any, _o=original, _m=method) -> Any:
            calls.append((_m, name, path))
            return _o(self, name, path, *args)

        monkeypatch.setattr(PylxdClient, method, counting)
    return calls


@pytest.fixture
def baked(
    emulator: Emulator, tmp_path: Path, lxd_client: pylxd.Client
) -> Iterator[Callable[[int, bool], RunnerManager]]:
    """Make a manager whose runner image is baked from the test bed's image (or not)."""
    app = f"grt-bake-{secrets.token_hex(3)}"
    adapter = PylxdClient(project=PROJECT, timeout=120)
    made: list[tuple[RunnerManager, ManagerConfig]] = []

    def _make(containers: int, with_runner: bool = True) -> RunnerManager:
        config = baked_config(emulator, tmp_path / "state", app, 0)
        manager = build_manager(config)
        # A reconcile with no runners caches (and verifies) the runner application.
        assert manager.reconcile().ok
        builder = ImageBuilder(config, adapter, runner=None if with_runner else lambda: None)
        record = builder.build([InstanceType.CONTAINER], bake_only=True)
        assert record.ok and record.images, record
        manager = build_manager(baked_config(emulator, tmp_path / "state", app, containers))
        made.append((manager, config))
        return manager

    yield _make
    for manager, config in made:
        manager.flush(busy=True, reconcile=False)
        ImageBuilder(config, adapter).remove_all()


def image_properties(lxd_client: pylxd.Client, config: ManagerConfig) -> dict[str, str]:
    alias = stable_alias(config, InstanceType.CONTAINER)
    return dict(lxd_client.images.get_by_alias(alias).properties)


def test_a_baked_runner_comes_online_and_runs_a_job_with_no_file_push(
    baked: Callable[..., RunnerManager],
    emulator: Emulator,
    lxd_client: pylxd.Client,
    file_calls: list[tuple[str, str, str]],
) -> None:
    """A JIT runner from a baked image is created and started with no file written into it.

    arrange: an image baked with the cached runner application; no file API call made yet.
    act: reconcile 2 runners; queue a job.
    assert: the image records the runner's version and SHA-256; no LXD file API call was made
        for the runners; both come online with the boot keys in their configuration; the job
        runs on one of them and succeeds.
    """
    manager = baked(2)
    cached = manager._binary.cached()
    assert cached is not None
    properties = image_properties(lxd_client, manager.config)
    assert properties[PROPERTY_RUNNER_SHA256] == cached.application.sha256_checksum
    assert properties[PROPERTY_RUNNER_VERSION] == cached.application.version
    builder_calls = list(file_calls)  # the build pushed the archive into its builder

    report = manager.reconcile()

    assert report.ok, report.errors
    assert len(report.created) == 2
    assert file_calls == builder_calls, "a runner got a file pushed"
    for name in report.created:
        assert set(report.runner_timings[name]) == {"register", "create", "start"}
    for instance in ours(lxd_client, manager.config.unit):
        assert instance.config["security.devlxd"] == "true"
        assert instance.config[JIT_KEY] and instance.config[FILES_KEY]
    prefix = f"{manager.config.name_prefix}-"
    wait_online(emulator, 2, prefix=prefix)
    job = emulator.control.queue_job(TEST_REPO, LABELS, "echo baked")
    done = wait_job(emulator, job["id"], "completed")
    assert done["conclusion"] == "success"
    assert done["runner_name"] in report.created


def test_a_runner_reads_only_its_own_jit_config_through_devlxd(
    baked: Callable[..., RunnerManager], emulator: Emulator, lxd_client: pylxd.Client
) -> None:
    """No instance reads another runner's JIT configuration through /dev/lxd.

    arrange: two runners from a baked image, online.
    act: in each runner, list its configuration keys and read the JIT key through /dev/lxd.
    assert: each reads its own JIT configuration; the other runner's value appears nowhere in
        what it can read.
    """
    manager = baked(2)
    report = manager.reconcile()
    assert report.ok, report.errors
    wait_online(emulator, 2, prefix=f"{manager.config.name_prefix}-")
    first, second = (lxd_client.instances.get(name) for name in report.created)
    values = {i.name: i.config[JIT_KEY] for i in (first, second)}
    assert values[first.name] != values[second.name]

    for reader, other in ((first, second), (second, first)):
        result = run_in(reader, ["python3", "-c", DEVLXD_QUERY])

        assert result.exit_code == 0, result.stderr
        assert f"200 {values[reader.name]}" in result.stdout
        assert values[other.name] not in result.stdout


def test_an_image_without_a_baked_runner_falls_back_to_pushing(
    baked: Callable[..., RunnerManager],
    emulator: Emulator,
    lxd_client: pylxd.Client,
    file_calls: list[tuple[str, str, str]],
) -> None:
    """An image that records no baked runner application gets the runner pushed, as before.

    arrange: an image built (bake-only) when no runner application was cached.
    act: reconcile 1 runner; queue a job.
    assert: the image has no runner property; the runner got the archive pushed, has no boot
        keys, comes online and runs the job.
    """
    manager = baked(1, with_runner=False)
    assert PROPERTY_RUNNER_SHA256 not in image_properties(lxd_client, manager.config)
    before = len(file_calls)

    report = manager.reconcile()

    assert report.ok, report.errors
    (name,) = report.created
    pushed = [path for _, instance, path in file_calls[before:] if instance == name]
    assert "/opt/github-runner/runner.tar.gz" in pushed
    assert JIT_KEY not in lxd_client.instances.get(name).config
    wait_online(emulator, 1, prefix=f"{manager.config.name_prefix}-")
    job = emulator.control.queue_job(TEST_REPO, LABELS, "echo pushed")
    assert wait_job(emulator, job["id"], "completed")["conclusion"] == "success"


def test_the_registration_token_flow_works_from_a_baked_image(
    baked: Callable[..., RunnerManager], emulator: Emulator, lxd_client: pylxd.Client
) -> None:
    """Without JIT, a runner from a baked image (its unit enabled) is configured, then runs.

    arrange: a current baked image; the emulator has no JIT endpoint.
    act: reconcile 1 runner; queue a job.
    assert: the runner registered through config.sh comes online (the unit that started at
        boot waited for it) and runs the job.
    """
    manager = baked(1)
    emulator.control.settings(jit_enabled=False)
    try:
        report = manager.reconcile()

        assert report.ok, report.errors
        (name,) = report.created
        assert "configure" in report.runner_timings[name]
        wait_online(emulator, 1, prefix=f"{manager.config.name_prefix}-")
        job = emulator.control.queue_job(TEST_REPO, LABELS, "echo via config.sh")
        assert wait_job(emulator, job["id"], "completed")["conclusion"] == "success"
    finally:
        emulator.control.settings(jit_enabled=True)


def standbys(lxd_client: pylxd.Client, unit: str) -> dict[str, pylxd.models.Instance]:
    """The unit's standby instances, by name."""
    return {i.name: i for i in ours(lxd_client, unit) if i.config.get(TAG_STANDBY) == "true"}


def runners(lxd_client: pylxd.Client, unit: str) -> set[str]:
    """The unit's runner instances (standbys left out)."""
    return {i.name for i in ours(lxd_client, unit) if i.config.get(TAG_STANDBY) != "true"}


def with_standbys(manager: RunnerManager, emulator: Emulator, lxd_client: pylxd.Client) -> Running:
    """Start a replenisher; return once its runners are online and its standbys (one each) up."""
    running = Running(manager)
    count = manager.config.runners.containers
    try:
        wait_online(emulator, count, prefix=f"{manager.config.name_prefix}-")
        wait_until(
            lambda: _unit_counts(lxd_client, manager.config.unit)[1] == count, 120, "standbys"
        )
    except BaseException:
        running.stop()
        raise
    return running


def test_a_standby_becomes_the_runner_that_replaces_a_finished_one(
    baked: Callable[..., RunnerManager], emulator: Emulator, lxd_client: pylxd.Client
) -> None:
    """A job's end makes a standby the fresh runner: no create, no start, one GitHub call.

    arrange: a baked image; a replenisher keeping 1 runner (and so 1 standby); the runner
        online and the standby running, holding no registration and no configuration.
    act: run a job on the runner.
    assert: the runner that replaces it is the standby (its stages: register and adopt, one
        GitHub call in its batch), it comes online and runs a second job; a new standby is
        made; at no time are there two runner instances beside the busy one.
    """
    manager = baked(1)
    unit = manager.config.unit
    prefix = f"{manager.config.name_prefix}-"
    running = with_standbys(manager, emulator, lxd_client)
    try:
        standby_name, standby = next(iter(standbys(lxd_client, unit).items()))
        wait_until(lambda: standby.state().status == "Running", 60, "the standby running")
        assert JIT_KEY not in standby.config and FILES_KEY not in standby.config
        assert standby_name not in {r["name"] for r in gh_runners(emulator, prefix)}
        (first,) = runners(lxd_client, unit)

        job = emulator.control.queue_job(TEST_REPO, LABELS, "echo first")
        assert wait_job(emulator, job["id"], "completed")["runner_name"] == first
        wait_until(lambda: standby_name in running.created(), 60, "the standby adopted")

        batch = next(b for b in running.replenisher.batches if standby_name in b.created)
        assert set(batch.runner_timings[standby_name]) == {"register", "adopt"}
        assert batch.github_calls == 1
        wait_online(emulator, 1, prefix=prefix)
        assert {r["name"] for r in gh_runners(emulator, prefix) if r["status"] == "online"} == {
            standby_name
        }
        adopted = lxd_client.instances.get(standby_name)
        assert adopted.config.get(TAG_STANDBY) is None and adopted.config[JIT_KEY]
        wait_until(
            lambda: set(standbys(lxd_client, unit)) - {standby_name} != set(), 120, "a new standby"
        )
        assert len(runners(lxd_client, unit) - {first}) == 1
        second = emulator.control.queue_job(TEST_REPO, LABELS, "echo second")
        assert wait_job(emulator, second["id"], "completed")["runner_name"] == standby_name
    finally:
        running.stop()


def test_a_reconcile_keeps_current_standbys_and_flush_removes_them(
    baked: Callable[..., RunnerManager], emulator: Emulator, lxd_client: pylxd.Client
) -> None:
    """A reconcile neither counts a standby as a runner nor removes it; a flush removes it.

    arrange: a baked image; a replenisher has made 1 runner and 1 standby, then stopped.
    act: reconcile; then flush.
    assert: the reconcile creates and removes nothing and reports the standby in its own
        state; the flush removes both instances.
    """
    manager = baked(1)
    unit = manager.config.unit
    with_standbys(manager, emulator, lxd_client).stop()
    (standby_name,) = standbys(lxd_client, unit)

    report = manager.reconcile()

    assert report.ok, report.errors
    assert report.created == [] and report.removed == []
    states = {entry.name: entry.state for entry in report.runners}
    assert states[standby_name] is RunnerState.STANDBY
    assert report.counts["container"].get("standby") == 1
    flushed = manager.flush(reconcile=False)
    assert flushed.ok, flushed.errors
    assert ours(lxd_client, unit) == []


def _unit_counts(client: pylxd.Client, unit: str) -> tuple[int, int]:
    """The unit's runner instances that are not stopped, and its standbys, from a raw listing."""
    items = client.api.instances.get(params={"recursion": "1"}).json()["metadata"]
    mine = [i for i in items if (i.get("config") or {}).get("user.github-runner.unit") == unit]
    standby_count = sum(1 for i in mine if (i.get("config") or {}).get(TAG_STANDBY) == "true")
    runner_count = sum(
        1
        for i in mine
        if (i.get("config") or {}).get(TAG_STANDBY) != "true" and i.get("status") != "Stopped"
    )
    return runner_count, standby_count


def test_standbys_and_reconciles_together_never_exceed_the_counts(
    baked: Callable[..., RunnerManager], emulator: Emulator, lxd_client: pylxd.Client
) -> None:
    """With standbys, the replenisher and reconciles in a loop never exceed either count.

    arrange: a baked image; 2 runners (so 2 standbys), the replenisher running, the fleet and
        its standbys up.
    act: 4 jobs end while reconciles run in a tight loop, sampled all along.
    assert: never more than 2 runner instances nor 2 standbys; replacements (by batches or
        reconciles) came from standbys; the fleet ends full, with its standbys.
    """
    manager = baked(2)
    unit, prefix = manager.config.unit, f"{manager.config.name_prefix}-"
    running = with_standbys(manager, emulator, lxd_client)
    peak, samples, stop = [0, 0], [0], threading.Event()

    def sample() -> None:
        client = pylxd.Client(project=PROJECT)
        while not stop.is_set():
            try:
                counts = _unit_counts(client, unit)
            except (pylxd.exceptions.LXDAPIException, ValueError, KeyError, OSError):
                continue
            peak[:] = [max(peak[0], counts[0]), max(peak[1], counts[1])]
            samples[0] += 1
            time.sleep(0.05)

    reconciles: list[Any] = []

    def reconcile_loop() -> None:
        while not stop.is_set():
            report = manager.reconcile()
            assert report.ok or report.error_kinds() <= {"busy"}, report.errors
            reconciles.append(report)

    threads = [threading.Thread(target=sample), threading.Thread(target=reconcile_loop)]
    try:
        for thread in threads:
            thread.start()
        jobs = [emulator.control.queue_job(TEST_REPO, LABELS, "sleep 2") for _ in range(4)]
        for job in jobs:
            wait_job(emulator, job["id"], "completed", timeout=180)
        wait_online(emulator, 2, prefix=prefix)
        wait_until(lambda: _unit_counts(lxd_client, unit) == (2, 2), 120, "fleet and standbys")
    finally:
        stop.set()
        for thread in threads:
            if thread.is_alive():
                thread.join(300)
        running.stop()

    assert samples[0] > 20, "the sampler must have watched the whole run"
    assert peak == [2, 2], f"at most {peak[0]} runners and {peak[1]} standbys, for 2 and 2"
    # Whichever run made a replacement (a batch or a reconcile), it made it from a standby.
    adopted = [
        name
        for report in [*running.replenisher.batches, *reconciles]
        for name, stages in report.runner_timings.items()
        if "adopt" in stages
    ]
    assert len(adopted) >= 2, "replacements come from standbys"


def test_sigterm_while_making_standbys_leaves_nothing_half_made(
    baked: Callable[..., RunnerManager],
    emulator: Emulator,
    lxd_client: pylxd.Client,
    tmp_path: Path,
) -> None:
    """SIGTERM while the replenish command makes standbys leaves only whole ones.

    arrange: a baked image; the replenish command (as its service runs it) filling 2 runners
        and 2 standbys.
    act: SIGTERM once the first standby exists.
    assert: it exits 0; every instance left runs; every runner instance has its registration
        and every registration its instance; the standbys have none.
    """
    manager = baked(2)
    unit, prefix = manager.config.unit, f"{manager.config.name_prefix}-"
    process = replenish_command(_config_file(manager, tmp_path))
    try:
        wait_until(lambda: _unit_counts(lxd_client, unit)[1] >= 1, 120, "the first standby")
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == 0, stderr[-2000:]

        left = ours(lxd_client, unit)
        assert all(i.status == "Running" for i in left), "a half-made instance is left"
        runner_names = sorted(i.name for i in left if i.config.get(TAG_STANDBY) != "true")
        standby_names = {i.name for i in left if i.config.get(TAG_STANDBY) == "true"}
        registered = [r["name"] for r in gh_runners(emulator, prefix)]
        assert runner_names == sorted(registered), "no orphan instance, no ghost registration"
        assert not standby_names & set(registered)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(30)
