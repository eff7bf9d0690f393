# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""The LXD adapter: the only module that imports pylxd.

Instances belong to a manager by their `user.github-runner.*` configuration keys (the tags), not
by their names, so two managers (two units, or two applications) on one LXD never touch each
other's instances. Every call is bounded by a timeout; deleting an instance that is already gone
counts as success. The manager sees it through two protocols, `InstanceClient` (instances, the
storage pool) and `ImageStore` (images); `LxdEventStream` follows the project's lifecycle
events for the replenisher.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import logging
import re
import shlex
import socket as socketlib
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO, Protocol
from urllib.parse import urlencode, urlsplit

import pylxd
import pylxd.client
import pylxd.exceptions
import requests.exceptions

from .config import is_loopback_host
from .errors import LxdError, StorageFullError
from .models import InstanceStatus, InstanceType, RunnerInstance

logger = logging.getLogger(__name__)

# Seconds a deletion waits for an instance that LXD is already stopping or deleting.
DELETE_WAIT = 30.0
TAG_UNIT = "user.github-runner.unit"
TAG_CONFIG_HASH = "user.github-runner.config-hash"
TAG_CREATED_AT = "user.github-runner.created-at"
TAG_TYPE = "user.github-runner.type"
# Where the runner is registered, and its GitHub id when known at creation: its registration is
# found and deleted there even after the `path` or `github-url` option changed.
TAG_GITHUB_URL = "user.github-runner.github-url"
TAG_GITHUB_PATH = "user.github-runner.github-path"
TAG_RUNNER_ID = "user.github-runner.runner-id"
# Set on an instance the replenisher creates under the manager's lock and starts after releasing
# it: while it is young and not running, a run holding the lock takes it for one in creation.
TAG_START_AFTER_LOCK = "user.github-runner.start-after-lock"
# `jit` when the GitHub registration was made before the instance (see RunnerInstance).
TAG_REGISTRATION = "user.github-runner.registration"
# A standby: a booted container from the baked image with no registration and no configuration
# yet, which the replenisher turns into a runner when one ends (see RunnerManager.replenish).
TAG_STANDBY = "user.github-runner.standby"
# Image builders carry this tag instead of TAG_UNIT: reconciliations never take them for runners.
TAG_BUILDER = "user.github-runner.image-builder"
# How long pulling an image from a remote image server may take.
IMAGE_PULL_TIMEOUT = 1800.0
# Long operations are waited for in slices of this many seconds (each one LXD call).
WAIT_SLICE = 60.0
# Set on every bridged NIC of the manager's instances, as the original charm set them on the
# default profile's eth0: no instance can spoof another's MAC or IP address, and no two of them
# can exchange traffic over the bridge (the kernel's bridge port isolation). LXD enforces them
# on the host (nftables bridge rules and the veth's `isolated` flag), out of a job's reach.
NIC_ISOLATION = {
    "security.mac_filtering": "true",
    "security.ipv4_filtering": "true",
    "security.ipv6_filtering": "true",
    "security.port_isolation": "true",
}

# The most characters of LXD's own text an error message keeps. LXD's failure text can hold the
# whole output of the tool that failed (an unpack that ran out of space names every file it could
# not write: 100 KB and more); a person reads the first line and the reason.
ERROR_EXCERPT = 600
_SPACE_RE = re.compile(
    r"no space left on device|disk quota exceeded|quota exceeded|not enough space|ENOSPC",
    re.IGNORECASE,
)

_LXD_ERRORS = (
    pylxd.exceptions.LXDAPIException,
    pylxd.exceptions.ClientConnectionFailed,
    requests.exceptions.RequestException,
    OSError,
)


