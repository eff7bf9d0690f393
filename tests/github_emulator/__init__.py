# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""A stateful GitHub REST API emulator for tests, with a stand-in runner application.

See README.md in this directory. Start one in-process::

    emu = Emulator(token="ghp_x", repos=["owner/repo"], orgs=["org"])
    emu.start()
    emu.control.queue_job("owner/repo", ["self-hosted"], "echo hi")
    emu.stop()

or as a process: ``python3 -m tests.github_emulator --port 0 --token T --repo owner/repo``.
"""

from tests.github_emulator.control import EmulatorControl, EmulatorControlError
from tests.github_emulator.server import Emulator

__all__ = ["Emulator", "EmulatorControl", "EmulatorControlError"]
