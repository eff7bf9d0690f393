# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""The runner storage and the runners' LXD storage pool on it.

Nothing here knows about Juju. Every step is idempotent and says whether it changed anything.
The runner storage is either memory (a tmpfs of the application's own, sized for the runners'
disks) or the Juju storage directory.

The runners' pool is a copy-on-write btrfs pool where the host can make one (`mkfs.btrfs` and
the kernel's btrfs): a sparse loop file on the runner storage, formatted and mounted by this
module, is the pool's source. Creating an instance then snapshots the image instead of copying
it. Elsewhere the pool uses the `dir` driver on the runner storage itself. An existing pool keeps
its driver: moving running runners between drivers is not worth the risk. A pool whose source
lost its content (memory storage after a reboot) is made again.
"""

from __future__ import annotations

import contextlib
import enum
import json
import logging
import os
import re
import shutil
import urllib.parse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from command import (
    BINARY_DIRS,
    TOOL_DIRS,
    CommandError,
    CommandRunner,
    HostError,
    find_tool,
    lxc_command,
    lxd_binaries,
    parse_output,
    run_command,
    scoped_name,
)

logger = logging.getLogger(__name__)


class RunnerStorage(str, enum.Enum):
    """Where the runners' root disks live (the `runner-storage` option's values)."""

    JUJU_STORAGE = "juju-storage"
    MEMORY = "memory"


MEMORY = RunnerStorage.MEMORY
JUJU_STORAGE = RunnerStorage.JUJU_STORAGE
# The fixed name of the runners' storage pool before it was scoped by application: a host
# prepared by an earlier version still has it (see `StoragePool`).
LEGACY_STORAGE_POOL = "runner"
# The LXD tag naming a runner's unit (`<app>/<number>`), as the runner manager sets it.
UNIT_TAG = "user.github-runner.unit"
RAM_DIR = Path("/storage/ram")
JUJU_STORAGE_DIR = Path("/storage/juju")
MOUNT = "/usr/bin/mount"
UMOUNT = "/usr/bin/umount"
DIR = "dir"
BTRFS = "btrfs"
# The btrfs pool's loop file and its mount point, both on the runner storage.
POOL_IMAGE = "lxd-pool.img"
POOL_MOUNT = "lxd-pool"
# A directory LXD's dir and btrfs drivers make at the root of a pool when they create it: a
# pool source without it has lost its content (a memory runner storage after a reboot).
POOL_LAYOUT_DIR = "containers"
# Deleted runners give their blocks back to the tmpfs (or the disk) under the loop file; async
# so that deleting a runner does not wait for it.
LOOP_MOUNT_OPTIONS = "loop,discard=async"

_TMPFS_SIZE_RE = re.compile(r"(?:^|,)size=(\d+)k(?:,|$)")


class StorageError(Exception):
    """The runner storage cannot be used as configured; the message says what to change."""


class StorageTooSmallError(StorageError):
    """The configured runners do not fit the runner storage."""


class PoolInUseError(HostError):
    """The runners' pool still holds volumes: it stays (the message names them)."""


def format_size(size: int) -> str:
    """Format a byte count with a binary suffix, e.g. `40GiB` or `1.5TiB`.

    Args:
        size: bytes.

    Returns:
        The size in the largest unit that gives a number of at least 1.
    """
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if value < 1024:
            return f"{value:.1f}".removesuffix(".0") + unit
        value /= 1024
    return f"{value:.1f}".removesuffix(".0") + "EiB"


