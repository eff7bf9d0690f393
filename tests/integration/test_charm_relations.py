# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""The charm's relations on a real controller: cos-agent and debug-ssh.

cos-agent brings metrics, logs, dashboards and alert rules to an agent (grafana-agent or
opentelemetry-collector); debug-ssh brings a tmate server to the runners.

One deployment serves the module; the related charms come from Charmhub.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from cosl import LZMABase64

from .conftest import Options
from .github_api import GitHubRepo
from .helpers import (
    check_runners,
    juju,
    online_runners,
    relation_data,
    run_action,
    runner_instances,
    unit_exec,
    wait_for_runners,
)

ROOT = Path(__file__).resolve().parents[2]
TMATE = "tmate-ssh-server"
TMATE_CHANNEL = "latest/edge"
METRICS_LOG = "/var/log/github-runner-metrics.log"
JOB_TIMEOUT = 30 * 60
TMATE_KEYS = ("host", "port", "rsa_fingerprint", "ed25519_fingerprint")


def _unit(app: str) -> str:
    return f"{app}/0"


def _alert_names(directory: Path) -> set[str]:
    names: set[str] = set()
    for path in directory.glob("*.rules"):
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            names.update(rule["alert"] for rule in group["rules"])
    return names


def _rule_names(document: dict[str, Any]) -> set[str]:
    return {rule["alert"] for group in document.get("groups", []) for rule in group["rules"]}


async def _wait_for_data(
    ops_test: Any, unit: str, endpoint: str, remote: str, keys: tuple[str, ...], timeout: float
) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    data: dict[str, str] = {}
    while time.monotonic() < deadline:
        data = await relation_data(ops_test, unit, endpoint, remote)
        if all(data.get(key) for key in keys):
            return data
        await asyncio.sleep(15)
    raise AssertionError(f"{unit} never saw {keys} from {remote} on {endpoint}: {data}")


async def _metric_events(ops_test: Any, unit: str) -> list[dict[str, Any]]:
    _, text = await unit_exec(ops_test, unit, f"cat {METRICS_LOG} 2>/dev/null || true")
    return [json.loads(line) for line in text.splitlines() if line.strip().startswith("{")]


async def _wait_for_events(
    ops_test: Any, unit: str, wanted: Callable[[list[dict[str, Any]]], bool], timeout: float
) -> list[dict[str, Any]]:
    """Reconcile until the metrics log holds what `wanted` looks for.

    Events are written by reconciliations: runner_installed by the first one that sees the
    runner online, runner_start and runner_stop by the first one after the runner is gone.
    """
    deadline = time.monotonic() + timeout
    events: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        events = await _metric_events(ops_test, unit)
        if wanted(events):
            return events
        await run_action(ops_test, unit, "reconcile-runners")
        await asyncio.sleep(15)
    raise AssertionError(f"the metrics log of {unit} never had the events wanted: {events}")


@pytest.fixture(scope="module")
async def cos_agent(ops_test: Any, app: str, options: Options) -> str:
    """The cos-agent requirer (a subordinate) related to the charm."""
    agent = options.cos_agent_charm
    await juju(
        ops_test,
        "deploy",
        agent,
        "--channel",
        options.cos_agent_channel,
        "--base",
        options.base,
    )
    await juju(ops_test, "integrate", f"{app}:cos-agent", f"{agent}:cos-agent")
    # The agent stays blocked without a COS to send to: only wait for the hooks to settle.
    await ops_test.model.wait_for_idle(apps=[app, agent], timeout=30 * 60, idle_period=60)
    return agent


