# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""promtool on the Prometheus alert rules and on the dashboards' PromQL.

`promtool check rules` validates the rule file; `promtool test rules` evaluates the alerts on
synthetic series, proving each one fires where it should and stays quiet elsewhere. promtool comes
from Debian's `prometheus` package, which .ci/run installs: without it these tests fail.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "prometheus_alert_rules" / "github_runner.rules"
DASHBOARDS = ROOT / "grafana_dashboards"
MODEL_UUID = "00000000-0000-4000-8000-000000000000"
# Seconds a newer runner version has been offered at the start of the version-outdated case:
# an hour short of the alert's 14 days.
AGE_0 = 14 * 86400 - 3600


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is missing: install Debian's prometheus package", pytrace=False)
    return path


def run_promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args], capture_output=True, text=True, timeout=120, check=False
    )


def unit(number: int, **extra: str) -> dict[str, str]:
    """The labels the scrape gives a series of the exporter on unit `number`."""
    return {
        "juju_model": "ci-model",
        "juju_model_uuid": MODEL_UUID,
        "juju_application": "github-runner",
        "juju_unit": f"github-runner/{number}",
        "job": "github-runner_0_default",
        "instance": f"10.1.0.{number}:9464",
        **extra,
    }


def series(metric: str, labels: dict[str, str], values: str) -> dict[str, str]:
    matchers = ", ".join(f'{key}="{value}"' for key, value in labels.items())
    return {"series": f"{metric}{{{matchers}}}", "values": values}


def rules_by_alert() -> dict[str, dict[str, Any]]:
    content = yaml.safe_load(RULES.read_text())
    return {rule["alert"]: rule for group in content["groups"] for rule in group["rules"]}


def render(template: str, labels: dict[str, str]) -> str:
    """Render an annotation that uses only `{{ $labels.name }}`, as Prometheus would."""
    rendered = re.sub(r"\{\{\s*\$labels\.(\w+)\s*\}\}", lambda m: labels[m.group(1)], template)
    assert "{{" not in rendered, f"unsupported template in {template!r}"
    return rendered


def expect(alert: str, labels: dict[str, str]) -> dict[str, Any]:
    """An expected firing alert: the series labels plus the rule's, with its annotations."""
    rule = rules_by_alert()[alert]
    all_labels = {**labels, **rule["labels"]}
    return {
        "exp_labels": all_labels,
        "exp_annotations": {
            key: render(value, all_labels) for key, value in rule["annotations"].items()
        },
    }


def check(alert: str, at: str, *firing: dict[str, str]) -> dict[str, Any]:
    return {
        "eval_time": at,
        "alertname": alert,
        "exp_alerts": [expect(alert, labels) for labels in firing],
    }


# Each case: the alert it proves, its input series, and its checks over time.
CASES: dict[str, tuple[list[dict[str, str]], list[dict[str, Any]]]] = {
    "stale": (
        [
            # Unit 0 stopped reconciling: its report ages by a minute every minute.
            series("github_runner_report_age_seconds", unit(0), "0+60x60"),
            series("github_runner_check_interval_seconds", unit(0), "600x60"),
            # Unit 1 reports every few minutes.
            series("github_runner_report_age_seconds", unit(1), "120x60"),
            series("github_runner_check_interval_seconds", unit(1), "600x60"),
        ],
        [
            # Past 3 x 600 s at minute 31, firing after 5 more minutes.
            check("GithubRunnerReconciliationStale", "30m"),
            check("GithubRunnerReconciliationStale", "34m"),
            check("GithubRunnerReconciliationStale", "45m", unit(0)),
        ],
    ),
    "failing": (
        [
            series("github_runner_last_reconcile_success", unit(0), "1x5 0x60"),
            series("github_runner_last_reconcile_success", unit(1), "1x65"),
        ],
        [
            check("GithubRunnerReconciliationFailing", "20m"),
            check("GithubRunnerReconciliationFailing", "40m", unit(0)),
        ],
    ),
    "no-idle": (
        [
            # Unit 0: two runners wanted, both busy.
            series(
                "github_runner_desired_runners", unit(0, instance_type="virtual-machine"), "2x30"
            ),
            series(
                "github_runner_runners",
                unit(0, instance_type="virtual-machine", state="idle"),
                "0x30",
            ),
            series(
                "github_runner_runners",
                unit(0, instance_type="virtual-machine", state="busy"),
                "2x30",
            ),
            # Unit 1: one of two idle.
            series(
                "github_runner_desired_runners", unit(1, instance_type="virtual-machine"), "2x30"
            ),
            series(
                "github_runner_runners",
                unit(1, instance_type="virtual-machine", state="idle"),
                "1x30",
            ),
            series(
                "github_runner_runners",
                unit(1, instance_type="virtual-machine", state="busy"),
                "1x30",
            ),
            # Unit 2: no runner wanted.
            series("github_runner_desired_runners", unit(2, instance_type="container"), "0x30"),
            series(
                "github_runner_runners", unit(2, instance_type="container", state="idle"), "0x30"
            ),
            # Unit 3: a runner wanted, no runner series at all.
            series("github_runner_desired_runners", unit(3, instance_type="container"), "1x30"),
        ],
        [
            check("GithubRunnerNoIdleRunners", "10m"),
            check(
                "GithubRunnerNoIdleRunners",
                "20m",
                unit(0, instance_type="virtual-machine"),
                unit(3, instance_type="container"),
            ),
        ],
    ),
    "access-error": (
        [
            series("github_runner_reconcile_errors", unit(0, kind="token"), "0 0 1x20"),
            series("github_runner_reconcile_errors", unit(1, kind="lxd"), "3x22"),
            series("github_runner_reconcile_errors", unit(1, kind="permission"), "0x22"),
        ],
        [
            check("GithubRunnerGitHubAccessError", "5m"),
            check("GithubRunnerGitHubAccessError", "10m", unit(0, kind="token")),
        ],
    ),
    "rate-limit": (
        [
            series("github_runner_rate_limit_remaining", unit(0), "4000-200x18 400x20"),
            series("github_runner_rate_limit_remaining", unit(1), "5000x38"),
        ],
        [
            check("GithubRunnerRateLimitLow", "20m"),
            check("GithubRunnerRateLimitLow", "30m", unit(0)),
        ],
    ),
    "exporter-down": (
        [
            # Unit 0's exporter stops answering at minute 6; unit 1's keeps answering.
            series("up", unit(0), "1x5 0x30"),
            series("github_runner_check_interval_seconds", unit(0), "600x5 stale"),
            series("up", unit(1), "1x35"),
            series("github_runner_check_interval_seconds", unit(1), "600x35"),
            # Another target of unit 0 (not the exporter) is down too: not ours.
            series("up", unit(0, job="node-exporter", instance="10.1.0.0:9100"), "0x35"),
        ],
        [
            check("GithubRunnerExporterDown", "3m"),
            check("GithubRunnerExporterDown", "8m"),
            check("GithubRunnerExporterDown", "20m", unit(0)),
        ],
    ),
    "version-outdated": (
        [
            # Unit 0: a newer runner version has been offered for 14 days less an hour, and two
            # runners stay on the old one (say its download keeps failing).
            series("github_runner_outdated_runners", unit(0), "2x150"),
            series("github_runner_newer_version_available_seconds", unit(0), f"{AGE_0}+60x150"),
            # Unit 1: the same age, but all its runners were replaced.
            series("github_runner_outdated_runners", unit(1), "0x150"),
            series("github_runner_newer_version_available_seconds", unit(1), f"{AGE_0}+60x150"),
            # Unit 2: an outdated runner, the newer version only a day old.
            series("github_runner_outdated_runners", unit(2), "1x150"),
            series("github_runner_newer_version_available_seconds", unit(2), "86400+60x150"),
        ],
        [
            # Past 14 days at minute 61, firing 30 minutes later: on unit 0 only.
            check("GithubRunnerVersionOutdated", "60m"),
            check("GithubRunnerVersionOutdated", "85m"),
            check("GithubRunnerVersionOutdated", "100m", unit(0)),
        ],
    ),
}


