# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""The command line: exit codes, the JSON document on stdout, flags reaching the manager."""

from __future__ import annotations

import datetime
import json
import os
import signal
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from github_runner_manager import cli
from github_runner_manager.errors import (
    ConfigError,
    GitHubUnavailableError,
    LxdError,
    PermissionDeniedError,
    TokenError,
)
from github_runner_manager.manager import RunnerManager
from github_runner_manager.report import ErrorEntry, Report, read_report
from github_runner_manager.utils import manager_lock

from .builders import PREFIX, UNIT, config_data, manager_on_fakes, merged

TOKEN = "ghp_cli_secret_value_0123456789"
STARTED = datetime.datetime(2026, 6, 1, 12, 0, tzinfo=datetime.timezone.utc)


def write_config(tmp_path: Path, **overrides: Any) -> Path:
    data = config_data(tmp_path, github={"token": TOKEN}, crash_log_dir=str(tmp_path / "crashed"))
    data = merged(data, overrides)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data))
    return path


@pytest.fixture
def fake_build(monkeypatch, tmp_path, lxd, github, clock):
    """Make cli.build_manager build a RunnerManager on the fakes; remember what it built."""
    built: list[RunnerManager] = []

    def build(config):
        manager = manager_on_fakes(config, lxd, github, clock, tmp_path)
        built.append(manager)
        return manager

    monkeypatch.setattr(cli, "build_manager", build)
    return built


def run(capsys, *argv: str) -> tuple[int, Any, str]:
    """Run main; return the exit code, the stdout JSON document and stderr."""
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, json.loads(out), err


def online_runners(github, names):
    for name in names:
        runner = github.by_name(name)
        github.runners[runner.id] = runner.__class__(runner.id, name, online=True, busy=False)


def test_reconcile_success_prints_the_report(tmp_path, capsys, fake_build, lxd):
    """A successful reconcile prints its report as JSON and writes it to the report file.

    arrange: a valid config, nothing exists.
    act: reconcile.
    assert: exit 0, the report as one JSON document on stdout naming the two created runners, also
        written to the report file.
    """
    config = write_config(tmp_path)

    code, document, _ = run(capsys, "--config", str(config), "reconcile")

    assert code == cli.EXIT_OK
    assert document["ok"] is True
    assert document["command"] == "reconcile"
    assert len(document["created"]) == 2
    assert sorted(lxd.instances) == sorted(document["created"])
    written = read_report(fake_build[0].config.report_file)
    assert written is not None and written.created == document["created"]


def test_missing_config_file_is_exit_2(tmp_path, capsys, fake_build):
    """A missing config file is a config error with exit 2.

    arrange: no config file.
    act: reconcile.
    assert: exit 2, a config error naming the file in the JSON, no manager built.
    """
    code, document, _ = run(capsys, "--config", str(tmp_path / "absent.json"), "reconcile")

    assert code == cli.EXIT_CONFIG
    assert document["ok"] is False
    assert [e["kind"] for e in document["errors"]] == ["config"]
    assert "absent.json" in document["errors"][0]["message"]
    assert fake_build == []


def test_invalid_field_is_exit_2_naming_the_field_without_the_token(
    tmp_path, capsys, caplog, fake_build
):
    """An invalid field is exit 2 naming the field, without the token anywhere.

    arrange: runners.cpu is 0.
    act: reconcile.
    assert: exit 2, the message names runners.cpu, the token is nowhere in the output or logs; no
        manager built.
    """
    config = write_config(tmp_path, runners={"cpu": 0})

    code = cli.main(["--config", str(config), "reconcile"])
    out, err = capsys.readouterr()

    assert code == cli.EXIT_CONFIG
    document = json.loads(out)
    assert document["errors"][0]["kind"] == "config"
    assert document["errors"][0]["message"].startswith("runners.cpu:")
    assert TOKEN not in out + err + caplog.text
    assert fake_build == []


