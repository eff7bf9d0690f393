# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""Malformed manager configuration files through the real command line.

Every case runs `python3 -m github_runner_manager --config FILE check|reconcile` as the systemd
timer and the charm do, bounded in time (a case that hangs fails) and in memory (an address-space
limit: a case that reads without bound fails), and must end with exit code 2, one JSON error of
kind `config` that names the key at fault, no traceback, and nothing changed in LXD.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pylxd
import pytest
import yaml

from tests.github_emulator import Emulator

from .conftest import IMAGE, PROJECT, TEST_REPO, TEST_TOKEN, _cleanup_project

pytestmark = pytest.mark.lxd

SRC = Path(__file__).resolve().parents[2] / "src"
# Seconds one run of the command line may take: it must refuse a bad file at once; this leaves
# room for the interpreter's start on a loaded two-core machine.
CASE_TIMEOUT = 30.0
# Address space a run may use: far above what a refusal needs, far below reading /dev/zero.
MEMORY_LIMIT = 1024**3


def base_config(emulator: Emulator, tmp_path: Path) -> dict[str, Any]:
    """A valid configuration: one container runner in the test project, GitHub = emulator."""
    return {
        "unit": "config-inputs/0",
        "name_prefix": "config-inputs-0",
        "flavor": "config-inputs",
        "github": {"url": emulator.url, "path": TEST_REPO, "token": TEST_TOKEN},
        "runners": {
            "containers": 1,
            "base_image": IMAGE,
            "cpu": 1,
            "memory": "512MiB",
            "disk": "2GiB",
        },
        "lxd": {"project": PROJECT, "storage_pool": "default", "timeout": 30},
        "timing": {"api_timeout": 5, "api_retries": 1, "lock_timeout": 1},
        "state_dir": str(tmp_path / "state"),
        "crash_log_dir": str(tmp_path / "crashed"),
        "job_log_dir": str(tmp_path / "jobs"),
    }


