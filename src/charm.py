#!/usr/bin/env python3
# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""The github-runner charm: keeps ephemeral GitHub Actions runners in LXD on each unit.

The charm is a configurator. It validates its inputs into a `CharmState`, prepares the host
(`host`), writes the runner manager's configuration and systemd timer (`service`), and maps the
manager's last report to the unit status. The runners themselves are reconciled outside Juju
hooks, by the timer's runs of `python3 -m github_runner_manager`.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import ops

import command
import cos_agent
import firewall
import host
import service
import storage
from charm_state import (
    COS_AGENT_RELATION,
    DEBUG_SSH_RELATION,
    PROXY_ENVIRONMENT,
    CharmState,
    InvalidConfigError,
    RunnerStorage,
    exporter_port,
)
from github_runner_manager.config import ManagerConfig
from github_runner_manager.models import InstanceType
from github_runner_manager.report import Report

logger = logging.getLogger(__name__)

# How long the actions and the final flush may run (creating VMs takes minutes).
ACTION_TIMEOUT = 1800.0
CHECK_TIMEOUT = 300.0
FLUSH_TIMEOUT = 1200.0
# update-dependencies rebuilds the runner image first, which takes minutes (an hour at worst).
UPDATE_TIMEOUT = 3 * 3600.0
# A report older than this many intervals (plus the margin) says the timer no longer runs.
STALE_INTERVALS = 3
STALE_MARGIN = datetime.timedelta(minutes=5)

# Short notes for transient problems, added to the Active status.
_TRANSIENT_NOTES = {
    "lxd": "LXD error",
    "github-unavailable": "GitHub unavailable",
    "github-conflict": "GitHub refused a change",
    "runner-binary": "runner application unavailable",
    "image-build": "the runner image build failed, see the unit's journal",
    "unexpected": "unexpected error, see the unit's journal",
}
_CHECK_KEYS = ("online", "offline", "unknown", "busy", "idle")
_ALIVE_STATES = ("idle", "busy", "booting")


@dataclasses.dataclass
class _Outcome:
    """What one reconciliation of the charm found, for collect-status.

    Attributes:
        blocked: a problem the operator must fix (invalid config, storage too small).
        host_error: a failure preparing the host; the next event retries.
        state: the validated state, when it was valid.
    """

    blocked: str | None = None
    host_error: str | None = None
    state: CharmState | None = None