def test_yaml_syntax_error_on_the_token_line_does_not_print_the_token(
    tmp_path, capsys, caplog, fake_build
):
    """A YAML syntax error on the token's line does not print the token.

    arrange: a YAML syntax error on the token's line.
    act: reconcile.
    assert: exit 2 with a config error, the token is nowhere in stdout, stderr or the logs.
    """
    # Guards the CLI end of test_config.py::test_yaml_syntax_error_message_does_not_hold_the_token:
    # PyYAML's error quotes the offending line, and the CLI prints a config error in its JSON
    # document and logs it, so load_config must describe the error without that line.
    config = tmp_path / "config.yaml"
    config.write_text(
        f"unit: {UNIT}\nname_prefix: {PREFIX}\nflavor: github-runner\n"
        f"github:\n  path: test-owner/test-repo\n  token: {TOKEN}: typo\n"
    )

    code = cli.main(["--config", str(config), "reconcile"])
    out, err = capsys.readouterr()

    assert code == cli.EXIT_CONFIG
    assert json.loads(out)["errors"][0]["kind"] == "config"
    assert TOKEN not in out + err + caplog.text


def test_token_error_is_exit_3(tmp_path, capsys, fake_build, github):
    """A token GitHub rejects is exit 3.

    arrange: GitHub rejects the token.
    act: reconcile.
    assert: exit 3, a token error in the JSON.
    """
    github.fail["list_runners"] = TokenError("GitHub rejected the token (401)", 401)

    code, document, _ = run(capsys, "--config", str(write_config(tmp_path)), "reconcile")

    assert code == cli.EXIT_GITHUB_AUTH
    assert document["ok"] is False
    assert [e["kind"] for e in document["errors"]] == ["token"]


def test_transient_failure_is_exit_4(tmp_path, capsys, fake_build, lxd):
    """A transient LXD failure is exit 4.

    arrange: LXD cannot list instances.
    act: reconcile.
    assert: exit 4, an lxd error in the JSON.
    """
    lxd.fail["list_instances"] = LxdError("LXD did not answer within 120s")

    code, document, _ = run(capsys, "--config", str(write_config(tmp_path)), "reconcile")

    assert code == cli.EXIT_TRANSIENT
    assert [e["kind"] for e in document["errors"]] == ["lxd"]


def test_lock_held_by_another_run_is_exit_5(tmp_path, capsys, fake_build, lxd):
    """A manager lock held by another run is exit 5 and changes nothing.

    arrange: another run holds the manager lock.
    act: reconcile.
    assert: exit 5, a busy error, nothing created, no report written.
    """
    config = write_config(tmp_path)
    state = tmp_path / "state"

    with manager_lock(state / "manager.lock", timeout=0):
        code, document, _ = run(capsys, "--config", str(config), "reconcile")

    assert code == cli.EXIT_BUSY
    assert [e["kind"] for e in document["errors"]] == ["busy"]
    assert lxd.instances == {}
    assert not (state / "report.json").exists()


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (ConfigError("cannot read the token file /x: No such file"), cli.EXIT_CONFIG),
        (LxdError("cannot reach the LXD socket"), cli.EXIT_TRANSIENT),
    ],
)
def test_manager_that_cannot_be_built(tmp_path, capsys, monkeypatch, error, expected):
    """A manager that cannot be built is exit 2 for a config error and 4 otherwise.

    arrange: building the manager fails with a config or another error.
    act: reconcile.
    assert: exit 2 for a config error, 4 otherwise; the error in the JSON document.
    """

    def build(config):
        raise error

    monkeypatch.setattr(cli, "build_manager", build)

    code, document, _ = run(capsys, "--config", str(write_config(tmp_path)), "reconcile")

    assert code == expected
    assert document == {"ok": False, "errors": [{"kind": error.kind, "message": str(error)}]}


