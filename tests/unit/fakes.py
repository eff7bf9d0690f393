# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""Small in-memory fakes behind the runner manager's own interfaces (LxdClient, GitHubClient)."""

from __future__ import annotations

import dataclasses
import datetime
import itertools
from collections.abc import Callable, Mapping
from typing import Any

from github_runner_manager.errors import (
    GitHubConflictError,
    LxdError,
    RunnerManagerError,
    StorageFullError,
)
from github_runner_manager.github import JobInfo, RateLimit
from github_runner_manager.lxd import (
    TAG_CONFIG_HASH,
    TAG_CREATED_AT,
    TAG_GITHUB_PATH,
    TAG_GITHUB_URL,
    TAG_REGISTRATION,
    TAG_RUNNER_ID,
    TAG_STANDBY,
    TAG_START_AFTER_LOCK,
    TAG_UNIT,
    ExecResult,
    ImageInfo,
    InstanceSpec,
)
from github_runner_manager.models import (
    GitHubRunner,
    InstanceStatus,
    InstanceType,
    Registration,
    RunnerApplication,
    RunnerInstance,
)

UTC = datetime.timezone.utc


@dataclasses.dataclass
class FakeInstance:
    spec: InstanceSpec
    status: str = "Stopped"
    files: dict[str, tuple[bytes, int]] = dataclasses.field(default_factory=dict)
    links: dict[str, str] = dataclasses.field(default_factory=dict)
    commands: list[list[str]] = dataclasses.field(default_factory=list)
    ever_started: bool = False


@dataclasses.dataclass
class FakeImage:
    fingerprint: str
    instance_type: str
    properties: dict[str, str]
    published_from: str


