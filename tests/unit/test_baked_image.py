# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""The baked runner image (issue 13): what a build bakes in, and what a spawn from it does."""

from __future__ import annotations

import base64
import dataclasses
import gzip
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from github_runner_manager.binary import CachedRunner
from github_runner_manager.config import config_hash
from github_runner_manager.image import (
    BOOT_KEYS,
    BOOT_WAITS,
    PROPERTY_BOOT,
    PROPERTY_RUNNER_SHA256,
    PROPERTY_RUNNER_VERSION,
    RUNNER_ARCHIVE_PATH,
    RUNNER_BOOT,
    ImageBuilder,
    ImageSource,
    builder_environment,
    recipe,
    root_disk,
    runner_cache_dir,
    stable_alias,
)
from github_runner_manager.lxd import ExecResult
from github_runner_manager.models import InstanceType, RunnerApplication
from github_runner_manager.runner import (
    DIST_DIR,
    UNIT_PATH,
    UNIT_WANTS_PATH,
    RunnerSpawner,
    boot_config,
)
from github_runner_manager.templates import TemplateRenderer

from .conftest import FakeClock, make_config
from .fakes import FakeImage, FakeLxd
from .test_image import ScriptLxd, build_config

CONTAINER = InstanceType.CONTAINER
VM = InstanceType.VIRTUAL_MACHINE
SHA = "a" * 64
TOKEN = "ghp_unit_test_token"  # make_config's token: it must never reach an instance


def application(sha: str = SHA, version: str = "2.330.0") -> RunnerApplication:
    return RunnerApplication(
        os="linux",
        architecture="x64",
        download_url="https://example.invalid/runner.tar.gz",
        filename=f"actions-runner-linux-x64-{version}.tar.gz",
        sha256_checksum=sha,
    )


def cache_runner(config_dir: Path, sha: str = SHA, version: str = "2.330.0") -> CachedRunner:
    """Put a runner application in a manager's cache directory, as RunnerBinaryCache does."""
    app = application(sha, version)
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / app.filename).write_bytes(b"runner-archive")
    (config_dir / "runner-application.json").write_text(json.dumps(dataclasses.asdict(app)))
    return CachedRunner(path=config_dir / app.filename, application=app)


def bake_image(lxd: FakeLxd, alias: str, properties: dict[str, str]) -> None:
    """Put an image under an alias, with these properties."""
    lxd.image_store["fp-baked"] = FakeImage("fp-baked", "container", properties, "builder")
    lxd.images.add(alias)
    lxd.aliases[alias] = "fp-baked"


def make_spawner(tmp_path, fake_lxd, fake_github, clock, sha: str | None = SHA, **overrides):
    config = make_config(tmp_path, **overrides)
    return RunnerSpawner(
        config,
        fake_lxd,
        fake_github,
        TemplateRenderer(config.templates),
        runner_tarball=b"tarball-bytes",
        monotonic=clock.monotonic,
        sleep=clock.sleep,
        wall_clock=clock,
        runner_sha256=sha,
    )


def unpack(value: str) -> dict[str, list]:
    return json.loads(gzip.decompress(base64.b64decode(value)))


# ----- spawning -------------------------------------------------------------------------------


def test_a_jit_container_from_a_current_baked_image_is_create_and_start(
    tmp_path, lxd, github, clock
):
    """A runner from an image with its runner baked in gets no file: its keys carry all.

    arrange: the runners' image records the cached runner's SHA-256.
    act: spawn a JIT container.
    assert: no file, link or exec; the create request holds the JIT configuration and the
        runner's files (no unit, no JIT file, no archive, no token) as user keys, devlxd on.
    """
    bake_image(lxd, "jammy", {PROPERTY_RUNNER_SHA256: SHA})

    result = make_spawner(tmp_path, lxd, github, clock).spawn(CONTAINER, "hash-1")

    instance = lxd.instances[result.name]
    assert (instance.files, instance.links, instance.commands) == ({}, {}, [])
    assert instance.status == "Running"
    assert set(result.timings) == {"register", "create", "start"}
    config = instance.spec.config
    assert config[BOOT_KEYS["jit_key"]] == f"jit-for-{result.name}"
    assert config["security.devlxd"] == "true"
    files = unpack(config[BOOT_KEYS["files_key"]])
    assert f"{DIST_DIR}/start.sh" in files and f"{DIST_DIR}/runner.env" in files
    assert files[f"{DIST_DIR}/start.sh"][0] == 0o755
    assert result.name in files[f"{DIST_DIR}/start.sh"][1]
    assert UNIT_PATH not in files
    assert not {f"{DIST_DIR}/jitconfig", f"{DIST_DIR}/runner.tar.gz"} & set(files)
    assert TOKEN not in json.dumps(config) + json.dumps(files)


