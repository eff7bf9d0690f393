# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""The cos-agent databag the charm publishes (ops.testing, host and manager faked)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cosl import LZMABase64
from ops import testing

import charm
from charm import GithubRunnerCharm
from charm_state import exporter_port
from cos_agent import DATABAG_KEY, load_dashboards, scrape_jobs

from .charm_fakes import FakeHost, FakeManagerService

ROOT = Path(__file__).resolve().parents[2]
VALID = {"path": "test-owner/test-repo", "token": "ghp_cosAgentUnitTestToken00000000000000"}


@pytest.fixture
def ctx(monkeypatch: pytest.MonkeyPatch) -> testing.Context:
    fake_host, fake_manager = FakeHost(), FakeManagerService()
    monkeypatch.setattr(charm.host, "Host", fake_host.for_app)
    monkeypatch.setattr(charm.service, "ManagerService", lambda paths, charm_dir: fake_manager)
    return testing.Context(GithubRunnerCharm, charm_root=ROOT)


def published(ctx: testing.Context, config: dict[str, Any]) -> dict[str, Any]:
    relation = testing.Relation("cos-agent", remote_app_name="opentelemetry-collector")
    out = ctx.run(
        ctx.on.relation_changed(relation), testing.State(config=config, relations={relation})
    )
    data: dict[str, str] = dict(out.get_relation(relation.id).local_unit_data)
    return json.loads(data[DATABAG_KEY])


def panel_titles(dashboard: dict[str, Any]) -> set[str]:
    titles = set()
    for panel in dashboard.get("panels", []):
        titles.add(panel.get("title", ""))
        titles.update(p.get("title", "") for p in panel.get("panels", []))
    return titles


def test_databag_carries_dashboards_rules_and_scrape_job(ctx):
    """arrange: a cos-agent relation. act: relation-changed. assert: the whole databag."""
    document = published(ctx, VALID)

    assert set(document) == {
        "metrics_alert_rules",
        "log_alert_rules",
        "dashboards",
        "metrics_scrape_jobs",
        "log_slots",
    }
    dashboards = [json.loads(LZMABase64.decompress(d)) for d in document["dashboards"]]
    titles = {d["title"] for d in dashboards}
    assert titles == {
        "GitHub Self-Hosted Runner Metrics",
        "GitHub Self-Hosted Runner Metrics (Long-Term)",
    }
    detailed = next(d for d in dashboards if d["title"] == "GitHub Self-Hosted Runner Metrics")
    assert {"Job Queue Duration (Percentile)", "Completion Status"} <= panel_titles(detailed)
    for kind in ("metrics_alert_rules", "log_alert_rules"):
        groups = document[kind]["groups"]
        assert groups, kind
        for group in groups:
            for rule in group["rules"]:
                assert rule["labels"]["juju_application"] == "github-runner"
                assert rule["labels"]["juju_model"]
    assert document["metrics_scrape_jobs"] == scrape_jobs(exporter_port("github-runner/0"))
    assert document["log_slots"] == []


def test_databag_is_published_with_an_invalid_config(ctx):
    """arrange: no path or token. act: relation-changed. assert: dashboards still published."""
    document = published(ctx, {})

    assert len(document["dashboards"]) == 2


def test_dashboards_round_trip_through_compression():
    """arrange: the dashboard files. act: compress and decompress. assert: identical JSON."""
    compressed = load_dashboards(ROOT / "grafana_dashboards")
    originals = sorted((ROOT / "grafana_dashboards").glob("*.json"))

    assert [json.loads(LZMABase64.decompress(c)) for c in compressed] == [
        json.loads(p.read_text()) for p in originals
    ]
