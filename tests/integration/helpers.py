# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""Juju-side helpers of the integration tests: deploy, actions, statuses, commands on a unit.

The Juju CLI is used wherever python-libjuju 3.1 and the controller might disagree (deploying a
local charm built for a base, actions and their results, `juju exec`, relation data): the CLI's
JSON is what an operator sees.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import re
import shlex
import time
from pathlib import Path
from typing import Any

import yaml

logger = logging.getLogger(__name__)

# The charm's action failure when the timer's run holds the manager's lock.
BUSY_MESSAGE = "another run of the runner manager is in progress"
ACTION_WAIT = "30m"
# Printed after a command run on a unit, followed by its exit code.
EXIT_MARKER = "__github_runner_test_exit="
# Model settings for every test model: fast status updates and the charm's debug logs.
MODEL_CONFIG = {
    "logging-config": "<root>=INFO;unit=DEBUG",
    "update-status-hook-interval": "1m",
}


@dataclasses.dataclass(frozen=True)
class ActionResult:
    """The outcome of an action, as `juju run --format json` shows it.

    Attributes:
        status: `completed` or `failed`.
        results: the results (values are strings, nested keys are dicts).
        message: the failure message, if any.
    """

    status: str
    results: dict[str, Any]
    message: str


async def juju(ops_test: Any, *args: str) -> str:
    """Run a Juju CLI command in the test model and return its stdout.

    Args:
        ops_test: the pytest-operator fixture.
        args: the command's arguments.

    Returns:
        stdout.

    Raises:
        AssertionError: if the command fails.
    """
    code, stdout, stderr = await ops_test.juju(*args)
    assert code == 0, f"`juju {shlex.join(args)}` failed ({code}): {stderr.strip()[-2000:]}"
    return str(stdout)


async def deploy(
    ops_test: Any,
    *,
    charm_file: Path,
    app: str,
    base: str,
    constraints: str,
    config: dict[str, str | int | bool],
    proxies: dict[str, str],
) -> None:
    """Deploy the charm with the Juju CLI (no wait).

    The configuration goes through a root-only YAML file, so the token never shows in a
    process list.

    Args:
        ops_test: the pytest-operator fixture.
        charm_file: the packed charm.
        app: the application name.
        base: the base, e.g. `ubuntu@22.04`.
        constraints: machine constraints ("" for none).
        config: the charm configuration.
        proxies: model proxy settings (`juju-http-proxy`...), possibly empty.
    """
    await ops_test.model.set_config({**MODEL_CONFIG, **proxies})
    config_file = ops_test.tmp_path / f"{app}-config.yaml"
    config_file.touch(mode=0o600)
    config_file.write_text(yaml.safe_dump({app: config}), encoding="utf-8")
    args = [
        "deploy",
        str(charm_file),
        app,
        "--base",
        base,
        "--config",
        str(config_file),
        # The runners' disks live on the runner storage: here, the machine's root disk.
        "--storage",
        "runner=rootfs",
    ]
    if constraints:
        args += ["--constraints", constraints]
    await juju(ops_test, *args)


async def run_action(
    ops_test: Any,
    unit: str,
    action: str,
    *,
    retries: int = 10,
    wait: str = ACTION_WAIT,
    **params: str | bool,
) -> ActionResult:
    """Run an action and wait for it; retry while the timer's run holds the lock.

    Args:
        ops_test: the pytest-operator fixture.
        unit: the unit, e.g. `app/0`.
        action: the action name.
        retries: attempts while the charm answers that another run is in progress.
        wait: how long `juju run` waits for the action (a Juju duration, e.g. `30m`).
        params: the action's parameters.

    Returns:
        The outcome.
    """
    args = ["run", unit, action, "--format", "json", f"--wait={wait}"]
    args += [
        f"{key}={str(value).lower() if isinstance(value, bool) else value}"
        for key, value in params.items()
    ]
    outcome = ActionResult("failed", {}, "never ran")
    for attempt in range(retries):
        _, stdout, stderr = await ops_test.juju(*args)
        try:
            document = json.loads(stdout)[unit]
        except (ValueError, KeyError, TypeError):
            raise AssertionError(
                f"`juju {shlex.join(args)}` gave no result: {stderr.strip()[-2000:]}"
            ) from None
        outcome = ActionResult(
            status=str(document.get("status", "")),
            results=dict(document.get("results") or {}),
            message=str(document.get("message") or ""),
        )
        if outcome.status == "completed" or BUSY_MESSAGE not in outcome.message:
            return outcome
        logger.info("%s on %s: the manager is busy (attempt %d), retrying", action, unit, attempt)
        await asyncio.sleep(30)
    return outcome


async def check_runners(ops_test: Any, unit: str) -> dict[str, Any]:
    """Run check-runners and return its results, failing the test if the action fails."""
    outcome = await run_action(ops_test, unit, "check-runners")
    assert outcome.status == "completed", f"check-runners failed: {outcome.message}"
    return outcome.results


def online_runners(results: dict[str, Any]) -> list[str]:
    """The online runner names of check-runners results."""
    return [name for name in str(results.get("runners", "")).split(",") if name]


