# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""The charm's inputs, validated into one frozen state object.

`CharmState.from_charm` reads the Juju config, the token secret, the debug-ssh and cos-agent
relations, the model's proxy environment and two facts about the host (its architecture and the
runner storage it already has). The charm checks only what Juju alone knows (secret URIs,
comma-separated lists, the runner storage, test mode, a missing path or token, the denylist the
host applies); every other value is checked once, by the runner manager's settings models, and
a refusal's location is mapped back to the option's name (`_OPTION_OF`). Every problem an
operator can fix becomes one `InvalidConfigError` whose message names the option and the fix.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import os
import re
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import ops
import pydantic

from github_runner_manager import (
    ImageSettings,
    ManagerConfig,
    ProxySettings,
    RunnerBinaryError,
    SshDebugSettings,
    parse_size,
    runner_architecture,
)
from storage import RunnerStorage

logger = logging.getLogger(__name__)

COS_AGENT_RELATION = "cos-agent"
DEBUG_SSH_RELATION = "debug-ssh"
SECRET_TOKEN_KEY = "token"  # noqa: S105 - the name of a key in the secret, not a token
_SSH_DEBUG_KEYS = ("host", "port", "rsa_fingerprint", "ed25519_fingerprint")

# A Juju secret URI: `secret:<id>` or `secret://<model uuid>/<id>`.
_SECRET_URI_RE = re.compile(r"^secret:(//[A-Za-z0-9-]+/)?[a-z0-9]{10,}$")
# The environment variable each of the model's proxy settings comes in (also in lower case).
_PROXY_ENV = {
    "http": "JUJU_CHARM_HTTP_PROXY",
    "https": "JUJU_CHARM_HTTPS_PROXY",
    "no_proxy": "JUJU_CHARM_NO_PROXY",
}
PROXY_ENVIRONMENT = tuple(
    name for variable in _PROXY_ENV.values() for name in (variable, variable.lower())
)
# The option (or the model-config key) behind each setting of the manager's configuration.
_OPTION_OF = {
    ("github", "url"): "github-url",
    ("github", "path"): "path",
    ("github", "group"): "group",
    ("runners", "containers"): "containers",
    ("runners", "virtual_machines"): "virtual-machines",
    ("runners", "labels"): "labels",
    ("runners", "cpu"): "vm-cpu",
    ("runners", "memory"): "vm-memory",
    ("runners", "disk"): "vm-disk",
    ("runners", "base_image"): "base-image",
    ("dockerhub_mirror",): "dockerhub-mirror",
    ("metrics", "check_interval"): "check-interval",
    ("proxy", "http"): "juju-http-proxy (model config)",
    ("proxy", "https"): "juju-https-proxy (model config)",
    ("proxy", "no_proxy"): "juju-no-proxy (model config)",
    ("proxy", "aproxy"): (
        "experimental-use-aproxy (with the model's juju-http-proxy or juju-https-proxy)"
    ),
}
# Where the unit's files live is the host's business, not the operator's: the values are
# checked with this stand-in, which `CharmState.manager_config` replaces.
_STAND_IN = Path("/run/github-runner-manager")
_PLACEHOLDER = {"path": "org or owner/repo", "token": "token or secret URI"}


class InvalidConfigError(Exception):
    """The charm's configuration cannot be used; the message names the option and the fix."""

    def __init__(self, message: str):
        """Create the error.

        Args:
            message: what is wrong and how to fix it, safe to show as a unit status.
        """
        super().__init__(message)
        self.message = message


def _split_list(value: Any) -> Any:
    """Split a comma-separated option into its stripped, non-empty items."""
    if isinstance(value, str):
        return tuple(item.strip() for item in value.split(",") if item.strip())
    return value


