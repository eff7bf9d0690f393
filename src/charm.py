#!/usr/bin/env python3
# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""The github-runner charm: keeps ephemeral GitHub Actions runners in LXD on each unit.

This module only wires the configurator: it validates its inputs into a `CharmState`, prepares
the host (`host`, `storage`, `firewall`), writes the runner manager's configuration and systemd
units (`service`), and sets the status `status` makes of the manager's report (the actions are
in `actions`). The runners are reconciled outside Juju hooks, by the timer's runs of
`python3 -m github_runner_manager`, and replaced between them by its replenisher service.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import ops

import actions
import command
import cos_agent
import firewall
import host
import service
import status
import storage
from charm_state import (
    COS_AGENT_RELATION,
    DEBUG_SSH_RELATION,
    PROXY_ENVIRONMENT,
    CharmState,
    InvalidConfigError,
    RunnerStorage,
    UnitIdentity,
)
from github_runner_manager import ManagerConfig
from status import Outcome

logger = logging.getLogger(__name__)

# How long the final flush may run.
FLUSH_TIMEOUT = 1200.0


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
        self._unit = UnitIdentity.of(self)
        self._host = host.Host()
        self._storage = storage.StoragePool(app=self._unit.app_name)
        paths = service.ManagerPaths.for_unit(self._unit.app_name, self._unit.unit_number)
        self._manager = service.ManagerService(paths, Path(self.charm_dir))
        self._outcome: Outcome | None = None
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
        self._actions = actions.Actions(self, self._manager, self._state)
        framework.observe(self.on.collect_unit_status, self._on_collect_unit_status)

    # ----- lifecycle end --------------------------------------------------------------------

    def _on_remove(self, _: ops.RemoveEvent) -> None:
        """Remove the runners (again), the images, the files, then the app's ACL and pool."""
        self._on_stop()
        self._manager.remove_images(FLUSH_TIMEOUT)
        self._manager.remove_files()
        if not self._manager.other_units_here():
            firewall.Firewall.for_app(self.app.name).remove()
            self._storage.remove()

    def _on_stop(self, _: ops.StopEvent | None = None) -> None:
        """Disable the timer and flush all runners of this unit with the last config written.

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
            logger.error("%s", status.teardown_failure(result.exit_code, result.document))

    # ----- reconciliation -------------------------------------------------------------------

    def _state(self) -> CharmState:
        """Build (once per hook) and return the state.

        Raises:
            InvalidConfigError: if the inputs are invalid.
        """
        if self._state_cache is None:
            existing = self._storage.runner_storage_in_use()
            try:
                self._state_cache = CharmState.from_charm(
                    self,
                    unit=self._unit,
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

    def _steady(self, outcome: Outcome) -> bool:
        """Tell whether update-status can skip the host preparation, and fill the outcome.

        Steady state: the last full reconciliation succeeded with the same inputs, the
        manager's configuration is there and its timer runs. Reading the state then costs no
        LXD command (the runner storage check only matters when the config changes).
        """
        if not self._stored.converged:
            return False
        try:
            state = CharmState.from_charm(
                self, unit=self._unit, machine=self._host.machine(), existing_storage=None
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
        outcome = Outcome()
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

    def _converge(self, outcome: Outcome) -> None:
        # Dashboards and rules do not depend on the config: publish them whatever it is.
        cos_agent.publish(self, self._unit.exporter_port)
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
        self._configure_manager(state)

    def _configure_manager(self, state: CharmState) -> None:
        """Write the manager's configuration and keep its timer, services and image build."""
        paths = self._manager.paths
        manager_config = state.manager_config(
            state_dir=paths.state_dir,
            token_file=paths.token_file,
            report_file=paths.report_file,
            storage_pool=self._storage.storage_pool,
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
        kind = state.config.runner_storage.value
        self._storage.check_storage(kind, state.required_storage)
        if self._storage.ensure_runner_storage(kind, state.required_storage):
            logger.info("runner storage (%s) prepared", kind)

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
        elif outcome.host_error or outcome.state is None:
            event.add_status(status.host_error_status(outcome.host_error or ""))
        else:
            building = self._manager.image_build_in_progress()
            report = self._manager.read_report()
            event.add_status(status.report_status(report, outcome.state, image_building=building))


if __name__ == "__main__":  # pragma: nocover
    ops.main(GithubRunnerCharm)