async def test_cos_agent_receives_dashboards_alerts_and_the_scrape_job(
    ops_test: Any, app: str, cos_agent: str
):
    """The agent's side of the cos-agent relation holds the charm's whole document.

    arrange: the charm related to a cos-agent charm.
    act: wait for the relation's config data on the agent's side.
    assert: it holds every dashboard, every Prometheus alert rule (plus cosl's host-health rules),
        every Loki rule, and one scrape job for the unit's manager on 127.0.0.1.
    """
    agent_unit = ops_test.model.applications[cos_agent].units[0].name

    data = await _wait_for_data(ops_test, agent_unit, "cos-agent", _unit(app), ("config",), 900)

    document = json.loads(data["config"])
    dashboards = [json.loads(LZMABase64.decompress(item)) for item in document["dashboards"]]
    expected = sorted(
        json.loads(path.read_text(encoding="utf-8"))["title"]
        for path in (ROOT / "grafana_dashboards").glob("*.json")
    )
    assert sorted(dashboard["title"] for dashboard in dashboards) == expected
    # The cos-agent library adds cosl's generic host-health rules; so does the charm.
    assert _rule_names(document["metrics_alert_rules"]) == _alert_names(
        ROOT / "prometheus_alert_rules"
    ) | {"HostDown", "HostMetricsMissing"}
    assert _rule_names(document["log_alert_rules"]) == _alert_names(ROOT / "loki_alert_rules")
    [job] = document["metrics_scrape_jobs"]
    [target] = job["static_configs"][0]["targets"]
    assert target.startswith("127.0.0.1:"), target
    assert job["job_name"].endswith(f"_{app}_0_github_runner_manager"), job


async def test_prometheus_endpoint_answers_on_loopback_only(
    ops_test: Any, app: str, cos_agent: str
):
    """The scrape target serves the runner gauges, bound to 127.0.0.1 alone.

    arrange: the charm related to a cos-agent charm; the port taken from its scrape job.
    act: fetch /metrics on the unit and list the sockets listening on that port.
    assert: the metrics hold github_runner_runners, and the only listening address is 127.0.0.1.
    """
    unit = _unit(app)
    agent_unit = ops_test.model.applications[cos_agent].units[0].name
    data = await relation_data(ops_test, agent_unit, "cos-agent", unit)
    target = json.loads(data["config"])["metrics_scrape_jobs"][0]["static_configs"][0]["targets"][
        0
    ]
    port = int(target.rsplit(":", 1)[1])

    _, metrics = await unit_exec(ops_test, unit, f"curl -sf http://127.0.0.1:{port}/metrics")
    _, listening = await unit_exec(ops_test, unit, f"ss -Hltn 'sport = :{port}'")

    assert "github_runner_runners" in metrics
    addresses = {line.split()[3].rsplit(":", 1)[0] for line in listening.splitlines() if line}
    assert addresses == {"127.0.0.1"}, listening


async def test_metric_events_are_logged_once_cos_is_related(
    ops_test: Any, app: str, cos_agent: str
):
    """With COS related, a new runner and each reconciliation are logged as metric events.

    arrange: the charm related to a cos-agent charm.
    act: reconcile, which replaces the idle runner, and wait for the new runner's installed event.
    assert: a runner_installed event names the new runner, a reconciliation event is logged, and
        every event carries the application as its flavor.
    """
    unit = _unit(app)
    # Relating COS changes the runners' configuration: the idle runner is replaced.
    await run_action(ops_test, unit, "reconcile-runners")
    [runner] = await wait_for_runners(ops_test, unit, online=1)

    events = await _wait_for_events(
        ops_test,
        unit,
        lambda events: any(
            event["event"] == "runner_installed" and event["runner"] == runner for event in events
        ),
        10 * 60,
    )

    assert any(event["event"] == "reconciliation" for event in events)
    assert {event["flavor"] for event in events} == {app}


