# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""Unit tests of charm_state.py pieces that need no charm, and of the report-to-status helpers."""

from __future__ import annotations

import datetime
import ipaddress
import re
from pathlib import Path
from typing import Any

import ops
import pytest
import yaml
from ops import testing

import charm
import charm_state
import host
import service
import storage
from charm import GithubRunnerCharm
from charm_state import CharmConfig, manager_settings, proxy_from_juju_environment
from github_runner_manager.config import ManagerConfig, ProxySettings
from status import report_status

from .charm_fakes import FakeHost, FakeManagerService, make_report, use_fake_host

TOKEN = "ghp_charmStateTestToken00000000000000000"
VALID = {"path": "test-org", "token": TOKEN}


def settings(
    proxy: dict[str, str | None] | None = None, **config: Any
) -> tuple[ManagerConfig | None, list[str]]:
    return manager_settings(
        CharmConfig(**{**VALID, **config}),
        app_name="github-runner",
        unit_name="github-runner/0",
        unit_number=0,
        proxy=proxy or {},
    )


def test_config_accepts_parsed_values() -> None:
    """The charm config keeps already parsed values.

    arrange: labels, a denylist and the path as parsed values, and no mirror.
    act: build a CharmConfig.
    assert: the labels stay a tuple, the denylist holds an IPv4 network, and the mirror is None.
    """
    config = CharmConfig(
        labels=("a", "b"),
        denylist=("10.0.0.0/8",),
        dockerhub_mirror=None,
        path="my-org",
    )

    assert config.labels == ("a", "b")
    assert config.denylist == (ipaddress.IPv4Network("10.0.0.0/8"),)
    assert config.dockerhub_mirror is None


@pytest.mark.parametrize("mirror", ["https://mirror:99999", 'https://mirror/"x"'])
def test_mirror_with_bad_port_or_quote_is_refused(mirror: str) -> None:
    """A dockerhub mirror with a bad port or a quote is refused.

    arrange: a mirror URL with port 99999 or a quote in its path.
    act: build the manager's settings from the charm's config with it.
    assert: the first problem names the option dockerhub-mirror.
    """
    _, problems = settings(dockerhub_mirror=mirror)

    assert problems[0].startswith("dockerhub-mirror:")


def test_empty_mirror_is_none() -> None:
    """A blank dockerhub mirror means no mirror.

    arrange: a mirror of blanks.
    act: build the manager's settings from the charm's config with it.
    assert: the manager's config has no mirror.
    """
    manager, _ = settings(dockerhub_mirror="  ")

    assert manager is not None
    assert manager.dockerhub_mirror is None


@pytest.mark.parametrize(
    "token", ["secret:d0cjmmnmp25c7bcvv6p0", "secret://f1e2d3c4-aaaa/d0cjmmnmp25c7bcvv6p0"]
)
def test_secret_uris_are_accepted(token: str) -> None:
    """Juju secret URIs are accepted as the token.

    arrange: a short and a full secret URI.
    act: build a CharmConfig with each as the token.
    assert: the token is kept as given.
    """
    assert CharmConfig(token=token).token == token


def test_token_is_not_in_the_config_repr() -> None:
    """The token never shows in the config's repr.

    arrange: a CharmConfig with a token.
    act: take its repr.
    assert: the token is not in it.
    """
    assert TOKEN not in repr(CharmConfig(token=TOKEN))


def test_proxy_from_lowercase_environment() -> None:
    """The model proxy is read from lower-case environment names too.

    arrange: lower-case juju_charm_https_proxy and juju_charm_no_proxy.
    act: read the proxy config from that environment.
    assert: it holds the https proxy and no_proxy and counts as configured.
    """
    proxy = ProxySettings(
        **proxy_from_juju_environment(
            {"juju_charm_https_proxy": "https://proxy:3128", "juju_charm_no_proxy": "localhost"}
        )
    )

    assert proxy == ProxySettings(https="https://proxy:3128", no_proxy="localhost")
    assert proxy.configured


def test_no_proxy_alone_is_not_a_proxy() -> None:
    """NO_PROXY alone is not a configured proxy.

    arrange: an environment with only JUJU_CHARM_NO_PROXY.
    act: read the proxy config from it.
    assert: it is not configured.
    """
    proxy = proxy_from_juju_environment({"JUJU_CHARM_NO_PROXY": "localhost"})

    assert not ProxySettings(**proxy).configured


