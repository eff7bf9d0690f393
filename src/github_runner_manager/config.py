# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""The runner manager's configuration file: what the charm hands to the manager.

The file is JSON or YAML (YAML being a superset of JSON, one parser reads both). Its format is
documented in docs/runner-manager.md ("Configuration file"). Every value is validated here,
once, with operator wording on each rule: the charm builds this configuration and shows the
same message under the option's name.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import re
import stat
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import SplitResult, urlsplit

import pydantic
import yaml

if TYPE_CHECKING:
    from importlib.abc import Traversable

from .errors import ConfigError
from .models import GitHubPath, InstanceType, parse_github_path
from .templates import package_templates

_SIZE_RE = re.compile(r"^\s*(\d+)\s*(KiB|MiB|GiB|TiB|PiB|EiB)\s*$")
_SIZE_FACTORS = {"KiB": 1, "MiB": 2, "GiB": 3, "TiB": 4, "PiB": 5, "EiB": 6}

# What one machine can hold: a count, limit or time beyond these is a typo, not a wish, and LXD or
# the manager would fail on it in ways that read far worse than a refusal naming the key.
MAX_CONFIG_BYTES = 1024**2
MAX_TOKEN_BYTES = 64 * 1024
MAX_RUNNERS = 1000
MAX_CPU = 1024
MAX_MEMORY = 64 * 1024**4  # 64TiB
MAX_DISK = 1024**5  # 1PiB
MAX_SECONDS = 7 * 24 * 3600.0
# A whole number, never a boolean, a string or a float (`true` is not 1, `1e30` is not a count).
_StrictInt = Annotated[int, pydantic.Strict()]
# Seconds: a finite number (not `.inf` or `.nan`, not a boolean) of at most a week.
_Seconds = Annotated[
    float,
    pydantic.BeforeValidator(lambda value: _not_bool(value, "a number of seconds")),
    pydantic.Field(allow_inf_nan=False, le=MAX_SECONDS),
]


def _bounded(low: int, high: int, unit: str) -> Callable[[int], int]:
    """Return a check of a whole number from `low` to `high`, worded for an operator.

    Args:
        low: the smallest value accepted.
        high: the largest value one machine can hold.
        unit: what is counted, for the messages (e.g. `runners`).

    Returns:
        The check, for a `pydantic.AfterValidator`.
    """

    def check(value: int) -> int:
        if value < low:
            raise ValueError(f"{value} is too small: use {low} or more {unit}")
        if value > high:
            raise ValueError(f"{value} is more than one machine holds: use at most {high} {unit}")
        return value

    return check


def _check_interval(value: float) -> float:
    # No number in the message: the charm's option counts minutes, this setting seconds.
    if not 0 < value <= MAX_SECONDS:
        raise ValueError(
            "must be more than zero and at most a week: use, for example, 10 minutes (600 seconds)"
        )
    return value


_Runners = Annotated[
    int, pydantic.Strict(), pydantic.AfterValidator(_bounded(0, MAX_RUNNERS, "runners"))
]
_Cpus = Annotated[
    int, pydantic.Strict(), pydantic.AfterValidator(_bounded(1, MAX_CPU, "CPUs per runner"))
]
# Seconds between reconciliations: what `_Seconds` accepts, worded for the charm's operator too.
_Interval = Annotated[
    float,
    pydantic.BeforeValidator(lambda value: _not_bool(value, "a number of seconds")),
    pydantic.Field(allow_inf_nan=False),
    pydantic.AfterValidator(_check_interval),
]

# LXD instance names are hostnames: at most 63 characters. A runner name is the prefix, a dash
# and 12 hex characters.
RUNNER_SUFFIX_HEX = 12
MAX_PREFIX_LENGTH = 63 - 1 - RUNNER_SUFFIX_HEX
_PREFIX_RE = re.compile(r"^[a-z](?:[a-z0-9-]*[a-z0-9])?$")
_LABEL_RE = re.compile(r"^[A-Za-z0-9._:/+-]{1,100}$")
# An LXD image alias or an Ubuntu series: no spaces, commas or control characters.
_IMAGE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/+-]{0,127}$")
_MAX_GROUP_LENGTH = 100


