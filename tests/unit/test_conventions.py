# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""The test suite's own conventions, checked over every test module under tests/.

One docstring convention (STYLE.md): every test function's docstring holds the IS triple, each
part starting its own line, in order, usually under a summary line and a blank line:

    Short summary line.

    arrange: ...
    act: ...
    assert: ...

A part may continue on indented lines. `# Arrange` / `# Act` / `# Assert` comments are not
used: what they said belongs in the docstring.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from collections.abc import Iterator
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
PARTS = ("arrange:", "act:", "assert:")
STEP_COMMENT = re.compile(r"#\s*(arrange|act|assert)\b", re.IGNORECASE)


def _test_modules() -> list[Path]:
    return sorted(TESTS.rglob("test_*.py"))


def _test_functions(tree: ast.Module) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    """The functions pytest collects: test_* at module level and in Test* classes.

    Args:
        tree: a parsed test module.

    Yields:
        Each test function.
    """
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            candidates: list[ast.stmt] = list(node.body)
        else:
            candidates = [node]
        for candidate in candidates:
            if not isinstance(candidate, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            if candidate.name.startswith("test"):
                yield candidate


def has_triple(docstring: str | None) -> bool:
    """Whether a docstring holds arrange:, act: and assert:, each starting a line, in order.

    Args:
        docstring: the docstring (None: there is none).

    Returns:
        True if the triple is there.
    """
    if not docstring:
        return False
    lines = [line.strip() for line in docstring.splitlines()]
    positions = []
    for part in PARTS:
        found = [number for number, line in enumerate(lines) if line.startswith(part)]
        if not found:
            return False
        positions.append(found[0])
    return positions == sorted(positions)


def docstring_offences(source: str, label: str) -> list[str]:
    """The test functions of a module whose docstring lacks the triple.

    Args:
        source: the module's text.
        label: how to name the module in the result.

    Returns:
        One `label::function (line N)` a test function without the triple.
    """
    tree = ast.parse(source)
    return [
        f"{label}::{function.name} (line {function.lineno})"
        for function in _test_functions(tree)
        if not has_triple(ast.get_docstring(function))
    ]


def comment_offences(source: str, label: str) -> list[str]:
    """The `# Arrange` / `# Act` / `# Assert` comments of a module.

    Args:
        source: the module's text.
        label: how to name the module in the result.

    Returns:
        One `label:N` a step comment.
    """
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    return [
        f"{label}:{token.start[0]}"
        for token in tokens
        if token.type == tokenize.COMMENT and STEP_COMMENT.match(token.string)
    ]


def test_the_checks_catch_what_they_look_for():
    """The two checks flag a broken module and pass a good one.

    arrange: a module with a good test, one whose triple sits on one line, one without a
        docstring, a Test class method with the parts out of order, and a `# Act` comment.
    act: run both checks on it.
    assert: the three bad tests and the comment are named; the good test is not.
    """
    source = '''
def test_good():
    """Summary.

    arrange: a thing.
    act: do it
        on two lines.
    assert: done.
    """

def test_one_line():
    """arrange: a. act: b. assert: c."""

async def test_bare():
    # Act
    pass

class TestGroup:
    def test_order(self):
        """assert: first.
        arrange: then.
        act: last.
        """

def helper():
    pass
'''
    docs = docstring_offences(source, "m.py")
    comments = comment_offences(source, "m.py")

    assert docs == [
        "m.py::test_one_line (line 11)",
        "m.py::test_bare (line 14)",
        "m.py::test_order (line 19)",
    ]
    assert comments == ["m.py:15"]


def test_every_test_docstring_holds_arrange_act_assert():
    """Every test function under tests/ has the IS triple in its docstring.

    arrange: every test_*.py under tests/.
    act: parse each and read its test functions' docstrings.
    assert: none lacks arrange:, act: and assert:, each starting its own line, in order.
    """
    modules = _test_modules()
    offences = [
        offence
        for module in modules
        for offence in docstring_offences(
            module.read_text(encoding="utf-8"), str(module.relative_to(TESTS.parent))
        )
    ]

    assert len(modules) > 50, "the test modules were not found"
    assert not offences, (
        f"{len(offences)} test functions lack the arrange:/act:/assert: lines "
        "(see tests/unit/test_conventions.py):\n" + "\n".join(offences)
    )


def test_no_step_comments_in_tests():
    """Tests say arrange/act/assert in their docstring, not in step comments.

    arrange: every test_*.py under tests/.
    act: read each module's comments.
    assert: none is an `# Arrange`, `# Act` or `# Assert` comment.
    """
    offences = [
        offence
        for module in _test_modules()
        for offence in comment_offences(
            module.read_text(encoding="utf-8"), str(module.relative_to(TESTS.parent))
        )
    ]

    assert not offences, "step comments; move what they say into the docstring:\n" + "\n".join(
        offences
    )
