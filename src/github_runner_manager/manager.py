# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""The RunnerManager: observe LXD and GitHub, plan, apply, report.

A reconciliation reads in that order: `observe` lists both sides, the planner classifies and
plans (pure rules), the applier carries the plan out (removals, then creations), and the report
notes what was done (`report_assembly`); the runner metrics bookkeeping then goes through the
runners' host data.
One manager owns the runners of one unit. Runs that change anything (reconcile, flush,
update-dependencies, and the replenisher's `replenish`) hold a file lock (`utils.manager_lock`,
first come, first served), so the systemd timer's run, the replenisher and an action never
overlap.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import dataclasses
import datetime
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from . import planner, report_assembly, runner_metrics
from .applier import BUSY_RELEASE_TIMEOUT, Applier, RemovalOutcome, RunnerRemover
from .binary import CachedRunner, RunnerBinaryCache
from .config import ManagerConfig, config_hash
from .crash_logs import CrashLogs
from .errors import ErrorKind, GitHubError, LxdError, RunnerManagerError
from .exchange import RunnerExchange
from .github import GitHubClient
from .image import runner_image
from .job_logs import JobLogs, gather
from .lxd import LxdClient
from .metrics import MetricsLog
from .models import (
    GitHubRunner,
    InstanceStatus,
    InstanceType,
    RunnerInstance,
    RunnerState,
    github_target,
)
from .report import CheckResult, ErrorEntry, Report
from .runner import PendingRunner, ReservingSpawner, RunnerSpawner, SpawnResult
from .runner_versions import VersionLedger
from .standby import StandbyFirst, Standbys, ready_standbys
from .templates import TemplateRenderer
from .utils import atomic_write, manager_lock, run_parallel

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class _Batch:
    """What a replenishing batch does after the lock: start its instances, make standbys."""

    spawner: RunnerSpawner
    pending: list[PendingRunner]
    hashes: dict[InstanceType, str]