def _not_bool(value: Any, what: str) -> Any:
    if isinstance(value, bool):
        raise ValueError(f"must be {what}, not {str(value).lower()}")
    return value


def parse_size(value: str) -> int:
    """Parse a size such as `7GiB` into bytes.

    Args:
        value: a positive integer followed by KiB, MiB, GiB, TiB, PiB or EiB.

    Returns:
        The size in bytes.

    Raises:
        ValueError: if the value is not such a size, or is zero.
    """
    match = _SIZE_RE.match(value)
    if not match:
        raise ValueError(
            f"{value!r} is not a size: use a whole number and one of KiB, MiB, GiB, TiB, PiB, "
            "EiB (for example 7GiB)"
        )
    number = int(match.group(1))
    if number <= 0:
        raise ValueError(
            f"{value!r} must be greater than zero: use a positive size (for example 7GiB)"
        )
    return number * 1024 ** _SIZE_FACTORS[match.group(2)]


def normalise_size(value: str, maximum: int | None = None) -> str:
    """Check a size and write it the way LXD reads it: `7 GiB` becomes `7GiB`.

    LXD refuses a size with a space inside (`limits.memory: 7 GiB`) at every instance creation,
    so the spaces an operator may type are dropped here, once.

    Args:
        value: a size such as `7GiB`, `7 GiB` or `007GiB`.
        maximum: the largest size accepted, in bytes.

    Returns:
        The size without spaces or leading zeros, e.g. `7GiB`.

    Raises:
        ValueError: if the value is not a positive size, or is larger than `maximum`.
    """
    size = parse_size(value)
    match = _SIZE_RE.match(value)
    assert match is not None  # noqa: S101 - parse_size matched it
    if maximum is not None and size > maximum:
        raise ValueError(
            f"{value!r} is more than one machine holds: use at most {_human(maximum)}"
        )
    return f"{int(match.group(1))}{match.group(2)}"


def _human(size: int) -> str:
    for unit, power in sorted(_SIZE_FACTORS.items(), key=lambda item: -item[1]):
        if size % 1024**power == 0:
            return f"{size // 1024**power}{unit}"
    return f"{size}B"  # pragma: no cover - every limit is a whole KiB


def read_bounded(path: Path, limit: int, what: str) -> bytes:
    """Read a small regular file without waiting on a pipe or reading a device without end.

    Args:
        path: the file.
        limit: the most bytes accepted.
        what: what the file is, for messages (e.g. `the configuration file`).

    Returns:
        The content.

    Raises:
        ConfigError: if the file is missing, unreadable, not a regular file, or too large.
    """
    try:
        # Look before opening: opening some devices does something, and a FIFO would wait for
        # a writer.
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise ConfigError(f"{what} {path} is not a regular file")
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    try:
        # Replaced between the look and the open: look again at what was opened.
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ConfigError(f"{what} {path} is not a regular file")
        chunks = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, min(64 * 1024, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if size > limit:
        raise ConfigError(f"{what} {path} is larger than {_human(limit)}")
    return b"".join(chunks)


def is_loopback_host(host: str | None) -> bool:
    """Tell whether a URL host is a loopback address or `localhost`.

    Args:
        host: the host part of a URL.

    Returns:
        True for localhost, 127.0.0.0/8 and ::1.
    """
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def validate_github_url(url: str) -> str:
    """Check a GitHub (or GitHub Enterprise Server) URL.

    Args:
        url: the web URL, e.g. `https://github.com`.

    Returns:
        The URL without a trailing slash.

    Raises:
        ValueError: if it is not https (or http to a loopback host), has a path or query, or
            an invalid port.
    """
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"{url!r} is not an https URL: use, for example, https://github.com")
    if not _valid_port(parts):
        raise ValueError(
            f"{url!r} has an invalid port: use a port from 1 to 65535, or none (for example "
            "https://github.com)"
        )
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise ValueError(f"{url!r} must use https (plain http is accepted for loopback only)")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ValueError(
            f"{url!r} must be a bare server URL without a path, query or user: use, for "
            "example, https://github.com"
        )
    return url


