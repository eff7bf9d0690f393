# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""Unit tests of firewall.py: the ACL it writes and when, against an in-memory LXD."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

import command
import firewall

NET = ipaddress.IPv4Network


class FakeLxd:
    """The `lxc network` and `ip` commands over in-memory networks and ACLs."""

    def __init__(self) -> None:
        self.networks: dict[str, dict[str, str]] = {
            "lxdbr0": {"ipv4.address": "10.1.2.1/24", "ipv4.nat": "true", "ipv6.address": "none"}
        }
        self.acls: dict[str, dict[str, Any]] = {}
        self.addresses = [("lo", "127.0.0.1", "host"), ("eth0", "192.0.2.2", "global")]
        self.commands: list[tuple[str, ...]] = []
        self.inputs: list[str | None] = []
        self.failures: dict[tuple[str, ...], command.CommandError] = {}

    def __call__(self, argv: Any, *, input_text: str | None = None, timeout: float = 0.0) -> str:
        assert Path(argv[0]).is_absolute()
        assert timeout > 0
        args = tuple(argv[1:])
        self.commands.append((Path(argv[0]).name, *args))
        self.inputs.append(input_text)
        for prefix, error in self.failures.items():
            if args[: len(prefix)] == prefix:
                raise error
        if Path(argv[0]).name == "ip":
            return self._ip()
        return self._lxc(args, input_text)

    def _ip(self) -> str:
        return json.dumps(
            [
                {
                    "ifname": name,
                    "addr_info": [
                        {"family": "inet", "local": address, "prefixlen": 24, "scope": scope}
                    ],
                }
                for name, address, scope in self.addresses
            ]
        )

    def _lxc(self, args: tuple[str, ...], input_text: str | None) -> str:
        match args:
            case ("network", "show", name):
                if name not in self.networks:
                    raise command.CommandError("no network", 1, "Error: Network not found")
                return yaml.safe_dump({"name": name, "config": self.networks[name]})
            case ("network", "set", name, *pairs):
                for pair in pairs:
                    key, value = pair.split("=", 1)
                    self.networks[name][key] = value
                return ""
            case ("network", "acl", "show", name):
                if name not in self.acls:
                    raise command.CommandError("no acl", 1, "Error: Network ACL not found")
                return yaml.safe_dump({"name": name, **self.acls[name], "used_by": []})
            case ("network", "acl", "create", name):
                self.acls[name] = {"description": "", "egress": [], "ingress": [], "config": {}}
                return ""
            case ("network", "acl", "edit", name):
                document = yaml.safe_load(input_text or "")
                self.acls[name] = {
                    key: document[key] for key in ("description", "egress", "ingress", "config")
                }
                return ""
        raise AssertionError(f"unexpected command {args}")

    def writes(self) -> list[tuple[str, ...]]:
        """The commands that change something."""
        return [
            command
            for command in self.commands
            if command[1:3] in (("network", "set"),)
            or command[2:4] in (("acl", "create"), ("acl", "edit"))
        ]


@pytest.fixture
def lxd() -> FakeLxd:
    return FakeLxd()


@pytest.fixture
def fw(lxd: FakeLxd, tmp_path: Path) -> firewall.Firewall:
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "lxc").write_text("")
    (tmp_path / "sbin").mkdir()
    (tmp_path / "sbin" / "ip").write_text("")
    return firewall.Firewall(
        run=lxd, binary_dirs=(tmp_path / "bin",), tool_dirs=(tmp_path / "sbin",)
    )


def destinations(lxd: FakeLxd, acl: str = "github-runner") -> list[str]:
    return [rule["destination"] for rule in lxd.acls[acl]["egress"]]


