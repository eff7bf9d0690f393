# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""The runner image build on the LXD fake: requests, aliases, pruning, failures, the script."""

from __future__ import annotations

import datetime
import shlex
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from github_runner_manager import image
from github_runner_manager.config import ManagerConfig
from github_runner_manager.errors import ImageBuildError, LxdError
from github_runner_manager.image import (
    SCRIPT_PATH,
    BuildRecord,
    ImageBuilder,
    build_due,
    read_record,
    recipe,
    runner_image,
    stable_alias,
)
from github_runner_manager.lxd import TAG_BUILDER, TAG_UNIT, ExecResult
from github_runner_manager.models import InstanceType

from .conftest import PREFIX, UNIT, FakeClock, make_config
from .fakes import FakeLxd

CONTAINER = InstanceType.CONTAINER
VM = InstanceType.VIRTUAL_MACHINE
BUILDER = f"{PREFIX}-builder"
STABLE = f"{PREFIX}-jammy"
UTC = datetime.timezone.utc


def build_config(tmp_path: Path, **overrides: Any) -> ManagerConfig:
    image_settings = {"build": True, **overrides.pop("image", {})}
    return make_config(tmp_path, image=image_settings, **overrides)


class ScriptLxd(FakeLxd):
    """The LXD fake, answering the build script with a chosen result and keeping the script."""

    def __init__(self, script_result: ExecResult | None = None) -> None:
        super().__init__()
        self.script_result = script_result or ExecResult(0, "build-image: done\n", "")
        self.scripts: dict[str, str] = {}
        self.exec_handler = self._handle

    def _handle(self, name: str, command: list[str], env: dict[str, str]) -> ExecResult:
        if command == ["/bin/bash", SCRIPT_PATH]:
            self.scripts[name] = self.instances[name].files[SCRIPT_PATH][0].decode()
            return self.script_result
        if command[:2] == ["systemctl", "is-system-running"]:
            return ExecResult(0, "running\n", "")
        return ExecResult(0, "", "")


def make_builder(config: ManagerConfig, lxd: FakeLxd, clock: FakeClock) -> ImageBuilder:
    return ImageBuilder(config, lxd, clock=clock, monotonic=clock.monotonic, sleep=clock.sleep)


# ----- naming and sources -------------------------------------------------------------------


def test_runners_use_the_base_image_unless_the_image_is_built(tmp_path: Path) -> None:
    """Runners start from the base image, or from the stable alias when the charm builds the image.

    arrange: one configuration with a base image and no build; one that builds for containers and
        VMs.
    act: ask the runner image of each type.
    assert: the base image without a build; the stable alias, with -vm for VMs, with one.
    """
    plain = make_config(tmp_path, runners={"base_image": "github-runner-test"})
    built = build_config(tmp_path, runners={"containers": 1, "virtual_machines": 1})

    assert runner_image(plain, CONTAINER) == "github-runner-test"
    assert runner_image(built, CONTAINER) == STABLE
    assert runner_image(built, VM) == f"{STABLE}-vm"


def test_stable_alias_is_scoped_and_safe(tmp_path: Path) -> None:
    """The stable alias carries the unit's prefix and no slash.

    arrange: a build configuration with base image ubuntu/24.04.
    act: ask the stable alias for containers.
    assert: the prefix followed by ubuntu-24.04.
    """
    config = build_config(tmp_path, runners={"base_image": "ubuntu/24.04"})

    assert stable_alias(config, CONTAINER) == f"{PREFIX}-ubuntu-24.04"


@pytest.mark.parametrize(
    ("source", "alias", "server"),
    [
        pytest.param("jammy", "jammy", None, id="local alias wins"),
        pytest.param("mantic", "mantic", image.REMOTES["ubuntu"], id="series"),
        pytest.param("24.04", "24.04", image.REMOTES["ubuntu"], id="version"),
        pytest.param("ubuntu:noble", "noble", image.REMOTES["ubuntu"], id="ubuntu remote"),
        pytest.param("ubuntu-daily:noble", "noble", image.REMOTES["ubuntu-daily"], id="daily"),
    ],
)
def test_source_resolution(
    tmp_path: Path, clock: FakeClock, source: str, alias: str, server: str | None
) -> None:
    """An image source resolves to an alias and the remote server it comes from.

    arrange: a source that is a local alias, a series, a version, or remote:alias.
    act: resolve the source.
    assert: the alias, and no server for a local alias or the remote's server otherwise.
    """
    builder = make_builder(build_config(tmp_path, image={"source": source}), FakeLxd(), clock)

    resolved = builder.resolve_source()

    assert (resolved.alias, resolved.server) == (alias, server)


@pytest.mark.parametrize("source", ["my-image", "other:noble", "ubuntu:"])
def test_unknown_source_fails_the_build_before_anything_is_made(
    tmp_path: Path, clock: FakeClock, source: str
) -> None:
    """A source that names no known remote fails the build before any builder is made.

    arrange: a source that is an unknown name, an unknown remote, or a remote without an alias.
    act: build.
    assert: an image-build error and no instance created.
    """
    lxd = ScriptLxd()
    config = build_config(tmp_path, image={"source": source})

    record = make_builder(config, lxd, clock).build()

    assert not record.ok
    assert [error.kind for error in record.errors] == ["image-build"]
    assert lxd.created == []


