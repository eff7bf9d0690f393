#!/usr/bin/env bash
# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
#
# The pack stage (`tox -e pack`): pack the charm with charmcraft itself and check the artifact.
#
# charmcraft comes from PyPI into its own virtual environment, cached across runs (like tox in
# .ci/run); charmcraft's part lifecycle needs python-apt, which is linked in from the system
# package (it is not on PyPI). The build runs in a temporary copy of the project and the .charm
# lands in GRT_PACK_DIR, never in the repository. What runs is described in
# tests/pack/charmcraft_pack.py; the functional test tests/functional/test_packed_charm.py then
# runs the artifact the way Juju does.
#
# Environment:
#   GRT_CHARMCRAFT_VERSION  charmcraft version from PyPI (default 4.5.0)
#   GRT_CHARMCRAFT_VENV     its virtual environment (default /var/cache/github-runner-ci/charmcraft-<version>)
#   GRT_PACK_DIR            where the .charm goes (default /var/tmp/github-runner-pack)
set -euo pipefail

PROJECT=$(cd "$(dirname "$0")/../.." && pwd)
VERSION=${GRT_CHARMCRAFT_VERSION:-4.5.0}
VENV=${GRT_CHARMCRAFT_VENV:-/var/cache/github-runner-ci/charmcraft-$VERSION}
OUT=${GRT_PACK_DIR:-/var/tmp/github-runner-pack}

log() { printf 'pack: %s\n' "$*" >&2; }

# The distribution's own Python builds the charm's venv (charm_builder.py runs `python3` from
# PATH), as it would on the target machine; tox puts its own venv first on PATH, so reset it.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

if [ ! -x "$VENV/bin/charmcraft" ] || ! "$VENV/bin/charmcraft" version 2>/dev/null | grep -qx "charmcraft $VERSION"; then
    log "installing charmcraft $VERSION from PyPI into $VENV"
    rm -rf "$VENV"
    mkdir -p "$(dirname "$VENV")"
    /usr/bin/python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet "charmcraft==$VERSION"
fi
# python-apt (craft-parts' apt backend) is not on PyPI: expose only the system package's modules.
site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
apt_dir="$VENV/python-apt"
if [ ! -e "$apt_dir/apt_pkg.so" ] && [ ! -e "$site/github_runner_python_apt.pth" ]; then
    mkdir -p "$apt_dir"
    for module in /usr/lib/python3/dist-packages/apt /usr/lib/python3/dist-packages/aptsources \
        /usr/lib/python3/dist-packages/apt_pkg.*.so /usr/lib/python3/dist-packages/apt_inst.*.so; do
        [ -e "$module" ] && ln -sfn "$module" "$apt_dir/"
    done
    echo "$apt_dir" >"$site/github_runner_python_apt.pth"
fi
"$VENV/bin/python" -c 'import apt_pkg' 2>/dev/null || {
    log "python-apt is missing: apt-get install python3-apt"
    exit 1
}

WORK=$(mktemp -d /var/tmp/github-runner-pack-work.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
# XDG_RUNTIME_DIR: charmcraft wants one; give it a private one under the work directory.
export XDG_RUNTIME_DIR="$WORK/run"
mkdir -p -m 700 "$XDG_RUNTIME_DIR"
cd "$WORK"
start=$(date +%s)
"$VENV/bin/python" "$PROJECT/tests/pack/charmcraft_pack.py" --project "$PROJECT" --work "$WORK" --out "$OUT"
log "took $(( $(date +%s) - start )) s"
