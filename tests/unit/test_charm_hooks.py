# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""Hooks stay short and end without a traceback: steady update-status, stop then remove, faults.

Where a test says "no LXD command", the charm runs with the real `host.Host` whose command
runner records every command (and answers none): the assertion is on what the charm would run
on the machine, not on a fake's call list.
"""

from __future__ import annotations

import dataclasses
import errno
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ops
import pytest
from ops import testing

import charm
import command
import host
import service
import storage

from .charm_fakes import FakeHost, FakeManagerService, charm_dir, make_report
from .test_service import FakeSystemd

# The real classes, kept before any test replaces `charm.host.Host` or
# `charm.storage.StoragePool` (the same module attributes).
REAL_HOST = host.Host
REAL_STORAGE_POOL = storage.StoragePool
TOKEN = "ghp_charmHookTestToken00000000000000000000"
VALID = {"path": "test-owner/test-repo", "token": TOKEN}


class RecordingRunner:
    """A command runner that records commands and answers from a table (else fails)."""

    def __init__(self, answers: dict[str, str] | None = None) -> None:
        self.commands: list[list[str]] = []
        self.answers = answers or {}

    def __call__(
        self, argv: Sequence[str], *, input_text: str | None = None, timeout: float = 0
    ) -> str:
        self.commands.append(list(argv))
        key = " ".join([Path(argv[0]).name, *argv[1:]])
        for prefix, answer in self.answers.items():
            if key.startswith(prefix):
                return answer
        raise command.CommandError(f"`{key}` is not expected", 1, "not expected")


def real_host(tmp_path: Path, runner: RecordingRunner) -> host.Host:
    """A `host.Host` with LXD "installed" under tmp_path and every command recorded."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name in ("lxc", "lxd"):
        (bin_dir / name).touch()
    return REAL_HOST(
        runner,
        binary_dirs=(bin_dir,),
        tool_dirs=(bin_dir,),
        proc_dir=tmp_path / "proc",
        os_release=tmp_path / "os-release",
        machine=lambda: "x86_64",
        modules_load_dir=tmp_path / "modules-load.d",
        lxd_proxy_record=tmp_path / "lxd-proxy.json",
    )


def real_storage(
    tmp_path: Path, runner: RecordingRunner, app: str | None = None
) -> storage.StoragePool:
    """A `storage.StoragePool` beside `real_host`, every command recorded."""
    return REAL_STORAGE_POOL(
        runner,
        app=app,
        binary_dirs=(tmp_path / "bin",),
        tool_dirs=(tmp_path / "bin",),
        ram_dir=tmp_path / "ram",
        juju_storage_dir=tmp_path / "juju-storage",
        proc_dir=tmp_path / "proc",
    )


def use_real_host(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, runner: RecordingRunner
) -> None:
    """Make the charm's host and storage pool the real ones, on the recording runner."""
    monkeypatch.setattr(charm.host, "Host", lambda: real_host(tmp_path, runner))
    monkeypatch.setattr(
        charm.storage, "StoragePool", lambda app=None: real_storage(tmp_path, runner, app)
    )


def run(ctx: testing.Context, event: Any, state: testing.State) -> testing.State:
    return ctx.run(event, state)


# ----- update-status in steady state --------------------------------------------------------


