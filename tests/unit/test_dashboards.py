# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""The Grafana dashboards in grafana_dashboards/, and the LogQL checks shared with the alert rules.

The LogQL helpers here read a query the way Loki does for the parts that matter to us: the stream
selector, the `| json` stage, the label filters, `unwrap`, the range aggregations and their
grouping. Every field a query names is checked against the pydantic event models of
`github_runner_manager.metrics`, so renaming an event field breaks these tests until the
dashboards and alert rules follow.
"""

from __future__ import annotations

import dataclasses
import json
import re
import types
import typing
from pathlib import Path
from typing import Any

import pydantic
import pytest

from github_runner_manager import metrics
from github_runner_manager.job_logs import DEFAULT_DIRECTORY as JOB_LOG_DIR
from github_runner_manager.job_logs import JobLabels

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "grafana_dashboards"
METRICS_LOG = "/var/log/github-runner-metrics.log"

# Labels of the log streams, set by the cos-agent's log shipper rather than parsed from a line.
STREAM_LABELS = frozenset(
    {
        "filename",
        "juju_model",
        "juju_model_uuid",
        "juju_application",
        "juju_unit",
        "job",
        "instance",
    }
)
# The gauges of the runner manager's exporter (its metric names are part of the contract with the
# dashboards and the Prometheus alert rules), with their own labels.
EXPORTER_METRICS = {
    "github_runner_desired_runners": {"instance_type"},
    "github_runner_runners": {"instance_type", "state"},
    "github_runner_last_reconcile_timestamp_seconds": set(),
    "github_runner_last_reconcile_success": set(),
    "github_runner_reconcile_duration_seconds": set(),
    "github_runner_reconcile_errors": {"kind"},
    "github_runner_rate_limit_remaining": set(),
    "github_runner_github_api_calls": set(),
    "github_runner_report_age_seconds": set(),
    "github_runner_check_interval_seconds": set(),
    "github_runner_info": {"runner_version"},
    "github_runner_report_present": set(),
    "github_runner_crashed_runners": set(),
    "github_runner_latest_version_info": {"runner_version"},
    "github_runner_runners_by_version": {"runner_version"},
    "github_runner_outdated_runners": set(),
    "github_runner_newer_version_available_seconds": set(),
    "github_runner_newer_version_first_seen_timestamp_seconds": set(),
}
LOKI_DS = "${lokids}"
PROMETHEUS_DS = "${prometheusds}"
MIXED_DS = "-- Mixed --"
TOPOLOGY_VARIABLES = ("juju_model", "juju_application", "juju_unit")

# Range aggregations of LogQL over log lines (no unwrap allowed) and over unwrapped values.
LOG_RANGE_OPS = frozenset({"count_over_time", "rate", "bytes_over_time", "bytes_rate"})
UNWRAP_RANGE_OPS = frozenset(
    {
        "sum_over_time",
        "avg_over_time",
        "max_over_time",
        "min_over_time",
        "quantile_over_time",
        "first_over_time",
        "last_over_time",
        "stddev_over_time",
        "stdvar_over_time",
    }
)
# Loki rejects `by`/`without` after these range aggregations.
UNGROUPABLE_RANGE_OPS = frozenset({"count_over_time", "sum_over_time", "bytes_over_time"})
RANGE_OP_RE = re.compile(r"\b(" + "|".join(sorted(LOG_RANGE_OPS | UNWRAP_RANGE_OPS)) + r")\s*\(")
GROUPING_RE = re.compile(r"\b(?:by|without)\s*\(([^()]*)\)")
# A vector aggregation opening right before a range aggregation: `sum(`, `sum by (x) (`, ...
VECTOR_AGG_PREFIX_RE = re.compile(
    r"\b(?:sum|min|max|avg|count|stddev|stdvar)\s*(?:(?:by|without)\s*\([^()]*\)\s*)?\(\s*$"
)
LABEL_FILTER_RE = re.compile(r"^([A-Za-z_]\w*)\s*(=~|!~|!=|==|>=|<=|=|>|<)\s*(.+)$")
METRIC_NAME_RE = re.compile(r"\bgithub_runner_\w+")


# --- The event models ------------------------------------------------------------------------


def event_models() -> dict[str, type[metrics.Event]]:
    """Every metric event model, by its `event` name."""
    models = {}
    for cls in metrics.Event.__subclasses__():
        name = cls.model_fields["event"].default
        assert isinstance(name, str), f"{cls.__name__} has no default event name"
        models[name] = cls
    return models


def _type_args(annotation: Any) -> list[Any]:
    """The types an annotation allows (the members of a union, or itself), None left out."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [arg for arg in typing.get_args(annotation) if arg is not type(None)]
    return [annotation]