class RunnerManager:
    """Keeps the configured number of runners of one unit."""

    def __init__(
        self,
        config: ManagerConfig,
        lxd: LxdClient,
        github: GitHubClient,
        *,
        binary: RunnerBinaryCache | None = None,
        exchange: RunnerExchange | None = None,
        crash_logs: CrashLogs | None = None,
        job_logs: JobLogs | None = None,
        architecture: str = "x64",
        clock: Callable[[], datetime.datetime] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        github_for_target: Callable[[str, str], GitHubClient] | None = None,
        busy_release_timeout: float = BUSY_RELEASE_TIMEOUT,
    ):
        """Create the manager.

        Args:
            config: the configuration.
            lxd: the LXD client.
            github: the GitHub client.
            binary: the runner application cache (built from the config by default).
            exchange: the runners' host directories (built from the config by default).
            crash_logs: the crashed runners' log keeper (built from the config by default).
            job_logs: the per-job runner log keeper (built from the config by default).
            architecture: the runner architecture (`x64` or `arm64`).
            clock: the current time (tests pass a fake).
            sleep: the sleep function (tests pass a fake).
            monotonic: a monotonic clock for durations.
            github_for_target: builds a GitHub client for another GitHub URL and path, where
                runners were registered before the `path` or `github-url` option changed.
            busy_release_timeout: how long a busy flush retries deleting the registrations
                GitHub holds busy after their jobs were killed.
        """
        self.config = config
        self._lxd = lxd
        self._github = github
        self._clock = clock or (lambda: datetime.datetime.now(datetime.timezone.utc))
        self._sleep = sleep
        self._monotonic = monotonic
        self._renderer = TemplateRenderer(config.templates)
        self._binary = binary or RunnerBinaryCache(
            config.state_dir / "runner-binary",
            github,
            architecture,
            timeout=config.timing.api_timeout,
            deadline=config.timing.download_timeout,
        )
        self._name_pattern = planner.runner_name_pattern(config.name_prefix)
        self._metrics = MetricsLog(config.metrics.log_path, enabled=config.metrics.enabled)
        self._exchange = exchange or RunnerExchange(
            config.state_dir / "runners", config.state_dir / "quarantine"
        )
        self._crash_logs = crash_logs or CrashLogs(lxd, config.crash_log_dir)
        self._job_logs = job_logs or JobLogs(config.job_log_dir)
        self._versions = VersionLedger(config.state_dir / "runner-versions.json")
        self._github_for_target = github_for_target
        self._other_clients: dict[tuple[str, str], GitHubClient | None] = {}
        self._target = github_target(config.github.url, str(config.github.github_path))
        remover = RunnerRemover(
            lxd,
            github,
            github_for=self._github_for_view,
            before_delete=self._keep_logs,
            sleep=sleep,
            monotonic=monotonic,
            release_timeout=busy_release_timeout,
        )
        self._applier = Applier(config, lxd, remover, clock=self._clock, monotonic=monotonic)
        self._standbys = Standbys(
            lxd, config.unit, config.runners.standbys, config.timing.spawn_concurrency, self._clock
        )
        self._bookkeeping = runner_metrics.RunnerBookkeeping(
            self._exchange,
            self._job_logs,
            self._metrics,
            name_pattern=self._name_pattern,
            flavor=config.flavor,
            lookup=github.job_for_runner if config.metrics.enabled else None,
        )

    def _client_for(self, instance: RunnerInstance) -> GitHubClient | None:
        """The GitHub client of the path an instance's runner was registered on."""
        if instance.github_url is None or instance.github_path is None:
            return self._github
        target = github_target(instance.github_url, instance.github_path)
        if target == self._target:
            return self._github
        if target not in self._other_clients:
            client = None
            if self._github_for_target is not None:
                try:
                    client = self._github_for_target(instance.github_url, instance.github_path)
                except RunnerManagerError as exc:
                    logger.warning(
                        "cannot reach runners registered on %s: %s", instance.github_path, exc
                    )
            self._other_clients[target] = client
        return self._other_clients[target]

    def _github_for_view(self, view: planner.RunnerView) -> GitHubClient:
        client = self._client_for(view.instance) if view.instance is not None else None
        if client is None:
            raise GitHubError(f"no GitHub client for the path runner {view.name} was made on")
        return client

    def _keep_logs(self, removal: planner.Removal) -> None:
        """Copy the logs of a runner that died before its instance goes."""
        if removal.runner.state is RunnerState.UNHEALTHY:
            kept = self._crash_logs.collect(removal.name)
            if kept is not None:
                self._hand_over_crash_logs(removal.name, kept / "_diag")

    def _hand_over_crash_logs(self, runner: str, diag: Path) -> None:
        """Give a dead runner's copied `_diag` logs to its job log, as its start script would."""
        exchange = self._exchange.exchange_dir(runner)
        target = self._exchange.log_file(runner)
        if not exchange.is_dir() or target.exists() or target.is_symlink():
            return
        try:
            atomic_write(target, gather(diag))
        except OSError as exc:
            logger.warning("cannot hand over the crash logs of %s: %s", runner, exc)

    # ----- observation ----------------------------------------------------------------------

    def observe(self) -> tuple[list[RunnerInstance], list[GitHubRunner]]:
        """List the unit's instances and its GitHub runners, at the same time.

        Returns:
            The instances and the GitHub runners carrying the unit's name pattern.

        Raises:
            LxdError: if LXD cannot be listed.
            GitHubError: if GitHub cannot be listed.
        """
        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
            listing = pool.submit(self._lxd.list_instances, self.config.unit)
            github = pool.submit(self._github.list_runners)
            # Both finish before either error is raised (LXD's first), as the pool is left.
            instances, runners = listing.result(), github.result()
        ours = [runner for runner in runners if self._name_pattern.match(runner.name)]
        return instances, ours

    def _image_fingerprints(self) -> dict[InstanceType, str | None]:
        """The fingerprint of the image each runner type starts from (None: no such image)."""
        return {t: self._lxd.image_fingerprint(runner_image(self.config, t)) for t in InstanceType}

    def _hashes(
        self,
        cached: CachedRunner | None,
        fingerprints: dict[InstanceType, str | None] | None = None,
    ) -> dict[InstanceType, str]:
        """The configuration hash of each runner type, the image's fingerprint included.

        A new image (a rebuild, or an operator's new image under the same alias) makes the
        runners on the old one stale: idle ones are replaced, busy ones finish first. A type
        whose image is missing gets no hash, so none of its runners counts as stale: they could
        not be replaced.
        """
        if cached is None:
            return {}
        if fingerprints is None:
            fingerprints = self._image_fingerprints()
        extra = cached.application.sha256_checksum + self._renderer.runner_templates_hash()
        return {
            instance_type: config_hash(
                self.config.runner_hash_input(instance_type), extra + fingerprint
            )
            for instance_type, fingerprint in fingerprints.items()
            if fingerprint
        }

    def _probe(self, name: str) -> bool | None:
        """Ask an instance whether its runner service still runs (None: cannot tell)."""
        try:
            result = self._lxd.execute(
                name, ["systemctl", "is-active", "github-runner"], timeout=15
            )
        except LxdError:
            return None
        state = result.stdout.strip()
        if state in ("active", "activating", "reloading"):
            return True
        if state in ("inactive", "failed", "deactivating"):
            return False
        return None

    def classify(
        self,
        instances: Sequence[RunnerInstance],
        github_runners: Sequence[GitHubRunner],
        hashes: dict[InstanceType, str],
        locked: bool = False,
    ) -> list[planner.RunnerView]:
        """Classify the runners, gathering evidence for those GitHub's listing does not settle.

        Instances late to come online, and those whose runner the listing lacks, are probed
        (does the runner process run?); runners still unaccounted for, and those registered on
        another path, are looked up on GitHub by id.

        Args:
            instances: the unit's instances.
            github_runners: the unit's GitHub runners.
            hashes: the current configuration hash per instance type.
            locked: whether the run holds the manager's lock (no one else creates instances).

        Returns:
            The classified runners.
        """
        now = self._clock()
        timing = self.config.timing

        def run(
            alive: dict[str, bool | None] | None = None,
            looked_up: dict[str, GitHubRunner | None] | None = None,
        ) -> list[planner.RunnerView]:
            return planner.classify(
                instances,
                github_runners,
                now=now,
                registration_timeout=datetime.timedelta(seconds=timing.registration_timeout),
                current_hash=hashes,
                alive=alive,
                looked_up=looked_up,
                target=self._target,
                creation_grace=datetime.timedelta(0) if locked else planner.CREATION_GRACE,
            )

        views = run()
        to_probe = planner.instances_to_probe(
            views, now=now, min_age=datetime.timedelta(seconds=timing.probe_after)
        )
        alive: dict[str, bool | None] = {}
        if to_probe:
            alive = {
                name: result
                for name, result, _ in run_parallel(
                    self._probe, to_probe, timing.spawn_concurrency
                )
            }
            views = run(alive)
        to_look_up = planner.runners_to_look_up(views)
        if not to_look_up:
            return views
        looked_up: dict[str, GitHubRunner | None] = {}
        for view, found, exc in run_parallel(self._look_up, to_look_up, timing.spawn_concurrency):
            if exc is not None:
                logger.warning("cannot look runner %s up on GitHub: %s", view.name, exc)
            elif found is not None or _runner_id(view) is not None:
                # Only a 404 for its id says a runner is gone; a search by name that finds
                # nothing is no more evidence than the listing was.
                looked_up[view.name] = found
        views = run(alive, looked_up)
        unlisted = sorted(
            name
            for name, found in looked_up.items()
            if found is not None and not next(v for v in views if v.name == name).moved
        )
        if unlisted:
            logger.warning(
                "GitHub's runner listing lacked %d runners that exist (%s): the listing is "
                "incomplete; their instances are kept and the listing is read again next run",
                len(unlisted),
                ", ".join(unlisted),
            )
        return views

    def _look_up(self, view: planner.RunnerView) -> GitHubRunner | None:
        """Ask GitHub about one runner, by id where known (None: GitHub says it is gone)."""
        assert view.instance is not None  # noqa: S101 - only instances are looked up
        client = self._client_for(view.instance)
        if client is None:
            raise GitHubError(f"no GitHub client for {view.instance.github_path}")
        runner_id = _runner_id(view)
        if runner_id is not None:
            return client.get_runner(runner_id)
        return client.find_runner(view.name)

    # ----- commands -------------------------------------------------------------------------

    def _github_counters(self) -> tuple[int, int]:
        return self._github.call_count(), self._github.not_modified_count()

    def _calls_since(self, counters: tuple[int, int]) -> tuple[int, int]:
        """The GitHub requests (and 304 answers) since `_github_counters` gave `counters`."""
        calls, not_modified = self._github_counters()
        return calls - counters[0], not_modified - counters[1]

    def _finish(self, report: Report, started: float, counters: tuple[int, int]) -> Report:
        report_assembly.finish(
            report, self._clock(), self._monotonic() - started, self._calls_since(counters)
        )
        rate = self._github.rate_limit()
        if rate is not None:
            report.rate_limit_remaining = rate.remaining
            report.rate_limit_reset_at = rate.reset_at
        try:
            self._github.save_cache()
        except OSError as exc:
            logger.warning("cannot save the GitHub response cache: %s", exc)
        return report

    def reconcile(self) -> Report:
        """Bring the runners to the configured counts and health.

        Returns:
            The report (also written to the report file).
        """
        return self._locked_run("reconcile", lambda report: self._reconcile(report))

    def flush(self, busy: bool = False, reconcile: bool = True) -> Report:
        """Remove the unit's idle runners (busy ones too with `busy`), then reconcile.

        Args:
            busy: whether to remove busy runners too, cancelling their jobs.
            reconcile: whether to reconcile afterwards (replacing what was removed).

        Returns:
            The report.
        """

        def run(report: Report) -> None:
            # A removal that had trouble (a registration GitHub still holds) is reported, and
            # the reconciliation still runs: the fleet is brought back to its count.
            self._flush(report, busy)
            if reconcile:
                self._reconcile(report)

        return self._locked_run("flush", run)

    def update_dependencies(self, refresh_image: Callable[[Report], None] | None = None) -> Report:
        """Refresh the runner application and image, then reconcile (replacing idle outdated ones).

        Args:
            refresh_image: rebuilds the runner image and notes the outcome in the report. It
                runs before the lock is taken: a build takes minutes, and the timer's
                reconciliations must not wait for it.

        Returns:
            The report; `runner_updated` says whether a new runner was downloaded.
        """

        def before(report: Report) -> None:
            if refresh_image is not None:
                # The image bakes in the runner application: fetch a new one first.
                self._ensure_binary(report)
                refresh_image(report)

        return self._locked_run(
            "update-dependencies", lambda report: self._reconcile(report), before=before
        )

    def _locked_run(
        self,
        command: str,
        body: Callable[[Report], None],
        before: Callable[[Report], None] | None = None,
    ) -> Report:
        started = self._monotonic()
        counters = self._github_counters()
        report = report_assembly.new_report(command, self.config, self._clock())
        try:
            if before is not None:
                before(report)
            with manager_lock(
                self.config.state_dir / "manager.lock",
                self.config.timing.lock_timeout,
                self._sleep,
            ):
                body(report)
        except RunnerManagerError as exc:
            report_assembly.record_error(report, exc)
        except Exception as exc:
            logger.exception("unexpected error during %s", command)
            report_assembly.record_error(report, exc)
        self._finish(report, started, counters)
        if report.error_kinds() == {ErrorKind.BUSY}:
            # Nothing ran: keep the last real report for the charm's status.
            return report
        event = runner_metrics.reconciliation_event(report, self.config.flavor, self._clock)
        self._bookkeeping.issue(event)
        report.write(self.config.report_file)
        return report

    def _ensure_binary(self, report: Report) -> CachedRunner | None:
        try:
            cached = self._binary.ensure()
        except RunnerManagerError as exc:
            report_assembly.record_error(report, exc)
            return self._binary.cached()
        report.runner_version = cached.application.version
        # update-dependencies asks twice (before its image build, then in the reconcile).
        report.runner_updated = cached.updated or report.runner_updated
        return cached

    @contextlib.contextmanager
    def _phase(self, report: Report, name: str) -> Iterator[None]:
        """Time a phase of a run into the report's timings (in seconds, to the millisecond)."""
        started = self._monotonic()
        yield
        report.timings[name] = round(self._monotonic() - started, 3)

    def _reconcile(self, report: Report) -> None:
        with self._phase(report, "observe"):
            instances, github_runners = self.observe()
        with self._phase(report, "runner_binary"):
            cached = self._ensure_binary(report)
        with self._phase(report, "plan"):
            hashes = self._hashes(cached, self._image_fingerprints())
            views = self.classify(instances, github_runners, hashes, locked=True)
            plan = planner.plan(
                views,
                {t: self.config.runners.count(t) for t in InstanceType},
                {t: self.config.runners.standbys(t) for t in InstanceType},
            )
            report.runners = [report_assembly.runner_entry(view) for view in views]
        spawner = self._spawner(cached)
        removed = {removal.name for removal in plan.removals}
        outcome = self._applier.apply(
            plan,
            StandbyFirst(spawner, spawner, ready_standbys(instances, hashes, removed))
            if spawner is not None
            else None,
            hashes,
        )
        report_assembly.record_outcome(report, outcome)
        report.counts = report_assembly.counts(views, outcome.removals, outcome.created)
        self._record_versions(report, cached, hashes, views, outcome.removals, outcome.created)
        with self._phase(report, "metrics"):
            self._process_runner_data(report, views, outcome.removals, outcome.created)
            self._crash_logs.prune()
            self._job_logs.prune()

    def _spawner(self, cached: CachedRunner | None) -> RunnerSpawner | None:
        """The spawner of this run's runners (None: no runner application to make them with)."""
        if cached is None:
            return None
        return RunnerSpawner(
            self.config,
            self._lxd,
            self._github,
            self._renderer,
            runner_tarball=cached.path,
            runner_sha256=cached.application.sha256_checksum,
            monotonic=self._monotonic,
            sleep=self._sleep,
            wall_clock=self._clock,
            exchange=self._exchange if self.config.metrics.enabled else None,
        )

    def _process_runner_data(
        self,
        report: Report,
        views: Sequence[planner.RunnerView],
        outcomes: Sequence[RemovalOutcome],
        created: Sequence[SpawnResult],
    ) -> None:
        """Hand the runners still alive and those known to have crashed to the bookkeeping."""
        live, crashed = report_assembly.live_and_crashed(views, outcomes, created)
        done = self._bookkeeping.process(live, crashed)
        report.quarantined.extend(done.quarantined)
        report.crashed = done.crashed

    def _record_versions(
        self,
        report: Report,
        cached: CachedRunner | None,
        hashes: dict[InstanceType, str],
        views: Sequence[planner.RunnerView],
        outcomes: Sequence[RemovalOutcome],
        created: Sequence[SpawnResult],
    ) -> None:
        """Note which runner version each remaining runner runs, against the newest offered."""
        instance_hashes = report_assembly.remaining_hashes(views, outcomes, created, hashes)
        offered = self._binary.offered
        age = self._versions.update(
            offered=offered.version if offered else None,
            current_version=cached.application.version if cached else None,
            current_hashes=hashes.values(),
            instance_hashes=instance_hashes,
            now=self._clock().timestamp(),
        )
        report.latest_runner_version = age.latest
        report.runner_versions = age.runners
        report.outdated_runners = age.outdated
        report.newer_version_since = age.newer_since

    def replenish(self, lock_timeout: float | None = None) -> Report:
        """Make the runners the fleet misses, counting its instances in LXD only.

        The event-driven replenisher (see `replenish.py`) runs this when one of the unit's
        runners ends. Unlike a reconcile it lists no GitHub runners, downloads nothing (but the
        runner application on a fresh unit) and removes no runner: under the manager's lock it
        counts the unit's runner instances that are not stopped (and those it is starting, see
        `planner.in_creation`) and makes the difference to the configured count: from standbys
        first (see `standby.py`: one registration and one configuration update each), then by
        registering and creating instances, in parallel; it starts those after releasing the
        lock, so that the next batch (or the timer's reconcile) does not wait for the starts,
        and then makes the standbys that are missing. A replacement costs one GitHub call (its
        JIT configuration). The timer's reconcile does everything else. The report is returned,
        not written: the report file stays the last reconcile's.

        Args:
            lock_timeout: seconds to wait for the lock (the configured lock timeout by default).

        Returns:
            The report: `created` (standbys made runners included) and `errors`; `counts`
            holds the live runner instances (and the standbys made) per type.

        Raises:
            LockBusyError: if another run held the lock for the whole timeout.
        """
        started = self._monotonic()
        counters = self._github_counters()
        report = report_assembly.new_report("replenish", self.config, self._clock())
        timeout = self.config.timing.lock_timeout if lock_timeout is None else lock_timeout
        batch: _Batch | None = None
        with manager_lock(self.config.state_dir / "manager.lock", timeout, self._sleep):
            report.timings["lock_wait"] = round(self._monotonic() - started, 3)
            try:
                batch = self._replenish(report)
            except RunnerManagerError as exc:
                report_assembly.record_error(report, exc)
            except Exception as exc:
                logger.exception("unexpected error during replenish")
                report_assembly.record_error(report, exc)
            report.timings["locked"] = round(self._monotonic() - started, 3)
        if batch is not None:
            self._start_reserved(report, batch.spawner, batch.pending)
            self._top_up_standbys(report, batch)
        report_assembly.finish(
            report, self._clock(), self._monotonic() - started, self._calls_since(counters)
        )
        return report

    def _replenish(self, report: Report) -> _Batch | None:
        """Count, adopt standbys and create under the lock (None: nothing more to do)."""
        instances = self._lxd.list_instances(self.config.unit)
        now = self._clock()
        live = collections.Counter(
            instance.instance_type
            for instance in instances
            if not instance.standby
            and (
                instance.status is not InstanceStatus.STOPPED or planner.in_creation(instance, now)
            )
        )
        report.counts = {t.value: {"live": live[t]} for t in InstanceType}
        wanted = [
            t for t in InstanceType for _ in range(max(0, self.config.runners.count(t) - live[t]))
        ]
        standby_types = {t for t in InstanceType if self.config.runners.standbys(t)}
        if not wanted and not standby_types:
            return None
        # Downloaded once (by the first reconcile, or here on a fresh unit), then reused.
        cached = self._binary.cached() or (self._ensure_binary(report) if wanted else None)
        spawner = self._spawner(cached)
        if cached is None or spawner is None:
            if wanted and not report.errors:
                report.errors.append(
                    ErrorEntry(
                        kind=ErrorKind.RUNNER_BINARY,
                        message="no runner application to create runners with",
                    )
                )
            return None
        fingerprints = {
            t: self._lxd.image_fingerprint(runner_image(self.config, t))
            for t in set(wanted) | standby_types
        }
        hashes = self._hashes(cached, fingerprints)
        # From standbys first; the rest are created now and started after the lock.
        first = StandbyFirst(spawner, ReservingSpawner(spawner), ready_standbys(instances, hashes))
        made, errors = self._applier.create(wanted, first, hashes)
        report.errors.extend(errors)
        report_assembly.record_created(
            report, [result for result in made if not isinstance(result, PendingRunner)]
        )
        pending = [result for result in made if isinstance(result, PendingRunner)]
        return _Batch(spawner, pending, hashes)

    def _top_up_standbys(self, report: Report, batch: _Batch) -> None:
        """Make the missing standbys (after the lock; their errors go into the report)."""
        started = self._monotonic()
        try:
            made, errors = self._standbys.top_up(batch.spawner, batch.hashes)
        except RunnerManagerError as failure:
            made, errors = [], [failure]
        for error in errors:
            report_assembly.record_error(report, error)
        if made:
            # Only containers have standbys.
            report.counts.setdefault(InstanceType.CONTAINER.value, {})["standbys_made"] = len(made)
            report.timings["standby"] = round(self._monotonic() - started, 3)
            logger.info("made %d standby(s): %s", len(made), ", ".join(made))

    def _start_reserved(
        self, report: Report, spawner: RunnerSpawner, pending: Sequence[PendingRunner]
    ) -> None:
        """Start the instances `_replenish` created, outside the lock (a failed one is removed)."""
        concurrency = self.config.timing.spawn_concurrency
        for _, result, exc in run_parallel(spawner.bring_up, pending, concurrency):
            if result is not None:
                report_assembly.record_created(report, [result])
            elif exc is not None:
                if not isinstance(exc, RunnerManagerError):
                    logger.error("unexpected error starting a runner", exc_info=exc)
                report_assembly.record_error(report, exc)

    def _flush(self, report: Report, busy: bool) -> None:
        instances, github_runners = self.observe()
        views = self.classify(instances, github_runners, {}, locked=True)
        report.runners = [report_assembly.runner_entry(view) for view in views]
        removals = planner.plan_flush(views, busy=busy)
        outcomes = self._applier.remove(removals)
        report_assembly.record_removals(report, outcomes)
        report.counts = report_assembly.counts(views, outcomes, [])
        self._process_runner_data(report, views, outcomes, [])

    def check(self) -> CheckResult:
        """Count the unit's runners by state, without changing anything (no lock needed).

        Returns:
            Counts (`online`, `offline`, `busy`, `idle`, `unknown`) and names per state, per
            instance type.
        """
        instances, github_runners = self.observe()
        views = self.classify(instances, github_runners, {})
        rate = self._github.rate_limit()
        cached = self._binary.cached()
        return report_assembly.check_result(
            views,
            desired={t.value: self.config.runners.count(t) for t in InstanceType},
            rate_limit_remaining=rate.remaining if rate else None,
            runner_version=cached.application.version if cached else None,
        )


def _runner_id(view: planner.RunnerView) -> int | None:
    return view.instance.runner_id if view.instance is not None else None
