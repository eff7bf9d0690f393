# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""Runners cannot reach each other nor spoof addresses: real traffic on a real LXD bridge.

The containers sit on an address-less bridge of the test's own (the loopback-only rule of
TESTING.md): they talk over their IPv6 link-local addresses and raw Ethernet frames, which never
leave the bridge. Two plain containers (a NIC as the profile gives it, the way runners were
created before) reach each other; two containers created by the adapter, as runners are, do not;
and a runner's frames with a forged source MAC address are dropped on the host before they reach
anyone on the bridge.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from typing import Any

import pylxd
import pylxd.exceptions
import pytest

import command
import host
from github_runner_manager.lxd import NIC_ISOLATION, InstanceSpec, PylxdClient
from github_runner_manager.models import InstanceType

from .conftest import IMAGE, PROJECT, run_in, wait_for_boot

pytestmark = pytest.mark.lxd

LXC = shutil.which("lxc") or "/usr/bin/lxc"
PORT = 7777
# An IEEE "local experimental" EtherType: no stack on the bridge handles it.
ETHERTYPE = 0x88B5

# A TCP server answering `hello` once per connection, on every IPv6 address of the container.
LISTEN = f"""
import socket
server = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("::", {PORT}))
server.listen(5)
while True:
    connection, _ = server.accept()
    connection.sendall(b"hello\\n")
    connection.close()
"""
# Connect to argv[1] (a link-local address) through eth0; print what it says or the error.
CONNECT = f"""
import socket, sys
try:
    connection = socket.create_connection((sys.argv[1] + "%eth0", {PORT}), timeout=3)
    print(connection.recv(16).decode().strip())
except OSError as exc:
    print(f"failed: {{exc!r}}")
"""
# Record the source MAC of every frame of ETHERTYPE arriving on eth0 for a few seconds.
CAPTURE = f"""
import socket, time
sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons({ETHERTYPE}))
sock.bind(("eth0", 0))
sock.settimeout(0.5)
deadline = time.monotonic() + 12
with open("/root/frames", "w") as out:
    out.write("ready\\n")
    out.flush()
    while time.monotonic() < deadline:
        try:
            frame = sock.recv(2048)
        except TimeoutError:
            continue
        out.write(frame[6:12].hex(":") + " " + frame[14:30].decode(errors="replace") + "\\n")
        out.flush()
"""
# Send one frame of ETHERTYPE to argv[1] (a MAC) from argv[2] (a MAC, genuine or forged).
SEND = f"""
import socket, sys
sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
sock.bind(("eth0", 0))
destination, source, label = (bytes.fromhex(sys.argv[1].replace(":", "")),
                              bytes.fromhex(sys.argv[2].replace(":", "")), sys.argv[3])
payload = label.encode().ljust(46, b".")
sock.send(destination + source + ({ETHERTYPE}).to_bytes(2, "big") + payload)
print("sent")
"""


def lxc(*args: str) -> str:
    return command.run_command([LXC, *args], timeout=120)


@pytest.fixture
def bridge_profile(lxd_client: pylxd.Client) -> Iterator[str]:
    """A profile putting eth0 on an address-less bridge of this test's own."""
    suffix = secrets.token_hex(3)
    bridge, profile = f"grtiso{suffix}", f"grt-iso-{suffix}"
    lxc("network", "create", bridge, "ipv4.address=none", "ipv6.address=none")
    try:
        lxd_client.profiles.create(
            profile,
            config={},
            devices={"eth0": {"type": "nic", "network": bridge, "name": "eth0"}},
        )
        try:
            yield profile
        finally:
            with contextlib.suppress(pylxd.exceptions.LXDAPIException):
                lxd_client.profiles.get(profile).delete()
    finally:
        with contextlib.suppress(command.CommandError):
            lxc("network", "delete", bridge)


@pytest.fixture
def instances(lxd_client: pylxd.Client) -> Iterator[list[str]]:
    names: list[str] = []
    yield names
    for name in names:
        with contextlib.suppress(pylxd.exceptions.LXDAPIException, pylxd.exceptions.NotFound):
            instance = lxd_client.instances.get(name)
            if instance.status != "Stopped":
                instance.stop(force=True, wait=True)
            instance.delete(wait=True)


@pytest.fixture
def plain(
    lxd_client: pylxd.Client, bridge_profile: str, instances: list[str]
) -> Callable[[], Any]:
    """Start a container whose NIC is the profile's, untouched (no runner settings)."""

    def _start() -> Any:
        name = f"grt-iso-plain-{secrets.token_hex(3)}"
        instances.append(name)
        instance = lxd_client.instances.create(
            {
                "name": name,
                "source": {"type": "image", "alias": IMAGE},
                "profiles": ["default", bridge_profile],
            },
            wait=True,
        )
        instance.start(wait=True)
        wait_for_boot(instance)
        return instance

    return _start


