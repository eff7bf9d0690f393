# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""Fixtures for the functional suite: a real LXD daemon and the GitHub API emulator.

Everything here talks to loopback only: test instances sit on an address-less bridge in their own
LXD project (see tests/testbed/setup.sh) and reach the emulator through LXD proxy devices bound
inside the instance to 127.0.0.1.

The suite never skips for a missing LXD: a functional run without LXD is an error, not a pass.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import pylxd
import pylxd.exceptions
import pytest

from github_runner_manager.errors import LxdError
from tests.github_emulator import Emulator, request_validation

logger = logging.getLogger(__name__)

PROJECT = os.environ.get("GRT_PROJECT", "github-runner-tests")
IMAGE = os.environ.get("GRT_IMAGE", "github-runner-test")
TEST_TOKEN = "ghp_functionalTestToken000000000000000000"
TEST_REPO = "test-owner/test-repo"
TEST_ORG = "test-org"


def _cleanup_project(client: pylxd.Client) -> None:
    """Delete every instance and every non-default profile of the test project."""
    for instance in client.instances.all():
        with contextlib.suppress(pylxd.exceptions.LXDAPIException):
            if instance.status != "Stopped":
                instance.stop(force=True, wait=True)
        with contextlib.suppress(pylxd.exceptions.LXDAPIException, pylxd.exceptions.NotFound):
            instance.delete(wait=True)
    for profile in client.profiles.all():
        if profile.name != "default":
            with contextlib.suppress(pylxd.exceptions.LXDAPIException):
                profile.delete()


@pytest.fixture(scope="session")
def lxd_client() -> Iterator[pylxd.Client]:
    """A pylxd client on the test project, which is emptied before and after the session."""
    try:
        client = pylxd.Client(project=PROJECT, timeout=120)
        client.images.get_by_alias(IMAGE)
    except Exception as exc:
        pytest.fail(
            f"the LXD test bed is not ready ({exc}); run `bash tests/testbed/setup.sh` as root",
            pytrace=False,
        )
    _cleanup_project(client)
    yield client
    _cleanup_project(client)
    leftovers = [i.name for i in client.instances.all()]
    assert not leftovers, f"instances left behind in project {PROJECT}: {leftovers}"


@pytest.fixture(scope="session", autouse=True)
def openapi_request_validation() -> Iterator[request_validation.RequestValidator]:
    """Every emulator of the session checks the requests it receives against GitHub's spec."""
    try:
        spec = request_validation.install_spec()
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        pytest.fail(f"GitHub's OpenAPI description is not available: {exc}", pytrace=False)
    validator = request_validation.RequestValidator.from_file(spec)
    request_validation.set_default(validator)
    yield validator
    request_validation.set_default(None)


@pytest.fixture(autouse=True)
def no_request_violations(
    openapi_request_validation: request_validation.RequestValidator,
) -> Iterator[None]:
    """Fail the test when a request sent to any of its emulators broke GitHub's description.

    A test that breaks the rules on purpose takes its violations with `emulator.requests.take()`.
    """
    logs = request_validation.start_tracking()
    yield
    request_validation.stop_tracking()
    violations = [violation for log in logs for violation in log.violations()]
    if violations:
        listed = "\n".join(f"  {violation.message()}" for violation in violations[:20])
        pytest.fail(
            f"{len(violations)} request(s) broke GitHub's OpenAPI description:\n{listed}",
            pytrace=False,
        )


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    """A GitHub API emulator on a free loopback port, stopped after the test."""
    emu = Emulator(token=TEST_TOKEN, repos=[TEST_REPO], orgs=[TEST_ORG], offline_after=5.0)
    emu.start()
    try:
        yield emu
    finally:
        emu.stop()


def proxy_device(port: int) -> dict[str, str]:
    """An LXD proxy device making the host's 127.0.0.1:port reachable inside the instance."""
    return {
        "type": "proxy",
        "listen": f"tcp:127.0.0.1:{port}",
        "connect": f"tcp:127.0.0.1:{port}",
        "bind": "instance",
    }


def run_in(instance: Any, command: list[str]) -> Any:
    """Run a command in an instance through LXD's recorded output (no websocket threads).

    Returns:
        The adapter's ExecResult (exit_code, stdout, stderr).
    """
    from github_runner_manager.lxd import PylxdClient

    return PylxdClient(project=PROJECT, timeout=120).execute(instance.name, command, timeout=100)


def wait_for_boot(instance: Any, timeout: float = 60.0) -> None:
    """Wait until systemd inside the instance has finished starting up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(LxdError):
            result = run_in(instance, ["systemctl", "is-system-running"])
            if result.stdout.strip() in ("running", "degraded"):
                return
        time.sleep(0.3)
    raise TimeoutError(f"{instance.name} did not boot within {timeout}s")


@pytest.fixture
def launch_container(
    lxd_client: pylxd.Client,
) -> Iterator[Callable[..., Any]]:
    """Factory launching a started container from the test image; deleted after the test.

    Call it with the loopback ports the instance must reach (each gets a proxy device).
    """
    launched: list[Any] = []

    def _launch(ports: tuple[int, ...] = (), ephemeral: bool = False) -> Any:
        name = f"grt-smoke-{secrets.token_hex(4)}"
        devices = {f"loopback-{port}": proxy_device(port) for port in ports}
        config = {
            "name": name,
            "source": {"type": "image", "alias": IMAGE},
            "ephemeral": ephemeral,
            "profiles": ["default"],
            "devices": devices,
        }
        instance = lxd_client.instances.create(config, wait=True)
        launched.append(instance)
        instance.start(wait=True)
        wait_for_boot(instance)
        return instance

    yield _launch
    for instance in launched:
        with contextlib.suppress(pylxd.exceptions.LXDAPIException, pylxd.exceptions.NotFound):
            instance.sync()
            if instance.status != "Stopped":
                instance.stop(force=True, wait=True)
        with contextlib.suppress(pylxd.exceptions.LXDAPIException, pylxd.exceptions.NotFound):
            instance.delete(wait=True)
