# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""RunnerRemover: the order of deletions, what an error leaves behind, busy retries."""

from __future__ import annotations

import datetime

import pytest

from github_runner_manager.applier import RunnerRemover
from github_runner_manager.errors import (
    GitHubConflictError,
    GitHubUnavailableError,
    LxdError,
    RunnerManagerError,
    TokenError,
)
from github_runner_manager.models import (
    GitHubRunner,
    InstanceStatus,
    InstanceType,
    RunnerInstance,
    RunnerState,
)
from github_runner_manager.planner import Reason, Removal, RunnerView

from .builders import runner_instance
from .conftest import PREFIX, UNIT

UTC = datetime.timezone.utc
CREATED = datetime.datetime(2026, 6, 1, 11, 0, tzinfo=UTC)


def name(index: int) -> str:
    return f"{PREFIX}-{index:012x}"


class Recorder:
    """Records the deletions on both sides, in order, and scripts GitHub's answers."""

    def __init__(self, lxd, github) -> None:
        self.order: list[tuple[str, object]] = []
        self.github_errors: list[Exception] = []
        real_lxd_delete = lxd.delete_instance
        real_github_delete = github.delete_runner

        def delete_instance(instance: str) -> None:
            self.order.append(("lxd", instance))
            real_lxd_delete(instance)

        def delete_runner(runner_id: int) -> None:
            self.order.append(("github", runner_id))
            if self.github_errors:
                raise self.github_errors.pop(0)
            real_github_delete(runner_id)

        lxd.delete_instance = delete_instance
        github.delete_runner = delete_runner


@pytest.fixture
def recorder(lxd, github) -> Recorder:
    return Recorder(lxd, github)


@pytest.fixture
def hooked() -> list[str]:
    return []


@pytest.fixture
def remover(lxd, github, clock, hooked, recorder) -> RunnerRemover:
    def before_delete(removal: Removal) -> None:
        recorder.order.append(("hook", removal.name))
        hooked.append(removal.name)

    return RunnerRemover(lxd, github, before_delete=before_delete, sleep=clock.sleep)


def removal(
    lxd,
    github,
    index: int,
    state: RunnerState,
    *,
    instance: bool = True,
    registered: bool = True,
    online: bool = True,
    reason: Reason = Reason.SCALE_DOWN,
) -> Removal:
    """Put a runner in the fakes (GitHub says busy for a BUSY one) and return its removal."""
    runner_name = name(index)
    running = state is not RunnerState.STOPPED
    lxd_instance = None
    if instance:
        lxd.add(runner_name, UNIT, status="Running" if running else "Stopped", created_at=CREATED)
        status = InstanceStatus.RUNNING if running else InstanceStatus.STOPPED
        lxd_instance = runner_instance(runner_name, CREATED, status=status)
    github_runner: GitHubRunner | None = None
    if registered:
        github_runner = github.add(runner_name, online=online, busy=state is RunnerState.BUSY)
    view = RunnerView(name=runner_name, state=state, instance=lxd_instance, github=github_runner)
    return Removal(view, reason)


def test_idle_runner_goes_from_github_first(remover, lxd, github, recorder, hooked):
    """An idle runner loses its GitHub registration before its instance.

    arrange: an idle runner.
    act: remove it.
    assert: the registration is deleted first, then the logs hook runs and the instance goes; it
        counts as removed.
    """
    target = removal(lxd, github, 1, RunnerState.IDLE)

    outcome = remover.remove(target)

    assert outcome.removed is True and outcome.error is None
    runner_id = target.runner.github.id  # type: ignore[union-attr]  # a removal target built with a GitHub runner
    assert recorder.order == [("github", runner_id), ("hook", name(1)), ("lxd", name(1))]
    assert lxd.instances == {} and github.runners == {}


def test_booting_registered_runner_goes_from_github_first(remover, lxd, github, recorder):
    """A booting runner that is already registered loses its registration first.

    arrange: a booting runner already registered (offline).
    act: remove it.
    assert: GitHub first, then the hook, then the instance.
    """
    target = removal(lxd, github, 1, RunnerState.BOOTING, online=False)

    outcome = remover.remove(target)

    assert outcome.removed is True
    assert [side for side, _ in recorder.order] == ["github", "hook", "lxd"]