def test_proxy_error_never_shows_credentials() -> None:
    """An invalid model proxy's error names the setting without its credentials.

    arrange: an HTTP proxy URL with a password and an invalid port.
    act: read the model's proxy and build the manager's settings with it.
    assert: the problems name juju-http-proxy and do not show the password.
    """
    proxy = proxy_from_juju_environment({"JUJU_CHARM_HTTP_PROXY": "http://user:hunter2@proxy:x"})

    _, problems = settings(proxy)

    assert "hunter2" not in "; ".join(problems)
    assert "juju-http-proxy" in "; ".join(problems)


def test_application_name_too_long_for_runner_names(monkeypatch: pytest.MonkeyPatch) -> None:
    """An application name too long for runner names blocks the unit.

    arrange: an application named with 60 characters, fake host and manager.
    act: run config-changed.
    assert: Blocked, the manager refusing the configuration for name_prefix.
    """
    use_fake_host(monkeypatch, FakeHost())
    monkeypatch.setattr(
        charm.service, "ManagerService", lambda paths, charm_dir: FakeManagerService(paths)
    )
    ctx = testing.Context(GithubRunnerCharm, app_name="a" * 60)

    out = ctx.run(ctx.on.config_changed(), testing.State(config=VALID))

    assert isinstance(out.unit_status, ops.BlockedStatus)
    assert out.unit_status.message.startswith(
        "the runner manager refuses this configuration: name_prefix"
    )


def make_state(**config: Any) -> charm_state.CharmState:
    manager, problems = settings(**config)
    assert manager is not None, problems
    return charm_state.CharmState(
        app_name="github-runner",
        unit_name="github-runner/0",
        unit_number=0,
        config=CharmConfig(**{**VALID, **config}),
        token=TOKEN,
        manager=manager,
    )


def test_required_storage_counts_every_runner() -> None:
    """The required storage counts every runner's disk.

    arrange: a state with 2 containers, 3 virtual machines and 1 GiB disks.
    act: read its runner count and required storage.
    assert: 5 runners and 5 GiB.
    """
    state = make_state(containers=2, virtual_machines=3, vm_disk="1GiB")

    assert state.runner_count == 5
    assert state.required_storage == 5 * 1024**3


def test_required_storage_without_runners_is_one_disk() -> None:
    """With no runners, the required storage is still one disk.

    arrange: a state with no runners and 2 GiB disks.
    act: read its required storage.
    assert: 2 GiB.
    """
    state = make_state(containers=0, virtual_machines=0, vm_disk="2GiB")

    assert state.required_storage == 2 * 1024**3


def test_manager_config_names_the_group_for_organisations() -> None:
    """The manager's config carries the runner group of an organisation and the storage pool.

    arrange: a state for an organisation with the group gpu-runners.
    act: build the manager's config with a storage pool.
    assert: the path is the organisation, the group is gpu-runners, and the pool is set.
    """
    state = make_state(group="gpu-runners")

    config = state.manager_config(
        state_dir=Path("/s"), token_file=Path("/t"), report_file=Path("/r"), storage_pool="p"
    )

    assert config.github.path == "test-org"
    assert config.github.group == "gpu-runners"
    assert config.lxd.storage_pool == "p"


def test_naive_report_times_count_as_utc() -> None:
    """Report times without a time zone count as UTC.

    arrange: a report started and finished two hours ago, in naive UTC times.
    act: derive the status from it.
    assert: Waiting (the report is two hours old): the naive times were compared as UTC.
    """
    now = datetime.datetime.now(datetime.timezone.utc)
    naive = now.replace(tzinfo=None) - datetime.timedelta(hours=2)
    report = make_report(started_at=naive, finished_at=naive)

    status = report_status(report, make_state(), now=now)

    assert isinstance(status, ops.WaitingStatus)


def test_report_without_finish_uses_its_start() -> None:
    """A report without a finish time is dated by its start.

    arrange: a fresh report with no finish time.
    act: derive the status from it.
    assert: Active.
    """
    report = make_report(finished_at=None)

    status = report_status(report, make_state())

    assert isinstance(status, ops.ActiveStatus)


