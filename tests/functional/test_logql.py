# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""Every LogQL expression the charm ships, parsed by Grafana's own LogQL grammar.

The dashboards' Loki panels and the Loki alert rules are parsed with `@grafana/lezer-logql`, the
grammar Grafana's Loki query editor uses, run with node (as every PromQL expression goes through
promtool in test_promtool.py). The npm package is pinned and installed into the test cache
directory (never into the repository); .ci/run installs node and npm. A lezer parser never
throws: it recovers from a syntax error by inserting an error node into the tree, so an
expression is valid when its tree holds no error node.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "grafana_dashboards"
LOKI_RULES = ROOT / "loki_alert_rules"
LOKI_DS = "${lokids}"
PACKAGES = {"@grafana/lezer-logql": "0.4.2", "@lezer/lr": "1.4.10"}
# Grafana's built-in interval variables, as Grafana fills them in before sending a query.
INTERVALS = {"__range": "1h", "__interval": "1m", "__rate_interval": "4m", "__auto": "1m"}
PARSE_SCRIPT = """
const { parser } = require("@grafana/lezer-logql");
const expressions = JSON.parse(require("fs").readFileSync(0, "utf8"));
const results = expressions.map((expression) => {
  const tree = parser.parse(expression);
  const errors = [];
  tree.iterate({ enter: (node) => { if (node.type.isError) errors.push(node.from); } });
  return { top: tree.topNode.name, errors };
});
process.stdout.write(JSON.stringify(results));
"""


def _cache_dir() -> Path:
    base = os.environ.get("GRT_CACHE_DIR", "/var/cache/github-runner-testbed")
    return Path(base) / "lezer-logql"


def _installed(directory: Path) -> bool:
    for name, version in PACKAGES.items():
        try:
            manifest = directory / "node_modules" / name / "package.json"
            if json.loads(manifest.read_text())["version"] != version:
                return False
        except (OSError, ValueError, KeyError):
            return False
    return True


@pytest.fixture(scope="module")
def parser_dir() -> Path:
    """The pinned grammar, installed with npm into the cache directory when missing."""
    directory = _cache_dir()
    if not _installed(directory):
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail("npm is needed to install @grafana/lezer-logql", pytrace=False)
        directory.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                npm,
                "install",
                "--no-audit",
                "--no-fund",
                "--no-save",
                "--prefix",
                str(directory),
                *(f"{name}@{version}" for name, version in PACKAGES.items()),
            ],
            check=True,
            timeout=600,
            capture_output=True,
        )
    assert _installed(directory)
    return directory


def parse(parser_dir: Path, expressions: list[str]) -> list[dict[str, Any]]:
    """Parse expressions with Grafana's LogQL grammar; each result lists its error offsets."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is needed to run the LogQL grammar", pytrace=False)
    result = subprocess.run(
        [node, "-e", PARSE_SCRIPT],
        input=json.dumps(expressions),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env={**os.environ, "NODE_PATH": str(parser_dir / "node_modules")},
    )
    results = json.loads(result.stdout)
    assert len(results) == len(expressions)
    return results


def interpolate(expression: str) -> str:
    """Fill in Grafana's variables as Grafana does before it sends a query to Loki."""
    return re.sub(
        r"\$\{?(\w+)(?::\w+)?\}?",
        lambda match: INTERVALS.get(match.group(1), ".*"),
        expression,
    )


