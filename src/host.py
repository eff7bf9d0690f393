# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""Host preparation: LXD, the runner storage and the LXD storage pool the runners use.

Nothing here knows about Juju. Every step is idempotent and says whether it changed anything.
LXD is driven through its `lxc` and `lxd` commands (the charm never imports pylxd), run through a
command runner that tests replace with a fake.

The runners' pool is a copy-on-write btrfs pool where the host can make one (`mkfs.btrfs` and
the kernel's btrfs): a sparse loop file on the runner storage, formatted and mounted by this
module, is the pool's source. Creating an instance then snapshots the image instead of copying
it. Elsewhere the pool uses the `dir` driver on the runner storage itself. An existing pool keeps
its driver: moving running runners between drivers is not worth the risk.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import logging
import os
import platform
import re
import shutil
import subprocess
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import yaml
from charmlibs import apt, snap

logger = logging.getLogger(__name__)

# The fixed names of the runners' storage pool and firewall ACL before they were scoped by
# application: a host prepared by an earlier version still has them (see `Host`).
STORAGE_POOL = "runner"
FIREWALL_ACL = "github-runner"
LEGACY_STORAGE_POOL = STORAGE_POOL
LEGACY_FIREWALL_ACL = FIREWALL_ACL
# The bridge PRESEED creates; the runners' egress ACLs are attached to it.
FIREWALL_NETWORK = "lxdbr0"
# Names of LXD network ACLs (and, here, storage pools): 1 to 63 letters, digits and hyphens.
LXD_NAME_MAX = 63
SCOPED_PREFIX = "github-runner-"
# The LXD tag naming a runner's unit (`<app>/<number>`), as the runner manager sets it.
UNIT_TAG = "user.github-runner.unit"
RAM_DIR = Path("/storage/ram")
JUJU_STORAGE_DIR = Path("/storage/juju")
MEMORY = "memory"
JUJU_STORAGE = "juju-storage"
LXD_SNAP_CHANNEL = "5.21/stable"
BINARY_DIRS = (Path("/snap/bin"), Path("/usr/bin"))
# Where system tools live, merged /usr first (Debian and Ubuntu put them in /sbin or /bin).
TOOL_DIRS = (Path("/usr/sbin"), Path("/usr/bin"), Path("/sbin"), Path("/bin"))
MOUNT = "/usr/bin/mount"
COMMAND_TIMEOUT = 300.0
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
# The LXD daemon's own proxy settings (it pulls images itself) and the record of what the charm
# set there, so that it unsets only its own values when the model's proxy goes.
LXD_PROXY_KEYS = ("core.proxy_http", "core.proxy_https", "core.proxy_ignore_hosts")
LXD_PROXY_RECORD = Path("/var/lib/github-runner/lxd-proxy.json")
# The kernel module making bridged traffic go through the host's netfilter (as the original
# charm loaded it), and the file loading it at boot.
BR_NETFILTER = "br_netfilter"
MODULES_LOAD_FILE = "github-runner.conf"


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


def parse_output(output: str, argv: Sequence[str], kind: type = dict) -> Any:
    """Parse what `lxc` printed (YAML or JSON) into the document the caller expects.

    Args:
        output: the command's standard output.
        argv: the command (for the message).
        kind: `dict` or `list`, what the document must be; empty output gives an empty one.

    Returns:
        The document.

    Raises:
        HostError: if the output is not a document of that kind.
    """
    document: Any = None
    if not output.strip():
        document = kind()
    else:
        # JSON first: `lxc query` indents with tabs, which YAML refuses.
        with contextlib.suppress(ValueError):
            document = json.loads(output)
        if document is None:
            with contextlib.suppress(yaml.YAMLError):
                document = yaml.safe_load(output)
    if not isinstance(document, kind):
        command = " ".join([Path(argv[0]).name, *argv[1:3]])
        raise HostError(
            f"`{command}` printed something that is not a {kind.__name__} in YAML or JSON "
            f"({' '.join(output.split())[:80]!r}): check that LXD works (`lxc list`)"
        )
    return document


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


