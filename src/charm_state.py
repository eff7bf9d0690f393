# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""The charm's inputs, validated into one frozen state object.

`CharmState.from_charm` reads the Juju config (through `load_config` and a pydantic model), the
token secret, the debug-ssh and cos-agent relations, the model's proxy environment and two facts
about the host (its architecture and the runner storage it already has). Every problem an
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
from urllib.parse import urlsplit

import ops
import pydantic

from github_runner_manager.binary import runner_architecture
from github_runner_manager.config import (
    MAX_DISK,
    MAX_MEMORY,
    GitHubSettings,
    ImageSettings,
    LxdSettings,
    ManagerConfig,
    MetricsSettings,
    ProxySettings,
    RunnerSettings,
    SshDebugSettings,
    describe_validation_error,
    normalise_size,
    parse_size,
    validate_github_url,
)
from github_runner_manager.errors import ConfigError, RunnerBinaryError
from github_runner_manager.models import GitHubPath, parse_github_path
from storage import RunnerStorage

logger = logging.getLogger(__name__)

COS_AGENT_RELATION = "cos-agent"
DEBUG_SSH_RELATION = "debug-ssh"
SECRET_TOKEN_KEY = "token"  # noqa: S105 - the name of a key in the secret, not a token
_SSH_DEBUG_KEYS = ("host", "port", "rsa_fingerprint", "ed25519_fingerprint")

