# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""The egress firewall on the real LXD: the ACL, the bridge and the nftables rules LXD applies.

The tests use a bridge and an ACL of their own (an address-less bridge, so no traffic can leave
it: the loopback-only rule of TESTING.md), never lxdbr0, and check what the firewall applied by
reading it back from LXD and from `nft list ruleset`. A container on the bridge shows that
changing the rules leaves running instances alone.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pylxd
import pylxd.exceptions
import pytest
import yaml

import command
import firewall

from .conftest import IMAGE, wait_for_boot

BRIDGE = "grtfw0"
ACL = "grtfw-test"
NET = ipaddress.IPv4Network
LXC = shutil.which("lxc") or "/usr/bin/lxc"
NFT = shutil.which("nft") or "/usr/sbin/nft"
IP = shutil.which("ip") or "/usr/sbin/ip"


def lxc(*args: str) -> str:
    return command.run_command([LXC, *args], timeout=120)


def _remove_bridge_and_acl() -> None:
    with contextlib.suppress(command.CommandError):
        lxc("network", "delete", BRIDGE)
    with contextlib.suppress(command.CommandError):
        lxc("network", "acl", "delete", ACL)


@pytest.fixture
def bridge() -> Iterator[str]:
    """An address-less bridge of the test's own, with no ACL; deleted with the ACL afterwards."""
    _remove_bridge_and_acl()  # Left over by an interrupted run.
    lxc("network", "create", BRIDGE, "ipv4.address=none", "ipv6.address=none")
    try:
        yield BRIDGE
    finally:
        _remove_bridge_and_acl()


@pytest.fixture
def container_on_bridge(lxd_client: pylxd.Client, bridge: str) -> Iterator[Any]:
    """A running container from the test image whose only nic is on the test bridge."""
    name = f"grt-fw-{secrets.token_hex(4)}"
    config = {
        "name": name,
        "source": {"type": "image", "alias": IMAGE},
        "profiles": ["default"],
        "devices": {"eth0": {"type": "nic", "network": bridge, "name": "eth0"}},
    }
    instance = lxd_client.instances.create(config, wait=True)
    try:
        instance.start(wait=True)
        wait_for_boot(instance)
        yield instance
    finally:
        with contextlib.suppress(pylxd.exceptions.LXDAPIException, pylxd.exceptions.NotFound):
            instance.stop(force=True, wait=True)
        with contextlib.suppress(pylxd.exceptions.LXDAPIException, pylxd.exceptions.NotFound):
            instance.delete(wait=True)


@pytest.fixture
def fw(bridge: str) -> firewall.Firewall:
    return firewall.Firewall(bridge, ACL)


def acl_chain(bridge: str, prefix: str = "acl") -> list[str]:
    """The rules of one of LXD's chains for the bridge, from `nft list ruleset`."""
    ruleset = command.run_command([NFT, "list", "ruleset"], timeout=60)
    match = re.search(rf"chain {prefix}\.{bridge} \{{\n(.*?)\n\t\}}", ruleset, re.DOTALL)
    assert match, f"no chain {prefix}.{bridge} in the nftables ruleset:\n{ruleset}"
    return [line.strip() for line in match.group(1).splitlines() if line.strip()]


def rejects(chain: list[str], bridge: str) -> list[str]:
    """The destinations the chain rejects for traffic from the bridge, in order."""
    found = []
    for line in chain:
        match = re.fullmatch(rf'iifname "{bridge}" ip6? daddr (.+?) reject( with .*)?', line)
        if match:
            found.append(match.group(1))
    return found


def host_addresses() -> list[str]:
    output = command.run_command([IP, "-4", "-o", "address", "show"], timeout=30)
    addresses = {line.split()[3].split("/")[0] for line in output.splitlines()}
    return sorted(
        (a for a in addresses if not ipaddress.IPv4Address(a).is_loopback),
        key=ipaddress.IPv4Address,
    )


def pid_start(instance: Any) -> tuple[int, str]:
    """The host PID of the instance's init and its start time (field 22 of its stat)."""
    pid = int(instance.state().pid)
    stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    return pid, stat.rsplit(")", 1)[1].split()[19]


