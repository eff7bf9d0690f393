# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""Tests and test infrastructure (GitHub API emulator, LXD test bed)."""
