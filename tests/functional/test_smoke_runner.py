# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.

"""Smoke tests: the stand-in runner application in a real LXD container against the emulator.

Inside a container that reaches the emulator through a loopback proxy device, the runner
application is downloaded from the ``download_url`` the API lists, checked against the listed
``sha256_checksum``, unpacked, registered (registration token with ``config.sh --ephemeral``, or a
JIT configuration) and started as a systemd unit of an unprivileged user; then a job is queued
through the control API and the tests assert on real state: the job's conclusion, the runner list,
and the runner process's exit.
"""

from __future__ import annotations

import json
import shlex
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from tests.functional.conftest import TEST_ORG, TEST_REPO, TEST_TOKEN, run_in
from tests.github_emulator import Emulator

pytestmark = pytest.mark.lxd

USER = "runner"
HOME = f"/home/{USER}"
APP = f"{HOME}/actions-runner"
UNIT = "actions-runner"
ARCHES = {"x86_64": "x64", "aarch64": "arm64"}


def api(emu: Emulator, method: str, path: str, body: Any = None) -> Any:
    """A REST API call with the test token, as the charm would make it."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{emu.api_url}{path}", data=data, method=method)
    request.add_header("Authorization", f"Bearer {TEST_TOKEN}")
    request.add_header("Accept", "application/vnd.github+json")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=30) as answer:
        raw = answer.read()
    return json.loads(raw) if raw else None


def sh(instance: Any, script: str, user: str | None = None, check: bool = True) -> Any:
    """Run a bash script in the instance (as ``user`` through runuser when given)."""
    command = ["bash", "-c", f"cd / && {script}"]
    if user:
        command = ["runuser", "-u", user, "--", *command]
    result = run_in(instance, command)
    if check and result.exit_code != 0:
        raise AssertionError(
            f"`{script}` exited {result.exit_code}\nstdout: {result.stdout}\n"
            f"stderr: {result.stderr}"
        )
    return result


def install_runner(emu: Emulator, instance: Any) -> str:
    """Create the user, download, verify and unpack the runner; return its arch label."""
    sh(instance, f"useradd --create-home --shell /bin/bash {USER}")
    arch = ARCHES[sh(instance, "uname -m").stdout.strip()]
    apps = api(emu, "GET", f"/repos/{TEST_REPO}/actions/runners/downloads")
    app = next(a for a in apps if a["os"] == "linux" and a["architecture"] == arch)
    tarball = f"{HOME}/{app['filename']}"
    sh(instance, f"curl -fsSL --retry 3 -o {tarball} {shlex.quote(app['download_url'])}", USER)
    digest = sh(instance, f"sha256sum {tarball}").stdout.split()[0]
    assert digest == app["sha256_checksum"]
    sh(instance, f"mkdir -p {APP} && tar -xzf {tarball} -C {APP}", USER)
    return arch.upper()


def start_runner(instance: Any, *args: str, program: str = f"{APP}/run.sh") -> None:
    """Start ``run.sh`` (or ``program``) as a transient systemd unit of the runner user."""
    command = " ".join(shlex.quote(arg) for arg in (program, *args))
    sh(
        instance,
        f"systemd-run --unit={UNIT} --uid={USER} --gid={USER} --working-directory={APP} "
        f"-p RemainAfterExit=yes -p Environment=HOME={HOME} -- {command}",
    )


def unit_result(instance: Any, timeout: float = 30.0) -> dict[str, str]:
    """Wait until the runner unit's main process exited; return its systemd properties."""
    deadline = time.monotonic() + timeout
    while True:
        output = sh(
            instance,
            f"systemctl show {UNIT} -p ActiveState -p SubState -p ExecMainStatus -p ExecMainCode"
            " -p ExecMainExitTimestampMonotonic",
        ).stdout
        props = dict(line.split("=", 1) for line in output.splitlines() if "=" in line)
        if props.get("ExecMainExitTimestampMonotonic", "0") != "0":
            return props
        if time.monotonic() > deadline:
            raise TimeoutError(f"the runner unit is still running: {props}")
        time.sleep(0.3)


def listener_pids(instance: Any) -> list[str]:
    """The processes running ``bin/Runner.Listener`` (the image has no procps: read /proc)."""
    # The bracket keeps the pattern from matching this script's own command line.
    script = (
        'for d in /proc/[0-9]*; do [ "$d" = /proc/$$ ] && continue; '
        "tr '\\0' ' ' < \"$d/cmdline\" 2>/dev/null | grep -q 'bin/[R]unner.Listener' "
        '&& echo "${d#/proc/}"; done; true'
    )
    return sh(instance, script).stdout.split()