# ----- one build ----------------------------------------------------------------------------


def test_build_publishes_a_version_and_points_the_stable_alias_at_it(
    tmp_path: Path, clock: FakeClock
) -> None:
    """A build publishes a dated version and points the stable alias at it.

    arrange: an LXD whose builder script succeeds.
    act: build.
    assert: one image, aliased by version and stable, published from the builder with the unit tag;
        the builder stopped, then deleted; the record written.
    """
    lxd = ScriptLxd()
    config = build_config(tmp_path)

    record = make_builder(config, lxd, clock).build()

    assert record.ok, record.errors
    (built,) = record.images
    assert built.alias == STABLE
    assert built.version == f"{STABLE}-20260601120000"
    assert lxd.aliases[STABLE] == lxd.aliases[built.version] == built.fingerprint
    published = lxd.image_store[built.fingerprint]
    assert published.published_from == BUILDER
    assert published.properties[image.PROPERTY_UNIT] == UNIT
    # The builder was stopped cleanly before publishing, then deleted.
    assert lxd.stopped == [BUILDER]
    assert BUILDER not in lxd.instances
    assert lxd.deleted == [BUILDER]
    assert read_record(tmp_path / "state" / "image.json") == record


def test_builder_request_shape_for_a_container(tmp_path: Path, clock: FakeClock) -> None:
    """The container builder is a persistent, nested container tagged as a builder.

    arrange: a build configuration with a 20GiB disk.
    act: build.
    assert: one builder from the local jammy image, not ephemeral, tagged as a builder and not as a
        runner, nesting on, with a 20GiB root disk.
    """
    lxd = ScriptLxd()
    config = build_config(tmp_path, runners={"disk": "20GiB"})

    make_builder(config, lxd, clock).build()

    (spec,) = lxd.created
    assert spec.name == BUILDER
    assert spec.instance_type is CONTAINER
    assert (spec.image, spec.image_server) == ("jammy", None)
    assert not spec.ephemeral
    # Tagged as a builder, never as a runner of the unit.
    assert spec.config[TAG_BUILDER] == UNIT
    assert TAG_UNIT not in spec.config
    assert spec.config["security.nesting"] == "true"
    assert spec.devices["root"] == {
        "type": "disk",
        "path": "/",
        "pool": "default",
        "size": "20GiB",
    }


def test_vm_runners_get_a_vm_image_from_a_vm_builder(tmp_path: Path, clock: FakeClock) -> None:
    """VM runners get a VM image, built in a VM of the runners' limits.

    arrange: 2 VM runners of 4 CPUs and 8GiB from ubuntu:noble.
    act: build.
    assert: a VM builder from the ubuntu remote with the runners' limits and no nesting; the image
        is a VM image under the -vm stable alias.
    """
    lxd = ScriptLxd()
    config = build_config(
        tmp_path,
        runners={"containers": 0, "virtual_machines": 2, "cpu": 4, "memory": "8GiB"},
        image={"source": "ubuntu:noble"},
    )

    record = make_builder(config, lxd, clock).build()

    (spec,) = lxd.created
    assert spec.name == f"{BUILDER}-vm"
    assert spec.instance_type is VM
    assert (spec.image, spec.image_server) == ("noble", image.REMOTES["ubuntu"])
    assert spec.config["limits.cpu"] == "4"
    assert spec.config["limits.memory"] == "8GiB"
    assert "security.nesting" not in spec.config
    (built,) = record.images
    assert built.alias == f"{STABLE}-vm"
    assert lxd.image_store[built.fingerprint].instance_type == "virtual-machine"


def test_loopback_urls_of_the_build_get_proxy_devices(tmp_path: Path, clock: FakeClock) -> None:
    """Loopback URLs the build uses are reached through proxy devices in the builder.

    arrange: a model proxy, an apt proxy and a yq URL on loopback, and one proxy elsewhere.
    act: build.
    assert: one proxy device per loopback port, bound inside the instance to the same host port.
    """
    lxd = ScriptLxd()
    config = build_config(
        tmp_path,
        proxy={"http": "http://127.0.0.1:3128", "https": "http://squid.internal:3128"},
        image={"apt_proxy": "http://localhost:3142", "yq_url": "http://127.0.0.1:8000/{arch}"},
    )

    make_builder(config, lxd, clock).build()

    devices = lxd.created[0].devices
    proxies = {name: device for name, device in devices.items() if device["type"] == "proxy"}
    assert set(proxies) == {"loopback-3128", "loopback-3142", "loopback-8000"}
    assert proxies["loopback-3142"] == {
        "type": "proxy",
        "listen": "tcp:127.0.0.1:3142",
        "connect": "tcp:127.0.0.1:3142",
        "bind": "instance",
    }


def test_script_runs_inside_the_builder_with_its_time_limit(
    tmp_path: Path, clock: FakeClock
) -> None:
    """The build script runs inside the builder with the configured time limit.

    arrange: an image timeout of 1234 s; LXD's execute recorded.
    act: build.
    assert: bash ran the script in the builder with timeout 1234, and the script is strict.
    """
    lxd = ScriptLxd()
    calls: list[tuple[str, list[str], float]] = []
    original = lxd.execute

    def execute(name: str, command: list[str], env: Any = None, timeout: float = 60.0) -> Any:
        calls.append((name, command, timeout))
        return original(name, command, env, timeout)

    lxd.execute = execute  # type: ignore[method-assign]  # wrapping the fake's method to record calls
    config = build_config(tmp_path, image={"timeout": 1234})

    make_builder(config, lxd, clock).build()

    assert (BUILDER, ["/bin/bash", SCRIPT_PATH], 1234) in calls
    assert "set -Eeuo pipefail" in lxd.scripts[BUILDER]


