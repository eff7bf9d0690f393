# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""The Prometheus endpoint rendering the last report."""

from __future__ import annotations

import datetime
import re
import threading
import urllib.error
import urllib.request

import pytest

from github_runner_manager import exporter
from github_runner_manager.report import ErrorEntry, Report

UTC = datetime.timezone.utc
FINISHED = datetime.datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def report(**fields) -> Report:
    base = {
        "command": "reconcile",
        "unit": "github-runner/0",
        "started_at": FINISHED - datetime.timedelta(seconds=3),
        "finished_at": FINISHED,
        "duration": 3.0,
        "desired": {"container": 3, "virtual-machine": 1},
        "counts": {"container": {"idle": 2, "busy": 1}, "virtual-machine": {"booting": 1}},
        "rate_limit_remaining": 4321,
        "runner_version": "2.330.0",
        "github_calls": 2,
    }
    return Report.model_validate({**base, **fields})


def samples(text: str) -> dict[str, float]:
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


def test_render_a_healthy_report():
    """A healthy report renders every gauge with its value.

    arrange: a report.
    act: render 60 s after it.
    assert: every gauge and value, including the report's age and zero for absent states and error
        kinds.
    """
    values = samples(exporter.render(report(), 600, FINISHED.timestamp() + 60))

    assert values["github_runner_report_age_seconds"] == 60
    assert values["github_runner_check_interval_seconds"] == 600
    assert values["github_runner_last_reconcile_success"] == 1
    assert values["github_runner_rate_limit_remaining"] == 4321
    assert values['github_runner_desired_runners{instance_type="container"}'] == 3
    assert values['github_runner_runners{instance_type="container",state="idle"}'] == 2
    assert values['github_runner_runners{instance_type="container",state="busy"}'] == 1
    assert values['github_runner_runners{instance_type="virtual-machine",state="booting"}'] == 1
    assert values['github_runner_runners{instance_type="virtual-machine",state="idle"}'] == 0
    assert values['github_runner_info{runner_version="2.330.0"}'] == 1
    assert values['github_runner_reconcile_errors{kind="token"}'] == 0


def test_render_errors_by_kind():
    """A failed run's errors are counted by kind.

    arrange: a failed run with two runner-creation errors and a token error.
    act: render.
    assert: success is 0 and the errors are counted per kind.
    """
    failed = report(
        ok=False,
        errors=[
            ErrorEntry(kind="runner-create", message="a"),
            ErrorEntry(kind="runner-create", message="b"),
            ErrorEntry(kind="token", message="c"),
        ],
    )

    values = samples(exporter.render(failed, 600, FINISHED.timestamp()))

    assert values["github_runner_last_reconcile_success"] == 0
    assert values['github_runner_reconcile_errors{kind="runner-create"}'] == 2
    assert values['github_runner_reconcile_errors{kind="token"}'] == 1


def test_render_without_a_report():
    """Without a report only the presence and interval gauges are rendered.

    arrange: no report yet.
    act: render.
    assert: only the presence (0) and interval gauges.
    """
    values = samples(exporter.render(None, 300, 0))

    assert values == {
        "github_runner_check_interval_seconds": 300,
        "github_runner_report_present": 0,
    }


def test_server_serves_metrics_on_loopback(tmp_path):
    """The exporter serves /metrics as text on loopback and 404 elsewhere.

    arrange: a report file and the server on a free port.
    act: GET /metrics and another path.
    assert: the text exposition with the runner gauges, and 404 for the other path.
    """
    report().write(tmp_path / "report.json")
    server = exporter.make_server(tmp_path / "report.json", 600, 0, clock=lambda: 0.0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
            body = response.read().decode()
            content_type = response.headers["Content-Type"]
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"{url}/other", timeout=5)
    finally:
        server.shutdown()
        server.server_close()

    assert content_type.startswith("text/plain; version=0.0.4")
    assert "github_runner_runners{" in body
    assert missing.value.code == 404


def test_render_runner_version_age():
    """The runner version gauges show the outdated count and how long a newer version has been out.

    arrange: 2 runners on 2.330.0 and one unknown, 2.331.0 offered since a known time.
    act: render later.
    assert: the versions, the outdated count and the seconds since the newer one appeared, with its
        first-seen timestamp.
    """
    seen = FINISHED.timestamp() - 15 * 86400
    aged = report(
        latest_runner_version="2.331.0",
        runner_versions={"2.330.0": 2, "unknown": 1},
        outdated_runners=2,
        newer_version_since=seen,
    )

    values = samples(exporter.render(aged, 600, FINISHED.timestamp() + 60))

    assert values['github_runner_latest_version_info{runner_version="2.331.0"}'] == 1
    assert values['github_runner_runners_by_version{runner_version="2.330.0"}'] == 2
    assert values['github_runner_runners_by_version{runner_version="unknown"}'] == 1
    assert values["github_runner_outdated_runners"] == 2
    assert values["github_runner_newer_version_available_seconds"] == 15 * 86400 + 60
    assert values["github_runner_newer_version_first_seen_timestamp_seconds"] == seen


