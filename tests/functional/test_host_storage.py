# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""The runners' storage pool made for real: btrfs on a loop file, on the real LXD.

Each test gives `storage.StoragePool` a pool name and runner storage directories of its own under a
temporary directory (never /storage or the `runner` pool), lets it mount the tmpfs of memory
storage there, and removes the pool, the mounts and the loop devices afterwards, also on failure.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pylxd
import pylxd.exceptions
import pytest
import yaml

import command
import storage

from .conftest import IMAGE, PROJECT, wait_for_boot

GIB = 1024**3
LXC = shutil.which("lxc") or "/usr/bin/lxc"
BTRFS = shutil.which("btrfs") or "/usr/bin/btrfs"


def lxc(*args: str) -> str:
    return command.run_command([LXC, *args], timeout=300)


def mounts() -> list[tuple[str, str, str, str]]:
    """(device, mount point, type, options) of every mount, in mount order."""
    lines = Path("/proc/mounts").read_text(encoding="utf-8").splitlines()
    return [tuple(line.split()[:4]) for line in lines]  # type: ignore[misc]  # four fields


def mount_at(path: Path) -> tuple[str, str, str, str] | None:
    found = [entry for entry in mounts() if entry[1] == str(path)]
    return found[-1] if found else None


def lxd_pool_mounts(pool: str) -> list[str]:
    """Where LXD mounted the pool itself (…/storage-pools/<pool>)."""
    return [entry[1] for entry in mounts() if entry[1].endswith(f"/storage-pools/{pool}")]


def unmount(path: str) -> None:
    subprocess.run(["/usr/bin/umount", path], check=True, capture_output=True, timeout=60)


def simulate_reboot(pool: str, root: Path, keep_tmpfs: bool = False) -> None:
    """Undo every mount a reboot undoes: LXD's mount of the pool, the loop file's, the tmpfs."""
    for path in lxd_pool_mounts(pool):
        unmount(path)
    for _, path, fstype, _ in reversed(mounts()):
        if path.startswith(f"{root}/") and not (keep_tmpfs and fstype == "tmpfs"):
            unmount(path)


@pytest.fixture
def storage_host(tmp_path: Path) -> Iterator[storage.StoragePool]:
    """A StoragePool whose pool and runner storage (under tmp_path/storage) are the test's own."""
    pool = f"grtfw-st-{secrets.token_hex(3)}"
    root = tmp_path / "storage"
    runner_host = storage.StoragePool(
        storage_pool=pool, ram_dir=root / "ram", juju_storage_dir=root / "juju"
    )
    try:
        yield runner_host
    finally:
        with contextlib.suppress(command.HostError):
            lxc("storage", "delete", pool)
        for path in lxd_pool_mounts(pool):
            with contextlib.suppress(subprocess.CalledProcessError):
                unmount(path)
        for _, path, _, _ in reversed(mounts()):
            if path.startswith(f"{root}/"):
                with contextlib.suppress(subprocess.CalledProcessError):
                    unmount(path)
        for image in root.glob("*/lxd-pool.img"):
            loops = command.run_command(["/usr/sbin/losetup", "-j", str(image)], timeout=30)
            for line in loops.splitlines():
                with contextlib.suppress(command.HostError):
                    command.run_command(
                        ["/usr/sbin/losetup", "-d", line.split(":")[0]], timeout=30
                    )
        assert pool not in lxc("storage", "list", "--format", "csv"), f"pool {pool} left over"


@pytest.fixture
def launch_on(lxd_client: pylxd.Client) -> Iterator[Callable[[str], Any]]:
    """Factory: a running container from the test image with its root disk on a pool."""
    launched: list[Any] = []

    def _launch(pool: str) -> Any:
        config = {
            "name": f"grt-st-{secrets.token_hex(4)}",
            "source": {"type": "image", "alias": IMAGE},
            "profiles": ["default"],
            # A size, as the runners have: on btrfs LXD enforces it with a quota group.
            "devices": {"root": {"type": "disk", "path": "/", "pool": pool, "size": "1GiB"}},
        }
        instance = lxd_client.instances.create(config, wait=True)
        launched.append(instance)
        instance.start(wait=True)
        wait_for_boot(instance)
        return instance

    yield _launch
    for instance in launched:
        delete(instance)


def delete(instance: Any) -> None:
    """Stop and delete an instance; one deleted already is fine."""
    if instance.client is None:  # pylxd drops the client of an instance it deleted
        return
    with contextlib.suppress(pylxd.exceptions.LXDAPIException, pylxd.exceptions.NotFound):
        instance.sync()
        if instance.status != "Stopped":
            instance.stop(force=True, wait=True)
    with contextlib.suppress(pylxd.exceptions.LXDAPIException, pylxd.exceptions.NotFound):
        instance.delete(wait=True)


def pool_info(pool: str) -> Any:
    return yaml.safe_load(lxc("storage", "show", pool))


