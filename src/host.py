# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""Host preparation: LXD, the runner storage and the LXD storage pool the runners use.

Nothing here knows about Juju. Every step is idempotent and says whether it changed anything.
LXD is driven through its `lxc` and `lxd` commands (the charm never imports pylxd), run through a
command runner that tests replace with a fake.
"""

from __future__ import annotations

import json
import logging
import platform
import re
import shutil
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import yaml
from charmlibs import apt, snap

logger = logging.getLogger(__name__)

STORAGE_POOL = "runner"
RAM_DIR = Path("/storage/ram")
JUJU_STORAGE_DIR = Path("/storage/juju")
MEMORY = "memory"
JUJU_STORAGE = "juju-storage"
LXD_SNAP_CHANNEL = "5.21/stable"
BINARY_DIRS = (Path("/snap/bin"), Path("/usr/bin"))
MOUNT = "/usr/bin/mount"
COMMAND_TIMEOUT = 300.0

# Applied only to an LXD that was never initialised: a default dir pool for images, a NAT bridge
# without IPv6, and a default profile putting instances on it. The runners' root disks go to the
# `runner` pool, created separately on the runner storage.
PRESEED = """\
config: {}
networks:
- name: lxdbr0
  type: bridge
  config:
    ipv4.address: auto
    ipv4.nat: "true"
    ipv6.address: none
storage_pools:
- name: default
  driver: dir
profiles:
- name: default
  devices:
    root:
      path: /
      pool: default
      type: disk
    eth0:
      name: eth0
      network: lxdbr0
      type: nic
