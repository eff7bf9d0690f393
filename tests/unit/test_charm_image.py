# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""The charm and the runner image build: units, the first build, status, removal, the action."""

from __future__ import annotations

from typing import Any

import ops
from ops import testing

from .charm_fakes import FakeManagerService, make_report, report_result
from .test_charm import VALID


def run(ctx: testing.Context, event: Any, **state: Any) -> testing.State:
    return ctx.run(event, testing.State(**state))


def test_install_sets_up_the_image_build_and_starts_the_first_one(
    ctx: testing.Context, manager: FakeManagerService
) -> None:
    manager.image_build_due = "no runner image has been built yet"

    out = run(ctx, ctx.on.install(), config=VALID)

    assert manager.config is not None
    assert manager.config.image.build
    assert manager.image_timer_active
    assert manager.image_builds_started == ["no runner image has been built yet"]
    assert out.unit_status == ops.MaintenanceStatus("building the runner image")


def test_no_build_is_started_when_none_is_due(
    ctx: testing.Context, manager: FakeManagerService
) -> None:
    run(ctx, ctx.on.update_status(), config=VALID)

    assert manager.image_timer_active
    assert manager.image_builds_started == []


def test_first_build_with_an_image_error_is_maintenance(
    ctx: testing.Context, manager: FakeManagerService
) -> None:
    manager.image_building = True
    manager.report = make_report(
        ok=False, errors=[{"kind": "image", "message": "the LXD image 'x' does not exist yet"}]
    )

    out = run(ctx, ctx.on.update_status(), config=VALID)

    assert out.unit_status == ops.MaintenanceStatus("building the runner image")


def test_rebuild_while_runners_serve_is_a_note(
    ctx: testing.Context, manager: FakeManagerService
) -> None:
    manager.image_building = True
    manager.report = make_report()

    out = run(ctx, ctx.on.update_status(), config=VALID)

    assert out.unit_status == ops.ActiveStatus(
        "1/1 virtual-machine runners (building a new runner image)"
    )


def test_missing_image_without_a_build_is_a_note(
    ctx: testing.Context, manager: FakeManagerService
) -> None:
    manager.report = make_report(
        ok=False, errors=[{"kind": "image", "message": "the LXD image 'x' does not exist yet"}]
    )

    out = run(ctx, ctx.on.update_status(), config=VALID)

    assert out.unit_status == ops.ActiveStatus("1/1 virtual-machine runners (image jammy missing)")


def test_failed_build_in_update_dependencies_report_is_a_note(
    ctx: testing.Context, manager: FakeManagerService
) -> None:
    manager.report = make_report(
        command="update-dependencies",
        ok=False,
        errors=[{"kind": "image-build", "message": "the build script failed"}],
    )

    out = run(ctx, ctx.on.update_status(), config=VALID)

    assert isinstance(out.unit_status, ops.ActiveStatus)
    assert "the runner image build failed" in out.unit_status.message


def test_token_error_wins_over_a_build_in_progress(
    ctx: testing.Context, manager: FakeManagerService
) -> None:
    manager.image_building = True
    manager.report = make_report(ok=False, errors=[{"kind": "token", "message": "401"}])

    out = run(ctx, ctx.on.update_status(), config=VALID)

    assert isinstance(out.unit_status, ops.BlockedStatus)


def test_remove_deletes_the_images_before_the_files(
    ctx: testing.Context, manager: FakeManagerService
) -> None:
    manager.preconfigured = True

    run(ctx, ctx.on.remove(), config=VALID)

    assert manager.images_removed
    assert manager.files_removed


def test_stop_keeps_the_images(ctx: testing.Context, manager: FakeManagerService) -> None:
    manager.preconfigured = True

    run(ctx, ctx.on.stop(), config=VALID)

    assert not manager.images_removed


def test_update_dependencies_reports_runners_replaced_for_a_new_image(
    ctx: testing.Context, manager: FakeManagerService
) -> None:
    manager.preconfigured = True
    report = make_report(
        command="update-dependencies",
        delta={"container": 0, "virtual-machine": 0},
        removed=[{"name": "r1", "reason": "stale-config"}],
        created=["r2"],
        runner_version="2.330.0",
        runner_updated=False,
        image_updated=True,
    )
    manager.results["update-dependencies"] = [report_result(report)]

    run(ctx, ctx.on.action("update-dependencies"), config=VALID)

    assert ctx.action_results is not None
    assert ctx.action_results["flush"] is True
    assert manager.runs == [["update-dependencies"]]