def test_default_host_helpers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The host's default helpers call snap, apt and the disk check as expected.

    arrange: snap's ensure_installed and apt's add_package replaced by recorders.
    act: install the lxd snap on a channel and the lxd deb, and read a directory's disk total.
    assert: snap got the channel without update, apt updated its cache, and the disk total is
        positive.
    """
    calls: list[tuple[Any, ...]] = []
    monkeypatch.setattr(host.snap, "ensure_installed", lambda *a, **kw: calls.append((a, kw)))
    monkeypatch.setattr(host.apt, "add_package", lambda *a, **kw: calls.append((a, kw)))

    host._install_snap("lxd", "5.21/stable")
    host._install_debs(["lxd"])

    assert calls == [
        (("lxd",), {"channel": "5.21/stable", "update": False}),
        ((["lxd"],), {"update_cache": True}),
    ]
    assert storage._disk_total(tmp_path) > 0


# ----- every bad value names its option -----------------------------------------------------

CHARMCRAFT = Path(__file__).resolve().parents[2] / "charmcraft.yaml"
# The model-config keys whose values reach the charm as JUJU_CHARM_* environment variables.
MODEL_PROXY_VARIABLE = {
    "juju-http-proxy": "JUJU_CHARM_HTTP_PROXY",
    "juju-https-proxy": "JUJU_CHARM_HTTPS_PROXY",
    "juju-no-proxy": "JUJU_CHARM_NO_PROXY",
}
# (option, bad value, the model's proxy environment): at least one row per option.
BAD_OPTION_VALUES: list[tuple[str, Any, dict[str, str]]] = [
    ("path", "a/b/c", {}),
    ("token", "ghp_with whitespace", {}),
    ("token", "secret:not a uri", {}),
    ("github-url", "http://github.example.com", {}),
    ("github-url", "https://github.com:99999", {}),
    ("group", " ", {}),
    ("labels", "good,bad label", {}),
    ("containers", -1, {}),
    ("containers", 1001, {}),
    ("virtual-machines", 1001, {}),
    ("vm-cpu", 0, {}),
    ("vm-cpu", 2000, {}),
    ("vm-memory", "9EiB", {}),
    ("vm-memory", "0GiB", {}),
    ("vm-disk", "10gb", {}),
    ("check-interval", 0, {}),
    ("check-interval", 100_000, {}),
    ("base-image", "two words", {}),
    ("denylist", "garbage", {}),
    ("dockerhub-mirror", "http://mirror.example.com", {}),
    ("runner-storage", "disk", {}),
    ("experimental-use-aproxy", True, {}),
    ("experimental-use-aproxy", True, {"JUJU_CHARM_HTTP_PROXY": "http://proxy.example.com"}),
    ("test-mode", "secure", {}),
    ("juju-http-proxy", "not a url", {}),
    ("juju-https-proxy", "ftp://user:hunter2@proxy:21", {}),
    ("juju-no-proxy", "a, b", {}),
]
# A fix the operator can apply follows the problem: one of these verbs says what to do.
_FIX = re.compile(r"\b(set|use|leave|turn|grant)\b")


def _charm_options() -> set[str]:
    return set(yaml.safe_load(CHARMCRAFT.read_text(encoding="utf-8"))["config"]["options"])


def test_the_bad_value_table_covers_every_option() -> None:
    """Every charm option and model proxy key has a row in the bad-value table.

    arrange: the options charmcraft.yaml declares and the model's proxy keys.
    act: collect the options the bad-value table drives.
    assert: none is missing, so a new option cannot skip the naming check.
    """
    covered = {option for option, _, _ in BAD_OPTION_VALUES}

    assert _charm_options() | set(MODEL_PROXY_VARIABLE) <= covered


@pytest.mark.parametrize(
    ("option", "value", "environ"),
    [
        pytest.param(o, v, e, id=f"{o}={v!r}{'+proxy' if e else ''}")
        for o, v, e in BAD_OPTION_VALUES
    ],
)
def test_every_bad_value_blocks_naming_its_option_and_the_fix(
    ctx: testing.Context,
    manager: FakeManagerService,
    monkeypatch: pytest.MonkeyPatch,
    option: str,
    value: Any,
    environ: dict[str, str],
) -> None:
    """A bad value of any option blocks the unit with a message that starts with the option.

    arrange: a valid config with one bad option value (or one bad model proxy setting).
    act: run config-changed.
    assert: Blocked, the message starts with the option's name and says what to set; the
        token and the proxy's password are not in it; the manager got no configuration.
    """
    config = dict(VALID)
    if option in MODEL_PROXY_VARIABLE:
        monkeypatch.setenv(MODEL_PROXY_VARIABLE[option], value)
    else:
        config[option] = value
    for variable, setting in environ.items():
        monkeypatch.setenv(variable, setting)

    out = ctx.run(ctx.on.config_changed(), testing.State(config=config))

    assert isinstance(out.unit_status, ops.BlockedStatus), out.unit_status
    message = out.unit_status.message
    assert message.startswith(option), message
    assert _FIX.search(message), message
    assert TOKEN not in message
    assert "hunter2" not in message
    assert manager.config is None


def test_aproxy_with_a_proxy_without_port_names_the_option(
    ctx: testing.Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A model proxy without a port blocks experimental-use-aproxy, naming the option.

    arrange: the model's juju-http-proxy without a port; experimental-use-aproxy=true.
    act: run config-changed.
    assert: Blocked naming experimental-use-aproxy and the model's proxy key, not `config`.
    """
    monkeypatch.setenv("JUJU_CHARM_HTTP_PROXY", "http://proxy.example.com")

    out = ctx.run(
        ctx.on.config_changed(),
        testing.State(config={**VALID, "experimental-use-aproxy": True}),
    )

    assert isinstance(out.unit_status, ops.BlockedStatus)
    assert out.unit_status.message.startswith("experimental-use-aproxy"), out.unit_status
    assert "juju-http-proxy" in out.unit_status.message
    assert "config:" not in out.unit_status.message


