# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""The alert rules in loki_alert_rules/ and prometheus_alert_rules/.

The Prometheus expressions are also proven by promtool in tests/functional/test_promtool.py.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from cosl import AlertRules, JujuTopology
from cosl.cos_tool import CosTool

from tests.unit.test_dashboards import (
    EXPORTER_METRICS,
    GROUPING_RE,
    METRIC_NAME_RE,
    STREAM_LABELS,
    check_logql,
    field_exists,
)

ROOT = Path(__file__).resolve().parents[2]
LOKI_RULES = ROOT / "loki_alert_rules"
PROMETHEUS_RULES = ROOT / "prometheus_alert_rules"
TOPOLOGY_LABELS = ("juju_model", "juju_model_uuid", "juju_application")
SEVERITIES = {"critical", "warning", "info"}
LOKI_ALERTS = [
    "GithubRunnerNoRunnerCapacity",
    "GithubRunnerCrashedRunners",
    "GithubRunnerReconciliationErrors",
    "GithubRunnerRateLimitNearlySpent",
]
PROMETHEUS_ALERTS = [
    "GithubRunnerReconciliationStale",
    "GithubRunnerReconciliationFailing",
    "GithubRunnerNoIdleRunners",
    "GithubRunnerGitHubAccessError",
    "GithubRunnerRateLimitLow",
    "GithubRunnerExporterDown",
    "GithubRunnerVersionOutdated",
]
TEMPLATE_LABEL_RE = re.compile(r"\$labels\.(\w+)")


def rule_files(directory: Path) -> list[Path]:
    return sorted(
        p for p in directory.iterdir() if p.suffix in (".rule", ".rules", ".yml", ".yaml")
    )


def rules_of(directory: Path) -> list[dict[str, Any]]:
    found = []
    for path in rule_files(directory):
        content = yaml.safe_load(path.read_text())
        assert isinstance(content, dict) and set(content) == {"groups"}, path
        for group in content["groups"]:
            assert set(group) == {"name", "rules"}, path
            found.extend(group["rules"])
    return found


@pytest.mark.parametrize(
    "directory,alerts",
    [
        pytest.param(LOKI_RULES, LOKI_ALERTS, id="loki"),
        pytest.param(PROMETHEUS_RULES, PROMETHEUS_ALERTS, id="prometheus"),
    ],
)
def test_rule_files_parse_into_complete_alerts(directory, alerts):
    """Each rule directory holds one file of complete alerts.

    arrange: the Loki and the Prometheus rule directories.
    act: parse the rule file of each.
    assert: exactly github_runner.rules, with the expected alerts in order, each with an
        expression, a duration, a known severity, a summary and a description, and no topology
        label of its own.
    """
    assert [p.name for p in directory.iterdir()] == ["github_runner.rules"]
    rules = rules_of(directory)
    assert [rule["alert"] for rule in rules] == alerts
    for rule in rules:
        assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert isinstance(rule["expr"], str) and rule["expr"].strip()
        assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["alert"]
        assert rule["labels"]["severity"] in SEVERITIES, rule["alert"]
        assert rule["annotations"]["summary"].strip(), rule["alert"]
        assert rule["annotations"]["description"].strip(), rule["alert"]
        # cosl adds the Juju topology to the labels; a rule must not pin its own.
        assert not set(rule["labels"]) & set(TOPOLOGY_LABELS), rule["alert"]


def test_alert_names_are_unique_across_backends():
    """No alert name is used twice across Loki and Prometheus.

    arrange: the Loki and the Prometheus rules.
    act: collect their alert names.
    assert: no name repeats.
    """
    names = [rule["alert"] for rule in rules_of(LOKI_RULES) + rules_of(PROMETHEUS_RULES)]
    assert len(names) == len(set(names))


def _groupings(expr: str) -> set[str]:
    return {
        label.strip()
        for grouping in GROUPING_RE.findall(expr)
        for label in grouping.split(",")
        if label.strip()
    }


@pytest.mark.parametrize("rule", rules_of(LOKI_RULES), ids=lambda rule: rule["alert"])
def test_loki_rule_reads_real_event_fields(rule):
    """A Loki rule reads the event log file and the fields its events really have.

    arrange: one Loki rule per case.
    act: parse its LogQL into pipelines and groupings.
    assert: it selects by filename alone with no dashboard variable, keeps the topology and unit
        through its aggregations, and every label its annotations use survives and is a field of an
        event it reads.
    """
    expr = " ".join(rule["expr"].split())
    pipelines = check_logql(expr)
    for pipeline in pipelines:
        # Only the file: cosl and cos-tool add the topology of the application the rules
        # come with, and a ruler knows no dashboard variables.
        assert set(pipeline.matchers) == {"filename"}, expr
        assert "$" not in expr
    # An alert names the unit it is about: every topology label survives the aggregations.
    groupings = _groupings(expr)
    assert groupings >= {*TOPOLOGY_LABELS, "juju_unit"}, expr
    events = [p.event for p in pipelines if p.event]
    for label in TEMPLATE_LABEL_RE.findall(str(rule["annotations"])):
        assert label in groupings, f"{rule['alert']} annotates with {label}, lost by {expr!r}"
        assert any(field_exists(event, label) for event in events)