def test_an_image_without_a_baked_runner_gets_everything_pushed(tmp_path, lxd, github, clock):
    """An image from before baking (no runner property) gets the runner pushed as before.

    arrange: the runners' image records no runner application.
    act: spawn a JIT container.
    assert: the archive, the JIT file and the unit link pushed; no boot keys.
    """
    bake_image(lxd, "jammy", {"description": "an old image"})

    result = make_spawner(tmp_path, lxd, github, clock).spawn(CONTAINER, "hash-1")

    instance = lxd.instances[result.name]
    assert instance.files[f"{DIST_DIR}/runner.tar.gz"][0] == b"tarball-bytes"
    assert instance.files[f"{DIST_DIR}/jitconfig"][0] == f"jit-for-{result.name}".encode()
    assert instance.links == {UNIT_WANTS_PATH: UNIT_PATH}
    assert BOOT_KEYS["jit_key"] not in instance.spec.config
    assert set(result.timings) == {"register", "create", "push", "start"}


def test_an_image_with_another_runner_version_gets_the_runner_pushed(tmp_path, lxd, github, clock):
    """A baked image with an older runner (an update not yet rebuilt) gets the new one pushed.

    arrange: the image records another SHA-256 than the cached runner's.
    act: spawn a JIT container.
    assert: the archive and files pushed; the image's unit is enabled already: no link pushed.
    """
    bake_image(lxd, "jammy", {PROPERTY_RUNNER_SHA256: "b" * 64})

    result = make_spawner(tmp_path, lxd, github, clock).spawn(CONTAINER, "hash-1")

    instance = lxd.instances[result.name]
    assert instance.files[f"{DIST_DIR}/runner.tar.gz"][0] == b"tarball-bytes"
    assert instance.files[UNIT_PATH][1] == 0o644
    assert instance.links == {}
    assert BOOT_KEYS["jit_key"] not in instance.spec.config


@pytest.mark.parametrize(
    ("instance_type", "jit", "sha"),
    [
        pytest.param(VM, True, SHA, id="virtual machine"),
        pytest.param(CONTAINER, False, SHA, id="registration token"),
        pytest.param(CONTAINER, True, None, id="runner sha unknown"),
    ],
)
def test_only_jit_containers_with_a_known_runner_boot_from_the_keys(
    tmp_path, lxd, github, clock, instance_type, jit, sha
):
    """A VM, the token flow, or an unknown runner SHA-256 keep the pushed path.

    arrange: a current baked image (for both types).
    act: spawn.
    assert: the archive pushed, no boot keys.
    """
    bake_image(lxd, "jammy", {PROPERTY_RUNNER_SHA256: SHA})
    github.jit = jit
    if instance_type is VM:
        lxd.exec_handler = lambda name, command, env: ExecResult(0, "running\n", "")

    result = make_spawner(
        tmp_path, lxd, github, clock, sha, runners={"containers": 0, "virtual_machines": 1}
    ).spawn(instance_type, "hash-1")

    instance = lxd.instances[result.name]
    assert instance.files[f"{DIST_DIR}/runner.tar.gz"][0] == b"tarball-bytes"
    assert BOOT_KEYS["jit_key"] not in instance.spec.config


def test_an_image_lookup_failure_falls_back_to_pushing(tmp_path, lxd, github, clock):
    """LXD failing to list images does not fail the spawn: the runner is pushed.

    arrange: a current baked image; listing images fails.
    act: spawn a JIT container.
    assert: the runner created with the archive pushed.
    """
    from github_runner_manager.errors import LxdError

    bake_image(lxd, "jammy", {PROPERTY_RUNNER_SHA256: SHA})
    lxd.fail["list_images"] = LxdError("cannot list LXD images")

    result = make_spawner(tmp_path, lxd, github, clock).spawn(CONTAINER, "hash-1")

    assert f"{DIST_DIR}/runner.tar.gz" in lxd.instances[result.name].files


