# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""The runner manager as a host service: its files, its systemd units and its command line.

The charm writes the manager's configuration file and a root-only token file, renders the
manager's systemd units from the charm's `templates/` (the reconcile service and its timer, the
replenisher, the image build service and its timer, the Prometheus endpoint), and runs the
manager's command line for the actions and for the final flush. Nothing here knows about Juju;
every `ensure_*` function says whether it changed something, and nothing is rewritten, reloaded
or restarted when nothing changed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import logging
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import jinja2
from charmlibs import systemd

from github_runner_manager import (
    ImageBuildError,
    ManagerConfig,
    Report,
    atomic_write,
    image_building,
    image_status,
    image_types,
    read_report,
)

logger = logging.getLogger(__name__)

SERVICE_TEMPLATE = "github-runner-manager.service.j2"
TIMER_TEMPLATE = "github-runner-manager.timer.j2"
EXPORTER_TEMPLATE = "github-runner-exporter.service.j2"
IMAGE_SERVICE_TEMPLATE = "github-runner-image.service.j2"
IMAGE_TIMER_TEMPLATE = "github-runner-image.timer.j2"
REPLENISH_TEMPLATE = "github-runner-replenish.service.j2"
# How long the replenisher may take to stop: the batch of spawns in progress finishes first.
REPLENISH_STOP_TIMEOUT = 300
# What one image build may take beyond its script's time limit (pulling the source image,
# booting the builder, publishing), per image type.
IMAGE_BUILD_OVERHEAD = 2400
MANAGER_MODULE = "github_runner_manager"
CONFIG_ROOT = Path("/etc/github-runner")
STATE_ROOT = Path("/var/lib/github-runner")
SYSTEMD_DIR = Path("/etc/systemd/system")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class ServiceError(Exception):
    """systemd refused an operation, or the manager's command line could not run in time."""


@dataclasses.dataclass(frozen=True)
class Unit:
    """A systemd unit of the manager's.

    Attributes:
        name: the unit's name, e.g. `github-runner-manager-<app>-<n>.timer`.
        file: its unit file.
    """

    name: str
    file: Path

    @property
    def stem(self) -> str:
        """The name without its type suffix (the journal's identifier of a service)."""
        return self.name.rpartition(".")[0]


@dataclasses.dataclass(frozen=True)
class ManagerPaths:
    """Where one unit's runner manager keeps its files, and its systemd units.

    Every unit's name ends with `<app>-<n>`, so that two applications on one machine do not
    collide.

    Attributes:
        unit: the Juju unit's scope, `<app>-<n>`.
        config_dir: the root-only directory of the configuration and token files.
        state_dir: the manager's state directory (lock, caches, report).
        systemd_dir: where the unit files go.
        service: the oneshot reconciliation.
        timer: the timer starting `service` every interval.
        exporter: the Prometheus endpoint.
        replenish: the event-driven replenisher.
        image_service: the oneshot image build.
        image_timer: the timer starting `image_service` every six hours.
        config_file: the manager's configuration file (JSON, root-only, without the token).
        token_file: the root-only file holding the GitHub token.
        report_file: the JSON report the manager writes after each run.
    """

    unit: str
    config_dir: Path
    state_dir: Path
    systemd_dir: Path
    service: Unit
    timer: Unit
    exporter: Unit
    replenish: Unit
    image_service: Unit
    image_timer: Unit
    config_file: Path
    token_file: Path
    report_file: Path

    @classmethod
    def for_unit(
        cls,
        app: str,
        unit_number: int,
        *,
        config_root: Path = CONFIG_ROOT,
        state_root: Path = STATE_ROOT,
        systemd_dir: Path = SYSTEMD_DIR,
    ) -> ManagerPaths:
        """Return the paths of a unit's manager.

        Args:
            app: the application name.
            unit_number: the unit number.
            config_root: the parent of the configuration directories.
            state_root: the parent of the state directories.
            systemd_dir: where the unit files go.

        Returns:
            The paths.
        """
        scoped = f"{app}-{unit_number}"
        config_dir, state_dir = config_root / scoped, state_root / scoped

        def named(role: str, kind: str) -> Unit:
            name = f"github-runner-{role}-{scoped}.{kind}"
            return Unit(name, systemd_dir / name)

        return cls(
            unit=scoped,
            config_dir=config_dir,
            state_dir=state_dir,
            systemd_dir=systemd_dir,
            service=named("manager", "service"),
            timer=named("manager", "timer"),
            exporter=named("exporter", "service"),
            replenish=named("replenish", "service"),
            image_service=named("image", "service"),
            image_timer=named("image", "timer"),
            config_file=config_dir / "config.json",
            token_file=config_dir / "token",
            report_file=state_dir / "report.json",
        )