"""

_TMPFS_SIZE_RE = re.compile(r"(?:^|,)size=(\d+)k(?:,|$)")


LOGROTATE_FILE = Path("/etc/logrotate.d/github-runner-metrics")
METRICS_LOG = Path("/var/log/github-runner-metrics.log")


def logrotate_config(log_path: Path) -> str:
    """The logrotate configuration of the metrics log.

    The COS agent tails files matching `/var/log/**/*log`. Rotating by renaming to `<name>.1`
    (which no longer matches) and creating a fresh file means the agent, which follows the
    renamed file to its end, ships every line exactly once; copytruncate could lose or repeat
    lines. One old copy is kept, uncompressed, so a slow agent can still finish it.

    Args:
        log_path: the metrics log.

    Returns:
        The configuration.
    """
    return (
        "# Rotation of the github-runner metric events, written by the github-runner charm.\n"
        f"{log_path} {{\n"
        "    size 10M\n"
        "    rotate 1\n"
        "    missingok\n"
        "    notifempty\n"
        "    nocompress\n"
        "    create 0644 root root\n"
        "}\n"
    )


class HostError(Exception):
    """Preparing the host failed: a command failed or timed out, or LXD is in a strange state."""


class CommandError(HostError):
    """A command exited with an error.

    Attributes:
        returncode: the exit code.
        stderr: what it printed on stderr.
    """

    def __init__(self, message: str, returncode: int, stderr: str):
        """Create the error.

        Args:
            message: what failed.
            returncode: the exit code.
            stderr: what it printed on stderr.
        """
        super().__init__(message)
        self.returncode = returncode
        self.stderr = stderr


class StorageError(Exception):
    """The runner storage cannot be used as configured; the message says what to change."""


class StorageTooSmallError(StorageError):
    """The configured runners do not fit the runner storage."""


class CommandRunner(Protocol):
    """Runs a command and returns its standard output."""

    def __call__(
        self, argv: Sequence[str], *, input_text: str | None = None, timeout: float = ...
    ) -> str:
        """Run a command.

        Args:
            argv: the command, with an absolute path first.
            input_text: what to send on standard input.
            timeout: seconds before the command is killed.

        Returns:
            Its standard output.

        Raises:
            CommandError: if it exits with an error.
            HostError: if it cannot be started or times out.
        """


def run_command(
    argv: Sequence[str], *, input_text: str | None = None, timeout: float = COMMAND_TIMEOUT
) -> str:
    """Run a command, capturing its output.

    Args:
        argv: the command, with an absolute path first.
        input_text: what to send on standard input.
        timeout: seconds before the command is killed.

    Returns:
        Its standard output.

    Raises:
        CommandError: if it exits with an error.
        HostError: if it cannot be started or times out.
    """
    command = " ".join(argv[:3])
    try:
        result = subprocess.run(
            list(argv),
            input=input_text,
            capture_output=True,
            text=True,
            check=True,
            timeout=timeout,
        )
    except subprocess.CalledProcessError as exc:
        stderr = (exc.stderr or "").strip()
        raise CommandError(
            f"`{command}` failed with exit code {exc.returncode}: {stderr[-500:]}",
            exc.returncode,
            stderr,
        ) from None
    except subprocess.TimeoutExpired:
        raise HostError(f"`{command}` did not finish within {timeout:.0f}s") from None
    except OSError as exc:
        raise HostError(f"cannot run `{command}`: {exc}") from None
    return result.stdout


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


def _disk_total(path: Path) -> int:
    return shutil.disk_usage(path).total


def _install_snap(name: str, channel: str) -> None:
    snap.ensure_installed(name, channel=channel, update=False)


def _install_debs(names: list[str]) -> None:
    apt.add_package(names, update_cache=True)


class Host:
    """The machine the runners live on."""

    def __init__(
        self,
        run: CommandRunner = run_command,
        *,
        binary_dirs: Sequence[Path] = BINARY_DIRS,
        ram_dir: Path = RAM_DIR,
        juju_storage_dir: Path = JUJU_STORAGE_DIR,
        proc_dir: Path = Path("/proc"),
        os_release: Path = Path("/etc/os-release"),
        disk_total: Callable[[Path], int] = _disk_total,
        machine: Callable[[], str] = platform.machine,
        install_snap: Callable[[str, str], None] = _install_snap,
        install_debs: Callable[[list[str]], None] = _install_debs,
    ):
        """Describe the host; every system access can be replaced for tests.

        Args:
            run: the command runner.
            binary_dirs: where to look for `lxc` and `lxd`, in order.
            ram_dir: the tmpfs mount point of memory runner storage.
            juju_storage_dir: where Juju mounts the `runner` storage.
            proc_dir: /proc (for mounts and meminfo).
            os_release: /etc/os-release.
            disk_total: returns a filesystem's size in bytes.
            machine: returns the machine architecture.
            install_snap: installs a snap from a channel.
            install_debs: installs Debian packages.
        """
        self._run = run
        self._binary_dirs = tuple(binary_dirs)
        self._ram_dir = ram_dir
        self._juju_storage_dir = juju_storage_dir
        self._proc_dir = proc_dir
        self._os_release = os_release
        self._disk_total = disk_total
        self._machine = machine
        self._install_snap = install_snap
        self._install_debs = install_debs

    # ----- facts ----------------------------------------------------------------------------

    def machine(self) -> str:
        """The machine architecture, e.g. `x86_64`.

        Returns:
            What `uname -m` says.
        """
        return self._machine()

    def _binaries(self) -> tuple[str, str] | None:
        """Return the `lxc` and `lxd` commands of one installation, snap first."""
        for directory in self._binary_dirs:
            lxc, lxd = directory / "lxc", directory / "lxd"
            if lxc.exists() and lxd.exists():
                return str(lxc), str(lxd)
        return None

    def lxd_installed(self) -> bool:
        """Tell whether LXD is installed.

        Returns:
            True when both `lxc` and `lxd` are found.
        """
        return self._binaries() is not None

    def _lxc(self) -> str:
        binaries = self._binaries()
        if binaries is None:
            raise HostError("LXD is not installed")
        return binaries[0]

    def _source_dir(self, kind: str) -> Path:
        return self._ram_dir if kind == MEMORY else self._juju_storage_dir

    def _pool_source(self) -> str | None:
        """Return the source directory of the `runner` pool, or None when there is none."""
        try:
            output = self._run([self._lxc(), "storage", "show", STORAGE_POOL], timeout=60)
        except CommandError:
            return None
        data: Any = yaml.safe_load(output) or {}
        source = (data.get("config") or {}).get("source")
        return str(source) if source else ""

    def runner_storage_in_use(self) -> str | None:
        """Tell which runner storage the host already has, from the `runner` pool's source.

        Returns:
            `memory` or `juju-storage`, or None when LXD or the pool is missing (or the pool is
            not one of ours).
        """
        if not self.lxd_installed():
            return None
        source = self._pool_source()
        for kind in (MEMORY, JUJU_STORAGE):
            if source == str(self._source_dir(kind)):
                return kind
        return None

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

    # ----- changes --------------------------------------------------------------------------

    def _is_ubuntu(self) -> bool:
        try:
            text = self._os_release.read_text(encoding="utf-8")
        except OSError:
            return False
        return any(line.strip() in ("ID=ubuntu", 'ID="ubuntu"') for line in text.splitlines())

    def _initialised(self, lxc: str) -> bool:
        """Tell whether LXD was ever initialised: it has a storage pool or a managed network."""
        pools = json.loads(self._run([lxc, "query", "/1.0/storage-pools"], timeout=60) or "[]")
        networks = json.loads(
            self._run([lxc, "query", "/1.0/networks?recursion=1"], timeout=60) or "[]"
        )
        return bool(pools) or any(network.get("managed") for network in networks)

    def ensure_lxd(self) -> bool:
        """Install LXD when missing and initialise it when it was never initialised.

        An LXD that is already initialised is never initialised again: its pools, networks and
        profiles may be in use.

        Returns:
            Whether anything was installed or initialised.

        Raises:
            HostError: if installing, starting or initialising LXD fails.
        """
        changed = False
        if not self.lxd_installed():
            try:
                if self._is_ubuntu():
                    logger.info("installing the lxd snap (%s)", LXD_SNAP_CHANNEL)
                    self._install_snap("lxd", LXD_SNAP_CHANNEL)
                else:
                    logger.info("installing the lxd packages")
                    self._install_debs(["lxd", "lxd-client"])
            except (snap.Error, apt.Error) as exc:
                raise HostError(f"cannot install LXD: {exc}") from None
            if not self.lxd_installed():
                raise HostError("LXD was installed but its lxc and lxd commands are missing")
            changed = True
        binaries = self._binaries()
        assert binaries is not None  # noqa: S101 - checked just above
        lxc, lxd = binaries
        self._run([lxd, "waitready", "--timeout", "120"], timeout=150)
        if not self._initialised(lxc):
            logger.info("initialising LXD")
            self._run([lxd, "init", "--preseed"], input_text=PRESEED, timeout=300)
            changed = True
        return changed

    def _tmpfs_size_kib(self) -> int | None:
        """Return the size of the tmpfs mounted at the RAM directory, or None if unmounted."""
        mounts = (self._proc_dir / "mounts").read_text(encoding="utf-8")
        for line in mounts.splitlines():
            fields = line.split()
            if len(fields) >= 4 and fields[1] == str(self._ram_dir) and fields[2] == "tmpfs":
                match = _TMPFS_SIZE_RE.search(fields[3])
                return int(match.group(1)) if match else 0
        return None

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

    def ensure_logrotate(
        self, config_file: Path = LOGROTATE_FILE, log_path: Path = METRICS_LOG
    ) -> bool:
        """Write the metrics log's logrotate configuration when it differs.

        Args:
            config_file: where logrotate reads it.
            log_path: the metrics log.

        Returns:
            Whether the file changed.
        """
        content = logrotate_config(log_path)
        try:
            if config_file.exists() and config_file.read_text(encoding="utf-8") == content:
                return False
            config_file.parent.mkdir(parents=True, exist_ok=True)
            config_file.write_text(content, encoding="utf-8")
            config_file.chmod(0o644)
        except OSError as exc:
            raise HostError(f"cannot write {config_file}: {exc}") from exc
        return True

    def ensure_runner_storage(self, kind: str, required: int) -> bool:
        """Prepare the runner storage and the LXD storage pool `runner` on it.

        Args:
            kind: `memory` (a tmpfs sized `required`, resized when it changes) or
                `juju-storage` (the Juju storage directory).
            required: bytes the runners need.

        Returns:
            Whether anything was mounted, resized or created.

        Raises:
            HostError: if a command fails.
            StorageError: if a `runner` pool exists on another source.
        """
        changed = False
        source = self._source_dir(kind)
        if kind == MEMORY:
            changed = self._ensure_tmpfs(required)
        else:
            source.mkdir(parents=True, exist_ok=True)
        current = self._pool_source()
        if current is None:
            logger.info("creating the LXD storage pool %s on %s", STORAGE_POOL, source)
            self._run(
                [self._lxc(), "storage", "create", STORAGE_POOL, "dir", f"source={source}"],
                timeout=120,
            )
            changed = True
        elif current != str(source):
            raise StorageError(
                f"the LXD storage pool {STORAGE_POOL} exists on {current or 'an unknown source'},"
                f" not on {source}: delete it or redeploy with the runner-storage it was made for"
            )
        return changed
