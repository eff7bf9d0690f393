# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""Shared fixtures of the unit suite: configurations and fakes; nothing sleeps for real."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest
from ops import testing

import charm
from charm import GithubRunnerCharm
from github_runner_manager.manager import RunnerManager

from .builders import PREFIX as PREFIX  # re-exported: the tests import it from here
from .builders import UNIT as UNIT  # re-exported: the tests import it from here
from .builders import make_config, manager_on_fakes
from .charm_fakes import FakeHost, FakeManagerService, use_fake_host
from .fakes import FakeBinaryCache, FakeGitHub, FakeLxd

UTC = datetime.timezone.utc


class FakeClock:
    """A clock that moves only when told (or by the fake sleep)."""

    def __init__(self) -> None:
        self.now = datetime.datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
        self.slept: list[float] = []

    def __call__(self) -> datetime.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += datetime.timedelta(seconds=seconds)

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.advance(seconds)

    def monotonic(self) -> float:
        return self.now.timestamp()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def lxd() -> FakeLxd:
    return FakeLxd()


@pytest.fixture
def github() -> FakeGitHub:
    return FakeGitHub()


@pytest.fixture
def make_manager(tmp_path, lxd, github, clock):
    """Build a RunnerManager on the fakes, with optional config overrides."""

    def _make(
        binary: FakeBinaryCache | None = None,
        github_for_target: Any = None,
        **overrides: Any,
    ) -> RunnerManager:
        config = make_config(tmp_path, **overrides)
        return manager_on_fakes(
            config, lxd, github, clock, tmp_path, binary, github_for_target=github_for_target
        )

    return _make


# ----- the charm, with the host and the runner manager faked ---------------------------------

PROXY_VARS = (
    "JUJU_CHARM_HTTP_PROXY",
    "JUJU_CHARM_HTTPS_PROXY",
    "JUJU_CHARM_NO_PROXY",
    "juju_charm_http_proxy",
    "juju_charm_https_proxy",
    "juju_charm_no_proxy",
)


@pytest.fixture
def no_model_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """No Juju model proxy in the environment (the machine's own must not leak in)."""
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def fake_host(monkeypatch: pytest.MonkeyPatch) -> FakeHost:
    """The charm's host layer (host, storage pool, firewall), in memory."""
    return use_fake_host(monkeypatch, FakeHost())


@pytest.fixture
def manager(monkeypatch: pytest.MonkeyPatch) -> FakeManagerService:
    """The charm's view of the runner manager (files, units, command line), in memory."""
    fake = FakeManagerService()

    def factory(paths: Any, charm_dir: Any) -> FakeManagerService:
        fake.paths = paths
        return fake

    monkeypatch.setattr(charm.service, "ManagerService", factory)
    return fake


@pytest.fixture
def ctx(no_model_proxy: None, fake_host: FakeHost, manager: FakeManagerService) -> testing.Context:
    """A Scenario context of the charm on the fakes."""
    return testing.Context(GithubRunnerCharm)


# ----- no test writes into the repository tree ------------------------------------------------

REPOSITORY = Path(__file__).resolve().parents[2]
# Written by the tools that run the tests, not by tests: Python's bytecode and coverage's data.
_TOOL_OUTPUT = ("__pycache__", ".tox", ".git", ".coverage", ".mypy_cache", ".ruff_cache")


def _tree() -> dict[str, float]:
    files = {}
    for path in REPOSITORY.rglob("*"):
        relative = path.relative_to(REPOSITORY)
        if any(part.startswith(_TOOL_OUTPUT) for part in relative.parts):
            continue
        if path.is_file():
            files[relative.as_posix()] = path.stat().st_mtime
    return files


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[_TREE_KEY] = _tree()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    before = session.config.stash.get(_TREE_KEY, None)
    if before is None:
        return
    after = _tree()
    # Files made or deleted (changes to existing files are left out: an editor saving a file
    # during the run must not fail it).
    created = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    if created or removed:
        session.config.get_terminal_writer().line(
            f"the unit tests wrote into the repository: created {created}, removed {removed}",
            red=True,
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


_TREE_KEY = pytest.StashKey[dict[str, float]]()
