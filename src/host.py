# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""Host preparation: LXD itself, its daemon's proxy, and the metrics log's rotation.

Nothing here knows about Juju. Every step is idempotent and says whether it changed anything.
LXD is driven through its `lxc` and `lxd` commands (the charm never imports pylxd), run through a
command runner that tests replace with a fake (`command`). The runner storage and the runners'
storage pool are `storage`'s (`StoragePool`, which the charm holds beside its `Host`); the
runners' egress firewall is `firewall`'s.
"""

from __future__ import annotations

import json
import logging
import os
import platform
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from charmlibs import apt, snap

from command import (
    BINARY_DIRS,
    TOOL_DIRS,
    CommandRunner,
    HostError,
    find_tool,
    lxc_command,
    lxd_binaries,
    parse_output,
    run_command,
)

logger = logging.getLogger(__name__)

LXD_SNAP_CHANNEL = "5.21/stable"
LOGROTATE_FILE = Path("/etc/logrotate.d/github-runner-metrics")
# The LXD daemon's own proxy settings (it pulls images itself) and the record of what the charm
# set there, so that it unsets only its own values when the model's proxy goes.
LXD_PROXY_KEYS = ("core.proxy_http", "core.proxy_https", "core.proxy_ignore_hosts")
LXD_PROXY_RECORD = Path("/var/lib/github-runner/lxd-proxy.json")
# The kernel module making bridged traffic go through the host's netfilter (as the original
# charm loaded it), and the file loading it at boot.
BR_NETFILTER = "br_netfilter"
MODULES_LOAD_FILE = "github-runner.conf"

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


def _proxy_changes(
    wanted: dict[str, str], current: dict[str, str], recorded: dict[str, Any]
) -> dict[str, str]:
    """The LXD proxy settings to change: a value to set, or "" to unset one the charm set."""
    changes = {}
    for key, value in wanted.items():
        have = current.get(key, "")
        if value and have != value:
            changes[key] = value
        elif not value and have and recorded.get(key) == have:
            changes[key] = ""
    return changes


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
        tool_dirs: Sequence[Path] = TOOL_DIRS,
        proc_dir: Path = Path("/proc"),
        os_release: Path = Path("/etc/os-release"),
        machine: Callable[[], str] = platform.machine,
        install_snap: Callable[[str, str], None] = _install_snap,
        install_debs: Callable[[list[str]], None] = _install_debs,
        modules_load_dir: Path = Path("/etc/modules-load.d"),
        lxd_proxy_record: Path = LXD_PROXY_RECORD,
    ):
        """Describe the host; every system access can be replaced for tests.

        Args:
            run: the command runner.
            binary_dirs: where to look for `lxc` and `lxd`, in order.
            tool_dirs: where to look for system tools (`modprobe`).
            proc_dir: /proc (for the bridge's netfilter switch).
            os_release: /etc/os-release.
            machine: returns the machine architecture.
            install_snap: installs a snap from a channel.
            install_debs: installs Debian packages.
            modules_load_dir: where systemd reads the kernel modules to load at boot.
            lxd_proxy_record: where the LXD proxy settings the charm made are recorded.
        """
        self._run = run
        self._binary_dirs = tuple(binary_dirs)
        self._tool_dirs = tuple(tool_dirs)
        self._modules_load_dir = modules_load_dir
        self._lxd_proxy_record = lxd_proxy_record
        self._proc_dir = proc_dir
        self._os_release = os_release
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

    def lxd_installed(self) -> bool:
        """Tell whether LXD is installed.

        Returns:
            True when both `lxc` and `lxd` are found.
        """
        return lxd_binaries(self._binary_dirs) is not None

    # ----- LXD ------------------------------------------------------------------------------

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
        binaries = lxd_binaries(self._binary_dirs)
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
        lxc = lxc_command(self._binary_dirs)
        wanted = dict(zip(LXD_PROXY_KEYS, (http or "", https or "", no_proxy or ""), strict=True))
        recorded = self._read_proxy_record()
        changes = _proxy_changes(wanted, self._lxd_config(lxc), recorded)
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
            self._write_proxy_record(record)
        return bool(changes)

    def _read_proxy_record(self) -> dict[str, Any]:
        """The LXD proxy values the charm set last (empty when there is no readable record)."""
        try:
            recorded: Any = json.loads(self._lxd_proxy_record.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return recorded if isinstance(recorded, dict) else {}

    def _write_proxy_record(self, record: dict[str, str]) -> None:
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

    def ensure_logrotate(self, log_path: Path, config_file: Path = LOGROTATE_FILE) -> bool:
        """Write the metrics log's logrotate configuration when it differs.

        Args:
            log_path: the metrics log (the manager's `MetricsSettings.log_path`).
            config_file: where logrotate reads it.

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
