# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""Command line of the runner manager: what the systemd timer and the charm's actions run.

    python3 -m github_runner_manager --config FILE reconcile
    python3 -m github_runner_manager --config FILE check
    python3 -m github_runner_manager --config FILE flush [--busy] [--no-reconcile]
    python3 -m github_runner_manager --config FILE update-dependencies
    python3 -m github_runner_manager --config FILE build-image [--type TYPE]
    python3 -m github_runner_manager --config FILE remove-images
    python3 -m github_runner_manager --config FILE serve-metrics [--port PORT]
    python3 -m github_runner_manager --config FILE replenish

Each command but serve-metrics (a long-running Prometheus endpoint on loopback) and replenish (a
long-running process replacing finished runners as LXD reports them gone, see replenish.py)
prints one JSON document on stdout; logs go to stderr. Exit codes (each error kind's code is
in the table of `errors.KINDS`): 0 success, 1 unexpected error, 2 configuration error, 3 GitHub
refused the token, its permissions or the path, 4 transient failure (GitHub unavailable or rate
limited, LXD failure, a runner that could not be created, an image build that failed), 5 another
run holds the lock.

`build-image` holds a lock of its own rather than the manager's: a build takes minutes, and the
timer's reconciliations keep replacing runners meanwhile. Two builds never overlap.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from . import exporter
from .applier import BUSY_RELEASE_TIMEOUT
from .binary import runner_architecture
from .config import ManagerConfig, api_base_url, load_config
from .errors import (
    EXIT_BUSY,
    EXIT_CONFIG,
    EXIT_GITHUB_AUTH,
    EXIT_OK,
    EXIT_TRANSIENT,
    EXIT_UNEXPECTED,
    ConfigError,
    ImageBuildError,
    LockBusyError,
    RunnerManagerError,
    exit_code_of,
)
from .github import GhApiClient, ResponseCache
from .image import ImageBuilder, lock_path
from .lxd import LxdEventStream, PylxdClient
from .manager import RunnerManager
from .models import InstanceType, parse_github_path
from .planner import runner_name_pattern
from .replenish import Replenisher
from .report import ErrorEntry, Report
from .utils import manager_lock

__all__ = [
    "EXIT_BUSY",
    "EXIT_CONFIG",
    "EXIT_GITHUB_AUTH",
    "EXIT_OK",
    "EXIT_TRANSIENT",
    "EXIT_UNEXPECTED",
    "build_manager",
    "exit_code",
    "image_builder",
    "image_refresher",
    "main",
]

# Seconds a build waits for the image lock: long enough to ride out the charm's instant test of
# the lock (is a build running?), short enough to give up at once on a build in progress.
IMAGE_LOCK_TIMEOUT = 5.0

logger = logging.getLogger("github_runner_manager")


def exit_code(report: Report) -> int:
    """Map a report's errors to the command's exit code.

    Args:
        report: the run's report.

    Returns:
        The exit code (see the module docstring).
    """
    return exit_code_of(report.error_kinds())


def _apply_proxy_environment(config: ManagerConfig) -> None:
    """Let the manager's own GitHub calls and downloads use the model's proxy."""
    proxy = config.proxy
    if proxy.http:
        os.environ.setdefault("http_proxy", proxy.http)
    if proxy.https:
        os.environ.setdefault("https_proxy", proxy.https)
    if proxy.configured:
        os.environ["no_proxy"] = proxy.bypass


def _make_state_dir(config: ManagerConfig) -> None:
    """Create the state directory, or say which setting is at fault.

    Raises:
        ConfigError: if it cannot be created (a read-only file system, a file in the way).
    """
    try:
        config.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise ConfigError(
            f"state_dir: cannot create {config.state_dir}: {exc.strerror or exc}"
        ) from None