@pytest.mark.parametrize(
    ("result", "message"),
    [
        pytest.param(
            ExecResult(100, "apt output\n", 'build-image: step "installing the packages" failed'),
            'exit code 100: build-image: step "installing the packages" failed',
            id="failed step",
        ),
        pytest.param(ExecResult(124, "", ""), "did not finish within 600s", id="timeout"),
    ],
)
def test_failed_script_deletes_the_builder_and_keeps_the_image(
    tmp_path: Path, clock: FakeClock, result: ExecResult, message: str
) -> None:
    """A failed or timed-out script deletes the builder and keeps the earlier image.

    arrange: the stable image of an earlier build; the script fails in a step or times out.
    act: build.
    assert: an image-build error naming the step or the time limit; nothing published; the earlier
        image and alias kept; the builder deleted; the build log kept private.
    """
    lxd = ScriptLxd(result)
    lxd.images.add(STABLE)  # the image of an earlier build
    config = build_config(tmp_path, image={"timeout": 600})

    record = make_builder(config, lxd, clock).build()

    assert not record.ok
    (error,) = record.errors
    assert error.kind == "image-build"
    assert message in error.message
    assert lxd.image_store == {}
    assert lxd.image_fingerprint(STABLE) == f"fp-{STABLE}"
    assert BUILDER not in lxd.instances
    log = tmp_path / "state" / "image-build-container.log"
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert result.stdout in log.read_text()


@pytest.mark.parametrize(
    "method", ["start_instance", "push_file", "stop_instance", "publish_image"]
)
def test_lxd_failure_at_any_step_deletes_the_builder(
    tmp_path: Path, clock: FakeClock, method: str
) -> None:
    """An LXD failure at any step of the build deletes the builder.

    arrange: LXD fails on start, push, stop or publish.
    act: build.
    assert: one lxd error; no builder left and no stable image.
    """
    lxd = ScriptLxd()
    lxd.fail[method] = LxdError(f"{method} broke")

    record = make_builder(build_config(tmp_path), lxd, clock).build()

    assert [error.kind for error in record.errors] == ["lxd"]
    assert BUILDER not in lxd.instances
    assert STABLE not in lxd.images


def test_a_builder_left_by_a_killed_build_is_deleted_first(
    tmp_path: Path, clock: FakeClock
) -> None:
    """A builder left by a killed build is deleted before the new one is made.

    arrange: a running builder instance left behind.
    act: build.
    assert: the build succeeds; the builder deleted twice (the leftover, then the new one).
    """
    lxd = ScriptLxd()
    lxd.add(BUILDER, unit="nobody", status="Running")

    record = make_builder(build_config(tmp_path), lxd, clock).build()

    assert record.ok
    assert lxd.deleted == [BUILDER, BUILDER]


