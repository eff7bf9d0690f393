# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""A Prometheus endpoint on loopback serving the state of the last manager run.

The manager itself runs for seconds at a time from a timer, so it cannot be scraped; this small
server reads the last report on every scrape and exposes it through the official Prometheus
client (`prometheus_client`): typed metric families, label escaping, and content negotiation
between the Prometheus text format and OpenMetrics, which Prometheus and the COS agent ask for.
The COS agent scrapes it on 127.0.0.1 and adds the Juju topology labels.
"""

from __future__ import annotations

import logging
import socketserver
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer
from wsgiref.simple_server import make_server as wsgi_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

from .errors import KINDS
from .models import InstanceType, RunnerState
from .report import Report, read_report

logger = logging.getLogger(__name__)

METRICS_PATH = "/metrics"
# One series per kind of the error table, so that a new kind is exported without a change here.
ERROR_KINDS = tuple(KINDS)


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def collect(report: Report | None, check_interval: float, now: float) -> Iterator[Metric]:
    """The metric families of a report.

    Args:
        report: the last report, or None before the first run.
        check_interval: seconds between runs (so alerts can tell a stale report).
        now: the current unix time.

    Yields:
        The metric families.
    """
    yield _gauge(
        "github_runner_check_interval_seconds", "Seconds between reconciliations.", check_interval
    )
    yield _gauge(
        "github_runner_report_present", "1 once the manager wrote a report.", 1 if report else 0
    )
    if report is None:
        return
    finished = (report.finished_at or report.started_at).timestamp()
    yield _gauge(
        "github_runner_last_reconcile_timestamp_seconds", "When the last run ended.", finished
    )
    yield _gauge(
        "github_runner_report_age_seconds",
        "Seconds since the last run ended.",
        max(now - finished, 0.0),
    )
    yield _gauge(
        "github_runner_last_reconcile_success",
        "1 if the last run met no error.",
        1 if report.ok else 0,
    )
    yield _gauge(
        "github_runner_reconcile_duration_seconds", "Seconds the last run took.", report.duration
    )
    yield _gauge(
        "github_runner_github_api_calls", "GitHub requests in the last run.", report.github_calls
    )
    if report.rate_limit_remaining is not None:
        yield _gauge(
            "github_runner_rate_limit_remaining",
            "GitHub calls left in the rate-limit window.",
            report.rate_limit_remaining,
        )
    desired = GaugeMetricFamily(
        "github_runner_desired_runners", "Runners to keep.", labels=["instance_type"]
    )
    for instance_type in InstanceType:
        desired.add_metric([instance_type.value], report.desired.get(instance_type.value, 0))
    yield desired
    runners = GaugeMetricFamily(
        "github_runner_runners",
        "Runners by instance type and state after the last run.",
        labels=["instance_type", "state"],
    )
    for instance_type in InstanceType:
        counts = report.counts.get(instance_type.value, {})
        for state in RunnerState:
            if state is not RunnerState.GITHUB_ONLY:
                runners.add_metric([instance_type.value, state.value], counts.get(state.value, 0))
    yield runners
    errors = GaugeMetricFamily(
        "github_runner_reconcile_errors", "Errors of the last run by kind.", labels=["kind"]
    )
    kinds = [error.kind for error in report.errors]
    for kind in ERROR_KINDS:
        errors.add_metric([kind.value], kinds.count(kind))
    yield errors
    yield _gauge(
        "github_runner_crashed_runners", "Runners found dead in the last run.", len(report.crashed)
    )
    yield from _version_metrics(report, now)


def _version_metrics(report: Report, now: float) -> Iterable[Metric]:
    """The runner application versions: in use, newest offered, and how long runners lag."""
    if report.runner_version:
        # Exposed as github_runner_info (an OpenMetrics info metric; a gauge of 1 in text).
        yield InfoMetricFamily(
            "github_runner",
            "The runner application version new runners are created with.",
            value={"runner_version": report.runner_version},
        )
    if report.latest_runner_version:
        yield InfoMetricFamily(
            "github_runner_latest_version",
            "The newest runner application version GitHub offers.",
            value={"runner_version": report.latest_runner_version},
        )
    if report.outdated_runners is None:
        return  # the run did not count runner versions (a flush, or it failed early)
    by_version = GaugeMetricFamily(
        "github_runner_runners_by_version",
        "Runner instances by the runner application version they run.",
        labels=["runner_version"],
    )
    for version, count in sorted(report.runner_versions.items()):
        by_version.add_metric([version], count)
    yield by_version
    yield _gauge(
        "github_runner_outdated_runners",
        "Runner instances on a version older than the newest GitHub offers.",
        report.outdated_runners,
    )
    since = report.newer_version_since
    yield _gauge(
        "github_runner_newer_version_available_seconds",
        "Seconds since a version newer than the oldest running one was first offered "
        "(0 when no runner is outdated).",
        max(now - since, 0.0) if since is not None else 0.0,
    )
    if since is not None:
        yield _gauge(
            "github_runner_newer_version_first_seen_timestamp_seconds",
            "When the manager first saw a version newer than the oldest running one.",
            since,
        )


class ReportCollector(Collector):
    """A collector reading the manager's last report on every scrape."""

    def __init__(
        self, report_path: Path, check_interval: float, clock: Callable[[], float] = time.time
    ):
        """Create the collector.

        Args:
            report_path: the manager's report file.
            check_interval: seconds between runs.
            clock: the wall clock.
        """
        self._path = report_path
        self._interval = check_interval
        self._clock = clock

    def collect(self) -> Iterable[Metric]:
        """Read the report and build its metric families.

        Returns:
            The metric families.
        """
        return list(collect(read_report(self._path), self._interval, self._clock()))


def registry_for(
    report_path: Path, check_interval: float, clock: Callable[[], float] = time.time
) -> CollectorRegistry:
    """A registry holding only the report's collector (no process or platform metrics).

    Args:
        report_path: the manager's report file.
        check_interval: seconds between runs.
        clock: the wall clock.

    Returns:
        The registry.
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ReportCollector(report_path, check_interval, clock))
    return registry


def render(report: Report | None, check_interval: float, now: float) -> str:
    """Render the metrics of a report in the Prometheus text format (for tests and tools).

    Args:
        report: the last report, or None before the first run.
        check_interval: seconds between runs.
        now: the current unix time.

    Returns:
        The exposition text.
    """

    class _Fixed(Collector):
        def collect(self) -> Iterable[Metric]:
            return list(collect(report, check_interval, now))

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed())
    return generate_latest(registry).decode()


class _ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - API name
        logger.debug("%s " + format, self.address_string(), *args)


def make_server(
    report_path: Path,
    check_interval: float,
    port: int,
    host: str = "127.0.0.1",
    clock: Callable[[], float] = time.time,
) -> WSGIServer:
    """Build the HTTP server (not started), serving only /metrics.

    Args:
        report_path: the manager's report file.
        check_interval: seconds between runs.
        port: the TCP port (0 picks a free one).
        host: the address to bind (loopback).
        clock: the wall clock.

    Returns:
        The server; call `serve_forever()`.
    """
    metrics_app = make_wsgi_app(registry_for(report_path, check_interval, clock))

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != METRICS_PATH:
            start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"only /metrics here\n"]
        return metrics_app(environ, start_response)

    return wsgi_server(
        host, port, app, server_class=_ThreadingWSGIServer, handler_class=_QuietHandler
    )