def test_memory_pool_is_btrfs_in_the_tmpfs_and_survives_resize_and_reboot(
    storage_host: storage.StoragePool, launch_on: Callable[[str], Any], tmp_path: Path
) -> None:
    """The memory pool is btrfs in a tmpfs; it grows under a runner and comes back after a reboot.

    arrange: a host whose storage lives under a temporary directory, with mkfs.btrfs usable.
    act: make the memory storage for 2 GiB, launch a runner, grow to 3 GiB, then delete the runner,
        simulate a reboot and reconcile again.
    assert: the pool is btrfs on a loop file in a 2 GiB tmpfs and a second call changes nothing;
        the runner's root is a snapshot; growing resizes tmpfs, file and file system under the
        running runner; after the reboot the pool is made again and a runner starts on it.
    """
    assert storage_host.btrfs_usable(), "this machine lacks mkfs.btrfs or the kernel's btrfs"
    pool = storage_host.storage_pool
    ram = tmp_path / "storage" / "ram"
    image, mount = ram / "lxd-pool.img", ram / "lxd-pool"

    # A first reconciliation makes the tmpfs, the loop file and the pool.
    assert storage_host.ensure_runner_storage(storage.MEMORY, 2 * GIB)

    info = pool_info(pool)
    assert (info["driver"], info["config"]["source"]) == ("btrfs", str(mount))
    tmpfs, btrfs = mount_at(ram), mount_at(mount)
    assert tmpfs is not None and tmpfs[2] == "tmpfs" and "size=2097152k" in tmpfs[3]
    assert btrfs is not None and btrfs[2] == "btrfs" and btrfs[0].startswith("/dev/loop")
    assert image.stat().st_size == 2 * GIB
    assert storage_host.runner_storage_in_use() == storage.MEMORY
    assert not storage_host.ensure_runner_storage(storage.MEMORY, 2 * GIB)

    # A runner's root is a copy-on-write snapshot of the image volume, not a copy.
    instance = launch_on(pool)
    assert instance.status == "Running"
    subvolume = mount / "containers" / f"{PROJECT}_{instance.name}"
    shown = command.run_command([BTRFS, "subvolume", "show", str(subvolume)], timeout=60)
    parent = next(line for line in shown.splitlines() if "Parent UUID:" in line)
    assert parent.split(":", 1)[1].strip() not in ("", "-"), shown

    # More runners: the tmpfs, the loop file and the file system grow under the running runner.
    assert storage_host.ensure_runner_storage(storage.MEMORY, 3 * GIB)

    assert image.stat().st_size == 3 * GIB
    stats = os.statvfs(mount)
    assert stats.f_blocks * stats.f_frsize > 2.5 * GIB
    assert "size=3145728k" in (mount_at(ram) or ("", "", "", ""))[3]
    instance.sync()
    assert instance.status == "Running"

    # A reboot empties the tmpfs: the next reconciliation makes the pool again.
    delete(instance)
    simulate_reboot(pool, ram.parent)
    assert mount_at(ram) is None

    assert storage_host.ensure_runner_storage(storage.MEMORY, 2 * GIB)

    info = pool_info(pool)
    assert (info["driver"], info["config"]["source"]) == ("btrfs", str(mount))
    assert (mount / "containers").is_dir()
    assert launch_on(pool).status == "Running"


def test_juju_storage_pool_is_remounted_after_a_reboot(
    storage_host: storage.StoragePool, tmp_path: Path
) -> None:
    """The Juju storage pool's file system is mounted again after a reboot, not made anew.

    arrange: the runner storage made on Juju storage (a 2 GiB loop file).
    act: simulate a reboot that unmounts it, then reconcile the storage again.
    assert: the same file system (same fsid) is mounted again with its containers directory, and
        the pool still points at it.
    """
    assert storage_host.btrfs_usable(), "this machine lacks mkfs.btrfs or the kernel's btrfs"
    pool = storage_host.storage_pool
    juju = tmp_path / "storage" / "juju"
    mount = juju / "lxd-pool"

    assert storage_host.ensure_runner_storage(storage.JUJU_STORAGE, 2 * GIB)

    info = pool_info(pool)
    assert (info["driver"], info["config"]["source"]) == ("btrfs", str(mount))
    assert (juju / "lxd-pool.img").stat().st_size == 2 * GIB
    assert storage_host.runner_storage_in_use() == storage.JUJU_STORAGE
    filesystem = os.statvfs(mount).f_fsid

    # A reboot unmounts the loop file, which stays on the Juju storage.
    simulate_reboot(pool, juju.parent)
    assert mount_at(mount) is None

    assert storage_host.ensure_runner_storage(storage.JUJU_STORAGE, 2 * GIB)

    # The same file system is back (no new one was made), and the pool was kept.
    assert os.statvfs(mount).f_fsid == filesystem
    assert (mount / "containers").is_dir()
    assert pool_info(pool)["config"]["source"] == str(mount)
    # LXD mounts a pool it could not mount at start-up again by itself (it retries); this
    # daemon was not restarted, so do it for it before the pool is deleted.
    lxd_mount = f"/var/lib/lxd/storage-pools/{pool}"
    if Path(lxd_mount).is_dir():
        subprocess.run(["/usr/bin/mount", "--bind", str(mount), lxd_mount], check=True, timeout=60)


def test_removal_deletes_the_pool_then_the_runner_storage_it_made(
    storage_host: storage.StoragePool, tmp_path: Path
) -> None:
    """Removing the application deletes its empty pool, then unmounts and deletes its storage.

    arrange: memory runner storage made for real (a tmpfs holding a btrfs loop file and pool).
    act: remove the storage (the application goes).
    assert: the pool is gone, the loop file's mount and its loop device are gone, the tmpfs is
        unmounted and its directory deleted.
    """
    assert storage_host.btrfs_usable(), "this machine lacks mkfs.btrfs or the kernel's btrfs"
    pool = storage_host.storage_pool
    ram = tmp_path / "storage" / "ram"
    image = ram / "lxd-pool.img"
    assert storage_host.ensure_runner_storage(storage.MEMORY, 2 * GIB)
    assert mount_at(ram / "lxd-pool") is not None

    assert storage_host.remove()

    assert pool not in lxc("storage", "list", "--format", "csv")
    assert mount_at(ram / "lxd-pool") is None
    assert mount_at(ram) is None
    assert not ram.exists()
    loops = command.run_command(["/usr/sbin/losetup", "-j", str(image)], timeout=30)
    assert loops.strip() == ""