def test_denylist_is_applied_on_the_bridge(fw: firewall.Firewall, bridge: str) -> None:
    """The denylist becomes an LXD network ACL on the bridge, in nftables as intended.

    arrange: the bridge and a denylist of three networks.
    act: apply the denylist.
    assert: it reports a change; the ACL rejects the host, IPv6 and each network with no allow
        rule; the bridge uses it with egress allowed by default and LXD's ingress default kept;
        nftables rejects them after established replies and before the default.
    """
    denylist = [NET("10.0.0.0/8"), NET("172.16.0.0/12"), NET("198.51.100.0/24")]

    changed = fw.apply(denylist)

    assert changed
    # The ACL holds a reject rule for the host, for IPv6 and for each network, and no allow.
    acl: Any = yaml.safe_load(lxc("network", "acl", "show", ACL))
    destinations = [rule["destination"] for rule in acl["egress"]]
    assert destinations == [",".join(host_addresses()), "::/0", *map(str, denylist)]
    assert {rule["action"] for rule in acl["egress"]} == {"reject"}
    assert acl["ingress"] == []
    # The bridge uses it, allows what no rule rejects, and keeps LXD's ingress default.
    config: Any = yaml.safe_load(lxc("network", "show", bridge))["config"]
    assert config["security.acls"] == ACL
    assert config["security.acls.default.egress.action"] == "allow"
    assert "security.acls.default.ingress.action" not in config
    # nftables: the rejects, after the replies of open connections and before the default.
    chain = acl_chain(bridge)
    assert chain[0] == "ct state established,related accept"
    expected_hosts = host_addresses()
    host_match = (
        expected_hosts[0] if len(expected_hosts) == 1 else "{ " + ", ".join(expected_hosts) + " }"
    )
    assert rejects(chain, bridge) == [host_match, "::/0", *map(str, denylist)]
    assert chain[-2:] == [f'iifname "{bridge}" accept', f'oifname "{bridge}" reject']


def test_lxd_baseline_keeps_dhcp_and_dns_to_the_host(fw: firewall.Firewall, bridge: str) -> None:
    """DHCP and DNS to the host still work behind the ACL.

    arrange: the bridge.
    act: apply a denylist of 10.0.0.0/8.
    assert: LXD's input chain accepts DNS (53 tcp/udp) and DHCP (67, 547) from the bridge before it
        jumps to the ACL, and accepts only there.
    """
    fw.apply([NET("10.0.0.0/8")])

    # What LXD accepts into the host before the ACL (what the firewall's docstring describes).
    chain = [line for line in acl_chain(bridge, "aclin") if not line.startswith("type ")]
    accepted = chain[: chain.index(f'iifname "{bridge}" jump acl.{bridge}')]
    for rule in ("tcp dport 53", "udp dport 53", "udp dport 67", "udp dport 547"):
        assert f'iifname "{bridge}" {rule} accept' in accepted
    assert all(line.endswith("accept") for line in accepted)


def test_second_apply_changes_nothing(fw: firewall.Firewall, bridge: str) -> None:
    """Applying the same denylist twice changes nothing the second time.

    arrange: a denylist of 10.0.0.0/8 already applied.
    act: apply it again.
    assert: it reports no change and the nftables chain is the same.
    """
    fw.apply([NET("10.0.0.0/8")])
    before = acl_chain(bridge)

    assert not fw.apply([NET("10.0.0.0/8")])

    assert acl_chain(bridge) == before


def test_empty_denylist_still_rejects_the_host(fw: firewall.Firewall, bridge: str) -> None:
    """An empty denylist still keeps runners away from the host.

    arrange: the bridge.
    act: apply an empty denylist.
    assert: the chain rejects the host's addresses and IPv6 and nothing else.
    """
    fw.apply([])

    assert rejects(acl_chain(bridge), bridge)[1:] == ["::/0"]
    assert rejects(acl_chain(bridge), bridge)[0] != ""


def test_denylist_change_keeps_running_instances(
    fw: firewall.Firewall, bridge: str, container_on_bridge: Any
) -> None:
    """Changing the denylist neither restarts nor unplugs a running instance.

    arrange: a running container on the bridge guarded by a first denylist.
    act: apply a different denylist.
    assert: the rules now reject the new networks and not the old one; the container runs with the
        same process start and its veth is still on the bridge.
    """
    fw.apply([NET("10.0.0.0/8")])
    instance = container_on_bridge
    before = pid_start(instance)
    veth = instance.state().network["eth0"]["host_name"]

    changed = fw.apply([NET("192.168.0.0/16"), NET("203.0.113.0/24")])

    # The rules changed...
    assert changed
    assert rejects(acl_chain(bridge), bridge)[-2:] == ["192.168.0.0/16", "203.0.113.0/24"]
    assert "10.0.0.0/8" not in rejects(acl_chain(bridge), bridge)
    # ...and the container was neither restarted nor unplugged from the bridge.
    instance.sync()
    assert instance.status == "Running"
    assert pid_start(instance) == before
    links = command.run_command([IP, "-o", "link", "show", "master", bridge], timeout=30)
    assert f" {veth}@" in links
