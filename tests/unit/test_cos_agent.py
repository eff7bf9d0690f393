# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""The cos-agent databag the charm publishes (ops.testing, host and manager faked)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pydantic
import pytest
from cosl import DashboardPath40UID, JujuTopology, LZMABase64
from ops import testing

import charm
from charm_state import exporter_port
from cos_agent import DATABAG_KEY, LOG_FILES, load_dashboards, scrape_jobs

from .charm_fakes import FakeHost, FakeManagerService, charm_context, use_fake_host

ROOT = Path(__file__).resolve().parents[2]
VALID = {"path": "test-owner/test-repo", "token": "ghp_cosAgentUnitTestToken00000000000000"}


@pytest.fixture
def ctx(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> testing.Context:
    fake_host, fake_manager = FakeHost(), FakeManagerService()
    use_fake_host(monkeypatch, fake_host)
    monkeypatch.setattr(charm.service, "ManagerService", lambda paths, charm_dir: fake_manager)
    return charm_context(tmp_path)


@pytest.fixture
def other_app_ctx(ctx: testing.Context, tmp_path: Path) -> testing.Context:
    """The charm deployed a second time, as `github-runner-large`, with the same fakes."""
    root = tmp_path / "github-runner-large"
    root.mkdir()
    return charm_context(root, app_name="github-runner-large")


def published(ctx: testing.Context, config: dict[str, Any]) -> dict[str, Any]:
    relation = testing.Relation("cos-agent", remote_app_name="opentelemetry-collector")
    out = ctx.run(
        ctx.on.relation_changed(relation),
        testing.State(
            config=config,
            relations={relation},
            model=testing.Model(name="runners", uuid="1a2b3c4d-0000-4000-8000-000000000000"),
        ),
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
    """The cos-agent databag carries the dashboards, alert rules, scrape job and log files.

    arrange: a cos-agent relation.
    act: relation-changed.
    assert: the whole databag: both dashboards, alert rules labelled with the topology, the unit's
        scrape job, no log slots and the declared log files.
    """
    document = published(ctx, VALID)

    assert set(document) == {
        "metrics_alert_rules",
        "log_alert_rules",
        "dashboards",
        "metrics_scrape_jobs",
        "log_slots",
        "include_log_files",
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
    topology = JujuTopology(
        model="runners",
        model_uuid="1a2b3c4d-0000-4000-8000-000000000000",
        application="github-runner",
        unit="github-runner/0",
    )
    assert document["metrics_scrape_jobs"] == scrape_jobs(
        exporter_port("github-runner/0"), topology
    )
    assert document["log_slots"] == []
    assert document["include_log_files"] == list(LOG_FILES)


def test_scrape_job_targets_the_loopback_address_under_a_scoped_name(ctx):
    """The scrape job targets 127.0.0.1 under a name scoped to model, application and unit.

    arrange: a cos-agent relation.
    act: relation-changed.
    assert: the job scrapes 127.0.0.1 (where the exporter binds; `localhost` may be ::1) at the
        unit's port, under a name carrying the model, application and unit.
    """
    [job] = published(ctx, VALID)["metrics_scrape_jobs"]

    assert job["job_name"] == "runners_1a2b3c4d_github-runner_0_github_runner_manager"
    assert job["static_configs"] == [
        {"targets": [f"127.0.0.1:{exporter_port('github-runner/0')}"]}
    ]
    assert job["metrics_path"] == "/metrics"


def test_two_applications_on_one_model_get_distinct_job_names():
    """Two applications on one model get distinct scrape job names.

    arrange: units 0 of two applications in one model.
    act: build their scrape jobs.
    assert: the job names differ (the agent would otherwise merge or drop one).
    """
    names = set()
    for app in ("github-runner", "github-runner-large"):
        topology = JujuTopology(
            model="runners",
            model_uuid="1a2b3c4d-0000-4000-8000-000000000000",
            application=app,
            unit=f"{app}/0",
        )
        [job] = scrape_jobs(exporter_port(f"{app}/0"), topology)
        names.add(job["job_name"])

    assert len(names) == 2


def test_metrics_rules_include_the_generic_host_health_group(ctx):
    """The metrics rules include cosl's generic host health group.

    arrange: a relation.
    act: relation-changed.
    assert: as with the cos-agent library, cosl's HostDown and HostMetricsMissing rules come with
        the charm's own, in a group named after the topology, with the topology labels.
    """
    groups = published(ctx, VALID)["metrics_alert_rules"]["groups"]

    generic = [g for g in groups if g["name"].startswith("runners_1a2b3c4d_github_runner")]
    names = {rule["alert"] for group in generic for rule in group["rules"]}
    assert {"HostDown", "HostMetricsMissing"} <= names
    for group in generic:
        for rule in group["rules"]:
            assert rule["labels"]["juju_application"] == "github-runner"


def test_log_files_are_declared_and_exist_where_the_manager_writes():
    """The declared log globs cover the files the manager writes.

    arrange: the declared log globs.
    act: compare with the manager's default paths.
    assert: the metrics log (not its rotations), the crash-log directory and the job logs the
        manager writes are covered.
    """
    from fnmatch import fnmatch

    from github_runner_manager.config import ManagerConfig

    defaults = ManagerConfig.model_fields
    metrics_log = str(defaults["metrics"].default.log_path)
    crash_dir = str(defaults["crash_log_dir"].default)
    assert metrics_log in LOG_FILES
    assert any(fnmatch(f"{crash_dir}/runner-1/_diag/Runner_1.log", glob) for glob in LOG_FILES)
    assert any(fnmatch(f"{crash_dir}/runner-1/journal.log", glob) for glob in LOG_FILES)
    assert not any(fnmatch(f"{metrics_log}.1", glob) for glob in LOG_FILES)
    job_dir = str(defaults["job_log_dir"].default)
    job_file = f"{job_dir}/20260101T000000-000000-runner-1.log"
    assert any(fnmatch(job_file, glob) for glob in LOG_FILES)


def test_databag_is_published_with_an_invalid_config(ctx):
    """The dashboards are published even with an invalid config.

    arrange: no path or token.
    act: relation-changed.
    assert: both dashboards still published.
    """
    document = published(ctx, {})

    assert len(document["dashboards"]) == 2


def test_dashboards_round_trip_with_the_charm_identity():
    """The published dashboards equal the files but for the charm's uid and tag.

    arrange: the dashboard files.
    act: load them as the charm publishes them.
    assert: identical to the files but for the library's uid (from the charm name and the file's
        path) and an added `charm: github-runner` tag.
    """
    compressed = load_dashboards(ROOT, "github-runner")
    originals = sorted((ROOT / "grafana_dashboards").glob("*.json"))

    assert len(compressed) == len(originals) == 2
    uids = set()
    for published_one, path in zip(compressed, originals, strict=True):
        dashboard = json.loads(LZMABase64.decompress(published_one))
        original = json.loads(path.read_text())
        expected_uid = DashboardPath40UID.generate(
            "github-runner", f"grafana_dashboards/{path.name}"
        )
        assert dashboard["uid"] == expected_uid
        assert DashboardPath40UID.is_valid(dashboard["uid"])
        assert dashboard["tags"] == [*original.get("tags", []), "charm: github-runner"]
        rest = {k: v for k, v in dashboard.items() if k not in ("uid", "tags")}
        assert rest == {k: v for k, v in original.items() if k not in ("uid", "tags")}
        uids.add(dashboard["uid"])
    assert len(uids) == 2


def test_two_applications_share_dashboards_but_not_scrape_jobs(ctx, other_app_ctx):
    """Two applications share dashboard uids but not scrape job names.

    arrange: two applications of the charm on one model.
    act: publish from both.
    assert: the same dashboard uids (COS keys dashboards by uid: the copies collapse into one), but
        distinct scrape job names (the agent would otherwise merge or drop one job).
    """
    first = published(ctx, VALID)
    second = published(other_app_ctx, VALID)

    assert [json.loads(LZMABase64.decompress(d))["uid"] for d in first["dashboards"]] == [
        json.loads(LZMABase64.decompress(d))["uid"] for d in second["dashboards"]
    ]
    [job_1] = first["metrics_scrape_jobs"]
    [job_2] = second["metrics_scrape_jobs"]
    assert job_1["job_name"] != job_2["job_name"]
    assert job_2["job_name"] == "runners_1a2b3c4d_github-runner-large_0_github_runner_manager"


class LibraryUnitData(pydantic.BaseModel):
    """The fields and types of the cos-agent library's provider unit databag.

    `CosAgentProviderUnitData` of charms.grafana_agent.v0.cos_agent (LIBPATCH 23), restated here
    to check the document.
    """

    model_config = pydantic.ConfigDict(extra="forbid")

    metrics_alert_rules: dict
    log_alert_rules: dict
    dashboards: list[str]
    subordinate: bool | None = None
    metrics_scrape_jobs: list[dict]
    log_slots: list[str]
    include_log_files: list[str] | None = None
    tracing_protocols: list[str] | None = None


def test_document_has_the_library_fields_and_types(ctx):
    """The published document matches the library's unit databag model.

    arrange: a relation.
    act: relation-changed.
    assert: the document validates against the library's unit databag fields, with none extra; a
        wrong type is refused.
    """
    document = published(ctx, VALID)

    data = LibraryUnitData.model_validate(document)

    assert data.include_log_files == list(LOG_FILES)
    with pytest.raises(pydantic.ValidationError):
        LibraryUnitData.model_validate({**document, "dashboards": "not a list"})
