# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""The reconciliation planner: a pure function from what is observed to what to do.

Inputs are the unit's LXD instances, the GitHub runners carrying its name prefix, the current
configuration hash per instance type, the desired counts, the time, and (for a few instances)
whether the runner process is alive inside them. The output is a `Plan`: which runners to remove
and why, and how many to create per instance type. Nothing here does I/O, so every rule is tested
as a table.

The rules, each named by its `Reason`:

- `github-orphan`: an offline GitHub runner with no instance. An ephemeral runner whose instance
  died never deregisters, and GitHub keeps offline runners for weeks.
- `stopped`: an instance that is not running. A runner powers its instance off after its job and
  LXD deletes ephemeral instances, so a stopped one is a leftover (or LXD failed to delete it).
  Outside the manager's lock a very young one is left alone for a while (`creating`): another
  run may be creating it. Every run that creates instances holds the lock, so a run holding it
  knows a stopped instance is the leftover of a run that was killed, and removes it at once,
  except a young, never started one tagged to be started after the lock (`awaiting_start`): the
  replenisher creates its instances under the lock and starts them after releasing it (see
  `in_creation`).
- `finished`: a running instance whose runner is gone, on positive evidence: GitHub answers 404
  for its runner id, or its runner process has exited (it ran its job, and GitHub deleted the
  ephemeral registration). It is not counted, so its replacement is created in the same run,
  and its instance is deleted. Absence from GitHub's listing alone is no evidence: a listing
  can be incomplete (a page lost, a body that did not decode), so such a runner is `unlisted`:
  kept, counted, and looked up again at the next run.
- `moved`: an idle (or booting) runner registered on another path or GitHub server than the
  configured one (the `path` or `github-url` option changed). Its registration is deleted
  where it was made, then its instance. Busy ones finish their job first. Moved runners are
  not counted: the new path gets its full count at once.
- `unhealthy`: a running instance whose runner is not online on GitHub after the registration
  grace period, or whose runner process is known to be dead. GitHub shows a healthy runner
  offline for a while after it starts, hence the grace period.
- `stale-config`: an idle (or still booting) runner created with another configuration. Busy
  runners finish their job first; being ephemeral, they go away afterwards.
- `scale-down`: more runners than wanted: idle runners go first, oldest first, then booting ones.
  Busy runners are never removed to scale down. More standbys than wanted go too, oldest first.
- Standbys (`standby`): booted containers from the baked image with no registration yet, which
  the replenisher keeps beside the runners and makes runners when runners end. They are not
  runners: never counted, never looked up on GitHub; one made with another configuration (or for
  another path) goes as `stale-config`, a stopped one as `stopped`.
- `flush`: the operator asked to remove runners.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import re
from collections.abc import Mapping, Sequence

from .config import RUNNER_SUFFIX_HEX
from .models import GitHubRunner, InstanceStatus, InstanceType, RunnerInstance, RunnerState

# How long a stopped instance may be in creation (see the module docstring).
CREATION_GRACE = datetime.timedelta(minutes=2)
# A just-registered runner may take a moment to appear in GitHub's listing: below this age a
# missing registration does not yet mean the runner is finished.
LISTING_GRACE = datetime.timedelta(seconds=5)


class Reason(str, enum.Enum):
    """Why a runner is removed."""

    GITHUB_ORPHAN = "github-orphan"
    STOPPED = "stopped"
    FINISHED = "finished"
    UNHEALTHY = "unhealthy"
    STALE_CONFIG = "stale-config"
    SCALE_DOWN = "scale-down"
    MOVED = "moved"
    FLUSH = "flush"


@dataclasses.dataclass(frozen=True)
class RunnerView:
    """One runner as seen through LXD and GitHub together.

    Attributes:
        name: the runner (and instance) name.
        state: the classified state.
        instance: the LXD instance, if there is one.
        github: the GitHub runner, if GitHub lists one.
        stale: whether the instance was created with another configuration.
        moved: whether the runner is registered on another path or GitHub server than the
            configured one.
    """

    name: str
    state: RunnerState
    instance: RunnerInstance | None
    github: GitHubRunner | None
    stale: bool = False
    moved: bool = False

    @property
    def runner_id(self) -> int | None:
        """GitHub's id of the runner: from GitHub, else as noted on the instance."""
        if self.github is not None:
            return self.github.id
        return self.instance.runner_id if self.instance else None

    @property
    def target(self) -> tuple[str, str] | None:
        """Where the runner is registered, when it is not the configured path."""
        return self.instance.github_target if self.moved and self.instance else None

    @property
    def instance_type(self) -> InstanceType | None:
        """The instance type, or None for a GitHub-only runner."""
        return self.instance.instance_type if self.instance else None

    @property
    def busy(self) -> bool:
        """Whether GitHub says the runner is running a job."""
        return bool(self.github and self.github.busy)


