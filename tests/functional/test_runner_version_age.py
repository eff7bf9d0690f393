# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""Runner-version age on real LXD and the GitHub API emulator, read through the real exporter.

The emulator announces a newer runner application while one runner is busy: the manager
downloads it, replaces the idle runner and keeps the busy one (it finishes its job first). The
exporter, scraped over HTTP on loopback and read with prometheus_client's own parser, must then
show which version each runner runs, the newest one offered, and since when a newer one has
been available; that date must survive a new manager process on the same state directory.
"""

from __future__ import annotations

import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from github_runner_manager import exporter
from github_runner_manager.cli import build_manager

from .conftest import TEST_REPO
from .test_manager import LABELS, make_manager, manager_config, wait_job, wait_online

pytestmark = pytest.mark.lxd

__all__ = ["make_manager"]  # the fixture, imported for this module's tests

OLD, NEW = "2.330.0", "2.331.0"
Sample = tuple[str, tuple[tuple[str, str], ...]]  # a metric name and its sorted labels


@pytest.fixture
def scrape(tmp_path: Path) -> Iterator[Callable[[Path], dict[Sample, float]]]:
    """Scrape the exporter serving a given report file, as the COS agent would."""
    servers = []

    def _scrape(report_file: Path) -> dict[Sample, float]:
        server = exporter.make_server(report_file, 600, 0)
        servers.append(server)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}/metrics"
        direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with direct.open(url, timeout=10) as response:
            text = response.read().decode()
        server.shutdown()
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    yield _scrape
    for server in servers:
        server.server_close()


def test_version_age_is_exported_and_survives_a_new_manager(
    make_manager, emulator, lxd_client, scrape, tmp_path
):
    """The runner version age is exported and survives a new manager.

    arrange: 2 runners on 2.330.0, one of them busy; then the emulator lists 2.331.0.
    act: reconcile; scrape; reconcile again from a new manager on the same state directory.
    assert: the idle runner is replaced by one on 2.331.0, the busy one stays on 2.330.0, and the
        exporter shows 1 runner per version, 1 outdated, 2.331.0 as the newest, and the time the
        manager first saw it (unchanged by the second manager).
    """
    manager = make_manager(containers=2)
    first = manager.reconcile()
    assert first.ok, first.errors
    wait_online(emulator, 2)
    before = scrape(manager.config.report_file)
    assert before[("github_runner_runners_by_version", (("runner_version", OLD),))] == 2
    assert before[("github_runner_outdated_runners", ())] == 0
    assert before[("github_runner_newer_version_available_seconds", ())] == 0
    assert before[("github_runner_latest_version_info", (("runner_version", OLD),))] == 1

    job = emulator.control.queue_job(TEST_REPO, LABELS, "sleep 120")
    busy = wait_job(emulator, job["id"], "in_progress")["runner_name"]
    emulator.control.settings(runner_version=NEW)
    announced = time.time()

    report = manager.reconcile()
    seen = time.time()

    assert report.ok, report.errors
    assert len(report.created) == 1 and report.created[0] != busy
    assert report.runner_versions == {OLD: 1, NEW: 1}
    assert report.newer_version_since is not None
    assert announced <= report.newer_version_since <= seen
    values = scrape(manager.config.report_file)
    assert values[("github_runner_info", (("runner_version", NEW),))] == 1
    assert values[("github_runner_latest_version_info", (("runner_version", NEW),))] == 1
    assert values[("github_runner_runners_by_version", (("runner_version", OLD),))] == 1
    assert values[("github_runner_runners_by_version", (("runner_version", NEW),))] == 1
    assert values[("github_runner_outdated_runners", ())] == 1
    since = values[("github_runner_newer_version_first_seen_timestamp_seconds", ())]
    assert since == pytest.approx(report.newer_version_since)
    age = values[("github_runner_newer_version_available_seconds", ())]
    assert 0 <= age <= time.time() - announced + 1

    # A new manager process on the same state directory (the timer starts one per run).
    again = build_manager(manager_config(emulator, manager.config.state_dir)).reconcile()

    assert again.outdated_runners == 1
    assert again.newer_version_since == report.newer_version_since
    assert lxd_client.instances.exists(busy), "the busy runner finishes its job first"
