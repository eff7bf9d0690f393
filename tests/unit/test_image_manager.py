# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""The built image in the manager's runs and in the command line (build-image, remove-images)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from github_runner_manager import cli
from github_runner_manager.errors import LxdError
from github_runner_manager.image import ImageBuilder, lock_path, stable_alias
from github_runner_manager.manager import RunnerManager
from github_runner_manager.models import GitHubRunner, InstanceType
from github_runner_manager.utils import manager_lock

from .builders import manager_on_fakes
from .conftest import PREFIX
from .fakes import FakeGitHub, FakeLxd
from .test_cli import write_config
from .test_image import ScriptLxd

CONTAINER = InstanceType.CONTAINER
STABLE = f"{PREFIX}-jammy"


def set_online(github: FakeGitHub, name: str, busy: bool) -> None:
    runner = github.by_name(name)
    assert runner is not None
    github.runners[runner.id] = GitHubRunner(runner.id, name, online=True, busy=busy)


# ----- the manager --------------------------------------------------------------------------


def test_runners_start_from_the_built_image(make_manager: Any, lxd: FakeLxd) -> None:
    """When the charm builds the image, runners start from its stable alias.

    arrange: the stable image exists; building on, one container wanted.
    act: reconcile.
    assert: one runner created from the stable alias.
    """
    lxd.images.add(STABLE)
    manager = make_manager(image={"build": True}, runners={"containers": 1})

    report = manager.reconcile()

    assert report.ok, report.errors
    (name,) = report.created
    assert lxd.instances[name].spec.image == STABLE


def test_a_missing_built_image_is_an_image_error(make_manager: Any, lxd: FakeLxd) -> None:
    """A built image that does not exist yet is an image error, and no runner is made.

    arrange: building on, one container wanted, no stable image.
    act: reconcile.
    assert: one image error telling that the image is built by build-image; no instance.
    """
    manager = make_manager(image={"build": True}, runners={"containers": 1})

    report = manager.reconcile()

    assert report.error_kinds() == {"image"}
    assert "built by build-image" in report.errors[0].message
    assert lxd.instances == {}


def test_the_image_fingerprint_is_part_of_the_configuration_hash(
    make_manager: Any,
) -> None:
    """The image's fingerprint is part of the runners' configuration hash.

    arrange: a manager and its cached runner application.
    act: compute the hashes with two fingerprints, then with none.
    assert: the two hashes differ; no image gives no hash (nothing of that type counts as stale).
    """
    manager = make_manager()
    cached = manager._binary.ensure()

    first = manager._hashes(cached, {CONTAINER: "fp-a"})
    second = manager._hashes(cached, {CONTAINER: "fp-b"})

    assert first[CONTAINER] != second[CONTAINER]
    # No image, no hash: nothing of that type counts as stale.
    assert manager._hashes(cached, {CONTAINER: None}) == {}


def test_a_new_image_replaces_idle_runners_and_lets_busy_ones_finish(
    make_manager: Any, lxd: FakeLxd, github: FakeGitHub
) -> None:
    """A new image replaces idle runners and lets busy ones finish their job.

    arrange: two runners on the image the alias points at, one idle and one busy; then a rebuild
        moves the alias to a new image.
    act: reconcile.
    assert: the idle runner removed as stale and replaced by a new one; the busy one kept.
    """
    manager = make_manager(runners={"containers": 2})
    idle, busy = manager.reconcile().created
    set_online(github, idle, busy=False)
    set_online(github, busy, busy=True)
    # A rebuild moved the alias to a new image.
    lxd.aliases["jammy"] = "fp-rebuilt"

    report = manager.reconcile()

    assert {r.name: r.reason for r in report.removed} == {idle: "stale-config"}
    assert busy in lxd.instances
    assert len(report.created) == 1
    assert report.created[0] not in (idle, busy)


def test_runners_stay_when_their_image_disappears(
    make_manager: Any, lxd: FakeLxd, github: FakeGitHub
) -> None:
    """Runners stay when their image disappears from LXD.

    arrange: one idle runner; its image removed.
    act: reconcile.
    assert: nothing removed; the runner still there.
    """
    manager = make_manager(runners={"containers": 1})
    (name,) = manager.reconcile().created
    set_online(github, name, busy=False)
    lxd.images.discard("jammy")

    report = manager.reconcile()

    assert report.removed == []
    assert name in lxd.instances


# ----- the command line ---------------------------------------------------------------------


@pytest.fixture
def image_lxd(monkeypatch: pytest.MonkeyPatch, clock: Any) -> ScriptLxd:
    """Make the command line's image builder work on the LXD fake."""
    fake = ScriptLxd()

    def builder(config: Any) -> ImageBuilder:
        config.state_dir.mkdir(parents=True, exist_ok=True)
        return ImageBuilder(
            config, fake, clock=clock, monotonic=clock.monotonic, sleep=clock.sleep
        )

    monkeypatch.setattr(cli, "image_builder", builder)
    return fake


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any]:
    code = cli.main(list(argv))
    return code, json.loads(capsys.readouterr().out)


