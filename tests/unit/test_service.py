# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""Unit tests of service.py: files, unit rendering, systemd calls and the manager's CLI runs."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from charmlibs import systemd

import service
from github_runner_manager.config import ManagerConfig

from .builders import service_config, service_manager, service_paths
from .charm_fakes import charm_dir, make_report

TOKEN = "ghp_serviceUnitTestToken000000000000000000"


class FakeSystemd:
    """Records systemctl operations; units listed in `active` are active."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.active: set[str] = set()
        self.fail: set[str] = set()

    def _record(self, operation: str, *args: str) -> None:
        if operation in self.fail:
            raise systemd.SystemdError(f"{operation} failed")
        self.calls.append((operation, *args))

    def daemon_reload(self) -> None:
        self._record("daemon-reload")

    def is_active(self, unit: str) -> bool:
        return unit in self.active

    def enable_now(self, unit: str) -> None:
        self._record("enable --now", unit)
        self.active.add(unit)

    def disable_now(self, unit: str) -> None:
        self._record("disable --now", unit)
        self.active.discard(unit)

    def restart(self, unit: str) -> None:
        self._record("restart", unit)

    def start_no_block(self, unit: str) -> None:
        self._record("start --no-block", unit)

    def stop(self, unit: str) -> None:
        self._record("stop", unit)


class FakeRun:
    """Stands in for subprocess.run: returns or raises what it is given."""

    def __init__(self, outcome: Any = None) -> None:
        self.outcome = outcome
        self.calls: list[tuple[list[str], dict[str, Any]]] = []

    def __call__(self, argv: list[str], **kwargs: Any) -> Any:
        self.calls.append((argv, kwargs))
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return self.outcome


@pytest.fixture
def paths(tmp_path: Path) -> service.ManagerPaths:
    return service_paths(tmp_path)


@pytest.fixture
def fake_systemd() -> FakeSystemd:
    return FakeSystemd()


@pytest.fixture
def manager(paths: service.ManagerPaths, fake_systemd: FakeSystemd) -> service.ManagerService:
    return service_manager(paths, fake_systemd)


def manager_config(paths: service.ManagerPaths, **runners: Any) -> ManagerConfig:
    return service_config(paths, runners, report_path=str(paths.report_file))


def directives(text: str) -> dict[str, str]:
    """The `Key=value` lines of a unit file (later ones win)."""
    found = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            found[key] = value
    return found


# ----- paths --------------------------------------------------------------------------------


def test_paths_are_scoped_per_application_and_unit() -> None:
    """The manager's unit names and files are scoped by application and unit.

    arrange: two applications' unit 0.
    act: make their paths.
    assert: the first's unit names, config, token, state and report paths; none shared with the
        other.
    """
    one = service.ManagerPaths.for_unit("github-runner", 0)
    other = service.ManagerPaths.for_unit("github-runner-large", 0)

    assert one.service.name == "github-runner-manager-github-runner-0.service"
    assert one.timer.name == "github-runner-manager-github-runner-0.timer"
    assert one.service.file == Path(
        "/etc/systemd/system/github-runner-manager-github-runner-0.service"
    )
    assert one.config_file == Path("/etc/github-runner/github-runner-0/config.json")
    assert one.token_file == Path("/etc/github-runner/github-runner-0/token")
    assert one.state_dir == Path("/var/lib/github-runner/github-runner-0")
    assert one.report_file == one.state_dir / "report.json"
    assert {one.service.name, one.config_dir, one.state_dir}.isdisjoint(
        {other.service.name, other.config_dir, other.state_dir}
    )


# ----- rendering ----------------------------------------------------------------------------


def test_service_runs_the_manager_with_absolute_paths(manager: service.ManagerService) -> None:
    """The service unit runs the manager by absolute paths, with the charm's code on its path.

    arrange: a unit's manager service.
    act: render the service unit.
    assert: a oneshot running this python's github_runner_manager reconcile on the config file,
        both absolute; PYTHONPATH is the charm's venv, lib and src.
    """
    unit = manager.render_service(10)

    values = directives(unit)
    assert values["Type"] == "oneshot"
    argv = shlex.split(values["ExecStart"])
    assert argv == [
        sys.executable,
        "-m",
        "github_runner_manager",
        "--config",
        str(manager.paths.config_file),
        "reconcile",
    ]
    assert all(Path(part).is_absolute() for part in (argv[0], argv[4]))
    root = charm_dir()
    assert shlex.split(values["Environment"]) == [f"PYTHONPATH={root}/venv:{root}/lib:{root}/src"]


@pytest.mark.parametrize("interval", [1, 2, 10, 60, 1440])
def test_timeout_is_below_the_interval(manager: service.ManagerService, interval: int) -> None:
    """The service's time limit is shorter than the timer's interval.

    arrange: intervals from 1 minute to a day.
    act: render the service unit.
    assert: a positive TimeoutStartSec below the interval.
    """
    values = directives(manager.render_service(interval))

    timeout = int(values["TimeoutStartSec"])
    assert 0 < timeout < interval * 60


@pytest.mark.parametrize(("interval", "delay"), [(1, 15), (10, 150), (60, 900)])
def test_timer_interval_and_random_delay(
    manager: service.ManagerService, interval: int, delay: int
) -> None:
    """The timer fires at the interval with a random delay of a quarter of it.

    arrange: intervals of 1, 10 and 60 minutes.
    act: render the timer.
    assert: the interval, the delay, one minute after boot and activation, the service unit, and
        wanted by timers.target.
    """
    values = directives(manager.render_timer(interval))

    assert values["OnUnitActiveSec"] == f"{interval}min"
    assert values["RandomizedDelaySec"] == f"{delay}s"
    assert values["OnBootSec"] == "1min"
    assert values["OnActiveSec"] == "1min"
    assert values["Unit"] == manager.paths.service.name
    assert values["WantedBy"] == "timers.target"


def test_units_quote_paths_with_spaces(tmp_path: Path, fake_systemd: FakeSystemd) -> None:
    """Paths with spaces are quoted in the units.

    arrange: a config root and a python path with spaces.
    act: render the service unit and split its command line.
    assert: the python path and the config file come back whole.
    """
    paths = service.ManagerPaths.for_unit("app", 0, config_root=tmp_path / "my config")
    manager = service.ManagerService(
        paths, charm_dir(), python="/opt/my python/bin/python3", systemd_client=fake_systemd
    )

    argv = shlex.split(directives(manager.render_service(5))["ExecStart"])

    assert argv[0] == "/opt/my python/bin/python3"
    assert argv[4] == str(paths.config_file)


@pytest.mark.parametrize(
    ("value", "quoted"),
    [
        ("/usr/bin/python3", "/usr/bin/python3"),
        ("/a b/c", '"/a b/c"'),
        ('/a"b', '"/a\\"b"'),
        ("/a\\b", '"/a\\\\b"'),
        ("50%", "50%%"),
        ("", '""'),
    ],
)
def test_systemd_quote(value: str, quoted: str) -> None:
    """Values are quoted the way systemd reads them.

    arrange: plain, spaced, quoted, backslashed, percent and empty values.
    act: quote each.
    assert: quotes and escapes only where systemd needs them; % doubled.
    """
    assert service.systemd_quote(value) == quoted


# ----- configuration files ------------------------------------------------------------------


def test_config_and_token_files_are_root_only(manager: service.ManagerService) -> None:
    """The config and the token are written for root only, the token apart from the config.

    arrange: a unit's manager service and a configuration.
    act: ensure the config with a token.
    assert: changed; directory 0700, files 0600; the token in its file only; the config names the
        token file and reads back the same.
    """
    paths = manager.paths

    changed = manager.ensure_config(manager_config(paths), TOKEN)

    assert changed
    assert paths.config_dir.stat().st_mode & 0o777 == 0o700
    assert paths.config_file.stat().st_mode & 0o777 == 0o600
    assert paths.token_file.stat().st_mode & 0o777 == 0o600
    assert paths.token_file.read_text() == TOKEN + "\n"
    text = paths.config_file.read_text()
    assert TOKEN not in text
    assert json.loads(text)["github"] == {
        "group": "default",
        "path": "test-owner/test-repo",
        "token_file": str(paths.token_file),
        "url": "https://github.com",
    }
    assert ManagerConfig.model_validate_json(text) == manager_config(paths)


def test_config_unchanged_is_not_rewritten(manager: service.ManagerService) -> None:
    """An unchanged config is not rewritten, only its mode is put right.

    arrange: the config written once; its mode changed to 0644.
    act: ensure the same config again.
    assert: not changed; the same file, unmodified, back to 0600.
    """
    paths = manager.paths
    manager.ensure_config(manager_config(paths), TOKEN)
    before = paths.config_file.stat().st_mtime_ns, paths.config_file.stat().st_ino
    paths.config_file.chmod(0o644)

    changed = manager.ensure_config(manager_config(paths), TOKEN)

    assert not changed
    assert (paths.config_file.stat().st_mtime_ns, paths.config_file.stat().st_ino) == before
    assert paths.config_file.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    ("config_change", "token"),
    [({"containers": 2}, TOKEN), ({}, "ghp_anotherToken")],
    ids=["config", "token"],
)
def test_config_or_token_change_is_reported(
    manager: service.ManagerService, config_change: dict[str, Any], token: str
) -> None:
    """A change of the config or of the token is reported.

    arrange: the config written once.
    act: ensure it with another runner count, or with another token.
    assert: changed.
    """
    manager.ensure_config(manager_config(manager.paths), TOKEN)

    assert manager.ensure_config(manager_config(manager.paths, **config_change), token)


def test_configured_once_the_config_is_written(manager: service.ManagerService) -> None:
    """The service counts as configured once its config is written.

    arrange: a unit's manager service with nothing written.
    act: ask whether configured, write the config, ask again.
    assert: not configured before; configured after.
    """
    assert not manager.configured()

    manager.ensure_config(manager_config(manager.paths), TOKEN)

    assert manager.configured()


# ----- systemd units ------------------------------------------------------------------------


def test_first_units_are_written_and_timer_enabled(
    manager: service.ManagerService, fake_systemd: FakeSystemd
) -> None:
    """The first units are written, systemd reloaded and the timer enabled.

    arrange: no unit written.
    act: ensure the units with a 10-minute interval.
    assert: changed; service and timer files as rendered, the timer 0644; a reload then enable
        --now of the timer.
    """
    changed = manager.ensure_units(10)

    assert changed
    assert manager.paths.service.file.read_text() == manager.render_service(10)
    assert manager.paths.timer.file.read_text() == manager.render_timer(10)
    assert manager.paths.timer.file.stat().st_mode & 0o777 == 0o644
    assert fake_systemd.calls == [("daemon-reload",), ("enable --now", manager.paths.timer.name)]


def test_unchanged_units_touch_nothing(
    manager: service.ManagerService, fake_systemd: FakeSystemd
) -> None:
    """Unchanged units touch neither the files nor systemd.

    arrange: the units written and the timer active.
    act: ensure the same units again.
    assert: not changed; no systemd call.
    """
    manager.ensure_units(10)
    fake_systemd.calls.clear()

    changed = manager.ensure_units(10)

    assert not changed
    assert fake_systemd.calls == []


def test_new_interval_reloads_and_restarts_the_timer(
    manager: service.ManagerService, fake_systemd: FakeSystemd
) -> None:
    """A new interval rewrites the timer, reloads systemd and restarts the timer.

    arrange: the units written with 10 minutes.
    act: ensure them with 5 minutes.
    assert: changed; the timer holds 5min; a reload then a restart of the timer.
    """
    manager.ensure_units(10)
    fake_systemd.calls.clear()

    changed = manager.ensure_units(5)

    assert changed
    assert "OnUnitActiveSec=5min" in manager.paths.timer.file.read_text()
    assert fake_systemd.calls == [("daemon-reload",), ("restart", manager.paths.timer.name)]


def test_inactive_timer_is_started_again(
    manager: service.ManagerService, fake_systemd: FakeSystemd
) -> None:
    """A timer that is not active is started again.

    arrange: the units written; the timer no longer active.
    act: ensure the same units.
    assert: changed; only enable --now of the timer.
    """
    manager.ensure_units(10)
    fake_systemd.active.clear()
    fake_systemd.calls.clear()

    changed = manager.ensure_units(10)

    assert changed
    assert fake_systemd.calls == [("enable --now", manager.paths.timer.name)]


def test_systemd_failure_is_a_service_error(
    manager: service.ManagerService, fake_systemd: FakeSystemd
) -> None:
    """A systemd that refuses the units is a ServiceError.

    arrange: systemd fails to enable.
    act: ensure the units.
    assert: ServiceError saying systemd refused to set up.
    """
    fake_systemd.fail.add("enable --now")

    with pytest.raises(service.ServiceError, match="refused to set up"):
        manager.ensure_units(10)


def test_start_reconcile_does_not_wait(
    manager: service.ManagerService, fake_systemd: FakeSystemd
) -> None:
    """Starting a reconcile does not wait for it to finish.

    arrange: a unit's manager service.
    act: start a reconcile.
    assert: one start --no-block of the service.
    """
    manager.start_reconcile()

    assert fake_systemd.calls == [("start --no-block", manager.paths.service.name)]


def test_start_reconcile_failure_is_a_service_error(
    manager: service.ManagerService, fake_systemd: FakeSystemd
) -> None:
    """A systemd that refuses to start a reconcile is a ServiceError.

    arrange: systemd fails start --no-block.
    act: start a reconcile.
    assert: ServiceError saying systemd refused to start.
    """
    fake_systemd.fail.add("start --no-block")

    with pytest.raises(service.ServiceError, match="refused to start"):
        manager.start_reconcile()


def test_stop_disables_timer_then_stops_a_running_reconcile(
    manager: service.ManagerService, fake_systemd: FakeSystemd
) -> None:
    """Stopping disables the timer first, then stops a running reconcile.

    arrange: the units written.
    act: stop.
    assert: disable --now of the timer, then stop of the service.
    """
    manager.ensure_units(10)
    fake_systemd.calls.clear()

    manager.stop()

    assert fake_systemd.calls == [
        ("disable --now", manager.paths.timer.name),
        ("stop", manager.paths.service.name),
    ]


def test_stop_without_units_does_nothing(
    manager: service.ManagerService, fake_systemd: FakeSystemd
) -> None:
    """Stopping with no units written calls nothing.

    arrange: no unit written.
    act: stop.
    assert: no systemd call.
    """
    manager.stop()

    assert fake_systemd.calls == []


def test_stop_carries_on_after_systemd_errors(
    manager: service.ManagerService, fake_systemd: FakeSystemd
) -> None:
    """Stopping carries on after a systemd error.

    arrange: the units written; disabling fails.
    act: stop.
    assert: the service is stopped all the same.
    """
    manager.ensure_units(10)
    fake_systemd.calls.clear()
    fake_systemd.fail.add("disable --now")

    manager.stop()

    assert fake_systemd.calls == [("stop", manager.paths.service.name)]


def test_remove_files_deletes_units_config_token_and_state(
    manager: service.ManagerService, fake_systemd: FakeSystemd
) -> None:
    """Removing files deletes the units, config, token and state, even when systemd fails.

    arrange: units, config and a report written; daemon-reload fails.
    act: remove the files.
    assert: unit files, config directory and state directory gone; the systemd directory kept.
    """
    paths = manager.paths
    manager.ensure_units(10)
    manager.ensure_config(manager_config(paths), TOKEN)
    paths.state_dir.mkdir(parents=True)
    (paths.state_dir / "report.json").write_text("{}")
    fake_systemd.calls.clear()
    fake_systemd.fail.add("daemon-reload")

    manager.remove_files()

    for path in (paths.service.file, paths.timer.file, paths.config_dir, paths.state_dir):
        assert not path.exists()
    assert manager.paths.systemd_dir.exists()


def test_replenisher_unit_runs_the_manager_long_running(manager: service.ManagerService) -> None:
    """The replenisher unit runs the manager's replenish command as a long-running service.

    arrange: a unit's manager.
    act: render the replenisher.
    assert: a simple unit restarting on failure, running replenish on the config with time to stop,
        wanted by multi-user.target and named after the manager's unit.
    """
    values = directives(manager.render_replenish())

    assert values["Type"] == "simple"
    assert values["Restart"] == "on-failure"
    assert values["ExecStart"].endswith(f"--config {manager.paths.config_file} replenish")
    assert values["ExecStart"].startswith(f"{manager._python} -m github_runner_manager ")
    assert int(values["TimeoutStopSec"]) >= 60
    assert values["WantedBy"] == "multi-user.target"
    assert manager.paths.replenish.name == manager.paths.service.name.replace(
        "-manager-", "-replenish-"
    )
    assert manager.paths.replenish.name.startswith("github-runner-replenish-")


def test_replenisher_first_install_enables_it(
    manager: service.ManagerService, fake_systemd: FakeSystemd
) -> None:
    """The first replenisher install writes the unit and starts it.

    arrange: nothing installed.
    act: ensure the replenisher.
    assert: written as rendered with mode 0644, systemd reloaded, and the unit enabled and started.
    """
    assert manager.ensure_replenisher()

    assert manager.paths.replenish.file.read_text() == manager.render_replenish()
    assert manager.paths.replenish.file.stat().st_mode & 0o777 == 0o644
    assert fake_systemd.calls == [
        ("daemon-reload",),
        ("enable --now", manager.paths.replenish.name),
    ]


def test_replenisher_unchanged_is_left_alone_and_restarted_on_config_change(
    manager: service.ManagerService, fake_systemd: FakeSystemd
) -> None:
    """An unchanged replenisher is left alone, and restarted when the config changed.

    arrange: installed and running.
    act: ensure it, then ensure it with the config changed.
    assert: no call the first time; a restart the second.
    """
    manager.ensure_replenisher()
    fake_systemd.active.add(manager.paths.replenish.name)
    fake_systemd.calls.clear()

    assert not manager.ensure_replenisher()
    assert fake_systemd.calls == []

    assert manager.ensure_replenisher(config_changed=True)
    assert fake_systemd.calls == [("restart", manager.paths.replenish.name)]


def test_replenisher_systemd_failure_is_a_service_error(
    manager: service.ManagerService, fake_systemd: FakeSystemd
) -> None:
    """A systemd that refuses the replenisher is a ServiceError.

    arrange: systemd fails to enable.
    act: ensure the replenisher.
    assert: ServiceError naming the replenisher.
    """
    fake_systemd.fail.add("enable --now")

    with pytest.raises(service.ServiceError, match="replenish"):
        manager.ensure_replenisher()


def test_replenisher_unit_file_that_cannot_be_written_is_a_service_error(
    manager: service.ManagerService, fake_systemd: FakeSystemd, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full or read-only file system gives a ServiceError naming the file, not a traceback.

    arrange: a file system refusing every write.
    act: install the replenisher.
    assert: a ServiceError naming the unit file and the reason; systemd untouched.
    """

    def refuse(path: Path, data: bytes, mode: int = 0o600) -> None:
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(service, "atomic_write", refuse)

    with pytest.raises(service.ServiceError) as caught:
        manager.ensure_replenisher()

    assert str(manager.paths.replenish.file) in str(caught.value)
    assert "No space left on device" in str(caught.value)
    assert fake_systemd.calls == []