def json_labels(model: type[pydantic.BaseModel]) -> tuple[dict[str, bool], set[str]]:
    """The labels LogQL's `| json` extracts from a line of this model.

    Fields are named as the metrics log writes them (by alias). Nested objects flatten with `_`
    (`stages.boot` becomes `stages_boot`); a free-form dict field gives labels with its name as
    prefix.

    Returns:
        the labels, each mapped to whether its value is a number; and the prefixes of dict fields.
    """
    labels: dict[str, bool] = {}
    prefixes: set[str] = set()
    for attribute, field in model.model_fields.items():
        # The metrics log is written by alias (`register_` is `register` in a line).
        name = field.serialization_alias or field.alias or attribute
        args = _type_args(field.annotation)
        nested = [
            arg for arg in args if isinstance(arg, type) and issubclass(arg, pydantic.BaseModel)
        ]
        if nested:
            sub_labels, sub_prefixes = json_labels(nested[0])
            labels.update({f"{name}_{sub}": numeric for sub, numeric in sub_labels.items()})
            prefixes.update(f"{name}_{prefix}" for prefix in sub_prefixes)
        elif any(typing.get_origin(arg) is dict for arg in args):
            prefixes.add(f"{name}_")
        else:
            labels[name] = all(arg in (int, float) for arg in args)
    return labels, prefixes


def field_exists(event: str, label: str) -> bool:
    """Whether `| json` gives this label for this event (or the stream has it)."""
    if label in STREAM_LABELS:
        return True
    labels, prefixes = json_labels(event_models()[event])
    return label in labels or any(label.startswith(prefix) for prefix in prefixes)


# --- Reading LogQL ---------------------------------------------------------------------------


def _scan(text: str, start: int, stops: str) -> int:
    """The index of the first character of `stops` outside double quotes, from `start`."""
    quoted = False
    index = start
    while index < len(text):
        char = text[index]
        if char == "\\" and quoted:
            index += 2
            continue
        if char == '"':
            quoted = not quoted
        elif not quoted and char in stops:
            return index
        index += 1
    return len(text)


def _split_pipes(pipeline: str) -> list[str]:
    """The stages of a pipeline, split on `|` outside double quotes."""
    stages = []
    start = 0
    while start <= len(pipeline):
        end = _scan(pipeline, start, "|")
        stages.append(pipeline[start:end].strip())
        start = end + 1
    return stages


def _matching_paren(text: str, open_index: int) -> int:
    """The index of the parenthesis closing the one at `open_index` (outside quotes)."""
    depth = 0
    index = open_index
    while True:
        index = _scan(text, index, "()")
        assert index < len(text), f"unbalanced parentheses in {text!r}"
        depth += 1 if text[index] == "(" else -1
        if depth == 0:
            return index
        index += 1


class LogPipeline(typing.NamedTuple):
    """One stream selector of a LogQL query and the pipeline that follows it."""

    matchers: dict[str, str]
    stages: list[str]
    event: str | None
    filtered_labels: list[str]
    unwrap: str | None


def log_pipelines(expr: str) -> list[LogPipeline]:
    """Every stream selector of a LogQL query, with its pipeline, read stage by stage."""
    pipelines = []
    index = 0
    while (open_brace := _scan(expr, index, "{")) < len(expr):
        close_brace = _scan(expr, open_brace, "}")
        assert close_brace < len(expr), f"unclosed stream selector in {expr!r}"
        matchers = {}
        for matcher in _split_on_commas(expr[open_brace + 1 : close_brace]):
            match = re.fullmatch(r'\s*([A-Za-z_]\w*)\s*(=~|!~|!=|=)\s*"(.*)"\s*', matcher)
            assert match, f"bad stream matcher {matcher!r} in {expr!r}"
            matchers[match.group(1)] = match.group(3)
        end = _scan(expr, close_brace + 1, "[)")
        stages = _split_pipes(expr[close_brace + 1 : end])
        assert stages[0] == "", f"text between the selector and the pipeline in {expr!r}"
        pipelines.append(_read_stages(matchers, stages[1:], expr))
        index = end
    return pipelines


def _split_on_commas(text: str) -> list[str]:
    parts = []
    start = 0
    while start <= len(text):
        end = _scan(text, start, ",")
        parts.append(text[start:end])
        start = end + 1
    return [part for part in parts if part.strip()]


