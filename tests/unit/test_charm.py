# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""State-transition tests of the charm: ops.testing, with the host and the manager faked."""

from __future__ import annotations

import datetime
import ipaddress
import json
from typing import Any

import ops
import pytest
from ops import testing

import charm
import command
import firewall
import storage

from .charm_fakes import FakeHost, FakeManagerService, make_report, report_result, result

TOKEN = "ghp_charmUnitTestToken0000000000000000000"
VALID = {"path": "test-owner/test-repo", "token": TOKEN}


def run(ctx: testing.Context, event: Any, **state: Any) -> testing.State:
    return ctx.run(event, testing.State(**state))


# ----- configuration ------------------------------------------------------------------------

BAD_VALUES = [
    ("path", "a/b/c"),
    ("path", "bad org"),
    ("path", "owner/"),
    ("token", "secret:not a uri"),
    ("token", "ghp_with whitespace"),
    ("github-url", "ftp://github.com"),
    ("github-url", "http://github.example.com"),
    ("github-url", "https://github.com/some/path"),
    ("github-url", "not a url"),
    ("group", ""),
    ("group", "g" * 101),
    ("labels", "good,bad label"),
    ("labels", "ünïcode"),
    ("containers", -1),
    ("virtual-machines", -3),
    ("vm-cpu", 0),
    ("vm-cpu", -2),
    ("vm-memory", "7GB"),
    ("vm-memory", "0GiB"),
    ("vm-memory", "7"),
    ("vm-memory", "lots"),
    ("vm-disk", "10gb"),
    ("vm-disk", "-1GiB"),
    ("vm-disk", ""),
    ("check-interval", 0),
    ("check-interval", -10),
    ("base-image", ""),
    ("base-image", "two words"),
    ("denylist", "10.0.0.1/8"),
    ("denylist", "10.0.0.0/8,::1/128"),
    ("denylist", "garbage"),
    ("denylist", "10.0.0.0/33"),
    ("dockerhub-mirror", "http://mirror.example.com"),
    ("dockerhub-mirror", "mirror.example.com"),
    ("dockerhub-mirror", "https://"),
    ("runner-storage", "disk"),
    ("runner-storage", ""),
    ("test-mode", "secure"),
    ("experimental-use-aproxy", True),
]


@pytest.mark.parametrize(
    ("option", "value"), [pytest.param(o, v, id=f"{o}={v!r}") for o, v in BAD_VALUES]
)
def test_bad_option_value_blocks_naming_the_option(
    ctx: testing.Context, manager: FakeManagerService, option: str, value: Any
) -> None:
    """A bad value of any option blocks the unit naming the option, never the token.

    arrange: a valid config with one bad value per case (no model proxy, for aproxy).
    act: run config-changed.
    assert: Blocked naming the option, without the token, and the manager is not configured.
    """
    config = {**VALID, option: value}

    out = run(ctx, ctx.on.config_changed(), config=config)

    assert isinstance(out.unit_status, ops.BlockedStatus)
    assert option in out.unit_status.message
    assert TOKEN not in out.unit_status.message
    assert manager.config is None


def test_size_message_says_how_to_fix(ctx: testing.Context) -> None:
    """A size with a wrong unit gets a message saying how to write it.

    arrange: vm-memory set to "7GB".
    act: run config-changed.
    assert: Blocked with the exact message listing the units and an example (7GiB).
    """
    out = run(ctx, ctx.on.config_changed(), config={**VALID, "vm-memory": "7GB"})

    assert out.unit_status == ops.BlockedStatus(
        "vm-memory: '7GB' is not a size: use a whole number and one of KiB, MiB, GiB, TiB, "
        "PiB, EiB (for example 7GiB)"
    )


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        ("vm-memory", "7 GiB", "7GiB"),
        ("vm-memory", " 512  MiB ", "512MiB"),
        ("vm-disk", "20 GiB", "20GiB"),
        ("vm-disk", "010GiB", "10GiB"),
    ],
)
def test_size_with_inner_spaces_reaches_the_manager_as_lxd_reads_it(
    ctx: testing.Context, manager: FakeManagerService, option: str, value: str, expected: str
) -> None:
    """A size written with spaces or a leading zero reaches the manager as LXD reads it.

    arrange: vm-memory or vm-disk as an operator may type it ("7 GiB", " 512  MiB ", "010GiB").
    act: run config-changed.
    assert: the unit is not blocked and the manager's runner memory or disk is the compact size.
    """
    # LXD refuses "7 GiB" at every creation.
    config = {**VALID, option: value}

    out = run(ctx, ctx.on.config_changed(), config=config)

    # The manager gets the size LXD understands; the unit is not blocked.
    assert not isinstance(out.unit_status, ops.BlockedStatus), out.unit_status
    assert manager.config is not None
    field = "memory" if option == "vm-memory" else "disk"
    assert getattr(manager.config.runners, field) == expected


@pytest.mark.parametrize(
    ("option", "value"),
    [("vm-memory", "999999TiB"), ("vm-disk", "99999PiB"), ("vm-memory", "9EiB")],
)
def test_size_beyond_one_machine_blocks_naming_the_option(
    ctx: testing.Context, manager: FakeManagerService, option: str, value: str
) -> None:
    """A size beyond any machine blocks the unit naming the option.

    arrange: vm-memory or vm-disk in the TiB, PiB or EiB far beyond a machine.
    act: run config-changed.
    assert: Blocked with a message starting with the option and saying "at most"; the manager is
        not configured.
    """
    out = run(ctx, ctx.on.config_changed(), config={**VALID, option: value})

    assert isinstance(out.unit_status, ops.BlockedStatus)
    assert out.unit_status.message.startswith(f"{option}:"), out.unit_status.message
    assert "at most" in out.unit_status.message
    assert manager.config is None


def test_several_bad_options_are_all_named(ctx: testing.Context) -> None:
    """Several bad options are all named in one status.

    arrange: vm-cpu 0 and a denylist entry with host bits set.
    act: run config-changed.
    assert: the status names both vm-cpu and denylist.
    """
    config = {**VALID, "vm-cpu": 0, "denylist": "10.0.0.1/8"}

    out = run(ctx, ctx.on.config_changed(), config=config)

    assert "vm-cpu" in out.unit_status.message
    assert "denylist" in out.unit_status.message


@pytest.mark.parametrize(
    ("config", "named"),
    [
        pytest.param({}, ("path", "token"), id="both"),
        pytest.param({"path": "test-owner/test-repo"}, ("token",), id="token"),
        pytest.param({"token": TOKEN}, ("path",), id="path"),
    ],
)
def test_missing_path_or_token_blocks(
    ctx: testing.Context, config: dict[str, str], named: tuple[str, ...]
) -> None:
    """A missing path or token blocks the unit naming what is missing.

    arrange: a config without path, token or both.
    act: run config-changed.
    assert: Blocked with a message starting "missing " that names each missing option.
    """
    out = run(ctx, ctx.on.config_changed(), config=config)

    assert isinstance(out.unit_status, ops.BlockedStatus)
    assert out.unit_status.message.startswith("missing ")
    for name in named:
        assert name in out.unit_status.message