def test_first_apply_creates_the_acl_and_attaches_it(fw: firewall.Firewall, lxd: FakeLxd) -> None:
    """The first apply creates the ACL and attaches it to the bridge, egress allowed by default.

    arrange: a fake LXD with the bridge and no ACL.
    act: apply a denylist of 10.0.0.0/8.
    assert: it reports a change; LXD got the ACL's create and edit and the bridge's set of the ACL
        with the egress default allow; the ingress default stays LXD's.
    """
    changed = fw.apply([NET("10.0.0.0/8")])

    assert changed
    assert lxd.writes() == [
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
    # The ingress default stays LXD's (reject): only the egress default is set.
    assert "security.acls.default.ingress.action" not in lxd.networks["lxdbr0"]


def test_rules_reject_the_host_ipv6_and_each_denylisted_network(
    fw: firewall.Firewall, lxd: FakeLxd
) -> None:
    """The ACL rejects the host, IPv6 and each denylisted network, in that order.

    arrange: a fake LXD with the bridge and a host with two addresses.
    act: apply a denylist of three private networks.
    assert: the egress rules reject the host's addresses, ::/0 and each network with its
        description; no ingress rule; the ACL carries its description.
    """
    fw.apply([NET("10.0.0.0/8"), NET("172.16.0.0/12"), NET("192.168.0.0/16")])

    acl = lxd.acls["github-runner"]
    assert acl["egress"] == [
        {
            "action": "reject",
            "destination": "10.1.2.1,192.0.2.2",
            "description": firewall.HOST_RULE,
            "state": "enabled",
        },
        {
            "action": "reject",
            "destination": "::/0",
            "description": firewall.IPV6_RULE,
            "state": "enabled",
        },
        {
            "action": "reject",
            "destination": "10.0.0.0/8",
            "description": "github-runner: denylist 10.0.0.0/8",
            "state": "enabled",
        },
        {
            "action": "reject",
            "destination": "172.16.0.0/12",
            "description": "github-runner: denylist 172.16.0.0/12",
            "state": "enabled",
        },
        {
            "action": "reject",
            "destination": "192.168.0.0/16",
            "description": "github-runner: denylist 192.168.0.0/16",
            "state": "enabled",
        },
    ]
    assert acl["ingress"] == []
    assert acl["description"] == firewall.ACL_DESCRIPTION


def test_empty_denylist_still_protects_the_host(fw: firewall.Firewall, lxd: FakeLxd) -> None:
    """An empty denylist still rejects the host and IPv6.

    arrange: a fake LXD with the bridge.
    act: apply an empty denylist.
    assert: it reports a change and the rules reject only the host's addresses and ::/0.
    """
    assert fw.apply([])

    assert destinations(lxd) == ["10.1.2.1,192.0.2.2", "::/0"]


def test_network_holding_the_host_is_not_split(fw: firewall.Firewall, lxd: FakeLxd) -> None:
    """A denylisted network that holds the host is rejected whole, not split around the host.

    arrange: the bridge address 10.1.2.1, inside the denylisted 10.0.0.0/8.
    act: apply the denylist.
    assert: the rules reject the host, ::/0 and the whole 10.0.0.0/8, and none allows (DHCP and DNS
        stay open through LXD's baseline).
    """
    fw.apply([NET("10.0.0.0/8")])

    rules = lxd.acls["github-runner"]["egress"]
    # The whole network and the host are rejected, and nothing is allowed: carving the
    # host out of the network would open the host; DHCP and DNS stay open through LXD's baseline.
    assert destinations(lxd) == ["10.1.2.1,192.0.2.2", "::/0", "10.0.0.0/8"]
    assert {rule["action"] for rule in rules} == {"reject"}


def test_second_apply_changes_nothing(fw: firewall.Firewall, lxd: FakeLxd) -> None:
    """A second apply of the same denylist only reads.

    arrange: a denylist already applied, and the command log cleared.
    act: apply it again.
    assert: no change reported, no write, and only the bridge, the host's addresses and the ACL
        were read.
    """
    fw.apply([NET("10.0.0.0/8")])
    lxd.commands.clear()

    changed = fw.apply([NET("10.0.0.0/8")])

    assert not changed
    assert lxd.writes() == []
    assert lxd.commands == [
        ("lxc", "network", "show", "lxdbr0"),
        ("ip", "-4", "-json", "address", "show"),
        ("lxc", "network", "acl", "show", "github-runner"),
    ]


def test_denylist_change_rewrites_only_the_rules(fw: firewall.Firewall, lxd: FakeLxd) -> None:
    """A denylist change rewrites only the ACL's rules.

    arrange: a denylist of 10.0.0.0/8 applied, and the command log cleared.
    act: apply it with 203.0.113.0/24 added.
    assert: a change is reported, the only write is the ACL's edit, and the rules end with both
        networks.
    """
    fw.apply([NET("10.0.0.0/8")])
    lxd.commands.clear()

    changed = fw.apply([NET("10.0.0.0/8"), NET("203.0.113.0/24")])

    assert changed
    assert lxd.writes() == [("lxc", "network", "acl", "edit", "github-runner")]
    assert destinations(lxd)[-2:] == ["10.0.0.0/8", "203.0.113.0/24"]


def test_duplicate_networks_give_one_rule(fw: firewall.Firewall, lxd: FakeLxd) -> None:
    """A network listed twice gives one rule.

    arrange: a fake LXD with the bridge.
    act: apply 10.0.0.0/8 twice in one denylist.
    assert: one rule rejects 10.0.0.0/8.
    """
    fw.apply([NET("10.0.0.0/8"), NET("10.0.0.0/8")])

    assert destinations(lxd).count("10.0.0.0/8") == 1


def test_rules_edited_by_hand_are_put_back(fw: firewall.Firewall, lxd: FakeLxd) -> None:
    """Rules edited by hand are put back.

    arrange: an applied denylist whose host rule was removed and an allow ingress rule added by
        hand.
    act: apply the same denylist.
    assert: a change is reported; the host rule is first again and no ingress rule is left.
    """
    fw.apply([NET("10.0.0.0/8")])
    lxd.acls["github-runner"]["egress"].pop(0)
    lxd.acls["github-runner"]["ingress"] = [{"action": "allow", "state": "enabled"}]

    assert fw.apply([NET("10.0.0.0/8")])

    assert destinations(lxd)[0] == "10.1.2.1,192.0.2.2"
    assert lxd.acls["github-runner"]["ingress"] == []


def test_host_address_change_rewrites_the_rules(fw: firewall.Firewall, lxd: FakeLxd) -> None:
    """A change of the host's addresses rewrites the host rule.

    arrange: an empty denylist applied, then the host's second address changed.
    act: apply it again.
    assert: a change is reported and the host rule names the new address.
    """
    fw.apply([])
    lxd.addresses[1] = ("eth0", "192.0.2.9", "global")

    assert fw.apply([])

    assert destinations(lxd)[0] == "10.1.2.1,192.0.2.9"


def test_address_less_bridge_still_rejects_the_other_host_addresses(
    fw: firewall.Firewall, lxd: FakeLxd
) -> None:
    """A bridge without an IPv4 address still gets the host's other addresses rejected.

    arrange: a bridge with ipv4.address none.
    act: apply an empty denylist.
    assert: the rules reject the host's other address and ::/0.
    """
    lxd.networks["lxdbr0"]["ipv4.address"] = "none"

    fw.apply([])

    assert destinations(lxd) == ["192.0.2.2", "::/0"]


def test_acls_attached_by_someone_else_are_kept(fw: firewall.Firewall, lxd: FakeLxd) -> None:
    """ACLs someone else attached to the bridge are kept.

    arrange: the bridge with another ACL attached.
    act: apply an empty denylist.
    assert: the bridge's ACLs are the other one and ours.
    """
    lxd.networks["lxdbr0"]["security.acls"] = "theirs"

    fw.apply([])

    assert lxd.networks["lxdbr0"]["security.acls"] == "theirs,github-runner"


def test_attached_acl_with_another_default_is_fixed(fw: firewall.Firewall, lxd: FakeLxd) -> None:
    """An attached ACL whose egress default was changed gets allow back.

    arrange: an applied denylist, then the bridge's egress default set to reject; command log
        cleared.
    act: apply again.
    assert: a change is reported and the only write sets the egress default to allow.
    """
    fw.apply([])
    lxd.networks["lxdbr0"]["security.acls.default.egress.action"] = "reject"
    lxd.commands.clear()

    assert fw.apply([])

    assert lxd.writes() == [
        ("lxc", "network", "set", "lxdbr0", "security.acls.default.egress.action=allow")
    ]


def test_network_and_acl_names_are_injectable(lxd: FakeLxd, tmp_path: Path) -> None:
    """The bridge and ACL names can be chosen (a test bridge leaves lxdbr0 alone).

    arrange: a fake LXD with a second bridge grtfw0 and a firewall for it with the ACL grtfw-test.
    act: apply a denylist of 198.51.100.0/24.
    assert: grtfw-test rejects the host, ::/0 and the network and is attached to grtfw0; lxdbr0
        gets no ACL.
    """
    (tmp_path / "lxc").write_text("")
    (tmp_path / "ip").write_text("")
    lxd.networks["grtfw0"] = {"ipv4.address": "none", "ipv6.address": "none"}
    fw = firewall.Firewall(
        "grtfw0", "grtfw-test", run=lxd, binary_dirs=(tmp_path,), tool_dirs=(tmp_path,)
    )

    fw.apply([NET("198.51.100.0/24")])

    assert destinations(lxd, "grtfw-test") == ["192.0.2.2", "::/0", "198.51.100.0/24"]
    assert lxd.networks["grtfw0"]["security.acls"] == "grtfw-test"
    assert "security.acls" not in lxd.networks["lxdbr0"]


def test_missing_bridge_is_a_host_error(fw: firewall.Firewall, lxd: FakeLxd) -> None:
    """A missing bridge is a host error naming it.

    arrange: a fake LXD without lxdbr0.
    act: apply an empty denylist.
    assert: a HostError says it cannot read the LXD network lxdbr0.
    """
    del lxd.networks["lxdbr0"]

    with pytest.raises(command.HostError, match="cannot read the LXD network lxdbr0"):
        fw.apply([])


def test_acl_that_cannot_be_read_is_not_created(fw: firewall.Firewall, lxd: FakeLxd) -> None:
    """An ACL that cannot be read is not created over.

    arrange: a fake LXD whose ACL show fails with an EOF.
    act: apply an empty denylist.
    assert: a FirewallError says it cannot read the ACL, and nothing was written.
    """
    lxd.failures[("network", "acl", "show")] = command.CommandError(
        "timeout", 1, "Error: Get http://unix.socket/1.0: EOF"
    )

    with pytest.raises(firewall.FirewallError, match="cannot read the LXD network ACL"):
        fw.apply([])

    assert lxd.writes() == []


def test_rules_lxd_refuses_are_a_firewall_error(fw: firewall.Firewall, lxd: FakeLxd) -> None:
    """Rules LXD refuses are a firewall error.

    arrange: a fake LXD whose ACL edit fails with an invalid rule.
    act: apply an empty denylist.
    assert: a FirewallError says it cannot write the LXD network ACL.
    """
    lxd.failures[("network", "acl", "edit")] = command.CommandError(
        "bad", 1, "Error: Invalid egress rule 2"
    )

    with pytest.raises(firewall.FirewallError, match="cannot write the LXD network ACL"):
        fw.apply([])


def test_bridge_that_refuses_the_acl_is_a_firewall_error(
    fw: firewall.Firewall, lxd: FakeLxd
) -> None:
    """A bridge that refuses the ACL is a firewall error.

    arrange: a fake LXD whose network set fails.
    act: apply an empty denylist.
    assert: a FirewallError says it cannot attach the ACL github-runner.
    """
    lxd.failures[("network", "set")] = command.CommandError("bad", 1, "Error: not supported")

    with pytest.raises(firewall.FirewallError, match="cannot attach the ACL github-runner"):
        fw.apply([])


def test_missing_lxc_is_a_firewall_error(lxd: FakeLxd, tmp_path: Path) -> None:
    """A missing lxc is a firewall error saying LXD is not installed.

    arrange: a firewall whose binary directories hold no lxc.
    act: apply an empty denylist.
    assert: a FirewallError says LXD is not installed.
    """
    fw = firewall.Firewall(run=lxd, binary_dirs=(tmp_path,), tool_dirs=(tmp_path,))

    with pytest.raises(firewall.FirewallError, match="LXD is not installed"):
        fw.apply([])


def test_missing_ip_is_a_firewall_error(lxd: FakeLxd, tmp_path: Path) -> None:
    """A missing ip command is a firewall error.

    arrange: lxc present but no ip in the tool directories.
    act: apply an empty denylist.
    assert: a FirewallError says the ip command is missing.
    """
    (tmp_path / "lxc").write_text("")
    fw = firewall.Firewall(run=lxd, binary_dirs=(tmp_path,), tool_dirs=(tmp_path / "none",))

    with pytest.raises(firewall.FirewallError, match="ip command is missing"):
        fw.apply([])


def test_failing_ip_is_a_firewall_error(fw: firewall.Firewall, lxd: FakeLxd) -> None:
    """An ip command that fails is a firewall error.

    arrange: a fake whose ip -4 address listing fails.
    act: apply an empty denylist.
    assert: a FirewallError says it cannot list the host's addresses.
    """
    lxd.failures[("-4",)] = command.CommandError("bad", 1, "boom")

    with pytest.raises(firewall.FirewallError, match="cannot list the host's addresses"):
        fw.apply([])


def test_egress_rules_sort_host_addresses() -> None:
    """The host rule lists the host's addresses in numeric order.

    arrange: the addresses 10.0.0.9 and 10.0.0.10.
    act: build the egress rules with no denylist.
    assert: the host rule's destination is "10.0.0.9,10.0.0.10" (not text order).
    """
    rules = firewall.egress_rules(
        [], [ipaddress.IPv4Address("10.0.0.9"), ipaddress.IPv4Address("10.0.0.10")]
    )

    assert rules[0]["destination"] == "10.0.0.9,10.0.0.10"


def test_egress_rules_without_host_addresses() -> None:
    """Without host addresses there is no host rule.

    arrange: no host address and a denylist of 10.0.0.0/8.
    act: build the egress rules.
    assert: the rules reject ::/0 and 10.0.0.0/8 only.
    """
    rules = firewall.egress_rules([NET("10.0.0.0/8")], [])

    assert [rule["destination"] for rule in rules] == ["::/0", "10.0.0.0/8"]