def excerpt(text: str, limit: int = ERROR_EXCERPT) -> str:
    """Cut a (possibly huge) error text to what a person reads.

    Keeps the first line and, when the reason appears only further down (an out-of-space line in
    a tool's output, say), the first line giving it; says how much was left out.

    Args:
        text: the error text.
        limit: the most characters kept (about).

    Returns:
        The excerpt: one line.
    """
    lines = [" ".join(line.split()) for line in text.splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        return ""
    flat = " | ".join(lines)
    if len(flat) <= limit:
        return flat
    kept = [lines[0]]
    reason = next((line for line in lines[1:] if _SPACE_RE.search(line)), None)
    if reason is not None and not _SPACE_RE.search(lines[0]):
        kept.append(reason)
    share = max(80, limit // len(kept))
    parts = [line if len(line) <= share else f"{line[: share - 3]}..." for line in kept]
    result = " | ".join(parts)
    return f"{result} [{len(flat) - len(result)} more characters of LXD output left out]"


def lxd_error(action: str, exc: BaseException | str) -> LxdError:
    """Build the error for a failed LXD call: a bounded excerpt, and its kind.

    Args:
        action: what failed, e.g. `cannot create instance x`.
        exc: the library's (or an inner) error.

    Returns:
        A StorageFullError when LXD ran out of space, an LxdError otherwise.
    """
    text = str(exc)
    full = isinstance(exc, StorageFullError) or bool(_SPACE_RE.search(text))
    error_type = StorageFullError if full else LxdError
    return error_type(f"{action}: {excerpt(text)}")


@dataclasses.dataclass(frozen=True)
class InstanceSpec:
    """Everything needed to create one runner instance.

    Attributes:
        name: the instance name.
        instance_type: container or virtual machine.
        image: the image alias to start from.
        profiles: profiles applied before the instance's own settings.
        config: instance configuration (limits, security, tags).
        devices: instance devices (root disk, proxy devices).
        ephemeral: LXD deletes an ephemeral instance when it stops.
        image_server: a simplestreams image server to pull `image` from; None for an image
            already on this LXD.
        isolate_network: whether every bridged NIC gets `NIC_ISOLATION` (see
            `isolated_nics`).
    """

    name: str
    instance_type: InstanceType
    image: str
    profiles: tuple[str, ...]
    config: dict[str, str]
    devices: dict[str, dict[str, str]]
    ephemeral: bool = True
    image_server: str | None = None
    isolate_network: bool = True


@dataclasses.dataclass(frozen=True)
class ImageInfo:
    """An image in LXD's image store.

    Attributes:
        fingerprint: the image's SHA-256 fingerprint.
        aliases: the aliases pointing at it.
        properties: its properties (description, os, release, and the manager's own keys).
        instance_type: `container` or `virtual-machine`.
    """

    fingerprint: str
    aliases: tuple[str, ...]
    properties: dict[str, str]
    instance_type: str


@dataclasses.dataclass(frozen=True)
class ExecResult:
    """The result of a command run inside an instance.

    Attributes:
        exit_code: the command's exit code.
        stdout: its standard output.
        stderr: its standard error.
    """

    exit_code: int
    stdout: str
    stderr: str


class InstanceClient(Protocol):
    """What the runner manager needs from LXD's instances (and their storage pool)."""

    def list_instances(self, unit: str) -> list[RunnerInstance]:
        """List the instances tagged with a unit."""
        ...  # pragma: no cover

    def create_instance(self, spec: InstanceSpec) -> None:
        """Create an instance (stopped)."""
        ...  # pragma: no cover

    def start_instance(self, name: str) -> None:
        """Start an instance."""
        ...  # pragma: no cover

    def update_instance_config(self, name: str, values: Mapping[str, str | None]) -> None:
        """Set configuration keys of an instance (None removes a key); running ones too."""
        ...  # pragma: no cover

    def push_file(self, name: str, path: str, data: bytes | BinaryIO, mode: int = 0o644) -> None:
        """Write a file (owned by root) into an instance; a file object is streamed."""
        ...  # pragma: no cover

    def push_symlink(self, name: str, path: str, target: str) -> None:
        """Create a symbolic link inside an instance."""
        ...  # pragma: no cover

    def make_directory(self, name: str, path: str, mode: int = 0o755) -> None:
        """Create a directory (owned by root) inside an instance, if missing."""
        ...  # pragma: no cover

    def pull_file(self, name: str, path: str) -> bytes:
        """Read a file from an instance."""
        ...  # pragma: no cover

    def execute(
        self,
        name: str,
        command: list[str],
        env: dict[str, str] | None = None,
        timeout: float = 60.0,
    ) -> ExecResult:
        """Run a command inside an instance."""
        ...  # pragma: no cover

    def delete_instance(self, name: str) -> None:
        """Stop and delete an instance; a missing instance counts as deleted."""
        ...  # pragma: no cover

    def stop_instance(self, name: str, timeout: float = 120.0) -> None:
        """Shut an instance down cleanly (forcefully when it does not stop in time)."""
        ...  # pragma: no cover

    def storage_pool_usage(self, pool: str) -> tuple[int, int] | None:
        """Return a storage pool's bytes used and bytes in all (None: LXD cannot tell)."""
        ...  # pragma: no cover


class ImageStore(Protocol):
    """What the runner manager needs from LXD's image store."""

    def image_exists(self, alias: str) -> bool:
        """Tell whether an image alias exists."""
        ...  # pragma: no cover

    def publish_image(
        self, name: str, alias: str, properties: dict[str, str], timeout: float
    ) -> str:
        """Publish a stopped instance as an image with an alias; return its fingerprint."""
        ...  # pragma: no cover

    def image_fingerprint(self, alias: str) -> str | None:
        """Return the fingerprint an image alias points at, or None without such alias."""
        ...  # pragma: no cover

    def set_image_alias(self, alias: str, fingerprint: str, description: str = "") -> None:
        """Point an image alias at an image, creating the alias when missing."""
        ...  # pragma: no cover

    def list_images(self) -> list[ImageInfo]:
        """List the images in the store."""
        ...  # pragma: no cover

    def delete_image(self, fingerprint: str) -> None:
        """Delete an image and its aliases; a missing image counts as deleted."""
        ...  # pragma: no cover


class LxdClient(InstanceClient, ImageStore, Protocol):
    """Both: what the image builder and the manager need from LXD (`PylxdClient` is one)."""


def loopback_proxy_devices(urls: Sequence[str | None]) -> dict[str, dict[str, str]]:
    """Proxy devices making services on the host's loopback reachable inside an instance.

    A GitHub server or a proxy on the host's loopback (an SSH tunnel, a local cache, a test
    server) is reached inside the instance at the same address: the device listens there, bound
    inside the instance, and connects to the host's loopback.

    Args:
        urls: URLs (or `host:port`); the ones not on loopback are ignored.

    Returns:
        Device name → device, one per port.
    """
    devices: dict[str, dict[str, str]] = {}
    for url in urls:
        if not url:
            continue
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if not parts.hostname or not is_loopback_host(parts.hostname):
            continue
        port = parts.port or (443 if parts.scheme == "https" else 80)
        address = "[::1]" if parts.hostname == "::1" else "127.0.0.1"
        devices[f"loopback-{port}"] = {
            "type": "proxy",
            "listen": f"tcp:{address}:{port}",
            "connect": f"tcp:{address}:{port}",
            "bind": "instance",
        }
    return devices


def isolated_nics(
    profile_devices: Sequence[dict[str, dict[str, str]]],
    devices: dict[str, dict[str, str]],
    network_type: Callable[[str], str | None],
) -> dict[str, dict[str, str]]:
    """The instance's devices with `NIC_ISOLATION` on each of its bridged NICs.

    A NIC usually comes from a profile (`eth0` of `default`): it is copied into the instance's
    own devices under the same name, which overrides the profile's, with the options added. An
    option the operator set (say `security.port_isolation: "false"` in a profile) is kept.

    Args:
        profile_devices: the devices of the instance's profiles, in the order LXD applies them.
        devices: the instance's own devices.
        network_type: the type of a managed network (`bridge`, `macvlan`, `ovn`...), None when
            unknown; only bridged NICs take these options.

    Returns:
        The instance's devices, with the NICs it would get from profiles made explicit.
    """
    expanded: dict[str, dict[str, str]] = {}
    for profile in profile_devices:
        expanded.update(profile)
    expanded.update(devices)
    result = {name: dict(device) for name, device in devices.items()}
    for name, device in expanded.items():
        if device.get("type") != "nic":
            continue
        if device.get("network"):
            bridged = network_type(device["network"]) == "bridge"
        else:
            bridged = device.get("nictype") == "bridged"
        if not bridged:
            logger.warning(
                "the NIC %s is not on an LXD bridge: runners on it are not isolated from "
                "each other",
                name,
            )
            continue
        result[name] = {**NIC_ISOLATION, **device}
    return result


def wait_until_booted(
    lxd: InstanceClient,
    name: str,
    timeout: float,
    *,
    monotonic: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    interval: float = 1.0,
) -> None:
    """Wait until commands run in an instance and its systemd has finished booting.

    A VM's agent answers only once the VM has booted, so exec failures are waited through.
    `degraded` (a unit failed) counts as booted: what needs checking is checked afterwards.

    Args:
        lxd: the LXD client.
        name: the instance.
        timeout: seconds to wait at most.
        monotonic: the clock.
        sleep: the sleep function.
        interval: seconds between attempts.

    Raises:
        LxdError: if it did not boot in time (the message says what was last seen).
    """
    deadline = monotonic() + timeout
    last = "no answer"
    while monotonic() < deadline:
        try:
            result = lxd.execute(name, ["systemctl", "is-system-running", "--wait"], timeout=60)
            state = result.stdout.strip()
            if state and state not in ("initializing", "starting"):
                return
            last = f"systemd is {state or 'not answering'}"
        except LxdError as exc:
            last = str(exc)
        sleep(interval)
    raise LxdError(f"{name} did not finish booting within {timeout:.0f}s: {last}")


def _parse_runner_id(value: str | None) -> int | None:
    """The runner id tag as an integer (None when absent or malformed)."""
    try:
        return int(value) if value else None
    except ValueError:
        return None


def never_started(last_used_at: object) -> bool:
    """Whether LXD's `last_used_at` of an instance says it was never started.

    Args:
        last_used_at: the instance's `last_used_at` (LXD gives the epoch, or Go's zero time,
            until the first start).

    Returns:
        True when it was never started.
    """
    return not last_used_at or str(last_used_at).startswith(("1970-01-01", "0001-01-01"))


def _parse_created_at(value: str | None) -> datetime.datetime:
    if value:
        with contextlib.suppress(ValueError):
            parsed = datetime.datetime.fromisoformat(value)
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=datetime.timezone.utc)
            return parsed
    # An instance without a readable tag is treated as old: the planner may then clean it up.
    return datetime.datetime.fromtimestamp(0, tz=datetime.timezone.utc)


class PylxdClient:
    """InstanceClient and ImageStore (LxdClient) backed by pylxd, on one LXD project."""

    def __init__(
        self, project: str = "default", socket: Path | None = None, timeout: float = 120.0
    ):
        """Connect to the local LXD daemon.

        Args:
            project: the LXD project holding the runner instances.
            socket: the LXD unix socket; pylxd finds the snap's or Debian's by default.
            timeout: seconds any single LXD call may take.

        Raises:
            LxdError: if LXD cannot be reached.
        """
        self._timeout = timeout
        endpoint = str(socket) if socket else None
        try:
            self._client = pylxd.Client(endpoint=endpoint, project=project, timeout=timeout)
        except _LXD_ERRORS as exc:
            raise lxd_error("cannot reach LXD", exc) from exc
        # LXD answers calls in a missing project as if the project were empty (no instances, no
        # images): say what is missing before that reads as "the image does not exist".
        try:
            self._client.api.projects[project].get()
        except pylxd.exceptions.NotFound:
            raise LxdError(
                f"the LXD project {project!r} does not exist: create it "
                f"(`lxc project create {project}`) or set lxd.project to an existing one"
            ) from None
        except _LXD_ERRORS as exc:
            raise lxd_error(f"cannot look up the LXD project {project!r}", exc) from exc

    def list_instances(self, unit: str) -> list[RunnerInstance]:
        """List the instances tagged with a unit.

        Args:
            unit: the owner identity in the `user.github-runner.unit` tag.

        Returns:
            The unit's instances.

        Raises:
            LxdError: if LXD fails.
        """
        try:
            response = self._client.api.instances.get(params={"recursion": "1"})
            items = response.json()["metadata"]
        except (*_LXD_ERRORS, ValueError, KeyError) as exc:
            raise lxd_error("cannot list LXD instances", exc) from exc
        instances = []
        for item in items:
            config = item.get("config") or {}
            if config.get(TAG_UNIT) != unit:
                continue
            try:
                instance_type = InstanceType(item.get("type", "container"))
            except ValueError:
                continue
            instances.append(
                RunnerInstance(
                    name=item["name"],
                    instance_type=instance_type,
                    status=InstanceStatus.from_lxd(str(item.get("status", ""))),
                    created_at=_parse_created_at(config.get(TAG_CREATED_AT)),
                    config_hash=config.get(TAG_CONFIG_HASH, ""),
                    registered_first=config.get(TAG_REGISTRATION) == "jit",
                    runner_id=_parse_runner_id(config.get(TAG_RUNNER_ID)),
                    github_url=config.get(TAG_GITHUB_URL),
                    github_path=config.get(TAG_GITHUB_PATH),
                    awaiting_start=config.get(TAG_START_AFTER_LOCK) == "true"
                    and never_started(item.get("last_used_at")),
                    standby=config.get(TAG_STANDBY) == "true",
                )
            )
        return instances

    def create_instance(self, spec: InstanceSpec) -> None:
        """Create an instance from an image, without starting it.

        Args:
            spec: the instance to create.

        Raises:
            LxdError: if LXD refuses or fails.
        """
        source: dict[str, str] = {"type": "image", "alias": spec.image}
        if spec.image_server:
            source.update(mode="pull", server=spec.image_server, protocol="simplestreams")
        request = {
            "name": spec.name,
            "type": spec.instance_type.value,
            "source": source,
            "ephemeral": spec.ephemeral,
            "profiles": list(spec.profiles),
            "config": dict(spec.config),
            "devices": {name: dict(device) for name, device in spec.devices.items()},
        }
        try:
            if spec.isolate_network:
                request["devices"] = isolated_nics(
                    [self._profile_devices(profile) for profile in spec.profiles],
                    spec.devices,
                    self._network_type,
                )
            if spec.image_server:
                # Pulling from an image server may take far longer than one LXD call.
                response = self._client.api.instances.post(json=request)
                self._wait_operation(response.json()["operation"], IMAGE_PULL_TIMEOUT)
            else:
                self._client.instances.create(request, wait=True)
        except (*_LXD_ERRORS, ValueError, KeyError, LxdError) as exc:
            raise lxd_error(f"cannot create instance {spec.name}", exc) from exc

    def _profile_devices(self, name: str) -> dict[str, dict[str, str]]:
        """The devices of a profile of the project."""
        profile = self._client.profiles.get(name)
        return {key: dict(device) for key, device in (profile.devices or {}).items()}

    def _network_type(self, name: str) -> str | None:
        """The type of a managed network, or None when LXD does not know it."""
        try:
            return str(self._client.networks.get(name).type)
        except pylxd.exceptions.NotFound:
            return None

    def _instance(self, name: str) -> Any:
        try:
            return self._client.instances.get(name)
        except _LXD_ERRORS as exc:
            raise lxd_error(f"cannot find instance {name}", exc) from exc

    def start_instance(self, name: str) -> None:
        """Start an instance and wait until LXD reports it started.

        Args:
            name: the instance.

        Raises:
            LxdError: if LXD fails.
        """
        instance = self._instance(name)
        try:
            instance.start(timeout=int(self._timeout), wait=True)
        except _LXD_ERRORS as exc:
            raise lxd_error(f"cannot start instance {name}", exc) from exc

    def update_instance_config(self, name: str, values: Mapping[str, str | None]) -> None:
        """Set (or, for None, remove) configuration keys of an instance, running or not.

        `user.*` keys change live: a running instance sees them through /dev/lxd at once.

        Args:
            name: the instance.
            values: key -> new value, or None to remove the key.

        Raises:
            LxdError: if LXD fails.
        """
        instance = self._instance(name)
        try:
            for key, value in values.items():
                if value is None:
                    instance.config.pop(key, None)
                else:
                    instance.config[key] = value
            instance.save(wait=True)
        except _LXD_ERRORS as exc:
            raise lxd_error(f"cannot update the configuration of instance {name}", exc) from exc

    def push_file(self, name: str, path: str, data: bytes | BinaryIO, mode: int = 0o644) -> None:
        """Write a file owned by root into an instance (running, or a stopped container).

        Args:
            name: the instance.
            path: the absolute path inside it.
            data: the content, or a binary file object streamed from its position (requests
                sends a file object in chunks: memory stays bounded for a large file).
            mode: the file permissions.

        Raises:
            LxdError: if LXD fails.
        """
        try:
            self._client.api.instances[name].files.post(
                params={"path": path},
                data=data,
                headers={
                    "X-LXD-type": "file",
                    "X-LXD-mode": f"{mode:04o}",
                    "X-LXD-uid": "0",
                    "X-LXD-gid": "0",
                    "X-LXD-write": "overwrite",
                },
            )
        except _LXD_ERRORS as exc:
            raise lxd_error(f"cannot write {path} into {name}", exc) from exc

    def push_symlink(self, name: str, path: str, target: str) -> None:
        """Create a symbolic link inside an instance (e.g. to enable a systemd unit).

        Args:
            name: the instance.
            path: the link's absolute path.
            target: where it points.

        Raises:
            LxdError: if LXD fails.
        """
        try:
            self._client.api.instances[name].files.post(
                params={"path": path},
                data=target.encode(),
                headers={"X-LXD-type": "symlink", "X-LXD-uid": "0", "X-LXD-gid": "0"},
            )
        except _LXD_ERRORS as exc:
            raise lxd_error(f"cannot link {path} in {name}", exc) from exc

    def make_directory(self, name: str, path: str, mode: int = 0o755) -> None:
        """Create a directory owned by root inside an instance; an existing one is kept.

        Args:
            name: the instance.
            path: the directory's absolute path (its parent must exist).
            mode: its permissions.

        Raises:
            LxdError: if LXD fails.
        """
        try:
            self._client.api.instances[name].files.post(
                params={"path": path},
                headers={
                    "X-LXD-type": "directory",
                    "X-LXD-mode": f"{mode:04o}",
                    "X-LXD-uid": "0",
                    "X-LXD-gid": "0",
                },
            )
        except pylxd.exceptions.LXDAPIException as exc:
            if "exist" not in str(exc).lower():
                raise lxd_error(f"cannot create {path} in {name}", exc) from exc
        except _LXD_ERRORS as exc:
            raise lxd_error(f"cannot create {path} in {name}", exc) from exc

    def pull_file(self, name: str, path: str) -> bytes:
        """Read a file from an instance.

        Args:
            name: the instance.
            path: the absolute path inside it.

        Returns:
            The content.

        Raises:
            LxdError: if LXD fails or the file does not exist.
        """
        try:
            return bytes(self._instance(name).files.get(path))
        except _LXD_ERRORS as exc:
            raise lxd_error(f"cannot read {path} from {name}", exc) from exc

    def execute(
        self,
        name: str,
        command: list[str],
        env: dict[str, str] | None = None,
        timeout: float = 60.0,
    ) -> ExecResult:
        """Run a command inside a running instance, killed after a timeout.

        The command runs under `timeout` inside the instance, so a hung command cannot hold the
        manager; the LXD client's own timeout bounds the call itself. Output is recorded by LXD
        and read afterwards, so keep it small.

        Args:
            name: the instance.
            command: the command and its arguments.
            env: extra environment (secrets go here, never into the command line).
            timeout: seconds the command may run.

        Returns:
            The exit code and output.

        Raises:
            LxdError: if LXD fails.
        """
        bounded = ["timeout", "--kill-after=5", f"{max(1, int(timeout))}s", *command]
        # Recorded output instead of websockets: one request, one wait, two small reads; no
        # websocket threads that can outlive the call.
        try:
            response = self._client.api.instances[name].exec.post(
                json={
                    "command": bounded,
                    "environment": env or {},
                    "wait-for-websocket": False,
                    "record-output": True,
                    "interactive": False,
                }
            )
            operation = self._wait_operation(response.json()["operation"], timeout + 30)
            metadata = operation.get("metadata") or {}
            output = {
                fd: self._read_exec_log(path)
                for fd, path in (metadata.get("output") or {}).items()
            }
        except (*_LXD_ERRORS, ValueError, KeyError, LxdError) as exc:
            raise lxd_error(f"cannot run {shlex.join(command[:2])} in {name}", exc) from exc
        return ExecResult(
            exit_code=int(metadata.get("return", -1)),
            stdout=output.get("1", ""),
            stderr=output.get("2", ""),
        )

    def _read_exec_log(self, path: str) -> str:
        """Read and delete a recorded exec output (`/1.0/instances/<name>/logs/<file>`)."""
        endpoint = self._client.api
        for part in path.strip("/").split("/")[1:]:
            endpoint = endpoint[part]
        # Raw: the output is not an LXD response (it may even be JSON of its own).
        text = str(endpoint.get(is_api=False).text)
        with contextlib.suppress(*_LXD_ERRORS):
            endpoint.delete()
        return text

    def delete_instance(self, name: str) -> None:
        """Stop (forcefully) and delete an instance; a missing instance counts as deleted.

        An ephemeral runner may be powering itself off at the same moment: LXD then refuses
        ("already stopped", "busy running a stop operation") and deletes the instance itself
        moments later, so a refusal is followed by a short wait and another look.

        Args:
            name: the instance.

        Raises:
            LxdError: if the instance is still there after the wait.
        """
        deadline = time.monotonic() + DELETE_WAIT
        while True:
            try:
                instance = self._client.instances.get(name)
            except pylxd.exceptions.NotFound:
                return
            except _LXD_ERRORS as exc:
                raise lxd_error(f"cannot find instance {name}", exc) from exc
            try:
                if instance.status != "Stopped":
                    instance.stop(force=True, wait=True)
                    # An ephemeral instance is gone once stopped; look again in any case.
                    continue
                instance.delete(wait=True)
                return
            except pylxd.exceptions.NotFound:
                return  # ephemeral: LXD deleted it when it stopped
            except _LXD_ERRORS as exc:
                if time.monotonic() >= deadline:
                    raise lxd_error(f"cannot delete instance {name}", exc) from exc
                logger.debug("instance %s is busy (%s); looking again", name, exc)
                time.sleep(0.5)

    def storage_pool_usage(self, pool: str) -> tuple[int, int] | None:
        """Tell how full a storage pool is.

        Args:
            pool: the storage pool.

        Returns:
            Bytes used and bytes in all, or None when LXD cannot tell.
        """
        try:
            response = self._client.api.storage_pools[pool].resources.get()
            space = response.json()["metadata"]["space"]
            return int(space["used"]), int(space["total"])
        except (*_LXD_ERRORS, ValueError, KeyError, TypeError) as exc:
            logger.debug("cannot read the usage of storage pool %s: %s", pool, excerpt(str(exc)))
            return None

    def image_exists(self, alias: str) -> bool:
        """Tell whether an image alias exists.

        Args:
            alias: the alias.

        Returns:
            True when LXD has it.

        Raises:
            LxdError: if LXD fails.
        """
        try:
            return bool(self._client.images.exists(alias, alias=True))
        except _LXD_ERRORS as exc:
            raise lxd_error(f"cannot look up image {alias}", exc) from exc

    def _wait_operation(self, operation: str, timeout: float) -> dict[str, Any]:
        """Wait for a background operation, however long it takes up to `timeout` seconds.

        pylxd's own wait is bounded by the client's per-call timeout; long operations (an image
        pull, a publish, a build script) are waited for here in slices instead.

        Args:
            operation: the operation's URL or id.
            timeout: seconds to wait in all.

        Returns:
            The finished operation (its `metadata` holds the result).

        Raises:
            LxdError: if the operation failed, or did not finish in time.
        """
        operation_id = operation.rstrip("/").rsplit("/", 1)[-1]
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LxdError(
                    f"LXD operation {operation_id} did not finish within {timeout:.0f}s"
                )
            wait = max(1, int(min(remaining, WAIT_SLICE)))
            try:
                response = self._client.api.operations[operation_id].wait.get(
                    params={"timeout": str(wait)}, timeout=wait + 30
                )
                body = response.json()
            except (*_LXD_ERRORS, ValueError) as exc:
                raise lxd_error(f"cannot wait for LXD operation {operation_id}", exc) from exc
            result = body.get("metadata") or {}
            status = result.get("status")
            if status == "Success":
                return dict(result)
            if status in ("Failure", "Cancelled") or body.get("error"):
                reason = result.get("err") or body.get("error") or status
                raise lxd_error(f"LXD operation {result.get('description', '')}", str(reason))

    def stop_instance(self, name: str, timeout: float = 120.0) -> None:
        """Shut an instance down cleanly, forcefully when it does not stop in time.

        Args:
            name: the instance.
            timeout: seconds the clean shutdown may take.

        Raises:
            LxdError: if LXD fails.
        """
        request = {"action": "stop", "timeout": int(timeout), "force": False}
        try:
            response = self._client.api.instances[name].state.put(json=request)
            self._wait_operation(response.json()["operation"], timeout + 30)
            return
        except (*_LXD_ERRORS, ValueError, KeyError, LxdError) as exc:
            if self._instance(name).status == "Stopped":
                return
            logger.warning(
                "instance %s did not stop cleanly (%s): stopping it forcefully", name, exc
            )
        try:
            response = self._client.api.instances[name].state.put(
                json={"action": "stop", "force": True}
            )
            self._wait_operation(response.json()["operation"], self._timeout)
        except (*_LXD_ERRORS, ValueError, KeyError, LxdError) as exc:
            raise lxd_error(f"cannot stop instance {name}", exc) from exc

    def publish_image(
        self, name: str, alias: str, properties: dict[str, str], timeout: float
    ) -> str:
        """Publish a stopped instance as a private image with an alias.

        The image is created first and the alias added afterwards: when the alias cannot be
        added, the image is deleted again, so a failed publish leaves no unnamed image behind
        (LXD itself keeps the image when an alias in the publish request is refused).

        Args:
            name: the stopped instance.
            alias: the new image's alias (it must not exist yet).
            properties: the image's properties.
            timeout: seconds the publish (packing the instance's disk) may take.

        Returns:
            The new image's fingerprint.

        Raises:
            LxdError: if LXD fails.
        """
        request = {
            "public": False,
            "source": {"type": "instance", "name": name},
            "properties": dict(properties),
        }
        try:
            response = self._client.api.images.post(json=request)
            operation = self._wait_operation(response.json()["operation"], timeout)
            fingerprint = str(operation["metadata"]["fingerprint"])
        except (*_LXD_ERRORS, ValueError, KeyError, TypeError, LxdError) as exc:
            raise lxd_error(f"cannot publish instance {name}", exc) from exc
        try:
            self._client.api.images.aliases.post(
                json={
                    "name": alias,
                    "target": fingerprint,
                    "description": properties.get("description", ""),
                }
            )
        except _LXD_ERRORS as exc:
            with contextlib.suppress(LxdError):
                self.delete_image(fingerprint)
            raise lxd_error(f"cannot add the image alias {alias}", exc) from exc
        return fingerprint

    def image_fingerprint(self, alias: str) -> str | None:
        """Return the fingerprint an image alias points at.

        Args:
            alias: the alias.

        Returns:
            The fingerprint, or None when the alias does not exist.

        Raises:
            LxdError: if LXD fails.
        """
        try:
            response = self._client.api.images.aliases[alias].get()
            return str(response.json()["metadata"]["target"])
        except pylxd.exceptions.NotFound:
            return None
        except (*_LXD_ERRORS, ValueError, KeyError, TypeError) as exc:
            raise lxd_error(f"cannot look up image {alias}", exc) from exc

    def set_image_alias(self, alias: str, fingerprint: str, description: str = "") -> None:
        """Point an image alias at an image, creating the alias when missing.

        Moving an existing alias is one update in LXD: an instance created meanwhile from the
        alias gets either the old image or the new one, never an error.

        Args:
            alias: the alias.
            fingerprint: the image it must point at.
            description: the alias's description.

        Raises:
            LxdError: if LXD fails.
        """
        body = {"target": fingerprint, "description": description}
        try:
            try:
                self._client.api.images.aliases[alias].put(json=body)
            except pylxd.exceptions.NotFound:
                self._client.api.images.aliases.post(json={"name": alias, **body})
        except _LXD_ERRORS as exc:
            raise lxd_error(f"cannot point the image alias {alias} at {fingerprint}", exc) from exc

    def list_images(self) -> list[ImageInfo]:
        """List the images in the store.

        Returns:
            The images with their aliases and properties.

        Raises:
            LxdError: if LXD fails.
        """
        try:
            response = self._client.api.images.get(params={"recursion": "1"})
            items = response.json()["metadata"]
        except (*_LXD_ERRORS, ValueError, KeyError) as exc:
            raise lxd_error("cannot list LXD images", exc) from exc
        return [
            ImageInfo(
                fingerprint=str(item["fingerprint"]),
                aliases=tuple(str(a["name"]) for a in item.get("aliases") or ()),
                properties={str(k): str(v) for k, v in (item.get("properties") or {}).items()},
                instance_type=str(item.get("type", "container")),
            )
            for item in items
        ]

    def delete_image(self, fingerprint: str) -> None:
        """Delete an image (and so its aliases); a missing image counts as deleted.

        Instances created from the image keep working: they have their own copy.

        Args:
            fingerprint: the image.

        Raises:
            LxdError: if LXD fails for another reason.
        """
        try:
            response = self._client.api.images[fingerprint].delete()
            self._wait_operation(response.json()["operation"], self._timeout)
        except pylxd.exceptions.NotFound:
            return
        except (*_LXD_ERRORS, ValueError, KeyError, LxdError) as exc:
            raise lxd_error(f"cannot delete image {fingerprint}", exc) from exc


# Lifecycle actions after which an instance no longer runs a job: the fleet may be short.
ENDED_ACTIONS = frozenset({"instance-stopped", "instance-shutdown", "instance-deleted"})


@dataclasses.dataclass(frozen=True)
class InstanceEvent:
    """One lifecycle event of an instance, as LXD's event stream reports it.

    Attributes:
        action: the lifecycle action, e.g. `instance-deleted`.
        name: the instance name.
    """

    action: str
    name: str

    @property
    def ended(self) -> bool:
        """Whether the instance stopped or went (so a runner may be missing)."""
        return self.action in ENDED_ACTIONS


def parse_lifecycle_event(document: Any) -> InstanceEvent | None:
    """Read an instance's lifecycle event from one message of LXD's event stream.

    Args:
        document: the decoded JSON message.

    Returns:
        The event, or None when the message is not an instance's lifecycle event.
    """
    if not isinstance(document, dict) or document.get("type") != "lifecycle":
        return None
    metadata = document.get("metadata")
    if not isinstance(metadata, dict):
        return None
    action, source = metadata.get("action"), metadata.get("source")
    if not isinstance(action, str) or not isinstance(source, str):
        return None
    path = urlsplit(source).path
    prefix = "/1.0/instances/"
    if not path.startswith(prefix):
        return None
    name = path.removeprefix(prefix)
    if not name or "/" in name:
        return None  # a sub-resource (snapshot, backup), not the instance itself
    return InstanceEvent(action=action, name=name)


class LxdEventStream:
    """Follows the lifecycle events of one LXD project over LXD's `/1.0/events` websocket.

    `follow` blocks while the connection lasts; `close` ends it cleanly from another thread,
    and `cut` drops the connection abruptly the way a restarting daemon does (tests use it to
    cut the stream without disturbing the shared LXD daemon).
    """

    def __init__(self, project: str = "default", socket: Path | None = None):
        """Describe the stream; nothing connects until `follow`.

        Args:
            project: the LXD project whose events to follow.
            socket: the LXD unix socket; pylxd finds the snap's or Debian's by default.
        """
        self._project = project
        self._endpoint = str(socket) if socket else None
        self._lock = threading.Lock()
        self._websocket: Any = None
        self._closed = False

    def follow(
        self, on_event: Callable[[InstanceEvent], None], on_connected: Callable[[], None]
    ) -> None:
        """Connect and deliver the project's instance lifecycle events until the stream ends.

        Args:
            on_event: called (on this thread) for each instance lifecycle event.
            on_connected: called once the stream is connected, before any event: whatever
                happened while it was not connected must be observed afresh.

        Raises:
            LxdError: if LXD cannot be reached, or the stream broke (not after `close`).
        """
        closing_reason: list[object] = []

        class _Websocket(pylxd.client._WebsocketClient):
            def received_message(self, message: Any) -> None:
                try:
                    document = json.loads(message.data.decode("utf-8"))
                except (ValueError, UnicodeDecodeError):
                    return
                event = parse_lifecycle_event(document)
                if event is not None:
                    on_event(event)

            def closed(self, code: int, reason: Any = None) -> None:
                closing_reason.append(code)

        with self._lock:
            if self._closed:
                return
            try:
                client = pylxd.Client(endpoint=self._endpoint, project=self._project, timeout=30)
                websocket = client.events(
                    websocket_client=_Websocket, event_types={pylxd.client.EventType.Lifecycle}
                )
                websocket.resource += "&" + urlencode({"project": self._project})
                websocket.connect()
            except Exception as exc:  # ws4py's handshake errors have no common base
                raise LxdError(f"cannot follow LXD's events: {exc}") from exc
            self._websocket = websocket
        try:
            on_connected()
            websocket.run()
        except Exception as exc:  # ws4py raises its own exception types
            if not self._closed:
                raise LxdError(f"LXD's event stream broke: {exc}") from exc
        finally:
            with self._lock:
                self._websocket = None
            with contextlib.suppress(Exception):
                websocket.close_connection()
        if not self._closed:
            raise LxdError(f"LXD's event stream ended (close code {closing_reason or 'none'})")

    def close(self) -> None:
        """End the stream for good (from another thread); `follow` then returns."""
        with self._lock:
            self._closed = True
            websocket = self._websocket
        if websocket is not None:
            with contextlib.suppress(Exception):
                websocket.close()
            with contextlib.suppress(Exception):
                websocket.sock.shutdown(socketlib.SHUT_RDWR)

    def cut(self) -> bool:
        """Drop the connection abruptly, as a daemon restart does (a fault for tests).

        Returns:
            Whether a connection was there to cut.
        """
        with self._lock:
            websocket = self._websocket
        if websocket is None:
            return False
        with contextlib.suppress(OSError):
            websocket.sock.shutdown(socketlib.SHUT_RDWR)
        return True
