# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""Integration tests on a real Juju controller (pytest-operator) and a real GitHub repository.

    tox -e integration-juju3.1 -- --charm-file ./github-runner_<platform>.charm \
        --path my-org/my-test-repo --token-file ~/.github-token

Every test needs a reachable Juju 3 controller (the current one, or `--controller`), the
`juju` and `charmcraft` commands (pytest-operator insists on both, though `--charm-file` means
nothing is built), a packed charm, and a repository and token to register runners with. When
any of these is missing, every test is skipped, once, with the reason: an integration run that
could not run must not look like one that passed.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .github_api import GitHubRepo
from .helpers import charm_config, deploy, wait_for_runners, wait_for_status

HERE = Path(__file__).resolve().parent
TOKEN_ENV = "GRT_INTEGRATION_TOKEN"
TOKEN_ALT_ENV = "GRT_INTEGRATION_TOKEN_ALT"
CONTROLLER_VERSION = pytest.StashKey[tuple[int, ...]]()
PROBE_TIMEOUT = 60
DEPLOY_TIMEOUT = 60 * 60


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("github-runner integration")
    group.addoption("--charm-file", help="the packed charm to deploy (required)")
    group.addoption("--path", help="owner/repo (or an organisation) the runners serve (required)")
    group.addoption(
        "--token",
        help=f"GitHub token for --path (required; or set {TOKEN_ENV} to keep it off the "
        "command line)",
    )
    group.addoption("--token-file", help="a file holding the GitHub token, instead of --token")
    group.addoption(
        "--token-alt",
        help=f"a second token for --path, for the token rotation test (or {TOKEN_ALT_ENV})",
    )
    group.addoption("--github-url", default="https://github.com", help="GitHub server URL")
    group.addoption("--http-proxy", default="", help="the model's juju-http-proxy")
    group.addoption("--https-proxy", default="", help="the model's juju-https-proxy")
    group.addoption("--no-proxy", default="", help="the model's juju-no-proxy")
    group.addoption("--base", default="ubuntu@22.04", help="the base to deploy on")
    group.addoption(
        "--constraints",
        default="virt-type=virtual-machine cores=4 mem=8G root-disk=40G",
        help="machine constraints; the default makes LXD-cloud machines virtual machines, "
        "in which LXD, loop devices and mounts work as on a real host (use '' elsewhere)",
    )
    group.addoption(
        "--cos-agent-charm",
        default="grafana-agent",
        help="the cos-agent requirer to relate: grafana-agent or opentelemetry-collector",
    )
    group.addoption("--cos-agent-channel", default="latest/stable", help="its channel")


@dataclasses.dataclass(frozen=True)
class Options:
    """The integration options, validated.

    Attributes:
        charm_file: the packed charm.
        path: the organisation or repository.
        token: the GitHub token.
        token_alt: a second token, or empty.
        github_url: the GitHub server.
        proxies: the model proxy settings to set (only those given).
        base: the base to deploy on.
        constraints: machine constraints.
        cos_agent_charm: the cos-agent requirer charm.
        cos_agent_channel: its channel.
    """

    charm_file: Path
    path: str
    token: str = dataclasses.field(repr=False)
    token_alt: str = dataclasses.field(repr=False)
    github_url: str
    proxies: dict[str, str]
    base: str
    constraints: str
    cos_agent_charm: str
    cos_agent_channel: str

    @property
    def repository(self) -> str | None:
        """The repository workflows are dispatched in (None for organisation runners)."""
        return self.path if "/" in self.path else None


def _token(config: pytest.Config) -> str:
    token = config.getoption("--token") or os.environ.get(TOKEN_ENV, "")
    token_file = config.getoption("--token-file")
    if not token and token_file:
        try:
            token = Path(token_file).expanduser().read_text(encoding="utf-8")
        except OSError:
            return ""
    return str(token).strip()


def _options(config: pytest.Config) -> tuple[Options | None, list[str]]:
    """Read the options; return them, or the list of what is missing."""
    missing = []
    charm_file = config.getoption("--charm-file")
    if not charm_file:
        missing.append("--charm-file (a charm packed with `charmcraft pack`)")
    elif not Path(charm_file).is_file():
        missing.append(f"--charm-file {charm_file} (no such file)")
    path = config.getoption("--path") or ""
    if not path:
        missing.append("--path (the test repository, owner/repo)")
    token = _token(config)
    if not token:
        missing.append(f"--token, --token-file or {TOKEN_ENV}")
    if missing:
        return None, missing
    proxies = {
        key: str(config.getoption(option))
        for key, option in (
            ("juju-http-proxy", "--http-proxy"),
            ("juju-https-proxy", "--https-proxy"),
            ("juju-no-proxy", "--no-proxy"),
        )
        if config.getoption(option)
    }
    options = Options(
        charm_file=Path(charm_file).resolve(),
        path=str(path),
        token=token,
        token_alt=str(config.getoption("--token-alt") or os.environ.get(TOKEN_ALT_ENV, "")),
        github_url=str(config.getoption("--github-url")),
        proxies=proxies,
        base=str(config.getoption("--base")),
        constraints=str(config.getoption("--constraints")),
        cos_agent_charm=str(config.getoption("--cos-agent-charm")),
        cos_agent_channel=str(config.getoption("--cos-agent-channel")),
    )
    return options, []