def _valid_port(parts: SplitResult) -> bool:
    """Tell whether a URL's port, if it has one, is a port (1 to 65535)."""
    try:
        return parts.port != 0
    except ValueError:  # not a number, or beyond 65535
        return False


def _is_url(value: str, schemes: tuple[str, ...], forbidden: str = "\"'") -> bool:
    """Tell whether a value is a URL of a scheme with a host (and a valid port, if any)."""
    if any(char.isspace() or char in forbidden for char in value):
        return False
    try:
        parts = urlsplit(value)
    except ValueError:  # an unclosed IPv6 bracket, say
        return False
    return parts.scheme in schemes and bool(parts.hostname) and _valid_port(parts)


def _proxy_target(*urls: str | None) -> str | None:
    """`host:port` of the first proxy URL with a host and a port."""
    for url in urls:
        if url:
            parts = urlsplit(url if "://" in url else f"http://{url}")
            if parts.hostname and _valid_port(parts) and parts.port:
                return f"{parts.hostname}:{parts.port}"
    return None


def api_base_url(github_url: str) -> str:
    """Return the REST API base of a GitHub server.

    Args:
        github_url: the web URL (`https://github.com` or a GHES URL).

    Returns:
        `https://api.github.com` for github.com, `<url>/api/v3` otherwise.
    """
    parts = urlsplit(github_url)
    if parts.hostname in ("github.com", "www.github.com"):
        return "https://api.github.com"
    return f"{github_url.rstrip('/')}/api/v3"


