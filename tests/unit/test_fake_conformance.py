# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.

"""Every unit-test fake stands in for what it fakes: checked by mypy and at run time.

The fakes are the seams of the unit suite (real over mocked: small fakes behind the project's
interfaces), so a fake that drifts from its protocol tests a program that does not exist.
Two guards, both driven by the one table `SEAMS` below:

- `_typed_seams` assigns each fake to its protocol; mypy (run by `tox -e lint` over tests/)
  fails on a missing method or a wrong signature;
- `test_fake_matches_its_seam` compares method names and parameters at run time, which also
  covers the charm-side fakes that replace concrete classes (`host.Host`,
  `storage.StoragePool`, `ManagerService`, the runner binary cache) and so cannot be checked
  structurally by mypy.

When a protocol is split or renamed (for example `LxdClient` into an instance client and an
image store), change its rows in `SEAMS` and the matching lines of `_typed_seams`.
"""

from __future__ import annotations

import inspect

import pytest

import host
import service
import storage
from github_runner_manager.binary import RunnerBinaryCache
from github_runner_manager.github import GitHubClient
from github_runner_manager.lxd import ImageStore, InstanceClient, LxdClient
from github_runner_manager.replenish import EventSource, Replenishing
from github_runner_manager.runner_metrics import JobLookup

from .charm_fakes import FakeHost, FakeManagerService, FakeStoragePool
from .fakes import FakeBinaryCache, FakeGitHub, FakeLxd
from .test_charm_hooks import RecordingRunner
from .test_firewall import FakeLxd as FakeFirewallCommands
from .test_host import FakeCommands
from .test_image import ScriptLxd
from .test_replenish import FakeFleet, FakeStream
from .test_runner_metrics import FakeJobLookup
from .test_service import FakeSystemd

# (what is faked, the fake). A Protocol is checked member by member; a concrete class (the
# charm-side fakes replace classes at the module boundary) on the methods the fake defines.
SEAMS: list[tuple[type, type]] = [
    (InstanceClient, FakeLxd),
    (ImageStore, FakeLxd),
    (InstanceClient, ScriptLxd),
    (ImageStore, ScriptLxd),
    (GitHubClient, FakeGitHub),
    (EventSource, FakeStream),
    (Replenishing, FakeFleet),
    (host.CommandRunner, FakeCommands),
    (host.CommandRunner, FakeFirewallCommands),
    (host.CommandRunner, RecordingRunner),
    (service.Systemd, service.CharmlibsSystemd),
    (service.Systemd, FakeSystemd),
    (host.Host, FakeHost),
    (storage.StoragePool, FakeStoragePool),
    (service.ManagerService, FakeManagerService),
    (RunnerBinaryCache, FakeBinaryCache),
]


def _typed_seams() -> None:
    """Assign every fake to its protocol, for mypy; a drifting fake fails `tox -e lint`."""
    lxd: LxdClient = FakeLxd()
    script_lxd: LxdClient = ScriptLxd()
    github: GitHubClient = FakeGitHub()
    events: EventSource = FakeStream()
    fleet: Replenishing = FakeFleet(count=1, live=0)
    commands: host.CommandRunner = FakeCommands()
    firewall_commands: host.CommandRunner = FakeFirewallCommands()
    recording: host.CommandRunner = RecordingRunner()
    systemd: service.Systemd = FakeSystemd()
    lookup: JobLookup = FakeJobLookup()
    seams = (lxd, script_lxd, github, events, fleet, commands, firewall_commands, recording)
    assert all(seam is not None for seam in (*seams, systemd, lookup))


def test_fakes_type_check_against_their_protocols():
    """The typed assignments build: every fake in the table can be made without arguments.

    arrange: the fakes of the unit suite.
    act: build each and assign it to its protocol (mypy checks the same lines in lint).
    assert: nothing fails.
    """
    _typed_seams()


def _is_protocol(contract: type) -> bool:
    return bool(getattr(contract, "_is_protocol", False))


