# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""The remove hook deletes the application's LXD objects: its ACL, then its pool when empty.

The charm runs on the fakes of `charm_fakes`, or on the real `firewall.Firewall` and
`storage.StoragePool` over a scripted command runner where what they log and run matters.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from ops import testing

import charm
import command
import firewall
import service
import storage

from .charm_fakes import FakeHost, FakeManagerService
from .test_charm_hooks import REAL_STORAGE_POOL, RecordingRunner, real_storage
from .test_firewall import FakeLxd

APP = "github-runner"
ACL = command.scoped_name(APP)
POOL = command.scoped_name(APP)
VOLUMES = f"lxc query /1.0/storage-pools/{POOL}/volumes?all-projects=true"
REAL_FIREWALL = firewall.Firewall
# A pool and an ACL of the charm's, as `lxc` shows them.
POOL_SHOWN = yaml.safe_dump({"name": POOL, "driver": "dir", "config": {"source": "/x"}})
ACL_SHOWN = yaml.safe_dump({"name": ACL, "description": firewall.ACL_DESCRIPTION})
BRIDGE_SHOWN = yaml.safe_dump({"config": {"security.acls": f"other-app,{ACL}"}})


def use_real_lxd_objects(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, runner: RecordingRunner
) -> None:
    """Make the charm's firewall and storage pool the real ones, on the scripted runner."""
    (tmp_path / "bin").mkdir(exist_ok=True)
    (tmp_path / "bin" / "lxc").touch()
    (tmp_path / "bin" / "lxd").touch()
    (tmp_path / "proc").mkdir(exist_ok=True)
    (tmp_path / "proc" / "mounts").write_text("", encoding="utf-8")

    def for_app(app: str | None) -> firewall.Firewall:
        acl = command.scoped_name(app) if app else firewall.ACL
        return REAL_FIREWALL(firewall.NETWORK, acl, runner, binary_dirs=(tmp_path / "bin",))

    monkeypatch.setattr(charm.firewall.Firewall, "for_app", for_app)
    monkeypatch.setattr(
        charm.storage, "StoragePool", lambda app=None: real_storage(tmp_path, runner, app)
    )


def ran(runner: RecordingRunner, prefix: str) -> bool:
    return any(" ".join([Path(c[0]).name, *c[1:]]).startswith(prefix) for c in runner.commands)