def test_install_prepares_host_and_writes_manager_config(
    ctx: testing.Context, fake_host: FakeHost, manager: FakeManagerService
) -> None:
    """The install hook prepares the host and writes the manager's config.

    arrange: a machine without LXD and a config with runners, labels, disk, denylist and a mirror.
    act: run install.
    assert: LXD, the Juju storage for 3 runners of 20 GiB and logrotate are ensured; the manager's
        config carries the unit, names, state dir, token file, pool, labels, counts and mirror, but
        never the token, which is in the token file; the timer runs every 10 minutes and one
        reconcile started; Waiting for the first reconciliation.
    """
    fake_host.installed = False
    config = {
        **VALID,
        "containers": 2,
        "virtual-machines": 1,
        "labels": "gpu, large",
        "vm-disk": "20GiB",
        "denylist": "10.0.0.0/8, 192.168.0.0/16",
        "dockerhub-mirror": "https://mirror.example.com",
    }

    out = run(ctx, ctx.on.install(), config=config)

    assert fake_host.calls == ["ensure_lxd", "ensure_runner_storage", "ensure_logrotate"]
    assert fake_host.storage == ("juju-storage", 3 * 20 * 1024**3)
    cfg = manager.config
    assert cfg is not None
    assert cfg.unit == "github-runner/0"
    assert cfg.name_prefix == "github-runner-0"
    assert cfg.flavor == "github-runner"
    assert str(cfg.state_dir) == "/var/lib/github-runner/github-runner-0"
    assert cfg.github.token is None
    assert cfg.github.token_file == manager.paths.token_file
    assert cfg.report_file == manager.paths.report_file
    assert cfg.lxd.storage_pool == command.scoped_name("github-runner") == fake_host.storage_pool
    assert cfg.runners.labels == ("gpu", "large")
    assert (cfg.runners.containers, cfg.runners.virtual_machines) == (2, 1)
    assert cfg.dockerhub_mirror == "https://mirror.example.com"
    assert cfg.metrics.enabled is False
    assert cfg.ssh_debug == ()
    assert manager.token == TOKEN
    assert TOKEN not in (manager.config_text or "")
    assert manager.interval == 10
    assert manager.timer_active
    assert manager.reconciles_started == 1
    assert out.unit_status == ops.WaitingStatus("waiting for the first reconciliation")


def test_nothing_changed_starts_no_reconcile(
    ctx: testing.Context, manager: FakeManagerService
) -> None:
    """An event that changes nothing starts no reconcile.

    arrange: a config-changed handled with a valid config.
    act: run update-status with the same state.
    assert: only the first reconcile was started.
    """
    state = testing.State(config=VALID)
    ctx.run(ctx.on.config_changed(), state)

    ctx.run(ctx.on.update_status(), state)

    assert manager.reconciles_started == 1


def test_config_change_starts_a_reconcile(
    ctx: testing.Context, manager: FakeManagerService
) -> None:
    """A config change starts a reconcile with the new config.

    arrange: a config-changed handled with a valid config.
    act: run config-changed with 4 containers.
    assert: a second reconcile was started and the manager's config has 4 containers.
    """
    ctx.run(ctx.on.config_changed(), testing.State(config=VALID))

    ctx.run(ctx.on.config_changed(), testing.State(config={**VALID, "containers": 4}))

    assert manager.reconciles_started == 2
    assert manager.config is not None
    assert manager.config.runners.containers == 4


def test_replenisher_is_started_with_the_timer_and_restarted_on_config_change(
    ctx: testing.Context, manager: FakeManagerService
) -> None:
    """The replenisher starts with the timer and restarts on a config change only.

    arrange: a valid config.
    act: run config-changed, update-status, then config-changed with 4 containers.
    assert: the replenisher is active after the first, not restarted by update-status, and
        restarted once by the new config.
    """
    ctx.run(ctx.on.config_changed(), testing.State(config=VALID))
    assert manager.replenisher_active
    assert manager.replenisher_restarts == 0

    ctx.run(ctx.on.update_status(), testing.State(config=VALID))
    assert manager.replenisher_restarts == 0  # nothing changed: left running

    ctx.run(ctx.on.config_changed(), testing.State(config={**VALID, "containers": 4}))
    assert manager.replenisher_restarts == 1
    assert manager.replenisher_active


def test_stop_stops_the_replenisher(ctx: testing.Context, manager: FakeManagerService) -> None:
    """The stop hook stops the replenisher and flushes.

    arrange: a config-changed that started the replenisher.
    act: run stop.
    assert: the replenisher is inactive and one busy flush without reconcile ran.
    """
    ctx.run(ctx.on.config_changed(), testing.State(config=VALID))

    run(ctx, ctx.on.stop(), config=VALID)

    assert not manager.replenisher_active
    assert manager.runs == [["flush", "--busy", "--no-reconcile"]]


def test_secret_token_reaches_only_the_token_file(
    ctx: testing.Context, manager: FakeManagerService
) -> None:
    """A token from a Juju secret reaches only the token file.

    arrange: a secret holding the token, named by the token option.
    act: run config-changed.
    assert: the manager's token is the secret's, the config text does not hold it, and the status
        is Waiting for the first reconciliation.
    """
    secret = testing.Secret(tracked_content={"token": "ghp_fromTheSecret"})

    out = run(
        ctx,
        ctx.on.config_changed(),
        config={**VALID, "token": secret.id},
        secrets={secret},
    )

    assert manager.token == "ghp_fromTheSecret"
    assert "ghp_fromTheSecret" not in (manager.config_text or "")
    assert out.unit_status == ops.WaitingStatus("waiting for the first reconciliation")


def test_secret_change_rewrites_the_token(
    ctx: testing.Context, manager: FakeManagerService
) -> None:
    """secret-changed writes the secret's new token and starts a reconcile.

    arrange: a token secret with a newer revision.
    act: run secret-changed.
    assert: the manager's token is the new one and one reconcile was started.
    """
    secret = testing.Secret(
        tracked_content={"token": "ghp_old"}, latest_content={"token": "ghp_new"}
    )

    run(ctx, ctx.on.secret_changed(secret), config={**VALID, "token": secret.id}, secrets={secret})

    assert manager.token == "ghp_new"
    assert manager.reconciles_started == 1


def test_secret_not_granted_blocks_with_grant_hint(ctx: testing.Context) -> None:
    """A secret the charm cannot read blocks with the grant-secret command to run.

    arrange: a token option naming a secret not granted to the application.
    act: run config-changed.
    assert: Blocked with the exact message holding the juju grant-secret command.
    """
    uri = "secret:d0cjmmnmp25c7bcvv6p0"

    out = run(ctx, ctx.on.config_changed(), config={**VALID, "token": uri})

    assert out.unit_status == ops.BlockedStatus(
        f"token: cannot read the secret {uri}: grant it with "
        f"`juju grant-secret {uri} github-runner`"
    )