def test_stop_stops_the_replenisher_first(
    manager: service.ManagerService, fake_systemd: FakeSystemd
) -> None:
    """Stopping stops the replenisher before the timer and the service.

    arrange: timer and replenisher installed.
    act: stop.
    assert: the replenisher disabled first, then the timer, then the service stopped.
    """
    manager.ensure_units(10)
    manager.ensure_replenisher()
    fake_systemd.calls.clear()

    manager.stop()

    assert fake_systemd.calls == [
        ("disable --now", manager.paths.replenish.name),
        ("disable --now", manager.paths.timer.name),
        ("stop", manager.paths.service.name),
    ]


def test_remove_files_removes_the_replenisher(
    manager: service.ManagerService, fake_systemd: FakeSystemd
) -> None:
    """Removing files disables and removes the replenisher too.

    arrange: the replenisher installed.
    act: remove the files.
    assert: its unit file gone and the unit disabled.
    """
    manager.ensure_replenisher()
    fake_systemd.calls.clear()

    manager.remove_files()

    assert not manager.paths.replenish.file.exists()
    assert ("disable --now", manager.paths.replenish.name) in fake_systemd.calls


def test_remove_files_when_nothing_was_written(manager: service.ManagerService) -> None:
    """Removing files when nothing was written succeeds.

    arrange: a unit's manager service with nothing written.
    act: remove the files.
    assert: no error, and no config directory.
    """
    manager.remove_files()

    assert not manager.paths.config_dir.exists()