def test_remove_deletes_the_acl_then_the_pool_after_the_flush(
    ctx: testing.Context,
    fake_host: FakeHost,
    manager: FakeManagerService,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The remove hook deletes the ACL, then the pool, once the runners and files are gone.

    arrange: a configured manager whose flush and file removal are recorded beside the host's.
    act: run remove.
    assert: the flush, the files, the ACL and the pool, in that order.
    """
    manager.preconfigured = True
    flush, remove_files = manager.run, manager.remove_files

    def run(args: list[str], timeout: float) -> service.ManagerResult:
        fake_host.removed.append("flush")
        return flush(args, timeout)

    def files() -> None:
        fake_host.removed.append("files")
        remove_files()

    monkeypatch.setattr(manager, "run", run)
    monkeypatch.setattr(manager, "remove_files", files)

    ctx.run(ctx.on.remove(), testing.State(config={}))

    assert fake_host.removed == ["flush", "files", "acl", "pool"]


def test_remove_leaves_the_acl_and_pool_to_another_unit_here(
    ctx: testing.Context, fake_host: FakeHost, manager: FakeManagerService
) -> None:
    """Another unit of the application on this machine keeps the ACL and the pool.

    arrange: a configured manager and another unit of the application configured here.
    act: run remove.
    assert: the manager's files are removed, the ACL and the pool are not.
    """
    manager.preconfigured = True
    manager.other_units = [f"{APP}-1"]

    ctx.run(ctx.on.remove(), testing.State(config={}))

    assert manager.files_removed
    assert fake_host.removed == []


def test_remove_keeps_a_pool_with_a_volume_left_and_says_so(
    ctx: testing.Context,
    fake_host: FakeHost,
    manager: FakeManagerService,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A pool LXD still lists a volume on is kept; the log names the volume and the fix.

    arrange: the real firewall and pool over LXD answers: the charm's ACL attached beside
        another application's, a busy runner's volume left on the pool.
    act: run remove.
    assert: the ACL is detached (the other stays) and deleted; the pool is not deleted and the
        warning names the runner, its project and the command that deletes the pool.
    """
    volume = f"/1.0/storage-pools/{POOL}/volumes/container/grt-busy?project=runners"
    runner = RecordingRunner(
        {
            "lxc network show lxdbr0": BRIDGE_SHOWN,
            f"lxc network acl show {ACL}": ACL_SHOWN,
            "lxc network set lxdbr0": "",
            f"lxc network acl delete {ACL}": "",
            f"lxc storage show {POOL}": POOL_SHOWN,
            VOLUMES: json.dumps([volume]),
        }
    )
    use_real_lxd_objects(monkeypatch, tmp_path, runner)

    with caplog.at_level(logging.WARNING):
        ctx.run(ctx.on.remove(), testing.State(config={}))

    assert ran(runner, "lxc network set lxdbr0 security.acls=other-app")
    assert ran(runner, f"lxc network acl delete {ACL}")
    assert not ran(runner, f"lxc storage delete {POOL}")
    assert not ran(runner, "umount")
    kept = [r.getMessage() for r in caplog.records if r.name == "storage"]
    assert len(kept) == 1
    assert "container grt-busy (project runners)" in kept[0]
    assert f"lxc storage delete {POOL}" in kept[0]


def test_remove_deletes_an_empty_pool_after_the_acl(
    ctx: testing.Context,
    fake_host: FakeHost,
    manager: FakeManagerService,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """An empty pool is deleted after the ACL.

    arrange: the real firewall and pool over LXD answers: the charm's ACL, a pool with no volume.
    act: run remove.
    assert: the ACL is deleted, then the pool, then the pools are listed for the runner storage.
    """
    runner = RecordingRunner(
        {
            "lxc network show lxdbr0": BRIDGE_SHOWN,
            f"lxc network acl show {ACL}": ACL_SHOWN,
            "lxc network set lxdbr0": "",
            f"lxc network acl delete {ACL}": "",
            f"lxc storage show {POOL}": POOL_SHOWN,
            VOLUMES: "[]",
            f"lxc storage delete {POOL}": "",
            "lxc query /1.0/storage-pools?recursion=1": "[]",
        }
    )
    use_real_lxd_objects(monkeypatch, tmp_path, runner)

    ctx.run(ctx.on.remove(), testing.State(config={}))

    lines = [" ".join([Path(c[0]).name, *c[1:]]) for c in runner.commands]
    order = [
        lines.index(f"lxc network acl delete {ACL}"),
        lines.index(f"lxc storage delete {POOL}"),
        lines.index("lxc query /1.0/storage-pools?recursion=1"),
    ]
    assert order == sorted(order)


def test_remove_survives_every_lxd_command_failing(
    ctx: testing.Context,
    fake_host: FakeHost,
    manager: FakeManagerService,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The remove hook completes when LXD fails every command, and says what to do by hand.

    arrange: the real firewall and pool over a runner on which every command fails.
    act: run remove.
    assert: the hook completes with the manager's files removed; both steps were tried and each
        logged an error naming its object and the command to delete it by hand.
    """
    runner = RecordingRunner()
    use_real_lxd_objects(monkeypatch, tmp_path, runner)

    with caplog.at_level(logging.ERROR):
        ctx.run(ctx.on.remove(), testing.State(config={}))

    assert manager.files_removed
    assert ran(runner, "lxc network show lxdbr0")
    assert ran(runner, f"lxc storage show {POOL}")
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any(f"lxc network acl delete {ACL}" in message for message in errors)
    assert any(f"lxc storage delete {POOL}" in message for message in errors)


# ----- the pieces, directly -----------------------------------------------------------------


class DeletingLxd(FakeLxd):
    """The fake LXD of the firewall's tests, which also deletes ACLs no bridge uses."""

    def __call__(self, argv: Any, *, input_text: str | None = None, timeout: float = 0.0) -> str:
        if list(argv[1:4]) == ["network", "acl", "delete"]:
            self.commands.append(("lxc", *argv[1:]))
            name = argv[4]
            attached = self.networks["lxdbr0"].get("security.acls", "").split(",")
            if name in attached or name not in self.acls:
                raise command.CommandError("in use", 1, "Error: ACL is in use")
            del self.acls[name]
            return ""
        return super().__call__(argv, input_text=input_text, timeout=timeout)


def test_firewall_remove_touches_only_its_own_acl(tmp_path: Path) -> None:
    """Removing one application's firewall leaves the other ACLs attached and in LXD.

    arrange: two applications' ACLs on the bridge, and a third ACL someone else made.
    act: remove the first application's firewall, then remove it again.
    assert: its ACL is detached and deleted, the others stay attached in order; the second
        removal changes nothing; an ACL without the charm's description is never deleted.
    """
    for name in ("lxc", "ip"):
        (tmp_path / name).touch()
    lxd = DeletingLxd()

    def wall(acl: str) -> firewall.Firewall:
        return REAL_FIREWALL(acl=acl, run=lxd, binary_dirs=(tmp_path,), tool_dirs=(tmp_path,))

    first, second = wall("github-runner-a"), wall("github-runner-b")
    first.apply([])
    second.apply([])
    lxd.acls["theirs"] = {"description": "not ours", "egress": [], "ingress": [], "config": {}}
    lxd.networks["lxdbr0"]["security.acls"] += ",theirs"
    foreign = wall("theirs")

    assert first.remove()
    assert not first.remove()
    assert not foreign.remove()

    assert set(lxd.acls) == {"github-runner-b", "theirs"}
    assert lxd.networks["lxdbr0"]["security.acls"] == "github-runner-b,theirs"


def test_pool_remove_unmounts_the_runner_storage_no_pool_uses(tmp_path: Path) -> None:
    """After the pool goes, the loop file's mount, the loop file and the tmpfs go.

    arrange: a memory runner storage with a btrfs loop file mounted in its tmpfs, and the
        application's pool already gone; another application's pool elsewhere.
    act: remove the storage.
    assert: the btrfs mount, then the tmpfs, are unmounted; the loop file is deleted.
    """
    ram = tmp_path / "ram" / "app"
    ram.mkdir(parents=True)
    (ram / "lxd-pool.img").write_bytes(b"")
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc" / "mounts").write_text(
        f"tmpfs {ram} tmpfs rw,size=1024k 0 0\n/dev/loop3 {ram}/lxd-pool btrfs rw 0 0\n",
        encoding="utf-8",
    )
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "lxc").touch()
    (tmp_path / "bin" / "lxd").touch()
    pools = [{"name": "github-runner-other", "config": {"source": str(tmp_path / "ram/other")}}]
    runner = RecordingRunner(
        {
            "lxc query /1.0/storage-pools?recursion=1": json.dumps(pools),
            "umount": "",
        }
    )
    missing = command.CommandError("no pool", 1, "Error: Storage pool not found")

    def run(argv: Sequence[str], *, input_text: str | None = None, timeout: float = 0) -> str:
        if list(argv[1:3]) == ["storage", "show"]:
            runner.commands.append(list(argv))
            raise missing
        return runner(argv, input_text=input_text, timeout=timeout)

    pool = REAL_STORAGE_POOL(
        run,
        app="app",
        binary_dirs=(tmp_path / "bin",),
        ram_dir=tmp_path / "ram",
        juju_storage_dir=tmp_path / "juju",
        proc_dir=tmp_path / "proc",
    )

    assert pool.remove()

    unmounted = [c[1] for c in runner.commands if c[0] == storage.UMOUNT]
    assert unmounted == [str(ram / "lxd-pool"), str(ram)]
    assert not (ram / "lxd-pool.img").exists()


def test_other_units_here_are_the_same_applications(tmp_path: Path) -> None:
    """Only configuration directories of the same application count as other units here.

    arrange: configuration directories of this unit, another unit of its application, and a
        unit of an application whose name starts with this one's.
    act: ask for the other units here.
    assert: only the other unit of the same application.
    """
    for name in ("app-0", "app-3", "app-2-0"):
        (tmp_path / name).mkdir()
    paths = service.ManagerPaths.for_unit("app", 0, config_root=tmp_path, state_root=tmp_path)

    assert service.ManagerService(paths, tmp_path).other_units_here() == ["app-3"]