@dataclasses.dataclass(frozen=True)
class ManagerResult:
    """The outcome of one run of the manager's command line.

    Attributes:
        exit_code: 0 ok, 1 unexpected, 2 config, 3 GitHub auth/permission/path, 4 transient,
            5 lock busy.
        document: the JSON document it printed (empty when it printed none).
    """

    exit_code: int
    document: dict[str, Any]

    @property
    def ok(self) -> bool:
        """Whether the command succeeded."""
        return self.exit_code == 0

    @property
    def errors(self) -> list[dict[str, Any]]:
        """The errors the document lists."""
        errors = self.document.get("errors")
        return [error for error in errors if isinstance(error, dict)] if errors else []

    def report(self) -> Report | None:
        """Return the document as a run report, or None when it is not one."""
        if "command" not in self.document:
            return None
        try:
            return Report.model_validate(self.document)
        except ValueError:
            return None


def python_path(charm_dir: Path) -> str:
    """The PYTHONPATH under which the charm's own code and dependencies import.

    Args:
        charm_dir: the charm directory.

    Returns:
        `<charm_dir>/venv:<charm_dir>/lib:<charm_dir>/src`.
    """
    charm_dir = charm_dir.resolve()
    return ":".join(str(charm_dir / part) for part in ("venv", "lib", "src"))


def timeout_seconds(interval_minutes: int) -> int:
    """How long one run may take before systemd kills it: a tenth less than the interval.

    Args:
        interval_minutes: minutes between runs.

    Returns:
        Seconds, always below the interval.
    """
    interval = interval_minutes * 60
    return interval - max(10, interval // 10)


def random_delay_seconds(interval_minutes: int) -> int:
    """The random delay before each run: a quarter of the interval.

    Args:
        interval_minutes: minutes between runs.

    Returns:
        Seconds.
    """
    return interval_minutes * 60 // 4


def image_timeout_seconds(config: ManagerConfig) -> int:
    """How long one run of the image build may take before systemd stops it.

    Args:
        config: the manager configuration.

    Returns:
        Seconds: the script's limit and the overhead, twice for two image types.
    """
    per_image = int(config.image.timeout) + IMAGE_BUILD_OVERHEAD
    return max(1, len(image_types(config))) * per_image


def systemd_quote(value: object) -> str:
    """Quote a value for a systemd unit file when it needs it.

    Args:
        value: the value.

    Returns:
        The value with `%` doubled (systemd specifiers), double-quoted with backslashes and
        quotes escaped when it has spaces, quotes or backslashes.
    """
    text = str(value).replace("%", "%%")
    if not text or any(char.isspace() or char in "\"'\\" for char in text):
        text = text.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{text}"'
    return text


def _file_error(what: str, exc: OSError) -> ServiceError:
    """Describe a failed write of one of the manager's files, with what to do about it."""
    path = exc.filename or "?"
    reason = exc.strerror or str(exc)
    if isinstance(exc, (FileExistsError, NotADirectoryError)):
        reason = f"{reason} (a file stands where a directory belongs)"
    return ServiceError(
        f"cannot write {what} at {path}: {reason}: free space or fix the file system (it must "
        "be writable, with directories where the charm expects them)"
    )


def _environment(templates_dir: Path) -> jinja2.Environment:
    # No autoescape: these are systemd units, not HTML; values go through `systemd_quote`.
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir)),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # noqa: S701 - not HTML, see above
        keep_trailing_newline=True,
    )
    env.filters["systemd_quote"] = systemd_quote
    return env