def _read_stages(matchers: dict[str, str], stages: list[str], expr: str) -> LogPipeline:
    event = None
    filtered: list[str] = []
    unwrap = None
    for stage in stages:
        if stage.startswith(("=", "~")):  # a line filter (`|=`, `|~`)
            continue
        if stage == "json":
            continue
        if stage.startswith("unwrap "):
            assert unwrap is None, f"two unwrap stages in {expr!r}"
            unwrap = stage.split()[1]
            continue
        if stage == '__error__=""':
            continue
        match = LABEL_FILTER_RE.match(stage)
        assert match, f"unknown pipeline stage {stage!r} in {expr!r}"
        label, operator, value = match.groups()
        if label == "event" and operator in ("=", "=="):
            assert event is None, f"two event filters in {expr!r}"
            event = value.strip('"')
        else:
            filtered.append(label)
    return LogPipeline(matchers, stages, event, filtered, unwrap)


def range_aggregations(expr: str) -> list[tuple[str, str, bool, bool]]:
    """Every range aggregation: (operation, argument, grouped, inside a vector aggregation)."""
    found = []
    for match in RANGE_OP_RE.finditer(expr):
        open_paren = match.end() - 1
        close_paren = _matching_paren(expr, open_paren)
        grouped = re.match(r"\s*(?:by|without)\s*\(", expr[close_paren + 1 :]) is not None
        wrapped = VECTOR_AGG_PREFIX_RE.search(expr[: match.start()]) is not None
        found.append((match.group(1), expr[open_paren + 1 : close_paren], grouped, wrapped))
    return found


def check_logql(expr: str) -> list[LogPipeline]:
    """Assert a LogQL metric query is well formed and names only real event fields.

    Returns:
        its log pipelines.
    """
    unescaped = expr.replace("\\\\", "").replace('\\"', "")
    assert unescaped.count('"') % 2 == 0, f"unbalanced quotes in {expr!r}"
    depth = 0
    index = _scan(expr, 0, "()")
    while index < len(expr):
        depth += 1 if expr[index] == "(" else -1
        assert depth >= 0, f"unbalanced parentheses in {expr!r}"
        index = _scan(expr, index + 1, "()")
    assert depth == 0, f"unbalanced parentheses in {expr!r}"
    assert "%%juju_topology%%" not in expr, 'cosl turns this placeholder into job=~".+"'

    pipelines = log_pipelines(expr)
    assert pipelines, f"no stream selector in {expr!r}"
    models = event_models()
    for pipeline in pipelines:
        assert pipeline.matchers.get("filename") == METRICS_LOG, (
            f"{expr!r} does not select the metrics log"
        )
        assert pipeline.stages and pipeline.stages[0] == "json", (
            f"{expr!r} does not parse the line with `| json` first"
        )
        assert pipeline.event in models, f"{expr!r} selects no known event: {pipeline.event!r}"
        for label in pipeline.filtered_labels:
            assert field_exists(pipeline.event, label), (
                f"{expr!r} filters on {label!r}, which {pipeline.event} events do not have"
            )
        if pipeline.unwrap:
            labels, _ = json_labels(models[pipeline.event])
            assert labels.get(pipeline.unwrap), (
                f"{expr!r} unwraps {pipeline.unwrap!r}, not a number field of {pipeline.event}"
            )
            after = pipeline.stages[pipeline.stages.index(f"unwrap {pipeline.unwrap}") :]
            assert '__error__=""' in after, (
                f"{expr!r} does not drop the lines without {pipeline.unwrap} after unwrapping"
            )

    aggregations = range_aggregations(expr)
    assert len(aggregations) == len(pipelines), f"a log pipeline outside an aggregation: {expr!r}"
    for operation, argument, grouped, wrapped in aggregations:
        has_unwrap = "| unwrap " in argument
        if operation in UNWRAP_RANGE_OPS:
            assert has_unwrap, f"{operation} needs an unwrap in {expr!r}"
        else:
            assert not has_unwrap, f"{operation} takes no unwrap in {expr!r}"
        assert not (grouped and operation in UNGROUPABLE_RANGE_OPS), (
            f"Loki rejects grouping on {operation} in {expr!r}"
        )
        # `| json` makes every line its own series (its timestamp is a label): reduce them.
        assert grouped or wrapped, f"{operation} neither grouped nor aggregated in {expr!r}"

    events = [pipeline.event for pipeline in pipelines if pipeline.event]
    for grouping in GROUPING_RE.findall(expr):
        for label in filter(None, (part.strip() for part in grouping.split(","))):
            assert any(field_exists(event, label) for event in events), (
                f"{expr!r} groups by {label!r}, which neither the streams nor the events have"
            )
    return pipelines


# --- The dashboards --------------------------------------------------------------------------

