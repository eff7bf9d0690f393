# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