class Systemd(Protocol):
    """The systemctl operations the manager's units need."""

    def daemon_reload(self) -> None:
        """Reload the unit files."""

    def is_active(self, unit: str) -> bool:
        """Tell whether a unit is active."""

    def enable_now(self, unit: str) -> None:
        """Enable and start a unit."""

    def disable_now(self, unit: str) -> None:
        """Disable and stop a unit."""

    def restart(self, unit: str) -> None:
        """Restart a unit."""

    def start_no_block(self, unit: str) -> None:
        """Start a unit without waiting for it to finish."""

    def stop(self, unit: str) -> None:
        """Stop a unit."""


class CharmlibsSystemd:
    """`Systemd` through charmlibs-systemd."""

    def daemon_reload(self) -> None:
        """Reload the unit files."""
        systemd.daemon_reload()

    def is_active(self, unit: str) -> bool:
        """Tell whether a unit is active.

        Args:
            unit: the unit name.

        Returns:
            Whether it is active.
        """
        return systemd.service_running(unit)

    def enable_now(self, unit: str) -> None:
        """Enable and start a unit.

        Args:
            unit: the unit name.
        """
        systemd.service_enable("--now", unit)

    def disable_now(self, unit: str) -> None:
        """Disable and stop a unit.

        Args:
            unit: the unit name.
        """
        systemd.service_disable("--now", unit)

    def restart(self, unit: str) -> None:
        """Restart a unit.

        Args:
            unit: the unit name.
        """
        systemd.service_restart(unit)

    def start_no_block(self, unit: str) -> None:
        """Start a unit without waiting for it.

        Args:
            unit: the unit name.
        """
        systemd.service_start("--no-block", unit)

    def stop(self, unit: str) -> None:
        """Stop a unit.

        Args:
            unit: the unit name.
        """
        systemd.service_stop(unit)


ProcessRunner = Callable[..., "subprocess.CompletedProcess[str]"]


def _write_if_changed(path: Path, content: str, mode: int) -> bool:
    """Write a file atomically unless it already holds `content`; fix its mode either way."""
    data = content.encode()
    try:
        if path.read_bytes() == data:
            if path.stat().st_mode & 0o777 != mode:
                path.chmod(mode)
            return False
    except FileNotFoundError:
        pass
    atomic_write(path, data, mode=mode)
    return True


@contextlib.contextmanager
def _setting_up(unit: Unit, what: str) -> Iterator[None]:
    """Turn systemd's and the file system's refusals to set up a unit into `ServiceError`."""
    try:
        yield
    except systemd.SystemdError as exc:
        raise ServiceError(f"systemd refused to set up {unit.name}: {exc}") from None
    except OSError as exc:
        raise _file_error(what, exc) from None