def test_real_build_with_a_missing_token_file_is_exit_2(tmp_path, capsys, monkeypatch):
    """A missing token file is exit 2 from the real build, which still exports the proxy.

    arrange: the token file is missing; a proxy is configured.
    act: reconcile (real build).
    assert: exit 2 naming the token file; the proxy is exported with loopback added to no_proxy and
        https_proxy left unset.
    """
    for name in ("http_proxy", "https_proxy", "no_proxy"):
        # setenv first, so that monkeypatch also removes what build_manager sets.
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    token_file = tmp_path / "absent-token"
    config = write_config(
        tmp_path,
        github={"token": None, "token_file": str(token_file)},
        proxy={"http": "http://proxy.example.com:3128", "no_proxy": "internal.example.com"},
    )

    code, document, _ = run(capsys, "--config", str(config), "reconcile")

    assert code == cli.EXIT_CONFIG
    assert "cannot read the token file" in document["errors"][0]["message"]
    assert os.environ["http_proxy"] == "http://proxy.example.com:3128"
    assert "https_proxy" not in os.environ
    assert os.environ["no_proxy"].split(",") == [
        "internal.example.com",
        "localhost",
        "127.0.0.1",
        "::1",
    ]


def test_check_prints_counts(tmp_path, capsys, fake_build, github, lxd):
    """The check command prints runner counts per state and changes nothing.

    arrange: two idle runners and an offline GitHub-only one.
    act: check.
    assert: exit 0, counts per state and type, the desired numbers and the rate limit on stdout;
        nothing changed.
    """
    config = write_config(tmp_path)
    cli.main(["--config", str(config), "reconcile"])
    created = json.loads(capsys.readouterr().out)["created"]
    online_runners(github, created)
    github.add(f"{PREFIX}-{0xABC:012x}", online=False)

    code, document, _ = run(capsys, "--config", str(config), "check")

    assert code == cli.EXIT_OK
    assert document["online"] == 2
    assert document["idle"] == 2
    assert document["busy"] == 0
    assert document["offline"] == 1
    assert document["runners"]["idle"] == sorted(created)
    assert document["by_type"] == {"container": {"idle": 2}, "github-only": {"github-only": 1}}
    assert document["desired"] == {"container": 2, "virtual-machine": 0}
    assert document["rate_limit_remaining"] == 4000
    assert sorted(lxd.instances) == sorted(created)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (TokenError("GitHub rejected the token (401)", 401), cli.EXIT_GITHUB_AUTH),
        (PermissionDeniedError("missing administration scope", 403), cli.EXIT_GITHUB_AUTH),
        (GitHubUnavailableError("GitHub answered 503"), cli.EXIT_TRANSIENT),
    ],
)
def test_check_failure(tmp_path, capsys, fake_build, github, error, expected):
    """The check command exits 3 when GitHub rejects the token and 4 for other failures.

    arrange: GitHub cannot be listed (token or other error).
    act: check.
    assert: exit 3 for auth, 4 otherwise; the error in the JSON document.
    """
    github.fail["list_runners"] = error

    code, document, _ = run(capsys, "--config", str(write_config(tmp_path)), "check")

    assert code == expected
    assert document == {"ok": False, "errors": [{"kind": error.kind, "message": str(error)}]}


def test_flush_busy_no_reconcile_removes_every_runner(tmp_path, capsys, fake_build, lxd, github):
    """A busy flush without reconcile removes busy and idle runners and creates none.

    arrange: one busy and one idle runner; GitHub releases the busy one once its instance is gone.
    act: flush --busy --no-reconcile.
    assert: exit 0, both removed on both sides, none created.
    """
    config = write_config(tmp_path)
    cli.main(["--config", str(config), "reconcile"])
    busy, idle = sorted(json.loads(capsys.readouterr().out)["created"])
    online_runners(github, [idle])
    runner = github.by_name(busy)
    github.runners[runner.id] = runner.__class__(runner.id, busy, online=True, busy=True)
    # GitHub lets go of the killed job's runner as soon as its instance is gone.
    real_delete = lxd.delete_instance

    def delete_and_release(name):
        real_delete(name)
        gh = github.by_name(name)
        if gh is not None and gh.busy:
            github.runners[gh.id] = gh.__class__(gh.id, name, online=False, busy=False)

    lxd.delete_instance = delete_and_release

    code, document, _ = run(capsys, "--config", str(config), "flush", "--busy", "--no-reconcile")

    assert code == cli.EXIT_OK, document["errors"]
    assert document["command"] == "flush"
    assert sorted(r["name"] for r in document["removed"]) == [busy, idle]
    assert document["created"] == []
    assert lxd.instances == {}
    assert github.runners == {}