def _safe_dir_name(app: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", app).strip(".-") or "app"


class _Mount(NamedTuple):
    device: str
    fstype: str
    options: str


class _Pool(NamedTuple):
    driver: str
    source: str


def _disk_total(path: Path) -> int:
    return shutil.disk_usage(path).total


class StoragePool:
    """The runner storage of one application and the LXD storage pool its runners use."""

    def __init__(
        self,
        run: CommandRunner = run_command,
        *,
        app: str | None = None,
        binary_dirs: Sequence[Path] = BINARY_DIRS,
        tool_dirs: Sequence[Path] = TOOL_DIRS,
        storage_pool: str | None = None,
        ram_dir: Path = RAM_DIR,
        juju_storage_dir: Path = JUJU_STORAGE_DIR,
        proc_dir: Path = Path("/proc"),
        disk_total: Callable[[Path], int] = _disk_total,
    ):
        """Describe the storage; every system access can be replaced for tests.

        With an application name, the pool is the application's own (`scoped_name`), and
        memory runner storage is a tmpfs of its own under `ram_dir`. A pool an earlier version
        made under the fixed name `runner` keeps serving the application that owns it (LXD
        cannot rename a pool; see `ensure_runner_storage`).

        Args:
            run: the command runner.
            app: the Juju application name; None keeps the fixed name of earlier versions.
            binary_dirs: where to look for `lxc`, in order.
            tool_dirs: where to look for system tools (`mkfs.btrfs`, `losetup`, `btrfs`).
            storage_pool: the name of the runners' LXD storage pool (derived from `app` by
                default).
            ram_dir: where memory runner storage is mounted (the application's own directory
                under it when `app` is given).
            juju_storage_dir: where Juju mounts the `runner` storage.
            proc_dir: /proc (for mounts, meminfo and filesystems).
            disk_total: returns a filesystem's size in bytes.
        """
        self._run = run
        self._app = app
        self._binary_dirs = tuple(binary_dirs)
        self._tool_dirs = tuple(tool_dirs)
        self.storage_pool = storage_pool or (scoped_name(app) if app else LEGACY_STORAGE_POOL)
        self._legacy_ram_dir = ram_dir
        self._ram_dir = ram_dir / _safe_dir_name(app) if app else ram_dir
        self._legacy_checked = False
        self._juju_storage_dir = juju_storage_dir
        self._proc_dir = proc_dir
        self._disk_total = disk_total

    def _source_dir(self, kind: str) -> Path:
        return self._ram_dir if kind == MEMORY else self._juju_storage_dir

    def _pool_image(self, kind: str) -> Path:
        return self._source_dir(kind) / POOL_IMAGE

    def _pool_mount(self, kind: str) -> Path:
        return self._source_dir(kind) / POOL_MOUNT

    def _pool_source(self, kind: str, driver: str) -> Path:
        """Return where a pool of this driver lives on this runner storage."""
        return self._pool_mount(kind) if driver == BTRFS else self._source_dir(kind)

    def _pool(self, name: str | None = None) -> _Pool | None:
        """Return the driver and source of a pool (the runners'), or None when there is none."""
        argv = [lxc_command(self._binary_dirs), "storage", "show", name or self.storage_pool]
        try:
            output = self._run(argv, timeout=60)
        except CommandError:
            return None
        data: Any = parse_output(output, argv)
        source = (data.get("config") or {}).get("source")
        return _Pool(str(data.get("driver") or ""), str(source) if source else "")

    def _legacy_sources(self, kind: str) -> set[str]:
        """Where an earlier version put a pool of this runner storage (dir or btrfs)."""
        directory = self._legacy_ram_dir if kind == MEMORY else self._juju_storage_dir
        return {str(directory), str(directory / POOL_MOUNT)}

    def _pool_apps(self, name: str) -> set[str]:
        """The applications whose runner instances have their root disk on a pool."""
        try:
            data: Any = json.loads(
                self._run(
                    [lxc_command(self._binary_dirs), "query", f"/1.0/storage-pools/{name}"],
                    timeout=60,
                )
                or "{}"
            )
        except (CommandError, ValueError):
            return set()
        apps = set()
        for url in data.get("used_by") or []:
            if not str(url).startswith("/1.0/instances/"):
                continue
            try:
                instance: Any = json.loads(
                    self._run([lxc_command(self._binary_dirs), "query", str(url)], timeout=60)
                    or "{}"
                )
            except (CommandError, ValueError):
                continue
            unit = str((instance.get("config") or {}).get(UNIT_TAG) or "")
            if unit:
                apps.add(unit.rsplit("/", 1)[0])
        return apps

    def _adopt_legacy_pool(self, kind: str | None) -> None:
        """Keep using the pool an earlier version made under the fixed name, when it is ours.

        LXD cannot rename a storage pool, and its runners' disks are on it: the application
        that owns it goes on using it. It is ours when it sits where this application's runner
        storage of that kind was (`kind` given: the storage the configuration asks for) or when
        runners of this application live on it (`kind` None: nothing is known yet), and never
        when another application's runners live on it.
        """
        if self._legacy_checked or not self._app or self.storage_pool == LEGACY_STORAGE_POOL:
            return
        if self._pool() is not None:
            self._legacy_checked = True
            return
        legacy = self._pool(LEGACY_STORAGE_POOL)
        if legacy is None:
            self._legacy_checked = True
            return
        apps = self._pool_apps(LEGACY_STORAGE_POOL)
        if apps - {self._app}:
            self._legacy_checked = True
            return
        if kind is None:
            owned = self._app in apps
            kinds = [k for k in (MEMORY, JUJU_STORAGE) if legacy.source in self._legacy_sources(k)]
            if not owned or not kinds:
                return
            kind = kinds[0]
        elif legacy.source not in self._legacy_sources(kind):
            return
        self._legacy_checked = True
        logger.info(
            "the LXD storage pool %s made by an earlier version (on %s) keeps serving the "
            "runners of %s",
            LEGACY_STORAGE_POOL,
            legacy.source,
            self._app,
        )
        self.storage_pool = LEGACY_STORAGE_POOL
        self._ram_dir = self._legacy_ram_dir

    def runner_storage_in_use(self) -> RunnerStorage | None:
        """Tell which runner storage the host already has, from the runners' pool source.

        Returns:
            `memory` or `juju-storage`, or None when LXD or the pool is missing (or the pool is
            not one of ours).
        """
        if lxd_binaries(self._binary_dirs) is None:
            return None
        self._adopt_legacy_pool(None)
        pool = self._pool()
        if pool is None:
            return None
        for kind in (MEMORY, JUJU_STORAGE):
            if pool.source == str(self._pool_source(kind, pool.driver)):
                return kind
        return None

    def btrfs_usable(self) -> bool:
        """Tell whether a btrfs pool can be made here: `mkfs.btrfs` and the kernel's btrfs.

        Returns:
            True when both are present.
        """
        if find_tool("mkfs.btrfs", self._tool_dirs) is None:
            return False
        try:
            filesystems = (self._proc_dir / "filesystems").read_text(encoding="utf-8")
        except OSError:
            return False
        return any(line.split()[-1:] == [BTRFS] for line in filesystems.splitlines())

    def _memory_total(self) -> int:
        for line in (self._proc_dir / "meminfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
        raise HostError(f"{self._proc_dir / 'meminfo'} has no MemTotal")

    def check_storage(self, kind: str, required: int) -> None:
        """Check that the runners' disks fit the runner storage.

        Args:
            kind: `memory` or `juju-storage`.
            required: bytes the runners need (vm-disk times runners).

        Raises:
            StorageTooSmallError: if they do not fit.
        """
        if kind == MEMORY:
            total = self._memory_total()
            if required > total:
                raise StorageTooSmallError(
                    f"runner-storage: memory needs a {format_size(required)} tmpfs for the "
                    f"runners' disks but the machine has {format_size(total)} of memory: lower "
                    "vm-disk, containers or virtual-machines"
                )
            return
        directory = self._juju_storage_dir
        if not directory.is_dir():
            raise StorageTooSmallError(
                f"runner-storage: juju-storage needs the runner storage at {directory}: "
                "deploy with --storage runner=<size>, or set runner-storage=memory on a new "
                "deployment"
            )
        total = self._disk_total(directory)
        if required > total:
            raise StorageTooSmallError(
                f"runner-storage: the runners' disks need {format_size(required)} but "
                f"{directory} holds {format_size(total)}: lower vm-disk, containers or "
                "virtual-machines, or attach bigger runner storage"
            )

    def _mount(self, path: Path) -> _Mount | None:
        """Return what is mounted at a path (the last mount wins), or None."""
        found = None
        mounts = (self._proc_dir / "mounts").read_text(encoding="utf-8")
        for line in mounts.splitlines():
            fields = line.split()
            if len(fields) >= 4 and fields[1] == str(path):
                found = _Mount(fields[0], fields[2], fields[3])
        return found

    def _tmpfs_size_kib(self) -> int | None:
        """Return the size of the tmpfs mounted at the RAM directory, or None if unmounted."""
        mount = self._mount(self._ram_dir)
        if mount is None or mount.fstype != "tmpfs":
            return None
        match = _TMPFS_SIZE_RE.search(mount.options)
        return int(match.group(1)) if match else 0

    def _ensure_tmpfs(self, required: int) -> bool:
        size_kib = -(-required // 1024)
        current = self._tmpfs_size_kib()
        if current == size_kib:
            return False
        self._ram_dir.mkdir(parents=True, exist_ok=True)
        if current is None:
            logger.info("mounting a %s tmpfs at %s", format_size(required), self._ram_dir)
            self._run(
                [MOUNT, "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(self._ram_dir)],
                timeout=60,
            )
        else:
            logger.info("resizing the tmpfs at %s to %s", self._ram_dir, format_size(required))
            try:
                self._run(
                    [MOUNT, "-o", f"remount,size={size_kib}k", str(self._ram_dir)], timeout=60
                )
            except CommandError as exc:
                if current < size_kib:
                    raise
                # A tmpfs cannot shrink below what its runners use; a bigger one does no harm,
                # and refusing here would keep a lower runner count from being applied.
                logger.warning("cannot shrink the tmpfs at %s yet: %s", self._ram_dir, exc)
                return False
        return True

    def _tool(self, name: str) -> str:
        tool = find_tool(name, self._tool_dirs)
        if tool is None:
            raise HostError(f"the {name} command is missing")
        return tool

    def _make_btrfs(self, image: Path, size: int) -> None:
        """Make a fresh btrfs file system in a sparse file of `size` bytes."""
        logger.info("making a %s btrfs file system in %s", format_size(size), image)
        image.unlink(missing_ok=True)
        descriptor = os.open(image, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
        try:
            os.ftruncate(descriptor, size)
        finally:
            os.close(descriptor)
        # One copy of the metadata: a second copy in the same loop file protects nothing.
        self._run([self._tool("mkfs.btrfs"), "-q", "-m", "single", str(image)], timeout=300)

    def _grow_btrfs(self, image: Path, device: str, mount: Path, size: int) -> bool:
        """Grow the loop file, its loop device and the file system to `size`; never shrink."""
        if image.stat().st_size >= size:
            return False
        logger.info("growing the btrfs file system at %s to %s", mount, format_size(size))
        os.truncate(image, size)
        self._run([self._tool("losetup"), "--set-capacity", device], timeout=60)
        self._run([self._tool("btrfs"), "filesystem", "resize", "max", str(mount)], timeout=300)
        return True

    def _ensure_btrfs_mounted(self, kind: str, size: int) -> bool:
        """Mount the pool's loop file, making it first when it is missing or unusable.

        Returns:
            Whether anything was made, mounted or grown.
        """
        image, mount = self._pool_image(kind), self._pool_mount(kind)
        current = self._mount(mount)
        if current is not None and current.fstype == BTRFS:
            return self._grow_btrfs(image, current.device, mount, size)
        mount.mkdir(parents=True, exist_ok=True)
        if image.exists():
            # A reboot unmounted it; the file (on juju-storage) still holds the pool.
            try:
                self._run([MOUNT, "-o", LOOP_MOUNT_OPTIONS, str(image), str(mount)], timeout=60)
            except CommandError as exc:
                logger.warning("cannot mount %s (%s): making a new file system", image, exc)
            else:
                current = self._mount(mount)
                if current is not None:
                    self._grow_btrfs(image, current.device, mount, size)
                return True
        self._make_btrfs(image, size)
        self._run([MOUNT, "-o", LOOP_MOUNT_OPTIONS, str(image), str(mount)], timeout=60)
        return True

    def _create_pool(self, kind: str, size: int, btrfs: bool) -> None:
        """Create the runners' pool: btrfs on a loop file when asked and possible, else dir."""
        lxc = lxc_command(self._binary_dirs)
        if btrfs:
            try:
                self._ensure_btrfs_mounted(kind, size)
            except HostError as exc:
                # No loop device (a machine that is itself a container), for example.
                logger.warning(
                    "cannot make a btrfs file system for the runners (%s): the LXD storage "
                    "pool %s uses the dir driver, which copies the whole image for each runner",
                    exc,
                    self.storage_pool,
                )
                self._pool_image(kind).unlink(missing_ok=True)
            else:
                mount = self._pool_mount(kind)
                logger.info(
                    "creating the LXD storage pool %s (btrfs) on %s", self.storage_pool, mount
                )
                self._run(
                    [lxc, "storage", "create", self.storage_pool, BTRFS, f"source={mount}"],
                    timeout=120,
                )
                return
        source = self._source_dir(kind)
        logger.info("creating the LXD storage pool %s (dir) on %s", self.storage_pool, source)
        self._run(
            [lxc, "storage", "create", self.storage_pool, DIR, f"source={source}"], timeout=120
        )

    def _recreate_lost_pool(self, pool: _Pool) -> None:
        """Delete and create again a pool whose source lost its content.

        LXD still lists the pool's image volumes, which are gone with the storage: instances
        created from them would fail until the pool is made again.
        """
        lxc = lxc_command(self._binary_dirs)
        logger.warning(
            "the LXD storage pool %s lost its content at %s (a memory runner storage does not "
            "survive a reboot): recreating it",
            self.storage_pool,
            pool.source,
        )
        try:
            self._run([lxc, "storage", "delete", self.storage_pool], timeout=300)
        except CommandError as exc:
            raise HostError(
                f"the LXD storage pool {self.storage_pool} lost its content at {pool.source} "
                f"and LXD cannot delete it yet ({exc.stderr}): delete the instances left on it "
                "(`lxc list`); the next reconciliation recreates it"
            ) from None
        self._run(
            [lxc, "storage", "create", self.storage_pool, pool.driver, f"source={pool.source}"],
            timeout=120,
        )

    def ensure_runner_storage(self, kind: str, required: int) -> bool:
        """Prepare the runner storage and the runners' LXD storage pool on it.

        A new pool is a btrfs pool on a loop file of `required` bytes when `btrfs_usable()`,
        else a dir pool. A btrfs pool's file grows with `required` but never shrinks (a sparse
        file costs only what the runners write), and the tmpfs of memory storage is kept at
        least as big as the file. A pool whose storage lost its content (memory storage after
        a reboot) is made again.

        Args:
            kind: `memory` (a tmpfs sized `required`, resized when it changes) or
                `juju-storage` (the Juju storage directory).
            required: bytes the runners need.

        Returns:
            Whether anything was mounted, resized or created.

        Raises:
            HostError: if a command fails.
            StorageError: if the pool exists on another source.
        """
        self._adopt_legacy_pool(kind)
        pool = self._pool()
        btrfs = pool.driver == BTRFS if pool is not None else self.btrfs_usable()
        size = required
        image = self._pool_image(kind)
        if btrfs and image.exists():
            size = max(size, image.stat().st_size)
        changed = False
        if kind == MEMORY:
            changed = self._ensure_tmpfs(size)
        else:
            self._source_dir(kind).mkdir(parents=True, exist_ok=True)
        if pool is None:
            self._create_pool(kind, size, btrfs)
            return True
        source = self._pool_source(kind, pool.driver)
        if pool.source != str(source):
            raise StorageError(
                f"the LXD storage pool {self.storage_pool} exists on "
                f"{pool.source or 'an unknown source'}, not on {source}: delete it or redeploy "
                "with the runner-storage it was made for"
            )
        if pool.driver == BTRFS:
            changed = self._ensure_btrfs_mounted(kind, size) or changed
        if pool.driver in (BTRFS, DIR) and not (source / POOL_LAYOUT_DIR).is_dir():
            self._recreate_lost_pool(pool)
            changed = True
        return changed

    # ----- removal --------------------------------------------------------------------------

    def _pool_volumes(self, lxc: str) -> list[str]:
        """The volumes left on the runners' pool, in every project, as `type name (project p)`.

        Raises:
            HostError: if LXD cannot list them.
        """
        url = f"/1.0/storage-pools/{urllib.parse.quote(self.storage_pool)}/volumes"
        argv = [lxc, "query", f"{url}?all-projects=true"]
        left = []
        for volume in parse_output(self._run(argv, timeout=60), argv, list):
            path, _, query = str(volume).partition("?")
            kind, _, name = path.removeprefix(f"{url}/").partition("/")
            project = urllib.parse.parse_qs(query).get("project", ["default"])[0]
            left.append(f"{kind} {urllib.parse.unquote(name)} (project {project})")
        return left

    def _delete_pool_if_empty(self) -> None:
        """Delete the runners' pool when LXD lists no volume left on it, in any project.

        Raises:
            PoolInUseError: if volumes are left on it.
            HostError: if LXD cannot tell or refuses.
        """
        lxc = lxc_command(self._binary_dirs)
        try:
            self._run([lxc, "storage", "show", self.storage_pool], timeout=60)
        except CommandError as exc:
            if "not found" in exc.stderr.lower():
                return
            raise
        left = self._pool_volumes(lxc)
        if left:
            raise PoolInUseError(
                f"{len(left)} volume(s) are left on it: {', '.join(left)}. Once the runners "
                "are done, delete them by hand (`lxc delete --force --project <project> "
                "<name>` for an instance, `lxc image delete <fingerprint>` for an image), "
                f"then `lxc storage delete {self.storage_pool}`, and unmount the runner storage "
                f"under {self._ram_dir} or {self._juju_storage_dir} (`lxd-pool`, then the tmpfs)"
            )
        logger.info("deleting the LXD storage pool %s: no volume is left on it", self.storage_pool)
        self._run([lxc, "storage", "delete", self.storage_pool], timeout=300)

    def _pool_sources(self) -> list[Path]:
        """The sources of every LXD storage pool of the machine (of every application).

        Raises:
            HostError: if LXD cannot list them.
        """
        argv = [lxc_command(self._binary_dirs), "query", "/1.0/storage-pools?recursion=1"]
        sources = []
        for pool in parse_output(self._run(argv, timeout=60), argv, list):
            source = (pool.get("config") or {}).get("source") if isinstance(pool, dict) else None
            if source:
                sources.append(Path(str(source)))
        return sources

    def _unmount(self, path: Path, fstype: str) -> bool:
        """Unmount a file system of this type mounted at a path; False when it stays."""
        mount = self._mount(path)
        if mount is None or mount.fstype != fstype:
            return True
        logger.info("unmounting the runner storage at %s (%s)", path, fstype)
        try:
            self._run([UMOUNT, str(path)], timeout=60)
        except HostError as exc:
            logger.warning("the runner storage at %s stays mounted: %s", path, exc)
            return False
        return True

    def _remove_runner_storage(self) -> None:
        """Unmount and delete the runner storage the pool was on, when no pool uses it.

        The loop file of a btrfs pool (on either runner storage) and the tmpfs of memory
        storage; the Juju storage itself is Juju's.
        """
        try:
            sources = self._pool_sources()
        except HostError as exc:
            logger.warning("the runner storage stays: LXD cannot list its pools: %s", exc)
            return

        def in_use(path: Path) -> bool:
            return any(s == path or path in s.parents or s in path.parents for s in sources)

        for kind in (MEMORY, JUJU_STORAGE):
            mount, image = self._pool_mount(kind), self._pool_image(kind)
            if in_use(mount) or in_use(image) or not self._unmount(mount, BTRFS):
                continue
            if image.exists():
                logger.info("deleting the runner storage's loop file %s", image)
                image.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                mount.rmdir()
        if not in_use(self._ram_dir) and self._unmount(self._ram_dir, "tmpfs"):
            with contextlib.suppress(OSError):
                self._ram_dir.rmdir()

    def remove(self) -> bool:
        """Delete the pool and the runner storage of an application that goes.

        The pool is deleted only when LXD lists no volume left on it (an instance that could
        not be removed, an image); otherwise it stays, with the runner storage under it, and
        the log names what is left and how to remove it by hand. Best effort, for the remove
        hook: a failure is logged, never raised; every command is bounded by a timeout.

        Returns:
            Whether the pool is gone (deleted now, or there was none).
        """
        try:
            self._delete_pool_if_empty()
        except PoolInUseError as exc:
            logger.warning("the LXD storage pool %s stays: %s", self.storage_pool, exc)
            return False
        except HostError as exc:
            logger.error(
                "cannot delete the LXD storage pool %s: %s; delete it by hand "
                "(`lxc storage delete %s`) once nothing is left on it",
                self.storage_pool,
                exc,
                self.storage_pool,
            )
            return False
        self._remove_runner_storage()
        return True