def test_render_current_runners_have_no_version_age():
    """Runners on the newest version have no version age.

    arrange: every runner on the newest version.
    act: render.
    assert: no outdated runner, age 0, no first-seen timestamp.
    """
    current = report(
        latest_runner_version="2.330.0", runner_versions={"2.330.0": 3}, outdated_runners=0
    )

    values = samples(exporter.render(current, 600, FINISHED.timestamp()))

    assert values["github_runner_outdated_runners"] == 0
    assert values["github_runner_newer_version_available_seconds"] == 0
    assert "github_runner_newer_version_first_seen_timestamp_seconds" not in values


def test_render_a_run_that_did_not_count_versions():
    """A run that did not count versions renders no version age gauges.

    arrange: a report without version counts (a flush).
    act: render.
    assert: no outdated or by-version gauges.
    """
    values = samples(exporter.render(report(), 600, FINISHED.timestamp()))

    assert not [name for name in values if "outdated" in name or "by_version" in name]


def test_label_values_are_escaped():
    """Label values are escaped so that a sample stays on one line.

    arrange: a version label holding a quote, a backslash and a newline.
    act: render.
    assert: the exposition escapes them, so the line stays one parseable sample.
    """
    odd = report(runner_versions={'a"b\\c\nd': 1}, outdated_runners=0, latest_runner_version="x")

    text = exporter.render(odd, 600, FINISHED.timestamp())

    assert 'github_runner_runners_by_version{runner_version="a\\"b\\\\c\\nd"} 1.0' in text


def scrape(url: str, accept: str | None = None) -> tuple[str, str]:
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with direct.open(request, timeout=5) as response:
        return response.headers["Content-Type"], response.read().decode()


@pytest.fixture
def served(tmp_path):
    """The exporter on a free loopback port, serving a report."""
    report(
        latest_runner_version="2.331.0", runner_versions={"2.330.0": 1}, outdated_runners=1
    ).write(tmp_path / "report.json")
    server = exporter.make_server(tmp_path / "report.json", 600, 0, clock=lambda: 0.0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_server_binds_loopback_only(served):
    """The exporter binds to loopback only by default.

    arrange: the server with its default host.
    act: read its address.
    assert: 127.0.0.1.
    """
    assert served.server_address[0] == "127.0.0.1"


def test_server_negotiates_openmetrics(served):
    """The exporter answers OpenMetrics when the scraper asks for it.

    arrange: the server.
    act: scrape asking for OpenMetrics, as Prometheus does.
    assert: OpenMetrics content type, typed info and gauge families, the `# EOF` terminator.
    """
    url = f"http://127.0.0.1:{served.server_address[1]}/metrics"

    content_type, body = scrape(
        url, "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
    )

    assert content_type.startswith("application/openmetrics-text")
    assert "# TYPE github_runner info" in body
    assert 'github_runner_info{runner_version="2.330.0"} 1.0' in body
    assert "# TYPE github_runner_outdated_runners gauge" in body
    assert body.endswith("# EOF\n")


def test_server_serves_text_format_by_default(served):
    """The exporter serves the text format by default.

    arrange: the server.
    act: scrape without Accept.
    assert: the text format, no EOF.
    """
    url = f"http://127.0.0.1:{served.server_address[1]}/metrics"

    content_type, body = scrape(url)

    assert content_type.startswith("text/plain")
    assert "# TYPE github_runner_info gauge" in body
    assert "# EOF" not in body


def test_exported_names_are_the_dashboards_contract():
    """The exported metric families and labels are exactly those the dashboards rely on.

    arrange: a report with every field set.
    act: render.
    assert: the families and labels are exactly those the dashboards and rules are checked with.
    """
    from tests.unit.test_dashboards import EXPORTER_METRICS

    full = report(
        latest_runner_version="2.331.0",
        runner_versions={"2.330.0": 1},
        outdated_runners=1,
        newer_version_since=0.0,
    )
    found: dict[str, set[str]] = {}
    for line in exporter.render(full, 600, FINISHED.timestamp()).splitlines():
        if line and not line.startswith("#"):
            name, _, rest = line.partition("{")
            name = name.split(" ")[0]
            found.setdefault(name, set()).update(re.findall(r'(\w+)="', rest))

    assert found == EXPORTER_METRICS