def test_the_image_is_looked_up_once_per_spawner(tmp_path, lxd, github, clock):
    """A batch of spawns asks LXD about the image once.

    arrange: a current baked image; a list_images counter.
    act: spawn three containers with one spawner.
    assert: one image listing; all three booted from the keys.
    """
    bake_image(lxd, "jammy", {PROPERTY_RUNNER_SHA256: SHA})
    calls: list[int] = []
    original = lxd.list_images

    def counting() -> list:
        calls.append(1)
        return original()

    lxd.list_images = counting
    spawner = make_spawner(tmp_path, lxd, github, clock)

    names = [spawner.spawn(CONTAINER, "hash-1").name for _ in range(3)]

    assert len(calls) == 1
    assert all(lxd.instances[name].files == {} for name in names)


def test_boot_config_round_trips_the_files():
    """The files key decodes to the files given, with their modes.

    arrange: two files.
    act: boot_config.
    assert: the decoded document matches; the JIT key holds the JIT config; devlxd on.
    """
    keys = boot_config({"/a": (b"one\n", 0o755), "/b/c": (b"two", 0o600)}, "jit")

    assert unpack(keys[BOOT_KEYS["files_key"]]) == {"/a": [0o755, "one\n"], "/b/c": [0o600, "two"]}
    assert keys[BOOT_KEYS["jit_key"]] == "jit"
    assert keys["security.devlxd"] == "true"


# ----- building -------------------------------------------------------------------------------


def test_a_build_bakes_the_cached_runner_and_records_its_version(tmp_path, clock: FakeClock):
    """The build pushes the cached runner into the builder and publishes its version.

    arrange: a runner application in the manager's cache.
    act: build the container image.
    assert: the archive pushed into the builder; the script bakes it; the image's properties
        name the runner's version and SHA-256, and a boot program that can wait as a standby.
    """
    config = build_config(tmp_path)
    cache_runner(runner_cache_dir(config))
    lxd = ScriptLxd()
    builder = ImageBuilder(config, lxd, clock=clock, monotonic=clock.monotonic, sleep=clock.sleep)

    record = builder.build([CONTAINER])

    assert record.ok, record.errors
    (built,) = record.images
    properties = lxd.image_store[built.fingerprint].properties
    assert properties[PROPERTY_RUNNER_SHA256] == SHA
    assert properties[PROPERTY_RUNNER_VERSION] == "2.330.0"
    assert properties[PROPERTY_BOOT] == BOOT_WAITS  # its boot can wait as a standby
    published_from = lxd.image_store[built.fingerprint].published_from
    script = lxd.scripts[published_from]
    assert "\n    bake_runner\n" in script and "\n    install_packages\n" in script
    assert RUNNER_BOOT in script and BOOT_KEYS["jit_key"] in script


def test_a_build_without_a_cached_runner_bakes_none(tmp_path, clock: FakeClock):
    """With no runner cached yet, the image is built without one (runners get it pushed).

    arrange: an empty cache.
    act: build.
    assert: no runner properties; the script has no bake step.
    """
    config = build_config(tmp_path)
    lxd = ScriptLxd()
    builder = ImageBuilder(config, lxd, clock=clock, monotonic=clock.monotonic, sleep=clock.sleep)

    record = builder.build([CONTAINER])

    (built,) = record.images
    assert PROPERTY_RUNNER_SHA256 not in lxd.image_store[built.fingerprint].properties
    assert "bake_runner" not in lxd.scripts[lxd.image_store[built.fingerprint].published_from]


def test_bake_only_renders_no_package_steps(tmp_path, clock: FakeClock):
    """The bake-only script bakes the runner and installs nothing.

    arrange: a cached runner.
    act: render the script in bake-only mode.
    assert: bake_runner and the clean-up run; no apt step; bash accepts the script.
    """
    config = build_config(tmp_path)
    runner = cache_runner(runner_cache_dir(config))
    builder = ImageBuilder(config, ScriptLxd(), clock=clock)

    script = builder.render_script(
        "builder", CONTAINER, ImageSource("jammy"), "v1", runner, bake_only=True
    )

    main = script[script.index("main() {") :]
    assert "bake_runner" in main and "clean_up" in main
    assert "install_packages" not in main and "update_package_lists" not in main
    assert RUNNER_ARCHIVE_PATH in script
    subprocess.run(["bash", "-n"], input=script, text=True, check=True)