def _panels(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found = []
    for panel in panels:
        found.append(panel)
        found.extend(_panels(panel.get("panels", [])))
    return found


def dashboard_logql() -> dict[str, str]:
    """The Loki queries of the dashboards, keyed by dashboard file, panel and query."""
    queries = {}
    for path in sorted(DASHBOARDS.glob("*.json")):
        dashboard = json.loads(path.read_text())
        for panel in _panels(dashboard["panels"]):
            for target in panel.get("targets", []):
                if target.get("datasource", {}).get("uid") == LOKI_DS:
                    key = f"{path.name}: {panel['title']} ({target.get('refId', '?')})"
                    queries[key] = target["expr"]
        for variable in dashboard.get("templating", {}).get("list", []):
            if variable.get("datasource", {}).get("uid") == LOKI_DS:
                query = variable.get("query")
                # Label-values variables hold a stream selector or a label_values() call; only
                # the stream selector is LogQL.
                stream = query.get("stream") if isinstance(query, dict) else None
                if stream:
                    queries[f"{path.name}: variable {variable['name']}"] = stream
    return queries


def rule_logql() -> dict[str, str]:
    """The Loki alert rules' expressions, keyed by alert."""
    exprs = {}
    for path in sorted(LOKI_RULES.glob("*.rules")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                exprs[rule["alert"]] = rule["expr"].strip()
    return exprs


def assert_all_parse(parser_dir: Path, queries: dict[str, str]) -> None:
    filled = {key: interpolate(expr) for key, expr in queries.items()}
    results = parse(parser_dir, list(filled.values()))
    bad = {
        key: (expr, result["errors"])
        for (key, expr), result in zip(filled.items(), results, strict=True)
        if result["errors"] or result["top"] != "LogQL"
    }
    assert not bad, f"LogQL that Grafana's grammar refuses: {bad}"


def test_dashboard_loki_queries_parse(parser_dir):
    """Every Loki query of the dashboards parses with Grafana's LogQL parser.

    arrange: every Loki query of the dashboards, Grafana's variables filled in.
    act: parse with @grafana/lezer-logql.
    assert: no syntax error anywhere.
    """
    queries = dashboard_logql()
    assert len(queries) >= 10, queries
    assert sum("/var/log/github-runner-jobs/" in q for q in queries.values()) == 2, "job logs"

    assert_all_parse(parser_dir, queries)


def test_loki_alert_rules_parse(parser_dir):
    """Every Loki alert rule parses with Grafana's LogQL parser.

    arrange: every Loki alert rule.
    act: parse.
    assert: no syntax error anywhere.
    """
    exprs = rule_logql()
    assert exprs

    assert_all_parse(parser_dir, exprs)


@pytest.mark.parametrize(
    "expression",
    [
        # An unclosed aggregation.
        'sum by (juju_unit) (count_over_time({filename="/f"} | json [5m])',
        # A range aggregation without its range.
        'count_over_time({filename="/f"} | json)',
        # A matcher without a value.
        '{filename=} | json | event="reconciliation"',
        # A label filter after unwrap, then a second unwrap of a stage that is not a label.
        '{filename="/f"} | json | unwrap idle_runners | unwrap [5m]',
        # A bare word where a pipeline stage belongs.
        '{filename="/f"} | json | event="runner_start" | nonsense stage',
    ],
)
def test_the_check_refuses_malformed_logql(parser_dir, expression):
    """The LogQL check refuses a malformed expression.

    arrange: a malformed expression.
    act: run it through the same check as the shipped ones.
    assert: the check fails, naming it: the parser does bite.
    """
    with pytest.raises(AssertionError, match="Grafana's grammar refuses"):
        assert_all_parse(parser_dir, {"malformed": expression})


def test_the_check_accepts_well_formed_logql(parser_dir):
    """The LogQL check accepts well-formed queries of each shape the charm uses.

    arrange: known-good LogQL of each shape the charm uses.
    act: check.
    assert: accepted.
    """
    assert_all_parse(
        parser_dir,
        {
            "filter": '{filename="/f"} | json | event="runner_stop" | job_conclusion="failure"',
            "unwrap": 'quantile_over_time(0.95, {filename="/f"} | json | unwrap duration '
            '| __error__="" [$__range]) by (flavor)',
            "count": 'sum by (juju_unit) (count_over_time({filename="/f"} | json '
            "| errors > 0 [1h])) >= 3",
        },
    )