def assert_no_listener(instance: Any) -> None:
    pids = listener_pids(instance)
    assert not pids, f"Runner.Listener still running as {pids}"


def test_registration_token_flow(emulator: Emulator, launch_container: Any) -> None:
    """The real runner application registers with a token, runs one job with hooks, and exits.

    arrange: the runner application in a container, job hooks enabled through .env, a registration
        token from the emulator.
    act: configure the runner as ephemeral with labels, start it, queue a job for its labels (any
        case).
    assert: it registers offline with the default and custom labels, goes online, runs the job
        successfully with GitHub's variables and event, runs both hooks, exits 0 with no listener
        left, and deregisters.
    """
    control = emulator.control
    instance = launch_container(ports=(emulator.port,))
    arch_label = install_runner(emulator, instance)
    # Hooks live outside the runner directory, as GitHub recommends; .env enables them.
    hooks = f"{HOME}/hooks"
    sh(
        instance,
        f"mkdir -p {hooks}\n"
        f"echo 'echo \"$GITHUB_REPOSITORY $RUNNER_NAME $GITHUB_RUN_ID\" > {HOME}/started' "
        f"> {hooks}/started.sh\n"
        f"echo 'echo completed > {HOME}/completed' > {hooks}/completed.sh\n"
        f"printf 'ACTIONS_RUNNER_HOOK_JOB_STARTED={hooks}/started.sh\\n"
        f"ACTIONS_RUNNER_HOOK_JOB_COMPLETED={hooks}/completed.sh\\n' > {APP}/.env",
        USER,
    )
    token = api(emulator, "POST", f"/repos/{TEST_REPO}/actions/runners/registration-token")
    name = "smoke-registered"
    configured = sh(
        instance,
        f"{APP}/config.sh --url {emulator.url}/{TEST_REPO} --token {token['token']} "
        f"--name {name} --labels smoke,small --ephemeral --unattended --disableupdate",
        USER,
    )
    assert "Settings Saved" in configured.stdout
    runner = control.runners(TEST_REPO)[0]
    assert (runner["name"], runner["status"], runner["ephemeral"]) == (name, "offline", True)
    assert [label["name"] for label in runner["labels"]] == [
        "self-hosted",
        "Linux",
        arch_label,
        "smoke",
        "small",
    ]
    start_runner(instance)
    control.wait_for(lambda s: s["runners"][0]["status"] == "online", timeout=30)
    job = control.queue_job(
        TEST_REPO,
        ["self-hosted", "linux", arch_label.lower(), "SMOKE"],
        'echo "hello from $RUNNER_NAME in $GITHUB_REPOSITORY"\n'
        f'cp "$GITHUB_EVENT_PATH" {HOME}/event.json\n',
    )
    state = control.wait_for(
        lambda s: s["jobs"][0]["status"] == "completed" and not s["runners"], timeout=60
    )
    record = state["jobs"][0]
    assert record["conclusion"] == "success", record["log"]
    assert record["runner_name"] == name
    assert f"hello from {name} in {TEST_REPO}" in record["log"]
    result = unit_result(instance)
    assert (result["ActiveState"], result["ExecMainStatus"]) == ("active", "0"), result
    assert_no_listener(instance)
    started = sh(instance, f"cat {HOME}/started").stdout.split()
    assert started == [TEST_REPO, name, str(job["run_id"])]
    assert sh(instance, f"cat {HOME}/completed").stdout.strip() == "completed"
    event = json.loads(sh(instance, f"cat {HOME}/event.json").stdout)
    assert event["repository"]["full_name"] == TEST_REPO
    logs = sh(instance, f"ls {APP}/_diag").stdout.split()
    assert any(n.startswith("Runner_") for n in logs) and any(
        n.startswith("Worker_") for n in logs
    )
    assert api(emulator, "GET", f"/repos/{TEST_REPO}/actions/runners")["total_count"] == 0


