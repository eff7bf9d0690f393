# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""The README's first command, `bash scripts/quickstart.sh`, run end to end on the emulator.

It prepares the test bed, starts the bundled emulator, keeps two runners on real LXD, runs a job
and replaces its runner, then removes everything. The run is bounded in time, and afterwards
nothing it made is left: no instance or profile in the LXD project, no process of its session,
no listener on the emulator's port, no file in its temporary directory or in the repository.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
from pathlib import Path

import pylxd
import pytest

from .conftest import PROJECT

pytestmark = pytest.mark.lxd

ROOT = Path(__file__).resolve().parents[2]
TIME_LIMIT = 900  # seconds; the first run also builds the quick start's Python environment


def session_processes(session: int) -> list[str]:
    """The processes still in a session (by /proc), as `pid command` strings."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getsid(int(entry.name)) != session:
                continue
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (ProcessLookupError, PermissionError, FileNotFoundError):
            continue
        found.append(f"{entry.name} {command.strip()}")
    return found


def repository_files() -> set[str]:
    """Every file git sees in the repository tree, ignored ones included (not .tox)."""
    listing = subprocess.run(
        ["git", "status", "--porcelain", "-z", "--ignored", "--untracked-files=all"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    return {entry for entry in listing if entry and not entry[3:].startswith(".tox/")}


def test_quickstart_runs_end_to_end_and_leaves_nothing(
    lxd_client: pylxd.Client, tmp_path: Path
) -> None:
    """The README's quick start runs end to end and leaves nothing.

    arrange: the test bed.
    act: follow the README's quick start.
    assert: a job ran, and nothing is left afterwards.
    """
    temp = tmp_path / "tmp"
    temp.mkdir()
    instances_before = {i.name for i in lxd_client.instances.all()}
    profiles_before = {p.name for p in lxd_client.profiles.all()}
    files_before = repository_files()
    env = {
        **os.environ,
        "TMPDIR": str(temp),
        "GRT_PROJECT": PROJECT,
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    env.pop("PYTHONPATH", None)  # the quick start sets up its own environment
    process = subprocess.Popen(
        ["bash", "scripts/quickstart.sh", "--project", PROJECT],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=TIME_LIMIT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail(f"the quick start took over {TIME_LIMIT}s:\n{output[-3000:]}")

    assert process.returncode == 0, output[-3000:]
    assert re.search(r"job \d+ concluded success on quickstart-0-", output), output[-3000:]
    assert "runners after the replacement" in output
    emulator_url = re.search(r"GitHub API emulator on http://127\.0\.0\.1:(\d+)", output)
    assert emulator_url, output[:2000]
    # Nothing left behind.
    assert session_processes(process.pid) == []
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", int(emulator_url.group(1))), timeout=5).close()
    assert {i.name for i in lxd_client.instances.all()} == instances_before
    assert {p.name for p in lxd_client.profiles.all()} == profiles_before
    assert list(temp.iterdir()) == []
    assert repository_files() == files_before