async def wait_for_runners(
    ops_test: Any,
    unit: str,
    *,
    online: int,
    timeout: float = 1800,
    reconcile: bool = True,
    exclude: tuple[str, ...] = (),
) -> list[str]:
    """Wait until the unit has exactly `online` online runners, none of them in `exclude`.

    Args:
        ops_test: the pytest-operator fixture.
        unit: the unit.
        online: the number of online runners wanted.
        timeout: seconds to wait.
        reconcile: run reconcile-runners between checks, rather than wait for the timer.
        exclude: runner names that must be gone (replaced runners).

    Returns:
        The online runner names.
    """
    deadline = time.monotonic() + timeout
    names: list[str] = []
    while time.monotonic() < deadline:
        results = await check_runners(ops_test, unit)
        names = online_runners(results)
        if len(names) == online and not set(names) & set(exclude):
            return names
        if reconcile:
            await run_action(ops_test, unit, "reconcile-runners")
        await asyncio.sleep(30)
    raise AssertionError(
        f"{unit} did not reach {online} online runners (excluding {list(exclude)}) within "
        f"{timeout:.0f}s; last seen: {names}"
    )


async def wait_for_status(
    ops_test: Any, unit: str, status: str, pattern: str, timeout: float = 900
) -> str:
    """Wait until a unit's workload status and message match.

    Args:
        ops_test: the pytest-operator fixture.
        unit: the unit.
        status: `active`, `blocked`, `waiting` or `maintenance`.
        pattern: a regular expression the message must match (re.search).
        timeout: seconds to wait.

    Returns:
        The message.
    """
    expression = re.compile(pattern)

    def matches() -> bool:
        found = ops_test.model.units.get(unit)
        return bool(
            found
            and found.workload_status == status
            and expression.search(found.workload_status_message or "")
        )

    try:
        await ops_test.model.block_until(matches, timeout=timeout, wait_period=5)
    except asyncio.TimeoutError:
        found = ops_test.model.units.get(unit)
        seen = (found.workload_status, found.workload_status_message) if found else None
        raise AssertionError(
            f"{unit} did not reach {status} /{pattern}/ within {timeout:.0f}s (last: {seen})"
        ) from None
    return str(ops_test.model.units[unit].workload_status_message)


async def unit_exec(ops_test: Any, unit: str, command: str, check: bool = True) -> tuple[int, str]:
    """Run a shell command on a unit's machine as root, with the snap binaries on PATH.

    The command's exit code is printed after its output and read back, rather than trusting
    `juju exec` to pass it on.

    Args:
        ops_test: the pytest-operator fixture.
        unit: the unit.
        command: a shell command.
        check: fail the test when the command fails.

    Returns:
        The exit code and stdout.
    """
    script = f'export PATH=/snap/bin:$PATH\n{command}\necho "{EXIT_MARKER}$?"'
    code, stdout, stderr = await ops_test.juju(
        "exec", "--unit", unit, "--wait=10m", "--", "sh", "-c", script
    )
    output, marker, exit_code = str(stdout).rstrip().rpartition(EXIT_MARKER)
    assert marker, f"`juju exec` on {unit} failed ({code}): {stderr.strip()[-2000:]}"
    result = int(exit_code.strip())
    if check:
        assert result == 0, f"`{command}` failed on {unit} ({result}): {output[-2000:]}"
    return result, output


async def runner_instances(ops_test: Any, unit: str) -> list[dict[str, Any]]:
    """The unit's runner instances in LXD, selected by their owner tag as the manager does."""
    _, stdout = await unit_exec(ops_test, unit, "lxc list --format json")
    return [
        instance
        for instance in json.loads(stdout or "[]")
        if (instance.get("config") or {}).get("user.github-runner.unit") == unit
    ]


async def relation_data(
    ops_test: Any, unit: str, endpoint: str, remote_unit: str
) -> dict[str, str]:
    """The unit databag of `remote_unit` as `unit` sees it on `endpoint` (`juju show-unit`)."""
    document = json.loads(await juju(ops_test, "show-unit", unit, "--format", "json"))
    for relation in document[unit].get("relation-info") or []:
        if relation.get("endpoint") != endpoint:
            continue
        remote = (relation.get("related-units") or {}).get(remote_unit)
        if remote is not None:
            return {str(key): str(value) for key, value in (remote.get("data") or {}).items()}
    return {}


def charm_config(options: Any, **overrides: Any) -> dict[str, Any]:
    """The charm configuration of the test deployments: one container runner, no VM.

    Containers run where the machine has no nested virtualisation (an LXD machine); small
    runners keep several on a test machine.

    Args:
        options: the integration options (conftest.Options).
        overrides: options to change.

    Returns:
        The configuration.
    """
    config: dict[str, Any] = {
        "path": options.path,
        "token": options.token,
        "github-url": options.github_url,
        "virtual-machines": 0,
        "containers": 1,
        "vm-cpu": 2,
        "vm-memory": "2GiB",
        "vm-disk": "8GiB",
        "check-interval": 5,
    }
    config.update(overrides)
    return config