def test_failing_builder_deletion_does_not_hide_the_image(
    tmp_path: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A builder that cannot be deleted after a good build is only logged.

    arrange: LXD refuses the second deletion of the builder.
    act: build.
    assert: the build succeeds and the log says the builder cannot be deleted.
    """
    lxd = ScriptLxd()
    original = lxd.delete_instance
    calls = []

    def delete(name: str) -> None:
        calls.append(name)
        if len(calls) > 1:
            raise LxdError("LXD is busy")
        original(name)

    lxd.delete_instance = delete  # type: ignore[method-assign]  # wrapping the fake's method to fail once

    record = make_builder(build_config(tmp_path), lxd, clock).build()

    assert record.ok
    assert "cannot delete the builder" in caplog.text


def test_vm_that_boots_slowly_is_waited_for(tmp_path: Path, clock: FakeClock) -> None:
    """A VM builder that boots slowly is waited for.

    arrange: a VM build whose agent is not started at first, then systemd is starting, then
        degraded.
    act: build.
    assert: the build succeeds after two 2 s waits.
    """
    lxd = ScriptLxd()
    answers: list[Exception | ExecResult] = [
        LxdError("agent not started"),
        ExecResult(0, "starting\n", ""),
    ]

    def handle(name: str, command: list[str], env: dict[str, str]) -> ExecResult:
        if command[:2] == ["systemctl", "is-system-running"]:
            answer = answers.pop(0) if answers else ExecResult(0, "degraded\n", "")
            if isinstance(answer, Exception):
                raise answer
            return answer
        return ExecResult(0, "", "")

    lxd.exec_handler = handle
    config = build_config(tmp_path, runners={"containers": 0, "virtual_machines": 1})

    record = make_builder(config, lxd, clock).build()

    assert record.ok, record.errors
    assert clock.slept == [2.0, 2.0]


def test_builder_that_never_boots_fails_the_build(tmp_path: Path, clock: FakeClock) -> None:
    """A builder that never finishes booting fails the build, and is deleted.

    arrange: systemd in the builder always says starting.
    act: build.
    assert: an error saying it did not finish booting within 300s; the builder deleted.
    """
    lxd = ScriptLxd()
    lxd.exec_handler = lambda name, command, env: ExecResult(0, "starting\n", "")

    record = make_builder(build_config(tmp_path), lxd, clock).build()

    assert "did not finish booting within 300s: systemd is starting" in record.errors[0].message
    assert BUILDER not in lxd.instances


# ----- several builds -----------------------------------------------------------------------


def test_rebuilds_rotate_the_alias_and_prune_all_but_the_newest_two(
    tmp_path: Path, clock: FakeClock
) -> None:
    """Rebuilds move the stable alias and prune all but the newest two versions.

    arrange: a builder and a clock moved 6 hours between builds.
    act: build three times.
    assert: nothing pruned at first, the oldest version pruned by the third; the alias on the
        newest; two images left.
    """
    lxd = ScriptLxd()
    builder = make_builder(build_config(tmp_path), lxd, clock)
    records = []
    for _ in range(3):
        records.append(builder.build())
        clock.advance(6 * 3600)
    v1, v2, v3 = (record.images[0] for record in records)

    assert records[0].pruned == records[1].pruned == []
    assert records[2].pruned == [v1.version]
    assert lxd.aliases[STABLE] == v3.fingerprint
    assert set(lxd.image_store) == {v2.fingerprint, v3.fingerprint}
    assert v1.version not in lxd.images


def test_prune_keeps_the_image_the_stable_alias_points_at(
    tmp_path: Path, clock: FakeClock
) -> None:
    """Pruning never removes the image the stable alias points at.

    arrange: two versions; an operator pointed the stable alias back at the first (a rollback).
    act: prune keeping one.
    assert: nothing pruned; both images kept.
    """
    lxd = ScriptLxd()
    builder = make_builder(build_config(tmp_path), lxd, clock)
    first = builder.build().images[0]
    clock.advance(60)
    second = builder.build().images[0]
    # An operator pointed the alias back at the first image (a rollback).
    lxd.set_image_alias(STABLE, first.fingerprint)
    keep_one = make_builder(build_config(tmp_path, image={"keep": 1}), lxd, clock)

    assert keep_one.prune(CONTAINER) == []
    assert set(lxd.image_store) == {first.fingerprint, second.fingerprint}


def test_prune_failure_does_not_fail_the_build(tmp_path: Path, clock: FakeClock) -> None:
    """A prune that cannot list images does not fail the build.

    arrange: LXD cannot list images.
    act: build.
    assert: the build succeeds.
    """
    lxd = ScriptLxd()
    lxd.fail["list_images"] = LxdError("cannot list")

    record = make_builder(build_config(tmp_path), lxd, clock).build()

    assert record.ok


def test_one_type_failing_does_not_stop_the_other(tmp_path: Path, clock: FakeClock) -> None:
    """A failing VM build does not stop the container image.

    arrange: containers and VMs wanted; LXD refuses VMs.
    act: build.
    assert: not ok; the container image built; one lxd error.
    """
    lxd = ScriptLxd()
    original = lxd.create_instance

    def create(spec: Any) -> None:
        if spec.instance_type is VM:
            raise LxdError("VMs are not supported here")
        original(spec)

    lxd.create_instance = create  # type: ignore[method-assign]  # wrapping the fake's method to refuse VMs
    config = build_config(tmp_path, runners={"containers": 1, "virtual_machines": 1})

    record = make_builder(config, lxd, clock).build()

    assert not record.ok
    assert [built.alias for built in record.images] == [STABLE]
    assert [error.kind for error in record.errors] == ["lxd"]


def test_no_runners_configured_builds_nothing(tmp_path: Path, clock: FakeClock) -> None:
    """With no runners configured nothing is built.

    arrange: zero containers and zero VMs.
    act: build.
    assert: ok with a note; no instance created.
    """
    lxd = ScriptLxd()
    config = build_config(tmp_path, runners={"containers": 0, "virtual_machines": 0})

    record = make_builder(config, lxd, clock).build()

    assert record.ok
    assert record.note
    assert lxd.created == []


def test_remove_all_deletes_every_version_and_builder(tmp_path: Path, clock: FakeClock) -> None:
    """Removing all deletes every version the unit built, and only those.

    arrange: two builds for containers and VMs; an image of someone else.
    act: remove all.
    assert: four images removed; the base images and the other image left.
    """
    lxd = ScriptLxd()
    config = build_config(tmp_path, runners={"containers": 1, "virtual_machines": 1})
    builder = make_builder(config, lxd, clock)
    builder.build()
    clock.advance(60)
    builder.build()
    lxd.images.add("someone-else")

    removed = builder.remove_all()

    assert len(removed) == 4
    assert lxd.image_store == {}
    assert lxd.images == {"jammy", "noble", "someone-else"}


# ----- the script ---------------------------------------------------------------------------


def render(tmp_path: Path, clock: FakeClock, **overrides: Any) -> str:
    config = build_config(tmp_path, **overrides)
    builder = make_builder(config, FakeLxd(), clock)
    return builder.render_script(
        BUILDER, CONTAINER, builder.resolve_source(), f"{STABLE}-20260601120000"
    )


def test_script_is_strict_and_hides_no_failure(tmp_path: Path, clock: FakeClock) -> None:
    """The build script stops at the first failure and hides none.

    arrange: the rendered build script.
    act: read it and check its syntax with bash -n.
    assert: a bash shebang; `set -Eeuo pipefail` first; no `|| true` or `set +e`; valid syntax.
    """
    script = render(tmp_path, clock)
    lines = script.splitlines()

    assert lines[0] == "#!/bin/bash"
    # The first command, before any step: every failure stops the script.
    assert next(line for line in lines if line and not line.startswith("#")) == (
        "set -Eeuo pipefail"
    )
    assert "|| true" not in script
    assert "set +e" not in script
    subprocess.run(["/bin/bash", "-n"], input=script, text=True, check=True, timeout=30)


def test_script_writes_the_proxies_inside_the_builder(tmp_path: Path, clock: FakeClock) -> None:
    """The script writes the model proxy for apt and the environment inside the builder.

    arrange: http, https and no_proxy values.
    act: render the script.
    assert: apt proxy lines, the proxy variables with the loopback bypass added, no AddrConfig and
        no lxc command.
    """
    script = render(
        tmp_path,
        clock,
        proxy={"http": "http://squid:3128", "https": "http://squid:3129", "no_proxy": "corp"},
    )

    assert 'Acquire::http::Proxy "http://squid:3128";' in script
    assert 'Acquire::https::Proxy "http://squid:3129";' in script
    assert "AddrConfig" not in script
    assert 'https_proxy="http://squid:3129"' in script
    assert 'no_proxy="corp,localhost,127.0.0.1,::1"' in script
    assert "export http_proxy=http://squid:3128" in script
    # Written by the script, which runs in the builder: no host path or lxc command.
    assert "lxc " not in script


def test_apt_proxy_overrides_the_model_proxy_for_apt(tmp_path: Path, clock: FakeClock) -> None:
    """An apt proxy replaces the model proxy for apt.

    arrange: a model proxy and an apt proxy on loopback.
    act: render the script.
    assert: apt's http and https proxies are the apt proxy, with AddrConfig off so loopback is
        reached.
    """
    script = render(
        tmp_path,
        clock,
        proxy={"http": "http://squid:3128"},
        image={"apt_proxy": "http://127.0.0.1:3142"},
    )

    assert 'Acquire::http::Proxy "http://127.0.0.1:3142";' in script
    assert 'Acquire::https::Proxy "http://127.0.0.1:3142";' in script
    # A proxy on loopback is reached even when the builder has no other IPv4 address.
    assert 'Acquire::Connect::AddrConfig "false";' in script


def test_script_without_proxy_removes_stale_proxy_settings(
    tmp_path: Path, clock: FakeClock
) -> None:
    """Without a proxy the script removes an earlier proxy setting and exports none.

    arrange: no proxy.
    act: render the script.
    assert: the apt proxy file removed; no http_proxy exported.
    """
    script = render(tmp_path, clock)

    assert "rm -f /etc/apt/apt.conf.d/90github-runner-proxy" in script
    assert "export http_proxy" not in script


def test_unsafe_proxy_value_is_refused(tmp_path: Path, clock: FakeClock) -> None:
    """A proxy value that would break the script's quoting is refused.

    arrange: a proxy URL holding a quote and a command.
    act: render the script.
    assert: ImageBuildError about quoting.
    """
    with pytest.raises(ImageBuildError, match="quote"):
        # The settings model refuses spaces and quotes in a proxy; a backslash reaches here.
        render(tmp_path, clock, proxy={"http": "http://proxy:3128/\\x"})


def test_script_steps(tmp_path: Path, clock: FakeClock) -> None:
    """The script holds the build's steps.

    arrange: the default build configuration.
    act: render the script.
    assert: timers masked, unattended upgrades purged, strict apt update, the default packages, the
        docker group, apt clean and a checksum check.
    """
    script = render(tmp_path, clock)

    assert "systemctl mask apt-daily.timer apt-daily-upgrade.timer" in script
    assert "purge unattended-upgrades" in script
    assert "APT::Update::Error-Mode=any update" in script
    assert "install \\\n        " + " ".join(image.DEFAULT_PACKAGES) in script
    assert "groupadd --system docker" in script
    assert "apt-get clean" in script
    assert "sha256sum --check --strict" in script


@pytest.mark.parametrize(
    ("settings", "packages", "downloads_yq"),
    [
        pytest.param({}, list(image.DEFAULT_PACKAGES), True, id="defaults"),
        pytest.param({"packages": ["git"], "yq": "package"}, ["git", "yq"], False, id="apt yq"),
        pytest.param({"packages": ["git"], "yq": "none"}, ["git"], False, id="no yq"),
    ],
)
def test_packages_and_yq(
    tmp_path: Path,
    clock: FakeClock,
    settings: dict[str, Any],
    packages: list[str],
    downloads_yq: bool,
) -> None:
    """The package list and how yq is installed follow the image settings.

    arrange: default settings, packages with yq from apt, or packages without yq.
    act: render the script.
    assert: the install line lists the expected packages; yq is downloaded only by default.
    """
    script = render(tmp_path, clock, image=settings)

    assert "install \\\n        " + " ".join(packages) + "\n" in script
    assert ("install_yq\n" in script) is downloads_yq


def test_yq_download_is_pinned_per_architecture(tmp_path: Path, clock: FakeClock) -> None:
    """The yq download is pinned by URL and digest for each architecture.

    arrange: the default build configuration.
    act: render the script.
    assert: one case line per architecture with its URL and sha256; the pinned version.
    """
    script = render(tmp_path, clock)

    for arch, digest in image.yq_downloads(build_config(tmp_path)).items():
        assert f"{arch}) url={shlex.quote(digest['url'])}; digest={digest['sha256']} ;;" in script
    assert "/v4.52.4/yq_linux_amd64" in script


def bash(script: str, tmp_path: Path, snippet: str) -> subprocess.CompletedProcess[str]:
    """Source the rendered script (which defines its functions only) and run a snippet."""
    path = tmp_path / "build-image.sh"
    path.write_text(script)
    return subprocess.run(
        ["/bin/bash", "-c", f"source {shlex.quote(str(path))}\nsleep() {{ :; }}\n{snippet}"],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )


def test_sourcing_the_script_runs_no_step(tmp_path: Path, clock: FakeClock) -> None:
    """Sourcing the script defines its functions but runs no step.

    arrange: the rendered script.
    act: source it in bash and echo.
    assert: exit 0 and only the echo's output.
    """
    completed = bash(render(tmp_path, clock), tmp_path, "echo sourced")

    assert completed.returncode == 0, completed.stderr
    assert completed.stdout == "sourced\n"


def test_retry_fails_when_every_attempt_failed(tmp_path: Path, clock: FakeClock) -> None:
    """The original script's retry returned success after its last attempt.

    arrange: the rendered script.
    act: retry `false` 3 times, then echo.
    assert: exit 1, the echo not reached, and stderr saying it failed 3 times.
    """
    completed = bash(render(tmp_path, clock), tmp_path, "retry 3 10 false\necho not reached")

    assert completed.returncode == 1
    assert "not reached" not in completed.stdout
    assert "'false' failed 3 times" in completed.stderr


def test_retry_returns_once_an_attempt_succeeds(tmp_path: Path, clock: FakeClock) -> None:
    """The retry helper returns as soon as an attempt succeeds.

    arrange: a command that succeeds on its second attempt.
    act: retry it up to 5 times, then echo.
    assert: exit 0, the echo reached, two attempts made.
    """
    counter = tmp_path / "attempts"
    snippet = (
        f"attempt() {{ echo x >> {counter}; [ $(wc -l < {counter}) -ge 2 ]; }}\n"
        "retry 5 10 attempt\necho reached"
    )

    completed = bash(render(tmp_path, clock), tmp_path, snippet)

    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.endswith("reached\n")
    assert counter.read_text() == "x\nx\n"


def test_a_failing_command_stops_the_script_naming_its_step(
    tmp_path: Path, clock: FakeClock
) -> None:
    """A failing command stops the script and names its step.

    arrange: a step "installing the packages" whose command fails.
    act: run the snippet with the script sourced.
    assert: exit 1, nothing after it run, and stderr naming the step and the exit code.
    """
    snippet = 'step "installing the packages"\nfalse\necho not reached'

    completed = bash(render(tmp_path, clock), tmp_path, snippet)

    assert completed.returncode == 1
    assert "not reached" not in completed.stdout
    assert 'step "installing the packages" failed with exit code 1' in completed.stderr


def test_a_failing_pipeline_stage_stops_the_script(tmp_path: Path, clock: FakeClock) -> None:
    """A failing stage of a pipeline stops the script.

    arrange: `false | cat` followed by an echo.
    act: run it with the script sourced.
    assert: exit 1 and the echo not reached.
    """
    completed = bash(render(tmp_path, clock), tmp_path, "false | cat\necho not reached")

    assert completed.returncode == 1
    assert "not reached" not in completed.stdout


# ----- when to build ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"image": {"packages": ["git"]}}, id="packages"),
        pytest.param({"image": {"source": "ubuntu:noble"}}, id="source"),
        pytest.param({"proxy": {"http": "http://squid:3128"}}, id="proxy"),
        pytest.param({"image": {"apt_proxy": "http://cache:3142"}}, id="apt proxy"),
        pytest.param({"runners": {"virtual_machines": 1}}, id="a vm image is needed"),
        pytest.param({"runners": {"base_image": "noble"}}, id="base image"),
    ],
)
def test_recipe_changes_with_what_the_image_is_built_from(
    tmp_path: Path, change: dict[str, Any]
) -> None:
    """The recipe changes with every setting that shapes the image.

    arrange: a change of packages, source, proxy, apt proxy, VM need, or base image.
    act: compute the recipe before and after.
    assert: they differ.
    """
    assert recipe(build_config(tmp_path)) != recipe(build_config(tmp_path, **change))


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"runners": {"containers": 5}}, id="counts"),
        pytest.param({"image": {"timeout": 99}}, id="timeout"),
        pytest.param({"runners": {"disk": "50GiB"}}, id="container disk"),
        pytest.param({"github": {"path": "other/repo"}}, id="github"),
    ],
)
def test_recipe_ignores_what_does_not_shape_the_image(
    tmp_path: Path, change: dict[str, Any]
) -> None:
    """The recipe ignores settings that do not shape the image.

    arrange: a change of runner counts, timeout, container disk or GitHub path.
    act: compute the recipe before and after.
    assert: they are equal.
    """
    assert recipe(build_config(tmp_path)) == recipe(build_config(tmp_path, **change))


def test_recipe_changes_with_the_script_template(tmp_path: Path) -> None:
    """The recipe changes when the build script's template changes.

    arrange: a copy of the script template in a templates directory.
    act: compute the recipe, then change the template.
    assert: the recipe differs.
    """
    templates = tmp_path / "templates"
    templates.mkdir()
    source = build_config(tmp_path).templates / image.SCRIPT_TEMPLATE
    (templates / image.SCRIPT_TEMPLATE).write_bytes(source.read_bytes())
    config = build_config(tmp_path, templates_dir=str(templates))
    before = recipe(config)

    (templates / image.SCRIPT_TEMPLATE).write_text(source.read_text() + "# changed\n")

    assert recipe(config) != before


NOW = datetime.datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def record(config: ManagerConfig, ok: bool = True, age: float = 60, **fields: Any) -> BuildRecord:
    finished = NOW - datetime.timedelta(seconds=age)
    return BuildRecord(
        ok=ok,
        started_at=finished - datetime.timedelta(minutes=5),
        finished_at=finished,
        recipe=fields.pop("recipe", recipe(config)),
        **fields,
    )


def test_build_due(tmp_path: Path) -> None:
    """A build is due when none was made, the recipe changed, or a failed build is an hour old.

    arrange: a build configuration and records: none, current, another recipe, a fresh failure, an
        old failure.
    act: ask whether a build is due for each.
    assert: due with a reason for none, another recipe and the old failure; not due otherwise.
    """
    config = build_config(tmp_path)

    assert build_due(config, None, NOW) == "no runner image has been built yet"
    assert build_due(config, record(config), NOW) is None
    assert build_due(config, record(config, recipe="other"), NOW)
    assert build_due(config, record(config, ok=False), NOW) is None
    assert build_due(config, record(config, ok=False, age=3601), NOW) == "the last build failed"


def test_no_build_is_due_without_building_or_runners(tmp_path: Path) -> None:
    """No build is due when the charm does not build or no runner is wanted.

    arrange: a configuration without building; one building for zero runners.
    act: ask whether a build is due with no record.
    assert: not due for either.
    """
    assert build_due(make_config(tmp_path), None, NOW) is None
    idle = build_config(tmp_path, runners={"containers": 0, "virtual_machines": 0})
    assert build_due(idle, None, NOW) is None


def test_unreadable_record_is_none(tmp_path: Path) -> None:
    """A missing or unreadable build record reads as none.

    arrange: no record file, then one holding broken JSON.
    act: read the record each time.
    assert: None both times.
    """
    path = tmp_path / "image.json"
    assert read_record(path) is None
    path.write_text("{not json")
    assert read_record(path) is None


def test_script_installs_aproxy_only_when_runners_use_it(tmp_path: Path, clock: FakeClock) -> None:
    """The script installs aproxy, and nftables for it, only when the runners use it.

    arrange: a configuration without aproxy and one with aproxy on.
    act: render the script for each.
    assert: aproxy only in the second, with nftables, and valid bash syntax.
    """
    plain = render(tmp_path, clock)
    with_aproxy = render(tmp_path, clock, proxy={"http": "http://squid:3128", "aproxy": True})

    assert "snap install aproxy" not in plain
    assert "snap install aproxy" in with_aproxy
    assert " nftables" in with_aproxy, "the redirect rules need nft in the image"
    subprocess.run(["/bin/bash", "-n"], input=with_aproxy, text=True, check=True, timeout=30)


# ----- the original charm's runner environment ----------------------------------------------


def render_vm(tmp_path: Path, clock: FakeClock, **overrides: Any) -> str:
    config = build_config(tmp_path, **overrides)
    builder = make_builder(config, FakeLxd(), clock)
    return builder.render_script(
        f"{BUILDER}-vm", VM, builder.resolve_source(), f"{STABLE}-vm-20260601120000"
    )


def test_script_prepares_the_original_runner_environment(tmp_path: Path, clock: FakeClock) -> None:
    """The script prepares what the original image had: yarn, runner user, python, docker.

    arrange: the default build configuration.
    act: render the script.
    assert: main runs the yarn, user, python and docker steps, the docker group first; no kernel
        step for containers.
    """
    script = render(tmp_path, clock)
    main = script[script.index("main() {") :]

    for step in ("install_yarn", "prepare_runner_user", "link_python", "accept_docker_user_chain"):
        assert f"    {step}\n" in main
    assert main.index("prepare_docker_group") < main.index("prepare_runner_user")
    assert "usermod -aG docker,microk8s ubuntu" in script
    assert "ln -sfn python3 /usr/bin/python" in script
    assert "npm install --global yarn" in script
    # Containers share the host's kernel: no kernel in their image.
    assert "install_hwe_kernel" not in script


def test_yarn_that_npm_cannot_install_does_not_stop_the_build(
    tmp_path: Path, clock: FakeClock
) -> None:
    """A yarn that npm cannot install only warns.

    arrange: an npm that fails and no yarn on the path.
    act: run the yarn step with the script sourced.
    assert: exit 0, the script goes on, and stderr says the image has no yarn.
    """
    snippet = "npm() { return 1; }\ninstall_yarn\necho reached"

    completed = bash(render(tmp_path, clock), tmp_path, f"PATH=/nonexistent\n{snippet}")

    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.endswith("reached\n")
    assert "the image has no yarn" in completed.stderr


def test_yarn_needs_npm(tmp_path: Path, clock: FakeClock) -> None:
    """No yarn step without npm in the packages.

    arrange: packages without npm.
    act: render the script.
    assert: no install_yarn.
    """
    script = render(tmp_path, clock, image={"packages": ["git"]})

    assert "install_yarn" not in script


def test_vm_image_gets_the_hwe_kernel(tmp_path: Path, clock: FakeClock) -> None:
    """What renders for a VM image (VMs cannot run here), and the step run with a fake apt.

    arrange: the VM build script and a fake apt that records its calls.
    act: run the kernel step on Ubuntu 22.04, 24.04, then on Debian.
    assert: the kernel step follows the packages; the HWE kernel of the release is installed on
        Ubuntu; Debian keeps its kernel.
    """
    script = render_vm(tmp_path, clock)
    os_release = tmp_path / "os-release"
    calls = tmp_path / "apt-calls"
    fake_apt = f'APT=(record)\nrecord() {{ echo "$*" >> {calls}; }}\n'
    main = script[script.index("main() {") :]
    assert main.index("install_packages") < main.index("install_hwe_kernel")

    for release, expected in (
        ('ID=ubuntu\nVERSION_ID="22.04"\n', "install linux-generic-hwe-22.04\n"),
        ('ID=ubuntu\nVERSION_ID="24.04"\n', "install linux-generic-hwe-24.04\n"),
    ):
        os_release.write_text(release)
        calls.unlink(missing_ok=True)
        completed = bash(script, tmp_path, f"{fake_apt}OS_RELEASE={os_release} install_hwe_kernel")
        assert completed.returncode == 0, completed.stderr
        assert calls.read_text() == expected

    os_release.write_text('ID=debian\nVERSION_ID="12"\n')
    calls.unlink(missing_ok=True)
    completed = bash(script, tmp_path, f"{fake_apt}OS_RELEASE={os_release} install_hwe_kernel")
    assert completed.returncode == 0, completed.stderr
    assert not calls.exists()
    assert "keeping the image's kernel" in completed.stderr


def test_docker_user_rule_is_inserted_once_per_docker_start(tmp_path: Path) -> None:
    """The drop-in's command, run twice against a fake iptables that keeps its rules.

    arrange: a fake iptables that checks and inserts rules in a file.
    act: run the DOCKER-USER accept command twice.
    assert: both runs succeed; the rule is there once.
    """
    rules = tmp_path / "rules"
    rules.write_text("")
    fake = tmp_path / "iptables"
    fake.write_text(
        "#!/bin/bash\n"
        f'case "$1" in\n'
        f'  -C) grep -qx -- "${{*:2}}" {rules} ;;\n'
        f'  -I) echo "${{*:2}}" >> {rules} ;;\n'
        "esac\n"
    )
    fake.chmod(0o755)

    for _ in range(2):
        completed = subprocess.run(
            ["/bin/sh", "-c", image.DOCKER_USER_ACCEPT],
            env={"PATH": f"{tmp_path}:/usr/bin:/bin"},
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
        assert completed.returncode == 0, completed.stderr

    assert rules.read_text() == "DOCKER-USER -j ACCEPT\n"


def test_runner_dependency_check_names_what_is_missing(tmp_path: Path, clock: FakeClock) -> None:
    """The .NET runner's libraries (installdependencies.sh): a root without ICU fails the check.

    arrange: a root with every runner library but ICU.
    act: check the dependencies, then again with ICU added.
    assert: the first check fails naming libicuuc.so; the second passes.
    """
    root = tmp_path / "root"
    libs = root / "usr/lib/x86_64-linux-gnu"
    libs.mkdir(parents=True)
    for library in ("liblttng-ust.so.1", "libkrb5.so.3", "libz.so.1", "libssl.so.3"):
        (libs / library).touch()
    script = render(tmp_path, clock)

    missing = bash(script, tmp_path, f"check_runner_dependencies {shlex.quote(str(root))}")
    (libs / "libicuuc.so.72").touch()
    complete = bash(script, tmp_path, f"check_runner_dependencies {shlex.quote(str(root))}")

    assert missing.returncode == 1
    assert "needs libicuuc.so, missing" in missing.stderr
    assert complete.returncode == 0, complete.stderr


def test_runner_dependencies_take_the_first_package_apt_knows(
    tmp_path: Path, clock: FakeClock
) -> None:
    """Each dependency group installs the first candidate apt has (names vary by release).

    arrange: a fake apt-cache knowing one package name per group, and one knowing no ICU.
    act: install the runner dependencies with each.
    assert: the known names installed; without ICU, exit 1 naming the ICU group.
    """
    known = "libssl3 libicu74 liblttng-ust1t64 libkrb5-3 zlib1g"
    snippet = (
        f'apt-cache() {{ case " {known} " in *" $2 "*) return 0 ;; esac; return 100; }}\n'
        "APT=(echo apt-get)\ninstall_runner_dependencies"
    )

    completed = bash(render(tmp_path, clock), tmp_path, snippet)
    without_icu = bash(
        render(tmp_path, clock), tmp_path, snippet.replace("libicu74", "libicu-nothing")
    )

    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.splitlines()[-1] == (
        "apt-get install liblttng-ust1t64 libkrb5-3 zlib1g libssl3 libicu74"
    )
    assert without_icu.returncode == 1
    assert "no package of the runner's dependency group (libicu76" in without_icu.stderr
