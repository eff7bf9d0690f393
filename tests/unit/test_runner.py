# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""Creating one runner (RunnerSpawner) against the fakes: request shapes and cleanup."""

from __future__ import annotations

import json

import pytest

from github_runner_manager.errors import (
    GitHubConflictError,
    GitHubUnavailableError,
    LxdError,
    RunnerCreateError,
    TokenError,
)
from github_runner_manager.lxd import TAG_GITHUB_PATH, TAG_GITHUB_URL, TAG_RUNNER_ID, ExecResult
from github_runner_manager.models import InstanceType
from github_runner_manager.runner import (
    APROXY_RULES,
    DIST_DIR,
    DOCKER_CLIENT_CONFIG,
    DOCKER_DAEMON_PATH,
    DOCKER_PROXY_DROPIN,
    UNIT_PATH,
    UNIT_WANTS_PATH,
    RunnerSpawner,
    runner_environment,
    runner_labels,
)
from github_runner_manager.templates import TemplateRenderer

from .conftest import make_config


@pytest.fixture
def spawner_for(tmp_path, lxd, github, clock):
    def _make(**overrides):
        config = make_config(tmp_path, **overrides)
        return RunnerSpawner(
            config,
            lxd,
            github,
            TemplateRenderer(config.templates),
            runner_tarball=b"tarball-bytes",
            monotonic=clock.monotonic,
            sleep=clock.sleep,
            wall_clock=clock,
        )

    return _make


def test_container_with_jit_gets_everything_before_start(spawner_for, lxd, github):
    """A JIT container gets its files and enabled unit before it starts, with no exec.

    arrange: JIT available.
    act: spawn a container.
    assert: files, enabled unit, no exec.
    """
    result = spawner_for().spawn(InstanceType.CONTAINER, "hash-1")

    instance = lxd.instances[result.name]
    assert instance.status == "Running"
    assert instance.spec.ephemeral is True
    assert instance.spec.instance_type is InstanceType.CONTAINER
    assert instance.spec.config["user.github-runner.config-hash"] == "hash-1"
    assert instance.spec.config["security.nesting"] == "true"
    assert instance.files[f"{DIST_DIR}/jitconfig"] == (f"jit-for-{result.name}".encode(), 0o600)
    assert instance.files[f"{DIST_DIR}/runner.tar.gz"][0] == b"tarball-bytes"
    assert instance.links == {UNIT_WANTS_PATH: UNIT_PATH}
    assert instance.commands == [], "a JIT container needs no exec round trip"
    assert set(result.timings) == {"register", "create", "push", "start"}


def test_virtual_machine_request_shape(spawner_for, lxd):
    """A VM runner is asked for with the VM settings.

    arrange: VM settings.
    act: spawn a VM.
    assert: type, limits, root disk, profiles.
    """
    spawner = spawner_for(
        runners={"cpu": 4, "memory": "8GiB", "disk": "20GiB"},
        lxd={"storage_pool": "runner", "profiles": ["default", "extra"]},
    )

    result = spawner.spawn(InstanceType.VIRTUAL_MACHINE, "hash-vm")

    spec = lxd.instances[result.name].spec
    assert spec.instance_type is InstanceType.VIRTUAL_MACHINE
    assert spec.config["limits.cpu"] == "4"
    assert spec.config["limits.memory"] == "8GiB"
    assert "security.nesting" not in spec.config
    assert spec.devices["root"] == {"type": "disk", "path": "/", "pool": "runner", "size": "20GiB"}
    assert spec.profiles == ("default", "extra")
    assert spec.ephemeral is True
    commands = lxd.instances[result.name].commands
    assert commands[0][:2] == ["systemctl", "is-system-running"], "waits for the VM agent"
    assert "enable --now github-runner" in commands[-1][-1]


def test_registration_token_flow_runs_config_sh(spawner_for, lxd, github):
    """Without JIT the runner is configured by config.sh, the token passed in its environment.

    arrange: no JIT (old GHES).
    act: spawn.
    assert: config.sh run with the token in env only.
    """
    github.jit = False
    seen = []

    def handler(name, command, env):
        seen.append((command, env))
        if command[:2] == ["systemctl", "is-system-running"]:
            return ExecResult(0, "running\n", "")
        return ExecResult(0, "", "")

    lxd.exec_handler = handler

    result = spawner_for().spawn(InstanceType.CONTAINER, "hash-1")

    configure = [(c, e) for c, e in seen if "start.sh configure" in " ".join(c)]
    assert len(configure) == 1
    command, env = configure[0]
    assert env == {"RUNNER_TOKEN": "AAAREGTOKEN"}
    assert "AAAREGTOKEN" not in " ".join(command)
    instance = lxd.instances[result.name]
    assert instance.links == {}, "the unit starts only after config.sh succeeded"
    assert f"{DIST_DIR}/jitconfig" not in instance.files


