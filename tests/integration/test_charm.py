# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""The charm on a real controller: runners, actions, scaling, a real job, config and tokens.

One deployment (the `app` fixture: one container runner, no VM) serves the whole module; the
tests run in file order and each leaves the application active with one idle runner.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml

from .conftest import Options
from .github_api import GitHubRepo
from .helpers import (
    check_runners,
    juju,
    online_runners,
    run_action,
    runner_instances,
    unit_exec,
    wait_for_runners,
    wait_for_status,
)

# A well-formed token GitHub has never issued.
REJECTED_TOKEN = "ghp_" + "0" * 36
# A port on the unit's machine the runners must not reach (the denylist protects the host).
HOST_PORT = 48080
JOB_TIMEOUT = 30 * 60
# User secrets (`juju add-secret`) arrived in Juju 3.3.
SECRETS_VERSION = (3, 3)


def _unit(app: str) -> str:
    return f"{app}/0"


async def _set_config(ops_test: Any, app: str, values: dict[str, Any]) -> None:
    """Change the charm's configuration through a file, so a token never shows in `ps`."""
    path = ops_test.tmp_path / f"{app}-change.yaml"
    path.touch(mode=0o600)
    path.write_text(yaml.safe_dump({app: values}), encoding="utf-8")
    await juju(ops_test, "config", app, "--file", str(path))


def _repository(github_repo: GitHubRepo | None) -> GitHubRepo:
    if github_repo is None:
        pytest.skip("--path is an organisation: dispatching a workflow needs a repository")
    return github_repo


async def test_runner_is_registered_and_named_after_the_unit(
    ops_test: Any, app: str, github_repo: GitHubRepo | None
):
    """The deployed charm's one runner is registered, idle, and named after the unit.

    arrange: the charm deployed with one container runner.
    act: run the check-runners action.
    assert: one runner online, idle and not busy, named after the unit, with a runner version; on
        real GitHub it is online with the default, application and container labels.
    """
    results = await check_runners(ops_test, _unit(app))

    names = online_runners(results)
    assert len(names) == 1, results
    assert re.fullmatch(rf"{re.escape(app)}-0-[0-9a-f]{{12}}", names[0]), names
    assert int(results["idle"]) == 1
    assert int(results["busy"]) == 0
    assert results.get("runner-version")
    if github_repo is not None:
        registered = {runner["name"]: runner for runner in github_repo.runners()}
        labels = {label["name"] for label in registered[names[0]]["labels"]}
        assert {"self-hosted", app, "container"} <= labels
        assert registered[names[0]]["status"] == "online"


async def test_runner_is_an_ephemeral_container_tagged_with_its_unit(ops_test: Any, app: str):
    """The runner is an LXD container selected by its owner tag, which LXD deletes on stop.

    arrange: the charm deployed with one container runner.
    act: list the LXD instances tagged with the unit.
    assert: exactly one, a running ephemeral container with a config hash.
    """
    instances = await runner_instances(ops_test, _unit(app))

    assert len(instances) == 1, [instance["name"] for instance in instances]
    instance = instances[0]
    assert instance["type"] == "container"
    assert instance["status"] == "Running"
    assert instance["ephemeral"] is True
    assert instance["config"]["user.github-runner.config-hash"]


async def test_runner_cannot_reach_the_host(ops_test: Any, app: str):
    """A runner cannot reach a web server on its host.

    arrange: a web server on the host that the host itself reaches on the bridge address, and curl
        in the runner.
    act: fetch the server from the runner.
    assert: curl fails, so the firewall refused it.
    """
    unit = _unit(app)
    await unit_exec(
        ops_test,
        unit,
        f"nohup python3 -m http.server {HOST_PORT} --bind 0.0.0.0 >/dev/null 2>&1 &",
    )
    try:
        _, address = await unit_exec(ops_test, unit, "lxc network get lxdbr0 ipv4.address")
        bridge = address.strip().split("/")[0]
        url = f"http://{bridge}:{HOST_PORT}/"
        # The server answers the host itself: a refusal from the runner is the firewall's.
        await unit_exec(ops_test, unit, f"curl -sf -m 10 -o /dev/null {url}")
        runner = (await runner_instances(ops_test, unit))[0]["name"]
        # curl must be there, or its failure below would prove nothing.
        await unit_exec(ops_test, unit, f"lxc exec {runner} -- curl --version")

        code, _ = await unit_exec(
            ops_test, unit, f"lxc exec {runner} -- curl -sf -m 10 -o /dev/null {url}", check=False
        )

        assert code != 0, f"runner {runner} reached {url} on its host"
    finally:
        await unit_exec(ops_test, unit, f"pkill -f 'http.server {HOST_PORT}'", check=False)