class CharmConfig(pydantic.BaseModel):
    """The charm's config options (charmcraft.yaml), as Juju gives them.

    One attribute per option, named as in charmcraft.yaml (which documents them) with
    underscores for dashes. Strings are stripped and comma-separated lists split. Only the
    options the runner manager never sees are checked here (token, denylist, runner-storage,
    test-mode); the manager's settings models check the others, in `manager_settings`.
    """

    model_config = pydantic.ConfigDict(frozen=True, extra="ignore", str_strip_whitespace=True)

    path: str = ""
    token: str = pydantic.Field("", repr=False)
    github_url: str = "https://github.com"
    group: str = "default"
    labels: tuple[str, ...] = ()
    containers: int = 0
    virtual_machines: int = 1
    vm_cpu: int = 2
    vm_memory: str = "7GiB"
    vm_disk: str = "10GiB"
    check_interval: int = 10
    base_image: str = "jammy"
    denylist: tuple[ipaddress.IPv4Network, ...] = ()
    dockerhub_mirror: str | None = None
    runner_storage: RunnerStorage = RunnerStorage.JUJU_STORAGE
    experimental_use_aproxy: bool = False
    test_mode: str = ""

    @pydantic.field_validator("token")
    @classmethod
    def _check_token(cls, value: str) -> str:
        if value.startswith("secret:"):
            if not _SECRET_URI_RE.match(value):
                # Never echo the value: what follows `secret:` may be a token pasted by mistake.
                raise ValueError(
                    "the value starts with secret: but is not a valid Juju secret URI: set the "
                    "URI `juju add-secret` printed (secret:...) or the token itself"
                )
        elif any(char.isspace() for char in value):
            # Never echo the value: it is (part of) a token.
            raise ValueError(
                "the token contains whitespace: set the token itself or a Juju secret URI"
            )
        return value

    @pydantic.field_validator("labels", mode="before")
    @classmethod
    def _split_labels(cls, value: Any) -> Any:
        return _split_list(value)

    @pydantic.field_validator("denylist", mode="before")
    @classmethod
    def _parse_denylist(cls, value: Any) -> Any:
        networks = []
        for item in _split_list(value) if isinstance(value, str) else value:
            try:
                networks.append(ipaddress.IPv4Network(item, strict=True))
            except ValueError:
                raise ValueError(
                    f"{item!r} is not an IPv4 network in CIDR notation (without host bits): "
                    "use, for example, 10.0.0.0/8,192.168.0.0/16"
                ) from None
        return tuple(networks)

    @pydantic.field_validator("runner_storage", mode="before")
    @classmethod
    def _check_storage(cls, value: Any) -> Any:
        valid = [storage.value for storage in RunnerStorage]
        if value not in valid:
            raise ValueError(f"{value!r} is not valid: set it to {' or '.join(valid)}")
        return value

    @pydantic.field_validator("test_mode")
    @classmethod
    def _check_test_mode(cls, value: str) -> str:
        if value not in ("", "insecure"):
            raise ValueError(f"{value!r} is not valid: leave it empty (or insecure for testing)")
        return value


def proxy_from_juju_environment(environ: Mapping[str, str]) -> dict[str, str | None]:
    """Read the model's proxy settings, which Juju gives the charm as environment variables.

    Args:
        environ: the environment (os.environ).

    Returns:
        `ProxySettings` fields: `http`, `https` and `no_proxy`, None when unset.
    """
    values: dict[str, str | None] = {}
    for field, variable in _PROXY_ENV.items():
        raw = environ.get(variable) or environ.get(variable.lower()) or ""
        values[field] = raw.strip() or None
    return values


@dataclasses.dataclass(frozen=True)
class UnitIdentity:
    """Who the unit is, parsed once from Juju's `<application>/<number>`.

    Attributes:
        app_name: the application name (the runners' flavor and first label).
        unit_name: the unit name, e.g. `github-runner/0`.
        unit_number: the unit number.
    """

    app_name: str
    unit_name: str
    unit_number: int

    @classmethod
    def of(cls, charm: ops.CharmBase) -> UnitIdentity:
        """Parse the charm's unit.

        Args:
            charm: the charm.

        Returns:
            The identity.
        """
        return cls(
            app_name=charm.app.name,
            unit_name=charm.unit.name,
            unit_number=int(charm.unit.name.rsplit("/", 1)[1]),
        )

    @property
    def exporter_port(self) -> int:
        """The loopback port of the unit's Prometheus endpoint (`exporter_port`)."""
        return exporter_port(self.unit_name)


