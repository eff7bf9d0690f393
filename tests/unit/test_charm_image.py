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
    """The install hook sets up the image build and starts the first one.

    arrange: a manager with no runner image built yet.
    act: run install.
    assert: the manager's config builds images, the image timer is active, one build was started
        with the reason, and the status is "building the runner image".
    """
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
    """No image build is started when none is due.

    arrange: a manager whose image is up to date.
    act: run update-status.
    assert: the image timer is active and no build was started.
    """
    run(ctx, ctx.on.update_status(), config=VALID)

    assert manager.image_timer_active
    assert manager.image_builds_started == []


def test_first_build_with_an_image_error_is_maintenance(
    ctx: testing.Context, manager: FakeManagerService
) -> None:
    """A missing image while the first build runs is Maintenance, not an error.

    arrange: an image build running and a report whose image does not exist yet.
    act: run update-status.
    assert: the status is Maintenance "building the runner image".
    """
    manager.image_building = True
    manager.report = make_report(
        ok=False, errors=[{"kind": "image", "message": "the LXD image 'x' does not exist yet"}]
    )

    out = run(ctx, ctx.on.update_status(), config=VALID)

    assert out.unit_status == ops.MaintenanceStatus("building the runner image")


def test_rebuild_while_runners_serve_is_a_note(
    ctx: testing.Context, manager: FakeManagerService
) -> None:
    """A rebuild while runners serve is a note on the active status.

    arrange: an image build running and a healthy report of 1/1 runners.
    act: run update-status.
    assert: Active "1/1 virtual-machine runners (building a new runner image)".
    """
    manager.image_building = True
    manager.report = make_report()

    out = run(ctx, ctx.on.update_status(), config=VALID)

    assert out.unit_status == ops.ActiveStatus(
        "1/1 virtual-machine runners (building a new runner image)"
    )


def test_missing_image_without_a_build_is_a_note(
    ctx: testing.Context, manager: FakeManagerService
) -> None:
    """A missing image with no build running is a note on the active status.

    arrange: no build running and a report whose image does not exist.
    act: run update-status.
    assert: Active "1/1 virtual-machine runners (image jammy missing)".
    """
    manager.report = make_report(
        ok=False, errors=[{"kind": "image", "message": "the LXD image 'x' does not exist yet"}]
    )

    out = run(ctx, ctx.on.update_status(), config=VALID)

    assert out.unit_status == ops.ActiveStatus("1/1 virtual-machine runners (image jammy missing)")


def test_failed_build_in_update_dependencies_report_is_a_note(
    ctx: testing.Context, manager: FakeManagerService
) -> None:
    """A failed build in the update-dependencies report is a note on the active status.

    arrange: an update-dependencies report with an image-build error.
    act: run update-status.
    assert: Active, with "the runner image build failed" in the message.
    """
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
    """A token error blocks the unit even while an image build runs.

    arrange: an image build running and a report with a token error.
    act: run update-status.
    assert: the status is Blocked.
    """
    manager.image_building = True
    manager.report = make_report(ok=False, errors=[{"kind": "token", "message": "401"}])

    out = run(ctx, ctx.on.update_status(), config=VALID)

    assert isinstance(out.unit_status, ops.BlockedStatus)


def test_remove_deletes_the_images_before_the_files(
    ctx: testing.Context, manager: FakeManagerService
) -> None:
    """The remove hook deletes the runner images and the manager's files.

    arrange: a configured manager.
    act: run remove.
    assert: the images and the manager's files are removed.
    """
    manager.preconfigured = True

    run(ctx, ctx.on.remove(), config=VALID)

    assert manager.images_removed
    assert manager.files_removed


def test_stop_keeps_the_images(ctx: testing.Context, manager: FakeManagerService) -> None:
    """The stop hook keeps the runner images (remove deletes them).

    arrange: a configured manager.
    act: run stop.
    assert: the images are not removed.
    """
    manager.preconfigured = True

    run(ctx, ctx.on.stop(), config=VALID)

    assert not manager.images_removed


def test_update_dependencies_reports_runners_replaced_for_a_new_image(
    ctx: testing.Context, manager: FakeManagerService
) -> None:
    """update-dependencies reports a flush when runners were replaced for a new image.

    arrange: an update-dependencies report with a new image, one stale runner removed and one
        created.
    act: run the update-dependencies action.
    assert: the action's flush result is true and the manager ran update-dependencies once.
    """
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