def test_secret_without_token_key_blocks(ctx: testing.Context) -> None:
    """A secret without a token key blocks the unit saying so.

    arrange: a secret holding only a password, named by the token option.
    act: run config-changed.
    assert: Blocked saying it has no 'token' key.
    """
    secret = testing.Secret(tracked_content={"password": "x"})

    out = run(ctx, ctx.on.config_changed(), config={**VALID, "token": secret.id}, secrets={secret})

    assert isinstance(out.unit_status, ops.BlockedStatus)
    assert "has no 'token' key" in out.unit_status.message


def test_runner_storage_cannot_change(ctx: testing.Context, fake_host: FakeHost) -> None:
    """runner-storage cannot change once runners live on a storage.

    arrange: a host whose runners live on memory.
    act: run config-changed with runner-storage juju-storage.
    assert: Blocked starting with "runner-storage: the runners already live on memory".
    """
    fake_host.storage_in_use = "memory"

    out = run(ctx, ctx.on.config_changed(), config={**VALID, "runner-storage": "juju-storage"})

    assert isinstance(out.unit_status, ops.BlockedStatus)
    assert out.unit_status.message.startswith("runner-storage: the runners already live on memory")


def test_memory_storage_sized_for_all_runners(ctx: testing.Context, fake_host: FakeHost) -> None:
    """Memory storage is sized for every runner's disk.

    arrange: runner-storage memory with 3 containers and 1 virtual machine.
    act: run config-changed.
    assert: the host is asked for memory storage of 4 times 10 GiB.
    """
    config = {**VALID, "runner-storage": "memory", "containers": 3, "virtual-machines": 1}

    run(ctx, ctx.on.config_changed(), config=config)

    assert fake_host.storage == ("memory", 4 * 10 * 1024**3)


def test_runners_that_do_not_fit_block(
    ctx: testing.Context, fake_host: FakeHost, manager: FakeManagerService
) -> None:
    """Runners that do not fit in the host's memory block the unit naming runner-storage.

    arrange: a host with 16 GiB of memory and 4 runners on memory storage.
    act: run config-changed.
    assert: Blocked starting with "runner-storage:" and the manager is not configured.
    """
    fake_host.memory = 16 * 1024**3
    config = {**VALID, "runner-storage": "memory", "containers": 4}

    out = run(ctx, ctx.on.config_changed(), config=config)

    assert isinstance(out.unit_status, ops.BlockedStatus)
    assert out.unit_status.message.startswith("runner-storage:")
    assert manager.config is None


@pytest.mark.parametrize(
    ("machine", "arch"), [("x86_64", "x64"), ("aarch64", "arm64"), ("arm64", "arm64")]
)
def test_supported_architectures(
    ctx: testing.Context, fake_host: FakeHost, machine: str, arch: str
) -> None:
    """The supported machine architectures do not block the unit.

    arrange: a host machine of x86_64, aarch64 or arm64.
    act: run config-changed.
    assert: the unit is not blocked.
    """
    fake_host.machine_name = machine

    out = run(ctx, ctx.on.config_changed(), config=VALID)

    assert not isinstance(out.unit_status, ops.BlockedStatus)


def test_unsupported_architecture_blocks(ctx: testing.Context, fake_host: FakeHost) -> None:
    """An unsupported machine architecture blocks the unit naming it.

    arrange: a host machine of s390x.
    act: run config-changed.
    assert: Blocked naming architecture 's390x'.
    """
    fake_host.machine_name = "s390x"

    out = run(ctx, ctx.on.config_changed(), config=VALID)

    assert isinstance(out.unit_status, ops.BlockedStatus)
    assert "architecture 's390x'" in out.unit_status.message


@pytest.mark.parametrize("upper", [True, False])
def test_model_proxy_reaches_manager_config(
    ctx: testing.Context,
    manager: FakeManagerService,
    monkeypatch: pytest.MonkeyPatch,
    upper: bool,
) -> None:
    """The model's proxy, in upper or lower case names, reaches the manager's config.

    arrange: the model's HTTP, HTTPS and no-proxy settings in the environment, and aproxy on.
    act: run config-changed.
    assert: the manager's proxy config holds the three values.
    """

    def name(variable: str) -> str:
        return variable if upper else variable.lower()

    monkeypatch.setenv(name("JUJU_CHARM_HTTP_PROXY"), "http://proxy.internal:3128")
    monkeypatch.setenv(name("JUJU_CHARM_HTTPS_PROXY"), "http://proxy.internal:3129")
    monkeypatch.setenv(name("JUJU_CHARM_NO_PROXY"), "127.0.0.1,.internal")

    run(ctx, ctx.on.config_changed(), config={**VALID, "experimental-use-aproxy": True})

    assert manager.config is not None
    assert manager.config.proxy.http == "http://proxy.internal:3128"
    assert manager.config.proxy.https == "http://proxy.internal:3129"
    assert manager.config.proxy.no_proxy == "127.0.0.1,.internal"