@dataclasses.dataclass(frozen=True)
class CharmState(UnitIdentity):
    """Everything the charm needs to converge, validated: the unit's identity and its inputs.

    Attributes:
        config: the config options.
        token: the GitHub token itself (resolved from the secret when a URI was given).
        manager: the runner manager's configuration, validated, with stand-in file places
            (`manager_config` gives the real ones).
    """

    config: CharmConfig
    token: str = dataclasses.field(repr=False)
    manager: ManagerConfig

    @property
    def proxy(self) -> ProxySettings:
        """The model's proxy settings."""
        return self.manager.proxy

    @property
    def metrics_enabled(self) -> bool:
        """Whether COS is related (metric events are then written)."""
        return self.manager.metrics.enabled

    @property
    def runner_count(self) -> int:
        """How many runners this unit keeps in all."""
        return self.manager.runners.containers + self.manager.runners.virtual_machines

    @property
    def required_storage(self) -> int:
        """Bytes of runner storage the configured runners need (at least one runner's)."""
        return parse_size(self.manager.runners.disk) * max(1, self.runner_count)

    @classmethod
    def from_charm(
        cls,
        charm: ops.CharmBase,
        *,
        unit: UnitIdentity,
        machine: str,
        existing_storage: RunnerStorage | None,
        environ: Mapping[str, str] | None = None,
    ) -> CharmState:
        """Build the state from the charm's config, secrets, relations and environment.

        Args:
            charm: the charm.
            unit: the unit's identity (`UnitIdentity.of(charm)`).
            machine: the host's machine architecture (`platform.machine()`).
            existing_storage: the runner storage the host already has, None on a fresh host.
            environ: the environment with the model's proxy settings (os.environ by default).

        Returns:
            The state.

        Raises:
            InvalidConfigError: if any input is missing or invalid.
        """
        config, problems = _read_options(charm.config)
        missing = [name for name in ("path", "token") if not getattr(config, name)]
        if missing and not problems:
            raise InvalidConfigError(
                f"missing {' and '.join(missing)}: set "
                f"{' '.join(f'{name}=<{_PLACEHOLDER[name]}>' for name in missing)} with "
                f"`juju config {unit.app_name}`"
            )
        manager = None
        if config.path:  # the token is not needed: the manager reads it from its own file
            manager, refused = manager_settings(
                config,
                app_name=unit.app_name,
                unit_name=unit.unit_name,
                unit_number=unit.unit_number,
                proxy=proxy_from_juju_environment(os.environ if environ is None else environ),
                ssh_debug=_ssh_debug(charm),
                metrics_enabled=bool(charm.model.relations.get(COS_AGENT_RELATION)),
            )
            problems += refused
        if problems or manager is None:
            raise InvalidConfigError("; ".join(problems))
        _check_host(config.runner_storage, existing_storage, machine)
        return cls(
            app_name=unit.app_name,
            unit_name=unit.unit_name,
            unit_number=unit.unit_number,
            config=config,
            token=_resolve_token(charm, config.token),
            manager=manager,
        )

    def manager_config(
        self, *, state_dir: Path, token_file: Path, report_file: Path, storage_pool: str
    ) -> ManagerConfig:
        """Return the runner manager's configuration, with the unit's files where they live.

        The token is not in it: the manager reads it from `token_file`. Every value was
        validated when the state was built; these places are the host's, not the operator's.

        Args:
            state_dir: the manager's state directory.
            token_file: the root-only file holding the token.
            report_file: where the manager writes its report.
            storage_pool: the LXD storage pool for the runners' root disks.

        Returns:
            The manager configuration.
        """
        manager = self.manager
        return manager.model_copy(
            update={
                "github": manager.github.model_copy(update={"token_file": token_file}),
                "lxd": manager.lxd.model_copy(update={"storage_pool": storage_pool}),
                "state_dir": state_dir,
                "report_path": report_file,
            }
        )


def _read_options(options: Mapping[str, Any]) -> tuple[CharmConfig, list[str]]:
    """Read the config options; refused ones fall back to their defaults.

    The options the charm refuses are left out and read again, so that the manager's models
    still check (and name) every other value.

    Returns:
        The options and one `option: problem: fix` message per refused option.
    """
    values = {name.replace("-", "_"): value for name, value in options.items()}
    try:
        return CharmConfig.model_validate(values), []
    except pydantic.ValidationError as exc:
        errors = exc.errors(include_input=False, include_url=False)
    # The values are never quoted here (the validators quote them where it is safe): the
    # token option's value is a secret.
    refused = {str(error["loc"][0]) for error in errors}
    problems = [f"{str(error['loc'][0]).replace('_', '-')}: {_reason(error)}" for error in errors]
    kept = {name: value for name, value in values.items() if name not in refused}
    return CharmConfig.model_validate(kept), problems


def manager_settings(
    config: CharmConfig,
    *,
    app_name: str,
    unit_name: str,
    unit_number: int,
    proxy: Mapping[str, str | None],
    ssh_debug: SshDebugSettings | None = None,
    metrics_enabled: bool = False,
) -> tuple[ManagerConfig | None, list[str]]:
    """Build the runner manager's configuration: its models check every value, once.

    Args:
        config: the config options.
        app_name: the application name.
        unit_name: the unit name.
        unit_number: the unit number.
        proxy: the model's proxy settings (`proxy_from_juju_environment`).
        ssh_debug: the tmate server from the debug-ssh relation, if any.
        metrics_enabled: whether COS is related.

    Returns:
        The configuration with stand-in file places, or None and one message per refused
        value, naming the option behind it.
    """
    try:
        manager = ManagerConfig.model_validate(
            {
                "unit": unit_name,
                "name_prefix": f"{app_name}-{unit_number}",
                "flavor": app_name,
                "github": {
                    "url": config.github_url,
                    "path": config.path,
                    "group": config.group,
                    "token_file": _STAND_IN / "token",
                },
                "runners": {
                    "containers": config.containers,
                    "virtual_machines": config.virtual_machines,
                    "labels": config.labels,
                    "cpu": config.vm_cpu,
                    "memory": config.vm_memory,
                    "disk": config.vm_disk,
                    "base_image": config.base_image,
                    # test-mode=insecure: privileged containers, for charm tests on machines
                    # that are LXD containers themselves.
                    "privileged": config.test_mode == "insecure",
                },
                "proxy": {**proxy, "aproxy": config.experimental_use_aproxy},
                "dockerhub_mirror": config.dockerhub_mirror,  # empty: unset
                "ssh_debug": (ssh_debug,) if ssh_debug else (),
                "metrics": {
                    "enabled": metrics_enabled,
                    "exporter_port": exporter_port(unit_name),
                    "check_interval": config.check_interval * 60,
                },
                "state_dir": _STAND_IN,
                # The charm always builds the runner image from base-image (see image.py).
                "image": ImageSettings(build=True),
            }
        )
    except pydantic.ValidationError as exc:
        return None, [
            _option_problem(error) for error in exc.errors(include_input=False, include_url=False)
        ]
    return manager, []


