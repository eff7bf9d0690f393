# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""Two applications on one machine keep their own LXD objects: ACLs and storage pools.

Each "application" has its own application name, as the charm gives its `storage.StoragePool`
and `firewall.Firewall`, on the real LXD. The firewall test uses an address-less bridge of its
own; the storage test a pool source under the test's temporary directory.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
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
import storage

from .conftest import IMAGE, PROJECT

pytestmark = pytest.mark.lxd

LXC = shutil.which("lxc") or "/usr/bin/lxc"
NFT = shutil.which("nft") or "/usr/sbin/nft"
NET = ipaddress.IPv4Network


def lxc(*args: str) -> str:
    return command.run_command([LXC, *args], timeout=120)


@pytest.fixture
def apps() -> tuple[str, str]:
    suffix = secrets.token_hex(3)
    return f"grt-repo-a-{suffix}", f"grt-repo-b-{suffix}"


@pytest.fixture
def bridge(apps: tuple[str, str]) -> Iterator[str]:
    """An address-less bridge of the test's own; it and both applications' ACLs go after."""
    name = f"grtapp{secrets.token_hex(3)}"
    lxc("network", "create", name, "ipv4.address=none", "ipv6.address=none")
    try:
        yield name
    finally:
        with contextlib.suppress(command.CommandError):
            lxc("network", "delete", name)
        for app in apps:
            with contextlib.suppress(command.CommandError):
                lxc("network", "acl", "delete", command.scoped_name(app))


def egress(acl: str) -> list[str]:
    document: Any = yaml.safe_load(lxc("network", "acl", "show", acl))
    return [rule["destination"] for rule in document["egress"]]


def bridge_rejects(bridge: str) -> list[str]:
    ruleset = command.run_command([NFT, "list", "ruleset"], timeout=60)
    match = re.search(rf"chain acl\.{bridge} \{{\n(.*?)\n\t\}}", ruleset, re.DOTALL)
    assert match, f"no chain acl.{bridge}"
    return re.findall(rf'iifname "{bridge}" ip daddr (\S+) reject', match.group(1))


def test_two_applications_keep_their_own_denylists(apps: tuple[str, str], bridge: str) -> None:
    """Two applications' ACLs coexist, each with its own denylist.

    arrange: two applications on one bridge.
    act: each applies its denylist, the first twice (its next hook).
    assert: two ACLs, each with its own rules, both enforced.
    """
    first, second = (firewall.Firewall(bridge, command.scoped_name(app)) for app in apps)

    first.ensure([NET("198.51.100.0/24")])
    second.ensure([NET("203.0.113.0/24")])
    first.ensure([NET("198.51.100.0/24")])
    unchanged = second.ensure([NET("203.0.113.0/24")])

    # Nothing was overwritten.
    assert first.acl != second.acl
    assert not unchanged
    assert egress(first.acl)[-1] == "198.51.100.0/24"
    assert "203.0.113.0/24" not in egress(first.acl)
    assert egress(second.acl)[-1] == "203.0.113.0/24"
    assert "198.51.100.0/24" not in egress(second.acl)
    config: Any = yaml.safe_load(lxc("network", "show", bridge))["config"]
    assert config["security.acls"].split(",") == [first.acl, second.acl]
    # LXD enforces both on the bridge (every ACL of a bridge holds for all its instances).
    assert {"198.51.100.0/24", "203.0.113.0/24"} <= set(bridge_rejects(bridge))


def test_the_acl_of_an_earlier_version_is_retired(apps: tuple[str, str], bridge: str) -> None:
    """The fixed-name ACL of an earlier version is detached and deleted.

    arrange: the fixed-name ACL an earlier version attached to the bridge.
    act: the application applies its own.
    assert: the old one is detached, its stale rule gone.
    """
    legacy = firewall.Firewall(bridge, f"grt-legacy-{secrets.token_hex(3)}")
    legacy.ensure([NET("192.0.2.0/24")])
    app = firewall.Firewall(bridge, command.scoped_name(apps[0]))
    wall = firewall.Firewall(bridge, app.acl)
    try:
        # What Firewall.ensure does, with the test's stand-in for the fixed name.
        wall.apply([NET("198.51.100.0/24")])
        retired = wall.retire(legacy.acl)

        assert retired
        config: Any = yaml.safe_load(lxc("network", "show", bridge))["config"]
        assert config["security.acls"] == app.acl
        assert "192.0.2.0/24" not in bridge_rejects(bridge)
        assert legacy.acl not in lxc("network", "acl", "list", "--format", "csv")
    finally:
        with contextlib.suppress(command.CommandError):
            lxc("network", "set", bridge, "security.acls=")
        with contextlib.suppress(command.CommandError):
            lxc("network", "acl", "delete", legacy.acl)