class FakeLxd:
    """An LXD with instances in a dict; failures are injected per method name.

    `images` holds the alias names; an alias without an entry in `aliases` points at the image
    `fp-<alias>` (a prebuilt image); published images live in `image_store`.
    """

    def __init__(self) -> None:
        self.instances: dict[str, FakeInstance] = {}
        self.images = {"jammy", "noble"}
        self.aliases: dict[str, str] = {}
        self.image_store: dict[str, FakeImage] = {}
        self.stopped: list[str] = []
        self.created: list[InstanceSpec] = []
        self._fingerprints = itertools.count(1)
        self.deleted: list[str] = []
        self.fail: dict[str, Exception] = {}
        # How many instances the storage pool holds (None: no limit); each takes this much.
        self.capacity: int | None = None
        self.instance_bytes = 10 * 1024**3
        self.exec_handler: Callable[[str, list[str], dict[str, str]], ExecResult] | None = None

    def _maybe_fail(self, method: str) -> None:
        if method in self.fail:
            raise self.fail[method]

    def add(
        self,
        name: str,
        unit: str,
        instance_type: InstanceType = InstanceType.CONTAINER,
        status: str = "Running",
        created_at: datetime.datetime | None = None,
        config_hash: str = "hash",
        runner_id: int | None = None,
        github_path: str | None = None,
        github_url: str = "https://github.com",
    ) -> None:
        """Put an instance in place as if a manager had created it.

        With a runner id it was registered just in time (before the instance), on
        `github_path` (when given) of `github_url`.
        """
        created = created_at or datetime.datetime(2026, 1, 1, tzinfo=UTC)
        tags: dict[str, str] = {}
        if runner_id is not None:
            tags[TAG_RUNNER_ID] = str(runner_id)
            tags[TAG_REGISTRATION] = "jit"
        if github_path is not None:
            tags[TAG_GITHUB_PATH] = github_path
            tags[TAG_GITHUB_URL] = github_url
        spec = InstanceSpec(
            name=name,
            instance_type=instance_type,
            image="jammy",
            profiles=("default",),
            config={
                TAG_UNIT: unit,
                TAG_CONFIG_HASH: config_hash,
                TAG_CREATED_AT: created.isoformat(),
                **tags,
            },
            devices={},
        )
        self.instances[name] = FakeInstance(spec=spec, status=status)

    def list_instances(self, unit: str) -> list[RunnerInstance]:
        self._maybe_fail("list_instances")
        result = []
        for name, instance in self.instances.items():
            if instance.spec.config.get(TAG_UNIT) != unit:
                continue
            result.append(
                RunnerInstance(
                    name=name,
                    instance_type=instance.spec.instance_type,
                    status=InstanceStatus.from_lxd(instance.status),
                    created_at=datetime.datetime.fromisoformat(
                        instance.spec.config[TAG_CREATED_AT]
                    ),
                    config_hash=instance.spec.config.get(TAG_CONFIG_HASH, ""),
                    registered_first=instance.spec.config.get(TAG_REGISTRATION) == "jit",
                    runner_id=(
                        int(instance.spec.config[TAG_RUNNER_ID])
                        if TAG_RUNNER_ID in instance.spec.config
                        else None
                    ),
                    github_url=instance.spec.config.get(TAG_GITHUB_URL),
                    github_path=instance.spec.config.get(TAG_GITHUB_PATH),
                    awaiting_start=instance.spec.config.get(TAG_START_AFTER_LOCK) == "true"
                    and not instance.ever_started,
                    standby=instance.spec.config.get(TAG_STANDBY) == "true",
                )
            )
        return result

    def create_instance(self, spec: InstanceSpec) -> None:
        self._maybe_fail("create_instance")
        if spec.name in self.instances:
            raise LxdError(f"instance {spec.name} already exists")
        if self.capacity is not None and len(self.instances) >= self.capacity:
            raise StorageFullError(
                f"cannot create instance {spec.name}: Failed creating instance from image: "
                "Unpack failed: write /var/lib/lxd/containers/x/rootfs/usr/bin/python3: "
                "no space left on device"
            )
        if spec.image_server is None and spec.image not in self.images:
            raise LxdError(f"image {spec.image} not found")
        self.created.append(spec)
        self.instances[spec.name] = FakeInstance(spec=spec)

    def _get(self, name: str) -> FakeInstance:
        try:
            return self.instances[name]
        except KeyError:
            raise LxdError(f"instance {name} not found") from None

    def start_instance(self, name: str) -> None:
        self._maybe_fail("start_instance")
        self._get(name).status = "Running"
        self._get(name).ever_started = True

    def update_instance_config(self, name: str, values: Mapping[str, str | None]) -> None:
        self._maybe_fail("update_instance_config")
        config = self._get(name).spec.config
        for key, value in values.items():
            if value is None:
                config.pop(key, None)
            else:
                config[key] = value

    def push_file(self, name: str, path: str, data: Any, mode: int = 0o644) -> None:
        self._maybe_fail("push_file")
        content = data if isinstance(data, bytes) else data.read()
        self._get(name).files[path] = (content, mode)

    def push_symlink(self, name: str, path: str, target: str) -> None:
        self._maybe_fail("push_symlink")
        self._get(name).links[path] = target

    def make_directory(self, name: str, path: str, mode: int = 0o755) -> None:
        self._maybe_fail("make_directory")
        self._get(name).files[path] = (b"", mode | 0o40000)

    def pull_file(self, name: str, path: str) -> bytes:
        self._maybe_fail("pull_file")
        try:
            return self._get(name).files[path][0]
        except KeyError:
            raise LxdError(f"{path} not found in {name}") from None

    def execute(
        self,
        name: str,
        command: list[str],
        env: dict[str, str] | None = None,
        timeout: float = 60.0,
    ) -> ExecResult:
        self._maybe_fail("execute")
        instance = self._get(name)
        if instance.status != "Running":
            raise LxdError(f"instance {name} is not running")
        instance.commands.append(command)
        if self.exec_handler is not None:
            return self.exec_handler(name, command, env or {})
        if command[:2] == ["systemctl", "is-system-running"]:
            return ExecResult(0, "running\n", "")
        if command[:2] == ["systemctl", "is-active"]:
            return ExecResult(0, "active\n", "")
        return ExecResult(0, "", "")

    def delete_instance(self, name: str) -> None:
        self._maybe_fail("delete_instance")
        if self.instances.pop(name, None) is not None:
            self.deleted.append(name)

    def image_exists(self, alias: str) -> bool:
        return alias in self.images

    def stop_instance(self, name: str, timeout: float = 120.0) -> None:
        self._maybe_fail("stop_instance")
        self._get(name).status = "Stopped"
        self.stopped.append(name)

    def publish_image(
        self, name: str, alias: str, properties: dict[str, str], timeout: float
    ) -> str:
        self._maybe_fail("publish_image")
        instance = self._get(name)
        if instance.status != "Stopped":
            raise LxdError(f"instance {name} must be stopped to be published")
        if alias in self.images:
            raise LxdError(f"alias {alias} already exists")
        fingerprint = f"fp{next(self._fingerprints):04d}"
        self.image_store[fingerprint] = FakeImage(
            fingerprint, instance.spec.instance_type.value, dict(properties), name
        )
        self.images.add(alias)
        self.aliases[alias] = fingerprint
        return fingerprint

    def image_fingerprint(self, alias: str) -> str | None:
        self._maybe_fail("image_fingerprint")
        if alias not in self.images:
            return None
        return self.aliases.get(alias, f"fp-{alias}")

    def set_image_alias(self, alias: str, fingerprint: str, description: str = "") -> None:
        self._maybe_fail("set_image_alias")
        if fingerprint not in self.image_store:
            raise LxdError(f"image {fingerprint} not found")
        self.images.add(alias)
        self.aliases[alias] = fingerprint

    def list_images(self) -> list[ImageInfo]:
        self._maybe_fail("list_images")
        return [
            ImageInfo(
                fingerprint=image.fingerprint,
                aliases=tuple(
                    sorted(a for a in self.images if self.aliases.get(a) == image.fingerprint)
                ),
                properties=dict(image.properties),
                instance_type=image.instance_type,
            )
            for image in self.image_store.values()
        ]

    def storage_pool_usage(self, pool: str) -> tuple[int, int] | None:
        if self.capacity is None:
            return None
        return len(self.instances) * self.instance_bytes, self.capacity * self.instance_bytes

    def delete_image(self, fingerprint: str) -> None:
        self._maybe_fail("delete_image")
        self.image_store.pop(fingerprint, None)
        for alias in [a for a, f in self.aliases.items() if f == fingerprint]:
            del self.aliases[alias]
            self.images.discard(alias)