def test_booting_runner_without_registration_loses_only_its_instance(
    remover, lxd, github, recorder
):
    """A booting runner GitHub does not list yet loses only its instance.

    arrange: a booting runner GitHub does not list yet.
    act: remove it.
    assert: only the hook and the instance deletion run; no GitHub call.
    """
    target = removal(lxd, github, 1, RunnerState.BOOTING, registered=False)

    outcome = remover.remove(target)

    assert outcome.removed is True
    assert recorder.order == [("hook", name(1)), ("lxd", name(1))]


@pytest.mark.parametrize(
    ("state", "online"),
    [(RunnerState.STOPPED, False), (RunnerState.UNHEALTHY, False), (RunnerState.STOPPED, True)],
)
def test_dead_runner_loses_its_instance_first(remover, lxd, github, recorder, state, online):
    """A stopped or unhealthy runner loses its instance before its registration.

    arrange: a stopped or unhealthy runner still registered.
    act: remove it.
    assert: the logs hook, then the instance, then the registration; removed on both sides.
    """
    target = removal(lxd, github, 1, state, online=online, reason=Reason(state.value))

    outcome = remover.remove(target)

    assert outcome.removed is True and outcome.error is None
    runner_id = target.runner.github.id  # type: ignore[union-attr]  # a removal target built with a GitHub runner
    assert recorder.order == [("hook", name(1)), ("lxd", name(1)), ("github", runner_id)]
    assert lxd.instances == {} and github.runners == {}


def test_busy_runner_flushed_loses_its_instance_first(remover, lxd, github, recorder, clock):
    """A flushed busy runner's registration is retried with backoff until GitHub lets it go.

    arrange: a flushed busy runner; GitHub refuses its deletion as busy twice more.
    act: remove it with one worker.
    assert: instance first; the registration is deleted on the third attempt after waiting 2 s and
        4 s (injected sleep); reported removed only then.
    """
    target = removal(lxd, github, 1, RunnerState.BUSY, reason=Reason.FLUSH)
    runner_id = target.runner.github.id  # type: ignore[union-attr]  # a removal target built with a GitHub runner
    # GitHub's answers: busy twice (scripted), then the cancelled job lets the runner go.
    github.runners[runner_id] = GitHubRunner(runner_id, name(1), online=False, busy=False)
    recorder.github_errors = [GitHubConflictError("runner is busy", 422)] * 2

    [outcome] = remover.remove_all([target], workers=1)

    assert outcome.removed is True and outcome.error is None
    assert outcome.registration_left is None
    assert recorder.order == [
        ("hook", name(1)),
        ("lxd", name(1)),
        ("github", runner_id),
        ("github", runner_id),
        ("github", runner_id),
    ]
    assert clock.slept == [2.0, 4.0]
    assert github.runners == {}


def test_busy_runner_that_github_keeps_busy(lxd, github, recorder, clock):
    """A registration GitHub holds beyond the release timeout is reported, not counted as removed.

    arrange: a flushed busy runner GitHub holds longer than the release timeout (60 s).
    act: remove it with one worker.
    assert: retried with growing waits for 60 s in total, then reported with its GitHub id and not
        as removed; the instance is gone and the registration left.
    """
    remover = RunnerRemover(
        lxd, github, sleep=clock.sleep, monotonic=clock.monotonic, release_timeout=60.0
    )
    target = removal(lxd, github, 1, RunnerState.BUSY, reason=Reason.FLUSH)
    runner_id = target.runner.github.id  # type: ignore[union-attr]  # a removal target built with a GitHub runner
    recorder.github_errors = [GitHubConflictError("runner is busy", 422)] * 100

    [outcome] = remover.remove_all([target], workers=1)

    assert isinstance(outcome.error, GitHubConflictError)
    assert outcome.removed is False, "its registration is still on GitHub"
    assert outcome.instance_deleted is True and outcome.registration_left == runner_id
    assert f"GitHub id {runner_id}" in str(outcome.error)
    assert sum(clock.slept) == pytest.approx(60.0)
    assert clock.slept[:4] == [2.0, 4.0, 8.0, 15.0]
    assert lxd.instances == {}
    assert runner_id in github.runners


