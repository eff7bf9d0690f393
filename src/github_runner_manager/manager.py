# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""The RunnerManager: observe LXD and GitHub, plan, apply, report.

One manager owns the runners of one unit. Runs that change anything (reconcile, flush, update)
hold a file lock, so the systemd timer's run and an action never overlap.
"""

from __future__ import annotations

import collections
import contextlib
import datetime
import errno
import fcntl
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from . import planner, runner_metrics
from .applier import BUSY_RELEASE_TIMEOUT, RemovalOutcome, RunnerRemover
from .binary import CachedRunner, RunnerBinaryCache
from .config import ManagerConfig, config_hash
from .crash_logs import CrashLogs
from .errors import (
    GitHubError,
    LockBusyError,
    LxdError,
    PathNotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RunnerManagerError,
    StorageFullError,
    TokenError,
)
from .exchange import CorruptDataError, RunnerData, RunnerExchange
from .github import GitHubClient, JobInfo
from .image import runner_image
from .job_logs import JobLabels, JobLogs, gather
from .lxd import LxdClient
from .metrics import Event, MetricsLog, Reconciliation, RunnerStop
from .models import (
    GitHubRunner,
    InstanceStatus,
    InstanceType,
    RunnerInstance,
    RunnerState,
    github_target,
)
from .report import ErrorEntry, RemovedEntry, Report, RunnerEntry
from .runner import RunnerSpawner, SpawnResult
from .runner_versions import VersionLedger
from .templates import TemplateRenderer
from .utils import atomic_write, run_parallel

logger = logging.getLogger(__name__)

# Errors after which no further GitHub call in this run can succeed: stop spawning.
_FATAL_GITHUB_ERRORS = (TokenError, PermissionDeniedError, PathNotFoundError, RateLimitError)


@contextlib.contextmanager
def manager_lock(
    path: Path, timeout: float, sleep: Callable[[float], None] = time.sleep
) -> Iterator[None]:
    """Hold the manager's file lock.

    Args:
        path: the lock file.
        timeout: seconds to wait for another run to finish.
        sleep: the sleep function.

    Yields:
        Nothing; the lock is held inside the block.

    Raises:
        LockBusyError: if another run held the lock for the whole timeout.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() >= deadline:
                    raise LockBusyError(
                        f"another run of the runner manager holds {path}; try again later"
                    ) from None
                sleep(0.2)
        yield
    finally:
        os.close(fd)


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
        self._remover = RunnerRemover(
            lxd,
            github,
            github_for=self._github_for_view,
            before_delete=self._keep_logs,
            sleep=sleep,
            monotonic=monotonic,
            release_timeout=busy_release_timeout,
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
        results = run_parallel(
            lambda source: source(),
            [lambda: self._lxd.list_instances(self.config.unit), self._github.list_runners],
            workers=2,
        )
        for _, _, exc in results:
            if exc is not None:
                raise exc
        instances: list[RunnerInstance] = results[0][1]  # type: ignore[assignment]
        runners: list[GitHubRunner] = results[1][1]  # type: ignore[assignment]
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

    def _new_report(self, command: str) -> Report:
        return Report(
            command=command,
            unit=self.config.unit,
            started_at=self._clock(),
            desired={t.value: self.config.runners.count(t) for t in InstanceType},
            delta={t.value: 0 for t in InstanceType},
        )

    def _github_counters(self) -> tuple[int, int]:
        not_modified = getattr(self._github, "not_modified_count", None)
        return self._github.call_count(), not_modified() if not_modified else 0

    def _finish(self, report: Report, started: float, counters: tuple[int, int]) -> Report:
        report.finished_at = self._clock()
        report.duration = round(self._monotonic() - started, 3)
        report.ok = not report.errors
        rate = self._github.rate_limit()
        if rate is not None:
            report.rate_limit_remaining = rate.remaining
            report.rate_limit_reset_at = rate.reset_at
        calls, not_modified = self._github_counters()
        report.github_calls = calls - counters[0]
        report.github_not_modified = not_modified - counters[1]
        save = getattr(self._github, "save_cache", None)
        if save is not None:
            try:
                save()
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
            The report; `timings["runner_updated"]` says whether a new runner was downloaded.
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
        report = self._new_report(command)
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
            report.errors.append(ErrorEntry(kind=exc.kind, message=str(exc)))
        except Exception as exc:
            logger.exception("unexpected error during %s", command)
            report.errors.append(ErrorEntry(kind="unexpected", message=repr(exc)))
        self._finish(report, started, counters)
        if report.error_kinds() == {"busy"}:
            # Nothing ran: keep the last real report for the charm's status.
            return report
        self._issue(self._reconciliation_event(report))
        report.write(self.config.report_file)
        return report

    def _issue(self, event: Event | None) -> None:
        if event is not None:
            self._metrics.issue(event)

    def _reconciliation_event(self, report: Report) -> Reconciliation:
        def total(state: str) -> int:
            return sum(counts.get(state, 0) for counts in report.counts.values())

        return Reconciliation(
            timestamp=(report.finished_at or self._clock()).timestamp(),
            flavor=self.config.flavor,
            crashed_runners=len(report.crashed),
            idle_runners=total(RunnerState.IDLE.value),
            busy_runners=total(RunnerState.BUSY.value),
            expected_runners=sum(report.desired.values()),
            created=len(report.created),
            removed=len(report.removed),
            duration=report.duration,
            rate_limit_remaining=report.rate_limit_remaining,
            errors=len(report.errors),
            runner_version=report.runner_version,
        )

    def _process_runner_data(
        self,
        report: Report,
        views: Sequence[planner.RunnerView],
        outcomes: Sequence[RemovalOutcome],
        created: Sequence[SpawnResult],
    ) -> None:
        """Issue the metric events of the runners' host data, and clean up finished runners.

        A runner still alive only gets its runner_installed event (once it is online); a
        finished one (its instance gone) gets its job events, then its host data is deleted.
        """
        removed = {o.removal.name for o in outcomes if o.removed or o.instance_deleted}
        live = {v.name for v in views if v.instance is not None and v.name not in removed}
        live |= {result.name for result in created}
        crashed = {
            o.removal.name
            for o in outcomes
            if o.removed and o.removal.runner.state is RunnerState.UNHEALTHY
        }
        lookup = self._github.job_for_runner if self.config.metrics.enabled else None
        flavor = self.config.flavor
        for runner in self._exchange.runners():
            if not self._name_pattern.match(runner):
                continue
            try:
                data = self._exchange.read(runner)
            except CorruptDataError as exc:
                logger.warning("runner %s reported corrupt data (%s); quarantined", runner, exc)
                self._exchange.quarantine(runner)
                report.quarantined.append(runner)
                continue
            if runner in live:
                if data.online is not None and not data.installed_reported:
                    self._issue(runner_metrics.installed_event(data, flavor))
                    self._exchange.mark_installed_reported(runner)
                continue
            if not data.installed_reported:
                self._issue(runner_metrics.installed_event(data, flavor))
            jobs: list[JobInfo | None] = []
            remember = _remembering(lookup, jobs) if lookup is not None else None
            for event in runner_metrics.job_events(data, flavor, remember):
                self._issue(event)
                if isinstance(event, RunnerStop) and event.status == "crashed":
                    crashed.add(runner)
            if runner_metrics.killed(data):
                logger.warning(
                    "the listener of runner %s was killed (exit code %s)",
                    runner,
                    data.post_job.exit_code if data.post_job else None,
                )
                crashed.add(runner)
            if runner_metrics.failed_at_start_up(data):
                # No job event says so: the crash count does.
                logger.warning(
                    "runner %s failed before it came online; its listener exited with %s",
                    runner,
                    data.post_job.exit_code if data.post_job else None,
                )
                crashed.add(runner)
            self._keep_job_logs(data, jobs[0] if jobs else None, runner in crashed)
            self._exchange.delete(runner)
        report.crashed = sorted(crashed)

    def _keep_job_logs(self, data: RunnerData, job: JobInfo | None, crashed: bool) -> None:
        """Keep the runner logs a finished runner handed over, labelled with its job."""
        pre, post = data.pre_job, data.post_job
        if crashed:
            conclusion = "crashed"
        elif job is not None and job.conclusion:
            conclusion = job.conclusion
        elif post is not None:
            conclusion = "no-job" if pre is None else post.status
        else:
            conclusion = "unknown"
        labels = JobLabels(
            runner=data.name,
            instance_type=data.installed.instance_type if data.installed else None,
            flavor=self.config.flavor,
            repository=pre.repository if pre else None,
            workflow=pre.workflow if pre else None,
            job_id=job.id if job is not None else None,
            run_id=pre.workflow_run_id if pre else None,
            conclusion=conclusion,
        )
        try:
            self._job_logs.store(self._exchange.log_file(data.name), labels)
        except OSError as exc:
            logger.error("cannot keep the runner logs of %s: %s", data.name, exc)

    def _ensure_binary(self, report: Report) -> CachedRunner | None:
        try:
            cached = self._binary.ensure()
        except RunnerManagerError as exc:
            report.errors.append(ErrorEntry(kind=exc.kind, message=str(exc)))
            return self._binary.cached()
        report.runner_version = cached.application.version
        # update-dependencies asks twice (before its image build, then in the reconcile).
        report.timings["runner_updated"] = bool(
            cached.updated or report.timings.get("runner_updated")
        )
        return cached

    def _reconcile(self, report: Report) -> None:
        phase = self._monotonic()
        instances, github_runners = self.observe()
        report.timings["observe"] = round(self._monotonic() - phase, 3)

        phase = self._monotonic()
        cached = self._ensure_binary(report)
        report.timings["runner_binary"] = round(self._monotonic() - phase, 3)

        phase = self._monotonic()
        fingerprints = self._image_fingerprints()
        hashes = self._hashes(cached, fingerprints)
        views = self.classify(instances, github_runners, hashes, locked=True)
        desired = {t: self.config.runners.count(t) for t in InstanceType}
        plan = planner.plan(views, desired)
        report.runners = [_entry(view) for view in views]
        report.timings["plan"] = round(self._monotonic() - phase, 3)

        phase = self._monotonic()
        outcomes = self._remover.remove_all(plan.removals, self.config.timing.spawn_concurrency)
        self._record_removals(report, outcomes)
        report.timings["remove"] = round(self._monotonic() - phase, 3)

        phase = self._monotonic()
        created: list[SpawnResult] = []
        wanted = [t for t, count in plan.create.items() for _ in range(count)]
        if wanted and cached is None:
            report.errors.append(
                ErrorEntry(
                    kind="runner-binary", message="no runner application to create runners with"
                )
            )
        elif wanted and cached is not None:
            for instance_type in sorted(
                {t for t in wanted if not fingerprints.get(t)}, key=lambda t: t.value
            ):
                report.errors.append(
                    ErrorEntry(kind="image", message=self._missing_image(instance_type))
                )
            wanted = [t for t in wanted if fingerprints.get(t)]
            if wanted:
                created = self._spawn(report, wanted, cached, hashes)
        report.timings["spawn"] = round(self._monotonic() - phase, 3)
        report.created.extend(result.name for result in created)
        for result in created:
            report.delta[result.instance_type.value] += 1
        report.timings.setdefault("runners", {}).update(
            {result.name: dict(result.timings) for result in created}
        )
        report.counts = _counts(views, outcomes, created)
        self._record_versions(report, cached, hashes, views, outcomes, created)

        phase = self._monotonic()
        self._process_runner_data(report, views, outcomes, created)
        self._crash_logs.prune()
        self._job_logs.prune()
        report.timings["metrics"] = round(self._monotonic() - phase, 3)

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
        removed = {outcome.removal.name for outcome in outcomes if outcome.removed}
        instance_hashes = [
            view.instance.config_hash
            for view in views
            if view.instance is not None and view.name not in removed
        ]
        instance_hashes += [hashes[result.instance_type] for result in created]
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

    def _missing_image(self, instance_type: InstanceType) -> str:
        image = runner_image(self.config, instance_type)
        if self.config.image.build:
            return f"the LXD image {image!r} does not exist yet: it is built by build-image"
        return f"the LXD image {image!r} does not exist yet"

    def _spawn(
        self,
        report: Report,
        wanted: list[InstanceType],
        cached: CachedRunner,
        hashes: dict[InstanceType, str],
    ) -> list[SpawnResult]:
        spawner = RunnerSpawner(
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
        fatal: list[GitHubError] = []
        full: list[BaseException] = []
        # After the pool ran out of space, one at a time: parallel creations in a nearly full
        # pool race for the last space, and all of them can lose.
        cautious = self._space_marker().exists()

        def spawn_one(instance_type: InstanceType) -> SpawnResult | None:
            if fatal or full:
                # GitHub refuses us, or the pool is full: do not go on with the rest
                return None
            try:
                return spawner.spawn(instance_type, hashes[instance_type])
            except _FATAL_GITHUB_ERRORS as exc:
                fatal.append(exc)
                raise
            except RunnerManagerError as exc:
                if _storage_full(exc):
                    full.append(exc)
                raise

        concurrency = 1 if cautious else self.config.timing.spawn_concurrency
        created, not_made = _collect_spawns(report, run_parallel(spawn_one, wanted, concurrency))
        if full and not fatal and not cautious:
            # The failed creations have been cleaned up: make what fits, one at a time, until
            # the pool is full again.
            created += self._spawn_one_at_a_time(report, spawner, not_made, hashes)
        if full:
            report.errors.append(
                ErrorEntry(kind="runner-create", message=self._pool_full(full[0], created, wanted))
            )
            self._mark_space_limited(True)
        elif cautious and len(created) == len(wanted):
            self._mark_space_limited(False)  # everything fitted: back to parallel creation
        return created

    def _spawn_one_at_a_time(
        self,
        report: Report,
        spawner: RunnerSpawner,
        wanted: Sequence[InstanceType],
        hashes: dict[InstanceType, str],
    ) -> list[SpawnResult]:
        """Create runners one after the other; stop when the pool is full or GitHub says no."""
        created = []
        for instance_type in wanted:
            try:
                created.append(spawner.spawn(instance_type, hashes[instance_type]))
            except Exception as exc:
                if _storage_full(exc):
                    break
                if not isinstance(exc, RunnerManagerError):
                    logger.error("unexpected error creating a runner", exc_info=exc)
                    report.errors.append(ErrorEntry(kind="unexpected", message=repr(exc)))
                    break
                report.errors.append(ErrorEntry(kind=exc.kind, message=str(exc)))
                if isinstance(exc, _FATAL_GITHUB_ERRORS):
                    break
        return created

    def _space_marker(self) -> Path:
        return self.config.state_dir / "storage-full"

    def _mark_space_limited(self, limited: bool) -> None:
        """Remember (in the state directory) that the pool was full, for the next runs."""
        marker = self._space_marker()
        try:
            if limited:
                marker.write_text(self._clock().isoformat() + "\n", encoding="utf-8")
            else:
                marker.unlink(missing_ok=True)
        except OSError as exc:
            logger.warning("cannot update %s: %s", marker, exc)

    def _pool_full(
        self, first: BaseException, created: Sequence[SpawnResult], wanted: Sequence[InstanceType]
    ) -> str:
        """One message for every creation that found the storage pool full."""
        pool = self.config.lxd.storage_pool
        usage = None
        with contextlib.suppress(Exception):  # a courtesy: never let it hide the real error
            usage = self._lxd.storage_pool_usage(pool)
        how_full = ""
        if usage is not None and usage[1] > 0:
            used, total = usage
            how_full = f" ({_gib(used)} of {_gib(total)} used, {100 * used / total:.0f}%)"
        return (
            f"the LXD storage pool {pool!r} is full{how_full}: created {len(created)} of the "
            f"{len(wanted)} runners wanted; the other {len(wanted) - len(created)} are created "
            "once there is room (free space in the pool, give it more, or lower the runner "
            f"count or the disk size). LXD said: {first}"
        )

    def replenish(self, lock_timeout: float | None = None) -> Report:
        """Spawn the runners the fleet misses, counting its instances in LXD only.

        The event-driven replenisher (see `replenish.py`) runs this when one of the unit's
        runners ends. Unlike a reconcile it lists no GitHub runners, downloads nothing and
        removes nothing: it counts the unit's instances that are not stopped, under the
        manager's lock, and spawns the difference to the configured count in one parallel batch,
        so a replacement costs one GitHub call (its JIT configuration). The timer's reconcile
        does everything else. The report is returned, not written: the report file stays the
        last reconcile's.

        Args:
            lock_timeout: seconds to wait for the lock (the configured lock timeout by default).

        Returns:
            The report: `created` and `errors`; `counts` holds the live instances per type.

        Raises:
            LockBusyError: if another run held the lock for the whole timeout.
        """
        started = self._monotonic()
        counters = self._github_counters()
        report = self._new_report("replenish")
        timeout = self.config.timing.lock_timeout if lock_timeout is None else lock_timeout
        with manager_lock(self.config.state_dir / "manager.lock", timeout, self._sleep):
            try:
                self._replenish(report)
            except RunnerManagerError as exc:
                report.errors.append(ErrorEntry(kind=exc.kind, message=str(exc)))
            except Exception as exc:
                logger.exception("unexpected error during replenish")
                report.errors.append(ErrorEntry(kind="unexpected", message=repr(exc)))
        report.finished_at = self._clock()
        report.duration = round(self._monotonic() - started, 3)
        report.ok = not report.errors
        calls, not_modified = self._github_counters()
        report.github_calls = calls - counters[0]
        report.github_not_modified = not_modified - counters[1]
        return report

    def _replenish(self, report: Report) -> None:
        instances = self._lxd.list_instances(self.config.unit)
        live = collections.Counter(
            instance.instance_type
            for instance in instances
            if instance.status is not InstanceStatus.STOPPED
        )
        report.counts = {t.value: {"live": live[t]} for t in InstanceType}
        wanted = [
            t for t in InstanceType for _ in range(max(0, self.config.runners.count(t) - live[t]))
        ]
        if not wanted:
            return
        # Downloaded once (by the first reconcile, or here on a fresh unit), then reused.
        cached = self._binary.cached() or self._ensure_binary(report)
        if cached is None:
            if not report.errors:
                report.errors.append(
                    ErrorEntry(
                        kind="runner-binary",
                        message="no runner application to create runners with",
                    )
                )
            return
        fingerprints = {
            t: self._lxd.image_fingerprint(runner_image(self.config, t)) for t in set(wanted)
        }
        for instance_type in sorted(
            {t for t in wanted if not fingerprints.get(t)}, key=lambda t: t.value
        ):
            report.errors.append(
                ErrorEntry(kind="image", message=self._missing_image(instance_type))
            )
        wanted = [t for t in wanted if fingerprints.get(t)]
        if not wanted:
            return
        hashes = self._hashes(cached, fingerprints)
        created = self._spawn(report, wanted, cached, hashes)
        report.created.extend(result.name for result in created)
        for result in created:
            report.delta[result.instance_type.value] += 1

    def _flush(self, report: Report, busy: bool) -> None:
        instances, github_runners = self.observe()
        views = self.classify(instances, github_runners, {}, locked=True)
        report.runners = [_entry(view) for view in views]
        removals = planner.plan_flush(views, busy=busy)
        outcomes = self._remover.remove_all(removals, self.config.timing.spawn_concurrency)
        self._record_removals(report, outcomes)
        report.counts = _counts(views, outcomes, [])
        self._process_runner_data(report, views, outcomes, [])

    def _record_removals(self, report: Report, outcomes: Sequence[RemovalOutcome]) -> None:
        for outcome in outcomes:
            instance_type = outcome.removal.runner.instance_type
            if (outcome.removed or outcome.instance_deleted) and instance_type is not None:
                report.delta[instance_type.value] -= 1
            if outcome.removed:
                report.removed.append(
                    RemovedEntry(
                        name=outcome.removal.name,
                        reason=outcome.removal.reason.value,
                        instance_type=instance_type.value if instance_type else None,
                    )
                )
            if outcome.error is not None:
                report.errors.append(
                    ErrorEntry(
                        kind=outcome.error.kind,
                        message=str(outcome.error),
                        runner=outcome.removal.name,
                    )
                )
            elif outcome.note:
                logger.info("kept runner %s: %s", outcome.removal.name, outcome.note)

    def check(self) -> dict[str, Any]:
        """Count the unit's runners by state, without changing anything (no lock needed).

        Returns:
            Counts (`online`, `offline`, `busy`, `idle`, `unknown`) and names per state, per
            instance type.
        """
        instances, github_runners = self.observe()
        views = self.classify(instances, github_runners, {})
        names: dict[str, list[str]] = collections.defaultdict(list)
        for view in views:
            github = view.github
            if github is None:
                names["unknown"].append(view.name)
                continue
            names["online" if github.online else "offline"].append(view.name)
            if github.online:
                names["busy" if github.busy else "idle"].append(view.name)
        by_type: dict[str, dict[str, int]] = {}
        for view in views:
            type_name = view.instance_type.value if view.instance_type else "github-only"
            by_type.setdefault(type_name, collections.Counter())[view.state.value] += 1
        rate = self._github.rate_limit()
        cached = self._binary.cached()
        return {
            "online": len(names["online"]),
            "offline": len(names["offline"]),
            "busy": len(names["busy"]),
            "idle": len(names["idle"]),
            "unknown": len(names["unknown"]),
            "runners": {state: sorted(found) for state, found in names.items()},
            "by_type": {key: dict(value) for key, value in by_type.items()},
            "desired": {t.value: self.config.runners.count(t) for t in InstanceType},
            "rate_limit_remaining": rate.remaining if rate else None,
            "runner_version": cached.application.version if cached else None,
        }


def _collect_spawns(
    report: Report,
    results: Sequence[tuple[InstanceType, SpawnResult | None, BaseException | None]],
) -> tuple[list[SpawnResult], list[InstanceType]]:
    """Sort a batch's outcomes: runners made, errors reported, types not made for lack of space.

    A space failure is not reported here: the caller reports the full pool once.
    """
    created: list[SpawnResult] = []
    not_made: list[InstanceType] = []
    errors_seen: set[str] = set()
    for instance_type, result, exc in results:
        if result is not None:
            created.append(result)
        elif exc is None or _storage_full(exc):
            not_made.append(instance_type)  # skipped, or lost the race for space
        else:
            kind = exc.kind if isinstance(exc, RunnerManagerError) else "unexpected"
            message = str(exc) if isinstance(exc, RunnerManagerError) else repr(exc)
            if isinstance(exc, _FATAL_GITHUB_ERRORS) and message in errors_seen:
                continue  # one token error is enough, not one per runner
            errors_seen.add(message)
            if not isinstance(exc, RunnerManagerError):
                logger.error("unexpected error creating a runner", exc_info=exc)
            report.errors.append(ErrorEntry(kind=kind, message=message))
    return created, not_made


def _storage_full(exc: BaseException) -> bool:
    """Whether an error (or one it was raised from) says LXD ran out of space."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, StorageFullError):
            return True
        seen = seen.__cause__
    return False


def _gib(size: int) -> str:
    return f"{size / 1024**3:.1f}GiB"


def _runner_id(view: planner.RunnerView) -> int | None:
    return view.instance.runner_id if view.instance is not None else None


def _entry(view: planner.RunnerView) -> RunnerEntry:
    return RunnerEntry(
        name=view.name,
        instance_type=view.instance_type.value if view.instance_type else None,
        state=view.state.value,
        github_id=view.github.id if view.github else None,
        online=bool(view.github and view.github.online),
        busy=view.busy,
        created_at=view.instance.created_at if view.instance else None,
        stale=view.stale,
    )


def _counts(
    views: Sequence[planner.RunnerView],
    outcomes: Sequence[RemovalOutcome],
    created: Sequence[SpawnResult],
) -> dict[str, dict[str, int]]:
    """Runners per instance type and state once the run's changes are made."""
    removed = {o.removal.name for o in outcomes if o.removed or o.instance_deleted}
    counts: dict[str, dict[str, int]] = {t.value: {} for t in InstanceType}
    for view in views:
        if view.name in removed or view.instance_type is None:
            continue
        bucket = counts[view.instance_type.value]
        bucket[view.state.value] = bucket.get(view.state.value, 0) + 1
    for result in created:
        bucket = counts[result.instance_type.value]
        bucket[RunnerState.BOOTING.value] = bucket.get(RunnerState.BOOTING.value, 0) + 1
    return counts


def _remembering(
    lookup: runner_metrics.JobLookup, found: list[JobInfo | None]
) -> runner_metrics.JobLookup:
    """A job lookup that also keeps what it found."""

    def _lookup(repository: str, run_id: int, runner: str) -> JobInfo | None:
        job = lookup(repository, run_id, runner)
        found.append(job)
        return job

    return _lookup