@pytest.fixture
def runner(
    lxd_client: pylxd.Client, bridge_profile: str, instances: list[str]
) -> Callable[[], Any]:
    """Start a container the way the manager creates a runner's: through the adapter."""
    adapter = PylxdClient(project=PROJECT, timeout=120)

    def _start() -> Any:
        name = f"grt-iso-runner-{secrets.token_hex(3)}"
        instances.append(name)
        adapter.create_instance(
            InstanceSpec(
                name=name,
                instance_type=InstanceType.CONTAINER,
                image=IMAGE,
                profiles=("default", bridge_profile),
                config={},
                devices={},
                ephemeral=False,
            )
        )
        adapter.start_instance(name)
        instance = lxd_client.instances.get(name)
        wait_for_boot(instance)
        return instance

    return _start


def link_local(instance: Any) -> str:
    """The instance's IPv6 link-local address on eth0, once it has one."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        result = run_in(instance, ["ip", "-6", "-o", "address", "show", "dev", "eth0"])
        for line in result.stdout.splitlines():
            address = line.split()[3].split("/")[0]
            if address.startswith("fe80:") and "tentative" not in line:
                return address
        time.sleep(0.5)
    raise TimeoutError(f"{instance.name} has no link-local address on eth0")


def mac(instance: Any) -> str:
    return run_in(instance, ["cat", "/sys/class/net/eth0/address"]).stdout.strip()


def start_in_background(instance: Any, script: str, path: str) -> None:
    PylxdClient(project=PROJECT, timeout=60).push_file(instance.name, path, script.encode())
    started = run_in(instance, ["sh", "-c", f"nohup python3 {path} >/dev/null 2>&1 &"])
    assert started.exit_code == 0, started.stderr


def connect(client: Any, server: Any) -> str:
    """Start the TCP server in `server`, connect from `client`; return what the client saw."""
    start_in_background(server, LISTEN, "/root/listen.py")
    address = link_local(server)
    link_local(client)
    time.sleep(1)  # the server binds
    PylxdClient(project=PROJECT, timeout=60).push_file(
        client.name, "/root/connect.py", CONNECT.encode()
    )
    return str(run_in(client, ["python3", "/root/connect.py", address]).stdout.strip())


def test_runners_cannot_reach_each_other(plain: Callable[[], Any], runner: Callable[[], Any]):
    """Runners cannot reach each other over the bridge.

    arrange: two plain containers, two runners.
    act: TCP over link-local.
    assert: only the plain ones talk.
    """
    # The baseline, containers on the bridge as the profile makes them.
    first, second = plain(), plain()
    assert connect(first, second) == "hello"

    # The same between two containers created as the manager creates runners.
    one, other = runner(), runner()
    answer = connect(one, other)

    # The connection never got through, and LXD holds the isolation options.
    assert answer.startswith("failed:"), answer
    for instance in (one, other):
        instance.sync()
        eth0 = instance.devices["eth0"]
        assert {key: eth0.get(key) for key in NIC_ISOLATION} == NIC_ISOLATION
        assert eth0["network"].startswith("grtiso")


def test_a_runner_cannot_forge_its_mac_address(
    plain: Callable[[], Any], runner: Callable[[], Any]
):
    """A runner's frames from a forged MAC address are dropped.

    arrange: a plain container capturing raw frames, a runner.
    act: the runner sends frames from its own and from a forged MAC.
    assert: only the genuine one arrives.
    """
    # The plain container is not port-isolated, so a runner's frames may reach it.
    witness, sender = plain(), runner()
    start_in_background(witness, CAPTURE, "/root/capture.py")
    deadline = time.monotonic() + 10
    while "ready" not in run_in(witness, ["cat", "/root/frames"]).stdout:
        assert time.monotonic() < deadline, "the capture did not start"
        time.sleep(0.3)
    PylxdClient(project=PROJECT, timeout=60).push_file(sender.name, "/root/send.py", SEND.encode())
    genuine, forged = mac(sender), "00:16:3e:0b:ad:01"

    for source, label in ((genuine, "genuine"), (forged, "forged")):
        sent = run_in(sender, ["python3", "/root/send.py", mac(witness), source, label])
        assert sent.stdout.strip() == "sent", sent.stderr
    time.sleep(2)

    frames = run_in(witness, ["cat", "/root/frames"]).stdout.splitlines()[1:]
    sources = {line.split()[0] for line in frames}
    assert genuine in sources, frames
    assert forged not in sources, frames


def test_br_netfilter_is_active_and_listed_for_boot(tmp_path: Any) -> None:
    """The br_netfilter host step filters bridged traffic now and at boot.

    arrange: a modules-load directory of the test's own, on this machine's kernel (which has the
        module built in: no modprobe).
    act: run the host step twice.
    assert: bridged traffic is filtered now, the module is listed for boot, and the second run
        changes nothing.
    """
    runner_host = host.Host(modules_load_dir=tmp_path / "modules-load.d")

    assert runner_host.ensure_br_netfilter()
    assert not runner_host.ensure_br_netfilter()

    conf = (tmp_path / "modules-load.d" / "github-runner.conf").read_text()
    assert "br_netfilter" in conf.splitlines()
    with open("/proc/sys/net/bridge/bridge-nf-call-iptables", encoding="utf-8") as setting:
        assert setting.read().strip() == "1"
