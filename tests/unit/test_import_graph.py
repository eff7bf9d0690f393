# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""The import graph of src/ has no circle, lazy imports inside functions included."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"


def module_name(root: Path, path: Path) -> str:
    """The dotted name of a source file under root (a package is its `__init__`)."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(root: Path, path: Path, modules: set[str]) -> set[str]:
    """The modules of `modules` a file imports, wherever the import statement is."""
    name = module_name(root, path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            # `from package import module` imports the module; `from module import name` the
            # module.
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                for alias in node.names
            ]
        else:
            continue
        for target in targets:
            # The deepest known module the name is in (`a.b.c` of a module `a.b` is `a.b`).
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph(root: Path) -> dict[str, set[str]]:
    """Every module under root and the modules under root it imports."""
    paths = sorted(root.rglob("*.py"))
    modules = {module_name(root, path) for path in paths}
    return {module_name(root, path): imports(root, path, modules) for path in paths}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import circles of a graph, each from its smallest module back to it."""
    found = set()
    for start in graph:
        stack = [(start, [start])]
        while stack:
            module, trail = stack.pop()
            for target in sorted(graph.get(module, ())):
                if target == start:
                    found.add(tuple(trail))
                elif target not in trail and target > start:
                    stack.append((target, [*trail, target]))
    return [[*circle, circle[0]] for circle in sorted(found)]


def test_src_has_no_import_circle():
    """The modules of src/ import each other without a circle.

    arrange: the source tree.
    act: build its import graph, imports inside functions included.
    assert: no module reaches itself.
    """
    graph = import_graph(SRC)

    assert {"host", "command", "storage", "firewall", "charm"} <= set(graph)
    assert circles(graph) == []


def test_a_circle_through_a_lazy_import_is_found(tmp_path):
    """The check sees a circle closed by an import inside a function.

    arrange: a module importing another at the top, which imports it back inside a function,
        and a package whose modules import each other by relative imports.
    act: look for circles.
    assert: both circles are found.
    """
    (tmp_path / "host.py").write_text("import firewall\n")
    (tmp_path / "firewall.py").write_text("def apply():\n    import host\n")
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from .b import thing\n")
    (package / "b.py").write_text("from pkg import a\n")

    found = circles(import_graph(tmp_path))

    assert found == [["firewall", "host", "firewall"], ["pkg.a", "pkg.b", "pkg.a"]]


def test_the_runner_manager_imports_no_charm_side_module():
    """The runner manager stands below every module of the charm, the host side included.

    arrange: the source tree.
    act: list what the runner manager's modules import from src/.
    assert: only modules of its own package.
    """
    graph = import_graph(SRC)

    upward = {
        f"{module} -> {target}"
        for module, targets in graph.items()
        if module.startswith("github_runner_manager")
        for target in targets
        if not target.startswith("github_runner_manager")
    }

    assert upward == set()
