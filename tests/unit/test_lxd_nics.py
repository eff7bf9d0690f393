# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""The NIC isolation options the LXD adapter adds to every instance it creates."""

from __future__ import annotations

from github_runner_manager.lxd import NIC_ISOLATION, isolated_nics

ROOT = {"type": "disk", "path": "/", "pool": "runner"}


def bridges(name: str) -> str | None:
    return {"lxdbr0": "bridge", "macv": "macvlan"}.get(name)


def test_the_profile_nic_is_made_explicit_with_the_options():
    """The profile's bridged NIC is made an instance device with the isolation options.

    arrange: eth0 from the default profile.
    act: isolate.
    assert: an instance eth0 with them.
    """
    profile = {"eth0": {"type": "nic", "network": "lxdbr0", "name": "eth0"}, "root": ROOT}

    devices = isolated_nics([profile], {"root": ROOT}, bridges)

    assert devices == {
        "root": ROOT,
        "eth0": {"type": "nic", "network": "lxdbr0", "name": "eth0", **NIC_ISOLATION},
    }


def test_later_profiles_and_instance_devices_win():
    """A later profile's device wins over an earlier one.

    arrange: eth0 overridden by a later profile.
    act: isolate.
    assert: the later one is kept.
    """
    first = {"eth0": {"type": "nic", "network": "lxdbr0", "name": "eth0"}}
    second = {"eth0": {"type": "nic", "nictype": "bridged", "parent": "br1", "name": "eth0"}}

    devices = isolated_nics([first, second], {}, bridges)

    assert devices["eth0"]["parent"] == "br1"
    assert devices["eth0"]["security.port_isolation"] == "true"


def test_an_operator_choice_is_kept():
    """An isolation option the operator set is kept.

    arrange: a profile turning port isolation off.
    act: isolate.
    assert: it stays off.
    """
    profile = {
        "eth0": {"type": "nic", "network": "lxdbr0", "security.port_isolation": "false"},
    }

    devices = isolated_nics([profile], {}, bridges)

    assert devices["eth0"]["security.port_isolation"] == "false"
    assert devices["eth0"]["security.mac_filtering"] == "true"


def test_non_bridged_nics_and_other_devices_are_left_alone():
    """NICs that are not bridged and other devices are left alone.

    arrange: a macvlan NIC and a proxy device.
    act: isolate.
    assert: nothing added.
    """
    proxy = {"type": "proxy", "listen": "tcp:127.0.0.1:80", "connect": "tcp:127.0.0.1:80"}
    profile = {"eth0": {"type": "nic", "network": "macv"}}

    devices = isolated_nics([profile], {"loopback-80": proxy}, bridges)

    assert devices == {"loopback-80": proxy}