@pytest.mark.parametrize("rule", rules_of(PROMETHEUS_RULES), ids=lambda rule: rule["alert"])
def test_prometheus_rule_reads_exporter_metrics(rule):
    """A Prometheus rule reads only the exporter's metrics and their labels.

    arrange: one Prometheus rule per case.
    act: collect the metric names of its expression and the labels its annotations use.
    assert: every metric is an exporter metric (or up), every annotation label exists on them, and
        no aggregation drops the topology.
    """
    expr = rule["expr"]
    names = METRIC_NAME_RE.findall(expr)
    assert names or re.search(r"\bup\b", expr), expr
    for metric in names:
        assert metric in EXPORTER_METRICS, f"{metric} is not an exporter metric"
    labels = STREAM_LABELS.union(*(EXPORTER_METRICS[m] for m in names))
    for label in TEMPLATE_LABEL_RE.findall(str(rule["annotations"])):
        assert label in labels, f"{rule['alert']} annotates with unknown label {label}"
    # Aggregations would drop the topology the alert needs.
    assert not _groupings(expr), expr
    assert "$" not in expr.replace("$labels", "")


def test_prometheus_access_error_rule_covers_the_configuration_kinds():
    """The GitHub access-error alert covers the token, permission and path errors as critical.

    arrange: the Prometheus rules.
    act: pick GithubRunnerGitHubAccessError.
    assert: its expression matches the token, permission and path kinds, and its severity is
        critical.
    """
    (rule,) = [
        r for r in rules_of(PROMETHEUS_RULES) if r["alert"] == "GithubRunnerGitHubAccessError"
    ]
    assert 'kind=~"token|permission|path"' in rule["expr"]
    assert rule["labels"]["severity"] == "critical"


@pytest.fixture(name="topology")
def topology_fixture() -> JujuTopology:
    return JujuTopology(
        model="ci-model",
        model_uuid=str(uuid.UUID(int=0x1234, version=4)),
        application="github-runner",
        unit="github-runner/0",
        charm_name="github-runner",
    )


@pytest.mark.parametrize(
    "query_type,directory,alerts",
    [
        pytest.param("logql", LOKI_RULES, LOKI_ALERTS, id="loki"),
        pytest.param("promql", PROMETHEUS_RULES, PROMETHEUS_ALERTS, id="prometheus"),
    ],
)
def test_cosl_loads_the_rules_with_topology(query_type, directory, alerts, topology, monkeypatch):
    """The cos-agent library loads the rule directories and adds the Juju topology.

    arrange: a Juju topology and one rule directory per case, in the repository root where cosl
        looks for cos-tool.
    act: load the directory with cosl's AlertRules.
    assert: the same alerts in order, in groups named after the topology; each rule carries the
        topology labels and keeps its severity; its expression gets the topology with cos-tool and
        is unchanged without.
    """
    monkeypatch.chdir(ROOT)  # where cosl looks for a cos-tool binary
    rules = AlertRules(query_type=query_type, topology=topology)
    rules.add_path(directory, recursive=True)
    loaded = rules.as_dict()

    originals = {rule["alert"]: rule for rule in rules_of(directory)}
    groups = loaded["groups"]
    assert [rule["alert"] for group in groups for rule in group["rules"]] == alerts
    cos_tool = CosTool(default_query_type=query_type).path is not None
    # Group names carry the topology, made a valid metric name.
    prefix = re.sub(r"[^A-Za-z0-9_:]", "_", topology.identifier) + "_"
    for group in groups:
        assert group["name"].startswith(prefix), group["name"]
        assert group["name"].endswith("_rules")
        for rule in group["rules"]:
            for label in TOPOLOGY_LABELS:
                assert rule["labels"][label] == topology.label_matcher_dict[label], rule["alert"]
            assert rule["labels"]["severity"] == originals[rule["alert"]]["labels"]["severity"]
            if cos_tool:
                # With cos-tool at hand, cosl also injects the topology into the expression.
                for label in TOPOLOGY_LABELS:
                    value = topology.label_matcher_dict[label]
                    assert f'{label}="{value}"' in rule["expr"], rule["expr"]
            else:
                assert rule["expr"] == originals[rule["alert"]]["expr"]