def test_failing_config_sh_cleans_up(spawner_for, lxd, github):
    """A failing config.sh fails the spawn and deletes the instance.

    arrange: config.sh exits 1.
    act: spawn.
    assert: RunnerCreateError, instance deleted.
    """
    github.jit = False

    def handler(name, command, env):
        if "start.sh configure" in " ".join(command):
            return ExecResult(1, "", "Http response code: Unauthorized")
        return ExecResult(0, "running\n", "")

    lxd.exec_handler = handler

    with pytest.raises(RunnerCreateError, match=r"exit code 1.*Unauthorized"):
        spawner_for().spawn(InstanceType.CONTAINER, "hash-1")

    assert lxd.instances == {}
    assert len(lxd.deleted) == 1


@pytest.mark.parametrize(
    "method", ["create_instance", "push_file", "push_symlink", "start_instance"]
)
def test_lxd_failure_at_any_step_leaves_nothing(spawner_for, lxd, github, method):
    """An LXD failure at any step leaves neither an instance nor a registration.

    arrange: one LXD step fails.
    act: spawn.
    assert: no instance and no GitHub registration.
    """
    lxd.fail[method] = LxdError(f"{method} failed")

    with pytest.raises(RunnerCreateError, match=f"{method} failed"):
        spawner_for().spawn(InstanceType.CONTAINER, "hash-1")

    assert lxd.instances == {}
    assert github.runners == {}


def test_loopback_github_gets_a_proxy_device(spawner_for, lxd):
    """A GitHub on the host's loopback is reached through a proxy device.

    arrange: GitHub on loopback http.
    act: spawn.
    assert: proxy device bound in the instance.
    """
    result = spawner_for(github={"url": "http://127.0.0.1:8123"}).spawn(
        InstanceType.CONTAINER, "h"
    )

    device = lxd.instances[result.name].spec.devices["loopback-8123"]
    assert device == {
        "type": "proxy",
        "listen": "tcp:127.0.0.1:8123",
        "connect": "tcp:127.0.0.1:8123",
        "bind": "instance",
    }


def test_remote_github_gets_no_proxy_device(spawner_for, lxd):
    """A remote GitHub needs no proxy device.

    arrange: github.com.
    act: spawn.
    assert: no proxy device.
    """
    result = spawner_for().spawn(InstanceType.CONTAINER, "h")

    assert not any(d.startswith("loopback-") for d in lxd.instances[result.name].spec.devices)


def test_loopback_proxy_gets_a_proxy_device(spawner_for, lxd):
    """A model proxy on the host's loopback is reached through a proxy device.

    arrange: a model proxy on the host's loopback.
    act: spawn.
    assert: reachable inside.
    """
    result = spawner_for(proxy={"http": "http://127.0.0.1:3128"}).spawn(
        InstanceType.CONTAINER, "h"
    )

    device = lxd.instances[result.name].spec.devices["loopback-3128"]
    assert device["listen"] == device["connect"] == "tcp:127.0.0.1:3128"


def test_labels_and_environment(tmp_path):
    """The runner's labels and environment follow the configuration.

    arrange: labels, proxies, mirror, tmate.
    act: compute.
    assert: labels and variables.
    """
    config = make_config(
        tmp_path,
        runners={"labels": ["gpu", "Container"], "base_image": "noble"},
        proxy={"http": "http://proxy:3128", "https": "http://proxy:3128", "no_proxy": "internal"},
        dockerhub_mirror="https://mirror.example",
        ssh_debug=[
            {
                "host": "10.1.1.1",
                "port": 10022,
                "rsa_fingerprint": "SHA256:r",
                "ed25519_fingerprint": "SHA256:e",
            }
        ],
    )

    assert runner_labels(config, InstanceType.CONTAINER) == [
        "github-runner",
        "noble",
        "container",
        "gpu",
    ]
    env = runner_environment(config)
    assert env["http_proxy"] == env["HTTP_PROXY"] == "http://proxy:3128"
    assert env["no_proxy"] == "internal,localhost,127.0.0.1,::1"
    assert env["DOCKERHUB_MIRROR"] == env["CONTAINER_REGISTRY_URL"] == "https://mirror.example"
    assert env["TMATE_SERVER_PORT"] == "10022"


def test_rendered_files_hold_no_github_token(spawner_for, lxd):
    """No file pushed into a runner holds the GitHub token.

    arrange: a spawned runner.
    act: read every file pushed.
    assert: the PAT is in none.
    """
    result = spawner_for().spawn(InstanceType.CONTAINER, "h")

    for path, (content, _) in lxd.instances[result.name].files.items():
        assert b"ghp_unit_test_token" not in content, path


