# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""Entry point: `python3 -m github_runner_manager`."""

import sys

from .cli import main

sys.exit(main())