def _members(contract: type, fake: type) -> list[str]:
    """The methods to compare: a protocol's own, or the concrete class's that the fake defines.

    Args:
        contract: the protocol or the concrete class faked.
        fake: the fake.

    Returns:
        The method names.
    """
    if _is_protocol(contract):
        return [
            name
            for name, value in vars(contract).items()
            if callable(value) and (name == "__call__" or not name.startswith("_"))
        ]
    return [
        name
        for name, value in vars(fake).items()
        if inspect.isfunction(value) and not name.startswith("_") and hasattr(contract, name)
    ]


def _parameters(function: object) -> list[inspect.Parameter]:
    parameters = list(inspect.signature(function).parameters.values())  # type: ignore[arg-type]  # any callable
    return parameters[1:] if parameters and parameters[0].name == "self" else parameters


def _signature_problems(
    name: str, wanted: object, given: object, strict: bool = True
) -> list[str]:
    """Where a fake's method cannot be called the way its contract's can.

    Args:
        name: the method's name.
        wanted: the contract's method.
        given: the fake's method.
        strict: False for a concrete class: the fake may leave out a parameter with a default
            (a tuning knob the charm leaves alone, like `Host.ensure_firewall(network=...)`).

    Returns:
        One line a problem (empty: the fake accepts every call the contract allows).
    """
    want, got = _parameters(wanted), _parameters(given)
    by_name = {p.name: p for p in got}
    if not strict:
        want = [p for p in want if p.name in by_name or p.default is p.empty]
    problems = []
    for index, param in enumerate(want):
        theirs = by_name.get(param.name)
        if theirs is None:
            problems.append(f"{name}: no parameter {param.name!r}")
        elif param.kind is not inspect.Parameter.KEYWORD_ONLY and got.index(theirs) != index:
            problems.append(f"{name}: {param.name!r} is not at position {index}")
        elif theirs.kind is not param.kind:
            problems.append(f"{name}: {param.name!r} is {theirs.kind}, not {param.kind}")
        elif param.default is not inspect.Parameter.empty and theirs.default is theirs.empty:
            problems.append(f"{name}: {param.name!r} has no default")
    wanted_names = {p.name for p in want}
    extra = [p.name for p in got if p.name not in wanted_names and p.default is p.empty]
    problems.extend(
        f"{name}: extra parameter {extra_name!r} without a default" for extra_name in extra
    )
    return problems


@pytest.mark.parametrize(
    "contract, fake",
    SEAMS,
    ids=[f"{fake.__name__}-{contract.__name__}" for contract, fake in SEAMS],
)
def test_fake_matches_its_seam(contract, fake):
    """A fake has every method of its protocol, each callable the same way.

    arrange: a row of the seam table (a protocol or a concrete class, and its fake); a concrete
        class's parameters with defaults may be left out by its fake.
    act: compare the method names and parameters (name, position, kind, default).
    assert: the fake lacks no method and accepts every call the contract allows.
    """
    members = _members(contract, fake)
    problems = [f"lacks {name}" for name in members if not callable(getattr(fake, name, None))]
    for name in members:
        if callable(getattr(fake, name, None)):
            wanted, given = getattr(contract, name), getattr(fake, name)
            problems += _signature_problems(name, wanted, given, strict=_is_protocol(contract))

    assert members, f"nothing to compare between {contract.__name__} and {fake.__name__}"
    assert not problems, f"{fake.__name__} drifts from {contract.__name__}: {problems}"


def test_the_seam_check_catches_a_drift():
    """The comparison itself fails on a missing method and on a renamed parameter.

    arrange: a fake GitHub without `job_for_runner`, and one whose `delete_runner` renames its
        parameter.
    act: compare each with the GitHubClient protocol.
    assert: both drifts are named.
    """

    class Missing(FakeGitHub):
        job_for_runner = None  # type: ignore[assignment]  # the drift under test

    class Renamed(FakeGitHub):
        def delete_runner(self, ident: int) -> None:
            del ident

    missing = [n for n in _members(GitHubClient, Missing) if not callable(getattr(Missing, n))]
    renamed = _signature_problems(
        "delete_runner", GitHubClient.delete_runner, Renamed.delete_runner
    )

    assert missing == ["job_for_runner"]
    assert renamed and "runner_id" in renamed[0]