@dataclasses.dataclass(frozen=True)
class Removal:
    """A runner to remove.

    Attributes:
        runner: the runner.
        reason: why.
    """

    runner: RunnerView
    reason: Reason

    @property
    def name(self) -> str:
        """The runner name."""
        return self.runner.name


@dataclasses.dataclass(frozen=True)
class Plan:
    """What a reconciliation does.

    Attributes:
        runners: every runner, classified.
        removals: the runners to remove, with their reasons.
        create: how many runners to create per instance type.
    """

    runners: tuple[RunnerView, ...]
    removals: tuple[Removal, ...]
    create: Mapping[InstanceType, int]


def runner_name_pattern(prefix: str) -> re.Pattern[str]:
    """The pattern of the runner names of a manager.

    The fixed-length hex suffix keeps `app-1` unit 2 (`app-1-2-<hex>`) apart from `app` unit 1
    (`app-1-<hex>`), which a bare prefix match would confuse.

    Args:
        prefix: the manager's name prefix (`<app>-<unit number>`).

    Returns:
        The compiled pattern.
    """
    return re.compile(rf"^{re.escape(prefix)}-[0-9a-f]{{{RUNNER_SUFFIX_HEX}}}$")


def classify(
    instances: Sequence[RunnerInstance],
    github_runners: Sequence[GitHubRunner],
    *,
    now: datetime.datetime,
    registration_timeout: datetime.timedelta,
    current_hash: Mapping[InstanceType, str],
    alive: Mapping[str, bool | None] | None = None,
    looked_up: Mapping[str, GitHubRunner | None] | None = None,
    target: tuple[str, str] | None = None,
    creation_grace: datetime.timedelta = CREATION_GRACE,
) -> list[RunnerView]:
    """Join instances and GitHub runners by name and classify each runner.

    Args:
        instances: the manager's LXD instances.
        github_runners: the GitHub runners with the manager's name pattern.
        now: the current time.
        registration_timeout: how long a new runner may take to come online.
        current_hash: the configuration hash a runner of each type is created with now.
        alive: for probed instances, whether the runner process runs (None: unknown).
        looked_up: runners GitHub was asked about by id (or by name): the runner, or None
            when GitHub answered that it does not exist. Absent names were not asked about.
        target: the configured `(url, path)` (see `models.github_target`); an instance
            registered elsewhere is `moved`, and only `looked_up` tells about its runner.
        creation_grace: how long a stopped instance may be in creation (zero under the lock).

    Returns:
        The runners, sorted by name.
    """
    alive = alive or {}
    looked_up = looked_up or {}
    by_name = {runner.name: runner for runner in github_runners}
    views = []
    for instance in instances:
        instance_target = instance.github_target
        moved = target is not None and instance_target is not None and instance_target != target
        listed = None if moved else by_name.pop(instance.name, None)
        runner = listed if listed is not None else looked_up.get(instance.name)
        gone = runner is None and instance.name in looked_up
        # Without a current hash (the runner application is unknown) nothing counts as stale.
        wanted_hash = current_hash.get(instance.instance_type)
        stale = wanted_hash is not None and instance.config_hash != wanted_hash
        state = _instance_state(
            instance, runner, gone, now, registration_timeout, alive, creation_grace
        )
        views.append(
            RunnerView(
                name=instance.name,
                state=state,
                instance=instance,
                github=runner,
                stale=stale,
                moved=moved,
            )
        )
    for runner in by_name.values():
        views.append(
            RunnerView(
                name=runner.name, state=RunnerState.GITHUB_ONLY, instance=None, github=runner
            )
        )
    return sorted(views, key=lambda view: view.name)