def _set(data: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    node = data
    *parents, last = dotted.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return data


def _drop(data: dict[str, Any], dotted: str) -> dict[str, Any]:
    node = data
    *parents, last = dotted.split(".")
    for key in parents:
        node = node[key]
    del node[last]
    return data


Writer = Callable[[dict[str, Any], Path], Path]


def setting(dotted: str, value: Any) -> Writer:
    """A JSON file with one setting changed."""

    def write(data: dict[str, Any], tmp_path: Path) -> Path:
        path = tmp_path / "config.json"
        path.write_text(json.dumps(_set(data, dotted, value)))
        return path

    return write


def yaml_setting(dotted: str, text: str) -> Writer:
    """A YAML file with one setting written as raw YAML (`.inf`, `true`, `1e30`...)."""

    def write(data: dict[str, Any], tmp_path: Path) -> Path:
        marker = "__raw_yaml_value__"
        rendered = yaml.safe_dump(_set(data, dotted, marker), sort_keys=False)
        path = tmp_path / "config.yaml"
        path.write_text(rendered.replace(marker, text))
        return path

    return write


def without(dotted: str) -> Writer:
    """A JSON file with one setting removed."""

    def write(data: dict[str, Any], tmp_path: Path) -> Path:
        path = tmp_path / "config.json"
        path.write_text(json.dumps(_drop(data, dotted)))
        return path

    return write


def raw(content: bytes) -> Writer:
    """A file with exactly these bytes."""

    def write(data: dict[str, Any], tmp_path: Path) -> Path:
        path = tmp_path / "config.yaml"
        path.write_bytes(content)
        return path

    return write


def fifo(data: dict[str, Any], tmp_path: Path) -> Path:
    """A named pipe no one writes to: reading it would wait forever."""
    path = tmp_path / "config.fifo"
    os.mkfifo(path)
    return path


def dev_zero(data: dict[str, Any], tmp_path: Path) -> Path:
    """An endless device: reading it would fill the memory."""
    return Path("/dev/zero")


def symlink_to_dev_zero(data: dict[str, Any], tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.symlink_to("/dev/zero")
    return path


def directory(data: dict[str, Any], tmp_path: Path) -> Path:
    path = tmp_path / "config.d"
    path.mkdir()
    return path


def missing(data: dict[str, Any], tmp_path: Path) -> Path:
    return tmp_path / "no-such-config.yaml"


def oversized(data: dict[str, Any], tmp_path: Path) -> Path:
    """A valid configuration followed by 64 MiB of comment."""
    path = tmp_path / "config.yaml"
    with path.open("w") as out:
        out.write(json.dumps(data) + "\n")
        line = "#" + "x" * 1023 + "\n"
        for _ in range(64 * 1024):
            out.write(line)
    return path


def deeply_nested(data: dict[str, Any], tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text("runners:\n  labels: " + "[" * 50_000 + "]" * 50_000 + "\n")
    return path


def state_dir_under_a_file(data: dict[str, Any], tmp_path: Path) -> Path:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory\n")
    return setting("state_dir", str(blocker / "state"))(data, tmp_path)


def crash_log_dir_is_a_file(data: dict[str, Any], tmp_path: Path) -> Path:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory\n")
    return setting("crash_log_dir", str(blocker))(data, tmp_path)


def token_file(kind: str) -> Writer:
    """github.token_file pointing at a FIFO, /dev/zero or a missing file."""

    def write(data: dict[str, Any], tmp_path: Path) -> Path:
        if kind == "fifo":
            target = tmp_path / "token.fifo"
            os.mkfifo(target)
        elif kind == "zero":
            target = Path("/dev/zero")
        else:
            target = tmp_path / "no-such-token"
        data["github"].pop("token")
        data["github"]["token_file"] = str(target)
        return setting("unit", data["unit"])(data, tmp_path)

    return write


# (id, command, writer, what the single error message must name)
CASES: list[tuple[str, str, Writer, str]] = [
    # The seven reproduced in issue 12.
    ("fifo", "check", fifo, "is not a regular file"),
    ("dev-zero", "check", dev_zero, "is not a regular file"),
    ("state-dir-under-a-file", "reconcile", state_dir_under_a_file, "state_dir"),
    ("containers-1e30", "reconcile", setting("runners.containers", 1e30), "runners.containers"),
    (
        "containers-1e30-yaml",
        "reconcile",
        yaml_setting("runners.containers", "1e30"),
        "runners.containers",
    ),
    (
        "containers-1.0e+30-yaml",
        "reconcile",
        yaml_setting("runners.containers", "1.0e+30"),
        "runners.containers",
    ),
    ("api-timeout-inf", "check", yaml_setting("timing.api_timeout", ".inf"), "timing.api_timeout"),
    ("lxd-timeout-inf", "check", yaml_setting("lxd.timeout", ".inf"), "lxd.timeout"),
    (
        "containers-true",
        "reconcile",
        yaml_setting("runners.containers", "true"),
        "runners.containers",
    ),
    ("cpu-absurd", "reconcile", setting("runners.cpu", 10**9), "runners.cpu"),
    ("memory-absurd", "reconcile", setting("runners.memory", "9999999EiB"), "runners.memory"),
    ("disk-absurd", "reconcile", setting("runners.disk", "99999PiB"), "runners.disk"),
    # More ways to hang or run out of memory.
    ("symlink-to-dev-zero", "check", symlink_to_dev_zero, "is not a regular file"),
    ("oversized-file", "check", oversized, "larger than"),
    ("deeply-nested", "check", deeply_nested, "nested"),
    ("token-file-fifo", "check", token_file("fifo"), "github.token_file"),
    ("token-file-dev-zero", "check", token_file("zero"), "github.token_file"),
    ("token-file-missing", "check", token_file("missing"), "token file"),
    # Files that are not a configuration.
    ("directory", "check", directory, "config.d"),
    ("missing-file", "check", missing, "cannot read"),
    ("empty-file", "check", raw(b""), "mapping"),
    ("a-list", "check", raw(b"- unit\n- flavor\n"), "mapping"),
    ("a-scalar", "check", raw(b"just some text\n"), "mapping"),
    ("yaml-syntax", "check", raw(b"unit: [unclosed\n"), "neither JSON nor YAML"),
    ("not-utf8", "check", raw(b"unit: \xff\xfe\n"), "UTF-8"),
    ("python-tag", "check", raw(b"unit: !!python/object/apply:os.system ['true']\n"), "YAML"),
    ("integer-keys", "check", raw(b"1: 2\n"), "unit"),
    # Values out of range or of the wrong type.
    ("containers-negative", "reconcile", setting("runners.containers", -1), "runners.containers"),
    ("containers-fraction", "reconcile", setting("runners.containers", 1.5), "runners.containers"),
    ("containers-string", "reconcile", setting("runners.containers", "two"), "runners.containers"),
    (
        "containers-too-many",
        "reconcile",
        setting("runners.containers", 100_000),
        "runners.containers",
    ),
    (
        "vms-true",
        "reconcile",
        yaml_setting("runners.virtual_machines", "true"),
        "runners.virtual_machines",
    ),
    ("cpu-zero", "reconcile", setting("runners.cpu", 0), "runners.cpu"),
    ("memory-unit", "reconcile", setting("runners.memory", "7GB"), "runners.memory"),
    ("memory-zero", "reconcile", setting("runners.memory", "0GiB"), "runners.memory"),
    ("disk-words", "reconcile", setting("runners.disk", "ten gigabytes"), "runners.disk"),
    ("api-timeout-nan", "check", yaml_setting("timing.api_timeout", ".nan"), "timing.api_timeout"),
    ("api-timeout-negative", "check", setting("timing.api_timeout", -5), "timing.api_timeout"),
    (
        "api-timeout-true",
        "check",
        yaml_setting("timing.api_timeout", "true"),
        "timing.api_timeout",
    ),
    (
        "registration-timeout-inf",
        "reconcile",
        yaml_setting("timing.registration_timeout", ".inf"),
        "timing.registration_timeout",
    ),
    (
        "lock-timeout-inf",
        "reconcile",
        yaml_setting("timing.lock_timeout", ".inf"),
        "timing.lock_timeout",
    ),
    ("lxd-timeout-zero", "check", setting("lxd.timeout", 0), "lxd.timeout"),
    ("image-timeout-inf", "reconcile", yaml_setting("image.timeout", ".inf"), "image.timeout"),
    (
        "check-interval-inf",
        "check",
        yaml_setting("metrics.check_interval", ".inf"),
        "metrics.check_interval",
    ),
    (
        "spawn-concurrency-huge",
        "reconcile",
        setting("timing.spawn_concurrency", 10**6),
        "timing.spawn_concurrency",
    ),
    ("api-retries-zero", "check", setting("timing.api_retries", 0), "timing.api_retries"),
    (
        "exporter-port-huge",
        "check",
        setting("metrics.exporter_port", 70000),
        "metrics.exporter_port",
    ),
    ("labels-with-space", "reconcile", setting("runners.labels", ["has space"]), "runners.labels"),
    ("prefix-uppercase", "check", setting("name_prefix", "Bad_Prefix"), "name_prefix"),
    ("unknown-key", "check", setting("surprise", True), "surprise"),
    ("unit-missing", "check", without("unit"), "unit"),
    ("github-missing", "check", without("github"), "github"),
    (
        "github-url-plain-http",
        "check",
        setting("github.url", "http://github.example.com"),
        "github.url",
    ),
    ("github-path-three-parts", "check", setting("github.path", "a/b/c"), "github"),
    ("token-and-token-file", "check", setting("github.token_file", "/etc/token"), "github"),
    ("aproxy-without-proxy", "check", setting("proxy.aproxy", True), "proxy"),
    ("yq-mode", "check", setting("image.yq", "curl"), "image.yq"),
    ("crash-log-dir-is-a-file", "reconcile", crash_log_dir_is_a_file, "crash_log_dir"),
]


def lxd_state(client: pylxd.Client) -> dict[str, Any]:
    """What a run could change in the test project: its instances and profiles.

    (The image store and the pools are shared with other projects' tests: not compared.)
    """
    return {
        "instances": sorted(i.name for i in client.instances.all()),
        "profiles": {p.name: (p.config, p.devices) for p in client.profiles.all()},
    }


def run_cli(config: Path, command: str, tmp_path: Path) -> tuple[int, str, str, float]:
    """Run the manager's command line on a file, bounded in time and memory."""

    def limit_memory() -> None:  # runs in the child, before exec
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))

    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    started = time.monotonic()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "github_runner_manager", "--config", str(config), command],
            capture_output=True,
            text=True,
            timeout=CASE_TIMEOUT,
            env=env,
            cwd=tmp_path,
            preexec_fn=limit_memory,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"`{command}` did not finish within {CASE_TIMEOUT:.0f}s", pytrace=False)
    return result.returncode, result.stdout, result.stderr, time.monotonic() - started