@pytest.mark.parametrize(
    ("option", "value"), [("containers", 1001), ("virtual-machines", 5000), ("vm-cpu", 4096)]
)
def test_too_many_runners_or_cpus_name_the_charm_option(
    ctx: testing.Context, option: str, value: int
) -> None:
    """A count or CPU number beyond one machine names the charm option, not the manager's key.

    arrange: a valid config with containers, virtual-machines or vm-cpu far too large.
    act: run config-changed.
    assert: Blocked, starting with the option, with the largest accepted value; no `runners.`.
    """
    out = ctx.run(ctx.on.config_changed(), testing.State(config={**VALID, option: value}))

    assert isinstance(out.unit_status, ops.BlockedStatus)
    assert out.unit_status.message.startswith(f"{option}:"), out.unit_status.message
    assert "at most" in out.unit_status.message
    assert "runners." not in out.unit_status.message


def test_a_refused_token_does_not_hide_the_other_bad_values(ctx: testing.Context) -> None:
    """A malformed token and a bad manager value are both named.

    arrange: a token option that is no secret URI, and vm-cpu=0.
    act: run config-changed.
    assert: Blocked naming token and vm-cpu, and not claiming the token is missing.
    """
    config: dict[str, Any] = {**VALID, "token": "secret:not a uri", "vm-cpu": 0}

    out = ctx.run(ctx.on.config_changed(), testing.State(config=config))

    assert isinstance(out.unit_status, ops.BlockedStatus)
    assert out.unit_status.message.startswith("token:"), out.unit_status.message
    assert "; vm-cpu: " in out.unit_status.message
    assert "missing" not in out.unit_status.message


def test_the_unit_identity_reaches_paths_and_configuration_alike(
    fake_host: FakeHost, manager: FakeManagerService, no_model_proxy: None
) -> None:
    """The unit's name and number, parsed once, give the manager's paths and configuration.

    arrange: unit 12 of the application, with a valid config.
    act: run config-changed.
    assert: the manager's files are unit 12's; its configuration names the unit
        github-runner/12, the runner name prefix github-runner-12 and the Prometheus port derived
        from the unit name.
    """
    ctx = testing.Context(GithubRunnerCharm, unit_id=12)

    ctx.run(ctx.on.config_changed(), testing.State(config=VALID))

    assert manager.paths == service.ManagerPaths.for_unit("github-runner", 12)
    config = manager.config
    assert config is not None
    assert config.unit == "github-runner/12"
    assert config.name_prefix == "github-runner-12"
    assert config.metrics.exporter_port == charm_state.exporter_port("github-runner/12")