class _Model(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")


class GitHubSettings(_Model):
    """How to reach GitHub and where the runners belong.

    Attributes:
        url: the GitHub web URL (github.com or a GHES server).
        path: `org` or `owner/repo`.
        group: the organisation runner group.
        token: the token itself (prefer token_file).
        token_file: a root-only file holding the token.
    """

    url: str = "https://github.com"
    path: str
    group: str = "default"
    token: pydantic.SecretStr | None = None
    token_file: Path | None = None

    @pydantic.field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        return validate_github_url(value)

    @pydantic.field_validator("path")
    @classmethod
    def _check_path(cls, value: str) -> str:
        try:
            parse_github_path(value)
        except ConfigError:
            raise ValueError(
                f"{value!r} is not an organisation or owner/repo: set it to, for example, "
                "my-org or my-org/my-repo"
            ) from None
        return value

    @pydantic.field_validator("group")
    @classmethod
    def _check_group(cls, value: str) -> str:
        if (
            not value.strip()
            or len(value) > _MAX_GROUP_LENGTH
            or not all(char.isprintable() for char in value)
        ):
            raise ValueError(
                f"must be the name of an organisation runner group (at most {_MAX_GROUP_LENGTH} "
                "printable characters): set it to, for example, default"
            )
        return value

    @pydantic.model_validator(mode="after")
    def _check_token(self) -> GitHubSettings:
        if (self.token is None) == (self.token_file is None):
            raise ValueError("set exactly one of github.token and github.token_file")
        return self

    @property
    def github_path(self) -> GitHubPath:
        """The parsed organisation or repository."""
        return parse_github_path(self.path, self.group)

    @property
    def api_url(self) -> str:
        """The REST API base URL."""
        return api_base_url(self.url)

    def read_token(self) -> str:
        """Return the token, reading the token file when one is configured.

        Returns:
            The token.

        Raises:
            ConfigError: if the token file cannot be read or is empty.
        """
        if self.token is not None:
            token = self.token.get_secret_value().strip()
        else:
            assert self.token_file is not None  # noqa: S101 - guaranteed by _check_token
            try:
                data = read_bounded(self.token_file, MAX_TOKEN_BYTES, "the token file")
                token = data.decode("utf-8").strip()
            except ConfigError as exc:
                raise ConfigError(f"github.token_file: {exc}") from None
            except UnicodeDecodeError:
                raise ConfigError(
                    f"github.token_file: the token file {self.token_file} is not UTF-8 text"
                ) from None
        if not token:
            raise ConfigError("the GitHub token is empty")
        return token


class RunnerSettings(_Model):
    """The runners to keep and what each looks like.

    Attributes:
        containers: LXD container runners to keep.
        virtual_machines: LXD virtual-machine runners to keep.
        labels: extra labels, beside the application name, image and instance type.
        cpu: CPUs per runner instance.
        memory: memory per runner instance (e.g. 7GiB).
        disk: root disk per runner instance (e.g. 10GiB).
        base_image: LXD image alias the runners start from.
        privileged: make container runners privileged (the charm's `test-mode=insecure`, for
            testing the charm on machines that are themselves LXD containers). Jobs then have
            root on the host: never in production.
        standby: booted standby containers the replenisher keeps beside the container runners,
            each made a runner within a second when one ends (None: one per container runner;
            0: none). They carry no registration and no configuration until then, and exist
            only when the runner image has the runner application baked in.
    """

    containers: _Runners = 0
    virtual_machines: _Runners = 0
    labels: tuple[str, ...] = ()
    cpu: _Cpus = 2
    memory: str = "7GiB"
    disk: str = "10GiB"
    base_image: str = "jammy"
    privileged: bool = False
    standby: _Runners | None = None

    @pydantic.field_validator("memory")
    @classmethod
    def _check_memory(cls, value: str) -> str:
        return normalise_size(value, MAX_MEMORY)

    @pydantic.field_validator("disk")
    @classmethod
    def _check_disk(cls, value: str) -> str:
        return normalise_size(value, MAX_DISK)

    @pydantic.field_validator("labels")
    @classmethod
    def _check_labels(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for label in value:
            if not _LABEL_RE.match(label):
                raise ValueError(
                    f"label {label!r} has characters GitHub does not accept: use at most 100 "
                    "letters, digits and . _ : / + - in each label"
                )
        return value

    @pydantic.field_validator("base_image")
    @classmethod
    def _check_image(cls, value: str) -> str:
        if not _IMAGE_RE.match(value):
            raise ValueError(
                f"{value!r} is not an Ubuntu series or LXD image alias: set it to, for "
                "example, jammy or noble"
            )
        return value

    def count(self, instance_type: InstanceType) -> int:
        """Return how many runners of a type to keep.

        Args:
            instance_type: container or virtual machine.

        Returns:
            The configured count.
        """
        if instance_type is InstanceType.CONTAINER:
            return self.containers
        return self.virtual_machines

    def standbys(self, instance_type: InstanceType) -> int:
        """Return how many standby instances of a type to keep (containers only).

        Args:
            instance_type: container or virtual machine.

        Returns:
            The number of standbys: at most one per runner of the type.
        """
        if instance_type is not InstanceType.CONTAINER:
            return 0
        wanted = self.containers if self.standby is None else self.standby
        return min(wanted, self.containers)


class LxdSettings(_Model):
    """Where the runner instances live in LXD.

    Attributes:
        project: the LXD project.
        storage_pool: the storage pool for the runners' root disks.
        profiles: profiles every runner instance gets (before its own settings).
        socket: the LXD unix socket; found automatically when unset.
        timeout: seconds any single LXD call may take.
    """

    project: str = "default"
    storage_pool: str = "default"
    profiles: tuple[str, ...] = ("default",)
    socket: Path | None = None
    timeout: _Seconds = pydantic.Field(120.0, gt=0)


class ProxySettings(_Model):
    """Proxies the runners use (the Juju model's proxy settings).

    Attributes:
        http: the HTTP proxy URL.
        https: the HTTPS proxy URL.
        no_proxy: comma-separated hosts that bypass the proxy.
        aproxy: whether the runners reach the proxy through the transparent aproxy (nftables
            redirects ports 80 and 443 to it) instead of proxy variables.
    """

    http: str | None = None
    https: str | None = None
    no_proxy: str | None = None
    aproxy: bool = False

    @pydantic.field_validator("http", "https")
    @classmethod
    def _check_proxy(cls, value: str | None) -> str | None:
        # Never quote the value: a proxy URL may carry a password.
        if value is not None and not _is_url(value, ("http", "https")):
            raise ValueError(
                "not a proxy URL with a host (and a port from 1 to 65535, if any): use, for "
                "example, http://proxy.example.com:3128"
            )
        return value

    @pydantic.field_validator("no_proxy")
    @classmethod
    def _check_no_proxy(cls, value: str | None) -> str | None:
        if value is not None and any(char.isspace() or char in "\"'" for char in value):
            raise ValueError(
                "must be comma-separated hosts without spaces or quotes: use, for example, "
                "localhost,.internal"
            )
        return value

    @pydantic.field_validator("aproxy")
    @classmethod
    def _check_aproxy(cls, value: bool, info: pydantic.ValidationInfo) -> bool:
        if "http" not in info.data or "https" not in info.data:
            return value  # a proxy URL was refused already: that is the problem to fix
        if value and not _proxy_target(info.data["http"], info.data["https"]):
            raise ValueError(
                "aproxy needs an http or https proxy with a host and a port: set one such as "
                "http://proxy.example.com:3128, or turn aproxy off"
            )
        return value

    @property
    def configured(self) -> bool:
        """Whether any proxy is set."""
        return bool(self.http or self.https)

    @property
    def bypass(self) -> str:
        """The no_proxy list to use: the model's, plus loopback.

        Built afresh from the settings every time (the original charm appended each runner's
        name to a shared list, which grew forever).

        Returns:
            The comma-separated list.
        """
        hosts = [part.strip() for part in (self.no_proxy or "").split(",") if part.strip()]
        hosts += ["localhost", "127.0.0.1", "::1"]
        return ",".join(dict.fromkeys(hosts))

    @property
    def aproxy_target(self) -> str | None:
        """`host:port` of the proxy aproxy forwards to (the HTTP proxy, else the HTTPS one)."""
        return _proxy_target(self.http, self.https)


class SshDebugSettings(_Model):
    """A tmate server for the debug-ssh relation.

    Attributes:
        host: the server address.
        port: its port.
        rsa_fingerprint: its RSA host key fingerprint.
        ed25519_fingerprint: its Ed25519 host key fingerprint.
    """

    host: str
    port: _StrictInt = pydantic.Field(ge=1, le=65535)
    rsa_fingerprint: str
    ed25519_fingerprint: str


class MetricsSettings(_Model):
    """Metric events (written only when COS is related).

    Attributes:
        enabled: whether to write metric events.
        log_path: the JSON lines file the events go to.
        exporter_port: the loopback port of the Prometheus endpoint (`serve-metrics`).
        check_interval: seconds between reconciliations, for the endpoint's staleness gauge.
    """

    enabled: bool = False
    log_path: Path = Path("/var/log/github-runner-metrics.log")
    exporter_port: _StrictInt = pydantic.Field(9464, ge=1, le=65535)
    check_interval: _Interval = 600.0


class TimingSettings(_Model):
    """Time limits and parallelism.

    Attributes:
        registration_timeout: seconds a new runner may take to come online before it counts as
            unhealthy (GitHub shows a healthy runner offline for a while after it starts).
        probe_after: seconds after which a runner that is not online yet is asked whether its
            runner process still runs (a dead one is replaced before the grace period ends).
        spawn_concurrency: how many runners are created at the same time.
        api_timeout: seconds any single GitHub call may take.
        api_retries: attempts for a GitHub call failing with a server or network error.
        lock_timeout: seconds to wait for another run's lock before giving up.
        download_timeout: seconds the runner application's download may take in all.
    """

    registration_timeout: _Seconds = pydantic.Field(600.0, gt=0)
    probe_after: _Seconds = pydantic.Field(30.0, ge=0)
    spawn_concurrency: _StrictInt = pydantic.Field(4, ge=1, le=64)
    api_timeout: _Seconds = pydantic.Field(30.0, gt=0)
    api_retries: _StrictInt = pydantic.Field(3, ge=1, le=10)
    lock_timeout: _Seconds = pydantic.Field(5.0, ge=0)
    download_timeout: _Seconds = pydantic.Field(900.0, gt=0)


# yq (mikefarah's, as on GitHub-hosted runners) is not packaged for every Ubuntu release: the
# build downloads a pinned release and checks it against these SHA-256 digests.
YQ_VERSION = "v4.52.4"
YQ_URL = f"https://github.com/mikefarah/yq/releases/download/{YQ_VERSION}/yq_linux_{{arch}}"
YQ_SHA256 = {
    "amd64": "0c4d965ea944b64b8fddaf7f27779ee3034e5693263786506ccd1c120f184e8c",
    "arm64": "4c2cc022a129be5cc1187959bb4b09bebc7fb543c5837b93001c68f97ce39a5d",
}
_PACKAGE_RE = re.compile(r"^[a-z0-9][a-z0-9+.-]+(?:=[A-Za-z0-9.+~:-]+)?$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_YQ_MODES = ("download", "package", "none")


class ImageSettings(_Model):
    """The runner image build (`build-image`): what the runners start from when `build` is on.

    Attributes:
        build: whether the manager builds the runner image and starts runners from it; when off,
            runners start from `runners.base_image` as it is (a prebuilt image on the host).
        source: what the build starts from: an LXD image alias on the host, an Ubuntu series
            (`jammy`) pulled from `server`, or `ubuntu:<series>` / `ubuntu-daily:<series>`;
            `runners.base_image` when unset.
        server: the simplestreams server of series names.
        packages: the packages to install; the default set when unset.
        apt_proxy: the proxy apt uses in the builder and the runners (an apt cache, say);
            the model's proxies when unset.
        yq: `download` (the pinned release, checksum-verified), `package` (the distribution's
            `yq` package) or `none`.
        yq_url: where to download yq from; `{arch}` is replaced by the Debian architecture.
        yq_sha256: the SHA-256 of the yq download per Debian architecture.
        timeout: seconds the build script may run inside the builder.
        keep: image versions kept (the current one and the ones before it).
    """

    build: bool = False
    source: str | None = None
    server: str = "https://cloud-images.ubuntu.com/releases"
    packages: tuple[str, ...] | None = None
    apt_proxy: str | None = None
    yq: str = "download"
    yq_url: str = YQ_URL
    yq_sha256: dict[str, str] = pydantic.Field(default_factory=lambda: dict(YQ_SHA256))
    timeout: _Seconds = pydantic.Field(3600.0, gt=0)
    keep: _StrictInt = pydantic.Field(2, ge=1, le=10)

    @pydantic.field_validator("source")
    @classmethod
    def _check_source(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^[A-Za-z0-9][A-Za-z0-9._:-]*$", value):
            raise ValueError(f"{value!r} is not an LXD image alias or an Ubuntu series")
        return value or None

    @pydantic.field_validator("packages")
    @classmethod
    def _check_packages(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for package in value or ():
            if not _PACKAGE_RE.match(package):
                raise ValueError(f"{package!r} is not a Debian package name")
        return value

    @pydantic.field_validator("apt_proxy", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return value or None

    @pydantic.field_validator("server", "apt_proxy", "yq_url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{value!r} is not an http or https URL")
        if any(char.isspace() or char in "\"'\\;" for char in value):
            raise ValueError(f"{value!r} must not contain spaces, quotes or semicolons")
        return value

    @pydantic.field_validator("yq")
    @classmethod
    def _check_yq(cls, value: str) -> str:
        if value not in _YQ_MODES:
            raise ValueError(f"{value!r} is not one of {', '.join(_YQ_MODES)}")
        return value

    @pydantic.field_validator("yq_sha256")
    @classmethod
    def _check_digests(cls, value: dict[str, str]) -> dict[str, str]:
        for arch, digest in value.items():
            if not re.match(r"^[a-z0-9]+$", arch) or not _SHA256_RE.match(digest):
                raise ValueError(f"yq_sha256[{arch!r}] must be 64 lowercase hex characters")
        return value


class ManagerConfig(_Model):
    """The whole configuration of one runner manager (one charm unit).

    Attributes:
        unit: the owner identity written on every instance (e.g. `github-runner/0`); the
            manager only ever touches instances carrying it.
        name_prefix: runner names are `<name_prefix>-<12 hex>`, e.g. `github-runner-0`.
        flavor: the application name: a runner label and the metrics flavor.
        github: GitHub settings.
        runners: runner counts and shape.
        lxd: LXD settings.
        proxy: proxies for the runners.
        dockerhub_mirror: a registry mirror URL for docker inside the runners.
        ssh_debug: tmate servers from the debug-ssh relation.
        metrics: metric events.
        timing: time limits.
        image: the runner image build.
        crash_log_dir: where the logs of crashed runners are copied.
        job_log_dir: where every job's runner logs are kept for Loki (metrics on).
        state_dir: where the manager keeps its lock, caches and the runner application.
        report_path: where the last run's JSON report is written (default in state_dir).
        templates_dir: the jinja2 templates (default: the package's own `templates/`).
    """

    unit: str = pydantic.Field(min_length=1, max_length=200)
    name_prefix: str
    flavor: str
    github: GitHubSettings
    runners: RunnerSettings = RunnerSettings()
    lxd: LxdSettings = LxdSettings()
    proxy: ProxySettings = ProxySettings()
    dockerhub_mirror: str | None = None
    ssh_debug: tuple[SshDebugSettings, ...] = ()
    metrics: MetricsSettings = MetricsSettings()
    timing: TimingSettings = TimingSettings()
    image: ImageSettings = ImageSettings()
    crash_log_dir: Path = Path("/var/log/github-runner-crashed")
    job_log_dir: Path = Path("/var/log/github-runner-jobs")
    state_dir: Path
    report_path: Path | None = None
    templates_dir: Path | None = None

    @pydantic.field_validator("name_prefix")
    @classmethod
    def _check_prefix(cls, value: str) -> str:
        if len(value) > MAX_PREFIX_LENGTH or not _PREFIX_RE.match(value):
            raise ValueError(
                f"name_prefix {value!r} must be lowercase letters, digits and dashes, start "
                f"with a letter and be at most {MAX_PREFIX_LENGTH} characters"
            )
        return value

    @pydantic.field_validator("dockerhub_mirror")
    @classmethod
    def _check_mirror(cls, value: str | None) -> str | None:
        if not value:
            return None
        if not _is_url(value, ("https",), forbidden='"'):
            raise ValueError(
                f"{value!r} is not an https URL: use, for example, https://mirror.example.com"
            )
        return value

    @property
    def report_file(self) -> Path:
        """The report path, defaulting to `report.json` in the state directory."""
        return self.report_path or self.state_dir / "report.json"

    @property
    def templates(self) -> Traversable:
        """The templates directory, defaulting to the package's own (package data)."""
        if self.templates_dir is not None:
            return self.templates_dir
        return package_templates()

    def runner_hash_input(self, instance_type: InstanceType) -> dict[str, Any]:
        """Everything that shapes a runner of a type, for the configuration hash.

        The token and the counts are left out: neither changes what a runner is.

        Args:
            instance_type: container or virtual machine.

        Returns:
            A JSON-serialisable description.
        """
        return {
            "type": instance_type.value,
            "github_url": self.github.url,
            "path": str(self.github.github_path),
            "group": self.github.group,
            "labels": list(self.runners.labels),
            "flavor": self.flavor,
            "cpu": self.runners.cpu,
            "memory": self.runners.memory,
            "disk": self.runners.disk,
            "image": self.runners.base_image,
            "privileged": self.runners.privileged,
            "profiles": list(self.lxd.profiles),
            "pool": self.lxd.storage_pool,
            "proxy": self.proxy.model_dump(),
            "dockerhub_mirror": self.dockerhub_mirror,
            "ssh_debug": [s.model_dump() for s in self.ssh_debug],
            "metrics": self.metrics.enabled,
        }


def load_config(path: Path) -> ManagerConfig:
    """Read and validate the manager's configuration file.

    Args:
        path: a JSON or YAML file.

    Returns:
        The validated configuration.

    Raises:
        ConfigError: if the file is missing, unreadable or invalid; the message names the field.
    """
    try:
        raw = read_bounded(path, MAX_CONFIG_BYTES, "the configuration file").decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"the configuration file {path} is not UTF-8 text") from None
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        # Only the position: the parser's message quotes the line, which may hold the token.
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ConfigError(f"{path} is neither JSON nor YAML{where}") from None
    except RecursionError:
        raise ConfigError(f"{path} is nested too deeply to be a configuration") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of settings")
    try:
        config = ManagerConfig.model_validate(data)
    except pydantic.ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from None
    except RecursionError:
        raise ConfigError(f"{path} is nested too deeply to be a configuration") from None
    _check_directories(config)
    return config


def _check_directories(config: ManagerConfig) -> None:
    """Refuse directories the manager could never create: one below a regular file, say.

    Raises:
        ConfigError: naming the setting.
    """
    directories = {
        "state_dir": config.state_dir,
        "crash_log_dir": config.crash_log_dir,
        "job_log_dir": config.job_log_dir,
        "report_path": config.report_path.parent if config.report_path else None,
        "metrics.log_path": config.metrics.log_path.parent if config.metrics.enabled else None,
    }
    for key, directory in directories.items():
        if directory is None:
            continue
        for candidate in (directory, *directory.parents):
            try:
                mode = candidate.stat().st_mode
            except (FileNotFoundError, NotADirectoryError):
                continue  # created when needed, if its parents allow (looked at next)
            except OSError as exc:
                raise ConfigError(f"{key}: cannot use {directory}: {exc.strerror}") from None
            if not stat.S_ISDIR(mode):
                raise ConfigError(
                    f"{key}: {directory} cannot be a directory: {candidate} is not a directory"
                )
            break


def describe_validation_error(exc: pydantic.ValidationError) -> str:
    """Summarise a validation error in one line per field, without the input values.

    Input values are left out because one of them may be the token.

    Args:
        exc: the pydantic error.

    Returns:
        A message such as `runners.cpu: Input should be greater than or equal to 1`.
    """
    lines = []
    for error in exc.errors(include_input=False, include_url=False):
        location = ".".join(str(part) for part in error["loc"]) or "config"
        message = str(error["msg"]).removeprefix("Value error, ")
        lines.append(f"{location}: {message}")
    return "; ".join(lines)


def config_hash(data: dict[str, Any], extra: str = "") -> str:
    """Hash a runner description into a short stable string.

    Args:
        data: the JSON-serialisable description.
        extra: more text to mix in (the runner application checksum, the templates' hash).

    Returns:
        16 hex characters.
    """
    digest = hashlib.sha256()
    digest.update(json.dumps(data, sort_keys=True).encode())
    digest.update(extra.encode())
    return digest.hexdigest()[:16]
