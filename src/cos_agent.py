# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""The provider side of the `cos_agent` interface, on top of cosl.

The Charmhub library for this interface (`charms.grafana_agent.v0.cos_agent`) cannot be fetched
here, so the charm writes the unit databag itself, the way the library's `COSAgentProvider`
does. Its key `config` holds one JSON document:

- `metrics_alert_rules`: the Prometheus rule groups plus cosl's generic host-health group
  (`HostDown`, `HostMetricsMissing`), as the library adds, with the Juju topology added by cosl;
- `log_alert_rules`: the Loki rule groups, with the Juju topology;
- `dashboards`: the Grafana dashboards, each with the library's identity (a `uid` derived from
  the charm name and the dashboard's path, and a `charm: <name>` tag, so COS de-duplicates the
  copies every unit sends), compressed with `cosl.LZMABase64`;
- `metrics_scrape_jobs`: the scrape configuration of the unit's loopback endpoint, its job name
  scoped to the model, application and unit;
- `log_slots`: snap log slots (none);
- `include_log_files`: the log files the agent ships to Loki (the metrics log, the crashed
  runners' logs and every job's runner logs), rather than its default `/var/log/**` glob.

docs/observability.md lists where this differs from the library, and why.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import ops
from cosl import DashboardPath40UID, JujuTopology, LZMABase64
from cosl.rules import AlertRules, generic_alert_groups

from charm_state import COS_AGENT_RELATION
from github_runner_manager import ManagerConfig, MetricsSettings

logger = logging.getLogger(__name__)

DATABAG_KEY = "config"
SCRAPE_JOB = "github_runner_manager"
# The files the runner manager writes for Loki, where its configuration puts them by default (the
# charm keeps the defaults); globs as the agents read them: `**` crosses directories. The metrics
# log is rotated by renaming it to `.1`, which no pattern here matches, so each line is shipped
# once.
LOG_FILES = (
    str(MetricsSettings.model_fields["log_path"].default),
    f"{ManagerConfig.model_fields['crash_log_dir'].default}/**/*.log",
    f"{ManagerConfig.model_fields['job_log_dir'].default}/*.log",
)


def dashboard_identity(dashboard: dict[str, Any], charm_name: str, rel_path: str) -> None:
    """Give a dashboard the charm's identity, as the cos-agent library does.

    The uid is derived from the charm name and the dashboard's path in the charm, so every unit
    and every application of the charm sends the same uid and COS keeps one copy; the
    `charm: <name>` tag lets an operator find the charm's dashboards.

    Args:
        dashboard: the dashboard, changed in place.
        charm_name: the charm's name in its metadata.
        rel_path: the dashboard file's path relative to the charm directory.
    """
    dashboard["uid"] = DashboardPath40UID.generate(charm_name, rel_path)
    tags = list(dashboard.get("tags") or [])
    if not any(str(tag).startswith("charm: ") for tag in tags):
        tags.append(f"charm: {charm_name}")
    dashboard["tags"] = tags


def load_dashboards(
    root: Path, charm_name: str, directory: str = "grafana_dashboards"
) -> list[str]:
    """Read the Grafana dashboards of a directory, give them the charm's identity, compress them.

    Args:
        root: the charm directory.
        charm_name: the charm's name in its metadata.
        directory: the dashboards' directory, relative to `root`.

    Returns:
        The compressed dashboards, in file name order.
    """
    dashboards = []
    for path in sorted((root / directory).glob("*.json")):
        dashboard = json.loads(path.read_text(encoding="utf-8"))  # a broken one fails here
        dashboard_identity(dashboard, charm_name, str(path.relative_to(root)))
        dashboards.append(LZMABase64.compress(json.dumps(dashboard)))
    return dashboards


def load_rules(directory: Path, query_type: str, topology: JujuTopology) -> dict[str, Any]:
    """Read the alert rules of a directory, adding the Juju topology.

    Args:
        directory: holds `*.rules` / `*.yaml` rule files.
        query_type: `promql` or `logql`.
        topology: the unit's Juju topology.

    Returns:
        The rules as one rule-file document (`{"groups": [...]}`), or `{}`.
    """
    rules = AlertRules(query_type=query_type, topology=topology)  # type: ignore[arg-type]  # cosl wants a Literal; callers pass "promql" or "logql"
    rules.add_path(directory, recursive=True)
    if query_type == "promql":
        # The library adds the generic host-health group to every charm's metrics rules.
        rules.add(generic_alert_groups.application_rules, group_name_prefix=topology.identifier)
    return rules.as_dict()


def scrape_job_name(topology: JujuTopology) -> str:
    """The scrape job name of a unit's endpoint: unique per model, application and unit.

    Args:
        topology: the unit's Juju topology.

    Returns:
        For example `my-model_1a2b3c4d_github-runner_0_github_runner_manager`.
    """
    unit_number = (topology.unit or "").rsplit("/", 1)[-1]
    return f"{topology.identifier}_{unit_number}_{SCRAPE_JOB}"


def scrape_jobs(port: int, topology: JujuTopology) -> list[dict[str, Any]]:
    """The scrape configuration of the runner manager's Prometheus endpoint.

    Args:
        port: its loopback port.
        topology: the unit's Juju topology (it names the job).

    Returns:
        One scrape job, aimed at the address the exporter binds (127.0.0.1: `localhost` may
        resolve to ::1, where nothing listens).
    """
    return [
        {
            "job_name": scrape_job_name(topology),
            "metrics_path": "/metrics",
            "static_configs": [{"targets": [f"127.0.0.1:{port}"]}],
        }
    ]


def databag(charm: ops.CharmBase, exporter_port: int, root: Path | None = None) -> dict[str, Any]:
    """Build the document the unit publishes on the cos-agent relation.

    Args:
        charm: the charm.
        exporter_port: the loopback port of the Prometheus endpoint.
        root: the charm directory holding the dashboards and rule directories.

    Returns:
        The document.
    """
    root = root or Path(charm.charm_dir)
    topology = JujuTopology.from_charm(charm)
    return {
        "metrics_alert_rules": load_rules(root / "prometheus_alert_rules", "promql", topology),
        "log_alert_rules": load_rules(root / "loki_alert_rules", "logql", topology),
        "dashboards": load_dashboards(root, charm.meta.name),
        "metrics_scrape_jobs": scrape_jobs(exporter_port, topology),
        "log_slots": [],
        "include_log_files": list(LOG_FILES),
    }


def publish(charm: ops.CharmBase, exporter_port: int) -> bool:
    """Write the document into the unit databag of every cos-agent relation.

    Args:
        charm: the charm.
        exporter_port: the loopback port of the Prometheus endpoint.

    Returns:
        Whether a relation exists (and so metrics are on).
    """
    relations = charm.model.relations.get(COS_AGENT_RELATION, [])
    if not relations:
        return False
    document = json.dumps(databag(charm, exporter_port), sort_keys=True)
    for relation in relations:
        if relation.data[charm.unit].get(DATABAG_KEY) != document:
            relation.data[charm.unit][DATABAG_KEY] = document
    return True