def write_tests(tmp_path: Path, cases: dict[str, Any]) -> Path:
    tests = [
        {"interval": "1m", "name": name, "input_series": inputs, "alert_rule_test": checks}
        for name, (inputs, checks) in cases.items()
    ]
    path = tmp_path / "github_runner.test.yml"
    path.write_text(
        yaml.safe_dump(
            {"rule_files": [str(RULES)], "evaluation_interval": "1m", "tests": tests},
            sort_keys=False,
        )
    )
    return path


def test_check_rules():
    """The alert rules pass promtool's check.

    arrange: the charm's alert rules file.
    act: run promtool check rules on it.
    assert: it succeeds and counts every alert rule.
    """
    result = run_promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules_by_alert())} rules found" in result.stdout


def test_every_alert_has_a_unit_test():
    """Every alert rule has at least one promtool test case.

    arrange: the promtool test cases and the alert rules.
    act: collect the alert names the cases check.
    assert: they are exactly the rules' alert names.
    """
    tested = {check["alertname"] for _, checks in CASES.values() for check in checks}
    assert tested == set(rules_by_alert())


def test_alerts_fire_and_stay_quiet(tmp_path):
    """The alerts fire on the bad series and stay quiet on the healthy ones.

    arrange: the promtool test cases written to a file.
    act: run promtool test rules on them.
    assert: promtool reports SUCCESS.
    """
    result = run_promtool("test", "rules", str(write_tests(tmp_path, CASES)))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_a_wrong_expectation_fails(tmp_path):
    """The promtool tests bite: a wrong expectation fails.

    arrange: the stale-report case's inputs, expecting the stale alert on the healthy unit.
    act: run promtool test rules on it.
    assert: promtool exits non-zero and reports FAILED.
    """
    inputs, _ = CASES["stale"]
    wrong = {"stale": (inputs, [check("GithubRunnerReconciliationStale", "45m", unit(1))])}
    result = run_promtool("test", "rules", str(write_tests(tmp_path, wrong)))
    assert result.returncode != 0
    assert "FAILED" in result.stdout + result.stderr


def dashboard_promql() -> list[str]:
    exprs = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        dashboard = json.loads(path.read_text())
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                if target["datasource"]["uid"] == "${prometheusds}":
                    exprs.append(target["expr"])
    return exprs


def test_dashboard_promql_parses(tmp_path):
    """Every Prometheus query of the dashboards parses.

    arrange: every dashboard PromQL expression with Grafana's variables filled in, as recording
        rules.
    act: run promtool check rules on them.
    assert: there is at least one query and promtool accepts them all.
    """
    exprs = dashboard_promql()
    assert exprs
    filled = [
        re.sub(
            r"\$\{?(\w+)\}?",
            lambda m: {"__range": "1h", "__interval": "1m", "__rate_interval": "4m"}.get(
                m.group(1), ".*"
            ),
            expr,
        )
        for expr in exprs
    ]
    rules = {
        "groups": [
            {
                "name": "dashboards",
                "rules": [
                    {"record": f"dashboard:query_{index}:value", "expr": expr}
                    for index, expr in enumerate(filled)
                ],
            }
        ]
    }
    path = tmp_path / "dashboards.rules"
    path.write_text(yaml.safe_dump(rules))
    result = run_promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
