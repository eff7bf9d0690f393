# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""Peak memory of pushing the runner archive into an instance: read whole vs streamed.

    GRT_PROJECT=... python tests/benchmark/push_memory.py [--mib 150]

A stopped container is created from the test image; a fresh Python process pushes a file of the
real runner archive's size into it through the manager's LXD adapter, once with the bytes read
whole (what the manager did before) and once as a file object (what it does now), and prints
each process's peak RSS and its growth during the push (Linux carries the parent's RSS into a
child's high-water mark, so the growth is the number to read). It measures, asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[2]
for _path in (str(_ROOT / "src"), str(_ROOT)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

_CHILD = """
import resource, sys
from github_runner_manager.lxd import PylxdClient
mode, project, name, path = sys.argv[1:]
client = PylxdClient(project=project, timeout=300)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
if mode == "bytes":
    data = open(path, "rb").read()
    client.push_file(name, "/opt/runner.tar.gz", data, 0o600)
else:
    with open(path, "rb") as stream:
        client.push_file(name, "/opt/runner.tar.gz", stream, 0o600)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def main() -> int:
    parser = argparse.ArgumentParser(prog="push_memory.py")
    parser.add_argument("--mib", type=int, default=150, help="archive size in MiB")
    args = parser.parse_args()
    import pylxd  # after the path set-up

    project = os.environ.get("GRT_PROJECT", "github-runner-tests")
    client = pylxd.Client(project=project)
    name = "grt-push-memory"
    if client.instances.exists(name):
        client.instances.get(name).delete(wait=True)
    client.instances.create(
        {"name": name, "source": {"type": "image", "alias": "github-runner-test"}}, wait=True
    )
    env = {**os.environ, "PYTHONPATH": f"{_ROOT / 'src'}:{_ROOT}"}
    try:
        with tempfile.NamedTemporaryFile(suffix=".tar.gz") as archive:
            for _ in range(args.mib):  # in pieces: a child's peak RSS starts at the parent's
                archive.write(os.urandom(2**20))
            archive.flush()
            for mode in ("bytes", "stream"):
                completed = subprocess.run(
                    [sys.executable, "-c", _CHILD, mode, project, name, archive.name],
                    env=env,
                    capture_output=True,
                    text=True,
                    check=True,
                    timeout=600,
                )
                before, peak = (int(value) / 1024 for value in completed.stdout.split()[-2:])
                print(
                    f"push of a {args.mib} MiB archive, {mode:6}: peak RSS {peak:.0f} MiB "
                    f"({peak - before:+.0f} MiB over the {before:.0f} MiB before the push)"
                )
    finally:
        client.instances.get(name).delete(wait=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
