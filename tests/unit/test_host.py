# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""Unit tests of host.py: its decisions, with the command runner and the system files faked."""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from charmlibs import snap

import command
import firewall
import host
import storage

GIB = 1024**3


class FakeCommands:
    """A command runner answering from a table keyed by the arguments after the binary."""

    def __init__(self) -> None:
        self.commands: list[tuple[str, ...]] = []
        self.inputs: list[str | None] = []
        self.answers: dict[tuple[str, ...], str | Exception | Callable[[], str]] = {}

    def __call__(self, argv: Any, *, input_text: str | None = None, timeout: float = 0.0) -> str:
        assert Path(argv[0]).is_absolute()
        assert timeout > 0
        key = tuple(argv[1:])
        self.commands.append((Path(argv[0]).name, *key))
        self.inputs.append(input_text)
        answer = self.answers.get(key, "")
        if isinstance(answer, Exception):
            raise answer
        return answer() if callable(answer) else answer

    def names(self) -> list[tuple[str, ...]]:
        return self.commands


class Machine:
    """A fake machine in a temporary directory, and a Host and a StoragePool on it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.bin = root / "snap-bin"
        self.sbin = root / "sbin"
        self.sbin.mkdir()
        self.ram = root / "storage" / "ram"
        self.juju = root / "storage" / "juju"
        self.proc = root / "proc"
        self.proc.mkdir()
        self.os_release = root / "os-release"
        self.os_release.write_text('NAME="Ubuntu"\nID=ubuntu\n')
        self.meminfo(64 * GIB)
        self.mounts("")
        (self.proc / "filesystems").write_text("nodev\tsysfs\nnodev\ttmpfs\n\text4\n")
        self.disk = 100 * GIB
        self.commands = FakeCommands()
        self.snaps: list[tuple[str, str]] = []
        self.debs: list[list[str]] = []
        self.install_error: Exception | None = None
        self.commands.answers[("query", "/1.0/storage-pools")] = '["/1.0/storage-pools/default"]'
        self.commands.answers[("query", "/1.0/networks?recursion=1")] = "[]"
        self.commands.answers[("storage", "show", "runner")] = command.CommandError(
            "no pool", 1, "Error: Storage pool not found"
        )
        self.host = host.Host(
            self.commands,
            binary_dirs=(self.bin, root / "usr-bin"),
            tool_dirs=(self.sbin,),
            proc_dir=self.proc,
            os_release=self.os_release,
            machine=lambda: "aarch64",
            install_snap=self.install_snap,
            install_debs=self.install_debs,
            modules_load_dir=root / "modules-load.d",
            lxd_proxy_record=root / "lxd-proxy.json",
        )
        self.storage = storage.StoragePool(
            self.commands,
            binary_dirs=(self.bin, root / "usr-bin"),
            tool_dirs=(self.sbin,),
            ram_dir=self.ram,
            juju_storage_dir=self.juju,
            proc_dir=self.proc,
            disk_total=lambda path: self.disk,
        )
        self.firewall = firewall.Firewall.for_app(
            None, self.commands, binary_dirs=(self.bin, root / "usr-bin"), tool_dirs=(self.sbin,)
        )

    def install_lxd(self) -> None:
        self.bin.mkdir(exist_ok=True)
        for name in ("lxc", "lxd"):
            (self.bin / name).write_text("")

    def install_snap(self, name: str, channel: str) -> None:
        self.snaps.append((name, channel))
        if self.install_error:
            raise self.install_error
        self.install_lxd()

    def install_debs(self, names: list[str]) -> None:
        self.debs.append(names)
        self.install_lxd()

    def meminfo(self, total: int) -> None:
        (self.proc / "meminfo").write_text(
            f"MemTotal:       {total // 1024} kB\nMemFree:        1024 kB\n"
        )

    def mounts(self, extra: str) -> None:
        (self.proc / "mounts").write_text(
            "sysfs /sys sysfs rw,nosuid 0 0\n/dev/sda1 / ext4 rw,relatime 0 0\n" + extra
        )

    def pool(self, source: Path | str, driver: str = "dir", name: str = "runner") -> None:
        """An LXD pool on `source`, holding the layout LXD makes when it creates one."""
        self.commands.answers[("storage", "show", name)] = (
            f"name: {name}\ndriver: {driver}\nconfig:\n  source: {source}\nused_by: []\n"
        )
        if Path(source).is_absolute() and str(source).startswith(str(self.root)):
            (Path(source) / "containers").mkdir(parents=True, exist_ok=True)

    def enable_btrfs(self) -> None:
        for tool in ("mkfs.btrfs", "losetup", "btrfs"):
            (self.sbin / tool).write_text("")
        (self.proc / "filesystems").write_text("nodev\ttmpfs\n\text4\n\tbtrfs\n")

    def add_mount(self, line: str) -> None:
        mounts = self.proc / "mounts"
        mounts.write_text(mounts.read_text() + line)

    def mounting(self, line: str) -> Callable[[], str]:
        """A command answer that mounts something: the line appears in /proc/mounts."""

        def answer() -> str:
            self.add_mount(line)
            return ""

        return answer


@pytest.fixture
def machine(tmp_path: Path) -> Machine:
    return Machine(tmp_path)


# ----- LXD ----------------------------------------------------------------------------------


def test_machine_architecture(machine: Machine) -> None:
    """The host reports the machine's architecture.

    arrange: a fake machine whose architecture is aarch64.
    act: ask the host for the machine.
    assert: aarch64.
    """
    assert machine.host.machine() == "aarch64"


def test_lxd_installed_needs_both_commands(machine: Machine) -> None:
    """LXD counts as installed only when both lxc and lxd are there.

    arrange: a binary directory with lxc only, then with lxd too.
    act: ask whether LXD is installed after each step.
    assert: not installed with lxc alone; installed with both.
    """
    machine.bin.mkdir()
    (machine.bin / "lxc").write_text("")
    assert not machine.host.lxd_installed()

    (machine.bin / "lxd").write_text("")
    assert machine.host.lxd_installed()


def test_missing_lxd_is_installed_from_the_snap_and_initialised(machine: Machine) -> None:
    """A machine without LXD gets the snap, then an initialisation by preseed.

    arrange: no LXD commands and no storage pool.
    act: ensure LXD.
    assert: changed; the LXD snap of the pinned channel installed; waitready, the pool and network
        queries, then `lxd init --preseed` fed the preseed.
    """
    machine.commands.answers[("query", "/1.0/storage-pools")] = "[]"

    changed = machine.host.ensure_lxd()

    assert changed
    assert machine.snaps == [("lxd", host.LXD_SNAP_CHANNEL)]
    assert machine.commands.names() == [
        ("lxd", "waitready", "--timeout", "120"),
        ("lxc", "query", "/1.0/storage-pools"),
        ("lxc", "query", "/1.0/networks?recursion=1"),
        ("lxd", "init", "--preseed"),
    ]
    assert machine.commands.inputs[-1] == host.PRESEED


def test_lxd_on_debian_comes_from_packages(machine: Machine) -> None:
    """On Debian, LXD comes from the distribution's packages, not the snap.

    arrange: an os-release saying ID=debian.
    act: ensure LXD.
    assert: the lxd and lxd-client packages installed; no snap.
    """
    machine.os_release.write_text("ID=debian\n")

    machine.host.ensure_lxd()

    assert machine.debs == [["lxd", "lxd-client"]]
    assert machine.snaps == []


def test_missing_os_release_means_packages(machine: Machine) -> None:
    """Without an os-release file, LXD comes from packages.

    arrange: no os-release file.
    act: ensure LXD.
    assert: the lxd and lxd-client packages installed.
    """
    machine.os_release.unlink()

    machine.host.ensure_lxd()

    assert machine.debs == [["lxd", "lxd-client"]]


def test_initialised_lxd_is_never_initialised_again(machine: Machine) -> None:
    """LXD that is installed and has a storage pool is left alone.

    arrange: LXD installed with a default storage pool.
    act: ensure LXD.
    assert: nothing changed; no snap installed and no `lxd init` run.
    """
    machine.install_lxd()

    changed = machine.host.ensure_lxd()

    assert not changed
    assert machine.snaps == []
    assert ("lxd", "init", "--preseed") not in machine.commands.names()


def test_lxd_with_only_a_managed_network_counts_as_initialised(machine: Machine) -> None:
    """A managed network is evidence enough that LXD was initialised.

    arrange: LXD installed, no storage pool, a managed lxdbr0 beside an unmanaged eth0.
    act: ensure LXD.
    assert: nothing changed.
    """
    machine.install_lxd()
    machine.commands.answers[("query", "/1.0/storage-pools")] = "[]"
    machine.commands.answers[("query", "/1.0/networks?recursion=1")] = json.dumps(
        [{"name": "eth0", "managed": False}, {"name": "lxdbr0", "managed": True}]
    )

    assert not machine.host.ensure_lxd()


def test_snap_failure_is_a_host_error(machine: Machine) -> None:
    """A snap that cannot be installed is a HostError.

    arrange: the snap store answers "not found".
    act: ensure LXD.
    assert: HostError saying LXD cannot be installed.
    """
    machine.install_error = snap.NotInStoreError(
        "snap not found", kind="snap-not-found", value=None, status_code=404
    )

    with pytest.raises(command.HostError, match="cannot install LXD"):
        machine.host.ensure_lxd()


def test_installed_lxd_without_commands_is_a_host_error(machine: Machine) -> None:
    """An installation that leaves no LXD commands behind is a HostError.

    arrange: a host whose snap installation does nothing.
    act: ensure LXD.
    assert: HostError saying the commands are missing.
    """
    machine.host = host.Host(
        machine.commands,
        binary_dirs=(machine.bin,),
        os_release=machine.os_release,
        install_snap=lambda name, channel: None,
    )

    with pytest.raises(command.HostError, match="commands are missing"):
        machine.host.ensure_lxd()


# ----- storage ------------------------------------------------------------------------------


def test_no_storage_in_use_without_lxd(machine: Machine) -> None:
    """Without LXD no runner storage is in use and no command runs.

    arrange: a machine without LXD.
    act: ask which runner storage is in use.
    assert: None, and no command was run.
    """
    assert machine.storage.runner_storage_in_use() is None
    assert machine.commands.names() == []


@pytest.mark.parametrize(
    ("source", "kind"),
    [("ram", "memory"), ("juju", "juju-storage"), ("elsewhere", None), (None, None)],
)
def test_storage_in_use_from_the_pool_source(
    machine: Machine, source: str | None, kind: str | None
) -> None:
    """The runner storage in use is read from the dir pool's source.

    arrange: LXD with a runner pool on the memory directory, the Juju storage, elsewhere, or no
        pool.
    act: ask which runner storage is in use.
    assert: memory, juju-storage, or None for elsewhere and no pool.
    """
    machine.install_lxd()
    if source is not None:
        machine.pool({"ram": machine.ram, "juju": machine.juju}.get(source, "/srv/other"))

    assert machine.storage.runner_storage_in_use() == kind


def test_pool_without_source_is_not_ours(machine: Machine) -> None:
    """A runner pool without a source is not counted as the charm's.

    arrange: LXD with a runner pool whose config has no source.
    act: ask which runner storage is in use.
    assert: None.
    """
    machine.install_lxd()
    machine.commands.answers[("storage", "show", "runner")] = "name: runner\nconfig: {}\n"

    assert machine.storage.runner_storage_in_use() is None


def test_memory_storage_fits_in_memory(machine: Machine) -> None:
    """Memory storage no bigger than the machine's memory passes the check.

    arrange: a machine with 64GiB of memory.
    act: check memory storage of 64GiB.
    assert: no error is raised.
    """
    machine.storage.check_storage(storage.MEMORY, 64 * GIB)


def test_memory_storage_bigger_than_memory_is_refused(machine: Machine) -> None:
    """Memory storage bigger than the machine's memory is refused, naming the option and the fix.

    arrange: a machine with 16GiB of memory.
    act: check memory storage of 40GiB.
    assert: StorageTooSmallError whose message names runner-storage, both sizes and what to lower.
    """
    machine.meminfo(16 * GIB)

    with pytest.raises(storage.StorageTooSmallError) as error:
        machine.storage.check_storage(storage.MEMORY, 40 * GIB)

    assert str(error.value) == (
        "runner-storage: memory needs a 40GiB tmpfs for the runners' disks but the machine "
        "has 16GiB of memory: lower vm-disk, containers or virtual-machines"
    )


def test_meminfo_without_total_is_a_host_error(machine: Machine) -> None:
    """A meminfo without MemTotal is a HostError.

    arrange: /proc/meminfo with only MemFree.
    act: check memory storage.
    assert: HostError.
    """
    (machine.proc / "meminfo").write_text("MemFree: 1 kB\n")

    with pytest.raises(command.HostError):
        machine.storage.check_storage(storage.MEMORY, GIB)


def test_juju_storage_must_exist(machine: Machine) -> None:
    """Juju storage that is not attached is refused.

    arrange: no Juju storage directory.
    act: check juju-storage of 1GiB.
    assert: StorageTooSmallError saying the runner storage is needed.
    """
    with pytest.raises(storage.StorageTooSmallError, match="needs the runner storage"):
        machine.storage.check_storage(storage.JUJU_STORAGE, GIB)


def test_juju_storage_too_small_is_refused(machine: Machine) -> None:
    """Juju storage smaller than the runners need is refused with both sizes.

    arrange: a Juju storage directory holding 25GiB.
    act: check juju-storage of 30GiB.
    assert: StorageTooSmallError starting with runner-storage and naming 30GiB needed, 25GiB held.
    """
    machine.juju.mkdir(parents=True)
    machine.disk = 25 * GIB

    with pytest.raises(storage.StorageTooSmallError) as error:
        machine.storage.check_storage(storage.JUJU_STORAGE, 30 * GIB)

    assert "need 30GiB" in str(error.value)
    assert "holds 25GiB" in str(error.value)
    assert str(error.value).startswith("runner-storage:")


def test_juju_storage_that_fits(machine: Machine) -> None:
    """Juju storage big enough passes the check.

    arrange: a Juju storage directory on a 100GiB disk.
    act: check juju-storage of 100GiB.
    assert: no error is raised.
    """
    machine.juju.mkdir(parents=True)

    machine.storage.check_storage(storage.JUJU_STORAGE, 100 * GIB)


def test_memory_storage_mounts_tmpfs_and_creates_pool(machine: Machine) -> None:
    """Memory storage is a tmpfs of the runners' size with a dir pool on it.

    arrange: LXD without a runner pool, no btrfs.
    act: ensure memory storage of 20GiB.
    assert: changed; the memory directory made; a 20GiB tmpfs mounted on it, then a dir pool
        created there.
    """
    machine.install_lxd()

    changed = machine.storage.ensure_runner_storage(storage.MEMORY, 20 * GIB)

    assert changed
    assert machine.ram.is_dir()
    assert machine.commands.names() == [
        ("lxc", "storage", "show", "runner"),
        ("mount", "-t", "tmpfs", "-o", "size=20971520k", "tmpfs", str(machine.ram)),
        ("lxc", "storage", "create", "runner", "dir", f"source={machine.ram}"),
    ]


def test_memory_storage_already_right_changes_nothing(machine: Machine) -> None:
    """Memory storage already of the right size changes nothing.

    arrange: a 20GiB tmpfs mounted with the runner pool on it.
    act: ensure memory storage of 20GiB.
    assert: not changed; only the pool was looked at.
    """
    machine.install_lxd()
    machine.mounts(f"tmpfs {machine.ram} tmpfs rw,relatime,size=20971520k 0 0\n")
    machine.pool(machine.ram)

    changed = machine.storage.ensure_runner_storage(storage.MEMORY, 20 * GIB)

    assert not changed
    assert machine.commands.names() == [("lxc", "storage", "show", "runner")]


def test_memory_storage_is_resized_by_remount(machine: Machine) -> None:
    """A tmpfs of the wrong size is resized by a remount.

    arrange: a 10GiB tmpfs with the runner pool on it.
    act: ensure memory storage of 30GiB.
    assert: changed; the tmpfs remounted with the new size.
    """
    machine.install_lxd()
    machine.mounts(f"tmpfs {machine.ram} tmpfs rw,size=10485760k,mode=755 0 0\n")
    machine.pool(machine.ram)

    changed = machine.storage.ensure_runner_storage(storage.MEMORY, 30 * GIB)

    assert changed
    assert machine.commands.names()[1] == (
        "mount",
        "-o",
        "remount,size=31457280k",
        str(machine.ram),
    )


def test_tmpfs_that_cannot_shrink_yet_is_left_bigger(machine: Machine) -> None:
    """A tmpfs that cannot shrink while in use is left at its bigger size.

    arrange: a 30GiB tmpfs with the pool on it; the remount to 10GiB fails as busy.
    act: ensure memory storage of 10GiB.
    assert: not changed, and no error.
    """
    machine.install_lxd()
    machine.mounts(f"tmpfs {machine.ram} tmpfs rw,size=31457280k 0 0\n")
    machine.pool(machine.ram)
    machine.commands.answers[("-o", "remount,size=10485760k", str(machine.ram))] = (
        command.CommandError("busy", 32, "mount: /storage/ram: mount point is busy")
    )

    changed = machine.storage.ensure_runner_storage(storage.MEMORY, 10 * GIB)

    assert not changed


def test_tmpfs_that_cannot_grow_is_a_host_error(machine: Machine) -> None:
    """A tmpfs that cannot grow is an error: the runners would not fit.

    arrange: a 10GiB tmpfs; the remount to 30GiB fails.
    act: ensure memory storage of 30GiB.
    assert: CommandError.
    """
    machine.install_lxd()
    machine.mounts(f"tmpfs {machine.ram} tmpfs rw,size=10485760k 0 0\n")
    machine.commands.answers[("-o", "remount,size=31457280k", str(machine.ram))] = (
        command.CommandError("no", 32, "mount: no memory")
    )

    with pytest.raises(command.CommandError):
        machine.storage.ensure_runner_storage(storage.MEMORY, 30 * GIB)


def test_tmpfs_without_size_is_resized(machine: Machine) -> None:
    """A tmpfs mounted without a size option is remounted with one.

    arrange: a tmpfs without size= holding the runner pool.
    act: ensure memory storage of 1GiB.
    assert: changed.
    """
    machine.install_lxd()
    machine.mounts(f"tmpfs {machine.ram} tmpfs rw,relatime 0 0\n")
    machine.pool(machine.ram)

    assert machine.storage.ensure_runner_storage(storage.MEMORY, GIB)


def test_juju_storage_pool(machine: Machine) -> None:
    """Juju storage gets a dir pool on the Juju storage directory.

    arrange: LXD without a runner pool, no btrfs.
    act: ensure juju-storage of 20GiB.
    assert: changed; the directory made and the last command creates a dir pool on it.
    """
    machine.install_lxd()

    changed = machine.storage.ensure_runner_storage(storage.JUJU_STORAGE, 20 * GIB)

    assert changed
    assert machine.juju.is_dir()
    assert machine.commands.names()[-1] == (
        "lxc",
        "storage",
        "create",
        "runner",
        "dir",
        f"source={machine.juju}",
    )


def test_pool_on_another_source_is_a_host_error(machine: Machine) -> None:
    """A runner pool on the other storage is refused, not moved.

    arrange: the runner pool on the memory directory.
    act: ensure juju-storage.
    assert: StorageError saying the pool exists on ram, not on juju.
    """
    machine.install_lxd()
    machine.pool(machine.ram)

    with pytest.raises(storage.StorageError, match=r"exists on .*ram, not on .*juju"):
        machine.storage.ensure_runner_storage(storage.JUJU_STORAGE, GIB)


def test_storage_pool_without_lxd_is_a_host_error(machine: Machine) -> None:
    """Runner storage cannot be set up before LXD is installed.

    arrange: a machine without LXD.
    act: ensure juju-storage.
    assert: HostError saying LXD is not installed.
    """
    with pytest.raises(command.HostError, match="LXD is not installed"):
        machine.storage.ensure_runner_storage(storage.JUJU_STORAGE, GIB)


def test_dir_pool_that_lost_its_content_is_recreated(machine: Machine) -> None:
    """A dir pool whose directory lost its content (a reboot emptied the tmpfs) is recreated.

    arrange: the runner pool on the memory directory, its LXD layout gone, as after a reboot that
        left a new empty tmpfs.
    act: ensure memory storage of 20GiB.
    assert: changed; the pool deleted and created again on the same source.
    """
    machine.install_lxd()
    machine.pool(machine.ram)
    (machine.ram / "containers").rmdir()

    changed = machine.storage.ensure_runner_storage(storage.MEMORY, 20 * GIB)

    assert changed
    assert machine.commands.names()[-2:] == [
        ("lxc", "storage", "delete", "runner"),
        ("lxc", "storage", "create", "runner", "dir", f"source={machine.ram}"),
    ]


# ----- copy-on-write (btrfs) pool -----------------------------------------------------------


def test_btrfs_usable_needs_the_tool_and_the_kernel(machine: Machine) -> None:
    """A btrfs pool is made only when both mkfs.btrfs and the kernel's btrfs are there.

    arrange: no btrfs tools, then the tools and the kernel file system, then the kernel without
        btrfs, then no filesystems file.
    act: ask whether btrfs is usable after each step.
    assert: usable only with both the tools and btrfs in /proc/filesystems.
    """
    assert not machine.storage.btrfs_usable()

    machine.enable_btrfs()
    assert machine.storage.btrfs_usable()

    (machine.proc / "filesystems").write_text("nodev\ttmpfs\n\text4\n")
    assert not machine.storage.btrfs_usable()

    (machine.proc / "filesystems").unlink()
    assert not machine.storage.btrfs_usable()


def test_memory_storage_gets_a_btrfs_pool_on_a_loop_file(machine: Machine) -> None:
    """With btrfs usable, memory storage is a btrfs pool on a sparse loop file inside the tmpfs.

    arrange: LXD without a runner pool, btrfs usable.
    act: ensure memory storage of 20GiB.
    assert: changed; tmpfs mounted, the loop file formatted and mounted, a btrfs pool created on
        it; the file is sparse, of the runners' size and readable by root only.
    """
    machine.install_lxd()
    machine.enable_btrfs()
    image, mount = machine.ram / "lxd-pool.img", machine.ram / "lxd-pool"

    changed = machine.storage.ensure_runner_storage(storage.MEMORY, 20 * GIB)

    assert changed
    assert machine.commands.names() == [
        ("lxc", "storage", "show", "runner"),
        ("mount", "-t", "tmpfs", "-o", "size=20971520k", "tmpfs", str(machine.ram)),
        ("mkfs.btrfs", "-q", "-m", "single", str(image)),
        ("mount", "-o", "loop,discard=async", str(image), str(mount)),
        ("lxc", "storage", "create", "runner", "btrfs", f"source={mount}"),
    ]
    # A sparse file of the runners' size, readable by root only.
    assert image.stat().st_size == 20 * GIB
    assert image.stat().st_blocks * 512 < GIB
    assert image.stat().st_mode & 0o777 == 0o600
    assert mount.is_dir()


def test_juju_storage_gets_a_btrfs_pool_on_a_loop_file(machine: Machine) -> None:
    """With btrfs usable, Juju storage is a btrfs pool on a loop file on the storage.

    arrange: LXD without a runner pool, btrfs usable.
    act: ensure juju-storage of 30GiB.
    assert: the loop file formatted, mounted and made a btrfs pool; the file is 30GiB.
    """
    machine.install_lxd()
    machine.enable_btrfs()
    image, mount = machine.juju / "lxd-pool.img", machine.juju / "lxd-pool"

    machine.storage.ensure_runner_storage(storage.JUJU_STORAGE, 30 * GIB)

    assert machine.commands.names()[1:] == [
        ("mkfs.btrfs", "-q", "-m", "single", str(image)),
        ("mount", "-o", "loop,discard=async", str(image), str(mount)),
        ("lxc", "storage", "create", "runner", "btrfs", f"source={mount}"),
    ]
    assert image.stat().st_size == 30 * GIB


def test_pool_name_is_injectable(tmp_path: Path) -> None:
    """The pool name can be chosen (the functional tests use their own).

    arrange: a host built with storage pool grt-test, which does not exist yet.
    act: ensure memory storage of 1GiB.
    assert: the pool created is grt-test.
    """
    machine = Machine(tmp_path)
    machine.install_lxd()
    machine.commands.answers[("storage", "show", "grt-test")] = command.CommandError(
        "no pool", 1, "Error: Storage pool not found"
    )
    machine.storage = storage.StoragePool(
        machine.commands,
        binary_dirs=(machine.bin,),
        tool_dirs=(machine.sbin,),
        storage_pool="grt-test",
        ram_dir=machine.ram,
        proc_dir=machine.proc,
    )

    machine.storage.ensure_runner_storage(storage.MEMORY, GIB)

    assert machine.commands.names()[-1] == (
        "lxc",
        "storage",
        "create",
        "grt-test",
        "dir",
        f"source={machine.ram}",
    )


def test_btrfs_that_cannot_be_made_falls_back_to_dir(machine: Machine) -> None:
    """A btrfs loop file that cannot be mounted falls back to a dir pool.

    arrange: btrfs usable but no loop device (the machine is itself a container, say): the loop
        mount fails.
    act: ensure memory storage of 20GiB.
    assert: changed; a dir pool created on the memory directory and the loop file removed.
    """
    machine.install_lxd()
    machine.enable_btrfs()
    image, mount = machine.ram / "lxd-pool.img", machine.ram / "lxd-pool"
    machine.commands.answers[("-o", "loop,discard=async", str(image), str(mount))] = (
        command.CommandError("no loop", 32, "mount: failed to setup loop device")
    )

    changed = machine.storage.ensure_runner_storage(storage.MEMORY, 20 * GIB)

    assert changed
    assert machine.commands.names()[-1] == (
        "lxc",
        "storage",
        "create",
        "runner",
        "dir",
        f"source={machine.ram}",
    )
    assert not image.exists()


def btrfs_pool(machine: Machine, root: Path, size: int, mounted: bool = True) -> Path:
    """A btrfs pool made earlier: its loop file of `size` bytes, mounted from /dev/loop7."""
    image, mount = root / "lxd-pool.img", root / "lxd-pool"
    root.mkdir(parents=True, exist_ok=True)
    image.write_bytes(b"")
    os.truncate(image, size)
    machine.pool(mount, driver="btrfs")
    if mounted:
        machine.add_mount(f"/dev/loop7 {mount} btrfs rw,relatime,discard=async 0 0\n")
    return image


def test_btrfs_pool_already_right_changes_nothing(machine: Machine) -> None:
    """A mounted btrfs pool of the right size changes nothing.

    arrange: a 20GiB tmpfs holding a mounted 20GiB btrfs loop pool.
    act: ensure memory storage of 20GiB.
    assert: not changed; only the pool was looked at.
    """
    machine.install_lxd()
    machine.enable_btrfs()
    machine.add_mount(f"tmpfs {machine.ram} tmpfs rw,size=20971520k 0 0\n")
    btrfs_pool(machine, machine.ram, 20 * GIB)

    changed = machine.storage.ensure_runner_storage(storage.MEMORY, 20 * GIB)

    assert not changed
    assert machine.commands.names() == [("lxc", "storage", "show", "runner")]


def test_btrfs_pool_grows_with_the_runners(machine: Machine) -> None:
    """A btrfs loop pool grows when runners are added.

    arrange: a 20GiB tmpfs holding a mounted 20GiB btrfs loop pool.
    act: ensure memory storage of 30GiB.
    assert: changed; the tmpfs remounted bigger, the loop device told its new capacity and the file
        system resized; the file is 30GiB.
    """
    machine.install_lxd()
    machine.enable_btrfs()
    machine.add_mount(f"tmpfs {machine.ram} tmpfs rw,size=20971520k 0 0\n")
    image = btrfs_pool(machine, machine.ram, 20 * GIB)
    mount = machine.ram / "lxd-pool"

    changed = machine.storage.ensure_runner_storage(storage.MEMORY, 30 * GIB)

    assert changed
    assert machine.commands.names()[1:] == [
        ("mount", "-o", "remount,size=31457280k", str(machine.ram)),
        ("losetup", "--set-capacity", "/dev/loop7"),
        ("btrfs", "filesystem", "resize", "max", str(mount)),
    ]
    assert image.stat().st_size == 30 * GIB


def test_growing_without_losetup_is_a_host_error(machine: Machine) -> None:
    """Growing a btrfs loop pool without losetup is a HostError.

    arrange: a 20GiB btrfs loop pool on the Juju storage; no losetup.
    act: ensure juju-storage of 30GiB.
    assert: HostError saying the losetup command is missing.
    """
    machine.install_lxd()
    machine.enable_btrfs()
    (machine.sbin / "losetup").unlink()
    machine.juju.mkdir(parents=True)
    btrfs_pool(machine, machine.juju, 20 * GIB)

    with pytest.raises(command.HostError, match="the losetup command is missing"):
        machine.storage.ensure_runner_storage(storage.JUJU_STORAGE, 30 * GIB)


def test_btrfs_pool_never_shrinks_and_keeps_its_tmpfs(machine: Machine) -> None:
    """A btrfs loop pool never shrinks, and neither does its tmpfs.

    arrange: a 30GiB tmpfs holding a 30GiB btrfs loop pool, and fewer runners than it was made for.
    act: ensure memory storage of 10GiB.
    assert: not changed, only the pool looked at, and the file still 30GiB (a tmpfs smaller than
        the loop file would fail the file system's writes).
    """
    machine.install_lxd()
    machine.enable_btrfs()
    machine.add_mount(f"tmpfs {machine.ram} tmpfs rw,size=31457280k 0 0\n")
    image = btrfs_pool(machine, machine.ram, 30 * GIB)

    changed = machine.storage.ensure_runner_storage(storage.MEMORY, 10 * GIB)

    assert not changed
    assert machine.commands.names() == [("lxc", "storage", "show", "runner")]
    assert image.stat().st_size == 30 * GIB


def test_memory_btrfs_pool_is_recreated_after_a_reboot(machine: Machine) -> None:
    """A memory btrfs pool is made again after a reboot.

    arrange: LXD still knows the btrfs pool; the tmpfs, its loop file and the mount are gone.
    act: ensure memory storage of 20GiB.
    assert: changed; tmpfs mounted, the loop file formatted and mounted, the old pool deleted and
        created again.
    """
    machine.install_lxd()
    machine.enable_btrfs()
    mount, image = machine.ram / "lxd-pool", machine.ram / "lxd-pool.img"
    machine.pool(mount, driver="btrfs")
    (mount / "containers").rmdir()

    changed = machine.storage.ensure_runner_storage(storage.MEMORY, 20 * GIB)

    assert changed
    assert machine.commands.names() == [
        ("lxc", "storage", "show", "runner"),
        ("mount", "-t", "tmpfs", "-o", "size=20971520k", "tmpfs", str(machine.ram)),
        ("mkfs.btrfs", "-q", "-m", "single", str(image)),
        ("mount", "-o", "loop,discard=async", str(image), str(mount)),
        ("lxc", "storage", "delete", "runner"),
        ("lxc", "storage", "create", "runner", "btrfs", f"source={mount}"),
    ]


def test_juju_storage_btrfs_pool_is_remounted_after_a_reboot(machine: Machine) -> None:
    """A Juju-storage btrfs pool is mounted again after a reboot, keeping its content.

    arrange: the loop file survived on the Juju storage, unmounted.
    act: ensure juju-storage of 20GiB.
    assert: changed; only the pool looked at and the loop file mounted again: no new file system,
        no new pool.
    """
    machine.install_lxd()
    machine.enable_btrfs()
    image = btrfs_pool(machine, machine.juju, 20 * GIB, mounted=False)
    mount = machine.juju / "lxd-pool"
    machine.commands.answers[("-o", "loop,discard=async", str(image), str(mount))] = (
        machine.mounting(f"/dev/loop2 {mount} btrfs rw 0 0\n")
    )

    changed = machine.storage.ensure_runner_storage(storage.JUJU_STORAGE, 20 * GIB)

    assert changed
    assert machine.commands.names() == [
        ("lxc", "storage", "show", "runner"),
        ("mount", "-o", "loop,discard=async", str(image), str(mount)),
    ]


def test_remounted_btrfs_pool_grows_when_runners_were_added(machine: Machine) -> None:
    """A btrfs pool mounted again after a reboot also grows when runners were added.

    arrange: an unmounted 20GiB btrfs loop file on the Juju storage, mountable again.
    act: ensure juju-storage of 40GiB.
    assert: the loop device told its new capacity and the file system resized; the file is 40GiB.
    """
    machine.install_lxd()
    machine.enable_btrfs()
    image = btrfs_pool(machine, machine.juju, 20 * GIB, mounted=False)
    mount = machine.juju / "lxd-pool"
    machine.commands.answers[("-o", "loop,discard=async", str(image), str(mount))] = (
        machine.mounting(f"/dev/loop2 {mount} btrfs rw 0 0\n")
    )

    machine.storage.ensure_runner_storage(storage.JUJU_STORAGE, 40 * GIB)

    assert machine.commands.names()[-2:] == [
        ("losetup", "--set-capacity", "/dev/loop2"),
        ("btrfs", "filesystem", "resize", "max", str(mount)),
    ]
    assert image.stat().st_size == 40 * GIB


def test_loop_file_that_cannot_be_mounted_is_made_again(machine: Machine) -> None:
    """A loop file that no longer mounts is formatted again and its pool recreated.

    arrange: an unmounted btrfs loop file on the Juju storage whose first mount fails (wrong fs
        type).
    act: ensure juju-storage of 20GiB.
    assert: the file formatted again; the pool deleted and created again on the mount.
    """
    machine.install_lxd()
    machine.enable_btrfs()
    image = btrfs_pool(machine, machine.juju, 20 * GIB, mounted=False)
    mount = machine.juju / "lxd-pool"
    (mount / "containers").rmdir()
    mounts: Iterator[str | Exception] = iter(
        [command.CommandError("bad fs", 32, "mount: wrong fs type"), ""]
    )

    def mount_once() -> str:
        answer = next(mounts)
        if isinstance(answer, Exception):
            raise answer
        return answer

    machine.commands.answers[("-o", "loop,discard=async", str(image), str(mount))] = mount_once

    machine.storage.ensure_runner_storage(storage.JUJU_STORAGE, 20 * GIB)

    assert ("mkfs.btrfs", "-q", "-m", "single", str(image)) in machine.commands.names()
    assert machine.commands.names()[-2:] == [
        ("lxc", "storage", "delete", "runner"),
        ("lxc", "storage", "create", "runner", "btrfs", f"source={mount}"),
    ]


def test_lost_pool_that_lxd_will_not_delete_is_a_host_error(machine: Machine) -> None:
    """A lost pool that LXD refuses to delete is a HostError telling what to do.

    arrange: a btrfs pool whose content is gone; LXD says the pool is in use.
    act: ensure memory storage of 20GiB.
    assert: HostError asking to delete the instances left on it.
    """
    machine.install_lxd()
    machine.enable_btrfs()
    mount = machine.ram / "lxd-pool"
    machine.pool(mount, driver="btrfs")
    (mount / "containers").rmdir()
    machine.commands.answers[("storage", "delete", "runner")] = command.CommandError(
        "in use", 1, "Error: The storage pool is currently in use"
    )

    with pytest.raises(command.HostError, match=r"delete the instances left on it"):
        machine.storage.ensure_runner_storage(storage.MEMORY, 20 * GIB)


@pytest.mark.parametrize(
    ("root", "kind"), [("ram", "memory"), ("juju", "juju-storage"), ("elsewhere", None)]
)
def test_storage_in_use_from_a_btrfs_pool(machine: Machine, root: str, kind: str | None) -> None:
    """The runner storage in use is read from a btrfs pool's mount point.

    arrange: a btrfs pool mounted under the memory directory, the Juju storage, or elsewhere.
    act: ask which runner storage is in use.
    assert: memory, juju-storage, or None for elsewhere.
    """
    machine.install_lxd()
    base = {"ram": machine.ram, "juju": machine.juju}.get(root, machine.root / "srv")
    machine.pool(base / "lxd-pool", driver="btrfs")

    assert machine.storage.runner_storage_in_use() == kind


def test_btrfs_pool_on_the_storage_directory_itself_is_not_ours(machine: Machine) -> None:
    """A btrfs pool on the storage directory itself is not one the charm makes.

    arrange: a btrfs pool whose source is the memory directory itself.
    act: ask which runner storage is in use.
    assert: None.
    """
    machine.install_lxd()
    machine.pool(machine.ram, driver="btrfs")

    assert machine.storage.runner_storage_in_use() is None


def test_btrfs_pool_on_the_other_storage_is_refused(machine: Machine) -> None:
    """A btrfs pool on the other storage is refused, not moved.

    arrange: a btrfs pool under the memory directory; btrfs usable.
    act: ensure juju-storage.
    assert: StorageError saying it exists on ram/lxd-pool, not on juju.
    """
    machine.install_lxd()
    machine.enable_btrfs()
    machine.pool(machine.ram / "lxd-pool", driver="btrfs")

    with pytest.raises(storage.StorageError, match=r"exists on .*ram/lxd-pool, not on .*juju"):
        machine.storage.ensure_runner_storage(storage.JUJU_STORAGE, GIB)


def test_existing_dir_pool_keeps_its_driver(machine: Machine) -> None:
    """An existing dir pool stays a dir pool when btrfs becomes usable.

    arrange: a dir pool on the Juju storage; btrfs usable.
    act: ensure juju-storage of 20GiB.
    assert: not changed; only the pool was looked at.
    """
    machine.install_lxd()
    machine.enable_btrfs()
    machine.juju.mkdir(parents=True)
    machine.pool(machine.juju)

    changed = machine.storage.ensure_runner_storage(storage.JUJU_STORAGE, 20 * GIB)

    assert not changed
    assert machine.commands.names() == [("lxc", "storage", "show", "runner")]


def test_firewall_runs_through_the_host(machine: Machine) -> None:
    """The firewall is applied through the host's command runner.

    arrange: LXD without the ACL yet; the bridge at 10.1.2.1/24; the host's commands are the
        fake's.
    act: ensure the firewall with 10.0.0.0/8 denied.
    assert: changed; the bridge and addresses read, the ACL created, edited with the denied range
        and attached to the bridge.
    """
    machine.install_lxd()
    (machine.sbin / "ip").write_text("")
    machine.commands.answers[("network", "show", "lxdbr0")] = (
        "config:\n  ipv4.address: 10.1.2.1/24\nname: lxdbr0\n"
    )
    machine.commands.answers[("network", "acl", "show", "github-runner")] = command.CommandError(
        "no acl", 1, "Error: Network ACL not found"
    )

    changed = machine.firewall.ensure([ipaddress.IPv4Network("10.0.0.0/8")])

    assert changed
    assert machine.commands.names() == [
        ("lxc", "network", "show", "lxdbr0"),
        ("ip", "-4", "-json", "address", "show"),
        ("lxc", "network", "acl", "show", "github-runner"),
        ("lxc", "network", "acl", "create", "github-runner"),
        ("lxc", "network", "acl", "edit", "github-runner"),
        (
            "lxc",
            "network",
            "set",
            "lxdbr0",
            "security.acls=github-runner",
            "security.acls.default.egress.action=allow",
        ),
    ]
    assert "10.0.0.0/8" in (machine.commands.inputs[-2] or "")


def test_find_tool(tmp_path: Path) -> None:
    """A tool is found in the first directory that has it.

    arrange: directory b holds ip; directory a is missing.
    act: look up ip and nft in a then b.
    assert: ip is b's; nft is None.
    """
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "ip").write_text("")

    assert command.find_tool("ip", (tmp_path / "a", tmp_path / "b")) == str(tmp_path / "b" / "ip")
    assert command.find_tool("nft", (tmp_path / "a", tmp_path / "b")) is None


# ----- helpers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "text"),
    [(512, "512B"), (7 * GIB, "7GiB"), (1536 * 1024**3, "1.5TiB"), (3 * 1024**6, "3EiB")],
)
def test_format_size(size: int, text: str) -> None:
    """Sizes are written in the largest binary unit that keeps them short.

    arrange: sizes of bytes, GiB, a fraction of TiB, and EiB.
    act: format each.
    assert: 512B, 7GiB, 1.5TiB, 3EiB.
    """
    assert storage.format_size(size) == text


def test_run_command_returns_stdout() -> None:
    """run_command returns the command's standard output.

    arrange: /bin/echo hello.
    act: run it.
    assert: "hello" and a newline.
    """
    assert command.run_command(["/bin/echo", "hello"], timeout=10) == "hello\n"


def test_run_command_passes_input() -> None:
    """run_command passes input to the command's standard input.

    arrange: /bin/cat with input "preseed".
    act: run it.
    assert: "preseed" comes back.
    """
    assert command.run_command(["/bin/cat"], input_text="preseed", timeout=10) == "preseed"


def test_run_command_failure_is_a_command_error() -> None:
    """A command that exits with an error is a CommandError with its code and stderr.

    arrange: a shell that prints "nope" to stderr and exits 3.
    act: run it.
    assert: CommandError with return code 3 and stderr "nope".
    """
    with pytest.raises(command.CommandError) as error:
        command.run_command(["/bin/sh", "-c", "echo nope >&2; exit 3"], timeout=10)

    assert error.value.returncode == 3
    assert error.value.stderr == "nope"


def test_run_command_timeout_is_a_host_error() -> None:
    """A command that outlives its timeout is a HostError.

    arrange: /bin/sleep 5 with a timeout of 1 s.
    act: run it.
    assert: HostError saying it did not finish within 1s.
    """
    with pytest.raises(command.HostError, match="did not finish within 1s"):
        command.run_command(["/bin/sleep", "5"], timeout=1)


def test_run_command_missing_binary_is_a_host_error(tmp_path: Path) -> None:
    """A binary that does not exist is a HostError.

    arrange: a path to a missing binary.
    act: run it.
    assert: HostError saying it cannot run.
    """
    with pytest.raises(command.HostError, match="cannot run"):
        command.run_command([str(tmp_path / "missing")], timeout=1)


# ----- per-application names, br_netfilter, the LXD daemon's proxy --------------------------


@pytest.mark.parametrize(
    ("app", "expected"),
    [
        ("github-runner", "github-runner-github-runner"),
        ("repo-a", "github-runner-repo-a"),
        ("x" * 49, "github-runner-" + "x" * 49),
    ],
)
def test_scoped_name(app: str, expected: str) -> None:
    """LXD object names are scoped by the application.

    arrange: application names: the default, another, and a 49-character one.
    act: scope each.
    assert: github-runner- followed by the application name.
    """
    assert command.scoped_name(app) == expected


def test_scoped_name_of_a_long_application_stays_within_lxd_limits() -> None:
    """Scoped names of long applications fit LXD's limit and stay distinct.

    arrange: two 84-character application names differing only at the end.
    act: scope both.
    assert: both of LXD's maximum length, different, and only letters, digits and hyphens.
    """
    first, second = command.scoped_name("a" * 80 + "-one"), command.scoped_name("a" * 80 + "-two")

    assert len(first) == len(second) == command.LXD_NAME_MAX
    assert first != second
    assert all(char.isalnum() or char == "-" for char in first)


def app_machine(root: Path, app: str = "repo-a") -> Machine:
    machine = Machine(root)
    machine.install_lxd()
    machine.storage = storage.StoragePool(
        machine.commands,
        app=app,
        binary_dirs=(machine.bin,),
        tool_dirs=(machine.sbin,),
        ram_dir=machine.ram,
        juju_storage_dir=machine.juju,
        proc_dir=machine.proc,
        disk_total=lambda path: machine.disk,
    )
    machine.firewall = firewall.Firewall.for_app(
        app, machine.commands, binary_dirs=(machine.bin,), tool_dirs=(machine.sbin,)
    )
    missing = command.CommandError("no pool", 1, "Error: Storage pool not found")
    machine.commands.answers[("storage", "show", "github-runner-repo-a")] = missing
    return machine


def test_an_application_gets_its_own_pool_and_memory_storage(tmp_path: Path) -> None:
    """An application gets a pool, an ACL and a memory directory of its own.

    arrange: a host for application repo-a without a pool.
    act: ensure memory storage of 1GiB.
    assert: pool and ACL named github-runner-repo-a; the pool created on the memory directory's
        repo-a.
    """
    machine = app_machine(tmp_path)

    machine.storage.ensure_runner_storage(storage.MEMORY, GIB)

    assert machine.storage.storage_pool == "github-runner-repo-a"
    assert machine.firewall.acl == "github-runner-repo-a"
    assert machine.commands.names()[-1] == (
        "lxc",
        "storage",
        "create",
        "github-runner-repo-a",
        "dir",
        f"source={machine.ram / 'repo-a'}",
    )


def legacy_pool_users(machine: Machine, *units: str) -> None:
    urls = [f"/1.0/instances/runner-{n}" for n in range(len(units))] + ["/1.0/images/abc"]
    machine.commands.answers[("query", "/1.0/storage-pools/runner")] = json.dumps(
        {"used_by": urls}
    )
    for number, unit in enumerate(units):
        machine.commands.answers[("query", f"/1.0/instances/runner-{number}")] = json.dumps(
            {"config": {"user.github-runner.unit": unit}}
        )


def test_the_legacy_pool_of_this_application_keeps_serving_it(tmp_path: Path) -> None:
    """An upgrade: LXD cannot rename the pool the runners' disks are on.

    arrange: a host for repo-a; the legacy pool "runner" on the Juju storage used by a repo-a/0
        instance.
    act: ask the storage in use, then ensure juju-storage.
    assert: juju-storage in use; nothing changed; the pool stays "runner" and none is created.
    """
    machine = app_machine(tmp_path)
    machine.pool(machine.juju, name="runner")
    legacy_pool_users(machine, "repo-a/0")

    assert machine.storage.runner_storage_in_use() == storage.JUJU_STORAGE
    assert not machine.storage.ensure_runner_storage(storage.JUJU_STORAGE, GIB)
    assert machine.storage.storage_pool == "runner"
    assert not [c for c in machine.commands.names() if c[1:3] == ("storage", "create")]


def test_an_empty_legacy_pool_on_this_storage_is_adopted_once_the_storage_is_known(
    tmp_path: Path,
) -> None:
    """An empty legacy pool on the chosen storage is adopted once that storage is asked for.

    arrange: a host for repo-a; an unused legacy pool "runner" on its memory tmpfs.
    act: ask the storage in use, then ensure memory storage.
    assert: no storage in use at first (no evidence yet); then the pool "runner" is adopted and
        none created.
    """
    machine = app_machine(tmp_path)
    machine.mounts(f"tmpfs {machine.ram} tmpfs rw,size={GIB // 1024}k 0 0\n")
    machine.pool(machine.ram, name="runner")
    legacy_pool_users(machine)

    assert machine.storage.runner_storage_in_use() is None  # no evidence yet: fresh for the charm
    machine.storage.ensure_runner_storage(storage.MEMORY, GIB)

    assert machine.storage.storage_pool == "runner"
    assert not [c for c in machine.commands.names() if c[1:3] == ("storage", "create")]


def test_the_legacy_pool_of_another_application_is_left_to_it(tmp_path: Path) -> None:
    """A legacy pool used by another application's runners is left to it.

    arrange: a host for repo-a; the legacy pool "runner" used by a repo-b/0 instance.
    act: ask the storage in use, then ensure memory storage.
    assert: no storage in use; a pool of repo-a's own is created.
    """
    machine = app_machine(tmp_path)
    machine.pool(machine.juju, name="runner")
    legacy_pool_users(machine, "repo-b/0")

    assert machine.storage.runner_storage_in_use() is None
    machine.storage.ensure_runner_storage(storage.MEMORY, GIB)

    assert machine.storage.storage_pool == "github-runner-repo-a"
    assert machine.commands.names()[-1][:4] == ("lxc", "storage", "create", "github-runner-repo-a")


def test_a_legacy_pool_on_the_other_storage_is_not_adopted(tmp_path: Path) -> None:
    """A new memory application beside an old juju-storage one with no runner right now.

    arrange: a host for repo-a; an unused legacy pool "runner" on the Juju storage.
    act: ensure memory storage.
    assert: the pool used is repo-a's own.
    """
    machine = app_machine(tmp_path)
    machine.pool(machine.juju, name="runner")
    legacy_pool_users(machine)

    machine.storage.ensure_runner_storage(storage.MEMORY, GIB)

    assert machine.storage.storage_pool == "github-runner-repo-a"


def firewall_answers(machine: Machine, acls: str, legacy_description: str) -> None:
    machine.commands.answers[("network", "show", "lxdbr0")] = yaml.safe_dump(
        {"config": {"security.acls": acls, "security.acls.default.egress.action": "allow"}}
    )
    machine.commands.answers[("network", "acl", "show", "github-runner")] = yaml.safe_dump(
        {"description": legacy_description, "egress": []}
    )
    machine.commands.answers[("network", "acl", "show", "github-runner-repo-a")] = (
        command.CommandError("missing", 1, "Error: Network ACL not found")
    )
    (machine.sbin / "ip").write_text("")
    machine.commands.answers[("-4", "-json", "address", "show")] = "[]"


def test_the_legacy_acl_is_detached_and_deleted(tmp_path: Path) -> None:
    """The legacy ACL the charm made is detached from the bridge and deleted.

    arrange: a host for repo-a; the bridge uses the legacy ACL "github-runner" that the charm
        described.
    act: ensure the firewall.
    assert: changed; repo-a's ACL created, the bridge's ACLs reset, and the legacy ACL deleted
        last.
    """
    import firewall

    machine = app_machine(tmp_path)
    firewall_answers(machine, "github-runner", firewall.ACL_DESCRIPTION)

    assert machine.firewall.ensure([])

    commands = machine.commands.names()
    assert ("lxc", "network", "acl", "create", "github-runner-repo-a") in commands
    assert ("lxc", "network", "set", "lxdbr0", "security.acls=") in commands
    assert commands[-1] == ("lxc", "network", "acl", "delete", "github-runner")


def test_an_acl_of_someone_else_with_the_old_name_is_kept(tmp_path: Path) -> None:
    """An ACL with the old name that the charm did not make is kept.

    arrange: a host for repo-a; an ACL "github-runner" described by the operator.
    act: ensure the firewall.
    assert: the ACL is not deleted.
    """
    machine = app_machine(tmp_path)
    firewall_answers(machine, "github-runner", "the operator's own")

    machine.firewall.ensure([])

    assert ("lxc", "network", "acl", "delete", "github-runner") not in machine.commands.names()


def test_br_netfilter_is_loaded_and_listed_for_boot(tmp_path: Path) -> None:
    """br_netfilter is loaded and listed to load at boot.

    arrange: a host with modprobe and the module not loaded.
    act: ensure br_netfilter.
    assert: changed; modprobe br_netfilter run and the module listed in modules-load.d.
    """
    machine = app_machine(tmp_path)
    (machine.sbin / "modprobe").write_text("")

    assert machine.host.ensure_br_netfilter()

    assert machine.commands.names() == [("modprobe", "br_netfilter")]
    conf = tmp_path / "modules-load.d" / "github-runner.conf"
    assert "br_netfilter" in conf.read_text().splitlines()


def test_br_netfilter_already_there_is_not_loaded_again(tmp_path: Path) -> None:
    """br_netfilter already loaded is not loaded again.

    arrange: the bridge's sysctl directory present; a first ensure done.
    act: ensure br_netfilter again.
    assert: not changed; no command run.
    """
    machine = app_machine(tmp_path)
    (machine.proc / "sys/net/bridge").mkdir(parents=True)
    machine.host.ensure_br_netfilter()

    assert not machine.host.ensure_br_netfilter()
    assert machine.commands.names() == []


def test_br_netfilter_that_cannot_load_is_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A br_netfilter that cannot load is logged as a warning, not raised.

    arrange: modprobe br_netfilter fails.
    act: ensure br_netfilter.
    assert: the log says it cannot load br_netfilter.
    """
    machine = app_machine(tmp_path)
    (machine.sbin / "modprobe").write_text("")
    machine.commands.answers[("br_netfilter",)] = command.CommandError("no", 1, "not found")

    machine.host.ensure_br_netfilter()

    assert "cannot load br_netfilter" in caplog.text


def lxd_config(machine: Machine, config: dict[str, str]) -> None:
    machine.commands.answers[("query", "/1.0")] = json.dumps({"config": config})


def test_model_proxy_is_given_to_the_lxd_daemon(tmp_path: Path) -> None:
    """The model's proxy is set on the LXD daemon, and recorded privately.

    arrange: LXD with no proxy set.
    act: ensure the LXD proxy with http, https and no-proxy values.
    assert: changed; the three core.proxy keys set; the record file readable by root only.
    """
    machine = app_machine(tmp_path)
    lxd_config(machine, {})

    assert machine.host.ensure_lxd_proxy("http://p:3128", "http://p:3129", "10.0.0.1,.lan")

    assert machine.commands.names()[1:] == [
        ("lxc", "config", "set", "core.proxy_http", "http://p:3128"),
        ("lxc", "config", "set", "core.proxy_https", "http://p:3129"),
        ("lxc", "config", "set", "core.proxy_ignore_hosts", "10.0.0.1,.lan"),
    ]
    assert (tmp_path / "lxd-proxy.json").stat().st_mode & 0o777 == 0o600


def test_lxd_proxy_already_set_changes_nothing(tmp_path: Path) -> None:
    """An LXD proxy already set changes nothing.

    arrange: LXD's core.proxy_https already the model's.
    act: ensure the LXD proxy with that https value only.
    assert: not changed; only LXD's config was read.
    """
    machine = app_machine(tmp_path)
    lxd_config(machine, {"core.proxy_https": "http://p:3129"})

    assert not machine.host.ensure_lxd_proxy(None, "http://p:3129", None)
    assert machine.commands.names() == [("lxc", "query", "/1.0")]


def test_lxd_proxy_goes_with_the_model_proxy_but_not_the_operators_own(tmp_path: Path) -> None:
    """When the model proxy goes, the charm unsets its own value but not the operator's.

    arrange: the charm set core.proxy_https; an operator set core.proxy_http by hand.
    act: ensure the LXD proxy with no proxy at all.
    assert: changed; only core.proxy_https is unset.
    """
    machine = app_machine(tmp_path)
    lxd_config(machine, {})
    machine.host.ensure_lxd_proxy(None, "http://p:3129", None)
    # The charm's value, and one an operator set by hand.
    lxd_config(machine, {"core.proxy_https": "http://p:3129", "core.proxy_http": "http://op:1"})
    machine.commands.commands.clear()

    assert machine.host.ensure_lxd_proxy(None, None, None)

    assert machine.commands.names()[1:] == [("lxc", "config", "unset", "core.proxy_https")]
