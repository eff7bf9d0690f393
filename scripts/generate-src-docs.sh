#!/usr/bin/env bash
# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
#
# Generate the Markdown API docs in src-docs/ from the Google docstrings of every module in src/.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf src-docs
mkdir -p src-docs
cd src
modules=()
for file in *.py github_runner_manager/*.py; do
    case "$file" in
        */__main__.py) continue ;;
    esac
    module=${file%.py}
    modules+=("${module//\//.}")
done
PYTHONPATH=. lazydocs --no-watermark --output-path ../src-docs "${modules[@]}"