def find_tool(name: str, directories: Sequence[Path] = TOOL_DIRS) -> str | None:
    """Find a system tool.

    Args:
        name: the command, e.g. `mkfs.btrfs`.
        directories: where to look, in order.

    Returns:
        Its absolute path, or None when it is in none of them.
    """
    for directory in directories:
        path = directory / name
        if path.exists():
            return str(path)
    return None


def scoped_name(app: str) -> str:
    """The name of an application's own LXD objects (its storage pool and firewall ACL).

    Two applications on one machine (one per repository, say) must not share them: each
    application's denylist and runner storage are its own.

    Args:
        app: the Juju application name.

    Returns:
        `github-runner-<app>`, made of letters, digits and hyphens; an application name too long
        for LXD's 63 characters is cut and ends with a hash of the whole name, so that two long
        names stay apart.
    """
    safe = re.sub(r"[^A-Za-z0-9-]+", "-", app).strip("-") or "app"
    name = f"{SCOPED_PREFIX}{safe}"
    if len(name) <= LXD_NAME_MAX:
        return name
    digest = hashlib.sha256(app.encode()).hexdigest()[:8]
    return f"{name[: LXD_NAME_MAX - len(digest) - 1].rstrip('-')}-{digest}"


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
        app: str | None = None,
        binary_dirs: Sequence[Path] = BINARY_DIRS,
        tool_dirs: Sequence[Path] = TOOL_DIRS,
        storage_pool: str | None = None,
        firewall_acl: str | None = None,
        ram_dir: Path = RAM_DIR,
        juju_storage_dir: Path = JUJU_STORAGE_DIR,
        proc_dir: Path = Path("/proc"),
        os_release: Path = Path("/etc/os-release"),
        disk_total: Callable[[Path], int] = _disk_total,
        machine: Callable[[], str] = platform.machine,
        install_snap: Callable[[str, str], None] = _install_snap,
        install_debs: Callable[[list[str]], None] = _install_debs,
        modules_load_dir: Path = Path("/etc/modules-load.d"),
        lxd_proxy_record: Path = LXD_PROXY_RECORD,
    ):
        """Describe the host; every system access can be replaced for tests.

        With an application name, the runners' storage pool and firewall ACL are the
        application's own (`scoped_name`), and memory runner storage is a tmpfs of its own under
        `ram_dir`. A pool an earlier version made under the fixed name `runner` keeps serving
        the application that owns it (LXD cannot rename a pool; see `ensure_runner_storage`).

        Args:
            run: the command runner.
            app: the Juju application name; None keeps the fixed names of earlier versions.
            binary_dirs: where to look for `lxc` and `lxd`, in order.
            tool_dirs: where to look for system tools (`mkfs.btrfs`, `losetup`, `btrfs`).
            storage_pool: the name of the runners' LXD storage pool (derived from `app` by
                default).
            firewall_acl: the name of the runners' LXD network ACL (derived from `app` by
                default).
            ram_dir: where memory runner storage is mounted (the application's own directory
                under it when `app` is given).
            juju_storage_dir: where Juju mounts the `runner` storage.
            proc_dir: /proc (for mounts and meminfo).
            os_release: /etc/os-release.
            disk_total: returns a filesystem's size in bytes.
            machine: returns the machine architecture.
            install_snap: installs a snap from a channel.
            install_debs: installs Debian packages.
            modules_load_dir: where systemd reads the kernel modules to load at boot.
            lxd_proxy_record: where the LXD proxy settings the charm made are recorded.
        """
        self._run = run
        self._app = app
        self._binary_dirs = tuple(binary_dirs)
        self._tool_dirs = tuple(tool_dirs)
        scoped = scoped_name(app) if app else None
        self.storage_pool = storage_pool or scoped or LEGACY_STORAGE_POOL
        self.firewall_acl = firewall_acl or scoped or LEGACY_FIREWALL_ACL
        self._legacy_ram_dir = ram_dir
        self._ram_dir = ram_dir / _safe_dir_name(app) if app else ram_dir
        self._legacy_checked = False
        self._modules_load_dir = modules_load_dir
        self._lxd_proxy_record = lxd_proxy_record
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

    def _pool_image(self, kind: str) -> Path:
        return self._source_dir(kind) / POOL_IMAGE

    def _pool_mount(self, kind: str) -> Path:
        return self._source_dir(kind) / POOL_MOUNT

    def _pool_source(self, kind: str, driver: str) -> Path:
        """Return where a pool of this driver lives on this runner storage."""
        return self._pool_mount(kind) if driver == BTRFS else self._source_dir(kind)

    def _pool(self, name: str | None = None) -> _Pool | None:
        """Return the driver and source of a pool (the runners'), or None when there is none."""
        argv = [self._lxc(), "storage", "show", name or self.storage_pool]
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
                self._run([self._lxc(), "query", f"/1.0/storage-pools/{name}"], timeout=60) or "{}"
            )
        except (CommandError, ValueError):
            return set()
        apps = set()
        for url in data.get("used_by") or []:
            if not str(url).startswith("/1.0/instances/"):
                continue
            try:
                instance: Any = json.loads(
                    self._run([self._lxc(), "query", str(url)], timeout=60) or "{}"
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

    def runner_storage_in_use(self) -> str | None:
        """Tell which runner storage the host already has, from the runners' pool source.

        Returns:
            `memory` or `juju-storage`, or None when LXD or the pool is missing (or the pool is
            not one of ours).
        """
        if not self.lxd_installed():
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

    # ----- changes --------------------------------------------------------------------------

    def _is_ubuntu(self) -> bool:
        try:
            text = self._os_release.read_text(encoding="utf-8")
        except OSError:
            return False
        return any(line.strip() in ("ID=ubuntu", 'ID="ubuntu"') for line in text.splitlines())

    def _initialised(self, lxc: str) -> bool:
        """Tell whether LXD was ever initialised: it has a storage pool or a managed network."""
        pools_query = [lxc, "query", "/1.0/storage-pools"]
        pools = parse_output(self._run(pools_query, timeout=60), pools_query, list)
        networks_query = [lxc, "query", "/1.0/networks?recursion=1"]
        networks = parse_output(self._run(networks_query, timeout=60), networks_query, list)
        return bool(pools) or any(
            isinstance(network, dict) and network.get("managed") for network in networks
        )

    def ensure_lxd(self) -> bool:
        """Install LXD when missing and initialise it when it was never initialised.

        An LXD that is already initialised is never initialised again: its pools, networks and
        profiles may be in use. `br_netfilter` is loaded too (`ensure_br_netfilter`).

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
        if self.ensure_br_netfilter():
            logger.info("br_netfilter is loaded now and at boot")
        return changed

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

    def ensure_br_netfilter(self) -> bool:
        """Load `br_netfilter` now and at every boot, as the original charm did.

        With it, traffic crossing the runners' bridge also goes through the host's IP filtering
        (LXD's ACLs among it). A host whose kernel has it built in, or that cannot load it (a
        machine that is itself a container), is left as it is with a warning: the runners' NIC
        filtering and port isolation do not depend on it.

        Returns:
            Whether the module was loaded or the boot file written.
        """
        changed = False
        conf = self._modules_load_dir / MODULES_LOAD_FILE
        content = f"# Written by the github-runner charm.\n{BR_NETFILTER}\n"
        try:
            if not conf.exists() or conf.read_text(encoding="utf-8") != content:
                conf.parent.mkdir(parents=True, exist_ok=True)
                conf.write_text(content, encoding="utf-8")
                changed = True
        except OSError as exc:
            logger.warning("cannot write %s: %s", conf, exc)
        if (self._proc_dir / "sys/net/bridge").is_dir():
            return changed
        modprobe = find_tool("modprobe", self._tool_dirs)
        try:
            if modprobe is None:
                raise HostError("the modprobe command is missing")
            self._run([modprobe, BR_NETFILTER], timeout=60)
        except HostError as exc:
            logger.warning("cannot load %s: %s", BR_NETFILTER, exc)
            return changed
        logger.info("loaded the %s kernel module", BR_NETFILTER)
        return True

    def _lxd_config(self, lxc: str) -> dict[str, str]:
        argv = [lxc, "query", "/1.0"]
        data: Any = parse_output(self._run(argv, timeout=60), argv)
        return {str(k): str(v) for k, v in (data.get("config") or {}).items()}

    def ensure_lxd_proxy(self, http: str | None, https: str | None, no_proxy: str | None) -> bool:
        """Give the LXD daemon the model's proxy: it pulls the runner image's source itself.

        Sets `core.proxy_http`, `core.proxy_https` and `core.proxy_ignore_hosts`. When the
        model's proxy goes, only the values the charm set (and that nobody changed since) are
        unset: an operator's own settings are left alone. LXD's configuration is the whole
        machine's, so two applications on one machine should share a model proxy.

        Args:
            http: the model's HTTP proxy, or None.
            https: the model's HTTPS proxy, or None.
            no_proxy: hosts reached without the proxy, or None.

        Returns:
            Whether LXD's configuration changed.

        Raises:
            HostError: if LXD cannot be read or refuses a value.
        """
        lxc = self._lxc()
        wanted = dict(zip(LXD_PROXY_KEYS, (http or "", https or "", no_proxy or ""), strict=True))
        try:
            recorded: Any = json.loads(self._lxd_proxy_record.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            recorded = {}
        if not isinstance(recorded, dict):
            recorded = {}
        current = self._lxd_config(lxc)
        changes = {}
        for key, value in wanted.items():
            have = current.get(key, "")
            if value and have != value:
                changes[key] = value
            elif not value and have and recorded.get(key) == have:
                changes[key] = ""
        if changes:
            logger.info(
                "setting the LXD daemon's proxy (%s) from the model's proxy",
                ", ".join(
                    f"{key}={'set' if value else 'unset'}" for key, value in changes.items()
                ),
            )
            for key, value in changes.items():
                if value:
                    self._run([lxc, "config", "set", key, value], timeout=60)
                else:
                    self._run([lxc, "config", "unset", key], timeout=60)
        record = {key: value for key, value in wanted.items() if value}
        if record != recorded:
            try:
                self._lxd_proxy_record.parent.mkdir(parents=True, exist_ok=True)
                # It may hold proxy credentials: root only.
                descriptor = os.open(
                    self._lxd_proxy_record, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600
                )
                with os.fdopen(descriptor, "w", encoding="utf-8") as file:
                    json.dump(record, file)
            except OSError as exc:
                raise HostError(f"cannot write {self._lxd_proxy_record}: {exc}") from exc
        return bool(changes)

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

    def ensure_firewall(
        self,
        denylist: Iterable[ipaddress.IPv4Network],
        network: str = FIREWALL_NETWORK,
        acl: str | None = None,
    ) -> bool:
        """Make the runners' bridge reject their traffic to the host and to the denylist.

        See `firewall.Firewall`; it runs its commands through this host's runner. The ACL is the
        application's own; the one an earlier version attached under the fixed name
        `github-runner` is detached from the bridge and deleted once the application's own
        holds the rules (so a denylist entry removed since does not stay enforced).

        Args:
            denylist: networks the runners must not reach.
            network: the bridge (the one PRESEED creates).
            acl: the name of the LXD network ACL the charm owns (this host's by default).

        Returns:
            Whether the ACL or the bridge changed.

        Raises:
            HostError: if the firewall cannot be applied (a `firewall.FirewallError`).
        """
        # Imported here: firewall builds on this module's runner and errors.
        import firewall

        name = acl or self.firewall_acl
        wall = firewall.Firewall(
            network,
            name,
            self._run,
            binary_dirs=self._binary_dirs,
            tool_dirs=self._tool_dirs,
        )
        changed = wall.apply(denylist)
        if name != LEGACY_FIREWALL_ACL:
            changed = wall.retire(LEGACY_FIREWALL_ACL) or changed
        return changed

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
        lxc = self._lxc()
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
        lxc = self._lxc()
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