def test_a_valid_configuration_passes(emulator, tmp_path, lxd_client):
    """The base configuration passes check.

    arrange: the base configuration every case starts from.
    act: `check`.
    assert: exit 0 (so every refusal below is due to the one thing each case breaks).
    """
    path = setting("unit", "config-inputs/0")(base_config(emulator, tmp_path), tmp_path)

    code, stdout, stderr, _ = run_cli(path, "check", tmp_path)

    assert code == 0, stderr
    assert json.loads(stdout)["desired"] == {"container": 1, "virtual-machine": 0}


@pytest.mark.parametrize(
    ("command", "writer", "named"),
    [pytest.param(command, writer, named, id=case) for case, command, writer, named in CASES],
)
def test_malformed_configuration_is_refused(
    emulator, tmp_path, lxd_client, command, writer, named
):
    """A malformed configuration is refused cleanly, naming the key.

    arrange: a configuration file broken in one way.
    act: run the command line on it.
    assert: within the time and memory bound, exit code 2 and one JSON error of kind config naming
        the key, no traceback, the token not echoed, and nothing changed in LXD.
    """
    before = lxd_state(lxd_client)
    path = writer(base_config(emulator, tmp_path), tmp_path)

    try:
        code, stdout, stderr, _ = run_cli(path, command, tmp_path)
        after = lxd_state(lxd_client)
    finally:
        _cleanup_project(lxd_client)  # what a wrongly accepted case created must not linger

    assert "Traceback" not in stderr, stderr[-3000:]
    assert code == 2, f"exit code {code}; stdout={stdout[-2000:]!r}; stderr={stderr[-2000:]!r}"
    document = json.loads(stdout)
    assert document["ok"] is False
    assert len(document["errors"]) == 1, document
    error = document["errors"][0]
    assert error["kind"] == "config"
    assert named in error["message"], error["message"]
    assert len(error["message"]) < 2000, error["message"]
    assert TEST_TOKEN not in stdout + stderr
    assert after == before
    assert emulator.control.runners() == []