async def test_reconcile_runners_replaces_a_deleted_runner(ops_test: Any, app: str):
    """reconcile-runners replaces a runner deleted behind the charm's back.

    arrange: the one online runner's instance deleted with lxc.
    act: run the reconcile-runners action.
    assert: it completes with a container delta of +1, and a new runner other than the old one
        comes online.
    """
    unit = _unit(app)
    [old] = online_runners(await check_runners(ops_test, unit))
    await unit_exec(ops_test, unit, f"lxc delete --force {old}")

    outcome = await run_action(ops_test, unit, "reconcile-runners")

    assert outcome.status == "completed", outcome.message
    assert int(outcome.results["delta"]["container"]) == 1, outcome.results
    await wait_for_runners(ops_test, unit, online=1, exclude=(old,))


async def test_reconcile_runners_without_change(ops_test: Any, app: str):
    """reconcile-runners changes nothing when the fleet is as configured.

    arrange: one runner online, as configured.
    act: run the reconcile-runners action.
    assert: it completes with a delta of 0 containers and 0 virtual machines.
    """
    outcome = await run_action(ops_test, _unit(app), "reconcile-runners")

    assert outcome.status == "completed", outcome.message
    assert {key: int(value) for key, value in outcome.results["delta"].items()} == {
        "container": 0,
        "virtual-machine": 0,
    }


async def test_flush_runners_replaces_the_idle_runner(ops_test: Any, app: str):
    """flush-runners replaces the idle runner.

    arrange: one idle runner.
    act: run the flush-runners action.
    assert: it completes with a net delta of 0 (one removed, one created); the old instance is gone
        and a new runner comes online.
    """
    unit = _unit(app)
    [old] = online_runners(await check_runners(ops_test, unit))

    outcome = await run_action(ops_test, unit, "flush-runners")

    assert outcome.status == "completed", outcome.message
    # One removed, one created in the reconciliation that follows the flush.
    assert int(outcome.results["delta"]["container"]) == 0, outcome.results
    assert old not in [instance["name"] for instance in await runner_instances(ops_test, unit)]
    await wait_for_runners(ops_test, unit, online=1, exclude=(old,))


async def test_scale_containers_up_and_down(ops_test: Any, app: str):
    """The fleet and the status follow the containers option up and down.

    arrange: the charm with one container runner.
    act: set containers to 2, then to 1.
    assert: two runners online and "2/2 container runners", then one runner and "1/1 container
        runners".
    """
    unit = _unit(app)

    await _set_config(ops_test, app, {"containers": 2})

    await wait_for_runners(ops_test, unit, online=2)
    await wait_for_status(ops_test, unit, "active", r"^2/2 container runners")
    assert len(await runner_instances(ops_test, unit)) == 2

    await _set_config(ops_test, app, {"containers": 1})

    await wait_for_runners(ops_test, unit, online=1)
    await wait_for_status(ops_test, unit, "active", r"^1/1 container runners")
    assert len(await runner_instances(ops_test, unit)) == 1


async def test_dispatched_job_runs_on_a_runner_of_the_unit(
    ops_test: Any, app: str, github_repo: GitHubRepo | None
):
    """A dispatched job runs on this unit's runner, which a new runner then replaces.

    arrange: the charm with one runner on a real GitHub repository.
    act: dispatch the test workflow and wait for its job to complete.
    assert: the job succeeds on a runner of this unit; a new runner comes online and the used
        runner's instance is gone.
    """
    repo = _repository(github_repo)
    unit = _unit(app)

    run_id = repo.dispatch(app)

    job = repo.wait_for_job(run_id, {"completed"}, JOB_TIMEOUT)
    assert job.conclusion == "success", job
    assert job.runner_name and job.runner_name.startswith(f"{app}-0-"), job
    await wait_for_runners(ops_test, unit, online=1, exclude=(job.runner_name,))
    names = [instance["name"] for instance in await runner_instances(ops_test, unit)]
    assert job.runner_name not in names, "the runner's instance outlived its job"


async def test_flush_runners_keeps_busy_runners_unless_told(
    ops_test: Any, app: str, github_repo: GitHubRepo | None
):
    """flush-runners keeps a busy runner, and removes it only with busy=true.

    arrange: a runner busy with a long job.
    act: run flush-runners, then flush-runners with busy=true.
    assert: the first keeps the runner busy and the job in progress; the second removes it, the job
        does not succeed, and a new runner comes online.
    """
    repo = _repository(github_repo)
    unit = _unit(app)
    run_id = repo.dispatch(app, sleep=JOB_TIMEOUT)
    job = repo.wait_for_job(run_id, {"in_progress"}, JOB_TIMEOUT)
    busy = job.runner_name
    assert busy and job.status == "in_progress", job

    outcome = await run_action(ops_test, unit, "flush-runners")

    assert outcome.status == "completed", outcome.message
    results = await check_runners(ops_test, unit)
    assert busy in online_runners(results)
    assert int(results["busy"]) == 1
    assert repo.jobs(run_id)[0].status == "in_progress"

    outcome = await run_action(ops_test, unit, "flush-runners", busy=True)

    assert outcome.status == "completed", outcome.message
    # GitHub fails the job once it notices its runner is gone, which takes minutes.
    job = repo.wait_for_job(run_id, {"completed"}, 20 * 60)
    assert job.conclusion != "success", job
    await wait_for_runners(ops_test, unit, online=1, exclude=(busy,))