def test_model_proxy_reaches_the_lxd_daemon(
    ctx: testing.Context, fake_host: FakeHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The LXD daemon gets the model's proxy to pull images, and loses it when the model does.

    arrange: the model's HTTPS and no-proxy settings in the environment.
    act: run config-changed; then remove the settings and run it again.
    assert: the daemon's proxy is the model's, then unset.
    """
    monkeypatch.setenv("JUJU_CHARM_HTTPS_PROXY", "http://proxy.internal:3129")
    monkeypatch.setenv("JUJU_CHARM_NO_PROXY", "127.0.0.1,.internal")

    run(ctx, ctx.on.config_changed(), config=VALID)
    assert fake_host.lxd_proxy == (None, "http://proxy.internal:3129", "127.0.0.1,.internal")

    monkeypatch.delenv("JUJU_CHARM_HTTPS_PROXY")
    monkeypatch.delenv("JUJU_CHARM_NO_PROXY")
    run(ctx, ctx.on.config_changed(), config=VALID)
    assert fake_host.lxd_proxy == (None, None, None)


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("JUJU_CHARM_HTTP_PROXY", "not a url", "juju-http-proxy"),
        ("JUJU_CHARM_HTTPS_PROXY", "ftp://proxy:21", "juju-https-proxy"),
        ("JUJU_CHARM_HTTPS_PROXY", "http://user:secret@proxy:port", "juju-https-proxy"),
        ("juju_charm_no_proxy", "a, b", "juju-no-proxy"),
    ],
)
def test_malformed_model_proxy_blocks(
    ctx: testing.Context,
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
    value: str,
    named: str,
) -> None:
    """A malformed model proxy blocks the unit naming the model setting, never its password.

    arrange: a model proxy setting that is no URL, of another scheme, with a bad port and a
        password, or a bad no-proxy list.
    act: run config-changed.
    assert: Blocked naming the model setting, without the password.
    """
    monkeypatch.setenv(variable, value)

    out = run(ctx, ctx.on.config_changed(), config=VALID)

    assert isinstance(out.unit_status, ops.BlockedStatus)
    assert named in out.unit_status.message
    assert "secret" not in out.unit_status.message


def test_debug_ssh_relation_becomes_ssh_debug(
    ctx: testing.Context, manager: FakeManagerService
) -> None:
    """A complete debug-ssh unit's data becomes the manager's tmate settings.

    arrange: a debug-ssh relation with one incomplete and one complete remote unit.
    act: run relation-changed for the complete unit.
    assert: the manager's config has exactly one tmate server with its host, port and ed25519
        fingerprint.
    """
    complete = {
        "host": "tmate.internal",
        "port": "10022",
        "rsa_fingerprint": "SHA256:rsa",
        "ed25519_fingerprint": "SHA256:ed",
    }
    relation = testing.Relation(
        "debug-ssh",
        remote_units_data={0: {"host": "incomplete"}, 1: complete},
    )

    run(ctx, ctx.on.relation_changed(relation, remote_unit=1), config=VALID, relations={relation})

    assert manager.config is not None
    (tmate,) = manager.config.ssh_debug
    assert (tmate.host, tmate.port) == ("tmate.internal", 10022)
    assert tmate.ed25519_fingerprint == "SHA256:ed"


def test_debug_ssh_with_bad_port_is_ignored(
    ctx: testing.Context, manager: FakeManagerService
) -> None:
    """debug-ssh data with a port that is not a number is ignored.

    arrange: a debug-ssh relation whose remote unit's port is a word.
    act: run relation-changed.
    assert: the manager's config has no tmate server.
    """
    data = {
        "host": "tmate.internal",
        "port": "not-a-port",
        "rsa_fingerprint": "a",
        "ed25519_fingerprint": "b",
    }
    relation = testing.Relation("debug-ssh", remote_units_data={0: data})

    run(ctx, ctx.on.relation_changed(relation, remote_unit=0), config=VALID, relations={relation})

    assert manager.config is not None
    assert manager.config.ssh_debug == ()


def test_cos_agent_relation_enables_metrics(
    ctx: testing.Context, manager: FakeManagerService
) -> None:
    """A cos-agent relation switches the manager's metrics on.

    arrange: a cos-agent relation.
    act: run relation-joined.
    assert: the manager's config has metrics enabled.
    """
    relation = testing.Relation("cos-agent")

    run(ctx, ctx.on.relation_joined(relation), config=VALID, relations={relation})

    assert manager.config is not None
    assert manager.config.metrics.enabled is True


def test_cos_agent_broken_disables_metrics(
    ctx: testing.Context, manager: FakeManagerService
) -> None:
    """A broken cos-agent relation switches the manager's metrics off.

    arrange: a cos-agent relation.
    act: run relation-broken.
    assert: the manager's config has metrics disabled.
    """
    relation = testing.Relation("cos-agent")

    run(ctx, ctx.on.relation_broken(relation), config=VALID, relations={relation})

    assert manager.config is not None
    assert manager.config.metrics.enabled is False


def test_foreign_runner_pool_blocks(
    ctx: testing.Context, fake_host: FakeHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A storage pool of the same name elsewhere blocks the unit with the host's message.

    arrange: a host whose runner storage set-up finds the pool on another path.
    act: run config-changed.
    assert: Blocked with the storage error's message.
    """

    def conflict(kind: str, required: int) -> bool:
        raise storage.StorageError(
            "the LXD storage pool runner exists on /srv, not on /storage/juju"
        )

    monkeypatch.setattr(fake_host, "ensure_runner_storage", conflict)

    out = run(ctx, ctx.on.config_changed(), config=VALID)

    assert out.unit_status == ops.BlockedStatus(
        "the LXD storage pool runner exists on /srv, not on /storage/juju"
    )


def test_host_failure_is_maintenance_and_retried(
    ctx: testing.Context, fake_host: FakeHost, manager: FakeManagerService
) -> None:
    """A host failure is Maintenance saying it retries, and the manager is not configured.

    arrange: a machine without LXD whose installation fails (store unreachable).
    act: run install.
    assert: Maintenance "preparing the host failed, retrying:" with the reason; no manager config.
    """
    fake_host.installed = False
    fake_host.ensure_error = command.HostError("cannot install LXD: store unreachable")

    out = run(ctx, ctx.on.install(), config=VALID)

    assert out.unit_status == ops.MaintenanceStatus(
        "preparing the host failed, retrying: cannot install LXD: store unreachable"
    )
    assert manager.config is None


def test_invalid_config_wins_over_a_host_failure(
    ctx: testing.Context, fake_host: FakeHost
) -> None:
    """An invalid config is reported before a host failure.

    arrange: a machine whose LXD installation fails, and vm-cpu 0.
    act: run install.
    assert: Blocked naming vm-cpu.
    """
    fake_host.installed = False
    fake_host.ensure_error = command.HostError("cannot install LXD: store unreachable")

    out = run(ctx, ctx.on.install(), config={**VALID, "vm-cpu": 0})

    assert isinstance(out.unit_status, ops.BlockedStatus)
    assert "vm-cpu" in out.unit_status.message


def test_invalid_config_still_installs_lxd(ctx: testing.Context, fake_host: FakeHost) -> None:
    """An invalid config still installs LXD.

    arrange: a machine without LXD and an empty config.
    act: run install.
    assert: LXD is installed and the unit is Blocked.
    """
    fake_host.installed = False

    out = run(ctx, ctx.on.install(), config={})

    assert fake_host.installed
    assert isinstance(out.unit_status, ops.BlockedStatus)


# ----- status from the report ---------------------------------------------------------------


def test_healthy_report_is_active_with_summary(
    ctx: testing.Context, manager: FakeManagerService
) -> None:
    """A healthy report is Active with a summary of runners per type.

    arrange: a report of 3 of 3 containers (idle, busy, booting) and 1 of 1 virtual machine.
    act: run update-status.
    assert: Active "3/3 container, 1/1 virtual-machine runners" (a stopped runner is not counted).
    """
    manager.report = make_report(
        desired={"container": 3, "virtual-machine": 1},
        counts={
            "container": {"idle": 1, "busy": 1, "booting": 1, "stopped": 1},
            "virtual-machine": {"idle": 1},
        },
    )

    out = run(ctx, ctx.on.update_status(), config=VALID)

    assert out.unit_status == ops.ActiveStatus("3/3 container, 1/1 virtual-machine runners")


def test_summary_omits_types_without_runners(
    ctx: testing.Context, manager: FakeManagerService
) -> None:
    """The summary leaves out a runner type with none wanted.

    arrange: a report wanting no container and 2 virtual machines, one idle.
    act: run update-status.
    assert: Active "1/2 virtual-machine runners".
    """
    manager.report = make_report(
        desired={"container": 0, "virtual-machine": 2},
        counts={"container": {}, "virtual-machine": {"idle": 1}},
    )

    out = run(ctx, ctx.on.update_status(), config=VALID)

    assert out.unit_status == ops.ActiveStatus("1/2 virtual-machine runners")


def test_summary_with_no_runners_configured(
    ctx: testing.Context, manager: FakeManagerService
) -> None:
    """With no runners wanted, the status says which options to set.

    arrange: a report wanting no runner of either type.
    act: run update-status.
    assert: Active "no runners configured: set containers or virtual-machines".
    """
    manager.report = make_report(desired={"container": 0, "virtual-machine": 0}, counts={})

    out = run(ctx, ctx.on.update_status(), config=VALID)

    assert out.unit_status == ops.ActiveStatus(
        "no runners configured: set containers or virtual-machines"
    )


def test_token_error_in_report_blocks(ctx: testing.Context, manager: FakeManagerService) -> None:
    """A token error in the report blocks with the command to set a valid token.

    arrange: a report with a token error (401).
    act: run update-status.
    assert: Blocked "GitHub rejected the token" with the juju config command.
    """
    manager.report = make_report(
        ok=False, errors=[{"kind": "token", "message": "GitHub rejected the token (401)"}]
    )

    out = run(ctx, ctx.on.update_status(), config=VALID)

    assert out.unit_status == ops.BlockedStatus(
        "GitHub rejected the token: set a valid token with "
        "`juju config github-runner token=<token or secret URI>`"
    )


@pytest.mark.parametrize("kind", ["permission", "path"])
def test_permission_or_path_error_blocks_with_report_message(
    ctx: testing.Context, manager: FakeManagerService, kind: str
) -> None:
    """A permission or path error in the report blocks with its message.

    arrange: a report with a permission or a path error.
    act: run update-status.
    assert: Blocked with the report's message.
    """
    message = "the token lacks the repo scope (403 Forbidden)"
    manager.report = make_report(ok=False, errors=[{"kind": kind, "message": message}])

    out = run(ctx, ctx.on.update_status(), config=VALID)

    assert out.unit_status == ops.BlockedStatus(message)


def test_config_error_in_report_blocks(ctx: testing.Context, manager: FakeManagerService) -> None:
    """A config error in the report blocks saying the manager refused its configuration.

    arrange: a report with a config error.
    act: run update-status.
    assert: Blocked "the runner manager refused its configuration:" with the message.
    """
    manager.report = make_report(
        ok=False, errors=[{"kind": "config", "message": "the GitHub token is empty"}]
    )

    out = run(ctx, ctx.on.update_status(), config=VALID)

    assert out.unit_status == ops.BlockedStatus(
        "the runner manager refused its configuration: the GitHub token is empty"
    )


def test_rate_limited_report_is_active_with_note(
    ctx: testing.Context, manager: FakeManagerService
) -> None:
    """A rate-limited report is Active with a note of when the limit resets.

    arrange: a report with a rate-limit error and a reset time of 13:45 UTC.
    act: run update-status.
    assert: Active "1/1 virtual-machine runners (rate limited until 13:45 UTC)".
    """
    reset = datetime.datetime(2026, 6, 1, 13, 45, tzinfo=datetime.timezone.utc).timestamp()
    manager.report = make_report(
        ok=False,
        errors=[{"kind": "rate-limit", "message": "rate limit spent"}],
        rate_limit_reset_at=reset,
    )

    out = run(ctx, ctx.on.update_status(), config=VALID)

    assert out.unit_status == ops.ActiveStatus(
        "1/1 virtual-machine runners (rate limited until 13:45 UTC)"
    )


def test_transient_errors_are_short_notes(
    ctx: testing.Context, manager: FakeManagerService
) -> None:
    """Transient errors are short notes on the Active status, creation failures counted.

    arrange: a report with an image, two runner-creation, an LXD and a rate-limit error.
    act: run update-status.
    assert: Active with the notes "rate limited by GitHub; image jammy missing; 2 runner creation
        failures; LXD error".
    """
    manager.report = make_report(
        ok=False,
        errors=[
            {"kind": "image", "message": "the LXD image 'jammy' does not exist yet"},
            {"kind": "runner-create", "message": "boom", "runner": "a"},
            {"kind": "runner-create", "message": "boom", "runner": "b"},
            {"kind": "lxd", "message": "LXD said no"},
            {"kind": "rate-limit", "message": "spent"},
        ],
    )

    out = run(ctx, ctx.on.update_status(), config=VALID)

    assert out.unit_status == ops.ActiveStatus(
        "1/1 virtual-machine runners (rate limited by GitHub; image jammy missing; "
        "2 runner creation failures; LXD error)"
    )


def test_stale_report_is_waiting(ctx: testing.Context, manager: FakeManagerService) -> None:
    """A stale report is Waiting, whatever errors it holds.

    arrange: a report from 36 minutes ago with a token error, and a 10 minute interval.
    act: run update-status.
    assert: Waiting starting "the last reconciliation was 36 minutes ago".
    """
    old = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=36)
    manager.report = make_report(
        started_at=old,
        finished_at=old,
        errors=[{"kind": "token", "message": "ignored: the report is stale"}],
    )

    out = run(ctx, ctx.on.update_status(), config=VALID)

    assert isinstance(out.unit_status, ops.WaitingStatus)
    assert out.unit_status.message.startswith("the last reconciliation was 36 minutes ago")