def test_steady_update_status_runs_no_lxd_command(
    ctx: testing.Context,
    fake_host: FakeHost,
    manager: FakeManagerService,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """A steady update-status runs no command; its status comes from the report.

    arrange: a converged config-changed, then the real host with a recording command runner, and a
        manager report of 1/1 virtual-machine runners.
    act: run update-status.
    assert: no command ran, the status is "1/1 virtual-machine runners", and only the one reconcile
        of config-changed was started.
    """
    converged = run(ctx, ctx.on.config_changed(), testing.State(config=VALID))
    assert manager.timer_active
    manager.report = make_report()
    runner = RecordingRunner()
    use_real_host(monkeypatch, tmp_path, runner)

    out = run(ctx, ctx.on.update_status(), converged)

    # The status comes from the report; no command ran, nothing was rewritten.
    assert runner.commands == []
    assert out.unit_status == ops.ActiveStatus("1/1 virtual-machine runners")
    assert manager.reconciles_started == 1


def test_update_status_sees_a_new_secret_revision(
    ctx: testing.Context, fake_host: FakeHost, manager: FakeManagerService
) -> None:
    """update-status picks up a new revision of the token's secret without a secret-changed.

    arrange: converged on the first revision of the token's secret, then a newer revision.
    act: run update-status (no secret-changed before it).
    assert: the manager gets the new token.
    """
    secret = testing.Secret(tracked_content={"token": "ghp_first"})
    config = {**VALID, "token": secret.id}
    converged = run(ctx, ctx.on.config_changed(), testing.State(config=config, secrets={secret}))
    assert manager.token == "ghp_first"
    rotated = testing.Secret(
        id=secret.id, tracked_content={"token": "ghp_first"}, latest_content={"token": "ghp_next"}
    )

    # Update-status, without a secret-changed before it.
    run(ctx, ctx.on.update_status(), dataclasses.replace(converged, secrets=frozenset({rotated})))

    assert manager.token == "ghp_next"


def test_update_status_converges_when_the_timer_stopped(
    ctx: testing.Context, fake_host: FakeHost, manager: FakeManagerService
) -> None:
    """update-status converges again when the manager's timer was stopped behind the charm's back.

    arrange: a converged config-changed, then the timer found inactive.
    act: run update-status.
    assert: the host is ensured again and the timer is active.
    """
    converged = run(ctx, ctx.on.config_changed(), testing.State(config=VALID))
    manager.timer_active = False  # e.g. someone ran systemctl disable
    fake_host.calls.clear()

    run(ctx, ctx.on.update_status(), converged)

    assert manager.timer_active
    assert "ensure_lxd" in fake_host.calls


def test_update_status_retries_after_a_host_failure(
    ctx: testing.Context, fake_host: FakeHost, manager: FakeManagerService
) -> None:
    """update-status retries the host set-up that failed in config-changed.

    arrange: a config-changed whose LXD set-up timed out (Maintenance), and the fault gone.
    act: run update-status.
    assert: the manager is configured with its timer active, and the status is no longer
        Maintenance.
    """
    fake_host.ensure_error = command.HostError("lxd waitready timed out")
    failed = run(ctx, ctx.on.config_changed(), testing.State(config=VALID))
    assert isinstance(failed.unit_status, ops.MaintenanceStatus)
    fake_host.ensure_error = None

    out = run(ctx, ctx.on.update_status(), failed)

    assert manager.config is not None
    assert manager.timer_active
    assert not isinstance(out.unit_status, ops.MaintenanceStatus)


def test_update_status_with_a_config_never_converged_converges(
    ctx: testing.Context, fake_host: FakeHost, manager: FakeManagerService
) -> None:
    """update-status converges a config that never converged.

    arrange: a valid config with no event handled yet.
    act: run update-status.
    assert: the host is ensured and the manager is configured.
    """
    run(ctx, ctx.on.update_status(), testing.State(config=VALID))

    assert "ensure_lxd" in fake_host.calls
    assert manager.config is not None


# ----- stop, then remove --------------------------------------------------------------------


def test_remove_after_a_stop_that_flushed_does_not_flush_again(
    ctx: testing.Context, manager: FakeManagerService
) -> None:
    """The remove hook after a stop whose flush worked does not flush again.

    arrange: a configured manager and a stop that flushed every runner.
    act: run remove.
    assert: only the stop's flush ran; the images and the manager's files are removed.
    """
    manager.preconfigured = True
    stopped = run(ctx, ctx.on.stop(), testing.State(config=VALID))
    assert manager.runs == [["flush", "--busy", "--no-reconcile"]]

    run(ctx, ctx.on.remove(), stopped)

    assert manager.runs == [["flush", "--busy", "--no-reconcile"]]
    assert manager.images_removed
    assert manager.files_removed


def test_remove_after_a_stop_whose_flush_failed_flushes_again(
    ctx: testing.Context, manager: FakeManagerService
) -> None:
    """The remove hook flushes again when the stop's flush failed.

    arrange: a configured manager whose first flush fails (LXD down) and second succeeds; stop ran.
    act: run remove.
    assert: the flush ran twice.
    """
    manager.preconfigured = True
    manager.results["flush"] = [
        service.ManagerResult(4, {"errors": [{"kind": "lxd", "message": "LXD is down"}]}),
        service.ManagerResult(0, {}),
    ]
    stopped = run(ctx, ctx.on.stop(), testing.State(config=VALID))

    run(ctx, ctx.on.remove(), stopped)

    assert manager.runs == [["flush", "--busy", "--no-reconcile"]] * 2


# ----- host faults: a status saying what failed and what to do, and a retry -------------------


@pytest.fixture
def real_manager(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> service.ManagerService:
    """The real ManagerService writing under tmp_path, with systemd faked."""
    paths = service.ManagerPaths.for_unit(
        "github-runner",
        0,
        config_root=tmp_path / "etc",
        state_root=tmp_path / "var",
        systemd_dir=tmp_path / "systemd",
    )
    (tmp_path / "systemd").mkdir()
    manager = service.ManagerService(paths, charm_dir(), systemd_client=FakeSystemd())
    monkeypatch.setattr(charm.service, "ManagerService", lambda paths, charm_dir: manager)
    return manager


@pytest.fixture
def real_ctx(no_model_proxy: None, fake_host: FakeHost, real_manager: Any) -> testing.Context:
    return testing.Context(charm.GithubRunnerCharm)


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (errno.ENOSPC, "No space left on device"),
        (errno.EROFS, "Read-only file system"),
        (errno.EIO, "Input/output error"),
    ],
)
def test_writing_the_manager_files_fails_with_a_status_and_retries(
    real_ctx: testing.Context,
    real_manager: service.ManagerService,
    monkeypatch: pytest.MonkeyPatch,
    code: int,
    reason: str,
) -> None:
    """A file system refusing the manager's files gives a status, and the next event converges.

    arrange: the real manager service whose atomic writes fail with ENOSPC, EROFS or EIO until
        repaired.
    act: run config-changed; then repair the fault and run update-status.
    assert: Maintenance naming the file, the reason and "retrying", without the token; then the
        config and token files are written and the status is no longer Maintenance.
    """
    faulty = [True]
    atomic_write = service.atomic_write

    def refuse(path: Path, data: bytes, mode: int = 0o600) -> None:
        if faulty[0]:
            raise OSError(code, reason, str(path))
        atomic_write(path, data, mode=mode)

    monkeypatch.setattr(service, "atomic_write", refuse)

    out = run(real_ctx, real_ctx.on.config_changed(), testing.State(config=VALID))

    # What failed, why, and what to do; no token anywhere.
    assert isinstance(out.unit_status, ops.MaintenanceStatus)
    message = out.unit_status.message
    assert (
        str(real_manager.paths.token_file) in message
        or str(real_manager.paths.config_file) in message
    )
    assert reason in message
    assert "retrying" in message
    assert TOKEN not in message

    # The fault is gone, the next event converges.
    faulty[0] = False
    again = run(real_ctx, real_ctx.on.update_status(), out)

    assert real_manager.paths.config_file.is_file()
    assert real_manager.paths.token_file.read_text() == TOKEN + "\n"
    assert not isinstance(again.unit_status, ops.MaintenanceStatus)