def test_charmlibs_adapter_calls_systemctl_through_the_library(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The systemd adapter calls the charm library's functions with the right arguments.

    arrange: the library's functions replaced by recorders.
    act: call each adapter method.
    assert: each library function called once, in order, with --now or --no-block where needed;
        is_active gives the library's answer.
    """
    calls: list[tuple[str, tuple[str, ...]]] = []

    def recorder(name: str, result: Any = True) -> Any:
        def record(*args: str) -> Any:
            calls.append((name, args))
            return result

        return record

    for name in (
        "daemon_reload",
        "service_enable",
        "service_disable",
        "service_restart",
        "service_start",
        "service_stop",
    ):
        monkeypatch.setattr(service.systemd, name, recorder(name))
    monkeypatch.setattr(service.systemd, "service_running", recorder("service_running", False))
    adapter = service.CharmlibsSystemd()

    adapter.daemon_reload()
    running = adapter.is_active("a.timer")
    adapter.enable_now("a.timer")
    adapter.disable_now("a.timer")
    adapter.restart("a.timer")
    adapter.start_no_block("a.service")
    adapter.stop("a.service")

    assert running is False
    assert calls == [
        ("daemon_reload", ()),
        ("service_running", ("a.timer",)),
        ("service_enable", ("--now", "a.timer")),
        ("service_disable", ("--now", "a.timer")),
        ("service_restart", ("a.timer",)),
        ("service_start", ("--no-block", "a.service")),
        ("service_stop", ("a.service",)),
    ]


# ----- running the manager ------------------------------------------------------------------


def completed(returncode: int, stdout: str) -> subprocess.CompletedProcess[str]:
    return subprocess.CompletedProcess([], returncode, stdout, "")


def test_run_passes_argv_environment_and_timeout(paths: service.ManagerPaths) -> None:
    """Running the manager passes its command line, environment and time limit.

    arrange: a run that succeeds and prints a document.
    act: run flush --busy --no-reconcile with a 60 s limit.
    assert: exit 0 with the document; this python runs the manager on the config file with the
        arguments, checked and captured, the timeout and the charm's PYTHONPATH.
    """
    fake = FakeRun(completed(0, json.dumps({"online": 1})))
    manager = service.ManagerService(paths, charm_dir(), run=fake, systemd_client=FakeSystemd())

    outcome = manager.run(["flush", "--busy", "--no-reconcile"], timeout=60)

    assert outcome == service.ManagerResult(0, {"online": 1})
    assert outcome.ok
    ((argv, kwargs),) = fake.calls
    assert argv == [
        sys.executable,
        "-m",
        "github_runner_manager",
        "--config",
        str(paths.config_file),
        "flush",
        "--busy",
        "--no-reconcile",
    ]
    assert kwargs["check"] is True
    assert kwargs["capture_output"] is True
    assert kwargs["timeout"] == 60
    assert kwargs["env"]["PYTHONPATH"] == service.python_path(charm_dir())


def test_run_returns_exit_code_and_document_of_a_failure(paths: service.ManagerPaths) -> None:
    """A failed run returns its exit code and the document it printed.

    arrange: a run that exits 3 printing a failure document with one junk error.
    act: run check.
    assert: exit code 3, not ok, the token error kind, and no report.
    """
    document = {"ok": False, "errors": [{"kind": "token", "message": "401"}, "junk"]}
    error = subprocess.CalledProcessError(3, ["python3"], json.dumps(document), "bad token")
    manager = service.ManagerService(paths, charm_dir(), run=FakeRun(error))

    outcome = manager.run(["check"], timeout=60)

    assert outcome.exit_code == 3
    assert not outcome.ok
    assert outcome.errors == [{"kind": "token", "message": "401"}]
    assert outcome.report() is None


@pytest.mark.parametrize(
    ("error", "match"),
    [
        (subprocess.TimeoutExpired(["python3"], 5), "did not finish within 5s"),
        (FileNotFoundError("no python"), "cannot run the runner manager"),
    ],
)
def test_run_that_cannot_finish_raises(
    paths: service.ManagerPaths, error: Exception, match: str
) -> None:
    """A run that times out or cannot start is a ServiceError.

    arrange: a run that times out, or one whose python is missing.
    act: run reconcile.
    assert: ServiceError saying it did not finish within 5s, or that it cannot run.
    """
    manager = service.ManagerService(paths, charm_dir(), run=FakeRun(error))

    with pytest.raises(service.ServiceError, match=match):
        manager.run(["reconcile"], timeout=5)


@pytest.mark.parametrize("stdout", ["not json", "[1, 2]", ""])
def test_run_with_unreadable_output_has_empty_document(
    paths: service.ManagerPaths, stdout: str
) -> None:
    """A run whose output is not a JSON object gives an empty document.

    arrange: a run printing non-JSON, a JSON list, or nothing.
    act: run reconcile.
    assert: the exit code with an empty document and no error.
    """
    manager = service.ManagerService(paths, charm_dir(), run=FakeRun(completed(1, stdout)))

    outcome = manager.run(["reconcile"], timeout=5)

    assert outcome == service.ManagerResult(1, {})
    assert outcome.errors == []


def test_result_report_parses_a_report_document() -> None:
    """A result holding a report document parses into that report.

    arrange: a report, and a document that is not a report.
    act: parse each result's report.
    assert: the same report; None for the other.
    """
    report = make_report(created=["a"])

    parsed = service.ManagerResult(0, report.model_dump(mode="json")).report()

    assert parsed == report
    assert service.ManagerResult(0, {"command": "reconcile"}).report() is None


def test_read_report(manager: service.ManagerService) -> None:
    """The report is read from the manager's report file.

    arrange: no report, then one written to the report file.
    act: read the report each time.
    assert: None, then the report written.
    """
    assert manager.read_report() is None
    report = make_report()
    report.write(manager.paths.report_file)

    assert manager.read_report() == report


def test_environment_has_a_path_without_one(
    manager: service.ManagerService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The manager's environment gets a default PATH when the hook has none.

    arrange: no PATH in the environment.
    act: build the manager's environment.
    assert: the default PATH.
    """
    monkeypatch.delenv("PATH")

    assert manager.environment()["PATH"] == service.DEFAULT_PATH
