# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""What a runner instance gets: proxies, docker settings, aproxy rules, and never the token."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pylxd
import pytest

from github_runner_manager.config import ManagerConfig
from github_runner_manager.github import GhApiClient
from github_runner_manager.lxd import PylxdClient
from github_runner_manager.models import InstanceType
from github_runner_manager.runner import APROXY_RULES, RunnerSpawner
from github_runner_manager.templates import TemplateRenderer

from .conftest import PROJECT, TEST_REPO, TEST_TOKEN, run_in
from .test_manager import LABELS, manager_config, wait_gone, wait_job, wait_online

pytestmark = pytest.mark.lxd

ROOT = Path(__file__).resolve().parents[2]


def write_config(config: ManagerConfig, path: Path) -> Path:
    """Write a configuration file as the charm does: the token in its own root-only file.

    (A dump of the configuration masks an inline token, as it should.)
    """
    if config.github.token is not None:
        token_file = path.parent / "token"
        token_file.write_text(config.github.token.get_secret_value())
        token_file.chmod(0o600)
        github = config.github.model_copy(update={"token": None, "token_file": token_file})
        config = config.model_copy(update={"github": github})
    path.write_text(json.dumps(config.model_dump(mode="json", exclude_none=True)))
    return path


def run_cli(config_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the manager exactly as the charm's timer and actions do."""
    return subprocess.run(
        [sys.executable, "-m", "github_runner_manager", "--config", str(config_file), *args],
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def instance_files_with(instance: Any, needle: str) -> str:
    """Every file inside an instance holding a string (binary files included), one per line."""
    result = run_in(
        instance,
        [
            "grep",
            "-r",
            "-l",
            "-a",
            "-F",
            "--exclude-dir=proc",
            "--exclude-dir=sys",
            "--exclude-dir=dev",
            "--exclude-dir=run",
            needle,
            "/",
        ],
    )
    return result.stdout.strip()


def test_the_token_is_nowhere(emulator, tmp_path, lxd_client: pylxd.Client):
    """The token is nowhere but its file: not in runners, outputs or files.

    arrange: the token in a token file, metrics, crash and job logs on.
    act: reconcile, run a job that looks for the token in its environment, reconcile, check, flush,
        all through the command line.
    assert: the runner's files do not hold the token and the job did not see it; no command's
        output and no file but the token file holds it; a metrics log was written.
    """
    (tmp_path / "token").write_text(TEST_TOKEN + "\n")
    config = manager_config(emulator, tmp_path / "state", containers=1)
    config = config.model_copy(
        update={
            "github": config.github.model_copy(
                update={"token": None, "token_file": tmp_path / "token"}
            ),
            "metrics": config.metrics.model_copy(
                update={"enabled": True, "log_path": tmp_path / "metrics.log"}
            ),
            "crash_log_dir": tmp_path / "crashed",
            "job_log_dir": tmp_path / "jobs",
        }
    )
    config_file = write_config(config, tmp_path / "config.json")
    outputs = []
    try:
        first = run_cli(config_file, "reconcile")
        outputs.append(first)
        assert first.returncode == 0, first.stderr
        runner = json.loads(first.stdout)["created"][0]
        wait_online(emulator, 1)
        instance = lxd_client.instances.get(runner)

        assert instance_files_with(instance, TEST_TOKEN) == ""

        # The job looks for the token in its own environment (without holding it in full).
        probe = "if env | grep -q ghp_functionalTestToken; then exit 3; fi"
        job = emulator.control.queue_job(TEST_REPO, LABELS, probe)
        assert wait_job(emulator, job["id"], "completed")["conclusion"] == "success"
        wait_gone(lxd_client, runner)
        outputs.append(run_cli(config_file, "reconcile"))
        outputs.append(run_cli(config_file, "check"))
    finally:
        outputs.append(run_cli(config_file, "flush", "--busy", "--no-reconcile"))

    for completed in outputs:
        assert TEST_TOKEN not in completed.stdout
        assert TEST_TOKEN not in completed.stderr
    leaks = [
        str(path)
        for path in tmp_path.rglob("*")
        if path.is_file() and path.name != "token" and TEST_TOKEN.encode() in path.read_bytes()
    ]
    assert leaks == []
    assert (tmp_path / "metrics.log").read_text(), "the test looked at a real metrics log"


def test_proxy_and_mirror_reach_the_runner(emulator, tmp_path, lxd_client: pylxd.Client):
    """The model proxy and the Docker Hub mirror reach the runner.

    arrange: a proxy on loopback and a Docker Hub mirror in the manager's config.
    act: reconcile one runner through the command line and read its files.
    assert: /etc/environment holds the proxy; the runner's .env has NO_PROXY and the mirror;
        Docker's daemon and client configs hold the mirror and the proxy, the client's owned by
        ubuntu.
    """
    config = manager_config(emulator, tmp_path / "state", containers=1)
    config = config.model_copy(
        update={
            # Never contacted: loopback targets bypass the proxy through no_proxy.
            "proxy": config.proxy.model_copy(
                update={"http": "http://127.0.0.1:3128", "https": "http://127.0.0.1:3128"}
            ),
            "dockerhub_mirror": "https://mirror.example.invalid",
        }
    )
    config_file = write_config(config, tmp_path / "config.json")
    try:
        result = run_cli(config_file, "reconcile")
        assert result.returncode == 0, result.stderr
        runner = json.loads(result.stdout)["created"][0]
        wait_online(emulator, 1)
        instance = lxd_client.instances.get(runner)

        def read(path: str) -> str:
            return str(run_in(instance, ["cat", path]).stdout)

        environment = read("/etc/environment")
        runner_env = read("/home/ubuntu/actions-runner/.env")
        daemon = json.loads(read("/etc/docker/daemon.json"))
        client = json.loads(read("/home/ubuntu/.docker/config.json"))
        owner = run_in(instance, ["stat", "-c", "%U", "/home/ubuntu/.docker/config.json"]).stdout
    finally:
        run_cli(config_file, "flush", "--busy", "--no-reconcile")

    assert 'https_proxy="http://127.0.0.1:3128"' in environment
    assert "NO_PROXY=localhost,127.0.0.1,::1" in runner_env
    assert "DOCKERHUB_MIRROR=https://mirror.example.invalid" in runner_env
    assert daemon == {"registry-mirrors": ["https://mirror.example.invalid"]}
    assert client["proxies"]["default"]["httpsProxy"] == "http://127.0.0.1:3128"
    assert owner.strip() == "ubuntu"


def test_aproxy_rules_are_valid_nftables(emulator, tmp_path):
    """The aproxy rules are valid nftables.

    arrange: aproxy on.
    act: render the runner's files.
    assert: nft -c accepts the rules.
    """
    nft = shutil.which("nft")
    assert nft, "nftables is missing: the test bed installs it"
    config = manager_config(emulator, tmp_path / "state", containers=1)
    config = config.model_copy(
        update={
            "proxy": config.proxy.model_copy(
                update={"http": "http://10.0.0.5:3128", "aproxy": True}
            )
        }
    )
    spawner = RunnerSpawner(
        config,
        PylxdClient(project=PROJECT),
        GhApiClient(config.github.github_path, TEST_TOKEN, emulator.api_url),
        TemplateRenderer(config.templates),
        runner_tarball=b"",
    )
    rules = spawner.render_files("functional-0-0123456789ab", InstanceType.CONTAINER, ["x"])[
        APROXY_RULES
    ][0]
    (tmp_path / "aproxy.nft").write_bytes(rules)

    check = subprocess.run(
        [nft, "-c", "-f", str(tmp_path / "aproxy.nft")], capture_output=True, text=True, timeout=30
    )

    assert check.returncode == 0, check.stderr


def test_tmate_server_reaches_new_runners_and_leaves_with_the_relation(
    emulator, tmp_path, lxd_client: pylxd.Client
):
    """A tmate server reaches new runners and leaves with the relation.

    arrange: a tmate server (debug-ssh).
    act: spawn; then drop it and reconcile.
    assert: the runner has the TMATE_* variables; its replacement has none.
    """
    config = manager_config(emulator, tmp_path / "state", containers=1)
    tmate = {
        "host": "10.20.30.40",
        "port": 10022,
        "rsa_fingerprint": "SHA256:rsa-fingerprint",
        "ed25519_fingerprint": "SHA256:ed25519-fingerprint",
    }
    with_tmate = write_config(
        ManagerConfig.model_validate({**config.model_dump(), "ssh_debug": [tmate]}),
        tmp_path / "with-tmate.json",
    )
    without = write_config(config, tmp_path / "without-tmate.json")
    try:
        created = json.loads(run_cli(with_tmate, "reconcile").stdout)["created"]
        wait_online(emulator, 1)
        instance = lxd_client.instances.get(created[0])
        environment = str(run_in(instance, ["cat", "/etc/environment"]).stdout)
        runner_env = str(run_in(instance, ["cat", "/home/ubuntu/actions-runner/.env"]).stdout)

        report = json.loads(run_cli(without, "reconcile").stdout)
        wait_online(emulator, 1)
        replacement = lxd_client.instances.get(report["created"][0])
        after = str(run_in(replacement, ["cat", "/etc/environment"]).stdout)
    finally:
        run_cli(without, "flush", "--busy", "--no-reconcile")

    assert 'TMATE_SERVER_HOST="10.20.30.40"' in environment
    assert "TMATE_SERVER_ED25519_FINGERPRINT=SHA256:ed25519-fingerprint" in runner_env
    assert [(r["name"], r["reason"]) for r in report["removed"]] == [(created[0], "stale-config")]
    assert "TMATE" not in after