def test_build_image_prints_the_record(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], image_lxd: ScriptLxd
) -> None:
    """build-image builds and prints the build record.

    arrange: a configuration with building on.
    act: run build-image.
    assert: exit 0; the record ok with one image under the stable alias, which LXD points at it.
    """
    config = write_config(tmp_path, image={"build": True})

    code, document = run(capsys, "--config", str(config), "build-image")

    assert code == cli.EXIT_OK
    assert document["ok"] is True
    assert [built["alias"] for built in document["images"]] == [STABLE]
    assert image_lxd.aliases[STABLE] == document["images"][0]["fingerprint"]


def test_build_image_for_one_type(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], image_lxd: ScriptLxd
) -> None:
    """build-image --type builds the image of one instance type only.

    arrange: a configuration with building on.
    act: run build-image --type virtual-machine.
    assert: exit 0; only the VM image built.
    """
    config = write_config(tmp_path, image={"build": True})

    code, document = run(
        capsys, "--config", str(config), "build-image", "--type", "virtual-machine"
    )

    assert code == cli.EXIT_OK
    assert [built["alias"] for built in document["images"]] == [f"{STABLE}-vm"]


def test_failed_build_is_exit_4(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], image_lxd: ScriptLxd
) -> None:
    """A failed build exits with the transient code and says why.

    arrange: LXD fails to publish (disk full).
    act: run build-image.
    assert: the transient exit code; not ok; the message "disk full".
    """
    image_lxd.fail["publish_image"] = LxdError("disk full")
    config = write_config(tmp_path, image={"build": True})

    code, document = run(capsys, "--config", str(config), "build-image")

    assert code == cli.EXIT_TRANSIENT
    assert document["ok"] is False
    assert document["errors"][0]["message"] == "disk full"