def _parse_version(text: str) -> tuple[int, ...]:
    parts = []
    for part in text.split("-")[0].split("."):
        if not part.isdigit():
            break
        parts.append(int(part))
    return tuple(parts)


def _controller_problem(config: pytest.Config) -> str | None:
    """Find a reachable Juju 3 controller; return why not, or None (its version is stashed)."""
    juju = shutil.which("juju")
    if juju is None:
        return "no Juju controller: the juju command is not on PATH"
    controller = config.getoption("--controller", default=None)
    command = [juju, "show-controller", *([controller] if controller else []), "--format", "json"]
    try:
        completed = subprocess.run(
            command, capture_output=True, text=True, timeout=PROBE_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired:
        return f"no Juju controller answered `juju show-controller` within {PROBE_TIMEOUT}s"
    if completed.returncode != 0:
        lines = completed.stderr.strip().splitlines() or ["no output"]
        return f"no Juju controller is reachable: `juju show-controller` said: {lines[-1]}"
    try:
        name, document = next(iter(json.loads(completed.stdout).items()))
        version = str(document["details"]["agent-version"])
    except (ValueError, KeyError, StopIteration, AttributeError):
        return "`juju show-controller` gave no controller version"
    parsed = _parse_version(version)
    if parsed[:1] != (3,):
        return f"the controller {name} runs Juju {version}: these tests need Juju 3.1 or later"
    config.stash[CONTROLLER_VERSION] = parsed
    if shutil.which("charmcraft") is None:
        return "pytest-operator needs the charmcraft command on PATH (nothing is built with it)"
    return None


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    # pytest-asyncio's auto mode, so that the async fixtures here need no pytest_asyncio import
    # (the lint environment's type check runs without pytest-asyncio installed).
    config.option.asyncio_mode = "auto"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip every integration test, with the reason, when they cannot run here."""
    ours = [item for item in items if HERE in item.path.parents]
    if not ours or config.option.collectonly:
        return
    _, missing = _options(config)
    problems = []
    controller = _controller_problem(config)
    if controller:
        problems.append(controller)
    if missing:
        problems.append("missing " + ", ".join(missing))
    if problems:
        marker = pytest.mark.skip(
            reason="integration tests need a Juju 3.1 controller and a GitHub test repository: "
            + "; ".join(problems)
        )
        for item in ours:
            item.add_marker(marker)


@pytest.fixture(scope="session")
def options(pytestconfig: pytest.Config) -> Options:
    """The validated integration options (the tests are skipped when they are incomplete)."""
    found, missing = _options(pytestconfig)
    assert found is not None, f"missing {', '.join(missing)}"
    return found


@pytest.fixture(scope="session")
def controller_version(pytestconfig: pytest.Config) -> tuple[int, ...]:
    """The controller's Juju version, e.g. (3, 1, 8)."""
    return pytestconfig.stash.get(CONTROLLER_VERSION, ())


@pytest.fixture(scope="session")
def github_repo(options: Options) -> Iterator[GitHubRepo | None]:
    """The repository the tests dispatch workflows in; its unfinished runs are cancelled after."""
    if options.repository is None:
        yield None
        return
    repo = GitHubRepo(options.repository, options.token, options.github_url)
    yield repo
    repo.cancel_dispatched()


@pytest.fixture(scope="module")
def app_name() -> str:
    """A fresh application name per module: runners of two runs never mix on GitHub.

    Short, because runner names (`<app>-<unit>-<12 hex>`) must fit LXD's 63 characters and
    LXD's socket paths limit application names further.
    """
    return f"grt-it-{secrets.token_hex(3)}"


@pytest.fixture(scope="module")
async def app(ops_test: Any, options: Options, app_name: str) -> str:
    """The charm deployed with one container runner, active with its runner online."""
    await deploy(
        ops_test,
        charm_file=options.charm_file,
        app=app_name,
        base=options.base,
        constraints=options.constraints,
        config=charm_config(options),
        proxies=options.proxies,
    )
    unit = f"{app_name}/0"
    await ops_test.model.wait_for_idle(
        apps=[app_name], status="active", timeout=DEPLOY_TIMEOUT, raise_on_error=True
    )
    await wait_for_status(ops_test, unit, "active", r"^1/1 container runners", DEPLOY_TIMEOUT)
    await wait_for_runners(ops_test, unit, online=1)
    return app_name
