# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""src-docs/ must be what scripts/generate-src-docs.sh makes of the code as it is.

The generated API docs are committed. This check regenerates them into a temporary directory with
the same script and lazydocs version as `tox -e src-docs`, and compares the two file by file, so
a docstring or signature changed without regenerating fails the unit suite with the list of stale
files and the command that fixes them.
"""

from __future__ import annotations

import difflib
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "generate-src-docs.sh"
COMMITTED = ROOT / "src-docs"
SRC = ROOT / "src"
FIX = (
    "regenerate src-docs/ with `tox -e src-docs` and commit it (the pre-commit hook in "
    "CONTRIBUTING.md does this on every commit)"
)
# How much of the first stale file's diff the failure shows.
DIFF_LINES = 40


def _docs(directory: Path) -> dict[str, str]:
    return {path.name: path.read_text(encoding="utf-8") for path in sorted(directory.glob("*.md"))}


def _module_doc_names() -> set[str]:
    """The doc file every module under src/ should have (entry points excepted)."""
    names = set()
    for path in SRC.rglob("*.py"):
        relative = path.relative_to(SRC).with_suffix("")
        if relative.name == "__main__" or "__pycache__" in relative.parts:
            continue
        parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
        names.add(".".join(parts) + ".md")
    return names


def test_every_module_has_committed_docs():
    """Every module under src/ has its page in src-docs/.

    arrange: the modules under src/.
    act: list src-docs/.
    assert: none is missing.
    """
    missing = sorted(_module_doc_names() - _docs(COMMITTED).keys())

    assert not missing, f"src-docs/ lacks {', '.join(missing)}: {FIX}"


def test_committed_docs_hold_nothing_of_the_machine_that_made_them():
    """The docs must not depend on where they were generated, or the comparison is noise.

    arrange: the committed pages of src-docs/.
    act: look for the repository path, /tmp/, object addresses and .tox/ in them.
    assert: none is there.
    """
    leaks = {
        name: marker
        for name, text in _docs(COMMITTED).items()
        for marker in (str(ROOT), "/tmp/", " at 0x", ".tox/")
        if marker in text
    }

    assert not leaks, f"machine-specific text in src-docs/ ({leaks}): {FIX}"


def test_src_docs_are_up_to_date(tmp_path: Path):
    """The committed src-docs/ are what the generator makes from the code now.

    arrange: lazydocs installed.
    act: regenerate the docs into a temporary directory.
    assert: the generator succeeds and gives the same files, none stale, missing or extra.
    """
    if importlib.util.find_spec("lazydocs") is None:
        pytest.fail(
            "lazydocs is not installed in this environment, so src-docs/ cannot be checked: "
            "the tox environment running the unit tests needs `lazydocs==0.4.8` in its deps "
            "(the version `tox -e src-docs` uses)",
            pytrace=False,
        )
    bash = shutil.which("bash") or "/bin/bash"
    generated = tmp_path / "src-docs"

    result = subprocess.run(
        [bash, str(SCRIPT), str(generated)],
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert result.returncode == 0, (
        f"{SCRIPT.name} failed (exit code {result.returncode}):\n{result.stderr[-4000:]}"
    )
    expected, committed = _docs(generated), _docs(COMMITTED)
    stale = sorted(
        name for name in expected.keys() & committed.keys() if expected[name] != committed[name]
    )
    missing = sorted(expected.keys() - committed.keys())
    extra = sorted(committed.keys() - expected.keys())
    if stale or missing or extra:
        lines = ["src-docs/ is out of date with the code:"]
        lines += [f"  stale:   src-docs/{name}" for name in stale]
        lines += [f"  missing: src-docs/{name}" for name in missing]
        lines += [f"  extra:   src-docs/{name} (its module is gone)" for name in extra]
        lines.append(f"To fix: {FIX}.")
        if stale:
            diff = difflib.unified_diff(
                committed[stale[0]].splitlines(),
                expected[stale[0]].splitlines(),
                f"src-docs/{stale[0]} (committed)",
                f"src-docs/{stale[0]} (generated)",
                lineterm="",
            )
            lines += ["", *list(diff)[:DIFF_LINES]]
        pytest.fail("\n".join(lines), pytrace=False)