def test_docker_gets_mirror_and_proxies(spawner_for, lxd):
    """Docker in the runner gets the registry mirror and the proxies.

    arrange: a mirror and a model proxy.
    act: spawn.
    assert: daemon.json, drop-in, client.
    """
    spawner = spawner_for(
        dockerhub_mirror="https://mirror.example",
        proxy={"http": "http://proxy:3128", "https": "http://proxy:3128", "no_proxy": "corp"},
    )

    result = spawner.spawn(InstanceType.CONTAINER, "h")

    files = lxd.instances[result.name].files
    assert json.loads(files[DOCKER_DAEMON_PATH][0]) == {
        "registry-mirrors": ["https://mirror.example"]
    }
    dropin = files[DOCKER_PROXY_DROPIN][0].decode()
    assert 'Environment="HTTPS_PROXY=http://proxy:3128"' in dropin
    assert 'Environment="NO_PROXY=corp,localhost,127.0.0.1,::1"' in dropin
    client = json.loads(files[DOCKER_CLIENT_CONFIG][0])
    assert client["proxies"]["default"]["httpProxy"] == "http://proxy:3128"
    assert b"HTTP_PROXY=http://proxy:3128" in files[f"{DIST_DIR}/runner.env"][0]


def test_aproxy_replaces_proxy_variables(spawner_for, lxd):
    """With aproxy, traffic is redirected and no proxy variable is set.

    arrange: aproxy on.
    act: spawn.
    assert: nftables redirect, no proxy variables anywhere.
    """
    spawner = spawner_for(proxy={"http": "http://10.1.2.3:3128", "aproxy": True})

    result = spawner.spawn(InstanceType.CONTAINER, "h")

    files = lxd.instances[result.name].files
    rules = files[APROXY_RULES][0].decode()
    assert "redirect to :54969" in rules
    start = files[f"{DIST_DIR}/start.sh"][0].decode()
    assert "proxy=10.1.2.3:3128" in start
    for path in (f"{DIST_DIR}/runner.env", "/etc/environment"):
        assert b"PROXY" not in files[path][0].upper(), path
    assert DOCKER_PROXY_DROPIN not in files


def test_no_proxy_does_not_grow_between_runners(spawner_for, lxd):
    """The no_proxy list does not grow from one runner to the next.

    arrange: a proxy.
    act: spawn three runners.
    assert: every runner gets the same no_proxy.
    """
    spawner = spawner_for(proxy={"http": "http://proxy:3128", "no_proxy": "a,b"})

    names = [spawner.spawn(InstanceType.CONTAINER, "h").name for _ in range(3)]

    envs = {lxd.instances[n].files[f"{DIST_DIR}/runner.env"][0] for n in names}
    assert len(envs) == 1
    assert b"NO_PROXY=a,b,localhost,127.0.0.1,::1\n" in envs.pop()


def test_aproxy_needs_a_proxy_with_a_port(tmp_path):
    """The aproxy option needs a proxy with a port.

    arrange: aproxy without a proxy.
    act: validate.
    assert: the config is refused.
    """
    with pytest.raises(ValueError, match="aproxy"):
        make_config(tmp_path, proxy={"aproxy": True})


def test_insecure_test_mode_makes_containers_privileged(spawner_for, lxd):
    """The insecure test mode makes containers privileged, never VMs.

    arrange: privileged runners.
    act: spawn a container and a VM.
    assert: only the container.
    """
    spawner = spawner_for(runners={"privileged": True})

    container = spawner.spawn(InstanceType.CONTAINER, "h").name
    vm = spawner.spawn(InstanceType.VIRTUAL_MACHINE, "h").name

    assert lxd.instances[container].spec.config["security.privileged"] == "true"
    assert "security.privileged" not in lxd.instances[vm].spec.config


def test_a_tarball_file_is_streamed_not_read_whole(tmp_path, lxd, github, clock):
    """The runner tarball is streamed to LXD, not read whole.

    arrange: the cached tarball as a file.
    act: spawn.
    assert: LXD got a file object. The real runner archive is well over 100 MB: reading it whole
        for each spawn (in parallel) costs that much memory per spawn.
    """
    config = make_config(tmp_path)
    tarball = tmp_path / "actions-runner.tar.gz"
    tarball.write_bytes(b"runner archive " * 1000)
    pushed_types = []
    push = lxd.push_file

    def recording_push(name, path, data, mode=0o644):
        if path.endswith("runner.tar.gz"):
            pushed_types.append(type(data))
        push(name, path, data, mode)

    lxd.push_file = recording_push
    spawner = RunnerSpawner(
        config,
        lxd,
        github,
        TemplateRenderer(config.templates),
        runner_tarball=tarball,
        monotonic=clock.monotonic,
        sleep=clock.sleep,
        wall_clock=clock,
    )

    result = spawner.spawn(InstanceType.CONTAINER, "hash-1")

    assert pushed_types and all(not issubclass(kind, bytes) for kind in pushed_types)
    content = lxd.instances[result.name].files[f"{DIST_DIR}/runner.tar.gz"][0]
    assert content == tarball.read_bytes()


