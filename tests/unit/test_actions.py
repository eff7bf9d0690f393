# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""actions.py: what an action does with a manager result it cannot read."""

from __future__ import annotations

import pytest
from ops import testing

from .charm_fakes import FakeManagerService, result

VALID = {"path": "test-owner/test-repo", "token": "ghp_actionsUnitTestToken00000000000000000"}


def test_an_unreadable_check_result_fails_the_action(
    ctx: testing.Context, manager: FakeManagerService
) -> None:
    """A check whose document is not a check result fails the action rather than crashing.

    arrange: a configured manager whose check prints a count that is not a number.
    act: run the check-runners action.
    assert: the action fails, saying the result was unreadable.
    """
    manager.preconfigured = True
    manager.results["check"] = [result(online="many")]

    with pytest.raises(testing.ActionFailed) as failed:
        ctx.run(ctx.on.action("check-runners"), testing.State(config=VALID))

    assert failed.value.message == "the runner manager's check printed an unreadable result"