def in_creation(
    instance: RunnerInstance,
    now: datetime.datetime,
    creation_grace: datetime.timedelta = datetime.timedelta(0),
) -> bool:
    """Whether an instance that is not running may still be in creation (and must be kept).

    Args:
        instance: the instance.
        now: the current time.
        creation_grace: how long any stopped instance may be in creation (zero under the lock).

    Returns:
        True for a not-running instance younger than `creation_grace`, or, when it is
        `awaiting_start` (the replenisher starts it after releasing the lock, and it was never
        started), younger than `CREATION_GRACE` even under the lock; False for a running one.
    """
    if instance.status is InstanceStatus.RUNNING:
        return False
    grace = max(creation_grace, CREATION_GRACE) if instance.awaiting_start else creation_grace
    return now - instance.created_at < grace


def _state_from_lxd(
    instance: RunnerInstance, now: datetime.datetime, creation_grace: datetime.timedelta
) -> RunnerState | None:
    """The state LXD alone tells: not running (creating or stopped), or a standby."""
    if instance.status is not InstanceStatus.RUNNING:
        return (
            RunnerState.CREATING
            if in_creation(instance, now, creation_grace)
            else RunnerState.STOPPED
        )
    return RunnerState.STANDBY if instance.standby else None


def _instance_state(
    instance: RunnerInstance,
    runner: GitHubRunner | None,
    gone: bool,
    now: datetime.datetime,
    registration_timeout: datetime.timedelta,
    alive: Mapping[str, bool | None],
    creation_grace: datetime.timedelta,
) -> RunnerState:
    age = now - instance.created_at
    settled = _state_from_lxd(instance, now, creation_grace)
    if settled is not None:
        return settled
    process = alive.get(instance.name)
    if runner is not None:
        if runner.busy:
            return RunnerState.BUSY
        if runner.online:
            return RunnerState.IDLE
        # Listed offline: GitHub's own word, once the runner had time to come online.
        if process is False:
            return RunnerState.UNHEALTHY
        return RunnerState.BOOTING if age < registration_timeout else RunnerState.UNHEALTHY
    # Not on GitHub's listing: absence alone proves nothing.
    if gone:
        return RunnerState.FINISHED
    if instance.registered_first and age >= LISTING_GRACE:
        # Registered before its instance existed: it ran its job if its process has exited.
        return RunnerState.FINISHED if process is False else RunnerState.UNLISTED
    if process is False:
        return RunnerState.UNHEALTHY
    if age < registration_timeout:
        return RunnerState.BOOTING
    return RunnerState.UNLISTED


def instances_to_probe(
    views: Sequence[RunnerView], *, now: datetime.datetime, min_age: datetime.timedelta
) -> list[str]:
    """Pick the booting runners worth asking whether their runner process still runs.

    A runner that is not online yet but old enough to have started its process is either still
    registering or has crashed; a probe tells which without waiting for the grace period. A
    runner absent from GitHub's listing is probed too: an exited process is evidence that it
    finished. A younger instance's runner service may simply not have started yet.

    Args:
        views: the classified runners.
        now: the current time.
        min_age: how old an instance must be before a probe means anything.

    Returns:
        The names of the instances to probe.
    """
    return [
        view.name
        for view in views
        if view.instance is not None
        and view.state in (RunnerState.BOOTING, RunnerState.UNLISTED)
        and now - view.instance.created_at >= min_age
    ]


def runners_to_look_up(views: Sequence[RunnerView]) -> list[RunnerView]:
    """Pick the runners to ask GitHub about one by one.

    Those absent from the listing without evidence that they finished (`unlisted`), and those
    registered on another path (`moved`, which the listing of the configured path never shows).

    Args:
        views: the classified runners.

    Returns:
        The runners to look up.
    """
    return [
        view
        for view in views
        if view.instance is not None
        and view.instance.status is InstanceStatus.RUNNING
        and (view.state is RunnerState.UNLISTED or (view.moved and view.github is None))
    ]