def test_the_baked_boot_program_is_valid_python(tmp_path, clock: FakeClock):
    """The boot program the build writes compiles.

    arrange: a cached runner.
    act: render the build script; cut out the boot program.
    assert: it compiles, and reads the two keys given on its command line.
    """
    config = build_config(tmp_path)
    runner = cache_runner(runner_cache_dir(config))
    script = ImageBuilder(config, ScriptLxd(), clock=clock).render_script(
        "builder", CONTAINER, ImageSource("jammy"), "v1", runner
    )
    start = script.index("#!/usr/bin/python3")
    program = script[start : script.index("\nEOF\n", start)]

    compile(program, RUNNER_BOOT, "exec")
    assert f"ExecStart={RUNNER_BOOT} {BOOT_KEYS['files_key']} {BOOT_KEYS['jit_key']}" in script


def test_a_new_runner_application_changes_the_recipe(tmp_path):
    """update-dependencies' new runner makes the image due for a rebuild.

    arrange: a runner cached.
    act: cache another runner version.
    assert: the recipe changes.
    """
    config = build_config(tmp_path)
    cache_runner(runner_cache_dir(config))
    before = recipe(config)

    cache_runner(runner_cache_dir(config), sha="c" * 64, version="2.331.0")

    assert recipe(config) != before


# ----- shared helpers -------------------------------------------------------------------------


def test_runners_and_builders_share_the_root_disk(tmp_path, lxd, github, clock):
    """Runner and builder root disks come from one helper.

    arrange: a 7GiB disk on pool fast.
    act: describe a runner and a builder.
    assert: both root disks equal root_disk(config).
    """
    overrides: dict[str, Any] = {"runners": {"disk": "7GiB"}, "lxd": {"storage_pool": "fast"}}
    spawner = make_spawner(tmp_path, lxd, github, clock, SHA, **overrides)
    config = make_config(tmp_path, image={"build": True}, **overrides)
    builder = ImageBuilder(config, lxd, clock=clock)

    runner_spec = spawner.instance_spec("r", CONTAINER, "h")
    builder_spec = builder.builder_spec("b", CONTAINER, ImageSource("jammy"))

    expected = {"type": "disk", "path": "/", "pool": "fast", "size": "7GiB"}
    assert root_disk(config) == expected
    assert runner_spec.devices["root"] == builder_spec.devices["root"] == expected


def test_builder_environment_uses_the_proxy_bypass_list(tmp_path):
    """The build's no_proxy is ProxySettings.bypass.

    arrange: a proxy with a no_proxy list.
    act: builder_environment.
    assert: no_proxy and NO_PROXY equal config.proxy.bypass.
    """
    config = make_config(
        tmp_path, proxy={"http": "http://proxy:3128", "no_proxy": "internal,localhost"}
    )

    env = builder_environment(config)

    assert env["no_proxy"] == env["NO_PROXY"] == config.proxy.bypass
    assert env["no_proxy"] == "internal,localhost,127.0.0.1,::1"


def test_the_stable_alias_is_what_a_baked_spawn_looks_up(tmp_path, lxd, github, clock):
    """With image.build on, the spawner checks the built image's alias.

    arrange: image.build on; the stable alias points at a current baked image.
    act: spawn a JIT container.
    assert: it boots from the keys; its hash input is unaffected (config_hash is stable).
    """
    config = build_config(tmp_path)
    bake_image(lxd, stable_alias(config, CONTAINER), {PROPERTY_RUNNER_SHA256: SHA})

    result = make_spawner(tmp_path, lxd, github, clock, image={"build": True}).spawn(
        CONTAINER, config_hash({"a": 1})
    )

    assert lxd.instances[result.name].files == {}


def test_update_dependencies_fetches_the_runner_before_the_image_build(make_manager, tmp_path):
    """update-dependencies downloads a new runner before building, so the image bakes it in.

    arrange: a binary cache recording the order of calls; an image refresher doing the same.
    act: update_dependencies.
    assert: the runner was ensured before the refresh; `runner_updated` survives the second
        (no-change) check of the reconcile.
    """
    from .fakes import FakeBinaryCache

    order: list[str] = []

    class OrderedCache(FakeBinaryCache):
        def ensure(self):
            order.append("ensure")
            runner = super().ensure()
            first = order.count("ensure") == 1
            return dataclasses.replace(runner, updated=first)

    manager = make_manager(binary=OrderedCache(tmp_path))

    report = manager.update_dependencies(lambda report: order.append("refresh"))

    assert order[:2] == ["ensure", "refresh"]
    assert report.runner_updated is True