def test_recent_report_with_long_interval_is_not_stale(
    ctx: testing.Context, manager: FakeManagerService
) -> None:
    """A report is stale only relative to the check interval.

    arrange: a report from 36 minutes ago and a check interval of 30 minutes.
    act: run update-status.
    assert: Active.
    """
    old = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=36)
    manager.report = make_report(started_at=old, finished_at=old)

    out = run(ctx, ctx.on.update_status(), config={**VALID, "check-interval": 30})

    assert isinstance(out.unit_status, ops.ActiveStatus)


def test_no_report_is_waiting(ctx: testing.Context) -> None:
    """No report yet is Waiting for the first reconciliation.

    arrange: a valid config and no report.
    act: run update-status.
    assert: Waiting "waiting for the first reconciliation".
    """
    out = run(ctx, ctx.on.update_status(), config=VALID)

    assert out.unit_status == ops.WaitingStatus("waiting for the first reconciliation")


def test_busy_only_report_is_waiting(ctx: testing.Context, manager: FakeManagerService) -> None:
    """A report that only says the manager was busy is Waiting.

    arrange: a report whose only error is busy (lock held) with no counts.
    act: run update-status.
    assert: Waiting.
    """
    manager.report = make_report(
        ok=False, counts={}, errors=[{"kind": "busy", "message": "lock held"}]
    )

    out = run(ctx, ctx.on.update_status(), config=VALID)

    assert isinstance(out.unit_status, ops.WaitingStatus)


def test_invalid_config_wins_over_report(
    ctx: testing.Context, manager: FakeManagerService
) -> None:
    """An invalid config is reported before a healthy report.

    arrange: a healthy report and vm-cpu 0.
    act: run update-status.
    assert: Blocked.
    """
    manager.report = make_report()

    out = run(ctx, ctx.on.update_status(), config={**VALID, "vm-cpu": 0})

    assert isinstance(out.unit_status, ops.BlockedStatus)


# ----- stop and remove ----------------------------------------------------------------------


def test_stop_with_invalid_config_disables_timer_and_flushes_busy(
    ctx: testing.Context, manager: FakeManagerService
) -> None:
    """The stop hook with an invalid config still stops the timer and flushes every runner.

    arrange: a configured manager with its timer active and a Blocked unit with a bad path.
    act: run stop.
    assert: the manager is stopped, its timer inactive, one busy flush without reconcile ran, its
        files are kept, and the status is unchanged.
    """
    manager.preconfigured = True
    manager.timer_active = True
    status = ops.BlockedStatus("path: bad")

    out = run(ctx, ctx.on.stop(), config={"path": "a/b/c"}, unit_status=status)

    assert manager.stopped
    assert not manager.timer_active
    assert manager.runs == [["flush", "--busy", "--no-reconcile"]]
    assert not manager.files_removed
    assert out.unit_status == status


