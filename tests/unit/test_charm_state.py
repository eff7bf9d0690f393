# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""Unit tests of charm_state.py pieces that need no charm, and of the report-to-status helpers."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path
from typing import Any

import ops
import pydantic
import pytest
from ops import testing

import charm
import charm_state
import host
from charm import GithubRunnerCharm
from charm_state import CharmConfig, InvalidConfigError, ProxyConfig
from status import report_status

from .charm_fakes import FakeHost, FakeManagerService, make_report

TOKEN = "ghp_charmStateTestToken00000000000000000"
VALID = {"path": "test-org", "token": TOKEN}


def test_config_accepts_parsed_values() -> None:
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
    with pytest.raises(pydantic.ValidationError, match="dockerhub_mirror"):
        CharmConfig(dockerhub_mirror=mirror)


def test_empty_mirror_is_none() -> None:
    assert CharmConfig(dockerhub_mirror="  ").dockerhub_mirror is None


@pytest.mark.parametrize(
    "token", ["secret:d0cjmmnmp25c7bcvv6p0", "secret://f1e2d3c4-aaaa/d0cjmmnmp25c7bcvv6p0"]
)
def test_secret_uris_are_accepted(token: str) -> None:
    assert CharmConfig(token=token).token == token


def test_token_is_not_in_the_config_repr() -> None:
    assert TOKEN not in repr(CharmConfig(token=TOKEN))


def test_proxy_from_lowercase_environment() -> None:
    proxy = ProxyConfig.from_environment(
        {"juju_charm_https_proxy": "https://proxy:3128", "juju_charm_no_proxy": "localhost"}
    )

    assert proxy == ProxyConfig(https="https://proxy:3128", no_proxy="localhost")
    assert proxy.configured


def test_no_proxy_alone_is_not_a_proxy() -> None:
    assert not ProxyConfig.from_environment({"JUJU_CHARM_NO_PROXY": "localhost"}).configured


def test_proxy_error_never_shows_credentials() -> None:
    with pytest.raises(InvalidConfigError) as error:
        ProxyConfig.from_environment({"JUJU_CHARM_HTTP_PROXY": "http://user:hunter2@proxy:x"})

    assert "hunter2" not in error.value.message
    assert "juju-http-proxy" in error.value.message


def test_application_name_too_long_for_runner_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(charm.host, "Host", FakeHost)
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
    return charm_state.CharmState(
        app_name="github-runner",
        unit_name="github-runner/0",
        unit_number=0,
        config=CharmConfig(**{**VALID, **config}),
        github_path=charm_state.parse_github_path("test-org"),
        token=TOKEN,
        proxy=ProxyConfig(),
        architecture="x64",
        ssh_debug=None,
        metrics_enabled=False,
    )


def test_required_storage_counts_every_runner() -> None:
    state = make_state(containers=2, virtual_machines=3, vm_disk="1GiB")

    assert state.runner_count == 5
    assert state.required_storage == 5 * 1024**3


def test_required_storage_without_runners_is_one_disk() -> None:
    state = make_state(containers=0, virtual_machines=0, vm_disk="2GiB")

    assert state.required_storage == 2 * 1024**3


def test_manager_config_names_the_group_for_organisations() -> None:
    state = make_state(group="gpu-runners")

    config = state.manager_config(
        state_dir=Path("/s"), token_file=Path("/t"), report_file=Path("/r"), storage_pool="p"
    )

    assert config.github.path == "test-org"
    assert config.github.group == "gpu-runners"
    assert config.lxd.storage_pool == "p"


def test_naive_report_times_count_as_utc() -> None:
    now = datetime.datetime.now(datetime.timezone.utc)
    naive = now.replace(tzinfo=None) - datetime.timedelta(hours=2)
    report = make_report(started_at=naive, finished_at=naive)

    status = report_status(report, make_state(), now=now)

    assert isinstance(status, ops.WaitingStatus)


def test_report_without_finish_uses_its_start() -> None:
    report = make_report(finished_at=None)

    status = report_status(report, make_state())

    assert isinstance(status, ops.ActiveStatus)


def test_default_host_helpers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Any, ...]] = []
    monkeypatch.setattr(host.snap, "ensure_installed", lambda *a, **kw: calls.append((a, kw)))
    monkeypatch.setattr(host.apt, "add_package", lambda *a, **kw: calls.append((a, kw)))

    host._install_snap("lxd", "5.21/stable")
    host._install_debs(["lxd"])

    assert calls == [
        (("lxd",), {"channel": "5.21/stable", "update": False}),
        ((["lxd"],), {"update_cache": True}),
    ]
    assert host._disk_total(tmp_path) > 0