def _reason(error: Any) -> str:
    """The problem and its fix, from one pydantic error."""
    return str(error["msg"]).removeprefix("Value error, ")


def _option_problem(error: Any) -> str:
    """Name the option behind one refused value of the manager's configuration."""
    location = tuple(str(part) for part in error["loc"])
    option = _OPTION_OF.get(location[:2]) or _OPTION_OF.get(location[:1])
    if option is None:
        # Not an option's value (the application name too long for runner names, say).
        where = ".".join(location) or "config"
        return f"the runner manager refuses this configuration: {where}: {_reason(error)}"
    return f"{option}: {_reason(error)}"


def _check_host(wanted: RunnerStorage, existing: RunnerStorage | None, machine: str) -> None:
    """Refuse a change of runner storage, and a machine GitHub publishes no runner for.

    Raises:
        InvalidConfigError: naming the option or the machine, and the fix.
    """
    if existing is not None and existing is not wanted:
        raise InvalidConfigError(
            f"runner-storage: the runners already live on {existing.value} and "
            "runner-storage cannot change after deployment: set it back to "
            f"{existing.value}, or redeploy"
        )
    try:
        runner_architecture(machine)
    except RunnerBinaryError:
        raise InvalidConfigError(
            f"unsupported machine architecture {machine!r}: GitHub runners exist for "
            "x86_64 (amd64) and aarch64 (arm64) machines: deploy on one of those"
        ) from None


def exporter_port(unit_name: str) -> int:
    """The loopback port of a unit's Prometheus endpoint.

    Derived from the unit name, so two applications on one machine get different ports without
    any coordination (a collision would need two names hashing alike).

    Args:
        unit_name: the unit name, e.g. `github-runner/0`.

    Returns:
        A port in 20000-29999.
    """
    return 20000 + zlib.crc32(unit_name.encode()) % 10000


def _resolve_token(charm: ops.CharmBase, token: str) -> str:
    """Return the token, reading it from the Juju secret when `token` is a secret URI.

    Raises:
        InvalidConfigError: if the secret cannot be read or has no `token` key.
    """
    if not token.startswith("secret:"):
        return token
    try:
        content = charm.model.get_secret(id=token).get_content(refresh=True)
    except (ops.SecretNotFoundError, ops.ModelError):
        raise InvalidConfigError(
            f"token: cannot read the secret {token}: grant it with "
            f"`juju grant-secret {token} {charm.app.name}`"
        ) from None
    value = content.get(SECRET_TOKEN_KEY, "").strip()
    if not value:
        raise InvalidConfigError(
            f"token: the secret {token} has no {SECRET_TOKEN_KEY!r} key: set it with "
            f"`juju update-secret {token} {SECRET_TOKEN_KEY}=<token>`"
        )
    return value


def _ssh_debug(charm: ops.CharmBase) -> SshDebugSettings | None:
    """Return the first tmate server with complete data on the debug-ssh relations."""
    for relation in charm.model.relations.get(DEBUG_SSH_RELATION, []):
        for unit in sorted(relation.units, key=lambda unit: unit.name):
            data = relation.data[unit]
            if not all(data.get(key, "").strip() for key in _SSH_DEBUG_KEYS):
                # Not yet written: the next relation-changed event brings the rest.
                continue
            try:
                return SshDebugSettings(
                    host=data["host"].strip(),
                    port=int(data["port"]),
                    rsa_fingerprint=data["rsa_fingerprint"].strip(),
                    ed25519_fingerprint=data["ed25519_fingerprint"].strip(),
                )
            except ValueError:
                # A port that is not a port (pydantic's ValidationError is a ValueError).
                logger.warning("ignoring the malformed debug-ssh data of %s", unit.name)
    return None
