# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""The LXD adapter against the real LXD daemon of the test bed."""

from __future__ import annotations

import io
import os
import secrets
import time

import pylxd
import pytest

from github_runner_manager.errors import LxdError
from github_runner_manager.lxd import (
    TAG_CONFIG_HASH,
    TAG_CREATED_AT,
    TAG_UNIT,
    InstanceSpec,
    PylxdClient,
)
from github_runner_manager.models import InstanceStatus, InstanceType

from .conftest import IMAGE, PROJECT

pytestmark = pytest.mark.lxd


@pytest.fixture
def adapter(lxd_client: pylxd.Client) -> PylxdClient:
    return PylxdClient(project=PROJECT, timeout=60)


def spec(unit: str, config_hash: str = "h1") -> InstanceSpec:
    return InstanceSpec(
        name=f"grt-adapter-{secrets.token_hex(4)}",
        instance_type=InstanceType.CONTAINER,
        image=IMAGE,
        profiles=("default",),
        config={
            TAG_UNIT: unit,
            TAG_CONFIG_HASH: config_hash,
            TAG_CREATED_AT: "2026-06-01T12:00:00+00:00",
            "limits.cpu": "1",
            "limits.memory": "256MiB",
        },
        devices={"root": {"type": "disk", "path": "/", "pool": "default", "size": "1GiB"}},
        ephemeral=True,
    )


def test_instances_are_selected_by_tag(adapter, lxd_client):
    """Instances are listed by their unit's tag, with their limits.

    arrange: instances of two units, each with its tag, config hash and limits.
    act: list the instances of each unit.
    assert: each unit sees only its own, stopped, with its config hash and creation time; the
        instance is ephemeral with its memory and disk limits.
    """
    mine, theirs = spec("adapter/0"), spec("adapter/1", "h2")
    adapter.create_instance(mine)
    adapter.create_instance(theirs)
    try:
        listed = adapter.list_instances("adapter/0")

        assert [i.name for i in listed] == [mine.name]
        assert listed[0].status is InstanceStatus.STOPPED
        assert listed[0].config_hash == "h1"
        assert listed[0].created_at.isoformat() == "2026-06-01T12:00:00+00:00"
        assert [i.name for i in adapter.list_instances("adapter/1")] == [theirs.name]
        created = lxd_client.instances.get(mine.name)
        assert created.ephemeral is True
        assert created.config["limits.memory"] == "256MiB"
        assert created.devices["root"]["size"] == "1GiB"
    finally:
        adapter.delete_instance(mine.name)
        adapter.delete_instance(theirs.name)


def test_files_exec_and_delete(adapter, lxd_client):
    """The adapter pushes files, executes commands and deletes an instance.

    arrange: a stopped container.
    act: make a directory twice, push a file, a 3 MiB file object and a symlink, start it, execute
        commands (one with an environment) and pull files; then delete it.
    assert: mode and owner, link target, environment, pulled contents and JSON-looking output are
        as written, the instance is running; after the delete it is gone.
    """
    wanted = spec("adapter/0")
    adapter.create_instance(wanted)
    try:
        adapter.make_directory(wanted.name, "/opt/grt")
        adapter.make_directory(wanted.name, "/opt/grt")  # idempotent
        adapter.push_file(wanted.name, "/opt/grt/hello", b"hello\n", 0o600)
        # A file object is streamed (the runner archive is well over 100 MB).
        big = os.urandom(3 * 2**20 + 7)
        adapter.push_file(wanted.name, "/opt/grt/big", io.BytesIO(big), 0o600)
        adapter.push_symlink(wanted.name, "/opt/grt/link", "/opt/grt/hello")
        adapter.start_instance(wanted.name)

        result = adapter.execute(wanted.name, ["stat", "-c", "%a %U", "/opt/grt/hello"])
        linked = adapter.execute(wanted.name, ["cat", "/opt/grt/link"])
        with_env = adapter.execute(
            wanted.name, ["sh", "-c", 'echo "$SECRET"'], env={"SECRET": "s3"}
        )
        pulled = adapter.pull_file(wanted.name, "/opt/grt/hello")
        as_json = adapter.execute(wanted.name, ["echo", '{"type": "not an LXD response"}'])

        assert (result.exit_code, result.stdout.strip()) == (0, "600 root")
        assert linked.stdout == "hello\n"
        assert with_env.stdout.strip() == "s3"
        assert pulled == b"hello\n"
        assert adapter.pull_file(wanted.name, "/opt/grt/big") == big
        assert as_json.stdout == '{"type": "not an LXD response"}\n'
        assert [i.status for i in adapter.list_instances("adapter/0")] == [InstanceStatus.RUNNING]
    finally:
        adapter.delete_instance(wanted.name)
    assert not lxd_client.instances.exists(wanted.name)


def test_exec_is_bounded_by_its_timeout(adapter):
    """A command executed in an instance is bounded by its timeout.

    arrange: a running container.
    act: execute sleep 600 with a timeout of 2 seconds.
    assert: it returns within 20 seconds with exit code 124 (killed by timeout).
    """
    wanted = spec("adapter/0")
    adapter.create_instance(wanted)
    try:
        adapter.start_instance(wanted.name)
        started = time.monotonic()

        result = adapter.execute(wanted.name, ["sleep", "600"], timeout=2)

        assert time.monotonic() - started < 20
        assert result.exit_code == 124, "timeout(1) reports a killed command with 124"
    finally:
        adapter.delete_instance(wanted.name)


def test_delete_of_a_missing_instance_succeeds(adapter):
    """Deleting an instance that does not exist succeeds.

    arrange: the name of an instance that does not exist.
    act: delete it.
    assert: no error is raised.
    """
    adapter.delete_instance(f"grt-adapter-{secrets.token_hex(4)}")


def test_create_from_a_missing_image_is_an_lxd_error(adapter):
    """Creating from a missing image is an LxdError that leaves nothing.

    arrange: an instance spec whose image does not exist.
    act: create the instance.
    assert: an LxdError naming the instance, and no instance of the unit is left.
    """
    bad = InstanceSpec(**{**spec("adapter/0").__dict__, "image": "no-such-image"})

    with pytest.raises(LxdError, match=bad.name):
        adapter.create_instance(bad)

    assert adapter.list_instances("adapter/0") == []


def test_lookups(adapter):
    """Image lookups find what exists and only that.

    arrange: the test bed's image.
    act: look up that image and one that does not exist.
    assert: the first is found, the second is not.
    """
    assert adapter.image_exists(IMAGE)
    assert not adapter.image_exists("no-such-image")
