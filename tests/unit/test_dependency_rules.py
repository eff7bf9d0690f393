# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""The layering rules: each library behind one adapter, and no ops in the runner manager."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
MANAGER = SRC / "github_runner_manager"


def imported_modules(path: Path) -> set[str]:
    """The top-level names of every module a file imports."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def importers(library: str) -> list[str]:
    return sorted(
        str(path.relative_to(SRC))
        for path in SRC.rglob("*.py")
        if library in imported_modules(path)
    )


@pytest.mark.parametrize(
    ("library", "allowed"),
    [
        pytest.param("pylxd", ["github_runner_manager/lxd.py"], id="pylxd only in lxd.py"),
        pytest.param("ghapi", ["github_runner_manager/github.py"], id="ghapi only in github.py"),
        pytest.param(
            "prometheus_client",
            ["github_runner_manager/exporter.py"],
            id="prometheus_client only in exporter.py",
        ),
    ],
)
def test_each_library_has_one_adapter(library, allowed):
    """Each third-party library is imported only by its adapter module.

    arrange: the source tree.
    act: find the importers of the library.
    assert: only the allowed adapter.
    """
    assert importers(library) == allowed


def test_the_runner_manager_never_imports_ops():
    """The runner manager package never imports ops or the charm's modules.

    arrange: the runner manager package.
    act: read its imports.
    assert: no ops, no charm module.
    """
    offenders = [
        str(path.relative_to(SRC))
        for path in MANAGER.rglob("*.py")
        if imported_modules(path) & {"ops", "charm", "charm_state", "host", "service"}
    ]

    assert offenders == []