def test_start_script_runs_the_listener_itself_and_keeps_its_exit_code(spawner_for, lxd):
    """The start script runs the listener itself, keeping its exit code (run.sh would not).

    arrange: a JIT spawner.
    act: spawn a container and read its start.sh.
    assert: the listener run directly, not run.sh (which turns exit codes 1, 5 and unknown ones
        into 0), with the deprecated-version exit code on, and the JIT configuration taken from the
        environment, never from the command line.
    """
    result = spawner_for().spawn(InstanceType.CONTAINER, "hash-1")

    start = lxd.instances[result.name].files[f"{DIST_DIR}/start.sh"][0].decode()

    assert "./run.sh" not in start
    assert '"$RUNNER_DIR/bin/Runner.Listener" run' in start
    assert "export ACTIONS_RUNNER_RETURN_VERSION_DEPRECATED_EXIT_CODE=1" in start
    assert "--jitconfig" not in start, "the JIT configuration never goes on a command line"
    assert 'ACTIONS_RUNNER_INPUT_JITCONFIG="$1"' in start


def test_instance_notes_where_its_runner_is_registered(spawner_for, lxd, github):
    """The instance notes where its runner is registered.

    arrange: a JIT spawner.
    act: spawn.
    assert: path, url and runner id on the instance.
    """
    result = spawner_for().spawn(InstanceType.CONTAINER, "hash")

    config = lxd.instances[result.name].spec.config
    assert config[TAG_GITHUB_PATH] == "test-owner/test-repo"
    assert config[TAG_GITHUB_URL] == "https://github.com"
    assert config[TAG_RUNNER_ID] == str(github.by_name(result.name).id)


@pytest.mark.parametrize(
    "error",
    [GitHubUnavailableError("502 after retries"), GitHubConflictError("409 name taken", 409)],
)
def test_registration_lost_after_github_made_the_runner(spawner_for, lxd, github, error):
    """A registration answer lost after GitHub made the runner leaves no ghost.

    arrange: GitHub makes the runner, then the answer is lost.
    act: spawn.
    assert: the error is raised, and the runner GitHub made is deleted (no ghost).
    """
    real_register = github.register_runner

    def register(name, labels):
        real_register(name, labels)
        raise error

    github.register_runner = register

    with pytest.raises(type(error)):
        spawner_for().spawn(InstanceType.CONTAINER, "hash")

    assert github.runners == {}
    assert lxd.instances == {}


def test_refused_registration_makes_no_further_call(spawner_for, lxd, github):
    """A refused registration makes no further GitHub call.

    arrange: GitHub rejects the token.
    act: spawn.
    assert: no lookup after the refusal.
    """
    github.fail["register_runner"] = TokenError("bad token", 401)

    with pytest.raises(TokenError):
        spawner_for().spawn(InstanceType.CONTAINER, "hash")

    assert github.calls == ["register_runner"]


def test_start_script_powers_off_at_once_after_handing_over(spawner_for, lxd):
    """The runner's instance powers itself off at once, after syncing what it handed over.

    arrange: a JIT spawner.
    act: spawn a container and read its start.sh.
    assert: every power-off goes through one function that syncs the file systems (the job
        logs and post-job record in the exchange directory) and then powers off without a
        systemd shutdown (`--force --force`: LXD reports `instance-shutdown` at once); no plain
        `systemctl poweroff` is left.
    """
    result = spawner_for().spawn(InstanceType.CONTAINER, "hash-1")

    start = lxd.instances[result.name].files[f"{DIST_DIR}/start.sh"][0].decode()

    body = start.split("power_off() {", 1)[1].split("\n}", 1)[0]
    assert body.index("sync") < body.index("systemctl poweroff --force --force")
    calls = [line.strip() for line in start.splitlines() if "systemctl poweroff" in line]
    assert calls == ["systemctl poweroff --force --force"], calls
    run = start.split("\nrun() {", 1)[1].split("\n}", 1)[0]
    assert run.count("power_off") == 2
    assert run.index("hand_over_logs\n    post_job") < run.rindex("power_off")
