# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""The provider side of the `cos_agent` interface, on top of cosl.

The Charmhub library for this interface cannot be fetched here, so the charm writes the unit
databag itself. Its key `config` holds one JSON document:

- `metrics_alert_rules` and `log_alert_rules`: rule groups (Prometheus and Loki) with the Juju
  topology labels added by cosl;
- `dashboards`: the Grafana dashboards, each compressed with `cosl.LZMABase64`;
- `metrics_scrape_jobs`: Prometheus scrape configurations of the unit's loopback endpoint;
- `log_slots`: snap log slots (none: the agent tails /var/log, where the metrics log and the
  crashed runners' logs are).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import ops
from cosl import JujuTopology, LZMABase64
from cosl.rules import AlertRules

logger = logging.getLogger(__name__)

RELATION = "cos-agent"
DATABAG_KEY = "config"


def load_dashboards(directory: Path) -> list[str]:
    """Read and compress the Grafana dashboards of a directory.

    Args:
        directory: holds `*.json` dashboards.

    Returns:
        The compressed dashboards, in file name order.
    """
    dashboards = []
    for path in sorted(directory.glob("*.json")):
        raw = path.read_text(encoding="utf-8")
        json.loads(raw)  # a broken dashboard fails here, not in Grafana
        dashboards.append(LZMABase64.compress(raw))
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
    rules = AlertRules(query_type=query_type, topology=topology)  # type: ignore[arg-type]
    rules.add_path(directory, recursive=True)
    return rules.as_dict()


def scrape_jobs(port: int) -> list[dict[str, Any]]:
    """The scrape configuration of the runner manager's Prometheus endpoint.

    Args:
        port: its loopback port.

    Returns:
        One scrape job.
    """
    return [
        {
            "job_name": "github_runner_manager",
            "metrics_path": "/metrics",
            "static_configs": [{"targets": [f"localhost:{port}"]}],
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
        "dashboards": load_dashboards(root / "grafana_dashboards"),
        "metrics_scrape_jobs": scrape_jobs(exporter_port),
        "log_slots": [],
    }


def publish(charm: ops.CharmBase, exporter_port: int) -> bool:
    """Write the document into the unit databag of every cos-agent relation.

    Args:
        charm: the charm.
        exporter_port: the loopback port of the Prometheus endpoint.

    Returns:
        Whether a relation exists (and so metrics are on).
    """
    relations = charm.model.relations.get(RELATION, [])
    if not relations:
        return False
    document = json.dumps(databag(charm, exporter_port), sort_keys=True)
    for relation in relations:
        if relation.data[charm.unit].get(DATABAG_KEY) != document:
            relation.data[charm.unit][DATABAG_KEY] = document
    return True
