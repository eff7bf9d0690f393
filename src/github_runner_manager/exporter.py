# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""A Prometheus endpoint on loopback serving the state of the last manager run.

The manager itself runs for seconds at a time from a timer, so it cannot be scraped; this small
server reads the last report on every scrape and renders it as gauges. The COS agent scrapes it
on 127.0.0.1 and adds the Juju topology labels.
"""

from __future__ import annotations

import http.server
import logging
import time
from collections.abc import Callable
from pathlib import Path

from .models import InstanceType, RunnerState
from .report import Report, read_report

logger = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
ERROR_KINDS = (
    "token",
    "permission",
    "path",
    "rate-limit",
    "github-unavailable",
    "github-conflict",
    "lxd",
    "runner-create",
    "runner-binary",
    "image",
    "config",
    "unexpected",
)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class _Metrics:
    def __init__(self) -> None:
        self._lines: list[str] = []
        self._declared: set[str] = set()

    def gauge(self, name: str, help_text: str, value: float, **labels: str) -> None:
        if name not in self._declared:
            self._declared.add(name)
            self._lines.append(f"# HELP {name} {help_text}")
            self._lines.append(f"# TYPE {name} gauge")
        rendered = ",".join(f'{key}="{_escape(val)}"' for key, val in sorted(labels.items()))
        self._lines.append(f"{name}{{{rendered}}} {value:g}" if rendered else f"{name} {value:g}")

    def text(self) -> str:
        return "\n".join(self._lines) + "\n"


def render(report: Report | None, check_interval: float, now: float) -> str:
    """Render the gauges of a report in the Prometheus text format.

    Args:
        report: the last report, or None before the first run.
        check_interval: seconds between runs (so alerts can tell a stale report).
        now: the current unix time.

    Returns:
        The exposition text.
    """
    metrics = _Metrics()
    metrics.gauge(
        "github_runner_check_interval_seconds", "Seconds between reconciliations.", check_interval
    )
    metrics.gauge(
        "github_runner_report_present", "1 once the manager wrote a report.", 1 if report else 0
    )
    if report is None:
        return metrics.text()
    finished = (report.finished_at or report.started_at).timestamp()
    metrics.gauge(
        "github_runner_last_reconcile_timestamp_seconds", "When the last run ended.", finished
    )
    metrics.gauge(
        "github_runner_report_age_seconds",
        "Seconds since the last run ended.",
        max(now - finished, 0.0),
    )
    metrics.gauge(
        "github_runner_last_reconcile_success",
        "1 if the last run met no error.",
        1 if report.ok else 0,
    )
    metrics.gauge(
        "github_runner_reconcile_duration_seconds", "Seconds the last run took.", report.duration
    )
    metrics.gauge(
        "github_runner_github_api_calls", "GitHub requests in the last run.", report.github_calls
    )
    if report.rate_limit_remaining is not None:
        metrics.gauge(
            "github_runner_rate_limit_remaining",
            "GitHub calls left in the rate-limit window.",
            report.rate_limit_remaining,
        )
    for instance_type in InstanceType:
        metrics.gauge(
            "github_runner_desired_runners",
            "Runners to keep.",
            report.desired.get(instance_type.value, 0),
            instance_type=instance_type.value,
        )
    for instance_type in InstanceType:
        counts = report.counts.get(instance_type.value, {})
        for state in RunnerState:
            if state is RunnerState.GITHUB_ONLY:
                continue
            metrics.gauge(
                "github_runner_runners",
                "Runners by instance type and state after the last run.",
                counts.get(state.value, 0),
                instance_type=instance_type.value,
                state=state.value,
            )
    kinds = [error.kind for error in report.errors]
    for kind in ERROR_KINDS:
        metrics.gauge(
            "github_runner_reconcile_errors",
            "Errors of the last run by kind.",
            kinds.count(kind),
            kind=kind,
        )
    metrics.gauge(
        "github_runner_crashed_runners", "Runners found dead in the last run.", len(report.crashed)
    )
    if report.runner_version:
        metrics.gauge(
            "github_runner_info",
            "The runner application version.",
            1,
            runner_version=report.runner_version,
        )
    return metrics.text()


def make_server(
    report_path: Path,
    check_interval: float,
    port: int,
    host: str = "127.0.0.1",
    clock: Callable[[], float] = time.time,
) -> http.server.ThreadingHTTPServer:
    """Build the HTTP server (not started).

    Args:
        report_path: the manager's report file.
        check_interval: seconds between runs.
        port: the TCP port (0 picks a free one).
        host: the address to bind (loopback).
        clock: the wall clock.

    Returns:
        The server; call `serve_forever()`.
    """

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] != "/metrics":
                self.send_error(404, "only /metrics here")
                return
            body = render(read_report(report_path), check_interval, clock()).encode()
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - API name
            logger.debug("%s " + format, self.address_string(), *args)

    return http.server.ThreadingHTTPServer((host, port), Handler)