class ManagerService:
    """One unit's runner manager on the host."""

    def __init__(
        self,
        paths: ManagerPaths,
        charm_dir: Path,
        *,
        python: str = sys.executable,
        systemd_client: Systemd | None = None,
        run: ProcessRunner = subprocess.run,
    ):
        """Describe the manager of a unit.

        Args:
            paths: its paths and unit names.
            charm_dir: the charm directory (holding venv/, lib/, src/ and templates/).
            python: the Python interpreter the manager runs with.
            systemd_client: systemctl operations (charmlibs-systemd by default).
            run: runs a process (subprocess.run; tests pass a fake).
        """
        self.paths = paths
        self._charm_dir = charm_dir.resolve()
        self._python = python
        self._systemd = systemd_client or CharmlibsSystemd()
        self._run = run
        self._templates = _environment(self._charm_dir / "templates")

    # ----- rendering ------------------------------------------------------------------------

    def _render(self, template: str, **values: object) -> str:
        """Render one of the charm's templates.

        Raises:
            ServiceError: if the template is missing or broken (a damaged charm).
        """
        try:
            return self._templates.get_template(template).render(**values)
        except jinja2.TemplateNotFound:
            raise ServiceError(
                f"the charm's template {template} is missing from "
                f"{self._charm_dir / 'templates'}: the charm is incomplete; refresh it with "
                "`juju refresh` (or redeploy)"
            ) from None
        except jinja2.TemplateError as exc:
            raise ServiceError(
                f"the charm's template {template} is broken ({exc}): refresh the charm with "
                "`juju refresh`"
            ) from None

    @property
    def python_path(self) -> str:
        """The PYTHONPATH the manager runs with."""
        return python_path(self._charm_dir)

    def command(self, *args: str) -> list[str]:
        """The manager's command line with its configuration file.

        Args:
            args: the command and its options, e.g. `flush`, `--busy`.

        Returns:
            The argument list, starting with the absolute path of the interpreter.
        """
        return [
            self._python,
            "-m",
            MANAGER_MODULE,
            "--config",
            str(self.paths.config_file),
            *args,
        ]

    def render_service(self, interval_minutes: int) -> str:
        """Render the oneshot service running one reconciliation.

        Args:
            interval_minutes: minutes between runs (bounds the run time).

        Returns:
            The unit file's content.
        """
        return self._render(
            SERVICE_TEMPLATE,
            unit=self.paths.unit,
            name=self.paths.service.stem,
            python=self._python,
            pythonpath=self.python_path,
            config_file=self.paths.config_file,
            timeout_seconds=timeout_seconds(interval_minutes),
        )

    def render_timer(self, interval_minutes: int) -> str:
        """Render the timer starting the service every interval.

        Args:
            interval_minutes: minutes between runs.

        Returns:
            The unit file's content.
        """
        return self._render(
            TIMER_TEMPLATE,
            unit=self.paths.unit,
            name=self.paths.service.stem,
            interval_minutes=interval_minutes,
            random_delay_seconds=random_delay_seconds(interval_minutes),
        )

    # ----- convergence ----------------------------------------------------------------------

    def ensure_config(self, config: ManagerConfig, token: str) -> bool:
        """Write the configuration and token files (both root-only) when they differ.

        Args:
            config: the manager configuration (it names the token file, never the token).
            token: the GitHub token.

        Returns:
            Whether either file changed.

        Raises:
            ServiceError: if a file cannot be written (no space, read-only, not a directory).
        """
        document = json.dumps(
            config.model_dump(mode="json", exclude_none=True), indent=2, sort_keys=True
        )
        try:
            self.paths.config_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            self.paths.config_dir.chmod(0o700)
            token_changed = _write_if_changed(self.paths.token_file, token.strip() + "\n", 0o600)
            config_changed = _write_if_changed(self.paths.config_file, document + "\n", 0o600)
        except OSError as exc:
            # The message names the file, never its content (the token).
            raise _file_error("the runner manager's configuration", exc) from None
        return token_changed or config_changed

    def timer_running(self) -> bool:
        """Tell whether the reconciliation timer is active (one `systemctl is-active`).

        Returns:
            Whether it is active; False when systemd cannot tell.
        """
        try:
            return self._systemd.is_active(self.paths.timer.name)
        except systemd.SystemdError:
            return False

    def configured(self) -> bool:
        """Tell whether a configuration file was written.

        Returns:
            Whether the configuration file exists.
        """
        return self.paths.config_file.exists()

    def ensure_units(self, interval_minutes: int) -> bool:
        """Install the service and the timer, and keep the timer enabled and running.

        Args:
            interval_minutes: minutes between reconciliations.

        Returns:
            Whether a unit file changed or the timer had to be started.

        Raises:
            ServiceError: if systemd refuses to reload, enable or restart.
        """
        with _setting_up(self.paths.timer, "the runner manager's systemd units"):
            return self._ensure_unit_files(
                {
                    self.paths.service: self.render_service(interval_minutes),
                    self.paths.timer: self.render_timer(interval_minutes),
                },
                keep_active=self.paths.timer,
            )

    def _ensure_unit_files(self, files: Mapping[Unit, str], keep_active: Unit) -> bool:
        """Write the unit files that differ, reload systemd, and keep one unit running.

        A unit that was not active is enabled and started; one that was is restarted when a
        file changed (a timer's new interval, a service's new command line apply only then).

        Args:
            files: each unit and its file's content.
            keep_active: the unit to keep enabled and running (a timer, or a long-running
                service).

        Returns:
            Whether a file changed or the unit had to be started.

        Raises:
            SystemdError: if systemd refuses (from charmlibs-systemd).
            OSError: if a file cannot be written.
        """
        changed = False
        for unit, content in files.items():
            changed = _write_if_changed(unit.file, content, 0o644) or changed
        if changed:
            self._systemd.daemon_reload()
        if not self._systemd.is_active(keep_active.name):
            self._systemd.enable_now(keep_active.name)
            return True
        if changed:
            self._systemd.restart(keep_active.name)
        return changed

    def render_exporter(self) -> str:
        """Render the long-running service of the Prometheus endpoint.

        Returns:
            The unit file's content.
        """
        return self._render(
            EXPORTER_TEMPLATE,
            unit=self.paths.unit,
            python=self._python,
            pythonpath=self.python_path,
            config_file=self.paths.config_file,
        )

    def ensure_exporter(self, enabled: bool) -> bool:
        """Run the Prometheus endpoint while metrics are on (COS related); remove it otherwise.

        Args:
            enabled: whether metrics are on.

        Returns:
            Whether anything changed.

        Raises:
            ServiceError: if systemd refuses.
        """
        exporter = self.paths.exporter
        with _setting_up(exporter, "the Prometheus endpoint's systemd unit"):
            if enabled:
                return self._ensure_unit_files(
                    {exporter: self.render_exporter()}, keep_active=exporter
                )
            if not exporter.file.exists():
                return False
            self._systemd.disable_now(exporter.name)
            exporter.file.unlink()
            self._systemd.daemon_reload()
            return True

    # ----- the event-driven replenisher ---------------------------------------------------

    def render_replenish(self) -> str:
        """Render the long-running service replacing finished runners as LXD reports them.

        Returns:
            The unit file's content.
        """
        return self._render(
            REPLENISH_TEMPLATE,
            unit=self.paths.unit,
            name=self.paths.service.stem,
            replenish_name=self.paths.replenish.stem,
            python=self._python,
            pythonpath=self.python_path,
            config_file=self.paths.config_file,
            stop_timeout_seconds=REPLENISH_STOP_TIMEOUT,
        )

    def ensure_replenisher(self, config_changed: bool = False) -> bool:
        """Install the replenisher's service and keep it enabled and running.

        It reads the configuration when it starts, so a changed configuration (or token)
        restarts it; a run in progress finishes its batch of spawns first.

        Args:
            config_changed: whether the configuration or the token file just changed.

        Returns:
            Whether the unit file changed or the service was started or restarted.

        Raises:
            ServiceError: if systemd refuses.
        """
        replenish = self.paths.replenish
        with _setting_up(replenish, "the replenisher's systemd unit"):
            if self._ensure_unit_files({replenish: self.render_replenish()}, replenish):
                return True
            if config_changed:
                self._systemd.restart(replenish.name)
                return True
            return False

    # ----- the runner image build ----------------------------------------------------------

    def render_image_service(self, config: ManagerConfig) -> str:
        """Render the oneshot service building the runner image.

        Args:
            config: the manager configuration (the build's time limit).

        Returns:
            The unit file's content.
        """
        return self._render(
            IMAGE_SERVICE_TEMPLATE,
            unit=self.paths.unit,
            name=self.paths.image_service.stem,
            python=self._python,
            pythonpath=self.python_path,
            config_file=self.paths.config_file,
            timeout_seconds=image_timeout_seconds(config),
        )

    def render_image_timer(self) -> str:
        """Render the timer rebuilding the runner image every six hours.

        Returns:
            The unit file's content.
        """
        return self._render(
            IMAGE_TIMER_TEMPLATE,
            unit=self.paths.unit,
            name=self.paths.image_service.stem,
        )

    def ensure_image_units(self, config: ManagerConfig) -> bool:
        """Install the image build's service and timer while the image is built; else remove them.

        Args:
            config: the manager configuration.

        Returns:
            Whether anything changed.

        Raises:
            ServiceError: if systemd refuses.
        """
        with _setting_up(self.paths.image_timer, "the runner image build's systemd units"):
            if not config.image.build:
                return self._remove_image_units()
            return self._ensure_unit_files(
                {
                    self.paths.image_service: self.render_image_service(config),
                    self.paths.image_timer: self.render_image_timer(),
                },
                keep_active=self.paths.image_timer,
            )

    def _remove_image_units(self) -> bool:
        units = (self.paths.image_timer, self.paths.image_service)
        if not any(unit.file.exists() for unit in units):
            return False
        self._systemd.disable_now(self.paths.image_timer.name)
        self._systemd.stop(self.paths.image_service.name)
        for unit in units:
            unit.file.unlink(missing_ok=True)
        self._systemd.daemon_reload()
        return True

    def image_build_in_progress(self) -> bool:
        """Tell whether an image build runs now (the timer's, an action's or the charm's).

        The build holds an exclusive lock on its lock file for as long as it runs; a shared
        lock taken here for an instant tells whether it is held (the build waits a few seconds
        for its lock, so this test never makes it fail).

        Returns:
            Whether a build holds the lock.
        """
        return image_building(self.paths.state_dir)

    def start_image_build_if_due(
        self, config: ManagerConfig, now: datetime.datetime | None = None
    ) -> str | None:
        """Start the image build now (without waiting) when one is due before the timer's.

        A build is due when none has been built yet, when what the image is made from changed
        (source, packages, proxies, the build script, the runner types), and an hour after a
        failed build.

        Args:
            config: the manager configuration.
            now: the current time (UTC).

        Returns:
            Why a build was started, or None when none was.

        Raises:
            ServiceError: if systemd refuses to start it, or the build cannot be described.
        """
        try:
            reason = image_status(config, now).due_reason
        except ImageBuildError as exc:
            raise ServiceError(str(exc)) from None
        if reason is None:
            return None
        try:
            self._systemd.start_no_block(self.paths.image_service.name)
        except systemd.SystemdError as exc:
            raise ServiceError(
                f"systemd refused to start {self.paths.image_service.name}: {exc}"
            ) from None
        return reason

    def remove_images(self, timeout: float) -> None:
        """Delete the unit's runner images (when the unit goes); failures are logged.

        Args:
            timeout: seconds the removal may take.
        """
        if not self.configured():
            return
        try:
            result = self.run(["remove-images"], timeout)
        except ServiceError as exc:
            logger.error("cannot remove the runner images: %s; delete them with lxc", exc)
            return
        if not result.ok:
            logger.error(
                "removing the runner images failed (exit code %d): %s; delete them with lxc",
                result.exit_code,
                "; ".join(str(error.get("message")) for error in result.errors),
            )

    def start_reconcile(self) -> None:
        """Start a reconciliation now, without waiting for it (it may take minutes).

        Raises:
            ServiceError: if systemd refuses to start it.
        """
        try:
            self._systemd.start_no_block(self.paths.service.name)
        except systemd.SystemdError as exc:
            raise ServiceError(
                f"systemd refused to start {self.paths.service.name}: {exc}"
            ) from None

    def stop(self) -> None:
        """Stop the replenisher, disable the timer and stop a run in progress: no new runner.

        An image build in progress is stopped too (it deletes its builder as it stops).
        Failures are logged, not raised: the flush that follows must still run.
        """
        paths = self.paths
        steps = []
        if paths.replenish.file.exists():
            steps.append((self._systemd.disable_now, paths.replenish))
        if paths.image_timer.file.exists():
            steps += [(self._systemd.disable_now, paths.image_timer)]
            steps += [(self._systemd.stop, paths.image_service)]
        if paths.timer.file.exists():
            steps += [
                (self._systemd.disable_now, paths.timer),
                (self._systemd.stop, paths.service),
            ]
        for operation, unit in steps:
            try:
                operation(unit.name)
            except systemd.SystemdError as exc:
                logger.warning("cannot stop %s: %s", unit.name, exc)

    def remove_files(self) -> None:
        """Delete the unit files, the configuration, the token and the manager's state."""
        paths = self.paths
        for unit in (paths.exporter, paths.replenish):
            if unit.file.exists():
                try:
                    self._systemd.disable_now(unit.name)
                except systemd.SystemdError as exc:
                    logger.warning("cannot stop %s: %s", unit.name, exc)
        removed = False
        for unit in (
            paths.replenish,
            paths.timer,
            paths.service,
            paths.exporter,
            paths.image_timer,
            paths.image_service,
        ):
            if unit.file.exists():
                unit.file.unlink()
                removed = True
        if removed:
            try:
                self._systemd.daemon_reload()
            except systemd.SystemdError as exc:
                logger.warning("cannot reload systemd: %s", exc)
        for directory in (self.paths.config_dir, self.paths.state_dir):
            shutil.rmtree(directory, ignore_errors=True)

    def other_units_here(self) -> list[str]:
        """The other units of this unit's application whose manager is configured here.

        Units of one application on one machine share its ACL and storage pool: the last one
        to go removes them.

        Returns:
            Their configuration directories' names (`<app>-<number>`), sorted.
        """
        own = self.paths.config_dir
        app = own.name.rsplit("-", 1)[0]
        pattern = re.compile(rf"{re.escape(app)}-\d+")
        try:
            names = [entry.name for entry in own.parent.iterdir() if entry != own]
        except OSError:
            return []
        others = sorted(name for name in names if pattern.fullmatch(name))
        if others:
            logger.info(
                "the application's ACL and storage pool stay for its other units here: %s",
                ", ".join(others),
            )
        return others

    # ----- running --------------------------------------------------------------------------

    def environment(self) -> dict[str, str]:
        """The environment the manager runs with, as under systemd.

        Returns:
            PATH, LANG and PYTHONPATH.
        """
        return {
            "PATH": os.environ.get("PATH") or DEFAULT_PATH,
            "LANG": "C.UTF-8",
            "PYTHONPATH": self.python_path,
        }

    def run(self, args: Sequence[str], timeout: float) -> ManagerResult:
        """Run the manager's command line (it takes the manager's lock itself when needed).

        Args:
            args: the command and its options, e.g. `["flush", "--busy"]`.
            timeout: seconds before the run is killed.

        Returns:
            The exit code and the JSON document it printed.

        Raises:
            ServiceError: if it cannot start or does not finish in time.
        """
        argv = self.command(*args)
        try:
            completed = self._run(
                argv,
                env=self.environment(),
                capture_output=True,
                text=True,
                check=True,
                timeout=timeout,
            )
            exit_code, stdout = completed.returncode, completed.stdout
        except subprocess.CalledProcessError as exc:
            exit_code, stdout = exc.returncode, exc.stdout
            logger.warning(
                "the runner manager's %s exited with %d: %s",
                args[0],
                exc.returncode,
                (exc.stderr or "").strip()[-2000:],
            )
        except subprocess.TimeoutExpired:
            raise ServiceError(
                f"the runner manager's {args[0]} did not finish within {timeout:.0f}s"
            ) from None
        except OSError as exc:
            raise ServiceError(f"cannot run the runner manager: {exc}") from None
        try:
            document = json.loads(stdout or "{}")
        except ValueError:
            document = {}
        return ManagerResult(exit_code, document if isinstance(document, dict) else {})

    def read_report(self) -> Report | None:
        """Read the last run's report.

        Returns:
            The report, or None when there is none yet.
        """
        return read_report(self.paths.report_file)
