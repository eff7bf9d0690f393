# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""The manager's Prometheus endpoint, run as the charm runs it, scraped by a real Prometheus."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from cosl import JujuTopology

import cos_agent
from github_runner_manager.report import Report

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read().decode()


def wait_for(url: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return get(url)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.fixture
def exporter_url(tmp_path: Path) -> Iterator[str]:
    """The `serve-metrics` command on a free loopback port, with a report in place."""
    report = Report.model_validate(
        {
            "command": "reconcile",
            "unit": "github-runner/0",
            "started_at": "2026-06-01T12:00:00+00:00",
            "finished_at": "2026-06-01T12:00:03+00:00",
            "desired": {"container": 2, "virtual-machine": 0},
            "counts": {"container": {"idle": 2}, "virtual-machine": {}},
            "rate_limit_remaining": 4999,
            "runner_version": "2.330.0",
        }
    )
    report.write(tmp_path / "report.json")
    port = free_port()
    config = {
        "unit": "github-runner/0",
        "name_prefix": "github-runner-0",
        "flavor": "github-runner",
        "github": {"path": "o/r", "token_file": str(tmp_path / "token")},
        "metrics": {"enabled": True, "exporter_port": port, "check_interval": 600},
        "state_dir": str(tmp_path),
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "github_runner_manager",
            "--config",
            str(tmp_path / "config.json"),
            "serve-metrics",
        ],
        env=env,
    )
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        wait_for(url)
        yield url
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0, "SIGTERM stops the endpoint cleanly"


def test_exposition_passes_promtool(exporter_url):
    """The exporter's exposition passes promtool's check.

    arrange: the endpoint.
    act: scrape it.
    assert: `promtool check metrics` accepts it.
    """
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: .ci/run installs Debian's prometheus package"

    body = get(exporter_url)
    check = subprocess.run(
        [promtool, "check", "metrics"], input=body, capture_output=True, text=True, timeout=30
    )

    assert check.returncode == 0, check.stdout + check.stderr
    assert 'github_runner_runners{instance_type="container",state="idle"} 2' in body


def test_prometheus_scrapes_the_endpoint(exporter_url, tmp_path):
    """A real Prometheus scrapes the exporter with the charm's scrape job.

    arrange: a real Prometheus on loopback, given the scrape job the charm publishes.
    act: let it scrape (it asks for OpenMetrics first).
    assert: the idle gauge is 2 and the info metric arrived, under the charm's scoped job name.
    """
    prometheus = shutil.which("prometheus")
    assert prometheus, "prometheus is missing: .ci/run installs Debian's prometheus package"
    port = urllib.parse.urlsplit(exporter_url).port
    assert port is not None
    topology = JujuTopology(
        model="ci-model",
        model_uuid="00000000-0000-4000-8000-000000000000",
        application="github-runner",
        unit="github-runner/0",
    )
    jobs = cos_agent.scrape_jobs(port, topology)
    (tmp_path / "prometheus.yml").write_text(
        yaml.safe_dump(
            {"global": {"scrape_interval": "1s"}, "scrape_configs": jobs}, sort_keys=False
        )
    )
    web = f"127.0.0.1:{free_port()}"
    process = subprocess.Popen(
        [
            prometheus,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address={web}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        query = urllib.parse.quote('github_runner_runners{state="idle",instance_type="container"}')
        deadline = time.monotonic() + 60
        value = None
        while time.monotonic() < deadline and value is None:
            try:
                result = json.loads(get(f"http://{web}/api/v1/query?query={query}"))
                series = result["data"]["result"]
                value = float(series[0]["value"][1]) if series else None
            except OSError:
                pass
            time.sleep(0.5)
        result = json.loads(get(f"http://{web}/api/v1/query?query=github_runner_info"))
        info = result["data"]["result"][0]["metric"] if result["data"]["result"] else None
    finally:
        process.terminate()
        process.wait(timeout=30)

    assert value == 2
    assert info == {
        "__name__": "github_runner_info",
        "instance": f"127.0.0.1:{port}",
        "job": jobs[0]["job_name"],
        "runner_version": "2.330.0",
    }