def test_flush_keeps_busy_runners_and_reconciles(tmp_path, capsys, fake_build, lxd, github):
    """A plain flush keeps busy runners and replaces the idle ones.

    arrange: one busy and one idle runner.
    act: flush (no flags).
    assert: the idle one removed and replaced, the busy one kept.
    """
    config = write_config(tmp_path)
    cli.main(["--config", str(config), "reconcile"])
    busy, idle = sorted(json.loads(capsys.readouterr().out)["created"])
    online_runners(github, [idle])
    runner = github.by_name(busy)
    github.runners[runner.id] = runner.__class__(runner.id, busy, online=True, busy=True)

    code, document, _ = run(capsys, "--config", str(config), "flush")

    assert code == cli.EXIT_OK, document["errors"]
    assert [r["name"] for r in document["removed"]] == [idle]
    assert len(document["created"]) == 1
    assert busy in lxd.instances and idle not in lxd.instances
    assert len(lxd.instances) == 2


def test_update_dependencies(tmp_path, capsys, fake_build):
    """The update-dependencies command reports the command and the runner version.

    arrange: a valid config.
    act: update-dependencies.
    assert: exit 0, the report names the command and the runner version, not updated.
    """
    code, document, _ = run(capsys, "--config", str(write_config(tmp_path)), "update-dependencies")

    assert code == cli.EXIT_OK
    assert document["command"] == "update-dependencies"
    assert document["runner_version"] == "2.330.0"
    assert document["runner_updated"] is False


def test_serve_metrics_serves_the_report_on_loopback(tmp_path, capsys, monkeypatch):
    """The serve-metrics command serves the report's gauges on loopback at the given port.

    arrange: a report; make_server binds a free port instead.
    act: serve-metrics --port 9999.
    assert: the port reached make_server; one scrape of /metrics on 127.0.0.1 returned the report's
        gauges, then the server was stopped and main exited 0.
    """
    config = write_config(tmp_path)
    Report(command="reconcile", unit=UNIT, started_at=STARTED).write(
        tmp_path / "state" / "report.json"
    )
    real_make_server = cli.exporter.make_server
    scraped: list[str] = []
    hosts: list[object] = []

    def make_server(report_path, check_interval, port):
        server = real_make_server(report_path, check_interval, 0)
        hosts.append(server.server_address[0])
        assert port == 9999, "the --port option wins over the configuration"

        def scrape_then_stop():
            try:
                url = f"http://127.0.0.1:{server.server_address[1]}/metrics"
                direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
                with direct.open(url, timeout=10) as response:
                    scraped.append(response.read().decode())
            finally:
                server.shutdown()

        threading.Thread(target=scrape_then_stop, daemon=True).start()
        return server

    monkeypatch.setattr(cli.exporter, "make_server", make_server)
    previous_sigterm = signal.getsignal(signal.SIGTERM)
    try:
        code = cli.main(["--config", str(config), "serve-metrics", "--port", "9999"])
    finally:
        signal.signal(signal.SIGTERM, previous_sigterm)

    assert code == cli.EXIT_OK
    assert hosts == ["127.0.0.1"]
    assert "github_runner_last_reconcile_success 1" in scraped[0]


