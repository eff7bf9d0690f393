# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""Creating one runner: an LXD instance with the runner application, registered with GitHub.

From an image with the current runner application baked in (see `image.py`), a runner with a
just-in-time configuration is one LXD create request and a start: its files (the scripts
rendered with its name, labels, environment and proxies) and its JIT configuration are
instance configuration keys of the create request, which the image's boot program reads from
LXD's guest API, /dev/lxd, where an instance reads only its own configuration. Nothing is
written into the stopped container (any write makes LXD's start about a second slower). The
keys stay in the instance's configuration until the instance goes: the job runs as a user with
passwordless sudo, who could read the runner's process environment anyway, and an ephemeral
runner's configuration serves one job.

Otherwise (an image without a baked runner application, or with another version of it, the
registration-token flow, or a virtual machine) the files are pushed. For a container they go in
before it starts (LXD writes into a stopped container), with the runner's systemd unit already
enabled, so the runner starts as the container boots: no exec round trip and no wait for boot.
A virtual machine can only take files once its LXD agent runs, so it is started first. With a
just-in-time configuration the runner needs no token at all; with the registration-token
fallback, `config.sh` runs inside the instance and its exit code is checked.

A standby (see `standby.py`) is a container from such an image, created and started with no
registration and no configuration: its boot program waits on /dev/lxd's event stream. Making it a
runner (`adopt_standby`) is one JIT registration and one update of its configuration keys, which
the waiting boot program reads at once: a runner in well under a second, with no create or start.

Whatever fails, nothing is left behind: the instance is deleted and the GitHub registration
removed.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime
import gzip
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from .config import RUNNER_SUFFIX_HEX, ManagerConfig
from .errors import (
    GitHubError,
    PermissionDeniedError,
    RateLimitError,
    RunnerCreateError,
    RunnerManagerError,
    TokenError,
)
from .exchange import Installed, RunnerExchange
from .github import GitHubClient
from .image import (
    BOOT_KEYS,
    BOOT_WAITS,
    PROPERTY_BOOT,
    PROPERTY_RUNNER_SHA256,
    RUNNER_USER,
    root_disk,
    runner_image,
)
from .job_logs import LOG_LIMIT
from .lxd import (
    TAG_CONFIG_HASH,
    TAG_CREATED_AT,
    TAG_GITHUB_PATH,
    TAG_GITHUB_URL,
    TAG_REGISTRATION,
    TAG_RUNNER_ID,
    TAG_STANDBY,
    TAG_START_AFTER_LOCK,
    TAG_TYPE,
    TAG_UNIT,
    InstanceSpec,
    LxdClient,
    loopback_proxy_devices,
    wait_until_booted,
)
from .models import GitHubOrg, InstanceType, Registration
from .templates import TemplateRenderer

logger = logging.getLogger(__name__)

DIST_DIR = "/opt/github-runner"
DOCKER_DAEMON_PATH = "/etc/docker/daemon.json"
DOCKER_PROXY_DROPIN = "/etc/systemd/system/docker.service.d/http-proxy.conf"
# Installed into the runner user's and root's ~/.docker by start.sh (the user exists only then).
DOCKER_CLIENT_CONFIG = f"{DIST_DIR}/docker-client-config.json"
APROXY_RULES = f"{DIST_DIR}/aproxy.nft"
APROXY_PORT = 54969
# Parent directories created before files go into them (LXD does not create them).
_DIRECTORIES = (DIST_DIR, "/etc/docker", "/etc/systemd/system/docker.service.d")
UNIT_PATH = "/etc/systemd/system/github-runner.service"
UNIT_WANTS_PATH = "/etc/systemd/system/multi-user.target.wants/github-runner.service"
# How long a virtual machine's LXD agent may take to answer after the VM starts.
AGENT_TIMEOUT = 300.0


@dataclasses.dataclass(frozen=True)
class SpawnResult:
    """A runner that was created.

    Attributes:
        name: the runner name.
        instance_type: container or virtual machine.
        timings: seconds spent per stage (register, create, push, start, configure).
    """

    name: str
    instance_type: InstanceType
    timings: Mapping[str, float]


@dataclasses.dataclass(frozen=True)
class PendingRunner(SpawnResult):
    """A runner whose instance is created but not started yet (`RunnerSpawner.reserve`).

    Attributes:
        files: the runner's files (pushed or read at boot).
        registration: its GitHub registration.
        baked: whether its image has the runner application baked in.
        stages: its stage timings so far.
        started_at: when its spawn began (epoch seconds).
    """

    files: Mapping[str, tuple[bytes, int]] = dataclasses.field(repr=False)
    registration: Registration = dataclasses.field(repr=False)
    stages: _Stages = dataclasses.field(repr=False)
    baked: bool = False
    started_at: float = 0.0


class ReservingSpawner:
    """A spawner that only reserves: registers and creates, leaving the start to `bring_up`.

    The replenisher's batches create their instances under the manager's lock with it, and
    start them after releasing the lock (`RunnerManager.replenish`).
    """

    def __init__(self, spawner: RunnerSpawner):
        """Wrap a spawner.

        Args:
            spawner: the spawner whose `reserve` is called.
        """
        self._spawner = spawner

    def spawn(self, instance_type: InstanceType, config_hash: str) -> PendingRunner:
        """Register a runner and create its instance, tagged to be started after the lock.

        Args:
            instance_type: container or virtual machine.
            config_hash: the configuration hash to tag it with.

        Returns:
            The runner, not started.
        """
        return self._spawner.reserve(instance_type, config_hash, start_later=True)


def new_runner_name(prefix: str) -> str:
    """Make a fresh runner name.

    Args:
        prefix: the manager's name prefix.

    Returns:
        `<prefix>-<12 random hex characters>`.
    """
    return f"{prefix}-{secrets.token_hex(RUNNER_SUFFIX_HEX // 2)}"


def runner_labels(config: ManagerConfig, instance_type: InstanceType) -> list[str]:
    """The labels of a runner: application, image, instance type, then the configured ones.

    Args:
        config: the manager configuration.
        instance_type: container or virtual machine.

    Returns:
        The labels, without duplicates (compared case-insensitively, as GitHub does).
    """
    labels: list[str] = []
    seen: set[str] = set()
    for label in (
        config.flavor,
        config.runners.base_image,
        instance_type.value,
        *config.runners.labels,
    ):
        if label.lower() not in seen:
            seen.add(label.lower())
            labels.append(label)
    return labels


def runner_environment(config: ManagerConfig) -> dict[str, str]:
    """The variables every job of a runner sees (proxies, mirror, tmate server).

    Args:
        config: the manager configuration.

    Returns:
        Variable names and values.
    """
    env: dict[str, str] = {}
    proxy = config.proxy
    # With aproxy the traffic is redirected transparently: proxy variables on top would send
    # it through the proxy twice (a bug of the original charm).
    if proxy.configured and not proxy.aproxy:
        if proxy.http:
            env["HTTP_PROXY"] = env["http_proxy"] = proxy.http
        if proxy.https:
            env["HTTPS_PROXY"] = env["https_proxy"] = proxy.https
        env["NO_PROXY"] = env["no_proxy"] = proxy.bypass
    if config.dockerhub_mirror:
        env["DOCKERHUB_MIRROR"] = config.dockerhub_mirror
        env["CONTAINER_REGISTRY_URL"] = config.dockerhub_mirror
    if config.ssh_debug:
        tmate = config.ssh_debug[0]
        env["TMATE_SERVER_HOST"] = tmate.host
        env["TMATE_SERVER_PORT"] = str(tmate.port)
        env["TMATE_SERVER_RSA_FINGERPRINT"] = tmate.rsa_fingerprint
        env["TMATE_SERVER_ED25519_FINGERPRINT"] = tmate.ed25519_fingerprint
    for key, value in env.items():
        if "\n" in value or "\r" in value or '"' in value:
            raise RunnerCreateError(f"the value of {key} contains a quote or a line break")
    return env


def boot_config(files: Mapping[str, tuple[bytes, int]], jit_config: str) -> dict[str, str]:
    """The instance configuration keys a runner from a baked image boots from.

    Args:
        files: path inside the instance → (content, mode), written by the boot program.
        jit_config: the runner's just-in-time configuration.

    Returns:
        The keys (read through /dev/lxd, which must be on), the files compressed.
    """
    document = {path: [mode, content.decode()] for path, (content, mode) in files.items()}
    packed = gzip.compress(json.dumps(document, sort_keys=True).encode(), mtime=0)
    return {
        BOOT_KEYS["files_key"]: base64.b64encode(packed).decode(),
        BOOT_KEYS["jit_key"]: jit_config,
        "security.devlxd": "true",
    }


def docker_files(config: ManagerConfig) -> dict[str, tuple[bytes, int]]:
    """Docker's configuration in a runner: registry mirror and proxies.

    Args:
        config: the manager configuration.

    Returns:
        Path inside the instance → (content, mode); nothing when neither is set.
    """
    files: dict[str, tuple[bytes, int]] = {}
    if config.dockerhub_mirror:
        daemon = {"registry-mirrors": [config.dockerhub_mirror]}
        files[DOCKER_DAEMON_PATH] = (json.dumps(daemon, indent=2).encode() + b"\n", 0o644)
    proxy = config.proxy
    if proxy.configured and not proxy.aproxy:
        lines = ["[Service]"]
        for key, value in (
            ("HTTP_PROXY", proxy.http),
            ("HTTPS_PROXY", proxy.https),
            ("NO_PROXY", proxy.bypass),
        ):
            if value:
                lines.append(f'Environment="{key}={value}"')
        files[DOCKER_PROXY_DROPIN] = (("\n".join(lines) + "\n").encode(), 0o644)
        client = {
            "proxies": {
                "default": {
                    key: value
                    for key, value in (
                        ("httpProxy", proxy.http),
                        ("httpsProxy", proxy.https),
                        ("noProxy", proxy.bypass),
                    )
                    if value
                }
            }
        }
        files[DOCKER_CLIENT_CONFIG] = (json.dumps(client, indent=2).encode() + b"\n", 0o644)
    return files


def _boot_files(files: Mapping[str, tuple[bytes, int]]) -> dict[str, tuple[bytes, int]]:
    """The files a runner from a baked image gets at boot: its unit is in the image already."""
    return {path: value for path, value in files.items() if path != UNIT_PATH}


@dataclasses.dataclass
class _Made:
    """What a spawn step has made (see `RunnerSpawner._undone_on_failure`).

    Attributes:
        instance: whether the instance exists.
    """

    instance: bool = False


class _Stages:
    """Seconds per stage of a spawn, and the wall-clock time each stage ended."""

    def __init__(
        self, monotonic: Callable[[], float], now: Callable[[], datetime.datetime]
    ) -> None:
        self._monotonic = monotonic
        self._now = now
        self._start = monotonic()
        self.timings: dict[str, float] = {}
        self.marks: dict[str, float] = {}

    def lap(self, stage: str) -> None:
        now = self._monotonic()
        self.timings[stage] = round(now - self._start, 3)
        self._start = now
        self.marks[stage] = self._now().timestamp()


class RunnerSpawner:
    """Creates runners of one manager."""

    def __init__(
        self,
        config: ManagerConfig,
        lxd: LxdClient,
        github: GitHubClient,
        renderer: TemplateRenderer,
        *,
        runner_tarball: bytes | Path | Callable[[], bytes],
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        wall_clock: Callable[[], datetime.datetime] | None = None,
        exchange: RunnerExchange | None = None,
        runner_sha256: str | None = None,
    ):
        """Create the spawner.

        Args:
            config: the manager configuration.
            lxd: the LXD client.
            github: the GitHub client.
            renderer: the template renderer.
            runner_tarball: the runner application tarball: a file, streamed into each
                instance (the real archive is well over 100 MB: never held in memory), or
                its bytes, or a function reading them.
            monotonic: a monotonic clock for timings.
            sleep: the sleep function (tests pass a fake).
            wall_clock: the current time (tests pass a fake).
            exchange: per-runner host directories for metrics (None: no metrics).
            runner_sha256: the SHA-256 of the runner application: an image with this one baked
                in gets no files pushed (None: unknown, always push).
        """
        self._config = config
        self._lxd = lxd
        self._github = github
        self._renderer = renderer
        self._tarball = runner_tarball
        self._monotonic = monotonic
        self._sleep = sleep
        self._now = wall_clock or (lambda: datetime.datetime.now(datetime.timezone.utc))
        self._exchange = exchange
        self._runner_sha256 = runner_sha256
        # Instance type → the properties of its image ({} when it cannot be looked up).
        self._baked: dict[InstanceType, Mapping[str, str]] = {}
        self._baked_lock = threading.Lock()

    def baked_runner(self, instance_type: InstanceType) -> str:
        """The SHA-256 of the runner application baked into the image of a type (once per spawner).

        Args:
            instance_type: container or virtual machine.

        Returns:
            The image's recorded SHA-256; empty when the image records none (it predates baking,
            or was built before a runner application was cached) or cannot be looked up.
        """
        return self._image_properties(instance_type).get(PROPERTY_RUNNER_SHA256, "")

    def _image_properties(self, instance_type: InstanceType) -> Mapping[str, str]:
        """The properties of the image of a type, looked up once per spawner."""
        with self._baked_lock:
            if instance_type not in self._baked:
                self._baked[instance_type] = self._look_up_image(instance_type)
            return self._baked[instance_type]

    def _look_up_image(self, instance_type: InstanceType) -> Mapping[str, str]:
        alias = runner_image(self._config, instance_type)
        try:
            fingerprint = self._lxd.image_fingerprint(alias)
            images = self._lxd.list_images() if fingerprint else []
        except RunnerManagerError as exc:
            logger.warning("cannot look up image %s (%s): pushing the runner", alias, exc)
            return {}
        for image in images:
            if image.fingerprint == fingerprint:
                return dict(image.properties)
        return {}

    def _use_baked(self, instance_type: InstanceType, registration: Registration) -> bool:
        """Whether a runner boots from its image's baked runner with no file pushed."""
        return registration.jit_config is not None and self._current_baked(instance_type)

    def _current_baked(self, instance_type: InstanceType) -> bool:
        """Whether the type is a container whose image has the current runner baked in."""
        return (
            instance_type is InstanceType.CONTAINER
            and bool(self._runner_sha256)
            and self.baked_runner(instance_type) == self._runner_sha256
        )

    def standby_possible(self, instance_type: InstanceType) -> bool:
        """Whether runners of a type can have standbys: containers from a current baked image.

        Args:
            instance_type: container or virtual machine.

        Returns:
            True when the type's image has the current runner application baked in, and a boot
            program that waits for a runner's configuration (not one of an older build).
        """
        return (
            self._current_baked(instance_type)
            and self._image_properties(instance_type).get(PROPERTY_BOOT) == BOOT_WAITS
        )

    def _push_tarball(self, name: str) -> None:
        destination = f"{DIST_DIR}/runner.tar.gz"
        if isinstance(self._tarball, Path):
            try:
                with self._tarball.open("rb") as stream:
                    self._lxd.push_file(name, destination, stream, 0o600)
            except OSError as exc:
                raise RunnerCreateError(f"cannot read the runner application: {exc}") from exc
            return
        if callable(self._tarball):
            self._tarball = self._tarball()
        self._lxd.push_file(name, destination, self._tarball, 0o600)

    def instance_spec(
        self,
        name: str,
        instance_type: InstanceType,
        config_hash: str,
        extra_devices: Mapping[str, dict[str, str]] | None = None,
        jit: bool = True,
        runner_id: int | None = None,
        boot: Mapping[str, str] | None = None,
    ) -> InstanceSpec:
        """Describe the LXD instance of a new runner.

        Args:
            name: the runner name.
            instance_type: container or virtual machine.
            config_hash: the configuration hash to tag it with.
            extra_devices: more devices (the metrics exchange directory).
            jit: whether the runner was registered (just in time) before its instance exists.
            runner_id: GitHub's id of the runner, when registered before its instance.
            boot: the configuration keys a runner from a baked image boots from (`boot_config`).

        Returns:
            The instance specification.
        """
        config = self._config
        instance_config = {
            TAG_UNIT: config.unit,
            TAG_CONFIG_HASH: config_hash,
            TAG_CREATED_AT: self._now().isoformat(),
            TAG_TYPE: instance_type.value,
            TAG_REGISTRATION: "jit" if jit else "token",
            # Where it registers: found there even after the path option changed.
            TAG_GITHUB_URL: config.github.url,
            TAG_GITHUB_PATH: str(config.github.github_path),
            "limits.cpu": str(config.runners.cpu),
            "limits.memory": config.runners.memory,
        }
        if runner_id is not None:
            instance_config[TAG_RUNNER_ID] = str(runner_id)
        instance_config.update(boot or {})
        if instance_type is InstanceType.CONTAINER:
            # Jobs run docker; nesting lets an unprivileged container do so.
            instance_config["security.nesting"] = "true"
            if config.runners.privileged:
                instance_config["security.privileged"] = "true"
        devices: dict[str, dict[str, str]] = {"root": root_disk(config)}
        # A GitHub server or a proxy on the host's loopback is reached at the same address.
        devices.update(
            loopback_proxy_devices([config.github.url, config.proxy.http, config.proxy.https])
        )
        devices.update(extra_devices or {})
        return InstanceSpec(
            name=name,
            instance_type=instance_type,
            image=runner_image(config, instance_type),
            profiles=config.lxd.profiles,
            config=instance_config,
            devices=devices,
            ephemeral=True,
        )

    def render_files(
        self, name: str, instance_type: InstanceType, labels: list[str]
    ) -> dict[str, tuple[bytes, int]]:
        """Render the files a runner instance gets.

        Args:
            name: the runner name.
            instance_type: container or virtual machine.
            labels: the runner labels.

        Returns:
            Path inside the instance → (content, mode).
        """
        config = self._config
        path = config.github.github_path
        env = runner_environment(config)
        context = {
            "name": name,
            "instance_type": instance_type.value,
            "labels": labels,
            "runner_user": RUNNER_USER,
            "registration_url": f"{config.github.url}/{path}",
            "runner_group": path.group if isinstance(path, GitHubOrg) else "",
            "environment": env,
            "dockerhub_mirror": config.dockerhub_mirror or "",
            "aproxy_target": config.proxy.aproxy_target if config.proxy.aproxy else "",
            "aproxy_port": APROXY_PORT,
            "log_limit": LOG_LIMIT,
        }
        render = self._renderer.render
        files = {
            f"{DIST_DIR}/start.sh": (render("runner-start.sh.j2", **context).encode(), 0o755),
            f"{DIST_DIR}/pre-job.sh": (render("pre-job.sh.j2", **context).encode(), 0o755),
            f"{DIST_DIR}/post-job.sh": (render("post-job.sh.j2", **context).encode(), 0o755),
            f"{DIST_DIR}/runner.env": (render("runner-env.j2", **context).encode(), 0o644),
            "/etc/environment": (render("environment.j2", **context).encode(), 0o644),
            UNIT_PATH: (render("runner.service.j2", **context).encode(), 0o644),
        }
        files.update(docker_files(config))
        if config.proxy.aproxy:
            files[APROXY_RULES] = (render("aproxy.nft.j2", **context).encode(), 0o644)
        return files

    def spawn(self, instance_type: InstanceType, config_hash: str) -> SpawnResult:
        """Create, register and start one runner.

        Args:
            instance_type: container or virtual machine.
            config_hash: the configuration hash to tag it with.

        Returns:
            The new runner.

        Raises:
            RunnerCreateError: if a step failed; the runner's instance and GitHub registration
                have been removed.
            GitHubError: if GitHub refused the registration (token, permission, path, rate
                limit); nothing was created.
        """
        return self.bring_up(self.reserve(instance_type, config_hash))

    def reserve(
        self, instance_type: InstanceType, config_hash: str, start_later: bool = False
    ) -> PendingRunner:
        """Register one runner and create its instance, not started (the first half of `spawn`).

        Args:
            instance_type: container or virtual machine.
            config_hash: the configuration hash to tag it with.
            start_later: the instance is started after the manager's lock is released: it is
                tagged so that a run holding the lock takes it for one in creation, not for a
                stopped leftover (`planner.in_creation`).

        Returns:
            The runner, its instance created; `bring_up` starts it.

        Raises:
            RunnerCreateError: if a step failed; what it made has been removed.
            GitHubError: if GitHub refused the registration; nothing was created.
        """
        name = new_runner_name(self._config.name_prefix)
        labels = runner_labels(self._config, instance_type)
        stages = _Stages(self._monotonic, self._now)
        started_at = self._now().timestamp()
        registration = self._register(name, labels)
        stages.lap("register")
        with self._undone_on_failure(name, registration, "cannot create runner {name}") as made:
            files = self.render_files(name, instance_type, labels)
            baked = self._use_baked(instance_type, registration)
            spec = self.instance_spec(
                name,
                instance_type,
                config_hash,
                self._exchange_devices(name),
                jit=registration.jit_config is not None,
                runner_id=registration.runner_id,
                boot=boot_config(_boot_files(files), registration.jit_config or "")
                if baked
                else None,
            )
            if start_later:
                spec.config[TAG_START_AFTER_LOCK] = "true"
            self._lxd.create_instance(spec)
            made.instance = True
            stages.lap("create")
        return PendingRunner(
            name=name,
            instance_type=instance_type,
            timings=stages.timings,
            files=files,
            registration=registration,
            baked=baked,
            stages=stages,
            started_at=started_at,
        )

    def bring_up(self, pending: PendingRunner) -> SpawnResult:
        """Start a reserved runner's instance (the second half of `spawn`).

        Args:
            pending: the runner `reserve` made.

        Returns:
            The new runner.

        Raises:
            RunnerCreateError: if a step failed; the runner's instance and GitHub registration
                have been removed.
        """
        name, instance_type, stages = pending.name, pending.instance_type, pending.stages
        with self._undone_on_failure(
            name, pending.registration, "cannot create runner {name}", True
        ):
            if pending.baked:
                self._lxd.start_instance(name)
                stages.lap("start")
            elif instance_type is InstanceType.CONTAINER:
                self._bring_up_container(name, pending.files, pending.registration, stages)
            else:
                self._bring_up_vm(name, pending.files, pending.registration, stages)
        self._record_installed(name, instance_type, pending.started_at, stages)
        logger.info("runner %s (%s) created: %s", name, instance_type.value, stages.timings)
        return SpawnResult(name=name, instance_type=instance_type, timings=stages.timings)

    def create_standby(self, instance_type: InstanceType, config_hash: str) -> str:
        """Create and start a standby: a runner instance without registration or configuration.

        Its boot program waits for the keys `adopt_standby` sets. It is tagged as started after
        the lock, so a run holding the lock takes it for one in creation until it runs.

        Args:
            instance_type: container (the only type with standbys).
            config_hash: the configuration hash to tag it with.

        Returns:
            The standby's name (the name of the runner it becomes).

        Raises:
            RunnerCreateError: if a step failed; what it made has been removed.
        """
        name = new_runner_name(self._config.name_prefix)
        with self._undone_on_failure(name, Registration(), "cannot create standby {name}") as made:
            spec = self.instance_spec(
                name, instance_type, config_hash, self._exchange_devices(name), jit=False
            )
            spec.config.update(
                {TAG_STANDBY: "true", TAG_START_AFTER_LOCK: "true", "security.devlxd": "true"}
            )
            self._lxd.create_instance(spec)
            made.instance = True
            self._lxd.start_instance(name)
        return name

    def adopt_standby(self, name: str, instance_type: InstanceType) -> SpawnResult:
        """Make a standby a runner: register it just in time and hand it its configuration.

        The configuration goes in as instance keys, live: the standby's waiting boot program
        reads them through /dev/lxd and starts the runner. Its creation time becomes now (a
        runner's age is counted from here).

        Args:
            name: the standby (its name becomes the runner's).
            instance_type: its instance type.

        Returns:
            The new runner, with its stage timings (`register`, `adopt`).

        Raises:
            RunnerCreateError: if a step failed; the standby and the registration are removed.
            GitHubError: if GitHub refused the registration; the standby is left as it was.
        """
        labels = runner_labels(self._config, instance_type)
        stages = _Stages(self._monotonic, self._now)
        started_at = self._now().timestamp()
        registration = self._register(name, labels)
        stages.lap("register")
        with self._undone_on_failure(
            name, registration, "cannot make standby {name} a runner", True
        ):
            if registration.jit_config is None:
                raise RunnerCreateError("GitHub gave no just-in-time configuration")
            values: dict[str, str | None] = {
                **boot_config(
                    _boot_files(self.render_files(name, instance_type, labels)),
                    registration.jit_config,
                ),
                TAG_STANDBY: None,
                TAG_START_AFTER_LOCK: None,
                TAG_REGISTRATION: "jit",
                TAG_CREATED_AT: self._now().isoformat(),
            }
            if registration.runner_id is not None:
                values[TAG_RUNNER_ID] = str(registration.runner_id)
            self._lxd.update_instance_config(name, values)
            stages.lap("adopt")
        self._record_installed(name, instance_type, started_at, stages)
        logger.info("standby %s is runner now: %s", name, stages.timings)
        return SpawnResult(name=name, instance_type=instance_type, timings=stages.timings)

    def discard_standby(self, name: str) -> None:
        """Delete a standby (it has no registration) and its host directory.

        Args:
            name: the standby.

        Raises:
            LxdError: if LXD fails to delete it.
        """
        self._lxd.delete_instance(name)
        if self._exchange is not None:
            self._exchange.delete(name)

    def _exchange_devices(self, name: str) -> dict[str, dict[str, str]]:
        """The metrics exchange directory of a runner, as a device (none without metrics)."""
        if self._exchange is None:
            return {}
        try:
            return {"metrics-exchange": self._exchange.create(name)}
        except RunnerManagerError as exc:
            logger.warning("runner %s gets no metrics exchange: %s", name, exc)
            return {}

    def _bring_up_container(
        self,
        name: str,
        files: Mapping[str, tuple[bytes, int]],
        registration: Registration,
        stages: _Stages,
    ) -> None:
        """Push the files into the stopped container, start it, configure it (token flow)."""
        # An image with a runner baked in has the unit enabled already.
        enable = registration.jit_config is not None and not self.baked_runner(
            InstanceType.CONTAINER
        )
        self._push(name, files, registration, enable=enable)
        stages.lap("push")
        self._lxd.start_instance(name)
        stages.lap("start")
        if registration.registration_token:
            self._wait_for_agent(name)
            self._configure(name, registration.registration_token)
            self._start_unit(name)
            stages.lap("configure")

    def _bring_up_vm(
        self,
        name: str,
        files: Mapping[str, tuple[bytes, int]],
        registration: Registration,
        stages: _Stages,
    ) -> None:
        """Start the VM, push the files once its agent answers, configure, start the unit."""
        self._lxd.start_instance(name)
        stages.lap("start")
        self._wait_for_agent(name)
        self._push(name, files, registration, enable=False)
        stages.lap("push")
        if registration.registration_token:
            self._configure(name, registration.registration_token)
        self._start_unit(name)
        stages.lap("configure")

    def _record_installed(
        self, name: str, instance_type: InstanceType, started_at: float, stages: _Stages
    ) -> None:
        if self._exchange is None:
            return
        # Containers start right after the push (or the creation, from a baked image), VMs
        # right after creation.
        start_requested = stages.marks.get("create")
        if instance_type is InstanceType.CONTAINER and "push" in stages.marks:
            start_requested = stages.marks["push"]
        # A standby made a runner starts its runner when it gets its configuration.
        start_requested = stages.marks.get("adopt", start_requested)
        try:
            self._exchange.record_installed(
                name,
                Installed(
                    started=started_at,
                    finished=self._now().timestamp(),
                    instance_type=instance_type.value,
                    stages=dict(stages.timings),
                    start_requested=start_requested,
                ),
            )
        except (OSError, ValueError) as exc:
            logger.warning("cannot record the creation of runner %s: %s", name, exc)

    def _push(
        self,
        name: str,
        files: Mapping[str, tuple[bytes, int]],
        registration: Registration,
        enable: bool,
    ) -> None:
        # Only the directories some file needs: every call into a stopped container costs.
        for directory in _DIRECTORIES:
            if directory == DIST_DIR or any(path.startswith(f"{directory}/") for path in files):
                self._lxd.make_directory(name, directory, 0o755)
        self._push_tarball(name)
        for path, (content, mode) in files.items():
            self._lxd.push_file(name, path, content, mode)
        if registration.jit_config:
            # Read and deleted by start.sh; only root can read it meanwhile.
            self._lxd.push_file(
                name, f"{DIST_DIR}/jitconfig", registration.jit_config.encode(), 0o600
            )
        if enable:
            self._lxd.push_symlink(name, UNIT_WANTS_PATH, UNIT_PATH)

    def _wait_for_agent(self, name: str) -> None:
        """Wait until commands run in the instance and systemd has finished booting."""
        wait_until_booted(
            self._lxd, name, AGENT_TIMEOUT, monotonic=self._monotonic, sleep=self._sleep
        )

    def _configure(self, name: str, token: str) -> None:
        """Run config.sh with the registration token (given on stdin, never in a command line)."""
        result = self._lxd.execute(
            name,
            [
                "/bin/bash",
                "-c",
                'printf "%s\\n" "$RUNNER_TOKEN" | /opt/github-runner/start.sh configure',
            ],
            env={"RUNNER_TOKEN": token},
            timeout=300,
        )
        if result.exit_code != 0:
            detail = (result.stderr or result.stdout).strip().splitlines()[-3:]
            raise RunnerCreateError(
                f"config.sh failed with exit code {result.exit_code}: {' | '.join(detail)}"
            )

    def _start_unit(self, name: str) -> None:
        result = self._lxd.execute(
            name,
            [
                "/bin/sh",
                "-c",
                # Docker (if the image has it) picks up the pushed mirror and proxy settings.
                "systemctl daemon-reload && { systemctl try-restart docker.service || true; } "
                "&& systemctl enable --now github-runner",
            ],
            timeout=120,
        )
        if result.exit_code != 0:
            raise RunnerCreateError(
                f"cannot start the runner service: {(result.stderr or result.stdout).strip()}"
            )

    def _register(self, name: str, labels: list[str]) -> Registration:
        """Register a runner; if that fails, leave no registration GitHub may have made."""
        try:
            return self._github.register_runner(name, labels)
        except GitHubError as exc:
            if not isinstance(exc, (TokenError, PermissionDeniedError, RateLimitError)):
                # GitHub may have created the runner before the answer was lost (a retry then
                # finds the name taken): delete what it made rather than leave a ghost.
                self._forget_registration(name)
            raise

    def _forget_registration(self, name: str) -> None:
        """Delete the registration GitHub may have made for a runner whose registration failed."""
        try:
            runner = self._github.find_runner(name)
            if runner is not None:
                self._github.delete_runner(runner.id)
                logger.info("deleted the registration GitHub made for failed runner %s", name)
        except RunnerManagerError as exc:
            # An offline registration without an instance: the next reconciliation deletes it.
            logger.warning("cannot check for a registration of failed runner %s: %s", name, exc)

    @contextlib.contextmanager
    def _undone_on_failure(
        self, name: str, registration: Registration, failure: str, instance: bool = False
    ) -> Iterator[_Made]:
        """Undo what a step of a spawn made when it fails (see `_cleanup`).

        A manager error comes out as a RunnerCreateError saying `failure`; any other exception
        (an interrupt) as it is.

        Args:
            name: the runner (or standby).
            registration: its GitHub registration (empty: none).
            failure: what failed, for the error, with `{name}` for the runner's name.
            instance: whether its instance exists already; the step sets `made.instance` once
                it creates it.

        Yields:
            What the step has made so far.
        """
        made = _Made(instance)
        try:
            yield made
        except RunnerManagerError as exc:
            self._cleanup(name, made.instance, registration)
            raise RunnerCreateError(f"{failure.format(name=name)}: {exc}") from exc
        except BaseException:
            self._cleanup(name, made.instance, registration)
            raise

    def _cleanup(self, name: str, created: bool, registration: Registration) -> None:
        """Remove what a failed spawn made; failures here are logged, never raised."""
        if created:
            try:
                self._lxd.delete_instance(name)
            except RunnerManagerError as exc:
                logger.error("cannot delete the instance of failed runner %s: %s", name, exc)
        if registration.runner_id is not None:
            with contextlib.suppress(RunnerManagerError):
                self._github.delete_runner(registration.runner_id)
        if self._exchange is not None:
            self._exchange.delete(name)