DETAILED_ROWS = ["General", "Jobs", "Fleet", "Job Logs"]
DETAILED_PANELS = [
    "Runner Lifecycle",
    "Idle Runners after Reconciliation",
    "Job Queue Duration (Percentile)",
    "Runner Idle Duration (Percentile)",
    "Runner Installation Duration (Percentile)",
    "Reconciliation Duration (Percentile)",
    "Runner Spawn Stages (p50/p95)",
    "GitHub Rate-Limit Remaining",
    "Completion Status",
    "Job Conclusion",
    "Flavors",
    "GitHub Events",
    "Job Duration (Percentile)",
    "Repositories",
    "Runners by State and Type vs Desired",
    "Reconcile Age vs Interval",
    "Reconcile Errors by Kind",
    "Last Reconciliation",
    "Runners by Runner Version",
    "Runner Version Lag",
    "Jobs with Runner Logs",
    "Runner Logs of a Job",
]
LONGTERM_ROWS = ["General"]
LONGTERM_PANELS = [
    "Total Jobs",
    "Total Repositories",
    "Jobs Queued Less Than 60 Seconds (Percentage)",
    "Runner Version",
    "Jobs per Day",
    "Crashed Runners per Day",
]


def load(name: str) -> dict[str, Any]:
    content = json.loads((DASHBOARDS / name).read_text())
    assert isinstance(content, dict)
    return content


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """The dashboard's panels that are not rows, rows' nested panels included."""
    found = []
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            found.extend(panel.get("panels", []))
        else:
            found.append(panel)
    return found