def test_busy_runners_are_released_together(lxd, github, recorder, clock):
    """Several busy runners wait for GitHub's release in one shared period.

    arrange: 3 flushed busy runners that GitHub holds for 20 s.
    act: remove them with one worker.
    assert: all removed within one release period (under 40 s slept), not one period per runner.
    """
    remover = RunnerRemover(
        lxd, github, sleep=clock.sleep, monotonic=clock.monotonic, release_timeout=600.0
    )
    targets = [removal(lxd, github, i, RunnerState.BUSY, reason=Reason.FLUSH) for i in (1, 2, 3)]
    released_at = clock.monotonic() + 20

    def delete_runner(runner_id: int) -> None:
        if clock.monotonic() < released_at:
            raise GitHubConflictError("runner is busy", 422)
        github.runners.pop(runner_id, None)

    github.delete_runner = delete_runner

    outcomes = remover.remove_all(targets, workers=1)

    assert [o.removed for o in outcomes] == [True, True, True]
    assert sum(clock.slept) < 40
    assert github.runners == {} and lxd.instances == {}


def test_busy_orphan_registration_is_left_for_a_later_run(remover, lxd, github, recorder, clock):
    """A busy registration without an instance is tried once and left with a note.

    arrange: a busy GitHub registration without an instance.
    act: remove it.
    assert: one try, no wait, no error, a note; the registration is left for a later run.
    """
    runner = github.add(name(1), online=False, busy=True)
    view = RunnerView(name=name(1), state=RunnerState.GITHUB_ONLY, instance=None, github=runner)

    [outcome] = remover.remove_all([Removal(view, Reason.GITHUB_ORPHAN)], workers=1)

    assert outcome.removed is False and outcome.error is None and outcome.note
    assert outcome.registration_left == runner.id
    assert clock.slept == []


def test_conflict_on_a_dead_runner_is_not_retried(remover, lxd, github, recorder, clock):
    """A conflict deleting a stopped runner's registration is reported without retrying.

    arrange: a stopped runner whose registration GitHub refuses (409).
    act: remove it.
    assert: one attempt after the hook and the instance, no sleep, the conflict reported.
    """
    target = removal(lxd, github, 1, RunnerState.STOPPED, online=False, reason=Reason.STOPPED)
    recorder.github_errors = [GitHubConflictError("conflict", 409)]

    outcome = remover.remove(target)

    assert isinstance(outcome.error, GitHubConflictError)
    assert [side for side, _ in recorder.order] == ["hook", "lxd", "github"]
    assert clock.slept == []


def test_idle_runner_that_took_a_job_meanwhile_is_kept(remover, lxd, github, recorder, hooked):
    """An idle runner that took a job before its deletion is kept.

    arrange: an idle runner that GitHub says is busy when deleted (422).
    act: remove it.
    assert: not removed, no error, a note; the instance untouched, no hook.
    """
    target = removal(lxd, github, 1, RunnerState.IDLE)
    recorder.github_errors = [GitHubConflictError("runner is busy", 422)]

    outcome = remover.remove(target)

    assert outcome.removed is False
    assert outcome.error is None
    assert outcome.note == "it took a job meanwhile"
    assert name(1) in lxd.instances
    assert hooked == []


@pytest.mark.parametrize(
    "error",
    [GitHubUnavailableError("GitHub answered 503"), TokenError("bad credentials", 401)],
)
def test_github_error_keeps_an_idle_runners_instance(remover, lxd, github, recorder, error):
    """A GitHub error deleting an idle runner keeps its instance.

    arrange: an idle runner; GitHub fails to delete its registration.
    act: remove it.
    assert: the error reported, not removed, only GitHub was called and the instance kept (it may
        be healthy).
    """
    target = removal(lxd, github, 1, RunnerState.IDLE)
    recorder.github_errors = [error]

    outcome = remover.remove(target)

    assert outcome.removed is False
    assert outcome.error is error
    assert recorder.order == [("github", target.runner.github.id)]  # type: ignore[union-attr]  # a removal target built with a GitHub runner
    assert name(1) in lxd.instances


