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


# The charm's own modules (src/*.py), which the runner manager must never reach into.
CHARM_SIDE = {
    "charm",
    "charm_state",
    "host",
    "service",
    "command",
    "storage",
    "firewall",
    "cos_agent",
    "status",
    "actions",
}


def test_the_runner_manager_never_imports_ops():
    """The runner manager package never imports ops or the charm's modules.

    arrange: the runner manager package.
    act: read its imports.
    assert: no ops, no charm module.
    """
    offenders = [
        str(path.relative_to(SRC))
        for path in MANAGER.rglob("*.py")
        if imported_modules(path) & {"ops", *CHARM_SIDE}
    ]

    assert offenders == []


def test_the_charm_side_list_names_every_charm_module():
    """The list the runner manager may not import names every module of the charm.

    arrange: the charm's modules (src/*.py).
    act: compare their names with the charm-side list.
    assert: the same names, so a new charm module is held to the rule too.
    """
    assert {path.stem for path in SRC.glob("*.py")} == CHARM_SIDE


def manager_imports(path: Path) -> set[str]:
    """The runner manager modules a file imports (`github_runner_manager` for the root)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.startswith("github_runner_manager"))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.update({node.module} if node.module.startswith("github_runner_manager") else ())
    return names


CHARM_MODULES = sorted(path.name for path in SRC.glob("*.py"))


@pytest.mark.parametrize("module", CHARM_MODULES)
def test_charm_modules_import_only_the_runner_manager_root(module):
    """A charm-side module uses the runner manager only through the package's face.

    arrange: one charm-side module (src/*.py).
    act: list the runner manager modules it imports.
    assert: the package root at most, never a submodule.
    """
    assert manager_imports(SRC / module) <= {"github_runner_manager"}


def test_charm_state_never_imports_the_runner_binary():
    """The charm's state never reaches into the runner application's download code.

    arrange: src/charm_state.py.
    act: list the runner manager modules it imports.
    assert: `github_runner_manager.binary` is not among them.
    """
    assert "github_runner_manager.binary" not in manager_imports(SRC / "charm_state.py")


def test_the_root_exports_only_names_it_has():
    """Every name the package root promises exists, so the charm's imports cannot break.

    arrange: the package root.
    act: look up each name of `__all__`.
    assert: each one is there, and the root lists at least the report, the check result, the
        error kind and the image status.
    """
    import github_runner_manager

    missing = [n for n in github_runner_manager.__all__ if not hasattr(github_runner_manager, n)]

    assert missing == []
    assert {"Report", "read_report", "CheckResult", "ErrorKind", "image_status"} <= set(
        github_runner_manager.__all__
    )