async def test_update_dependencies(ops_test: Any, app: str):
    """update-dependencies reports the runner version and whether it flushed.

    arrange: the charm with one runner.
    act: run the update-dependencies action (it rebuilds the image first).
    assert: it completes with a known runner version and a true/false flush, and a runner is online
        afterwards.
    """
    unit = _unit(app)

    # It rebuilds the runner image first: minutes, an hour at worst.
    outcome = await run_action(ops_test, unit, "update-dependencies", wait="3h")

    assert outcome.status == "completed", outcome.message
    assert outcome.results["runner-version"] not in ("", "unknown"), outcome.results
    assert str(outcome.results["flush"]).lower() in ("true", "false"), outcome.results
    await wait_for_runners(ops_test, unit, online=1)


async def test_invalid_config_blocks_and_recovers(ops_test: Any, app: str):
    """An invalid vm-memory blocks the unit naming it; a valid one makes it active again.

    arrange: the charm active with one runner.
    act: set vm-memory to "2GB", then to "2GiB".
    assert: Blocked naming vm-memory and GiB, then active with its container runners.
    """
    unit = _unit(app)

    await _set_config(ops_test, app, {"vm-memory": "2GB"})

    message = await wait_for_status(ops_test, unit, "blocked", r"vm-memory")
    assert "GiB" in message, message

    await _set_config(ops_test, app, {"vm-memory": "2GiB"})

    await wait_for_status(ops_test, unit, "active", r"container runners")


async def test_rejected_token_blocks_and_recovers(ops_test: Any, app: str, options: Options):
    """A token GitHub rejects blocks the unit without removing runners; the good one recovers.

    arrange: the charm active with one runner.
    act: set a token GitHub rejects, then the good token again.
    assert: Blocked with "GitHub rejected the token" and the runner kept, then active with 1/1
        runners.
    """
    unit = _unit(app)

    await _set_config(ops_test, app, {"token": REJECTED_TOKEN})

    await wait_for_status(ops_test, unit, "blocked", r"GitHub rejected the token")
    assert await runner_instances(ops_test, unit), "a rejected token must not remove runners"

    await _set_config(ops_test, app, {"token": options.token})

    await wait_for_status(ops_test, unit, "active", r"^1/1 container runners")


async def test_token_rotation(ops_test: Any, app: str, options: Options):
    """Runners keep running when the token changes to a second one and back.

    arrange: the charm active with one runner, and a second token (--token-alt; skipped without).
    act: set the second token and flush, then set the first token again.
    assert: the unit stays active with 1/1 runners and a runner comes online after the flush.
    """
    if not options.token_alt:
        pytest.skip("no --token-alt given")
    unit = _unit(app)

    await _set_config(ops_test, app, {"token": options.token_alt})

    await wait_for_status(ops_test, unit, "active", r"^1/1 container runners")
    await run_action(ops_test, unit, "flush-runners")
    await wait_for_runners(ops_test, unit, online=1)

    await _set_config(ops_test, app, {"token": options.token})

    await wait_for_status(ops_test, unit, "active", r"^1/1 container runners")


async def test_token_from_a_juju_secret(
    ops_test: Any, app: str, options: Options, controller_version: tuple[int, ...]
):
    """A token in a Juju user secret applies once granted; its rotations need no config change.

    arrange: the token in a user secret (Juju 3.3 or later; skipped before).
    act: point the token option at the secret, grant it, then update the secret to a rejected token
        and back.
    assert: Blocked asking for grant-secret, then active with one runner online; Blocked for the
        rejected token; active again for the good one.
    """
    if controller_version[:2] < SECRETS_VERSION:
        pytest.skip(f"user secrets need Juju 3.3 or later (controller: {controller_version})")
    unit = _unit(app)
    secret = f"{app}-token"
    content = ops_test.tmp_path / f"{secret}.yaml"
    content.touch(mode=0o600)
    content.write_text(yaml.safe_dump({"token": options.token}), encoding="utf-8")
    uri = (await juju(ops_test, "add-secret", secret, "--file", str(content))).strip()
    assert uri.startswith("secret:"), uri

    await _set_config(ops_test, app, {"token": uri})

    await wait_for_status(ops_test, unit, "blocked", r"grant-secret")

    await juju(ops_test, "grant-secret", secret, app)

    await wait_for_status(ops_test, unit, "active", r"^1/1 container runners")
    assert int((await check_runners(ops_test, unit))["online"]) == 1

    content.write_text(yaml.safe_dump({"token": REJECTED_TOKEN}), encoding="utf-8")
    await juju(ops_test, "update-secret", secret, "--file", str(content))

    await wait_for_status(ops_test, unit, "blocked", r"GitHub rejected the token")

    content.write_text(yaml.safe_dump({"token": options.token}), encoding="utf-8")
    await juju(ops_test, "update-secret", secret, "--file", str(content))

    await wait_for_status(ops_test, unit, "active", r"^1/1 container runners")
    status = json.loads(await juju(ops_test, "status", app, "--format", "json"))
    assert status["applications"][app]["application-status"]["current"] == "active"