class GithubRunnerCharm(ops.CharmBase):
    """Keeps a unit's ephemeral GitHub Actions runners through the runner manager.

    Two facts outlive a hook in the unit's stored state: `converged`, a digest of the inputs
    the last full reconciliation succeeded with (empty after a failure), which lets
    update-status skip the host preparation in steady state; and `flushed`, set when stop
    removed every runner, so that remove does not flush again.
    """

    _stored = ops.StoredState()

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        self._stored.set_default(converged="", flushed=False)
        unit_number = int(self.unit.name.rsplit("/", 1)[1])
        self._host = host.Host(app=self.app.name)
        self._manager = service.ManagerService(
            service.ManagerPaths.for_unit(self.app.name, unit_number), Path(self.charm_dir)
        )
        self._outcome: _Outcome | None = None
        self._state_cache: CharmState | InvalidConfigError | None = None

        # Never return early from here: stop and remove must clean up whatever the config.
        for event in (
            self.on.install,
            self.on.start,
            self.on.config_changed,
            self.on.upgrade_charm,
            self.on.secret_changed,
            self.on.update_status,
            self.on[DEBUG_SSH_RELATION].relation_changed,
            self.on[DEBUG_SSH_RELATION].relation_broken,
            self.on[COS_AGENT_RELATION].relation_joined,
            self.on[COS_AGENT_RELATION].relation_changed,
            self.on[COS_AGENT_RELATION].relation_broken,
        ):
            framework.observe(event, self._reconcile)
        framework.observe(self.on.stop, self._on_stop)
        framework.observe(self.on.remove, self._on_remove)
        framework.observe(self.on.check_runners_action, self._on_check_runners)
        framework.observe(self.on.reconcile_runners_action, self._on_reconcile_runners)
        framework.observe(self.on.flush_runners_action, self._on_flush_runners)
        framework.observe(self.on.update_dependencies_action, self._on_update_dependencies)
        framework.observe(self.on.collect_unit_status, self._on_collect_unit_status)

    # ----- lifecycle end --------------------------------------------------------------------

    def _on_stop(self, _: ops.StopEvent) -> None:
        """Stop the timer and remove every runner of this unit, whatever the config."""
        self._teardown()

    def _on_remove(self, _: ops.RemoveEvent) -> None:
        """Remove the runners (again, in case stop could not), then the manager's files."""
        self._teardown()
        self._manager.remove_images(FLUSH_TIMEOUT)
        self._manager.remove_files()

    def _teardown(self) -> None:
        """Disable the timer and flush all runners with the last configuration written.

        This never reads the current config: an invalid config must not keep runners (and
        their GitHub registrations) alive after the unit goes.
        """
        self._manager.stop()
        self._stored.converged = ""
        if not self._manager.configured():
            logger.info("the runner manager was never configured: no runner to remove")
            return
        if self._stored.flushed:
            # stop flushed and disabled the timer: no runner was made since.
            logger.info("the runners were removed when the unit stopped")
            return
        try:
            result = self._manager.run(["flush", "--busy", "--no-reconcile"], FLUSH_TIMEOUT)
        except service.ServiceError as exc:
            logger.error("cannot remove the runners: %s; remove them by hand with lxc", exc)
            return
        self._stored.flushed = result.ok
        if not result.ok:
            # Log rather than fail: an error here would block the removal of the unit.
            logger.error(
                "removing the runners failed (exit code %d): %s; remove what is left with "
                "lxc and in the repository or organisation settings",
                result.exit_code,
                _error_messages(result),
            )

    # ----- reconciliation -------------------------------------------------------------------

    def _state(self) -> CharmState:
        """Build (once per hook) and return the state.

        Raises:
            InvalidConfigError: if the inputs are invalid.
        """
        if self._state_cache is None:
            existing = self._host.runner_storage_in_use()
            try:
                self._state_cache = CharmState.from_charm(
                    self,
                    machine=self._host.machine(),
                    existing_storage=RunnerStorage(existing) if existing else None,
                )
            except InvalidConfigError as exc:
                self._state_cache = exc
        if isinstance(self._state_cache, InvalidConfigError):
            raise self._state_cache
        return self._state_cache

    def _inputs_digest(self, token: str) -> str:
        """A digest of the inputs a reconciliation converges on, without any LXD command.

        The config, the token (resolved from its secret, so a new revision is seen even
        without secret-changed) and the model's proxy settings, hashed together: neither the
        token nor any value is stored. Relations change only through their own events, which
        reconcile fully.
        """
        document = {
            "config": dict(self.config),
            "token": token,
            "proxy": {name: os.environ.get(name, "") for name in PROXY_ENVIRONMENT},
        }
        return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()

    def _steady(self, outcome: _Outcome) -> bool:
        """Tell whether update-status can skip the host preparation, and fill the outcome.

        Steady state: the last full reconciliation succeeded with the same inputs, the
        manager's configuration is there and its timer runs. Reading the state then costs no
        LXD command (the runner storage check only matters when the config changes).
        """
        if not self._stored.converged:
            return False
        try:
            state = CharmState.from_charm(
                self, machine=self._host.machine(), existing_storage=None
            )
        except InvalidConfigError:
            # e.g. the token secret was revoked: the full reconciliation says so.
            return False
        if self._stored.converged != self._inputs_digest(state.token):
            return False
        if not self._manager.configured() or not self._manager.timer_running():
            return False
        outcome.state = state
        return True

    def _reconcile(self, event: ops.EventBase) -> None:
        """Converge the host, the manager's configuration and its timer on the inputs.

        update-status in steady state only reads the state; collect-status then reads the
        manager's report.
        """
        outcome = _Outcome()
        self._outcome = outcome
        if isinstance(event, ops.UpdateStatusEvent) and self._steady(outcome):
            return
        self._stored.converged = ""
        try:
            self._converge(outcome)
        except InvalidConfigError as exc:
            outcome.blocked = exc.message
        except storage.StorageError as exc:
            outcome.blocked = str(exc)
        except (command.HostError, service.ServiceError) as exc:
            logger.error("preparing the host failed; the next event retries: %s", exc)
            outcome.host_error = str(exc)
        if outcome.state is not None and not (outcome.blocked or outcome.host_error):
            self._stored.converged = self._inputs_digest(outcome.state.token)
            # The timer runs again: a later stop must flush.
            self._stored.flushed = False

    def _converge(self, outcome: _Outcome) -> None:
        # Dashboards and rules do not depend on the config: publish them whatever it is.
        cos_agent.publish(self, exporter_port(self.unit.name))
        try:
            state: CharmState | None = self._state()
        except InvalidConfigError as exc:
            # Blocked, but LXD is still installed: it does not depend on the config.
            outcome.blocked = exc.message
            state = None
        if not self._host.lxd_installed():
            # A long step: show it while it runs (collect-status sets the final status).
            self.unit.status = ops.MaintenanceStatus("installing LXD")
        if self._host.ensure_lxd():
            logger.info("LXD installed or initialised")
        if state is None:
            return
        outcome.state = state
        self._prepare_host_for(state)
        paths = self._manager.paths
        manager_config = state.manager_config(
            state_dir=paths.state_dir,
            token_file=paths.token_file,
            report_file=paths.report_file,
            storage_pool=self._host.storage_pool,
        )
        config_changed = self._manager.ensure_config(manager_config, state.token)
        if self._manager.ensure_units(state.config.check_interval):
            logger.info("the runner manager's timer was installed or changed")
        # The daemon pulls the image build's source itself: it needs the model's proxy first.
        if self._host.ensure_lxd_proxy(state.proxy.http, state.proxy.https, state.proxy.no_proxy):
            logger.info("the LXD daemon's proxy settings follow the model's proxy")
        if self._manager.ensure_replenisher(config_changed):
            logger.info("the runner replenisher was started or restarted")
        self._ensure_image_build(manager_config)
        if self._host.ensure_logrotate(manager_config.metrics.log_path):
            logger.info("logrotate configuration of the metrics log written")
        if self._manager.ensure_exporter(state.metrics_enabled):
            logger.info("the runner manager's Prometheus endpoint was started or stopped")
        if config_changed:
            logger.info("the runner manager's configuration changed: reconciling now")
            self._manager.start_reconcile()

    def _prepare_host_for(self, state: CharmState) -> None:
        """Apply the denylist and prepare the runner storage this configuration needs."""
        # Before the storage steps: a storage problem must not hold back a denylist change from
        # the runners already running. A failure is a host error (firewall.FirewallError).
        if firewall.Firewall.for_app(self.app.name).ensure(state.config.denylist):
            logger.info("the runners' egress firewall (denylist) was applied or changed")
        storage = state.config.runner_storage.value
        self._host.check_storage(storage, state.required_storage)
        if self._host.ensure_runner_storage(storage, state.required_storage):
            logger.info("runner storage (%s) prepared", storage)

    def _ensure_image_build(self, manager_config: ManagerConfig) -> None:
        """Keep the image build's timer, and build at once when no image is there yet."""
        if self._manager.ensure_image_units(manager_config):
            logger.info("the runner image build's timer was installed or changed")
        reason = self._manager.start_image_build_if_due(manager_config)
        if reason:
            logger.info("building the runner image now: %s", reason)

    # ----- status ---------------------------------------------------------------------------

    def _on_collect_unit_status(self, event: ops.CollectStatusEvent) -> None:
        """Set the unit status from this hook's reconciliation and the manager's last report.

        Hooks that did not reconcile (actions, stop, remove) leave the status as it was.
        """
        outcome = self._outcome
        if outcome is None:
            return
        if outcome.blocked:
            event.add_status(ops.BlockedStatus(outcome.blocked))
            return
        if outcome.host_error or outcome.state is None:
            event.add_status(
                ops.MaintenanceStatus(
                    f"preparing the host failed, retrying: {_shorten(outcome.host_error or '')}"
                )
            )
            return
        event.add_status(
            _report_status(
                self._manager.read_report(),
                outcome.state,
                image_building=self._manager.image_build_in_progress(),
            )
        )

    # ----- actions --------------------------------------------------------------------------

    def _action_ready(self, event: ops.ActionEvent) -> bool:
        """Fail the action when the manager cannot run; return whether it can."""
        try:
            self._state()
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

    def _check_results(self, event: ops.ActionEvent) -> dict[str, Any] | None:
        result = self._run(event, ["check"], CHECK_TIMEOUT)
        if result is None:
            return None
        if not result.ok:
            event.fail(self._failure_message("check", result))
            return None
        document = result.document
        names = document.get("runners") or {}
        results: dict[str, Any] = {key: int(document.get(key) or 0) for key in _CHECK_KEYS}
        # `runners` (the online ones) as the original charm had it, then every state's names.
        results["runners"] = ",".join(str(name) for name in names.get("online") or [])
        for key in _CHECK_KEYS:
            results[f"{key}-runners"] = ",".join(str(name) for name in names.get(key) or [])
        if document.get("runner_version"):
            results["runner-version"] = str(document["runner_version"])
        return results

    def _on_check_runners(self, event: ops.ActionEvent) -> None:
        """Count this unit's runners by state."""
        if not self._action_ready(event):
            return
        results = self._check_results(event)
        if results is not None:
            event.set_results(results)

    def _changing_action(self, event: ops.ActionEvent, runs: list[list[str]]) -> None:
        """Run manager commands one after the other, then report the delta and the counts.

        A command that fails stops the sequence; the delta so far is still returned.
        """
        delta = {instance_type.value: 0 for instance_type in InstanceType}
        for args in runs:
            result = self._run(event, args, ACTION_TIMEOUT)
            if result is None:
                return
            report = result.report()
            if report is not None:
                for key, value in report.delta.items():
                    delta[key] = delta.get(key, 0) + value
            if not result.ok:
                event.set_results({"delta": delta})
                event.fail(self._failure_message(args[0], result))
                return
        results: dict[str, Any] = {"delta": delta}
        counts = self._check_results(event)
        if counts is not None:
            results.update(counts)
        event.set_results(results)

    def _on_reconcile_runners(self, event: ops.ActionEvent) -> None:
        """Reconcile now and report what changed."""
        if self._action_ready(event):
            self._changing_action(event, [["reconcile"]])

    def _on_flush_runners(self, event: ops.ActionEvent) -> None:
        """Remove the idle runners (busy ones too with busy=true), then reconcile."""
        if not self._action_ready(event):
            return
        flush = ["flush"]
        if event.params.get("busy", False):
            flush.append("--busy")
        self._changing_action(event, [flush])

    def _on_update_dependencies(self, event: ops.ActionEvent) -> None:
        """Refresh the runner application; say whether outdated runners were replaced."""
        if not self._action_ready(event):
            return
        result = self._run(event, ["update-dependencies"], UPDATE_TIMEOUT)
        if result is None:
            return
        report = result.report()
        if not result.ok or report is None:
            event.fail(self._failure_message("update-dependencies", result))
            return
        updated = bool(report.timings.get("runner_updated") or report.timings.get("image_updated"))
        replaced = any(removal.reason == "stale-config" for removal in report.removed)
        event.set_results(
            {
                "flush": updated and replaced,
                "runner-version": report.runner_version or "unknown",
                "delta": dict(report.delta),
            }
        )

    def _failure_message(self, command: str, result: service.ManagerResult) -> str:
        """Explain a failed manager run to the operator, without any secret."""
        kinds = result.error_kinds
        if result.exit_code == 5 or kinds == {"busy"}:
            return "another run of the runner manager is in progress: try again in a minute"
        if "token" in kinds:
            return _token_message(self.app.name)
        for kind in ("permission", "path"):
            if kind in kinds:
                return _error_messages(result, kind)
        if "config" in kinds:
            return f"the runner manager refused its configuration: {_error_messages(result)}"
        details = _error_messages(result) or "see the unit's log"
        return f"{command} failed (exit code {result.exit_code}): {details}"


