# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""Building the runner image: a builder instance, a build script, a published, versioned image.

A build starts a builder instance (a container, or a virtual machine for VM runners: an image
of one type cannot start an instance of the other) from the configured source: an image already
on the host, or an Ubuntu release pulled from the image server. It pushes the rendered
build script (the package's `templates/build-image.sh.j2`) in, with the cached runner
application when there is one, runs it with a time limit, stops the builder and publishes it
under a versioned alias (`<stable>-<YYYYmmddHHMMSS>`). Then it moves the stable alias
(`<name_prefix>-<base image>`, `-vm` for VMs) to the new image in one LXD update, so a runner
created meanwhile gets the old image or the new one, never none. Older versions are deleted,
keeping the previous one. The builder is always deleted, whatever happened.

The build bakes in everything that is the same for every runner: the runner application (its
version and checksum are image properties), the enabled runner unit and its boot program
(`RUNNER_BOOT`), which reads the runner's files and just-in-time configuration from the
instance's `user.github-runner.*` keys (`BOOT_KEYS`) through LXD's `/dev/lxd` at boot. A new
runner application (`update-dependencies`) therefore means a new image.

Runners start from the stable alias, and the image's fingerprint is part of their configuration
hash: once a new image is published, idle runners are replaced; busy ones finish their job first.

Builds of one manager never overlap: the command line holds a lock of its own (not the manager's,
so reconciliations keep running during a build that takes minutes).
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import logging
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pydantic

from .binary import CachedRunner, read_cache
from .config import ManagerConfig, config_hash
from .errors import ImageBuildError, LxdError, RunnerManagerError
from .lxd import (
    TAG_BUILDER,
    InstanceSpec,
    LxdClient,
    loopback_proxy_devices,
    wait_until_booted,
)
from .models import InstanceType
from .report import ErrorEntry
from .templates import TemplateRenderer
from .utils import atomic_write

logger = logging.getLogger(__name__)

# What users of GitHub-hosted runners expect to find (yq comes as a verified download).
DEFAULT_PACKAGES = (
    "build-essential",
    "ca-certificates",
    "curl",
    "docker.io",
    "git",
    "jq",
    "npm",
    "python3-pip",
    "shellcheck",
    "unzip",
    "wget",
)
# The user jobs run as, as in the original charm (its home is the runner's home).
RUNNER_USER = "ubuntu"
# Run by docker.service at every start in the image: accept everything in DOCKER-USER, once.
DOCKER_USER_ACCEPT = (
    "iptables -C DOCKER-USER -j ACCEPT 2>/dev/null || iptables -I DOCKER-USER -j ACCEPT"
)
# `<remote>:<series>` sources, as in `lxc launch ubuntu:jammy`.
REMOTES = {
    "ubuntu": "https://cloud-images.ubuntu.com/releases",
    "ubuntu-daily": "https://cloud-images.ubuntu.com/daily",
}
SCRIPT_TEMPLATE = "build-image.sh.j2"
# The baked runner's boot program: reads the runner's configuration from /dev/lxd, then runs it.
RUNNER_BOOT = "/opt/github-runner/boot"
# The instance configuration keys a runner from a baked image reads at boot through /dev/lxd
# (only the instance itself can read its own keys there).
BOOT_KEYS = {
    "files_key": "user.github-runner.files",
    "jit_key": "user.github-runner.jitconfig",
}
SCRIPT_PATH = "/root/github-runner-build-image.sh"
RECORD_FILE = "image.json"
RUNNER_CACHE_DIR = "runner-binary"
LOCK_FILE = "image.lock"
# Image properties naming the manager that built an image.
PROPERTY_UNIT = "github-runner.unit"
PROPERTY_ALIAS = "github-runner.alias"
# Image properties naming the runner application baked into an image (absent: none is).
PROPERTY_RUNNER_VERSION = "github-runner.runner-version"
PROPERTY_RUNNER_SHA256 = "github-runner.runner-sha256"
# Set on an image whose baked boot program waits for a runner's configuration when started
# without it (a standby, see `standby.py`); images built before it exit instead.
PROPERTY_BOOT = "github-runner.boot"
BOOT_WAITS = "waits-for-configuration"
# Where the build gets the runner application (pushed into the running builder, then unpacked).
RUNNER_ARCHIVE_PATH = "/root/github-runner-runner.tar.gz"
# Attempts and delay (seconds) of the script's network steps (apt, the yq download).
ATTEMPTS = 5
RETRY_DELAY = 10
# How long the builder may take to boot, and to shut down before it is stopped forcefully.
BOOT_TIMEOUT = 300.0
STOP_TIMEOUT = 120.0
# A failed build is started again by the charm after this long (the timer retries anyway).
RETRY_FAILED_AFTER = datetime.timedelta(hours=1)

_SERIES_RE = re.compile(r"^(?:[a-z]+|\d{2}\.\d{2})$")
_UNSAFE_ALIAS_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
_UNSAFE_VALUE_CHARS = re.compile(r"[\s\"'\\]")


@dataclasses.dataclass(frozen=True)
class ImageSource:
    """Where a build starts from.

    Attributes:
        alias: the image alias (or series name on the image server).
        server: the simplestreams server; None for an image on this LXD.
    """

    alias: str
    server: str | None = None

    def __str__(self) -> str:
        """Describe the source for logs and the image's record."""
        return f"{self.alias} from {self.server}" if self.server else self.alias


class BuiltImage(pydantic.BaseModel):
    """An image a build published.

    Attributes:
        instance_type: `container` or `virtual-machine`.
        alias: the stable alias runners start from.
        version: the image's versioned alias.
        fingerprint: the image's fingerprint.
        source: what the build started from.
        duration: seconds the build took.
    """

    instance_type: str
    alias: str
    version: str
    fingerprint: str
    source: str
    duration: float


class BuildRecord(pydantic.BaseModel):
    """The outcome of the last build, written atomically next to the manager's report.

    Attributes:
        ok: whether every image was built.
        started_at: when the build started.
        finished_at: when it finished.
        recipe: the hash of everything the build depended on (see `recipe`).
        images: the images published.
        pruned: the versioned aliases of the old images deleted.
        errors: what failed.
        note: why nothing was built, when nothing was.
    """

    ok: bool = True
    started_at: datetime.datetime
    finished_at: datetime.datetime | None = None
    recipe: str
    images: list[BuiltImage] = []
    pruned: list[str] = []
    errors: list[ErrorEntry] = []
    note: str | None = None

    def write(self, path: Path) -> None:
        """Write the record atomically.

        Args:
            path: the record file.
        """
        atomic_write(path, self.model_dump_json(indent=2).encode() + b"\n", mode=0o644)


def read_record(path: Path) -> BuildRecord | None:
    """Read the last build's record.

    Args:
        path: the record file.

    Returns:
        The record, or None when there is none or it cannot be read.
    """
    try:
        return BuildRecord.model_validate_json(path.read_bytes())
    except (OSError, ValueError):
        return None


def record_path(config: ManagerConfig) -> Path:
    """The build record of a manager."""
    return config.state_dir / RECORD_FILE


def lock_path(config: ManagerConfig) -> Path:
    """The lock keeping a manager's builds from overlapping."""
    return config.state_dir / LOCK_FILE


def runner_cache_dir(config: ManagerConfig) -> Path:
    """The manager's verified runner application cache (see `binary.RunnerBinaryCache`)."""
    return config.state_dir / RUNNER_CACHE_DIR


def root_disk(config: ManagerConfig) -> dict[str, str]:
    """The root disk device of runners and builders: the configured pool and size.

    A VM image's disk is as large as its builder's, so the builder's must not exceed the runners'.

    Args:
        config: the manager configuration.

    Returns:
        The LXD disk device.
    """
    return {
        "type": "disk",
        "path": "/",
        "pool": config.lxd.storage_pool,
        "size": config.runners.disk,
    }


def stable_alias(config: ManagerConfig, instance_type: InstanceType) -> str:
    """The alias runners of a type start from when the image is built.

    It is scoped by the manager's name prefix, so two applications on one host never replace or
    prune each other's images.

    Args:
        config: the manager configuration.
        instance_type: container or virtual machine.

    Returns:
        `<name_prefix>-<base image>` for containers, with `-vm` appended for VMs.
    """
    base = _UNSAFE_ALIAS_CHARS.sub("-", config.runners.base_image).strip("-")
    alias = f"{config.name_prefix}-{base}"
    return alias if instance_type is InstanceType.CONTAINER else f"{alias}-vm"


def runner_image(config: ManagerConfig, instance_type: InstanceType) -> str:
    """The image alias runners of a type start from.

    Args:
        config: the manager configuration.
        instance_type: container or virtual machine.

    Returns:
        The built image's stable alias when building is on, else `runners.base_image`.
    """
    if not config.image.build:
        return config.runners.base_image
    return stable_alias(config, instance_type)


def needed_types(config: ManagerConfig) -> list[InstanceType]:
    """The instance types an image is built for: those with runners configured.

    Args:
        config: the manager configuration.

    Returns:
        The types, containers first.
    """
    return [t for t in InstanceType if config.runners.count(t) > 0]


def packages(config: ManagerConfig) -> tuple[str, ...]:
    """The packages the build installs.

    Args:
        config: the manager configuration.

    Returns:
        The configured list, or the default one; with `yq` when it comes from the distribution,
        and `nftables` when the runners use aproxy (its redirect rules need it).
    """
    chosen = config.image.packages if config.image.packages is not None else DEFAULT_PACKAGES
    if config.image.yq == "package" and "yq" not in chosen:
        chosen = (*chosen, "yq")
    if config.proxy.aproxy and "nftables" not in chosen:
        chosen = (*chosen, "nftables")
    return tuple(chosen)


def apt_proxies(config: ManagerConfig) -> tuple[str, str]:
    """The proxies apt uses for http and https sources, in the builder and the runners.

    Args:
        config: the manager configuration.

    Returns:
        The http and the https proxy (empty strings when none).
    """
    if config.image.apt_proxy:
        return config.image.apt_proxy, config.image.apt_proxy
    return config.proxy.http or "", config.proxy.https or ""


def builder_environment(config: ManagerConfig) -> dict[str, str]:
    """The proxy variables of the build (and of the image's /etc/environment).

    The builder uses the proxies explicitly even with aproxy: it has no transparent redirect.

    Args:
        config: the manager configuration.

    Returns:
        Variable names and values; empty without a proxy.
    """
    proxy = config.proxy
    env: dict[str, str] = {}
    if proxy.http:
        env["http_proxy"] = env["HTTP_PROXY"] = proxy.http
    if proxy.https:
        env["https_proxy"] = env["HTTPS_PROXY"] = proxy.https
    if env:
        env["no_proxy"] = env["NO_PROXY"] = proxy.bypass
    return env


def yq_downloads(config: ManagerConfig) -> dict[str, dict[str, str]]:
    """Where the build downloads yq from, per Debian architecture.

    Args:
        config: the manager configuration.

    Returns:
        Architecture → `url` and `sha256`; empty unless yq is downloaded.
    """
    if config.image.yq != "download":
        return {}
    return {
        arch: {"url": config.image.yq_url.replace("{arch}", arch), "sha256": digest}
        for arch, digest in sorted(config.image.yq_sha256.items())
    }


def recipe(config: ManagerConfig) -> str:
    """Hash everything a build depends on, to tell when the image must be built again.

    Args:
        config: the manager configuration.

    Returns:
        16 hex characters.

    Raises:
        ImageBuildError: if the build script template cannot be read.
    """
    types = needed_types(config)
    runner = read_cache(runner_cache_dir(config))
    data = {
        "source": config.image.source or config.runners.base_image,
        "server": config.image.server,
        "alias": [stable_alias(config, t) for t in types],
        "packages": list(packages(config)),
        "apt_proxies": list(apt_proxies(config)),
        "environment": builder_environment(config),
        "yq": yq_downloads(config),
        "aproxy": config.proxy.aproxy,
        "profiles": list(config.lxd.profiles),
        # A VM image's root disk is as large as the builder's: it must fit the runners' disk.
        "vm_disk": config.runners.disk if InstanceType.VIRTUAL_MACHINE in types else None,
        # The runner application baked in: a new one (update-dependencies) means a new image.
        "runner": runner.application.sha256_checksum if runner else None,
    }
    try:
        template = (config.templates / SCRIPT_TEMPLATE).read_bytes()
    except OSError as exc:
        raise ImageBuildError(f"cannot read the build script template: {exc}") from exc
    return config_hash(data, hashlib.sha256(template).hexdigest())


def build_due(
    config: ManagerConfig, record: BuildRecord | None, now: datetime.datetime
) -> str | None:
    """Tell whether a build should start now rather than at the next scheduled one.

    Args:
        config: the manager configuration.
        record: the last build's record, if any.
        now: the current time (UTC).

    Returns:
        Why a build is due, or None when none is.
    """
    if not config.image.build or not needed_types(config):
        return None
    if record is None:
        return "no runner image has been built yet"
    if record.recipe != recipe(config):
        return "what the image is built from changed"
    finished = record.finished_at or record.started_at
    if finished.tzinfo is None:
        finished = finished.replace(tzinfo=datetime.timezone.utc)
    if not record.ok and now - finished >= RETRY_FAILED_AFTER:
        return "the last build failed"
    return None


def image_properties(
    config: ManagerConfig, alias: str, description: str, runner: CachedRunner | None
) -> dict[str, str]:
    """The properties a built image is published with.

    Args:
        config: the manager configuration.
        alias: the image's stable alias.
        description: its description.
        runner: the runner application baked into it, if any.

    Returns:
        The properties: the manager's unit and alias, and the baked runner's version and
        SHA-256 (the spawner compares it with the cached runner's to tell whether the image is
        current; an image without it gets the runner pushed) and its boot program's kind
        (whether it can wait as a standby).
    """
    properties = {"description": description, PROPERTY_UNIT: config.unit, PROPERTY_ALIAS: alias}
    if runner is not None:
        properties[PROPERTY_RUNNER_VERSION] = runner.application.version
        properties[PROPERTY_RUNNER_SHA256] = runner.application.sha256_checksum
        properties[PROPERTY_BOOT] = BOOT_WAITS
    return properties


def _tail(text: str, lines: int = 5) -> str:
    return " | ".join(line for line in text.strip().splitlines()[-lines:] if line.strip())


class ImageBuilder:
    """Builds, publishes and prunes the runner images of one manager."""

    def __init__(
        self,
        config: ManagerConfig,
        lxd: LxdClient,
        renderer: TemplateRenderer | None = None,
        *,
        clock: Callable[[], datetime.datetime] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        runner: Callable[[], CachedRunner | None] | None = None,
    ):
        """Create the builder.

        Args:
            config: the manager configuration.
            lxd: the LXD client.
            renderer: the template renderer (built from the config by default).
            clock: the current time (tests pass a fake).
            monotonic: a monotonic clock for durations and deadlines.
            sleep: the sleep function (tests pass a fake).
            runner: returns the verified runner application to bake into the image (by default
                the manager's cache, read when a build starts); None from it: none is baked.
        """
        self._runner = runner or (lambda: read_cache(runner_cache_dir(config)))
        self._config = config
        self._lxd = lxd
        self._renderer = renderer or TemplateRenderer(config.templates)
        self._clock = clock or (lambda: datetime.datetime.now(datetime.timezone.utc))
        self._monotonic = monotonic
        self._sleep = sleep

    # ----- naming ---------------------------------------------------------------------------

    def builder_name(self, instance_type: InstanceType) -> str:
        """The builder instance's name (never a runner name: those end in 12 hex digits).

        Args:
            instance_type: container or virtual machine.

        Returns:
            `<name_prefix>-builder`, with `-vm` appended for VMs.
        """
        name = f"{self._config.name_prefix}-builder"
        return name if instance_type is InstanceType.CONTAINER else f"{name}-vm"

    def resolve_source(self) -> ImageSource:
        """Decide what the build starts from.

        A local alias wins over a series name of the same spelling: an operator who imported
        an image under that name means it.

        Returns:
            The source.

        Raises:
            ImageBuildError: if the source is neither a local alias, a series nor a known remote.
            LxdError: if LXD cannot be asked.
        """
        source = self._config.image.source or self._config.runners.base_image
        remote, colon, alias = source.partition(":")
        if colon:
            if remote not in REMOTES or not alias:
                raise ImageBuildError(
                    f"image source {source!r}: use a local alias, a series name such as jammy, "
                    f"or one of {', '.join(f'{r}:<series>' for r in REMOTES)}"
                )
            return ImageSource(alias, REMOTES[remote])
        if self._lxd.image_fingerprint(source) is not None:
            return ImageSource(source)
        if _SERIES_RE.match(source):
            return ImageSource(source, self._config.image.server)
        raise ImageBuildError(
            f"image source {source!r} is neither an LXD image on this host nor an Ubuntu series"
        )

    # ----- pieces ---------------------------------------------------------------------------

    def builder_spec(
        self, name: str, instance_type: InstanceType, source: ImageSource
    ) -> InstanceSpec:
        """Describe the builder instance.

        Args:
            name: the builder's name.
            instance_type: container or virtual machine.
            source: what it starts from.

        Returns:
            The instance specification.
        """
        config = self._config
        instance_config = {
            TAG_BUILDER: config.unit,
            "user.github-runner.image": stable_alias(config, instance_type),
        }
        if instance_type is InstanceType.CONTAINER:
            # docker's package starts its daemon, which needs nesting in an unprivileged container.
            instance_config["security.nesting"] = "true"
        else:
            instance_config["limits.cpu"] = str(config.runners.cpu)
            instance_config["limits.memory"] = config.runners.memory
        devices: dict[str, dict[str, str]] = {"root": root_disk(config)}
        http_proxy, https_proxy = apt_proxies(config)
        urls = [http_proxy, https_proxy, config.proxy.http or "", config.proxy.https or ""]
        urls += [download["url"] for download in yq_downloads(config).values()]
        devices.update(loopback_proxy_devices(urls))
        return InstanceSpec(
            name=name,
            instance_type=instance_type,
            image=source.alias,
            image_server=source.server,
            profiles=config.lxd.profiles,
            config=instance_config,
            devices=devices,
            ephemeral=False,
        )

    def render_script(
        self,
        name: str,
        instance_type: InstanceType,
        source: ImageSource,
        version: str,
        runner: CachedRunner | None = None,
        bake_only: bool = False,
    ) -> str:
        """Render the build script.

        Args:
            name: the builder's name.
            instance_type: container or virtual machine.
            source: what the builder started from.
            version: the versioned alias the image gets.
            runner: the runner application baked in (pushed to `RUNNER_ARCHIVE_PATH`); None:
                the image gets no runner application, and runners get theirs pushed.
            bake_only: only bake the runner application and scripts into the source image
                (no packages: the source is an image this build script made before).

        Returns:
            The script.

        Raises:
            ImageBuildError: if a proxy value cannot be written safely into a configuration file.
        """
        config = self._config
        http_proxy, https_proxy = apt_proxies(config)
        environment = builder_environment(config)
        for key, value in (
            ("apt proxy", http_proxy),
            ("apt proxy", https_proxy),
            *environment.items(),
        ):
            if _UNSAFE_VALUE_CHARS.search(value):
                raise ImageBuildError(f"the {key} value contains a space, quote or backslash")
        return self._renderer.render(
            SCRIPT_TEMPLATE,
            builder=name,
            instance_type=instance_type.value,
            source=str(source),
            image=version,
            built_at=self._clock().isoformat(timespec="seconds"),
            packages=list(packages(config)),
            apt_proxy_http=http_proxy,
            apt_proxy_https=https_proxy,
            apt_proxy_on_loopback=bool(loopback_proxy_devices([http_proxy, https_proxy])),
            environment=environment,
            yq_downloads=yq_downloads(config),
            aproxy=config.proxy.aproxy,
            runner_user=RUNNER_USER,
            yarn="npm" in packages(config),
            hwe_kernel=instance_type is InstanceType.VIRTUAL_MACHINE,
            docker_user_accept=DOCKER_USER_ACCEPT,
            attempts=ATTEMPTS,
            retry_delay=RETRY_DELAY,
            runner_archive=RUNNER_ARCHIVE_PATH if runner else "",
            runner_version=runner.application.version if runner else "",
            runner_boot=RUNNER_BOOT,
            bake_only=bake_only,
            **BOOT_KEYS,
        )

    def _push_runner(self, name: str, runner: CachedRunner | None) -> None:
        """Stream the runner application into the (running) builder, for the script to unpack."""
        if runner is None:
            logger.info("no runner application is cached yet: the image gets none baked in")
            return
        try:
            with runner.path.open("rb") as stream:
                self._lxd.push_file(name, RUNNER_ARCHIVE_PATH, stream, 0o600)
        except OSError as exc:
            raise ImageBuildError(f"cannot read the runner application: {exc}") from exc

    def _wait_ready(self, name: str) -> None:
        """Wait until commands run in the builder and systemd has finished booting."""
        try:
            wait_until_booted(
                self._lxd,
                name,
                BOOT_TIMEOUT,
                monotonic=self._monotonic,
                sleep=self._sleep,
                interval=2.0,
            )
        except LxdError as exc:
            raise ImageBuildError(f"the builder did not boot: {exc}") from exc

    def _run_script(self, name: str, script: str, instance_type: InstanceType) -> None:
        self._lxd.push_file(name, SCRIPT_PATH, script.encode(), 0o700)
        timeout = self._config.image.timeout
        result = self._lxd.execute(name, ["/bin/bash", SCRIPT_PATH], timeout=timeout)
        log = self._config.state_dir / f"image-build-{instance_type.value}.log"
        try:
            # It may hold proxy credentials: root only.
            atomic_write(
                log,
                f"{result.stdout}\n----- stderr -----\n{result.stderr}".encode(),
                mode=0o600,
            )
        except OSError as exc:
            logger.warning("cannot write the build log %s: %s", log, exc)
        if result.exit_code in (124, 137):
            raise ImageBuildError(f"the build script did not finish within {timeout:.0f}s")
        if result.exit_code != 0:
            detail = _tail(result.stderr) or _tail(result.stdout) or "no output"
            raise ImageBuildError(
                f"the build script failed with exit code {result.exit_code}: {detail} "
                f"(full output in {log})"
            )

    # ----- building -------------------------------------------------------------------------

    def build_one(self, instance_type: InstanceType, bake_only: bool = False) -> BuiltImage:
        """Build, publish and alias the image of one instance type.

        Args:
            instance_type: container or virtual machine.
            bake_only: only bake the runner application and scripts into the source image.

        Returns:
            The published image.

        Raises:
            ImageBuildError: if the build script failed or timed out.
            LxdError: if LXD failed; the builder is deleted either way.
        """
        started = self._monotonic()
        config = self._config
        alias = stable_alias(config, instance_type)
        source = self.resolve_source()
        name = self.builder_name(instance_type)
        version = f"{alias}-{self._clock():%Y%m%d%H%M%S}"
        runner = self._runner()
        script = self.render_script(name, instance_type, source, version, runner, bake_only)
        logger.info("building %s (%s) from %s in %s", version, instance_type.value, source, name)
        # A builder left by a build that was killed (systemd's timeout, a reboot) goes first.
        self._lxd.delete_instance(name)
        try:
            self._lxd.create_instance(self.builder_spec(name, instance_type, source))
            self._lxd.start_instance(name)
            self._wait_ready(name)
            self._push_runner(name, runner)
            self._run_script(name, script, instance_type)
            self._lxd.stop_instance(name, STOP_TIMEOUT)
            fingerprint = self._lxd.publish_image(
                name,
                version,
                image_properties(
                    config, alias, f"GitHub runner image {version} ({source})", runner
                ),
                timeout=config.image.timeout,
            )
            self._lxd.set_image_alias(alias, fingerprint, f"GitHub runner image ({version})")
        finally:
            try:
                self._lxd.delete_instance(name)
            except RunnerManagerError as exc:
                # The next build deletes it; the image (if published) is fine.
                logger.error("cannot delete the builder %s: %s", name, exc)
        duration = round(self._monotonic() - started, 3)
        logger.info("published %s as %s (%s) in %.0fs", version, alias, fingerprint, duration)
        return BuiltImage(
            instance_type=instance_type.value,
            alias=alias,
            version=version,
            fingerprint=fingerprint,
            source=str(source),
            duration=duration,
        )

    def _versions(self, alias: str) -> list[tuple[str, str, str]]:
        """The published versions of a stable alias: (timestamp, fingerprint, versioned alias)."""
        pattern = re.compile(rf"^{re.escape(alias)}-(\d{{14}})$")
        versions = []
        for image in self._lxd.list_images():
            for name in image.aliases:
                match = pattern.match(name)
                if match:
                    versions.append((match.group(1), image.fingerprint, name))
        return sorted(versions, reverse=True)

    def prune(self, instance_type: InstanceType) -> list[str]:
        """Delete old versions of an image type, keeping the newest `image.keep` ones.

        The image the stable alias points at is never deleted, whatever its age.

        Args:
            instance_type: container or virtual machine.

        Returns:
            The versioned aliases of the deleted images.

        Raises:
            LxdError: if LXD fails.
        """
        alias = stable_alias(self._config, instance_type)
        versions = self._versions(alias)
        keep = {fingerprint for _, fingerprint, _ in versions[: self._config.image.keep]}
        current = self._lxd.image_fingerprint(alias)
        deleted = []
        for _, fingerprint, name in versions[self._config.image.keep :]:
            if fingerprint in keep or fingerprint == current:
                continue
            logger.info("deleting the old runner image %s (%s)", name, fingerprint)
            self._lxd.delete_image(fingerprint)
            keep.add(fingerprint)  # deleted once, even with several aliases
            deleted.append(name)
        return deleted

    def build(
        self, types: Sequence[InstanceType] | None = None, bake_only: bool = False
    ) -> BuildRecord:
        """Build the images of the given types (those with runners by default); write the record.

        A failure of one type does not stop the other's build.

        Args:
            types: the instance types to build images for.
            bake_only: only bake the runner application and scripts into the source image.

        Returns:
            The record (also written to `image.json` in the state directory).
        """
        started = self._monotonic()
        record = BuildRecord(started_at=self._clock(), recipe=recipe(self._config))
        chosen = list(types) if types is not None else needed_types(self._config)
        if not chosen:
            record.note = "no runners are configured: no image to build"
        for instance_type in chosen:
            try:
                record.images.append(self.build_one(instance_type, bake_only))
            except RunnerManagerError as exc:
                logger.error("the %s image build failed: %s", instance_type.value, exc)
                record.errors.append(ErrorEntry(kind=exc.kind, message=str(exc)))
                continue
            try:
                record.pruned.extend(self.prune(instance_type))
            except RunnerManagerError as exc:
                # Old images only take space; the next build prunes them.
                logger.warning("cannot delete old %s images: %s", instance_type.value, exc)
        record.ok = not record.errors
        record.finished_at = self._clock()
        logger.info("image build finished in %.0fs", self._monotonic() - started)
        try:
            record.write(record_path(self._config))
        except OSError as exc:
            logger.warning("cannot write the image build record: %s", exc)
        return record

    def remove_all(self) -> list[str]:
        """Delete every image of this manager (its builders too), e.g. when the unit goes.

        Returns:
            The aliases of the deleted images.

        Raises:
            LxdError: if LXD fails.
        """
        deleted = []
        for instance_type in InstanceType:
            self._lxd.delete_instance(self.builder_name(instance_type))
            alias = stable_alias(self._config, instance_type)
            fingerprints = {fingerprint: name for _, fingerprint, name in self._versions(alias)}
            current = self._lxd.image_fingerprint(alias)
            if current is not None:
                fingerprints.setdefault(current, alias)
            for fingerprint, name in fingerprints.items():
                self._lxd.delete_image(fingerprint)
                deleted.append(name)
        return deleted