def test_config_directory_that_is_a_file_gives_a_status(
    real_ctx: testing.Context, real_manager: service.ManagerService
) -> None:
    """A file where the manager's config directory belongs gives a status naming it.

    arrange: a plain file at the manager's config directory path.
    act: run config-changed.
    assert: Maintenance naming the config directory.
    """
    real_manager.paths.config_dir.parent.mkdir(parents=True)
    real_manager.paths.config_dir.write_text("not a directory")

    out = run(real_ctx, real_ctx.on.config_changed(), testing.State(config=VALID))

    assert isinstance(out.unit_status, ops.MaintenanceStatus)
    assert str(real_manager.paths.config_dir) in out.unit_status.message


def test_missing_templates_give_a_status(
    no_model_proxy: None,
    fake_host: FakeHost,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """A charm directory without templates gives a status asking for juju refresh.

    arrange: the real manager service on a charm directory without templates/ (a damaged charm).
    act: run config-changed.
    assert: Maintenance naming the templates and "juju refresh".
    """
    paths = service.ManagerPaths.for_unit(
        "github-runner",
        0,
        config_root=tmp_path / "etc",
        state_root=tmp_path / "var",
        systemd_dir=tmp_path,
    )
    empty_charm = tmp_path / "charm"
    empty_charm.mkdir()
    manager = service.ManagerService(paths, empty_charm, systemd_client=FakeSystemd())
    monkeypatch.setattr(charm.service, "ManagerService", lambda paths, charm_dir: manager)
    ctx = testing.Context(charm.GithubRunnerCharm)

    out = run(ctx, ctx.on.config_changed(), testing.State(config=VALID))

    assert isinstance(out.unit_status, ops.MaintenanceStatus)
    assert "template" in out.unit_status.message
    assert "juju refresh" in out.unit_status.message


@pytest.mark.parametrize(
    "output",
    ["<html>502 Bad Gateway</html>", "{{", "Error: not authorized\n", "[1, 2"],
    ids=["html", "broken-yaml", "text", "broken-json"],
)
def test_lxc_output_that_is_not_json_gives_a_status(
    no_model_proxy: None,
    manager: FakeManagerService,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    output: str,
) -> None:
    """Output of lxc that is not JSON gives a status, not a traceback.

    arrange: the real host whose lxc answers with HTML, broken YAML, plain text or broken JSON.
    act: run config-changed.
    assert: Maintenance naming lxc, and the manager is not configured.
    """
    runner = RecordingRunner({"lxc": output, "lxd waitready": ""})
    use_real_host(monkeypatch, tmp_path, runner)
    ctx = testing.Context(charm.GithubRunnerCharm)

    out = run(ctx, ctx.on.config_changed(), testing.State(config=VALID))

    assert isinstance(out.unit_status, ops.MaintenanceStatus)
    assert "lxc" in out.unit_status.message
    assert manager.config is None


# ----- never echo a token -------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "secret:ghp_R3alLookingTokenValue0000000000000000",
        "secret:github_pat_11AAAAAAA0abcdefghij_klmnop",
        "secret: ghp_spacedTokenValue000000000000000000000",
        "secret://model/ghp_R3alLookingTokenValue0000000000",
    ],
)
def test_token_that_is_not_a_secret_uri_is_never_echoed(
    ctx: testing.Context, caplog: pytest.LogCaptureFixture, value: str
) -> None:
    """A token that is not a secret URI blocks without echoing the token.

    arrange: token values that look like secret URIs wrapping a token.
    act: run config-changed with debug logging.
    assert: Blocked naming the token as not a valid Juju secret URI; neither the token nor its last
        12 characters appear in the status, the logs or the Juju log.
    """
    caplog.set_level(logging.DEBUG)

    out = run(ctx, ctx.on.config_changed(), testing.State(config={**VALID, "token": value}))

    assert isinstance(out.unit_status, ops.BlockedStatus)
    assert "token" in out.unit_status.message
    assert "not a valid Juju secret URI" in out.unit_status.message
    secret_part = value.removeprefix("secret:").strip(" /")
    for text in [out.unit_status.message, caplog.text, *(log.message for log in ctx.juju_log)]:
        assert secret_part not in text
        assert secret_part[-12:] not in text


@pytest.mark.parametrize(
    "url", ["https://github.com:0", "https://github.com:99999", "https://github.com:port"]
)
def test_github_url_with_an_invalid_port_blocks(ctx: testing.Context, url: str) -> None:
    """A github-url with an invalid port blocks the unit naming the option.

    arrange: github-url with port 0, 99999 or a word.
    act: run config-changed.
    assert: Blocked with a message starting "github-url: " that mentions the port.
    """
    out = run(ctx, ctx.on.config_changed(), testing.State(config={**VALID, "github-url": url}))

    assert isinstance(out.unit_status, ops.BlockedStatus)
    assert out.unit_status.message.startswith("github-url: ")
    assert "port" in out.unit_status.message
