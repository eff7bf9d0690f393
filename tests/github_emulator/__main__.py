# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""Run the emulator as a process: ``python3 -m tests.github_emulator --port 0 --token T ...``.

It prints exactly one line, ``ready http://127.0.0.1:PORT``, once it accepts connections, and
stops cleanly on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from tests.github_emulator import request_validation
from tests.github_emulator.server import Emulator


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python3 -m tests.github_emulator",
        description="A GitHub REST API emulator on a loopback port (API under /api/v3).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    parser.add_argument("--port", type=int, default=0, help="port; 0 picks a free one")
    parser.add_argument("--token", required=True, help="accepted personal access token")
    parser.add_argument(
        "--repo", action="append", default=[], metavar="OWNER/REPO", help="an existing repo"
    )
    parser.add_argument("--org", action="append", default=[], help="an existing organisation")
    parser.add_argument(
        "--offline-after",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="a runner without heartbeat for this long shows offline",
    )
    parser.add_argument("--rate-limit", type=int, default=5000, help="core requests per hour")
    parser.add_argument("--runner-version", default="2.330.0", help="runner version to list")
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    parser.add_argument(
        "--openapi",
        type=Path,
        help="GitHub's OpenAPI description (api.github.com.json): refuse and record requests "
        "that break it (needs jsonschema and openapi-schema-validator)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM or SIGINT.

    Args:
        argv: the command line arguments (default: ``sys.argv[1:]``).

    Returns:
        The exit status.
    """
    args = _parser().parse_args(argv)
    try:
        emulator = Emulator(
            token=args.token,
            repos=args.repo,
            orgs=args.org,
            host=args.host,
            port=args.port,
            offline_after=args.offline_after,
            rate_limit=args.rate_limit,
            runner_version=args.runner_version,
            verbose=args.verbose,
            request_validator=(
                request_validation.RequestValidator.from_file(args.openapi)
                if args.openapi
                else None
            ),
        )
    except (ValueError, OSError, ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        del signum, frame
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    emulator.start()
    print(f"ready {emulator.url}", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