def test_jit_config_flow(emulator: Emulator, launch_container: Any) -> None:
    """The real runner application starts from a JIT config, runs one job and deregisters.

    arrange: the runner application in a container and a JIT config from the organisation.
    act: start the runner with the JIT config and queue a job for its label.
    assert: the job succeeds on that runner, the unit exits 0 with no listener left, and no runner
        remains registered.
    """
    control = emulator.control
    instance = launch_container(ports=(emulator.port,))
    install_runner(emulator, instance)
    config = api(
        emulator,
        "POST",
        f"/orgs/{TEST_ORG}/actions/runners/generate-jitconfig",
        {"name": "smoke-jit", "runner_group_id": 1, "labels": ["self-hosted", "jit-smoke"]},
    )
    assert config["runner"]["status"] == "offline"
    start_runner(instance, "--jitconfig", config["encoded_jit_config"])
    control.wait_for(lambda s: s["runners"][0]["status"] == "online", timeout=30)
    job = control.queue_job(f"{TEST_ORG}/service", ["jit-smoke"], 'test -n "$GITHUB_SHA"')
    state = control.wait_for(
        lambda s: s["jobs"][0]["status"] == "completed" and not s["runners"], timeout=60
    )
    assert state["jobs"][0]["conclusion"] == "success", state["jobs"][0]["log"]
    api_job = api(emulator, "GET", f"/repos/{TEST_ORG}/service/actions/jobs/{job['id']}")
    assert (api_job["runner_name"], api_job["conclusion"]) == ("smoke-jit", "success")
    result = unit_result(instance)
    assert result["ExecMainStatus"] == "0", result
    assert_no_listener(instance)
    assert api(emulator, "GET", f"/orgs/{TEST_ORG}/actions/runners")["total_count"] == 0


def test_failing_job_and_deleted_registration(emulator: Emulator, launch_container: Any) -> None:
    """A failing job and a deleted registration both end the runner cleanly.

    arrange: the runner application in a container, started from a JIT config.
    act: queue a job that exits 7; then register another runner, start its listener and delete its
        registration through the API.
    assert: the job fails with exit code 7 and its output while the runner exits 0; the deleted
        runner's listener exits 1 with the deletion in the journal, and no listener is left.
    """
    control = emulator.control
    instance = launch_container(ports=(emulator.port,))
    install_runner(emulator, instance)
    # A failing script: the job fails, the ephemeral runner still finishes cleanly.
    config = api(
        emulator,
        "POST",
        f"/repos/{TEST_REPO}/actions/runners/generate-jitconfig",
        {"name": "smoke-fail", "runner_group_id": 1, "labels": ["fail-smoke"]},
    )
    start_runner(instance, "--jitconfig", config["encoded_jit_config"])
    control.wait_for(lambda s: s["runners"][0]["status"] == "online", timeout=30)
    control.queue_job(TEST_REPO, ["fail-smoke"], "echo failing on purpose\nexit 7\n")
    state = control.wait_for(
        lambda s: s["jobs"][0]["status"] == "completed" and not s["runners"], timeout=60
    )
    record = state["jobs"][0]
    assert (record["conclusion"], record["exit_code"]) == ("failure", 7)
    assert "failing on purpose" in record["log"]
    assert unit_result(instance)["ExecMainStatus"] == "0"
    assert_no_listener(instance)
    # A registration deleted through the API while the listener runs: the listener exits 1
    # (TerminatedError), which the real run.sh would turn into 0, so it is started directly.
    sh(instance, f"systemctl reset-failed {UNIT}; systemctl stop {UNIT}", check=False)
    token = api(emulator, "POST", f"/repos/{TEST_REPO}/actions/runners/registration-token")
    sh(
        instance,
        f"{APP}/config.sh --url {emulator.url}/{TEST_REPO} --token {token['token']} "
        "--name smoke-doomed --unattended",
        USER,
    )
    start_runner(instance, "run", program=f"{APP}/bin/Runner.Listener")
    state = control.wait_for(
        lambda s: bool(s["runners"]) and s["runners"][0]["status"] == "online", timeout=30
    )
    assert len(listener_pids(instance)) == 1
    api(emulator, "DELETE", f"/repos/{TEST_REPO}/actions/runners/{state['runners'][0]['id']}")
    result = unit_result(instance)
    assert result["ExecMainStatus"] == "1", result
    assert result["ActiveState"] == "failed", result
    assert_no_listener(instance)
    journal = sh(instance, f"journalctl -u {UNIT} --no-pager -n 30").stdout
    assert "Runner registration has been deleted from the server" in journal