def targets(dashboard: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    return [(panel, target) for panel in panels(dashboard) for target in panel.get("targets", [])]


def loki_exprs(dashboard: dict[str, Any]) -> list[str]:
    return [t["expr"] for _, t in targets(dashboard) if t["datasource"]["uid"] == LOKI_DS]


def prometheus_exprs(dashboard: dict[str, Any]) -> list[str]:
    return [t["expr"] for _, t in targets(dashboard) if t["datasource"]["uid"] == PROMETHEUS_DS]


def rows_of(dashboard: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The panels under each row, in order."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    current = None
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            current = panel["title"]
            grouped[current] = list(panel.get("panels", []))
        else:
            assert current is not None, f"panel {panel['title']!r} sits above every row"
            grouped[current].append(panel)
    return grouped


DASHBOARD_CASES = [
    pytest.param(
        "metrics.json",
        "GitHub Self-Hosted Runner Metrics",
        "now-6h",
        DETAILED_ROWS,
        DETAILED_PANELS,
        id="detailed",
    ),
    pytest.param(
        "metrics_longterm.json",
        "GitHub Self-Hosted Runner Metrics (Long-Term)",
        "now-30d",
        LONGTERM_ROWS,
        LONGTERM_PANELS,
        id="longterm",
    ),
]
DASHBOARD_FILES = [
    pytest.param("metrics.json", id="detailed"),
    pytest.param("metrics_longterm.json", id="longterm"),
]


def test_only_the_two_dashboards():
    """The dashboards directory holds only the two dashboards.

    arrange: the grafana_dashboards directory.
    act: list its files.
    assert: exactly metrics.json and metrics_longterm.json.
    """
    assert sorted(path.name for path in DASHBOARDS.iterdir()) == [
        "metrics.json",
        "metrics_longterm.json",
    ]


@pytest.mark.parametrize("name,title,time_from,rows,titles", DASHBOARD_CASES)
def test_dashboard_titles(name, title, time_from, rows, titles):
    """Each dashboard has its title, time range, rows and panels in order.

    arrange: one dashboard per case with its expected title, time range, rows and panel titles.
    act: load it.
    assert: the title, the time range to now, the row titles and the panel titles are as expected.
    """
    dashboard = load(name)
    assert dashboard["title"] == title
    assert dashboard["time"] == {"from": time_from, "to": "now"}
    assert [p["title"] for p in dashboard["panels"] if p["type"] == "row"] == rows
    assert [p["title"] for p in panels(dashboard)] == titles


def test_dashboard_uids_are_stable_and_distinct():
    """The dashboards' uids are fixed and differ.

    arrange: the two dashboards.
    act: load them.
    assert: the uids are github-runner-metrics and github-runner-metrics-longterm.
    """
    assert load("metrics.json")["uid"] == "github-runner-metrics"
    assert load("metrics_longterm.json")["uid"] == "github-runner-metrics-longterm"


@pytest.mark.parametrize("name", DASHBOARD_FILES)
def test_template_variables(name):
    """Each dashboard's variables pick the datasources and filter by the Juju topology.

    arrange: one dashboard per case.
    act: load its template variables.
    assert: Loki and Prometheus datasource variables; each topology variable is a multi-value Loki
        query of its label with .* for all and a valid stream selector; metrics.json has a
        repository text box defaulting to .*.
    """
    dashboard = load(name)
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["lokids"]["type"] == "datasource"
    assert variables["lokids"]["query"] == "loki"
    assert variables["prometheusds"]["type"] == "datasource"
    assert variables["prometheusds"]["query"] == "prometheus"
    for name_ in TOPOLOGY_VARIABLES:
        variable = variables[name_]
        assert variable["type"] == "query"
        assert variable["datasource"] == {"type": "loki", "uid": LOKI_DS}
        assert variable["includeAll"] and variable["multi"]
        assert variable["allValue"] == ".*"
        assert re.fullmatch(r"label_values\(\{.*\}, " + name_ + r"\)", variable["query"])
        check_stream_selector(variable["query"])
    if name == "metrics.json":
        repository = variables["repository"]
        assert repository["type"] == "textbox"
        assert repository["query"] == ".*"
        assert repository["current"]["value"] == ".*"


def check_stream_selector(query: str) -> None:
    selector = query[query.index("{") : query.index("}") + 1]
    assert f'filename="{METRICS_LOG}"' in selector


@pytest.mark.parametrize("name", DASHBOARD_FILES)
def test_every_target_names_a_datasource_variable(name):
    """Every panel query names a datasource variable of the right kind.

    arrange: one dashboard per case.
    act: walk its panels and their targets.
    assert: each panel uses the Loki, Prometheus or mixed datasource and has queries with distinct
        refIds; each target names the Loki or Prometheus variable with its type, the panel's own
        unless mixed.
    """
    dashboard = load(name)
    kinds = {LOKI_DS: "loki", PROMETHEUS_DS: "prometheus"}
    for panel in panels(dashboard):
        panel_ds = panel["datasource"]
        assert panel_ds["uid"] in (LOKI_DS, PROMETHEUS_DS, MIXED_DS), panel["title"]
        assert panel["targets"], f"{panel['title']} has no query"
        refs = [target["refId"] for target in panel["targets"]]
        assert len(refs) == len(set(refs)), f"{panel['title']} repeats a refId"
        for target in panel["targets"]:
            uid = target["datasource"]["uid"]
            assert uid in kinds, f"{panel['title']}: {target['datasource']}"
            assert target["datasource"]["type"] == kinds[uid]
            if panel_ds["uid"] != MIXED_DS:
                # Grafana's COS library injects topology per panel datasource.
                assert target["datasource"] == panel_ds, panel["title"]


@pytest.mark.parametrize("name", DASHBOARD_FILES)
def test_loki_queries_read_the_metrics_log_events(name):
    """Every Loki query of the metrics log filters by every topology variable.

    arrange: one dashboard per case, its Loki queries other than the job logs.
    act: check each query's LogQL pipelines.
    assert: there are queries, each pipeline is valid and matches every topology label on its
        variable.
    """
    exprs = [e for e in loki_exprs(load(name)) if str(JOB_LOG_DIR) not in e]
    assert exprs
    for expr in exprs:
        for pipeline in check_logql(expr):
            for variable in TOPOLOGY_VARIABLES:
                assert pipeline.matchers.get(variable) == f"${variable}", (
                    f"{expr!r} ignores the {variable} variable"
                )


@pytest.mark.parametrize("name", DASHBOARD_FILES)
def test_prometheus_queries_use_exporter_metrics(name):
    """Every Prometheus query reads exporter metrics by topology and groups by known labels.

    arrange: one dashboard per case, its Prometheus queries.
    act: collect each query's metric names and groupings.
    assert: there are queries; every metric is an exporter metric filtered by every topology
        variable, and every grouping label exists on the stream or the metrics.
    """
    exprs = prometheus_exprs(load(name))
    assert exprs
    for expr in exprs:
        names = METRIC_NAME_RE.findall(expr)
        assert names, expr
        for metric in names:
            assert metric in EXPORTER_METRICS, f"{metric} is not an exporter metric"
            for variable in TOPOLOGY_VARIABLES:
                assert f'{variable}=~"${variable}"' in expr, f"{expr!r} ignores ${variable}"
        for grouping in GROUPING_RE.findall(expr):
            allowed = STREAM_LABELS.union(*(EXPORTER_METRICS[m] for m in names))
            for label in filter(None, (part.strip() for part in grouping.split(","))):
                assert label in allowed, f"{expr!r} groups by {label!r}"


@pytest.mark.parametrize("name", DASHBOARD_FILES)
def test_layout(name):
    """Each dashboard's panels have distinct ids and do not overlap on the grid.

    arrange: one dashboard per case.
    act: place every panel's grid cells.
    assert: ids are distinct, panels fit in 24 columns and never overlap, and no row is collapsed.
    """
    dashboard = load(name)
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, panel["title"]
        area = {
            (x, y)
            for x in range(pos["x"], pos["x"] + pos["w"])
            for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not cells & area, f"{panel['title']} overlaps another panel"
        cells |= area
    # Grafana's COS library rewrites only top-level panels: rows stay open.
    assert all(not p.get("collapsed") for p in dashboard["panels"] if p["type"] == "row")


def test_jobs_row_is_filtered_by_repository():
    """Every query of the Jobs row filters by the repository variable.

    arrange: the Jobs row of metrics.json.
    act: parse each target's log pipelines.
    assert: each filters on repo with the repository variable.
    """
    jobs = rows_of(load("metrics.json"))["Jobs"]
    for panel in jobs:
        for target in panel["targets"]:
            for pipeline in log_pipelines(target["expr"]):
                assert "repo" in pipeline.filtered_labels, f"{panel['title']} ignores $repository"
                assert 'repo=~"$repository"' in pipeline.stages


JOB_LOG_SELECTOR = f"{JOB_LOG_DIR}/.+"
JOB_LOG_LABELS = {field.name for field in dataclasses.fields(JobLabels)}


def test_job_logs_row_reads_the_labelled_job_files():
    """The Job Logs row selects the job files and filters only on labels the files carry.

    arrange: the Job Logs row of metrics.json.
    act: parse its table and logs panels' queries.
    assert: a Loki table and logs panel select the job log files by topology, extract only the job
        labels and filter on them; the logs panel prints the line, the table sums and links to a
        job's logs.
    """
    row = rows_of(load("metrics.json"))["Job Logs"]
    assert [panel["type"] for panel in row] == ["table", "logs"]
    for panel in row:
        (target,) = panel["targets"]
        assert target["datasource"] == {"type": "loki", "uid": LOKI_DS}
        expr = target["expr"]
        (selector,) = re.findall(r"\{[^{}]*filename[^{}]*\}", expr)
        assert f'filename=~"{JOB_LOG_SELECTOR}"' in selector
        for variable in TOPOLOGY_VARIABLES:
            assert f'{variable}=~"${variable}"' in selector, f"{panel['title']} ignores {variable}"
        extracted = dict(re.findall(r'(\w+)="(\w+)"', expr.split("| json ", 1)[1].split(" | ")[0]))
        assert all(key == value for key, value in extracted.items())
        assert set(extracted) - {"line"} == JOB_LOG_LABELS - {"flavor"}
        for label in re.findall(r"\| (\w+)=~", expr):
            assert label in extracted, f"{panel['title']} filters on {label}, not a job label"
        for variable in ("repository", "conclusion", "job_id"):
            assert f'{variable}=~"${variable}"' in expr
    table, logs = row
    assert 'line_format "{{.line}}"' in logs["targets"][0]["expr"]
    assert "sum by (" in table["targets"][0]["expr"]
    (link,) = table["fieldConfig"]["overrides"][0]["properties"][0]["value"]
    assert "var-job_id=${__data.fields.job_id}" in link["url"]


def test_job_log_variables_default_to_everything():
    """The job log variables are text boxes that match everything by default.

    arrange: the template variables of metrics.json.
    act: read conclusion and job_id.
    assert: both are text boxes with the query .*.
    """
    variables = {v["name"]: v for v in load("metrics.json")["templating"]["list"]}
    for name in ("conclusion", "job_id"):
        assert variables[name]["type"] == "textbox"
        assert variables[name]["query"] == ".*"


def test_fleet_row_is_prometheus():
    """The Fleet row's panels read Prometheus.

    arrange: the Fleet row of metrics.json.
    act: read each panel's datasource.
    assert: every one is the Prometheus variable.
    """
    for panel in rows_of(load("metrics.json"))["Fleet"]:
        assert panel["datasource"]["uid"] == PROMETHEUS_DS, panel["title"]


def test_version_lag_panel_marks_the_alert_threshold():
    """The version lag panel turns red where GithubRunnerVersionOutdated fires (14 days).

    arrange: metrics.json.
    act: find the Runner Version Lag panel.
    assert: it reads the newer-version age and the outdated runners, and its last threshold is red
        at 14 days.
    """
    lag = next(p for p in panels(load("metrics.json")) if p["title"] == "Runner Version Lag")
    exprs = [target["expr"] for target in lag["targets"]]
    assert any("github_runner_newer_version_available_seconds" in e for e in exprs)
    assert any("github_runner_outdated_runners" in e for e in exprs)
    steps = lag["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert steps[-1] == {"color": "red", "value": 14 * 86400}


def test_percentile_panels_show_p50_p95_p99_max():
    """The percentile panels show p50, p95, p99 and max in seconds.

    arrange: metrics.json.
    act: read every panel titled "(Percentile)".
    assert: its queries are quantiles 0.5, 0.95 and 0.99 and a max, in seconds.
    """
    dashboard = load("metrics.json")
    for panel in panels(dashboard):
        if not panel["title"].endswith("(Percentile)"):
            continue
        exprs = [target["expr"] for target in panel["targets"]]
        assert [expr.split("(")[0] for expr in exprs] == [
            "quantile_over_time",
            "quantile_over_time",
            "quantile_over_time",
            "max_over_time",
        ], panel["title"]
        assert [re.findall(r"quantile_over_time\((0\.\d+),", e) for e in exprs[:3]] == [
            ["0.5"],
            ["0.95"],
            ["0.99"],
        ]
        assert panel["fieldConfig"]["defaults"]["unit"] == "s"


def test_spawn_stages_panel_covers_every_stage():
    """The spawn stages panel covers every stage of a runner's start.

    arrange: metrics.json and the stages of the SpawnStages model.
    act: collect the fields the Runner Spawn panel unwraps and its quantiles.
    assert: one unwrapped field per stage, register included, at quantiles 0.5 and 0.95.
    """
    (panel,) = [p for p in panels(load("metrics.json")) if p["title"].startswith("Runner Spawn")]
    unwrapped = {
        pipeline.unwrap
        for target in panel["targets"]
        for pipeline in log_pipelines(target["expr"])
    }
    stages, _ = json_labels(metrics.SpawnStages)
    assert unwrapped == {f"stages_{stage}" for stage in stages}
    assert "stages_register" in unwrapped
    quantiles = {
        re.findall(r"quantile_over_time\((0\.\d+),", t["expr"])[0] for t in panel["targets"]
    }
    assert quantiles == {"0.5", "0.95"}


def test_rate_limit_panel_has_both_sources():
    """The rate-limit panel reads both Loki and Prometheus.

    arrange: metrics.json.
    act: find the GitHub Rate-Limit Remaining panel.
    assert: it uses the mixed datasource with one Loki and one Prometheus target, reading
        rate_limit_remaining and github_runner_rate_limit_remaining.
    """
    (panel,) = [
        p for p in panels(load("metrics.json")) if p["title"] == "GitHub Rate-Limit Remaining"
    ]
    assert panel["datasource"]["uid"] == MIXED_DS
    uids = sorted(target["datasource"]["uid"] for target in panel["targets"])
    assert uids == [LOKI_DS, PROMETHEUS_DS]
    assert "unwrap rate_limit_remaining" in loki_exprs({"panels": [panel]})[0]
    assert "github_runner_rate_limit_remaining" in prometheus_exprs({"panels": [panel]})[0]


def test_queue_share_panel_is_a_percentage():
    """The queue share panel is the percentage of jobs queued under 60 seconds.

    arrange: metrics_longterm.json.
    act: find the panel about 60 seconds and parse its query.
    assert: its unit is percent, its query starts with "100 * " and keeps queue durations from 0 to
        under 60.
    """
    (panel,) = [p for p in panels(load("metrics_longterm.json")) if "60 Seconds" in p["title"]]
    (target,) = panel["targets"]
    assert panel["fieldConfig"]["defaults"]["unit"] == "percent"
    assert target["expr"].startswith("100 * ")
    filters = [stage for pipeline in log_pipelines(target["expr"]) for stage in pipeline.stages]
    assert "queue_duration < 60" in filters
    assert "queue_duration >= 0" in filters


# --- The checks themselves -------------------------------------------------------------------


def test_json_labels_flatten_nested_fields():
    """The event model reading flattens nested fields and tells numbers from text.

    arrange: the RunnerInstalled and RunnerStop event models.
    act: read their JSON labels and prefixes.
    assert: stages_boot and duration are numbers and runner is not; RunnerStop has the status_info_
        prefix and RunnerInstalled none.
    """
    labels, prefixes = json_labels(metrics.RunnerInstalled)
    assert labels["stages_boot"] is True
    assert labels["duration"] is True
    assert labels["runner"] is False
    _, stop_prefixes = json_labels(metrics.RunnerStop)
    assert stop_prefixes == {"status_info_"}
    assert not prefixes


def _sample_value(annotation: Any) -> Any:
    arg = _type_args(annotation)[0]
    if typing.get_origin(arg) is typing.Literal:
        return typing.get_args(arg)[0]
    if typing.get_origin(arg) is dict:
        return {"code": 1}
    if isinstance(arg, type) and issubclass(arg, pydantic.BaseModel):
        return _sample(arg)
    return {str: "x", int: 1, float: 1.5}[arg]


def _sample(model: type[pydantic.BaseModel]) -> pydantic.BaseModel:
    """An instance of the model with every field set."""
    values = {
        field.alias or name: _sample_value(field.annotation)
        for name, field in model.model_fields.items()
    }
    return model.model_validate(values)


def _flatten(value: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """What Loki's `| json` makes of an object: nested keys joined with `_`."""
    flat: dict[str, Any] = {}
    for key, item in value.items():
        if isinstance(item, dict):
            flat.update(_flatten(item, f"{prefix}{key}_"))
        else:
            flat[f"{prefix}{key}"] = item
    return flat


@pytest.mark.parametrize("event", sorted(event_models()))
def test_json_labels_match_the_written_lines(event, tmp_path):
    """The event model reading agrees with the lines the metrics log really holds.

    arrange: one sample event per event model.
    act: write it to a metrics log and flatten the written line.
    assert: the written fields are the labels the model reading gives, with the same number or text
        kinds.
    """
    log = metrics.MetricsLog(tmp_path / "metrics.log")
    log.issue(_sample(event_models()[event]))  # type: ignore[arg-type]  # a sample event built from its model
    (line,) = (tmp_path / "metrics.log").read_text().splitlines()
    written = _flatten(json.loads(line))
    labels, prefixes = json_labels(event_models()[event])
    expected = set(labels) | {f"{prefix}code" for prefix in prefixes}
    assert set(written) == expected
    for label, numeric in labels.items():
        assert isinstance(written[label], (int, float)) == numeric, label


@pytest.mark.parametrize(
    "expr,error",
    [
        pytest.param(
            'sum(count_over_time({filename="/var/log/syslog"} | json | event="runner_start" '
            "[1h]))",
            "does not select the metrics log",
            id="other-file",
        ),
        pytest.param(
            f'sum(count_over_time({{filename="{METRICS_LOG}"}} | event="runner_start" [1h]))',
            "`| json`",
            id="no-json",
        ),
        pytest.param(
            f'max_over_time({{filename="{METRICS_LOG}"}} | json | event="runner_start" '
            '| unwrap queue_time | __error__="" [1h]) by (flavor)',
            "unwraps 'queue_time'",
            id="renamed-field",
        ),
        pytest.param(
            f'max_over_time({{filename="{METRICS_LOG}"}} | json | event="runner_start" '
            '| unwrap repo | __error__="" [1h]) by (flavor)',
            "not a number field",
            id="text-field",
        ),
        pytest.param(
            f'max_over_time({{filename="{METRICS_LOG}"}} | json | event="runner_start" '
            "| unwrap idle [1h]) by (flavor)",
            "does not drop",
            id="no-error-filter",
        ),
        pytest.param(
            f'sum(count_over_time({{filename="{METRICS_LOG}"}} | json | event="runner_stop" '
            '| conclusion="success" [1h]))',
            "filters on 'conclusion'",
            id="unknown-filter",
        ),
        pytest.param(
            f'sum(count_over_time({{filename="{METRICS_LOG}"}} | json | event="runner_ended" '
            "[1h]))",
            "no known event",
            id="unknown-event",
        ),
        pytest.param(
            f'sum_over_time({{filename="{METRICS_LOG}"}} | json | event="reconciliation" '
            '| unwrap errors | __error__="" [1h]) by (juju_unit)',
            "rejects grouping",
            id="grouped-sum",
        ),
        pytest.param(
            f'count_over_time({{filename="{METRICS_LOG}"}} | json | event="reconciliation" [1h])',
            "neither grouped nor aggregated",
            id="per-line-series",
        ),
        pytest.param(
            f'sum by (workflow) (count_over_time({{filename="{METRICS_LOG}"}} | json '
            '| event="reconciliation" [1h]))',
            "groups by 'workflow'",
            id="unknown-grouping",
        ),
        pytest.param(
            f'sum(count_over_time({{filename="{METRICS_LOG}", %%juju_topology%%}} | json '
            '| event="runner_start" [1h]))',
            "placeholder",
            id="placeholder",
        ),
    ],
)
def test_check_logql_rejects(expr, error):
    """The LogQL checker rejects each kind of wrong query.

    arrange: one wrong query per case (another file, no json, renamed or text field, no error
        filter, unknown filter, event or grouping, grouped sum, per-line series, placeholder).
    act: check it.
    assert: an AssertionError with the case's reason, so the dashboard tests can fail.
    """
    with pytest.raises(AssertionError, match=re.escape(error)):
        check_logql(expr)