@pytest.mark.parametrize(
    ("kinds", "expected"),
    [
        ([], cli.EXIT_OK),
        (["config"], cli.EXIT_CONFIG),
        (["config", "token"], cli.EXIT_CONFIG),
        (["token"], cli.EXIT_GITHUB_AUTH),
        (["permission"], cli.EXIT_GITHUB_AUTH),
        (["path"], cli.EXIT_GITHUB_AUTH),
        (["token", "lxd"], cli.EXIT_GITHUB_AUTH),
        (["busy"], cli.EXIT_BUSY),
        (["busy", "lxd"], cli.EXIT_TRANSIENT),
        (["unexpected"], cli.EXIT_UNEXPECTED),
        (["unexpected", "lxd"], cli.EXIT_UNEXPECTED),
        (["rate-limit"], cli.EXIT_TRANSIENT),
        (["github-unavailable"], cli.EXIT_TRANSIENT),
        (["lxd"], cli.EXIT_TRANSIENT),
        (["runner-create"], cli.EXIT_TRANSIENT),
        (["runner-binary"], cli.EXIT_TRANSIENT),
    ],
)
def test_exit_code(kinds, expected):
    """A report's error kinds map to the CLI's exit code.

    arrange: a report with errors of some kinds.
    act: exit_code.
    assert: the expected exit code.
    """
    report = Report(
        command="reconcile",
        unit=UNIT,
        started_at=STARTED,
        errors=[ErrorEntry(kind=kind, message="m") for kind in kinds],
    )

    assert cli.exit_code(report) == expected


def test_missing_command_is_a_usage_error(tmp_path, capsys):
    """A missing command is a usage error.

    arrange: no command.
    act: main.
    assert: argparse exits with 2.
    """
    with pytest.raises(SystemExit) as caught:
        cli.main(["--config", str(write_config(tmp_path))])

    assert caught.value.code == 2


@pytest.mark.parametrize("command", ["reconcile", "remove-images"])
def test_state_dir_that_cannot_be_created_is_exit_2(tmp_path, capsys, command):
    """A state_dir that cannot be created is exit 2 naming it, without a traceback.

    arrange: state_dir where no directory can be made (under /proc), past the file checks.
    act: a command that builds the real clients.
    assert: exit 2 with a config error naming state_dir, no traceback.
    """
    config = write_config(tmp_path, state_dir=f"/proc/grt-no-such-{os.getpid()}/state")

    code, document, _ = run(capsys, "--config", str(config), command)

    assert code == cli.EXIT_CONFIG
    assert [e["kind"] for e in document["errors"]] == ["config"]
    assert document["errors"][0]["message"].startswith("state_dir: cannot create")


class _OneShotStream:
    """An event stream that connects, then (once `until` holds) gets the process a SIGTERM."""

    until: Any = None

    def __init__(self, project, socket=None):
        self.closed = False

    def follow(self, on_event, on_connected):
        on_connected()
        deadline = time.monotonic() + 10
        while not self.until() and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGTERM)
        while not self.closed:
            time.sleep(0.01)

    def close(self):
        self.closed = True


def test_replenish_fills_the_fleet_and_stops_on_sigterm(
    tmp_path, caplog, fake_build, lxd, github, monkeypatch
):
    """The replenish command fills the fleet by JIT registration and stops on SIGTERM.

    arrange: nothing exists; a stream that connects then gets SIGTERM once two instances exist.
    act: replenish.
    assert: the fleet is filled (one JIT call per runner, no listing), the stop is logged, exit 0,
        no report file.
    """
    monkeypatch.setattr(cli, "LxdEventStream", _OneShotStream)
    monkeypatch.setattr(_OneShotStream, "until", staticmethod(lambda: len(lxd.instances) == 2))
    caplog.set_level("INFO")
    previous = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    try:
        code = cli.main(["--config", str(write_config(tmp_path)), "replenish"])
    finally:
        signal.signal(signal.SIGTERM, previous[0])
        signal.signal(signal.SIGINT, previous[1])
    assert code == cli.EXIT_OK
    assert "stopping (signal 15)" in caplog.text
    assert len(lxd.instances) == 2
    assert github.calls == ["register_runner", "register_runner"]
    assert not fake_build[0].config.report_file.exists()


def test_replenish_without_lxd_is_exit_4(tmp_path, capsys, monkeypatch):
    """The replenish command without LXD exits 4 so that it is restarted.

    arrange: the manager cannot be built (no LXD).
    act: replenish.
    assert: exit 4 (restart).
    """

    def build(config):
        raise LxdError("cannot reach the LXD socket")

    monkeypatch.setattr(cli, "build_manager", build)

    assert cli.main(["--config", str(write_config(tmp_path)), "replenish"]) == cli.EXIT_TRANSIENT