class FakeGitHub:
    """A GitHub with runners in a dict; failures are injected per method name."""

    def __init__(self, jit: bool = True) -> None:
        self.runners: dict[int, GitHubRunner] = {}
        self.jit = jit
        self.fail: dict[str, Exception] = {}
        self.calls: list[str] = []
        self.deleted: list[int] = []
        self.registered: list[tuple[str, tuple[str, ...]]] = []
        self.jobs: dict[str, JobInfo] = {}
        self._ids = itertools.count(1)
        self.applications = [
            RunnerApplication(
                "osx", "x64", "https://example.invalid/osx.tar.gz", "osx.tar.gz", "aa"
            ),
            RunnerApplication(
                "linux",
                "x64",
                "https://example.invalid/actions-runner-linux-x64-2.330.0.tar.gz",
                "actions-runner-linux-x64-2.330.0.tar.gz",
                "0" * 64,
            ),
        ]

    def _maybe_fail(self, method: str) -> None:
        self.calls.append(method)
        if method in self.fail:
            raise self.fail[method]

    def add(self, name: str, online: bool = True, busy: bool = False) -> GitHubRunner:
        runner = GitHubRunner(id=next(self._ids), name=name, online=online, busy=busy)
        self.runners[runner.id] = runner
        return runner

    def job_for_runner(self, repository: str, run_id: int, runner_name: str) -> JobInfo | None:
        self._maybe_fail("job_for_runner")
        return self.jobs.get(runner_name)

    def by_name(self, name: str) -> GitHubRunner | None:
        return next((r for r in self.runners.values() if r.name == name), None)

    def list_runners(self) -> list[GitHubRunner]:
        self._maybe_fail("list_runners")
        return list(self.runners.values())

    def register_runner(self, name: str, labels: list[str]) -> Registration:
        self._maybe_fail("register_runner")
        self.registered.append((name, tuple(labels)))
        if not self.jit:
            return Registration(registration_token="AAAREGTOKEN")
        runner = self.add(name, online=False)
        return Registration(jit_config=f"jit-for-{name}", runner_id=runner.id)

    def delete_runner(self, runner_id: int) -> None:
        self._maybe_fail("delete_runner")
        runner = self.runners.get(runner_id)
        if runner is None:
            return
        if runner.busy:
            raise GitHubConflictError("runner is busy", 422)
        del self.runners[runner_id]
        self.deleted.append(runner_id)

    def get_runner(self, runner_id: int) -> GitHubRunner | None:
        self._maybe_fail("get_runner")
        return self.runners.get(runner_id)

    def find_runner(self, name: str) -> GitHubRunner | None:
        self._maybe_fail("find_runner")
        return self.by_name(name)

    def runner_applications(self) -> list[RunnerApplication]:
        self._maybe_fail("runner_applications")
        return list(self.applications)

    def rate_limit(self) -> RateLimit | None:
        return RateLimit(limit=5000, remaining=4000, reset_at=0.0)

    def call_count(self) -> int:
        return len(self.calls)

    def not_modified_count(self) -> int:
        return 0

    def save_cache(self) -> None:
        """Nothing to persist: the fake keeps no cache."""


class FakeBinaryCache:
    """A runner application cache that needs no download."""

    def __init__(
        self,
        tmp_path,
        fail: RunnerManagerError | None = None,
        offers: RunnerApplication | None = None,
    ) -> None:
        from github_runner_manager.binary import CachedRunner

        self.path = tmp_path / "runner.tar.gz"
        self.path.write_bytes(b"tarball")
        self.fail = fail
        self.offers = offers  # what GitHub lists, when not the cached runner itself
        self.offered: RunnerApplication | None = None
        self.runner = CachedRunner(
            path=self.path,
            application=RunnerApplication(
                "linux",
                "x64",
                "https://example.invalid/r.tar.gz",
                "actions-runner-linux-x64-2.330.0.tar.gz",
                "0" * 64,
            ),
        )

    def ensure(self):
        self.offered = self.offers or self.runner.application
        if self.fail is not None:
            raise self.fail
        return self.runner

    def cached(self):
        return None if self.fail else self.runner