def test_lxd_error_is_reported_and_keeps_the_registration(remover, lxd, github, recorder):
    """An LXD error deleting a stopped runner keeps its registration for the next run.

    arrange: a stopped runner; LXD fails to delete its instance.
    act: remove it.
    assert: the LXD error, not removed, no GitHub call, the registration left for the next run.
    """
    target = removal(lxd, github, 1, RunnerState.STOPPED, online=False, reason=Reason.STOPPED)
    lxd.fail["delete_instance"] = LxdError("LXD did not answer")

    outcome = remover.remove(target)

    assert outcome.removed is False
    assert isinstance(outcome.error, LxdError)
    assert [side for side, _ in recorder.order] == ["hook", "lxd"]
    assert len(github.runners) == 1


def test_lxd_error_after_github_deletion_of_an_idle_runner(remover, lxd, github, recorder):
    """An LXD error after an idle runner's registration is gone is reported as not removed.

    arrange: an idle runner; LXD fails to delete its instance.
    act: remove it.
    assert: the LXD error, not removed; the registration is gone and the instance still there.
    """
    target = removal(lxd, github, 1, RunnerState.IDLE)
    lxd.fail["delete_instance"] = LxdError("LXD did not answer")

    outcome = remover.remove(target)

    assert outcome.removed is False
    assert isinstance(outcome.error, LxdError)
    assert github.runners == {}
    assert name(1) in lxd.instances


def test_failing_before_delete_hook_never_blocks_deletion(lxd, github, recorder, clock):
    """A before_delete hook that raises never blocks the deletion.

    arrange: a before_delete hook that raises.
    act: remove an unhealthy runner.
    assert: removed anyway, on both sides, without an error.
    """

    def broken_hook(_: Removal) -> None:
        raise RuntimeError("cannot copy the logs")

    remover = RunnerRemover(lxd, github, before_delete=broken_hook, sleep=clock.sleep)
    target = removal(lxd, github, 1, RunnerState.UNHEALTHY, online=False)

    outcome = remover.remove(target)

    assert outcome.removed is True and outcome.error is None
    assert lxd.instances == {} and github.runners == {}


def test_github_only_runner_loses_its_registration(remover, lxd, github, recorder, hooked):
    """An offline registration without an instance loses only its registration.

    arrange: an offline GitHub runner without an instance.
    act: remove it.
    assert: only the registration is deleted, no hook.
    """
    target = removal(
        lxd,
        github,
        1,
        RunnerState.GITHUB_ONLY,
        instance=False,
        online=False,
        reason=Reason.GITHUB_ORPHAN,
    )

    outcome = remover.remove(target)

    assert outcome.removed is True
    assert [side for side, _ in recorder.order] == ["github"]
    assert hooked == []


def test_github_only_registration_error_is_not_removed(remover, lxd, github, recorder):
    """An orphan registration GitHub fails to delete is not counted as removed.

    arrange: an orphan registration GitHub fails to delete (502).
    act: remove it.
    assert: the error, and not counted as removed (there was no instance).
    """
    target = removal(lxd, github, 1, RunnerState.GITHUB_ONLY, instance=False, online=False)
    recorder.github_errors = [GitHubUnavailableError("GitHub answered 502")]

    outcome = remover.remove(target)

    assert outcome.removed is False
    assert isinstance(outcome.error, GitHubUnavailableError)


def test_remove_all_keeps_order_and_wraps_unexpected_errors(lxd, github, recorder, clock):
    """Removing several answers in order and wraps an unexpected error, sparing the others.

    arrange: 3 stopped runners; the 2nd instance deletion raises RuntimeError.
    act: remove_all with two workers.
    assert: one outcome per removal in order; the unexpected error is wrapped in a
        RunnerManagerError; the others are removed.
    """
    remover = RunnerRemover(lxd, github, sleep=clock.sleep)
    removals = [
        removal(lxd, github, index, RunnerState.STOPPED, online=False, reason=Reason.STOPPED)
        for index in (1, 2, 3)
    ]
    real_delete = lxd.delete_instance

    def delete(instance: str) -> None:
        if instance == name(2):
            raise RuntimeError("pylxd blew up")
        real_delete(instance)

    lxd.delete_instance = delete

    outcomes = remover.remove_all(removals, workers=2)

    assert [o.removal.name for o in outcomes] == [name(1), name(2), name(3)]
    assert [o.removed for o in outcomes] == [True, False, True]
    error = outcomes[1].error
    assert type(error) is RunnerManagerError
    assert "unexpected error" in str(error) and "pylxd blew up" in str(error)
    assert sorted(lxd.instances) == [name(2)]


