# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""The runner manager: keeps ephemeral GitHub Actions runners alive in LXD, for one charm unit.

This package never imports ops: it runs from the charm's systemd timer and actions as
`python3 -m github_runner_manager`, and works without Juju. pylxd is imported only in `lxd.py`,
ghapi only in `github.py`.
"""
