# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""Benchmark of the runner manager (issue #8): it measures and reports, it asserts nothing.

    python tests/benchmark/bench.py [--repeat 3] [--sizes 1,4,8] [--output PATH]

or `tox -e bench -- ARGS`. See tests/benchmark/README.md for what each number means.
"""

from __future__ import annotations

import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[2]
for _path in (str(_ROOT / "src"), str(_ROOT)):
    if _path not in sys.path:
        sys.path.insert(0, _path)


def main() -> int:
    from tests.benchmark.suite import main as run  # imported once the path is set

    return run(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