def test_two_applications_get_their_own_storage_pools(
    apps: tuple[str, str], tmp_path: Path
) -> None:
    """Two applications get two storage pools.

    arrange: two applications with runner storage under one juju storage root (dir pools).
    act: each prepares its storage.
    assert: two pools, on two sources, each kept.
    """
    juju = tmp_path / "juju"
    hosts = [
        storage.StoragePool(
            app=app, juju_storage_dir=juju / app, ram_dir=tmp_path / "ram", tool_dirs=()
        )
        for app in apps
    ]
    try:
        for runner_host in hosts:
            runner_host.ensure_runner_storage(storage.JUJU_STORAGE, 1024**3)

        pools = {runner_host.storage_pool for runner_host in hosts}
        assert pools == {command.scoped_name(app) for app in apps}
        for runner_host, app in zip(hosts, apps, strict=True):
            shown: Any = yaml.safe_load(lxc("storage", "show", runner_host.storage_pool))
            assert shown["config"]["source"] == str(juju / app)
            assert runner_host.runner_storage_in_use() == storage.JUJU_STORAGE
            assert not runner_host.ensure_runner_storage(storage.JUJU_STORAGE, 1024**3)
    finally:
        for runner_host in hosts:
            with contextlib.suppress(command.CommandError):
                lxc("storage", "delete", runner_host.storage_pool)


def test_removing_an_application_deletes_its_acl_and_keeps_the_others(
    apps: tuple[str, str], bridge: str
) -> None:
    """The removed application's ACL is detached and deleted; the other's stays enforced.

    arrange: two applications' ACLs attached to one bridge, each with its own denylist.
    act: the first application is removed (its firewall's remove), then removed again.
    assert: its ACL is gone from LXD and from the bridge, its denylist no longer enforced; the
        other's ACL is still attached and enforced; the second removal changes nothing.
    """
    first, second = (firewall.Firewall(bridge, command.scoped_name(app)) for app in apps)
    first.ensure([NET("198.51.100.0/24")])
    second.ensure([NET("203.0.113.0/24")])

    removed = first.remove()
    again = first.remove()

    assert removed
    assert not again
    acls = lxc("network", "acl", "list", "--format", "csv")
    assert first.acl not in acls
    assert second.acl in acls
    config: Any = yaml.safe_load(lxc("network", "show", bridge))["config"]
    assert config["security.acls"] == second.acl
    rejects = set(bridge_rejects(bridge))
    assert "203.0.113.0/24" in rejects
    assert "198.51.100.0/24" not in rejects


def pool_names() -> list[str]:
    return [line.split(",")[0] for line in lxc("storage", "list", "--format", "csv").splitlines()]


def test_removing_an_application_deletes_its_pool_only_when_empty(
    apps: tuple[str, str],
    tmp_path: Path,
    lxd_client: pylxd.Client,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An empty pool is deleted on removal; a pool with a runner left on it is kept and named.

    arrange: two applications' dir pools; an instance (a busy runner that could not be
        flushed) on the second's.
    act: remove both applications; then delete the instance and remove the second again.
    assert: the first's pool is gone, the other's kept while the instance is on it, with a log
        naming the instance and the command that deletes the pool; deleted once empty.
    """
    juju = tmp_path / "juju"
    first, second = (
        storage.StoragePool(
            app=app, juju_storage_dir=juju / app, ram_dir=tmp_path / "ram", tool_dirs=()
        )
        for app in apps
    )
    instance = None
    try:
        for pool in (first, second):
            pool.ensure_runner_storage(storage.JUJU_STORAGE, 1024**3)
        config = {
            "name": f"grt-rm-{secrets.token_hex(4)}",
            "source": {"type": "image", "alias": IMAGE},
            "profiles": ["default"],
            "devices": {
                "root": {"type": "disk", "path": "/", "pool": second.storage_pool, "size": "1GiB"}
            },
        }
        instance = lxd_client.instances.create(config, wait=True)

        with caplog.at_level(logging.WARNING, logger="storage"):
            assert first.remove()
            assert not second.remove()

        assert first.storage_pool not in pool_names()
        assert second.storage_pool in pool_names()
        kept = "\n".join(record.getMessage() for record in caplog.records)
        assert instance.name in kept and PROJECT in kept
        assert f"lxc storage delete {second.storage_pool}" in kept

        instance.delete(wait=True)
        instance = None
        assert second.remove()
        assert second.storage_pool not in pool_names()
        # Nothing left to do: a second removal is not an error.
        assert second.remove()
    finally:
        if instance is not None:
            with contextlib.suppress(pylxd.exceptions.LXDAPIException):
                instance.delete(wait=True)
        for pool in (first, second):
            with contextlib.suppress(command.CommandError):
                lxc("storage", "delete", pool.storage_pool)