def test_stop_never_configured_flushes_nothing(
    ctx: testing.Context, manager: FakeManagerService
) -> None:
    """The stop hook on a unit never configured flushes nothing.

    arrange: an empty config and a manager never configured.
    act: run stop.
    assert: the manager is stopped and nothing ran.
    """
    run(ctx, ctx.on.stop(), config={})

    assert manager.stopped
    assert manager.runs == []


def test_stop_survives_a_failed_flush(ctx: testing.Context, manager: FakeManagerService) -> None:
    """The stop hook goes through a flush that failed.

    arrange: a configured manager whose flush fails (LXD error).
    act: run stop.
    assert: the hook completes after the one flush.
    """
    manager.preconfigured = True
    manager.results["flush"] = [result(4, ok=False, errors=[{"kind": "lxd", "message": "x"}])]

    run(ctx, ctx.on.stop(), config=VALID)

    assert manager.runs == [["flush", "--busy", "--no-reconcile"]]


def test_stop_survives_a_manager_that_cannot_run(
    ctx: testing.Context, manager: FakeManagerService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stop hook goes through a manager command that cannot run.

    arrange: a configured manager whose run raises a ServiceError (timed out).
    act: run stop.
    assert: the hook completes and the manager is stopped.
    """
    manager.preconfigured = True

    def hang(args: list[str], timeout: float) -> None:
        raise charm.service.ServiceError("the runner manager's flush did not finish within 1s")

    monkeypatch.setattr(manager, "run", hang)

    run(ctx, ctx.on.stop(), config=VALID)

    assert manager.stopped


def test_remove_flushes_and_deletes_files(
    ctx: testing.Context, manager: FakeManagerService
) -> None:
    """The remove hook flushes every runner and deletes the manager's files, even if invalid.

    arrange: a configured manager and an invalid vm-disk.
    act: run remove.
    assert: the manager is stopped, one busy flush without reconcile ran, and its files are
        removed.
    """
    manager.preconfigured = True

    run(ctx, ctx.on.remove(), config={"vm-disk": "broken"})

    assert manager.stopped
    assert manager.runs == [["flush", "--busy", "--no-reconcile"]]
    assert manager.files_removed


# ----- actions ------------------------------------------------------------------------------

CHECK_DOCUMENT: dict[str, Any] = {
    "online": 3,
    "offline": 1,
    "busy": 1,
    "idle": 2,
    "unknown": 1,
    "runners": {
        "online": ["github-runner-0-aaa", "github-runner-0-bbb", "github-runner-0-ccc"],
        "offline": ["github-runner-0-ddd"],
        "unknown": ["github-runner-0-eee"],
        "busy": ["github-runner-0-bbb"],
        "idle": ["github-runner-0-aaa", "github-runner-0-ccc"],
    },
    "by_type": {"container": {"idle": 2, "busy": 1}},
    "desired": {"container": 3, "virtual-machine": 0},
    "rate_limit_remaining": 4000,
}
CHECK_RESULTS = {
    "online": 3,
    "offline": 1,
    "unknown": 1,
    "busy": 1,
    "idle": 2,
    "runners": "github-runner-0-aaa,github-runner-0-bbb,github-runner-0-ccc",
    "online-runners": "github-runner-0-aaa,github-runner-0-bbb,github-runner-0-ccc",
    "offline-runners": "github-runner-0-ddd",
    "busy-runners": "github-runner-0-bbb",
    "idle-runners": "github-runner-0-aaa,github-runner-0-ccc",
    "unknown-runners": "github-runner-0-eee",
}
ACTIVE = ops.ActiveStatus("3/3 container runners")


@pytest.fixture
def configured(manager: FakeManagerService) -> FakeManagerService:
    manager.preconfigured = True
    manager.results["check"] = [result(**CHECK_DOCUMENT)]
    return manager


def runner_report(command: str, delta: dict[str, int], **kw):
    """A report of a run that changed the runner counts by `delta` per instance type."""
    return make_report(command=command, delta=delta, **kw)


def test_check_runners_results(ctx: testing.Context, configured: FakeManagerService) -> None:
    """check-runners returns the manager's check results and leaves the status alone.

    arrange: a configured manager whose check answers with runner counts and names, and an Active
        unit.
    act: run the check-runners action.
    assert: the results are the check's, the manager ran check once, and the status is unchanged.
    """
    out = run(ctx, ctx.on.action("check-runners"), config=VALID, unit_status=ACTIVE)

    assert ctx.action_results == CHECK_RESULTS
    assert configured.runs == [["check"]]
    assert out.unit_status == ACTIVE


def test_check_runners_names_every_state(
    ctx: testing.Context, manager: FakeManagerService
) -> None:
    """check-runners lists the runners of every state, an empty state as an empty list.

    arrange: a check answer with one idle online runner, two offline, one unknown and none busy.
    act: run the check-runners action.
    assert: each state's runners result lists its names, busy-runners empty.
    """
    manager.preconfigured = True
    manager.results["check"] = [
        result(
            online=1, offline=2, busy=0, idle=1, unknown=1,
            runners={"online": ["r-idle"], "idle": ["r-idle"], "offline": ["r-off1", "r-off2"],
                     "unknown": ["r-new"]},
        )
    ]  # fmt: skip

    run(ctx, ctx.on.action("check-runners"), config=VALID, unit_status=ACTIVE)

    assert ctx.action_results is not None
    names = {key: value for key, value in ctx.action_results.items() if key.endswith("runners")}
    assert names == {
        "runners": "r-idle",
        "online-runners": "r-idle",
        "offline-runners": "r-off1,r-off2",
        "busy-runners": "",
        "idle-runners": "r-idle",
        "unknown-runners": "r-new",
    }


def test_reconcile_runners_results(ctx: testing.Context, configured: FakeManagerService) -> None:
    """reconcile-runners returns the reconciliation's delta with the check results.

    arrange: a reconcile report with a delta of +2 containers and -1 virtual machine.
    act: run the reconcile-runners action.
    assert: the results are the delta plus the check results; reconcile then check ran; the status
        is unchanged.
    """
    report = runner_report(
        "reconcile",
        {"container": 2, "virtual-machine": -1},
        created=["r3", "r4"],
        removed=[{"name": "r2", "reason": "unhealthy"}],
    )
    configured.results["reconcile"] = [report_result(report)]

    out = run(ctx, ctx.on.action("reconcile-runners"), config=VALID, unit_status=ACTIVE)

    assert ctx.action_results == {
        "delta": {"container": 2, "virtual-machine": -1},
        **CHECK_RESULTS,
    }
    assert configured.runs == [["reconcile"], ["check"]]
    assert out.unit_status == ACTIVE


@pytest.mark.parametrize(
    ("params", "flush"),
    [
        ({}, ["flush"]),
        ({"busy": True}, ["flush", "--busy"]),
    ],
)
def test_flush_runners_results(
    ctx: testing.Context,
    configured: FakeManagerService,
    params: dict[str, Any],
    flush: list[str],
) -> None:
    """flush-runners flushes (busy runners when asked) and returns the delta and check results.

    arrange: a flush report with a delta of +1 container; the action without and with busy=true.
    act: run the flush-runners action.
    assert: the manager ran flush (with --busy when asked) then check, and the results are the
        delta plus the check results.
    """
    flushed = runner_report(
        "flush",
        {"container": 1, "virtual-machine": 0},
        removed=[{"name": "r1", "reason": "flush"}, {"name": "r2", "reason": "flush"}],
        created=["r3", "r4", "r5"],
    )
    configured.results["flush"] = [report_result(flushed)]

    run(ctx, ctx.on.action("flush-runners", params=params), config=VALID)

    assert configured.runs == [flush, ["check"]]
    assert ctx.action_results == {"delta": {"container": 1, "virtual-machine": 0}, **CHECK_RESULTS}


def test_flush_that_fails_reports_its_delta(
    ctx: testing.Context, configured: FakeManagerService
) -> None:
    """A failed flush fails the action with its error and still reports its delta.

    arrange: a flush report with a delta of -1 container and an LXD error, exit code 4.
    act: run the flush-runners action.
    assert: the action fails with "flush failed (exit code 4):" and the error; no check ran; the
        results hold the delta.
    """
    flushed = runner_report(
        "flush",
        {"container": -1, "virtual-machine": 0},
        removed=[{"name": "r1", "reason": "flush"}],
        ok=False,
        errors=[{"kind": "lxd", "message": "cannot delete r2: LXD timed out"}],
    )
    configured.results["flush"] = [report_result(flushed, exit_code=4)]

    with pytest.raises(testing.ActionFailed) as failure:
        run(ctx, ctx.on.action("flush-runners"), config=VALID)

    assert failure.value.message == ("flush failed (exit code 4): cannot delete r2: LXD timed out")
    assert configured.runs == [["flush"]]
    assert ctx.action_results == {"delta": {"container": -1, "virtual-machine": 0}}


@pytest.mark.parametrize(
    ("updated", "reason", "flushed"),
    [
        (True, "stale-config", True),
        (True, "scale-down", False),
        (False, "stale-config", False),
    ],
)
def test_update_dependencies_results(
    ctx: testing.Context,
    configured: FakeManagerService,
    updated: bool,
    reason: str,
    flushed: bool,
) -> None:
    """update-dependencies reports the runner version, the delta, and a flush only for an update.

    arrange: an update-dependencies report with or without a runner update, replacing a runner for
        a stale config or a scale-down.
    act: run the update-dependencies action.
    assert: flush is true only for an update with stale-config replacements; the version and delta
        are returned; the status is unchanged.
    """
    report = runner_report(
        "update-dependencies",
        {"container": 0, "virtual-machine": 0},
        removed=[{"name": "r1", "reason": reason}],
        created=["r2"],
        runner_version="2.330.0",
        runner_updated=updated,
    )
    configured.results["update-dependencies"] = [report_result(report)]

    out = run(ctx, ctx.on.action("update-dependencies"), config=VALID, unit_status=ACTIVE)

    assert ctx.action_results == {
        "flush": flushed,
        "runner-version": "2.330.0",
        "delta": {"container": 0, "virtual-machine": 0},
    }
    assert out.unit_status == ACTIVE


FAILURES = [
    pytest.param(
        "check-runners",
        "check",
        result(3, ok=False, errors=[{"kind": "token", "message": "GitHub rejected (401)"}]),
        "GitHub rejected the token: set a valid token with "
        "`juju config github-runner token=<token or secret URI>`",
        id="check token error",
    ),
    pytest.param(
        "reconcile-runners",
        "reconcile",
        report_result(
            make_report(ok=False, errors=[{"kind": "busy", "message": "lock held"}]), exit_code=5
        ),
        "another run of the runner manager is in progress: try again in a minute",
        id="reconcile lock busy",
    ),
    pytest.param(
        "reconcile-runners",
        "reconcile",
        report_result(
            make_report(
                ok=False,
                errors=[{"kind": "permission", "message": "the token lacks admin:org (403)"}],
            ),
            exit_code=3,
        ),
        "the token lacks admin:org (403)",
        id="reconcile permission",
    ),
    pytest.param(
        "update-dependencies",
        "update-dependencies",
        result(2, ok=False, errors=[{"kind": "config", "message": "runners.cpu: too small"}]),
        "the runner manager refused its configuration: runners.cpu: too small",
        id="update config error",
    ),
    pytest.param(
        "flush-runners",
        "flush",
        result(1),
        "flush failed (exit code 1): see the unit's log",
        id="flush unexpected",
    ),
]


@pytest.mark.parametrize(("action", "command", "outcome", "message"), FAILURES)
def test_action_failures(
    ctx: testing.Context,
    configured: FakeManagerService,
    action: str,
    command: str,
    outcome: Any,
    message: str,
) -> None:
    """Each manager failure fails its action with a clear message, never the token.

    arrange: one failing manager answer per action and command.
    act: run the action.
    assert: it fails with the expected message, the status is unchanged, and no result holds the
        token.
    """
    configured.results[command] = [outcome]

    with pytest.raises(testing.ActionFailed) as failure:
        run(ctx, ctx.on.action(action), config=VALID, unit_status=ACTIVE)

    assert failure.value.message == message
    assert failure.value.state is not None
    assert failure.value.state.unit_status == ACTIVE
    assert TOKEN not in json.dumps(ctx.action_results or {})


@pytest.mark.parametrize(
    "action", ["check-runners", "reconcile-runners", "flush-runners", "update-dependencies"]
)
def test_actions_fail_on_invalid_config(
    ctx: testing.Context, configured: FakeManagerService, action: str
) -> None:
    """Every action fails on an invalid config without running the manager.

    arrange: a configured manager and vm-memory "7GB".
    act: run each action.
    assert: it fails with "the configuration is invalid: vm-memory:" and the manager ran nothing.
    """
    with pytest.raises(testing.ActionFailed) as failure:
        run(ctx, ctx.on.action(action), config={**VALID, "vm-memory": "7GB"})

    assert failure.value.message.startswith("the configuration is invalid: vm-memory:")
    assert configured.runs == []


def test_action_fails_when_the_host_cannot_be_inspected(
    ctx: testing.Context, configured: FakeManagerService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An action fails with the reason when the host cannot be inspected.

    arrange: a host whose storage inspection times out.
    act: run the check-runners action.
    assert: it fails with "cannot inspect the host:" and the timeout.
    """

    def timeout() -> None:
        raise command.HostError("`/snap/bin/lxc storage show` did not finish within 60s")

    monkeypatch.setattr(FakeHost, "runner_storage_in_use", lambda self: timeout())

    with pytest.raises(testing.ActionFailed) as failure:
        run(ctx, ctx.on.action("check-runners"), config=VALID)

    assert failure.value.message == (
        "cannot inspect the host: `/snap/bin/lxc storage show` did not finish within 60s"
    )


def test_actions_fail_before_first_configuration(
    ctx: testing.Context, manager: FakeManagerService
) -> None:
    """An action before the manager's first configuration fails saying so.

    arrange: a manager never configured.
    act: run the check-runners action.
    assert: it fails with "not configured yet".
    """
    with pytest.raises(testing.ActionFailed) as failure:
        run(ctx, ctx.on.action("check-runners"), config=VALID)

    assert "not configured yet" in failure.value.message


def test_action_fails_when_manager_cannot_run(
    ctx: testing.Context, configured: FakeManagerService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An action fails with the service error when the manager cannot run.

    arrange: a configured manager whose run raises a ServiceError.
    act: run the reconcile-runners action.
    assert: it fails with the service error's message.
    """

    def hang(args: list[str], timeout: float) -> None:
        raise charm.service.ServiceError("the runner manager's reconcile did not finish")

    monkeypatch.setattr(configured, "run", hang)

    with pytest.raises(testing.ActionFailed) as failure:
        run(ctx, ctx.on.action("reconcile-runners"), config=VALID)

    assert failure.value.message == "the runner manager's reconcile did not finish"


def test_reconcile_after_check_failure_still_returns_delta(
    ctx: testing.Context, configured: FakeManagerService
) -> None:
    """reconcile-runners fails with the check's error when the check after it fails.

    arrange: a reconcile with a delta of +1 container, then a check that fails (502).
    act: run the reconcile-runners action.
    assert: it fails with "check failed (exit code 4): 502".
    """
    report = runner_report("reconcile", {"container": 1, "virtual-machine": 0})
    configured.results["reconcile"] = [report_result(report)]
    configured.results["check"] = [
        result(4, ok=False, errors=[{"kind": "github-unavailable", "message": "502"}])
    ]

    with pytest.raises(testing.ActionFailed) as failure:
        run(ctx, ctx.on.action("reconcile-runners"), config=VALID)

    assert failure.value.message == "check failed (exit code 4): 502"


# ----- egress firewall ----------------------------------------------------------------------


def test_firewall_gets_the_denylist_once_lxd_is_ready(
    ctx: testing.Context, fake_host: FakeHost
) -> None:
    """The firewall gets the denylist once LXD is ready.

    arrange: a denylist of two networks.
    act: run install.
    assert: the firewall was applied once with both networks, after ensuring LXD only.
    """
    config = {**VALID, "denylist": "10.0.0.0/8, 192.168.0.0/16"}

    run(ctx, ctx.on.install(), config=config)

    assert fake_host.firewall_applied == [
        (ipaddress.IPv4Network("10.0.0.0/8"), ipaddress.IPv4Network("192.168.0.0/16"))
    ]
    assert fake_host.calls_before_firewall == ["ensure_lxd"]


def test_empty_denylist_still_applies_the_firewall(
    ctx: testing.Context, fake_host: FakeHost
) -> None:
    """An empty denylist still applies the firewall (it guards the host).

    arrange: a valid config without denylist.
    act: run config-changed.
    assert: the firewall was applied once with no network.
    """
    run(ctx, ctx.on.config_changed(), config=VALID)

    assert fake_host.firewall_applied == [()]


def test_denylist_change_reapplies_the_firewall(
    ctx: testing.Context, fake_host: FakeHost, manager: FakeManagerService
) -> None:
    """A denylist change applies the firewall again without replacing runners.

    arrange: a config-changed with a denylist of 10.0.0.0/8.
    act: run config-changed with 172.16.0.0/12.
    assert: the firewall's last denylist is 172.16.0.0/12 and only the first reconcile was started.
    """
    run(ctx, ctx.on.config_changed(), config={**VALID, "denylist": "10.0.0.0/8"})

    run(ctx, ctx.on.config_changed(), config={**VALID, "denylist": "172.16.0.0/12"})

    assert fake_host.firewall_applied[-1] == (ipaddress.IPv4Network("172.16.0.0/12"),)
    # The denylist is the firewall's alone: the runners are not replaced for it.
    assert manager.reconciles_started == 1


def test_firewall_failure_is_maintenance_and_retried(
    ctx: testing.Context, fake_host: FakeHost, manager: FakeManagerService
) -> None:
    """A firewall failure is Maintenance saying it retries, and the manager is not configured.

    arrange: a firewall whose ACL attachment is refused.
    act: run config-changed.
    assert: Maintenance "preparing the host failed, retrying:" with the reason; no manager config.
    """
    fake_host.firewall_error = firewall.FirewallError(
        "cannot attach the ACL github-runner to the LXD network lxdbr0: refused"
    )

    out = run(ctx, ctx.on.config_changed(), config=VALID)

    assert out.unit_status == ops.MaintenanceStatus(
        "preparing the host failed, retrying: cannot attach the ACL github-runner to the LXD "
        "network lxdbr0: refused"
    )
    assert manager.config is None


def test_firewall_applies_even_when_the_storage_blocks(
    ctx: testing.Context, fake_host: FakeHost
) -> None:
    """The firewall is applied even when the storage blocks the unit.

    arrange: Juju storage too small for the runners, and a denylist of 10.0.0.0/8.
    act: run config-changed.
    assert: Blocked, and the firewall was applied with the denylist.
    """
    fake_host.juju_storage = 1

    out = run(ctx, ctx.on.config_changed(), config={**VALID, "denylist": "10.0.0.0/8"})

    assert isinstance(out.unit_status, ops.BlockedStatus)
    assert fake_host.firewall_applied == [(ipaddress.IPv4Network("10.0.0.0/8"),)]


def test_invalid_denylist_leaves_the_firewall_as_it_was(
    ctx: testing.Context, fake_host: FakeHost
) -> None:
    """An invalid denylist blocks and leaves the firewall as it was.

    arrange: a denylist entry with host bits set.
    act: run config-changed.
    assert: Blocked, and the firewall was not applied.
    """
    out = run(ctx, ctx.on.config_changed(), config={**VALID, "denylist": "10.0.0.1/8"})

    assert isinstance(out.unit_status, ops.BlockedStatus)
    assert fake_host.firewall_applied == []


@pytest.mark.parametrize(("test_mode", "privileged"), [("", False), ("insecure", True)])
def test_test_mode_insecure_makes_container_runners_privileged(
    ctx: testing.Context, manager: FakeManagerService, test_mode: str, privileged: bool
) -> None:
    """test-mode insecure makes container runners privileged, and only it.

    arrange: test-mode empty or insecure, with one container.
    act: run config-changed.
    assert: the manager's runners are privileged only with insecure.
    """
    run(ctx, ctx.on.config_changed(), config={**VALID, "test-mode": test_mode, "containers": 1})

    assert manager.config is not None
    assert manager.config.runners.privileged is privileged


def test_logrotate_rotates_the_metrics_log_the_manager_writes(
    ctx: testing.Context, fake_host: FakeHost, manager: FakeManagerService
) -> None:
    """The rotated log is the one the manager's configuration names.

    arrange: a valid configuration.
    act: config-changed.
    assert: logrotate is set up for the metrics log of the manager's configuration.
    """
    run(ctx, ctx.on.config_changed(), config=VALID)

    assert manager.config is not None
    assert fake_host.rotated_log == manager.config.metrics.log_path