async def test_job_metrics(
    ops_test: Any, app: str, cos_agent: str, github_repo: GitHubRepo | None
):
    """A job's runner_start and runner_stop events name its runner.

    arrange: the charm related to a cos-agent charm, on a repository (skipped for an organisation).
    act: dispatch a job, wait for it to succeed, and wait for the events of its runner.
    assert: runner_start and runner_stop name the runner, the stop event carries the job's success,
        and a new runner comes online.
    """
    if github_repo is None:
        pytest.skip("--path is an organisation: dispatching a workflow needs a repository")
    unit = _unit(app)
    run_id = github_repo.dispatch(app)
    job = github_repo.wait_for_job(run_id, {"completed"}, JOB_TIMEOUT)
    assert job.conclusion == "success", job

    events = await _wait_for_events(
        ops_test,
        unit,
        lambda events: (
            {"runner_start", "runner_stop"}
            <= {event["event"] for event in events if event.get("runner") == job.runner_name}
        ),
        15 * 60,
    )

    mine = {event["event"]: event for event in events if event.get("runner") == job.runner_name}
    assert mine["runner_stop"]["job_conclusion"] == "success", mine["runner_stop"]
    await wait_for_runners(ops_test, unit, online=1, exclude=(str(job.runner_name),))


@pytest.fixture(scope="module")
async def tmate(ops_test: Any, app: str, options: Options) -> dict[str, str]:
    """tmate-ssh-server related over debug-ssh; returns what it published to the charm."""
    await juju(ops_test, "deploy", TMATE, "--channel", TMATE_CHANNEL, "--base", options.base)
    await juju(ops_test, "integrate", f"{app}:debug-ssh", f"{TMATE}:debug-ssh")
    await ops_test.model.wait_for_idle(apps=[TMATE], status="active", timeout=30 * 60)
    tmate_unit = ops_test.model.applications[TMATE].units[0].name
    return await _wait_for_data(ops_test, _unit(app), "debug-ssh", tmate_unit, TMATE_KEYS, 900)


async def test_tmate_server_reaches_new_runners(ops_test: Any, app: str, tmate: dict[str, str]):
    """The tmate relation replaces the idle runner by one whose environment names the tmate server.

    arrange: the charm related to a tmate-ssh-server charm.
    act: read /etc/environment of the online runners, reconciling until one has the settings or
        time runs out.
    assert: a runner's TMATE_ variables equal the relation's host, port and fingerprints.
    """
    unit = _unit(app)
    expected = {
        "TMATE_SERVER_HOST": tmate["host"],
        "TMATE_SERVER_PORT": tmate["port"],
        "TMATE_SERVER_RSA_FINGERPRINT": tmate["rsa_fingerprint"],
        "TMATE_SERVER_ED25519_FINGERPRINT": tmate["ed25519_fingerprint"],
    }
    deadline = time.monotonic() + JOB_TIMEOUT
    found: dict[str, str] = {}
    while time.monotonic() < deadline:
        names = online_runners(await check_runners(ops_test, unit))
        running = {instance["name"] for instance in await runner_instances(ops_test, unit)}
        for name in set(names) & running:
            _, text = await unit_exec(
                ops_test, unit, f"lxc exec {name} -- cat /etc/environment", check=False
            )
            found = {
                key: value.strip().strip('"')
                for key, _, value in (line.partition("=") for line in text.splitlines())
                if key.startswith("TMATE_")
            }
            if found == expected:
                return
        await run_action(ops_test, unit, "reconcile-runners")
        await asyncio.sleep(30)
    raise AssertionError(f"no runner of {unit} got the tmate server {expected}; last: {found}")


async def test_job_sees_the_tmate_server(
    ops_test: Any, app: str, tmate: dict[str, str], github_repo: GitHubRepo | None
):
    """A job's log shows the tmate server from the relation.

    arrange: the charm related to a tmate-ssh-server charm, on a repository (skipped for an
        organisation).
    act: dispatch a job and wait for it to complete.
    assert: it succeeds and its log names the tmate server's host and port.
    """
    if github_repo is None:
        pytest.skip("--path is an organisation: dispatching a workflow needs a repository")

    run_id = github_repo.dispatch(app)

    job = github_repo.wait_for_job(run_id, {"completed"}, JOB_TIMEOUT)
    assert job.conclusion == "success", job
    assert f"tmate server: {tmate['host']}:{tmate['port']}" in github_repo.job_log(job.id)