def test_remove_all_with_nothing_to_remove(remover):
    """Removing nothing answers no outcome.

    arrange: no removals.
    act: remove_all with four workers.
    assert: no outcome.
    """
    assert remover.remove_all([], workers=4) == []


def test_stopped_runner_github_holds_busy_is_not_waited_for(remover, lxd, github, recorder, clock):
    """A stopped runner GitHub still lists busy is not waited for outside a flush.

    arrange: a stopped instance whose runner GitHub still lists busy (its job died with it).
    act: remove it (a reconciliation, not a flush).
    assert: one try, no wait, no error, a note; the instance is gone and the registration left for
        a later run.
    """
    target = removal(lxd, github, 1, RunnerState.STOPPED, online=False, reason=Reason.STOPPED)
    runner_id = target.runner.github.id  # type: ignore[union-attr]  # a removal target built with a GitHub runner
    github.runners[runner_id] = GitHubRunner(runner_id, name(1), online=False, busy=True)
    busy_view = RunnerView(
        name=name(1),
        state=RunnerState.STOPPED,
        instance=target.runner.instance,
        github=github.runners[runner_id],
    )

    [outcome] = remover.remove_all([Removal(busy_view, Reason.STOPPED)], workers=1)

    assert outcome.removed is False and outcome.error is None and outcome.note
    assert outcome.instance_deleted is True and outcome.registration_left == runner_id
    assert clock.slept == []
    assert lxd.instances == {}


def test_unlisted_runner_flushed_loses_its_registration_by_noted_id(
    remover, lxd, github, recorder
):
    """A flushed unlisted runner loses its registration by the id noted on its instance.

    arrange: an unlisted runner (GitHub's listing lacked it) with its id noted on the instance.
    act: flush it.
    assert: the hook, the instance, then the registration by the noted id; both sides empty.
    """
    runner = github.add(name(1), online=True)
    lxd.add(name(1), UNIT, created_at=CREATED, runner_id=runner.id)
    instance = RunnerInstance(
        name=name(1),
        instance_type=InstanceType.CONTAINER,
        status=InstanceStatus.RUNNING,
        created_at=CREATED,
        config_hash="hash",
        registered_first=True,
        runner_id=runner.id,
    )
    view = RunnerView(name=name(1), state=RunnerState.UNLISTED, instance=instance, github=None)

    [outcome] = remover.remove_all([Removal(view, Reason.FLUSH)], workers=1)

    assert outcome.removed is True
    assert recorder.order == [("hook", name(1)), ("lxd", name(1)), ("github", runner.id)]
    assert github.runners == {} and lxd.instances == {}


def test_moved_runner_is_deleted_with_the_old_paths_client(lxd, github, recorder, clock):
    """A runner moved off its old GitHub path is deleted with the old path's client.

    arrange: an idle runner registered on the old path, with a client for that path.
    act: remove it (moved).
    assert: its registration is deleted with the old path's client, then its instance; nothing is
        deleted on the new path.
    """
    from .fakes import FakeGitHub

    old = FakeGitHub()
    runner = old.add(name(1))
    lxd.add(name(1), UNIT, created_at=CREATED, runner_id=runner.id, github_path="owner/old")
    instance = RunnerInstance(
        name=name(1),
        instance_type=InstanceType.CONTAINER,
        status=InstanceStatus.RUNNING,
        created_at=CREATED,
        config_hash="old",
        runner_id=runner.id,
        github_url="https://github.com",
        github_path="owner/old",
    )
    view = RunnerView(
        name=name(1), state=RunnerState.IDLE, instance=instance, github=runner, moved=True
    )

    def old_client(_view):  # untyped: the fake is not a full GitHubClient
        return old

    remover = RunnerRemover(lxd, github, github_for=old_client, sleep=clock.sleep)

    [outcome] = remover.remove_all([Removal(view, Reason.MOVED)], workers=1)

    assert outcome.removed is True
    assert old.runners == {} and lxd.instances == {}
    assert recorder.order == [("lxd", name(1))], "nothing is deleted on the new path"