def plan(
    views: Sequence[RunnerView],
    desired: Mapping[InstanceType, int],
    standbys: Mapping[InstanceType, int] | None = None,
) -> Plan:
    """Decide what a reconciliation does.

    Args:
        views: the classified runners (see `classify`).
        desired: how many runners of each instance type to keep.
        standbys: how many standbys of each instance type to keep at most (none by default);
            the replenisher makes them, a reconciliation only removes the extra ones.

    Returns:
        The plan.
    """
    removals: list[Removal] = []
    for view in views:
        reason = _cleanup_reason(view)
        if reason is not None:
            removals.append(Removal(view, reason))

    removed = {removal.name for removal in removals}
    create: dict[InstanceType, int] = {}
    for instance_type in InstanceType:
        kept = [
            view
            for view in views
            if view.instance_type is instance_type
            and view.name not in removed
            and not view.moved
            and _counted(view)
        ]
        delta = desired.get(instance_type, 0) - len(kept)
        create[instance_type] = max(delta, 0)
        if delta < 0:
            removals.extend(
                Removal(view, Reason.SCALE_DOWN) for view in _scale_down_candidates(kept, -delta)
            )
        removals.extend(
            _extra_standbys(views, instance_type, removed, (standbys or {}).get(instance_type, 0))
        )
    return Plan(runners=tuple(views), removals=tuple(removals), create=create)


_COUNTED = (RunnerState.IDLE, RunnerState.BUSY, RunnerState.BOOTING, RunnerState.UNLISTED)


def _counted(view: RunnerView) -> bool:
    """Whether a runner counts towards the wanted number.

    One in creation counts when the replenisher made it (it starts it after releasing the lock):
    any other is a run's half-made instance, not counted (see the module docstring). A standby is
    no runner.
    """
    if view.instance is not None and view.instance.standby:
        return False
    if view.state is RunnerState.CREATING:
        return view.instance is not None and view.instance.awaiting_start
    return view.state in _COUNTED


def _extra_standbys(
    views: Sequence[RunnerView], instance_type: InstanceType, removed: set[str], wanted: int
) -> list[Removal]:
    """The standbys of a type beyond the wanted number (oldest first)."""
    standbys = sorted(
        (
            view
            for view in views
            if view.instance is not None
            and view.instance.standby
            and view.instance_type is instance_type
            and view.name not in removed
            and view.state in (RunnerState.STANDBY, RunnerState.CREATING)
        ),
        key=lambda view: view.instance.created_at if view.instance else datetime.datetime.min,
    )
    extra = len(standbys) - max(wanted, 0)
    return [Removal(view, Reason.SCALE_DOWN) for view in standbys[:extra]] if extra > 0 else []


def _cleanup_reason(view: RunnerView) -> Reason | None:
    if view.state is RunnerState.GITHUB_ONLY:
        # An online runner without an instance has just lost it; GitHub sees it go offline
        # within a minute, and the next run deletes it then.
        return None if view.github and view.github.online else Reason.GITHUB_ORPHAN
    if view.state is RunnerState.STOPPED:
        return Reason.STOPPED
    if view.state is RunnerState.FINISHED:
        return Reason.FINISHED
    if view.state is RunnerState.UNHEALTHY:
        return Reason.UNHEALTHY
    if view.state is RunnerState.STANDBY:
        return Reason.STALE_CONFIG if view.stale or view.moved else None
    if view.moved and view.state in (RunnerState.IDLE, RunnerState.BOOTING):
        return Reason.MOVED
    if view.stale and view.state in (RunnerState.IDLE, RunnerState.BOOTING):
        return Reason.STALE_CONFIG
    return None


def _scale_down_candidates(kept: Sequence[RunnerView], count: int) -> list[RunnerView]:
    def age_key(view: RunnerView) -> datetime.datetime:
        assert view.instance is not None  # noqa: S101 - kept runners all have instances
        return view.instance.created_at

    idle = sorted((v for v in kept if v.state is RunnerState.IDLE), key=age_key)
    booting = sorted((v for v in kept if v.state is RunnerState.BOOTING), key=age_key)
    return (idle + booting)[:count]


def plan_flush(views: Sequence[RunnerView], *, busy: bool) -> list[Removal]:
    """Decide which runners a flush removes.

    Args:
        views: the classified runners.
        busy: whether busy runners go too (their jobs are cancelled).

    Returns:
        The removals: every runner, except busy ones unless `busy` is set. An `unlisted` runner
        may be busy (GitHub did not say), so it goes only with `busy` too.
    """
    return [
        Removal(view, Reason.FLUSH)
        for view in views
        if busy or not (view.busy or view.state is RunnerState.UNLISTED)
    ]
