#!/usr/bin/env bash
# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
#
# Quick start of the runner manager, as root, on a fresh Debian 12 (or Ubuntu) machine:
# prepares the LXD test bed and a Python environment with the charm's requirements, then runs
# scripts/quickstart.py with the given arguments (see `--help`). Without arguments it uses the
# bundled GitHub API emulator on 127.0.0.1: no Juju, no GitHub account.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "run as root: it installs LXD and manages instances" >&2
    exit 1
fi

bash tests/testbed/setup.sh

VENV=${GRT_QUICKSTART_VENV:-/var/cache/github-runner-quickstart/venv}
stamp="$VENV/.requirements-$(sha256sum requirements.txt | cut -c1-16)"
if [ ! -e "$stamp" ]; then
    echo "quickstart: preparing a Python environment in $VENV" >&2
    python3 -m venv "$VENV"
    if ! "$VENV/bin/pip" install --quiet -r requirements.txt >"$VENV.log" 2>&1; then
        tail -n 30 "$VENV.log" >&2
        exit 1
    fi
    touch "$stamp"
fi
exec "$VENV/bin/python" scripts/quickstart.py "$@"