# ----- helpers -------------------------------------------------------------------------------


def _shorten(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _token_message(app: str) -> str:
    return (
        "GitHub rejected the token: set a valid token with "
        f"`juju config {app} token=<token or secret URI>`"
    )


def _error_messages(result: service.ManagerResult, kind: str | None = None) -> str:
    messages = [
        str(error.get("message", ""))
        for error in result.errors
        if kind is None or error.get("kind") == kind
    ]
    return _shorten("; ".join(dict.fromkeys(message for message in messages if message)))


def runner_summary(report: Report) -> str:
    """Summarise a report's runners, e.g. `3/3 container, 1/1 virtual-machine runners`.

    A type with no desired runner is left out unless it has runners.

    Args:
        report: the report.

    Returns:
        The summary.
    """
    parts = []
    for instance_type in InstanceType:
        desired = report.desired.get(instance_type.value, 0)
        counts = report.counts.get(instance_type.value, {})
        alive = sum(counts.get(state, 0) for state in _ALIVE_STATES)
        if desired or alive:
            parts.append(f"{alive}/{desired} {instance_type.value}")
    if not parts:
        return "no runners configured: set containers or virtual-machines"
    return ", ".join(parts) + " runners"


def _transient_notes(report: Report, state: CharmState) -> list[str]:
    notes = []
    kinds = report.error_kinds()
    if "rate-limit" in kinds:
        if report.rate_limit_reset_at:
            until = time.strftime("%H:%M", time.gmtime(report.rate_limit_reset_at))
            notes.append(f"rate limited until {until} UTC")
        else:
            notes.append("rate limited by GitHub")
    if "image" in kinds:
        notes.append(f"image {state.config.base_image} missing")
    failures = sum(1 for error in report.errors if error.kind == "runner-create")
    if failures:
        notes.append(f"{failures} runner creation failure{'s' if failures > 1 else ''}")
    notes.extend(note for kind, note in _TRANSIENT_NOTES.items() if kind in kinds)
    return notes


def _report_status(
    report: Report | None,
    state: CharmState,
    now: datetime.datetime | None = None,
    *,
    image_building: bool = False,
) -> ops.StatusBase:
    """Map the manager's last report to a unit status.

    Args:
        report: the last report, or None.
        state: the charm state.
        now: the current time (UTC).
        image_building: whether a runner image build runs now.

    Returns:
        The status.
    """
    # The first build (no image yet) is maintenance; a rebuild while runners serve is a note.
    first_build = image_building and (report is None or "image" in report.error_kinds())
    if report is None:
        if first_build:
            return ops.MaintenanceStatus("building the runner image")
        return ops.WaitingStatus("waiting for the first reconciliation")
    now = now or datetime.datetime.now(datetime.timezone.utc)
    finished = report.finished_at or report.started_at
    if finished.tzinfo is None:
        finished = finished.replace(tzinfo=datetime.timezone.utc)
    interval = datetime.timedelta(minutes=state.config.check_interval)
    if now - finished > STALE_INTERVALS * interval + STALE_MARGIN:
        minutes = int((now - finished).total_seconds() // 60)
        return ops.WaitingStatus(
            f"the last reconciliation was {minutes} minutes ago: waiting for the next one"
        )
    kinds = report.error_kinds()
    if "token" in kinds:
        return ops.BlockedStatus(_token_message(state.app_name))
    for kind in ("permission", "path", "config"):
        messages = [error.message for error in report.errors if error.kind == kind]
        if messages:
            prefix = "the runner manager refused its configuration: " if kind == "config" else ""
            return ops.BlockedStatus(_shorten(prefix + messages[0]))
    if kinds == {"busy"} and not report.counts:
        return ops.WaitingStatus("another run of the runner manager held the lock: waiting")
    if first_build:
        return ops.MaintenanceStatus("building the runner image")
    summary = runner_summary(report)
    notes = _transient_notes(report, state)
    if image_building:
        notes.append("building a new runner image")
    return ops.ActiveStatus(f"{summary} ({'; '.join(notes)})" if notes else summary)


if __name__ == "__main__":  # pragma: nocover
    ops.main(GithubRunnerCharm)
