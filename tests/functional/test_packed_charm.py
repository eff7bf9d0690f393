# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""The packed charm, run the way Juju runs it, in a container with the distribution's Python.

The artifact comes from the pack stage (`tox -e pack`, which runs before `functional` in `tox`).
A fresh system container of the test image with the distribution's python3, python3-openssl,
python3-cryptography, python3-yaml and friends (as an Ubuntu cloud image has them; built by
tests/testbed/setup.sh) gets the .charm unpacked where Juju unpacks it. Then:

- the charm imports exactly as charmcraft's `dispatch` imports it: /usr/bin/python3 (the
  interpreter of `src/charm.py`'s shebang), run from the charm directory with
  `PYTHONPATH=lib:venv` and `src/` first on sys.path (the entry point's directory);
- the manager's command line runs as the charm's systemd service runs it: the unit rendered by
  `service.ManagerService` for that charm directory, its `Environment=` and `ExecStart=` taken
  from the rendered file, with `--help` and with `check` against the GitHub API emulator
  reached through a loopback proxy device (LXD through a unix-socket proxy device, read-only:
  `check` changes nothing).

Both failed before pyOpenSSL was shipped in the charm's venv: ws4py (pylxd) imported the
system pyOpenSSL, which breaks against the venv's newer cryptography
(`AttributeError: module 'lib' has no attribute 'GEN_EMAIL'`).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shlex
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pylxd
import pylxd.exceptions
import pytest

import service
from github_runner_manager.lxd import ExecResult, PylxdClient
from tests.github_emulator import Emulator

from .conftest import PROJECT, TEST_REPO, TEST_TOKEN, proxy_device

PACK_DIR = Path(os.environ.get("GRT_PACK_DIR", "/var/tmp/github-runner-pack"))
PYTHON_IMAGE = os.environ.get("GRT_PYTHON_IMAGE", "github-runner-test-python")
CHARM_DIR = "/var/lib/juju/agents/unit-github-runner-0/charm"
LXD_SOCKET_IN_INSTANCE = "/run/grt-host-lxd.socket"
HOST_LXD_SOCKETS = (Path("/var/snap/lxd/common/lxd/unix.socket"), Path("/var/lib/lxd/unix.socket"))
REPOSITORY = Path(__file__).resolve().parents[2]

# Unpack as Juju does: files with their modes (dispatch and the hooks are executable).
UNPACK = """
import os, sys, zipfile
target = sys.argv[2]
with zipfile.ZipFile(sys.argv[1]) as archive:
    for info in archive.infolist():
        path = archive.extract(info, target)
        mode = info.external_attr >> 16
        if mode:
            os.chmod(path, mode & 0o7777)
"""
# Run from the charm directory by `PYTHONPATH=lib:venv ... src/probe.py`, like dispatch runs
# src/charm.py: import the charm module and everything the manager's service imports.
PROBE = """
import importlib, json, runpy, sys
runpy.run_path("src/charm.py", run_name="charm_probe")
modules = {}
names = ("pylxd", "ws4py.client", "OpenSSL", "cryptography", "yaml",
         "github_runner_manager.lxd", "github_runner_manager.cli")
for name in names:
    module = importlib.import_module(name)
    modules[name] = getattr(module, "__file__", None)
print(json.dumps({"python": sys.executable, "path": sys.path, "modules": modules}))
"""


def packed_charm() -> Path:
    """The .charm the pack stage made; an error (not a skip) when there is none."""
    charms = sorted(PACK_DIR.glob("*.charm"))
    if len(charms) != 1:
        pytest.fail(
            f"expected one packed charm in {PACK_DIR}, found {[c.name for c in charms]}: run "
            "`tox -e pack` first (tox runs it before functional)",
            pytrace=False,
        )
    charm = charms[0]
    # A charm packed before the last change of the charm's code tests the wrong thing.
    newest = max(
        path.stat().st_mtime
        for directory in ("src", "templates")
        for path in (REPOSITORY / directory).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    )
    if charm.stat().st_mtime < newest:
        pytest.fail(f"{charm} is older than src/ or templates/: run `tox -e pack`", pytrace=False)
    return charm


def host_lxd_socket() -> Path:
    for socket in HOST_LXD_SOCKETS:
        if socket.exists():
            return socket
    pytest.fail("no LXD unix socket on the host", pytrace=False)
    raise AssertionError  # unreachable


@pytest.fixture
def machine(lxd_client: pylxd.Client, emulator: Emulator) -> Iterator[tuple[Any, PylxdClient]]:
    """A fresh container of the Python image reaching the emulator and the host's LXD."""
    name = f"grt-packed-{secrets.token_hex(4)}"
    devices = {
        "github": proxy_device(emulator.port),
        "lxd": {
            "type": "proxy",
            "listen": f"unix:{LXD_SOCKET_IN_INSTANCE}",
            "connect": f"unix:{host_lxd_socket()}",
            "bind": "instance",
            "mode": "0600",
        },
    }
    instance = lxd_client.instances.create(
        {
            "name": name,
            "source": {"type": "image", "alias": PYTHON_IMAGE},
            "profiles": ["default"],
            "devices": devices,
        },
        wait=True,
    )
    try:
        instance.start(wait=True)
        adapter = PylxdClient(project=PROJECT, timeout=120)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                state = adapter.execute(name, ["systemctl", "is-system-running"], timeout=30)
                if state.stdout.strip() in ("running", "degraded"):
                    break
            time.sleep(0.5)
        yield instance, adapter
    finally:
        with contextlib.suppress(pylxd.exceptions.LXDAPIException, pylxd.exceptions.NotFound):
            instance.sync()
            if instance.status != "Stopped":
                instance.stop(force=True, wait=True)
        with contextlib.suppress(pylxd.exceptions.LXDAPIException, pylxd.exceptions.NotFound):
            instance.delete(wait=True)


def sh(adapter: PylxdClient, name: str, command: str, timeout: float = 120) -> ExecResult:
    """Run a shell command in the instance, without the test's environment."""
    return adapter.execute(name, ["/bin/sh", "-c", command], timeout=timeout)


@pytest.fixture
def unpacked(machine: tuple[Any, PylxdClient]) -> tuple[Any, PylxdClient]:
    """The container with the packed charm unpacked where Juju puts it."""
    instance, adapter = machine
    charm = packed_charm()
    adapter.push_file(instance.name, "/root/charm.charm", charm.read_bytes())
    adapter.push_file(instance.name, "/root/unpack.py", UNPACK.encode())
    result = sh(
        adapter,
        instance.name,
        f"mkdir -p {CHARM_DIR} && /usr/bin/python3 /root/unpack.py /root/charm.charm {CHARM_DIR}",
    )
    assert result.exit_code == 0, result.stderr
    return instance, adapter


def test_the_image_has_the_distributions_openssl(machine: tuple[Any, PylxdClient]) -> None:
    """The premise holds: the system pyOpenSSL is importable by /usr/bin/python3, as on Ubuntu.

    arrange: a machine from the test image.
    act: import OpenSSL with /usr/bin/python3 and print where it came from.
    assert: it imports from /usr/lib/python3/dist-packages, so the next test can catch a leak.
    """
    instance, adapter = machine

    result = sh(
        adapter, instance.name, "/usr/bin/python3 -c 'import OpenSSL; print(OpenSSL.__file__)'"
    )

    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip().startswith("/usr/lib/python3/dist-packages/OpenSSL/")


def test_the_charm_imports_as_dispatch_imports_it(unpacked: tuple[Any, PylxdClient]) -> None:
    """The packed charm imports its own modules, as dispatch runs it, not the system's.

    arrange: the packed charm unpacked in a machine, with a probe script beside src/charm.py.
    act: run the probe with dispatch's command line and environment (PYTHONPATH=lib:venv).
    assert: dispatch and the shebang are as expected; sys.path starts with src, lib and venv of the
        charm, and every probed module came from the charm directory.
    """
    instance, adapter = unpacked
    with zipfile.ZipFile(packed_charm()) as archive:
        dispatch = archive.read("dispatch").decode()
        shebang = archive.read("src/charm.py").decode().splitlines()[0]
    # The probe stands where the entry point stands, so that sys.path[0] is src/ for both.
    adapter.push_file(instance.name, f"{CHARM_DIR}/src/probe.py", PROBE.encode())
    assert "PYTHONPATH=lib:venv" in dispatch and "exec ./src/charm.py" in dispatch
    assert shebang == "#!/usr/bin/env python3"

    # The dispatch command line, with the probe as the entry point.
    result = sh(
        adapter,
        instance.name,
        f"cd {CHARM_DIR} && env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "
        "JUJU_DISPATCH_PATH=hooks/install PYTHONPATH=lib:venv /usr/bin/env python3 ./src/probe.py",
    )

    # Every module came from the charm (not the system's dist-packages).
    assert result.exit_code == 0, result.stderr
    found = json.loads(result.stdout)
    assert found["python"] in ("/usr/bin/python3", "/bin/python3") or found["python"].startswith(
        "/usr/bin/python3"
    )
    assert found["path"][:3] == [f"{CHARM_DIR}/src", f"{CHARM_DIR}/lib", f"{CHARM_DIR}/venv"]
    for module, path in found["modules"].items():
        assert path.startswith(f"{CHARM_DIR}/"), f"{module} came from {path}"


def test_the_manager_runs_as_its_service_runs_it(
    unpacked: tuple[Any, PylxdClient], emulator: Emulator, tmp_path: Path
) -> None:
    """The packed charm's manager runs as its systemd unit runs it.

    arrange: the packed charm unpacked in a machine; the unit rendered for its charm directory, and
        a config and token file pointing at the emulator.
    act: run the unit's ExecStart command (its Python, module and environment) with --help, then
        with check.
    assert: help lists reconcile; check exits 0 with no runner online or busy, never shows the
        token, and reached the emulator's runner listing.
    """
    instance, adapter = unpacked
    paths = service.ManagerPaths.for_unit("github-runner", 0)
    manager = service.ManagerService(paths, REPOSITORY, python="/usr/bin/python3")
    # The unit as the charm renders it for the deployed charm directory.
    manager._charm_dir = Path(CHARM_DIR)
    unit = manager.render_service(10)
    directives: dict[str, list[str]] = {}
    for line in unit.splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            directives.setdefault(key, []).append(value)
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
    for value in directives["Environment"]:
        for assignment in shlex.split(value):
            key, _, setting = assignment.partition("=")
            env[key] = setting
    (exec_start,) = directives["ExecStart"]
    argv = shlex.split(exec_start)
    assert argv[:3] == ["/usr/bin/python3", "-m", "github_runner_manager"]
    assert env["PYTHONPATH"] == f"{CHARM_DIR}/venv:{CHARM_DIR}/lib:{CHARM_DIR}/src"
    config = {
        "unit": "github-runner/0",
        "name_prefix": "github-runner-0",
        "flavor": "github-runner",
        "github": {"url": emulator.url, "path": TEST_REPO, "token_file": str(paths.token_file)},
        "runners": {"containers": 0, "virtual_machines": 0},
        "lxd": {"project": PROJECT, "socket": LXD_SOCKET_IN_INSTANCE},
        "state_dir": str(paths.state_dir),
        "report_path": str(paths.report_file),
    }
    made = sh(adapter, instance.name, f"mkdir -p -m 700 {shlex.quote(str(paths.config_dir))}")
    assert made.exit_code == 0, made.stderr
    adapter.push_file(instance.name, str(paths.config_file), json.dumps(config).encode(), 0o600)
    adapter.push_file(instance.name, str(paths.token_file), f"{TEST_TOKEN}\n".encode(), 0o600)
    prefix = " ".join(f"{key}={shlex.quote(value)}" for key, value in env.items())

    helped = sh(adapter, instance.name, f"env -i {prefix} {shlex.join(argv[:3])} --help")
    checked = sh(adapter, instance.name, f"env -i {prefix} {shlex.join([*argv[:-1], 'check'])}")

    # The CLI works, and check reached the emulator (GitHub) and LXD.
    assert helped.exit_code == 0, helped.stderr
    assert "reconcile" in helped.stdout
    assert checked.exit_code == 0, checked.stderr
    document = json.loads(checked.stdout)
    assert document["online"] == 0 and document["busy"] == 0
    assert TEST_TOKEN not in checked.stdout + checked.stderr
    paths_seen = [str(request.get("path")) for request in emulator.control.recent_requests()]
    assert any("/runners" in path for path in paths_seen), paths_seen
