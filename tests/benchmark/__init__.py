# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""The benchmark of issue #8: runner spawn latency, replacement, API cost, reconcile cost."""