# A Juju secret URI: `secret:<id>` or `secret://<model uuid>/<id>`.
_SECRET_URI_RE = re.compile(r"^secret:(//[A-Za-z0-9-]+/)?[a-z0-9]{10,}$")
# An LXD image alias or an Ubuntu series: no spaces, commas or control characters.
_IMAGE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/+-]{0,127}$")
# Every environment variable the model's proxy settings come in (upper and lower case).
PROXY_ENVIRONMENT = tuple(
    name
    for variable in ("JUJU_CHARM_HTTP_PROXY", "JUJU_CHARM_HTTPS_PROXY", "JUJU_CHARM_NO_PROXY")
    for name in (variable, variable.lower())
)
_PROXY_ENV = {
    "http": "JUJU_CHARM_HTTP_PROXY",
    "https": "JUJU_CHARM_HTTPS_PROXY",
    "no_proxy": "JUJU_CHARM_NO_PROXY",
}
# The model-config key an operator changes for each proxy variable.
_PROXY_MODEL_KEY = {
    "http": "juju-http-proxy",
    "https": "juju-https-proxy",
    "no_proxy": "juju-no-proxy",
}


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
    """The charm's config options (charmcraft.yaml), validated and parsed.

    Attributes:
        path: `org` or `owner/repo` (empty when unset).
        token: the token or a Juju secret URI (empty when unset).
        github_url: the GitHub server URL.
        group: the organisation runner group.
        labels: extra runner labels.
        containers: container runners to keep.
        virtual_machines: virtual-machine runners to keep.
        vm_cpu: CPUs per runner.
        vm_memory: memory per runner (e.g. 7GiB).
        vm_disk: root disk per runner (e.g. 10GiB).
        check_interval: minutes between reconciliations.
        base_image: the runner base image.
        denylist: networks the runners must not reach.
        dockerhub_mirror: an https registry mirror, or None.
        runner_storage: where the runners' disks live.
        experimental_use_aproxy: whether runners use a transparent proxy.
        test_mode: `insecure` or empty.
    """

    model_config = pydantic.ConfigDict(frozen=True, extra="ignore")

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

    @pydantic.field_validator("path")
    @classmethod
    def _check_path(cls, value: str) -> str:
        value = value.strip()
        if value:
            try:
                parse_github_path(value)
            except ConfigError:
                raise ValueError(
                    f"{value!r} is not an organisation or owner/repo: set it to, for example, "
                    "my-org or my-org/my-repo"
                ) from None
        return value

    @pydantic.field_validator("token")
    @classmethod
    def _check_token(cls, value: str) -> str:
        value = value.strip()
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

    @pydantic.field_validator("github_url")
    @classmethod
    def _check_github_url(cls, value: str) -> str:
        try:
            port = urlsplit(value.strip()).port
        except ValueError:
            port = 0
        if port == 0:
            raise ValueError(
                f"{value.strip()!r} has an invalid port: use a port from 1 to 65535, or none "
                "(for example https://github.com)"
            )
        return validate_github_url(value)

    @pydantic.field_validator("group")
    @classmethod
    def _check_group(cls, value: str) -> str:
        value = value.strip()
        if not value or len(value) > 100 or any(not char.isprintable() for char in value):
            raise ValueError(
                "must be the name of an organisation runner group (at most 100 printable "
                "characters): set it to, for example, default"
            )
        return value

    @pydantic.field_validator("labels", mode="before")
    @classmethod
    def _split_labels(cls, value: Any) -> Any:
        return _split_list(value)

    @pydantic.field_validator("labels")
    @classmethod
    def _check_labels(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        try:
            RunnerSettings(labels=value)
        except pydantic.ValidationError as exc:
            reason = exc.errors(include_url=False)[0]["msg"].removeprefix("Value error, ")
            raise ValueError(
                f"{reason}: use letters, digits and . _ : / + - in comma-separated labels"
            ) from None
        return value

    @pydantic.field_validator("containers", "virtual_machines")
    @classmethod
    def _check_count(cls, value: int) -> int:
        if value < 0:
            raise ValueError(f"{value} is negative: set a number of runners, 0 or more")
        return value

    @pydantic.field_validator("vm_cpu")
    @classmethod
    def _check_cpu(cls, value: int) -> int:
        if value < 1:
            raise ValueError(f"{value} is too small: set at least 1 CPU per runner")
        return value

    @pydantic.field_validator("check_interval")
    @classmethod
    def _check_interval(cls, value: int) -> int:
        if value < 1:
            raise ValueError(f"{value} is too small: set at least 1 (minutes)")
        return value

    @pydantic.field_validator("vm_memory", "vm_disk")
    @classmethod
    def _check_size(cls, value: str, info: pydantic.ValidationInfo) -> str:
        # Written the way LXD reads it: LXD refuses `7 GiB` at every instance creation.
        maximum = MAX_MEMORY if info.field_name == "vm_memory" else MAX_DISK
        try:
            return normalise_size(value, maximum)
        except ValueError as exc:
            message = str(exc)
            if "for example" not in message and "at most" not in message:
                message += ": use a positive size (for example 7GiB)"
            raise ValueError(message) from None

    @pydantic.field_validator("base_image")
    @classmethod
    def _check_image(cls, value: str) -> str:
        value = value.strip()
        if not _IMAGE_RE.match(value):
            raise ValueError(
                f"{value!r} is not an Ubuntu series or LXD image alias: set it to, for "
                "example, jammy or noble"
            )
        return value

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

    @pydantic.field_validator("dockerhub_mirror", mode="before")
    @classmethod
    def _check_mirror(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        value = value.strip()
        if not value:
            return None
        try:
            parts = urlsplit(value)
            valid = parts.scheme == "https" and bool(parts.hostname) and parts.port != 0
        except ValueError:
            valid = False
        if not valid or any(char.isspace() or char == '"' for char in value):
            raise ValueError(
                f"{value!r} is not an https URL: use, for example, https://mirror.example.com"
            )
        return value

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
        value = value.strip()
        if value not in ("", "insecure"):
            raise ValueError(f"{value!r} is not valid: leave it empty (or insecure for testing)")
        return value


@dataclasses.dataclass(frozen=True)
class ProxyConfig:
    """The model's proxy settings (Juju model config `juju-http-proxy` and friends).

    Attributes:
        http: the HTTP proxy URL, or None.
        https: the HTTPS proxy URL, or None.
        no_proxy: hosts that bypass the proxy, or None.
    """

    http: str | None = None
    https: str | None = None
    no_proxy: str | None = None

    @property
    def configured(self) -> bool:
        """Whether an HTTP or HTTPS proxy is set."""
        return bool(self.http or self.https)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> ProxyConfig:
        """Read the proxy settings Juju gives the charm as environment variables.

        Args:
            environ: the environment (os.environ).

        Returns:
            The proxy settings.

        Raises:
            InvalidConfigError: if a value is malformed; the message never holds the value,
                which may carry proxy credentials.
        """
        values: dict[str, str | None] = {}
        for field, variable in _PROXY_ENV.items():
            raw = environ.get(variable) or environ.get(variable.lower()) or ""
            values[field] = raw.strip() or None
        for field in ("http", "https"):
            value = values[field]
            if value is not None and not _is_proxy_url(value):
                raise InvalidConfigError(
                    f"the model's {_PROXY_MODEL_KEY[field]} is not a proxy URL such as "
                    f"http://proxy.example.com:3128: fix it with `juju model-config "
                    f"{_PROXY_MODEL_KEY[field]}=...`"
                )
        no_proxy = values["no_proxy"]
        if no_proxy is not None and any(char.isspace() or char in "\"'" for char in no_proxy):
            raise InvalidConfigError(
                "the model's juju-no-proxy must be comma-separated hosts without spaces or "
                "quotes: fix it with `juju model-config juju-no-proxy=...`"
            )
        return cls(http=values["http"], https=values["https"], no_proxy=no_proxy)


def _is_proxy_url(value: str) -> bool:
    """Tell whether a value is an http(s) URL with a host (and a valid port, if any)."""
    if any(char.isspace() or char in "\"'" for char in value):
        return False
    try:
        parts = urlsplit(value)
        _ = parts.port  # raises ValueError for a malformed port
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


@dataclasses.dataclass(frozen=True)
class CharmState:
    """Everything the charm needs to converge, validated.

    Attributes:
        app_name: the application name (the runners' flavor and first label).
        unit_name: the unit name, e.g. `github-runner/0`.
        unit_number: the unit number.
        config: the validated config options.
        github_path: the organisation or repository.
        token: the GitHub token itself (resolved from the secret when a URI was given).
        proxy: the model's proxy settings.
        architecture: GitHub's runner architecture name (`x64` or `arm64`).
        ssh_debug: the tmate server from the debug-ssh relation, if any.
        metrics_enabled: whether COS is related (metric events are then written).
    """

    app_name: str
    unit_name: str
    unit_number: int
    config: CharmConfig
    github_path: GitHubPath
    token: str = dataclasses.field(repr=False)
    proxy: ProxyConfig
    architecture: str
    ssh_debug: SshDebugSettings | None
    metrics_enabled: bool

    @property
    def runner_count(self) -> int:
        """How many runners this unit keeps in all."""
        return self.config.containers + self.config.virtual_machines

    @property
    def required_storage(self) -> int:
        """Bytes of runner storage the configured runners need (at least one runner's)."""
        return parse_size(self.config.vm_disk) * max(1, self.runner_count)

    @classmethod
    def from_charm(
        cls,
        charm: ops.CharmBase,
        *,
        machine: str,
        existing_storage: RunnerStorage | None,
        environ: Mapping[str, str] | None = None,
    ) -> CharmState:
        """Build the state from the charm's config, secrets, relations and environment.

        Args:
            charm: the charm.
            machine: the host's machine architecture (`platform.machine()`).
            existing_storage: the runner storage the host already has, None on a fresh host.
            environ: the environment with the model's proxy settings (os.environ by default).

        Returns:
            The state.

        Raises:
            InvalidConfigError: if any input is missing or invalid.
        """
        try:
            config = charm.load_config(CharmConfig, errors="raise")
        except pydantic.ValidationError as exc:
            raise InvalidConfigError(_describe_config_error(exc)) from None

        missing = [name for name in ("path", "token") if not getattr(config, name)]
        if missing:
            raise InvalidConfigError(
                f"missing {' and '.join(missing)}: set "
                f"{' '.join(f'{name}=<{_PLACEHOLDER[name]}>' for name in missing)} with "
                f"`juju config {charm.app.name}`"
            )
        if existing_storage is not None and existing_storage is not config.runner_storage:
            raise InvalidConfigError(
                f"runner-storage: the runners already live on {existing_storage.value} and "
                "runner-storage cannot change after deployment: set it back to "
                f"{existing_storage.value}, or redeploy"
            )
        proxy = ProxyConfig.from_environment(os.environ if environ is None else environ)
        if config.experimental_use_aproxy and not proxy.configured:
            raise InvalidConfigError(
                "experimental-use-aproxy: the model has no juju-http-proxy or "
                "juju-https-proxy: set one with `juju model-config`, or set "
                "experimental-use-aproxy=false"
            )
        try:
            architecture = runner_architecture(machine)
        except RunnerBinaryError:
            raise InvalidConfigError(
                f"unsupported machine architecture {machine!r}: GitHub runners exist for "
                "x86_64 (amd64) and aarch64 (arm64) machines: deploy on one of those"
            ) from None

        unit_number = int(charm.unit.name.rsplit("/", 1)[1])
        return cls(
            app_name=charm.app.name,
            unit_name=charm.unit.name,
            unit_number=unit_number,
            config=config,
            github_path=parse_github_path(config.path, config.group),
            token=_resolve_token(charm, config.token),
            proxy=proxy,
            architecture=architecture,
            ssh_debug=_ssh_debug(charm),
            metrics_enabled=bool(charm.model.relations.get(COS_AGENT_RELATION)),
        )

    @property
    def exporter_port(self) -> int:
        """The loopback port of this unit's Prometheus endpoint.

        Derived from the unit name, so two applications on one machine get different ports
        without any coordination (a collision would need two names hashing alike).

        Returns:
            A port in 20000-29999.
        """
        return exporter_port(self.unit_name)

    def manager_config(
        self, *, state_dir: Path, token_file: Path, report_file: Path, storage_pool: str
    ) -> ManagerConfig:
        """Build the runner manager's configuration from this state.

        The token is not in it: the manager reads it from `token_file`.

        Args:
            state_dir: the manager's state directory.
            token_file: the root-only file holding the token.
            report_file: where the manager writes its report.
            storage_pool: the LXD storage pool for the runners' root disks.

        Returns:
            The manager configuration.

        Raises:
            InvalidConfigError: if the manager refuses the combination (e.g. an application
                name too long for runner names).
        """
        config = self.config
        try:
            return ManagerConfig(
                unit=self.unit_name,
                name_prefix=f"{self.app_name}-{self.unit_number}",
                flavor=self.app_name,
                github=GitHubSettings(
                    url=config.github_url,
                    path=str(self.github_path),
                    group=config.group,
                    token_file=token_file,
                ),
                runners=RunnerSettings(
                    containers=config.containers,
                    virtual_machines=config.virtual_machines,
                    labels=config.labels,
                    cpu=config.vm_cpu,
                    memory=config.vm_memory,
                    disk=config.vm_disk,
                    base_image=config.base_image,
                    # test-mode=insecure: privileged containers, for charm tests on machines
                    # that are LXD containers themselves.
                    privileged=config.test_mode == "insecure",
                ),
                lxd=LxdSettings(storage_pool=storage_pool),
                proxy=ProxySettings(
                    http=self.proxy.http,
                    https=self.proxy.https,
                    no_proxy=self.proxy.no_proxy,
                    aproxy=config.experimental_use_aproxy,
                ),
                dockerhub_mirror=config.dockerhub_mirror,
                ssh_debug=(self.ssh_debug,) if self.ssh_debug else (),
                metrics=MetricsSettings(
                    enabled=self.metrics_enabled,
                    exporter_port=self.exporter_port,
                    check_interval=config.check_interval * 60,
                ),
                state_dir=state_dir,
                report_path=report_file,
                # The charm always builds the runner image from base-image (see image.py).
                image=ImageSettings(build=True),
            )
        except pydantic.ValidationError as exc:
            raise InvalidConfigError(
                f"the runner manager refuses this configuration: {describe_validation_error(exc)}"
            ) from None


def exporter_port(unit_name: str) -> int:
    """The loopback port of a unit's Prometheus endpoint (see `CharmState.exporter_port`).

    Args:
        unit_name: the unit name, e.g. `github-runner/0`.

    Returns:
        A port in 20000-29999.
    """
    return 20000 + zlib.crc32(unit_name.encode()) % 10000


_PLACEHOLDER = {"path": "org or owner/repo", "token": "token or secret URI"}


def _describe_config_error(exc: pydantic.ValidationError) -> str:
    """Turn a validation error into `option: problem: fix` parts, one per option.

    The input values are never added here (the validators quote them where it is safe): the
    token option's value is a secret.
    """
    parts = []
    for error in exc.errors(include_input=False, include_url=False):
        option = str(error["loc"][0]).replace("_", "-") if error["loc"] else "config"
        message = str(error["msg"]).removeprefix("Value error, ")
        parts.append(f"{option}: {message}")
    return "; ".join(parts)


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