def test_build_while_another_build_runs_is_exit_5(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    image_lxd: ScriptLxd,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A build while another holds the image lock exits busy and makes nothing.

    arrange: the image lock held; no wait for it.
    act: run build-image.
    assert: the busy exit code and error kind; no instance created.
    """
    monkeypatch.setattr(cli, "IMAGE_LOCK_TIMEOUT", 0)
    config_file = write_config(tmp_path, image={"build": True})
    config = cli.load_config(config_file)

    with manager_lock(lock_path(config), 0):
        code, document = run(capsys, "--config", str(config_file), "build-image")

    assert code == cli.EXIT_BUSY
    assert document["errors"][0]["kind"] == "busy"
    assert image_lxd.created == []


def test_a_build_does_not_take_the_managers_lock(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], image_lxd: ScriptLxd
) -> None:
    """Reconciliations keep running during a build: they hold another lock.

    arrange: the manager's lock held.
    act: run build-image.
    assert: exit 0.
    """
    config_file = write_config(tmp_path, image={"build": True})
    config = cli.load_config(config_file)

    with manager_lock(config.state_dir / "manager.lock", 0):
        code, _ = run(capsys, "--config", str(config_file), "build-image")

    assert code == cli.EXIT_OK


def test_build_image_refuses_when_building_is_off(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], image_lxd: ScriptLxd
) -> None:
    """build-image refuses when image building is off.

    arrange: a configuration without building.
    act: run build-image.
    assert: the configuration exit code, saying image.build is off.
    """
    code, document = run(capsys, "--config", str(write_config(tmp_path)), "build-image")

    assert code == cli.EXIT_CONFIG
    assert "image.build is off" in document["errors"][0]["message"]


def test_build_image_when_lxd_is_unreachable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """build-image with LXD unreachable exits transient with an lxd error.

    arrange: the image builder cannot reach LXD.
    act: run build-image.
    assert: the transient exit code and one lxd error.
    """

    def unreachable(config: Any) -> ImageBuilder:
        raise LxdError("cannot reach LXD")

    monkeypatch.setattr(cli, "image_builder", unreachable)
    config = write_config(tmp_path, image={"build": True})

    code, document = run(capsys, "--config", str(config), "build-image")

    assert code == cli.EXIT_TRANSIENT
    assert document["errors"] == [{"kind": "lxd", "message": "cannot reach LXD"}]


def test_sigterm_during_a_build_deletes_the_builder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], image_lxd: ScriptLxd
) -> None:
    """A SIGTERM from systemd (its TimeoutStartSec) must not leave the builder running.

    arrange: the build script is interrupted by SIGTERM.
    act: run build-image.
    assert: the transient exit code naming SIGTERM; no instance left; the builder deleted last.
    """

    def terminated(name: str, command: list[str], env: dict[str, str]) -> Any:
        if command[0] == "/bin/bash":
            cli._raise_terminated()
        return image_lxd._handle(name, command, env)

    image_lxd.exec_handler = terminated
    config = write_config(tmp_path, image={"build": True})

    code, document = run(capsys, "--config", str(config), "build-image")

    assert code == cli.EXIT_TRANSIENT
    assert "SIGTERM" in document["errors"][0]["message"]
    assert image_lxd.instances == {}
    assert image_lxd.deleted[-1] == f"{PREFIX}-builder"


def test_remove_images(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], image_lxd: ScriptLxd
) -> None:
    """remove-images deletes the images the unit built.

    arrange: one image built by build-image.
    act: run remove-images.
    assert: exit 0; one image removed; none left in the store.
    """
    config = write_config(tmp_path, image={"build": True})
    run(capsys, "--config", str(config), "build-image")

    code, document = run(capsys, "--config", str(config), "remove-images")

    assert code == cli.EXIT_OK
    assert len(document["removed"]) == 1
    assert image_lxd.image_store == {}


@pytest.fixture
def managed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, image_lxd: ScriptLxd, clock: Any
) -> list[RunnerManager]:
    """cli.build_manager on the same LXD fake as the image builder."""
    built: list[RunnerManager] = []
    github: Any = FakeGitHub()  # the fake has what the manager calls, not the whole protocol

    def build(config: Any) -> RunnerManager:
        manager = manager_on_fakes(config, image_lxd, github, clock, tmp_path)
        built.append(manager)
        return manager

    monkeypatch.setattr(cli, "build_manager", build)
    return built


def test_update_dependencies_rebuilds_the_image_then_reconciles(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    image_lxd: ScriptLxd,
    managed: list[RunnerManager],
) -> None:
    """update-dependencies rebuilds the image, then reconciles onto it.

    arrange: building on; the manager on the same LXD as the builder.
    act: run update-dependencies.
    assert: exit 0; image_updated; two runners created from the new stable image.
    """
    config = write_config(tmp_path, image={"build": True})

    code, document = run(capsys, "--config", str(config), "update-dependencies")

    assert code == cli.EXIT_OK, document["errors"]
    assert document["image_updated"] is True
    # The runners start from the image just built.
    assert len(document["created"]) == 2
    assert {image_lxd.instances[name].spec.image for name in document["created"]} == {STABLE}


def test_update_dependencies_with_a_failed_build_still_reconciles(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    image_lxd: ScriptLxd,
    managed: list[RunnerManager],
) -> None:
    """A failed rebuild in update-dependencies still reconciles on the earlier image.

    arrange: an earlier build's image; publishing fails.
    act: run update-dependencies.
    assert: the transient exit code; image not updated; one lxd error; two runners created.
    """
    image_lxd.images.add(STABLE)  # an earlier build's image
    image_lxd.fail["publish_image"] = LxdError("disk full")
    config = write_config(tmp_path, image={"build": True})

    code, document = run(capsys, "--config", str(config), "update-dependencies")

    assert code == cli.EXIT_TRANSIENT
    assert document["image_updated"] is False
    assert [error["kind"] for error in document["errors"]] == ["lxd"]
    assert len(document["created"]) == 2


def test_update_dependencies_does_not_wait_for_a_running_build(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    image_lxd: ScriptLxd,
    managed: list[RunnerManager],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """update-dependencies does not wait for a build that is already running.

    arrange: the image lock held by a running build; an earlier image.
    act: run update-dependencies.
    assert: exit 0; the image build "already running"; runners created but no builder.
    """
    monkeypatch.setattr(cli, "IMAGE_LOCK_TIMEOUT", 0)
    image_lxd.images.add(STABLE)
    config_file = write_config(tmp_path, image={"build": True})
    config = cli.load_config(config_file)

    with manager_lock(lock_path(config), 0):
        code, document = run(capsys, "--config", str(config_file), "update-dependencies")

    assert code == cli.EXIT_OK
    assert document["image_build_running"] is True
    assert image_lxd.created != [] and all(
        spec.name != f"{PREFIX}-builder" for spec in image_lxd.created
    )


def test_update_dependencies_without_building_builds_nothing(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    image_lxd: ScriptLxd,
    managed: list[RunnerManager],
) -> None:
    """update-dependencies without image building builds nothing.

    arrange: a configuration without building.
    act: run update-dependencies.
    assert: exit 0; no image_updated timing; no stable image made.
    """
    code, document = run(capsys, "--config", str(write_config(tmp_path)), "update-dependencies")

    assert code == cli.EXIT_OK
    assert document["image_updated"] is None
    assert stable_alias(managed[0].config, CONTAINER) not in image_lxd.images