def build_manager(
    config: ManagerConfig,
    clock: Callable[[], datetime.datetime] | None = None,
    busy_release_timeout: float = BUSY_RELEASE_TIMEOUT,
) -> RunnerManager:
    """Build a manager with the real LXD and GitHub clients.

    Args:
        config: the configuration.
        clock: the current time (the wall clock by default).
        busy_release_timeout: how long a busy flush waits for GitHub to release the runners
            whose jobs it killed.

    Returns:
        The manager.

    Raises:
        RunnerManagerError: if LXD cannot be reached or the token cannot be read.
    """
    _apply_proxy_environment(config)
    _make_state_dir(config)
    github = GhApiClient(
        config.github.github_path,
        config.github.read_token(),
        config.github.api_url,
        timeout=config.timing.api_timeout,
        retries=config.timing.api_retries,
        cache=ResponseCache(config.state_dir / "github-cache.json"),
    )
    lxd = PylxdClient(
        project=config.lxd.project, socket=config.lxd.socket, timeout=config.lxd.timeout
    )

    def github_for_target(url: str, path: str) -> GhApiClient:
        # Runners registered before the path or github-url option changed: same token.
        return GhApiClient(
            parse_github_path(path, config.github.group),
            config.github.read_token(),
            api_base_url(url),
            timeout=config.timing.api_timeout,
            retries=config.timing.api_retries,
        )

    return RunnerManager(
        config,
        lxd,
        github,
        architecture=runner_architecture(),
        clock=clock,
        github_for_target=github_for_target,
        busy_release_timeout=busy_release_timeout,
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python3 -m github_runner_manager",
        description="Keep ephemeral GitHub Actions runners alive in LXD.",
    )
    parser.add_argument("--config", required=True, type=Path, help="configuration file")
    parser.add_argument(
        "--log-level", default=os.environ.get("GITHUB_RUNNER_LOG_LEVEL", "INFO"), help="log level"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("reconcile", help="bring the runners to the configured state")
    commands.add_parser("check", help="count the runners by state (changes nothing)")
    flush = commands.add_parser("flush", help="remove idle runners, then reconcile")
    flush.add_argument("--busy", action="store_true", help="remove busy runners too")
    flush.add_argument(
        "--no-reconcile", action="store_true", help="do not replace the removed runners"
    )
    commands.add_parser(
        "update-dependencies",
        help="refresh the runner application (and image) and replace outdated runners",
    )
    build = commands.add_parser(
        "build-image", help="build the runner image and publish it (takes minutes)"
    )
    build.add_argument(
        "--type",
        choices=[t.value for t in InstanceType],
        action="append",
        help="the instance type to build for (default: the types with runners); repeatable",
    )
    commands.add_parser(
        "remove-images", help="delete this manager's runner images (when the unit goes)"
    )
    serve = commands.add_parser(
        "serve-metrics", help="serve the last report as Prometheus gauges on 127.0.0.1"
    )
    serve.add_argument("--port", type=int, help="TCP port (default: metrics.exporter_port)")
    commands.add_parser(
        "replenish",
        help="replace finished runners as LXD reports them (long-running, stops on SIGTERM)",
    )
    return parser


def _replenish(config: ManagerConfig) -> int:
    """Run the replenisher until SIGTERM or SIGINT; the batch in progress finishes first."""
    try:
        manager = build_manager(config)
    except RunnerManagerError as exc:
        logger.error("%s", exc)
        return exc.kind.info.exit_code
    events = LxdEventStream(project=config.lxd.project, socket=config.lxd.socket)
    replenisher = Replenisher(manager, events, runner_name_pattern(config.name_prefix))

    def stop(signum: int, _: object) -> None:
        logger.info("stopping (signal %d): the batch in progress finishes first", signum)
        replenisher.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    logger.info("replenishing the runners of %s as LXD reports them gone", config.unit)
    replenisher.run()
    logger.info("stopped")
    return EXIT_OK


def _print(document: object) -> None:
    sys.stdout.write(json.dumps(document, indent=2, default=str) + "\n")
    sys.stdout.flush()


def _fail(exc: RunnerManagerError, context: str = "") -> int:
    """Log an error that ended a command, print it as the command's document, return its code.

    Args:
        exc: the error.
        context: what failed, to start the log line with.

    Returns:
        The exit code of the error's kind (see `errors.KINDS`).
    """
    logger.error("%s%s", f"{context}: " if context else "", exc)
    _print({"ok": False, "errors": [{"kind": exc.kind.value, "message": str(exc)}]})
    return exc.kind.info.exit_code


def _serve_metrics(config: ManagerConfig, port: int | None) -> int:
    """Serve the Prometheus endpoint until stopped (SIGTERM or SIGINT)."""
    server = exporter.make_server(
        config.report_file, config.metrics.check_interval, port or config.metrics.exporter_port
    )
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    logger.info("serving metrics on http://127.0.0.1:%d/metrics", server.server_address[1])
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return EXIT_OK


class _Terminated(BaseException):
    """systemd stopped the run (SIGTERM): unwind so the builder instance is deleted."""


def _raise_terminated(*_: object) -> None:
    raise _Terminated


def image_builder(config: ManagerConfig) -> ImageBuilder:
    """Build an image builder on the real LXD.

    Args:
        config: the configuration.

    Returns:
        The builder.

    Raises:
        LxdError: if LXD cannot be reached.
    """
    _apply_proxy_environment(config)
    _make_state_dir(config)
    lxd = PylxdClient(
        project=config.lxd.project, socket=config.lxd.socket, timeout=config.lxd.timeout
    )
    return ImageBuilder(config, lxd)


def _build_image(config: ManagerConfig, types: list[str] | None) -> int:
    """Run `build-image`: build, print the record, map it to an exit code."""
    if not config.image.build:
        return _fail(
            ConfigError("image.build is off in the configuration: runners use runners.base_image")
        )
    # A build runs for minutes; when systemd stops it (its timeout, a shutdown), unwind so that
    # the builder instance is deleted rather than left running.
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        builder = image_builder(config)
        with manager_lock(lock_path(config), IMAGE_LOCK_TIMEOUT):
            record = builder.build([InstanceType(t) for t in types] if types else None)
    except _Terminated:
        return _fail(
            ImageBuildError("stopped (SIGTERM) before the build finished; the builder was deleted")
        )
    except RunnerManagerError as exc:
        return _fail(exc)
    finally:
        signal.signal(signal.SIGTERM, previous)
    _print(record.model_dump(mode="json"))
    return EXIT_OK if record.ok else EXIT_TRANSIENT


def _remove_images(config: ManagerConfig) -> int:
    """Run `remove-images`: delete the manager's images and any builder left."""
    try:
        builder = image_builder(config)
        with manager_lock(lock_path(config), config.timing.lock_timeout):
            removed = builder.remove_all()
    except RunnerManagerError as exc:
        return _fail(exc)
    _print({"ok": True, "removed": removed})
    return EXIT_OK


def image_refresher(config: ManagerConfig) -> Callable[[Report], None]:
    """What `update-dependencies` runs first when the manager builds the image.

    A build that is already running is not waited for: it publishes a fresh image anyway, and
    the next reconciliation replaces the idle runners on the old one.

    Args:
        config: the configuration.

    Returns:
        A function building the image and noting the outcome in the report.
    """

    def refresh(report: Report) -> None:
        report.image_updated = False
        try:
            builder = image_builder(config)
            with manager_lock(lock_path(config), IMAGE_LOCK_TIMEOUT):
                record = builder.build()
        except LockBusyError:
            logger.info("an image build is already running: not starting another")
            report.image_build_running = True
            return
        except RunnerManagerError as exc:
            report.errors.append(ErrorEntry(kind=exc.kind, message=str(exc)))
            return
        report.image_updated = bool(record.images)
        report.errors.extend(record.errors)

    return refresh


def _standalone(args: argparse.Namespace, config: ManagerConfig) -> int | None:
    """Run the commands that need no manager (or build their own); None for the others."""
    if args.command == "serve-metrics":
        return _serve_metrics(config, args.port)
    if args.command == "build-image":
        return _build_image(config, args.type)
    if args.command == "remove-images":
        return _remove_images(config)
    if args.command == "replenish":
        return _replenish(config)
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line.

    Args:
        argv: the arguments (sys.argv[1:] by default).

    Returns:
        The exit code.
    """
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # ghapi and urllib3 would log request details at debug level; keep them quiet.
    # pylxd's pool warns when parallel calls share its connections: harmless, so keep it quiet.
    for noisy in ("urllib3", "ws4py", "fastcore"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        return _fail(exc, "invalid configuration")
    standalone = _standalone(args, config)
    if standalone is not None:
        return standalone
    try:
        manager = build_manager(config)
    except RunnerManagerError as exc:
        return _fail(exc)

    if args.command == "check":
        try:
            result = manager.check()
        except RunnerManagerError as exc:
            return _fail(exc)
        _print(result.model_dump(mode="json"))
        return EXIT_OK

    if args.command == "reconcile":
        report = manager.reconcile()
    elif args.command == "flush":
        report = manager.flush(busy=args.busy, reconcile=not args.no_reconcile)
    else:
        refresh = image_refresher(config) if config.image.build else None
        report = manager.update_dependencies(refresh)
    for error in report.errors:
        logger.error(
            "%s%s: %s", f"{error.runner}: " if error.runner else "", error.kind, error.message
        )
    _print(report.model_dump(mode="json"))
    return exit_code(report)
