# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""The runners' egress firewall: an LXD network ACL on the bridge the runners use.

LXD turns the ACL into nftables (or xtables) rules on the host, so the rules hold for every
instance on the bridge, whatever happens inside it, and changing them touches no instance.

What LXD does by itself on a bridge with an ACL (LXD 5.0, read back from `nft list ruleset`):
before any ACL rule, traffic from the bridge *to the host* is accepted for DNS (TCP and UDP 53),
DHCP (UDP 67 and 547), ICMPv4 errors (types 3, 11, 12), ICMPv6 errors and neighbour discovery;
replies of established connections are accepted. ACL rules come next, rejects before allows
whatever their order in the ACL, then the bridge's default action
(`security.acls.default.egress.action`, which this module sets to `allow`).

The egress rules this module writes, every time and in this order:

1. reject everything to the host's own IPv4 addresses (the bridge address and every other
   address of the host): runners get DHCP and DNS from LXD's baseline above, and nothing else
   of the host (its SSH, the Juju agent, LXD's API...);
2. reject all IPv6: the bridge LXD is initialised with has no IPv6, and the denylist is IPv4
   only, so an IPv6 path (a bridge later given IPv6) would go around it;
3. reject each denylisted CIDR. When a CIDR holds the host's address nothing is carved out of
   it: the host is rejected anyway, and LXD's baseline keeps DHCP and DNS open.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

from command import (
    BINARY_DIRS,
    TOOL_DIRS,
    CommandError,
    CommandRunner,
    HostError,
    find_tool,
    parse_output,
    run_command,
    scoped_name,
)

logger = logging.getLogger(__name__)

# The bridge `host.PRESEED` creates; the runners' egress ACLs are attached to it.
NETWORK = "lxdbr0"
# The fixed name of the runners' ACL before it was scoped by application: a host prepared by an
# earlier version still has it (see `Firewall.ensure`).
ACL = "github-runner"
ACL_DESCRIPTION = "github-runner: the runners' egress firewall (managed by the charm)"
ACLS_KEY = "security.acls"
DEFAULT_EGRESS_KEY = "security.acls.default.egress.action"
REJECT = "reject"
HOST_RULE = "github-runner: the host (LXD's baseline keeps DHCP and DNS open)"
IPV6_RULE = "github-runner: all IPv6 (the denylist is IPv4 only)"


class FirewallError(HostError):
    """The firewall could not be applied; the next reconciliation retries."""


def _rule(destination: str, description: str) -> dict[str, str]:
    return {
        "action": REJECT,
        "destination": destination,
        "description": description,
        "state": "enabled",
    }


def egress_rules(
    denylist: Iterable[ipaddress.IPv4Network],
    host_addresses: Iterable[ipaddress.IPv4Address],
) -> list[dict[str, str]]:
    """The ACL's egress rules.

    Args:
        denylist: networks the runners must not reach (duplicates are dropped).
        host_addresses: the host's own IPv4 addresses.

    Returns:
        The rules, as LXD shows them (empty fields left out).
    """
    rules = []
    addresses = sorted(set(host_addresses))
    if addresses:
        rules.append(_rule(",".join(str(address) for address in addresses), HOST_RULE))
    rules.append(_rule("::/0", IPV6_RULE))
    for network in dict.fromkeys(denylist):
        rules.append(_rule(str(network), f"github-runner: denylist {network}"))
    return rules


def _normalise_rules(rules: Any) -> list[dict[str, str]]:
    """Return ACL rules without their empty fields, the way they compare with ours."""
    return [
        {str(key): str(value) for key, value in rule.items() if value not in (None, "")}
        for rule in rules or []
    ]


class Firewall:
    """The egress ACL of a bridge, applied through the `lxc` command."""

    def __init__(
        self,
        network: str = NETWORK,
        acl: str = ACL,
        run: CommandRunner = run_command,
        *,
        binary_dirs: Sequence[Path] = BINARY_DIRS,
        tool_dirs: Sequence[Path] = TOOL_DIRS,
    ):
        """Describe the firewall; every system access can be replaced for tests.

        Args:
            network: the LXD bridge the runners are on.
            acl: the name of the ACL this firewall owns.
            run: the command runner.
            binary_dirs: where to look for `lxc`, in order.
            tool_dirs: where to look for `ip`, in order.
        """
        self.network = network
        self.acl = acl
        self._run = run
        self._binary_dirs = tuple(binary_dirs)
        self._tool_dirs = tuple(tool_dirs)

    @classmethod
    def for_app(
        cls,
        app: str | None,
        run: CommandRunner = run_command,
        *,
        binary_dirs: Sequence[Path] = BINARY_DIRS,
        tool_dirs: Sequence[Path] = TOOL_DIRS,
    ) -> Firewall:
        """The firewall of an application's runners: its own ACL on the runners' bridge.

        Args:
            app: the Juju application name; None keeps the fixed ACL name of earlier versions.
            run: the command runner.
            binary_dirs: where to look for `lxc`, in order.
            tool_dirs: where to look for `ip`, in order.

        Returns:
            The firewall.
        """
        acl = scoped_name(app) if app else ACL
        return cls(NETWORK, acl, run, binary_dirs=binary_dirs, tool_dirs=tool_dirs)

    def _lxc(self) -> str:
        for directory in self._binary_dirs:
            lxc = directory / "lxc"
            if lxc.exists():
                return str(lxc)
        raise FirewallError("LXD is not installed")

    def _network_config(self, lxc: str) -> dict[str, str]:
        argv = [lxc, "network", "show", self.network]
        try:
            output = self._run(argv, timeout=60)
        except CommandError as exc:
            raise FirewallError(
                f"cannot read the LXD network {self.network} the runners use: {exc.stderr}"
            ) from None
        data: Any = parse_output(output, argv)
        return {str(key): str(value) for key, value in (data.get("config") or {}).items()}

    def host_addresses(self, network_config: dict[str, str]) -> set[ipaddress.IPv4Address]:
        """The host's own IPv4 addresses: the bridge's, and those of every other interface.

        Args:
            network_config: the bridge's LXD configuration.

        Returns:
            The addresses, loopback left out (runners cannot reach the host's loopback).

        Raises:
            FirewallError: if `ip` is missing or fails.
        """
        addresses = set()
        # `none`, or not set: the bridge has no IPv4 address.
        with contextlib.suppress(ValueError):
            addresses.add(ipaddress.IPv4Interface(network_config.get("ipv4.address", "")).ip)
        ip = find_tool("ip", self._tool_dirs)
        if ip is None:
            raise FirewallError("cannot list the host's addresses: the ip command is missing")
        try:
            output = self._run([ip, "-4", "-json", "address", "show"], timeout=60)
        except CommandError as exc:
            raise FirewallError(f"cannot list the host's addresses: {exc}") from None
        for interface in parse_output(output, [ip, "-4", "-json"], list):
            for info in interface.get("addr_info") or []:
                if info.get("family") == "inet" and info.get("local"):
                    address = ipaddress.IPv4Address(info["local"])
                    if not address.is_loopback:
                        addresses.add(address)
        return addresses

    def _ensure_acl(self, lxc: str, rules: list[dict[str, str]]) -> bool:
        """Create the ACL when missing and write its rules when they differ."""
        changed = False
        try:
            output = self._run([lxc, "network", "acl", "show", self.acl], timeout=60)
        except CommandError as exc:
            if "not found" not in exc.stderr.lower():
                raise FirewallError(f"cannot read the LXD network ACL {self.acl}: {exc}") from None
            logger.info("creating the LXD network ACL %s", self.acl)
            self._run([lxc, "network", "acl", "create", self.acl], timeout=60)
            output = ""
            changed = True
        current: Any = parse_output(output, [lxc, "network", "acl", "show"])
        if (
            _normalise_rules(current.get("egress")) == rules
            and not current.get("ingress")
            and current.get("description") == ACL_DESCRIPTION
        ):
            return changed
        document = {
            "description": ACL_DESCRIPTION,
            "egress": rules,
            # The ACL is the charm's: inbound traffic keeps the bridge's default (reject).
            "ingress": [],
            "config": current.get("config") or {},
        }
        logger.info(
            "writing %d egress rules to the LXD network ACL %s: %s",
            len(rules),
            self.acl,
            ", ".join(rule["destination"] for rule in rules),
        )
        self._run(
            [lxc, "network", "acl", "edit", self.acl],
            input_text=yaml.safe_dump(document, sort_keys=False),
            timeout=60,
        )
        return True

    def _attach(self, lxc: str, network_config: dict[str, str]) -> bool:
        """Attach the ACL to the bridge with a default egress action of `allow`."""
        acls = [name.strip() for name in network_config.get(ACLS_KEY, "").split(",")]
        acls = [name for name in acls if name]
        wanted = {}
        if self.acl not in acls:
            # Keep the ACLs someone else attached: LXD applies every reject before any allow,
            # so theirs cannot open what ours rejects.
            wanted[ACLS_KEY] = ",".join([*acls, self.acl])
        if network_config.get(DEFAULT_EGRESS_KEY) != "allow":
            wanted[DEFAULT_EGRESS_KEY] = "allow"
        if not wanted:
            return False
        logger.info("attaching the ACL %s to the LXD network %s", self.acl, self.network)
        try:
            self._run(
                [
                    lxc,
                    "network",
                    "set",
                    self.network,
                    *(f"{key}={value}" for key, value in wanted.items()),
                ],
                timeout=120,
            )
        except CommandError as exc:
            raise FirewallError(
                f"cannot attach the ACL {self.acl} to the LXD network {self.network}: {exc}"
            ) from None
        return True

    def _ours(self, lxc: str, acl: str) -> bool:
        """Tell whether an ACL exists and carries the charm's description."""
        argv = [lxc, "network", "acl", "show", acl]
        try:
            current: Any = parse_output(self._run(argv, timeout=60), argv)
        except HostError:
            return False
        return (current or {}).get("description") == ACL_DESCRIPTION

    def _detach_and_delete(self, lxc: str, acl: str, attached: list[str]) -> None:
        """Detach an ACL from the bridge (the others stay attached, in order), then delete it."""
        if acl in attached:
            remaining = ",".join(name for name in attached if name and name != acl)
            try:
                self._run(
                    [lxc, "network", "set", self.network, f"{ACLS_KEY}={remaining}"], timeout=120
                )
            except CommandError as exc:
                raise FirewallError(
                    f"cannot detach the ACL {acl} from the LXD network {self.network}: {exc}"
                ) from None
        try:
            self._run([lxc, "network", "acl", "delete", acl], timeout=60)
        except CommandError as exc:
            logger.info("the ACL %s stays: %s", acl, exc.stderr.strip())

    def _attached(self, lxc: str) -> list[str]:
        config = self._network_config(lxc)
        return [name.strip() for name in config.get(ACLS_KEY, "").split(",") if name.strip()]

    def retire(self, acl: str) -> bool:
        """Detach an ACL the charm made under another name from the bridge, and delete it.

        Only an ACL that carries the charm's description is touched; an ACL another
        application's units still attach to another bridge stays (LXD refuses to delete it).

        Args:
            acl: the ACL's name (the fixed name of earlier versions).

        Returns:
            Whether the bridge changed.

        Raises:
            FirewallError: if LXD refuses to detach it.
        """
        lxc = self._lxc()
        attached = self._attached(lxc)
        if acl not in attached or not self._ours(lxc, acl):
            return False
        logger.info("detaching the ACL %s of an earlier version from %s", acl, self.network)
        self._detach_and_delete(lxc, acl, attached)
        return True

    def remove(self) -> bool:
        """Detach this firewall's ACL from the bridge and delete it: its application goes.

        Only this firewall's own ACL, and only when it carries the charm's description: the
        other ACLs of the bridge (other applications' denylists) stay attached. Best effort,
        for the remove hook: a failure is logged with what to do by hand, never raised.

        Returns:
            Whether anything was detached or deleted.
        """
        try:
            lxc = self._lxc()
            attached = self._attached(lxc)
            if not self._ours(lxc, self.acl):
                logger.info("no ACL %s of the charm is left to delete", self.acl)
                return False
            logger.info("deleting the ACL %s of the removed application", self.acl)
            self._detach_and_delete(lxc, self.acl, attached)
        except HostError as exc:
            logger.error(
                "cannot delete the LXD network ACL %s: %s; delete it by hand: detach it "
                "(`lxc network show %s`, `lxc network set %s %s=<the other ACLs>`), then "
                "`lxc network acl delete %s`",
                self.acl,
                exc,
                self.network,
                self.network,
                ACLS_KEY,
                self.acl,
            )
            return False
        return True

    def apply(self, denylist: Iterable[ipaddress.IPv4Network]) -> bool:
        """Make the bridge reject the runners' traffic to the host and to the denylist.

        Idempotent: identical rules are not written again. Running instances are left alone
        (LXD only rewrites its nftables chains); connections already open stay open.

        Args:
            denylist: networks the runners must not reach; empty still protects the host.

        Returns:
            Whether the ACL or the bridge changed.

        Raises:
            FirewallError: if LXD refuses a change or a command cannot run.
        """
        lxc = self._lxc()
        network_config = self._network_config(lxc)
        rules = egress_rules(denylist, self.host_addresses(network_config))
        try:
            changed = self._ensure_acl(lxc, rules)
        except CommandError as exc:
            raise FirewallError(f"cannot write the LXD network ACL {self.acl}: {exc}") from None
        # Attach after the rules are written: the bridge never runs with a stale ACL.
        return self._attach(lxc, network_config) or changed

    def ensure(self, denylist: Iterable[ipaddress.IPv4Network]) -> bool:
        """Apply the rules (`apply`), then retire the ACL of earlier versions (`retire`).

        The ACL an earlier version attached under the fixed name `github-runner` is detached
        from the bridge and deleted once this firewall's own holds the rules, so that a
        denylist entry removed since does not stay enforced.

        Args:
            denylist: networks the runners must not reach; empty still protects the host.

        Returns:
            Whether the ACL or the bridge changed.

        Raises:
            FirewallError: if LXD refuses a change or a command cannot run.
        """
        changed = self.apply(denylist)
        if self.acl != ACL:
            changed = self.retire(ACL) or changed
        return changed
