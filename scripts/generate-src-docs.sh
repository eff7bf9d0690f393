#!/usr/bin/env bash
# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
#
# Generate the Markdown API docs of every module under src/ from their Google docstrings, with
# lazydocs (pinned in tox.ini), one file per module plus an index, README.md.
#
#   bash scripts/generate-src-docs.sh [OUTPUT_DIR]     # default: src-docs/ (replaced whole)
#
# Run it through `tox -e src-docs`, which installs lazydocs and the charm's requirements (each
# module is imported to read its docstrings). The unit test tests/unit/test_src_docs.py runs it
# into a temporary directory and compares the result with src-docs/.
#
# The output is deterministic, so that such a comparison means something: no watermark (it
# holds the date), source links relative to the repository root (`../src/...`, whatever the
# output directory), and the values that depend on the machine or the process rewritten:
# addresses of default functions (`<function run at 0x7f...>` becomes `<function run>`) and
# paths of the Python environment, the repository, the home and the temporary directories.
#
# Environment:
#   PYTHON  the interpreter with lazydocs and the requirements (default: python3 on PATH)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUTPUT=${1:-$ROOT/src-docs}
PYTHON=${PYTHON:-python3}

rm -rf "$OUTPUT"
mkdir -p "$OUTPUT"

PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" - "$ROOT" "$OUTPUT" <<'PYTHON'
import importlib
import os
import re
import sys
import sysconfig
import tempfile
from pathlib import Path

from lazydocs.generation import MarkdownGenerator

root, output = Path(sys.argv[1]).resolve(), Path(sys.argv[2])
src = root / "src"

# Every module under src/ except the `python3 -m` entry points (importing one runs it).
modules = []
for path in sorted(src.rglob("*.py")):
    relative = path.relative_to(src).with_suffix("")
    if relative.name == "__main__" or "__pycache__" in relative.parts:
        continue
    parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
    modules.append(".".join(parts))

# The machine's paths that can leak into rendered default values, longest first so that a path
# inside another is rewritten by its most specific name.
replacements = {
    sys.executable: "<python>",
    os.path.realpath(sys.executable): "<python>",
    sys.prefix: "<prefix>",
    sys.base_prefix: "<base prefix>",
    sysconfig.get_paths()["purelib"]: "<site-packages>",
    str(root): "<repository>",
    str(Path.home()): "<home>",
    tempfile.gettempdir(): "<tmp>",
}
replacements = {path: name for path, name in replacements.items() if len(path) > 1}
ordered = sorted(replacements.items(), key=lambda item: len(item[0]), reverse=True)
address = re.compile(r"\s+at 0x[0-9a-fA-F]+>")


def normalise(text: str) -> str:
    text = address.sub(">", text)
    for path, name in ordered:
        text = text.replace(path, name)
    return text


generator = MarkdownGenerator(
    src_root_path=str(root), src_base_url="../", remove_package_prefix=True
)
for name in modules:
    # An import error must fail the run: a module missing from the docs would go unnoticed.
    module = importlib.import_module(name)
    markdown = generator.module2md(module)
    if markdown:
        text = normalise("<!-- markdownlint-disable -->\n" + markdown)
        (output / f"{name}.md").write_text(text, encoding="utf-8")
        print(f"wrote {name}.md")
index = "<!-- markdownlint-disable -->\n" + generator.overview2md()
(output / "README.md").write_text(normalise(index), encoding="utf-8")
print(f"wrote README.md ({len(modules)} modules)")
PYTHON
