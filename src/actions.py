# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""The charm's actions: each runs one command of the runner manager and sets what it found.

The messages and results come from `status`, built on the manager's error table; this module
only runs the commands (through `service.ManagerService`) and hands the outcome to the action.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ops

import command
import service
import status
from charm_state import InvalidConfigError
from github_runner_manager import CheckResult, InstanceType

# How long the actions may run (creating VMs takes minutes).
ACTION_TIMEOUT = 1800.0
CHECK_TIMEOUT = 300.0
# update-dependencies rebuilds the runner image first, which takes minutes (an hour at worst).
UPDATE_TIMEOUT = 3 * 3600.0


class Actions(ops.Object):
    """Observes the charm's actions and runs them through the runner manager."""

    def __init__(
        self, charm: ops.CharmBase, manager: service.ManagerService, check_state: Callable[[], Any]
    ):
        """Observe the actions.

        Args:
            charm: the charm.
            manager: the runner manager's service.
            check_state: builds the charm state, raising `InvalidConfigError` when it is invalid.
        """
        super().__init__(charm, "actions")
        self._app = charm.app.name
        self._manager = manager
        self._check_state = check_state
        charm.framework.observe(charm.on.check_runners_action, self._on_check_runners)
        charm.framework.observe(charm.on.reconcile_runners_action, self._on_reconcile_runners)
        charm.framework.observe(charm.on.flush_runners_action, self._on_flush_runners)
        charm.framework.observe(charm.on.update_dependencies_action, self._on_update_dependencies)

    def _action_ready(self, event: ops.ActionEvent) -> bool:
        """Fail the action when the manager cannot run; return whether it can."""
        try:
            self._check_state()
        except InvalidConfigError as exc:
            event.fail(f"the configuration is invalid: {exc.message}")
            return False
        except command.HostError as exc:
            event.fail(f"cannot inspect the host: {exc}")
            return False
        if not self._manager.configured():
            event.fail(
                "the runner manager is not configured yet: wait until the unit is active, "
                "then try again"
            )
            return False
        return True

    def _run(
        self, event: ops.ActionEvent, args: list[str], timeout: float
    ) -> service.ManagerResult | None:
        """Run the manager for an action; fail the action and return None when it cannot."""
        try:
            return self._manager.run(args, timeout)
        except service.ServiceError as exc:
            event.fail(str(exc))
            return None

    def _fail(self, event: ops.ActionEvent, command: str, result: service.ManagerResult) -> None:
        """Fail an action with what the operator should know of a failed manager run."""
        message = status.action_failure(command, result.exit_code, result.document, self._app)
        event.fail(message)

    def _check_results(self, event: ops.ActionEvent) -> dict[str, Any] | None:
        result = self._run(event, ["check"], CHECK_TIMEOUT)
        if result is None:
            return None
        if not result.ok:
            self._fail(event, "check", result)
            return None
        try:
            return status.check_results(CheckResult.model_validate(result.document))
        except ValueError:
            event.fail("the runner manager's check printed an unreadable result")
            return None

    def _on_check_runners(self, event: ops.ActionEvent) -> None:
        """Count this unit's runners by state."""
        results = self._check_results(event) if self._action_ready(event) else None
        if results is not None:
            event.set_results(results)

    def _changing_action(self, event: ops.ActionEvent, args: list[str]) -> None:
        """Run a manager command, then report the delta and the counts (the delta on failure)."""
        result = self._run(event, args, ACTION_TIMEOUT)
        if result is None:
            return
        report = result.report()
        delta = {instance_type.value: 0 for instance_type in InstanceType}
        delta.update(report.delta if report is not None else {})
        if not result.ok:
            event.set_results({"delta": delta})
            self._fail(event, args[0], result)
            return
        event.set_results({"delta": delta, **(self._check_results(event) or {})})

    def _on_reconcile_runners(self, event: ops.ActionEvent) -> None:
        """Reconcile now and report what changed."""
        if self._action_ready(event):
            self._changing_action(event, ["reconcile"])

    def _on_flush_runners(self, event: ops.ActionEvent) -> None:
        """Remove the idle runners (busy ones too with busy=true), then reconcile."""
        if self._action_ready(event):
            self._changing_action(
                event, ["flush", *(["--busy"] if event.params.get("busy") else [])]
            )

    def _on_update_dependencies(self, event: ops.ActionEvent) -> None:
        """Refresh the runner application; say whether outdated runners were replaced."""
        if not self._action_ready(event):
            return
        result = self._run(event, ["update-dependencies"], UPDATE_TIMEOUT)
        if result is None:
            return
        report = result.report()
        if not result.ok or report is None:
            self._fail(event, "update-dependencies", result)
            return
        event.set_results(status.update_results(report))
