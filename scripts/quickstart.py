# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""Quick start: the runner manager keeping two container runners, watched as a job runs.

Without arguments it needs no Juju and no GitHub account: it starts the bundled GitHub API
emulator on 127.0.0.1, runs the manager against it on the local LXD test bed, queues a sample job
and prints the runner table while the job runs on a fresh runner and the runner is replaced.

With `--path` and `--token-file` it runs against github.com (or `--github-url`) instead: dispatch
a workflow with `runs-on: [self-hosted, quickstart]` and watch. The LXD network must then give the
runners internet access (the test bed's bridge deliberately has no addresses).

Run it through scripts/quickstart.sh, which prepares LXD and the Python environment.
"""

from __future__ import annotations

import argparse
import datetime
import logging
import secrets
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from github_runner_manager.cli import build_manager  # noqa: E402
from github_runner_manager.config import ManagerConfig  # noqa: E402
from github_runner_manager.manager import RunnerManager  # noqa: E402

DEMO_REPO = "quickstart/demo"
SAMPLE_JOB = 'echo "Hello from $RUNNER_NAME"; uname -sr; sleep 5; echo done'


def table(manager: RunnerManager, title: str) -> None:
    """Print the unit's runners as a table."""
    instances, github_runners = manager.observe()
    views = manager.classify(instances, github_runners, {})
    now = datetime.datetime.now(datetime.timezone.utc)
    print(f"\n{title}  ({now:%H:%M:%S})")
    print(f"  {'RUNNER':<32} {'TYPE':<10} {'STATE':<12} {'GITHUB':<8} {'AGE':>6}")
    for view in views:
        github = view.github
        status = "online" if github and github.online else ("offline" if github else "-")
        age = ""
        if view.instance is not None:
            age = f"{int((now - view.instance.created_at).total_seconds())}s"
        kind = view.instance_type.value if view.instance_type else "-"
        print(f"  {view.name:<32} {kind:<10} {view.state.value:<12} {status:<8} {age:>6}")
    if not views:
        print("  (no runners)")
    sys.stdout.flush()


def summary(report: Any) -> str:
    """One line about what a reconciliation did."""
    parts = [f"created {len(report.created)}", f"removed {len(report.removed)}"]
    if report.errors:
        parts.append("errors: " + "; ".join(e.message for e in report.errors))
    return f"{report.command} in {report.duration:.1f}s: " + ", ".join(parts)


def wait_until(predicate: Any, timeout: float, interval: float = 1.0) -> bool:
    """Poll a predicate until it holds or the timeout passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def run_emulated(args: argparse.Namespace, state_dir: Path) -> int:
    """The embedded default: emulator on loopback, test-bed LXD."""
    from tests.github_emulator import Emulator

    token = f"ghp_{secrets.token_hex(18)}"
    emulator = Emulator(token=token, repos=[DEMO_REPO], offline_after=10.0)
    emulator.start()
    print(f"GitHub API emulator on {emulator.url} (repository {DEMO_REPO})")
    config = make_config(args, state_dir, github_url=emulator.url, path=DEMO_REPO, token=token)
    manager = build_manager(config)
    try:
        print(summary(manager.reconcile()))
        wait_until(lambda: _online(manager) >= args.containers, timeout=60)
        table(manager, "runners, idle and waiting for a job")

        job = emulator.control.queue_job(DEMO_REPO, ["self-hosted", "quickstart"], SAMPLE_JOB)
        print(f"\nqueued job {job['id']}: {SAMPLE_JOB!r}")
        job_done = False
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            state = emulator.control.job(job["id"])
            table(manager, f"job {state['status']} on {state.get('runner_name') or '-'}")
            if state["status"] == "completed":
                print(
                    f"\njob {job['id']} concluded {state['conclusion']} on {state['runner_name']}"
                )
                job_done = True
                break
            time.sleep(2)
        if not job_done:
            print("the job did not complete in time", file=sys.stderr)
            return 1
        print("\nthe runner powered off after its one job; reconciling replaces it")
        print(summary(manager.reconcile()))
        wait_until(lambda: _online(manager) >= args.containers, timeout=60)
        table(manager, "runners after the replacement")
        return 0
    finally:
        if not args.keep:
            print("\nremoving the runners (flush --busy)")
            print(summary(manager.flush(busy=True, reconcile=False)))
        emulator.stop()


def run_github(args: argparse.Namespace, state_dir: Path) -> int:
    """Against a real GitHub: reconcile every interval until interrupted."""
    config = make_config(
        args,
        state_dir,
        github_url=args.github_url,
        path=args.path,
        token_file=str(Path(args.token_file).resolve()),
    )
    manager = build_manager(config)
    print(
        f"keeping {args.containers} runners for {args.path}; dispatch a workflow with "
        "runs-on: [self-hosted, quickstart]. Ctrl-C stops and removes the runners."
    )
    stop = []
    signal.signal(signal.SIGINT, lambda *_: stop.append(True))
    try:
        while not stop:
            print(summary(manager.reconcile()))
            table(manager, "runners")
            wait_until(lambda: bool(stop), timeout=args.interval)
    finally:
        print(summary(manager.flush(busy=True, reconcile=False)))
    return 0


def _online(manager: RunnerManager) -> int:
    _, github_runners = manager.observe()
    return sum(1 for runner in github_runners if runner.online)


def make_config(
    args: argparse.Namespace, state_dir: Path, *, github_url: str, path: str, **token: str
) -> ManagerConfig:
    """The manager configuration of the quick start."""
    return ManagerConfig.model_validate(
        {
            "unit": "quickstart/0",
            "name_prefix": "quickstart-0",
            "flavor": "quickstart",
            "github": {"url": github_url, "path": path, **token},
            "runners": {
                "containers": args.containers,
                "base_image": args.image,
                "cpu": 1,
                "memory": "1GiB",
                "disk": "2GiB",
            },
            "lxd": {"project": args.project, "storage_pool": args.pool},
            "timing": {"registration_timeout": 120},
            "state_dir": str(state_dir),
        }
    )


def main() -> int:
    """Parse the arguments and run the quick start."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--containers", type=int, default=2, help="runners to keep [2]")
    parser.add_argument("--path", help="owner/repo or org on a real GitHub")
    parser.add_argument("--token-file", help="file holding the GitHub token")
    parser.add_argument("--github-url", default="https://github.com", help="GitHub server URL")
    parser.add_argument("--project", default="github-runner-tests", help="LXD project")
    parser.add_argument("--image", default="github-runner-test", help="LXD image alias")
    parser.add_argument("--pool", default="default", help="LXD storage pool")
    parser.add_argument("--interval", type=float, default=30, help="seconds between reconciles")
    parser.add_argument("--keep", action="store_true", help="leave the runners running")
    parser.add_argument("--verbose", action="store_true", help="show the manager's logs")
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("urllib3", "ws4py"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    if bool(args.path) != bool(args.token_file):
        parser.error("--path and --token-file go together")
    with tempfile.TemporaryDirectory(prefix="github-runner-quickstart.") as tmp:
        state_dir = Path(tmp)
        if args.path:
            return run_github(args, state_dir)
        return run_emulated(args, state_dir)


if __name__ == "__main__":
    sys.exit(main())
