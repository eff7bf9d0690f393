# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.

"""The stand-in runner application run as real processes on this host against the emulator.

The archive is downloaded from the emulator and unpacked into a temporary directory, so these
tests cover what an instance gets; the functional smoke test does the same inside LXD.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import signal
import subprocess
import tarfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.github_emulator import Emulator

TOKEN = "ghp_runnerAppTestToken"
REPO = "owner/repo"
ORG = "org"


def api(emu: Emulator, method: str, path: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{emu.api_url}{path}", data=data, method=method)
    request.add_header("Authorization", f"Bearer {TOKEN}")
    with urllib.request.urlopen(request, timeout=10) as answer:
        raw = answer.read()
    return json.loads(raw) if raw else None


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(token=TOKEN, repos=[REPO], orgs=[ORG], offline_after=2.0) as emulator:
        yield emulator


@pytest.fixture
def app(emu: Emulator, tmp_path: Path) -> Path:
    """The runner application unpacked from the emulator's download."""
    apps = api(emu, "GET", f"/repos/{REPO}/actions/runners/downloads")
    linux = next(a for a in apps if a["os"] == "linux" and a["architecture"] == "x64")
    with urllib.request.urlopen(linux["download_url"], timeout=10) as answer:
        data = answer.read()
    root = tmp_path / "actions-runner"
    root.mkdir()
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        archive.extractall(root, filter="data")
    return root


def env() -> dict[str, str]:
    # The tests run as root on CI; the real config.sh refuses root without this.
    return {**os.environ, "RUNNER_ALLOW_RUNASROOT": "1"}


def configure(
    emu: Emulator, app: Path, *args: str, url: str | None = None
) -> subprocess.CompletedProcess[str]:
    token = api(emu, "POST", f"/repos/{REPO}/actions/runners/registration-token")["token"]
    return subprocess.run(
        [
            *(str(app / "config.sh"), "--url", url or f"{emu.url}/{REPO}"),
            *("--token", token, "--unattended", *args),
        ],
        env=env(),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def start(app: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(app / "run.sh"), *args],
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(process: subprocess.Popen[str], timeout: float = 15) -> tuple[int, str]:
    try:
        code = process.wait(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.stdout is not None
    return code, process.stdout.read()


def test_config_refuses_root_without_opt_in(emu: Emulator, app: Path) -> None:
    """config.sh refuses to run as root without the opt-in, as the real one does.

    arrange: the runner application, run as root (skipped otherwise) without
        RUNNER_ALLOW_RUNASROOT.
    act: run config.sh.
    assert: it exits non-zero with "Must not run with sudo".
    """
    if os.geteuid() != 0:
        pytest.skip("needs root")
    result = subprocess.run(
        [str(app / "config.sh"), "--url", f"{emu.url}/{REPO}", "--token", "x"],
        env={k: v for k, v in os.environ.items() if k != "RUNNER_ALLOW_RUNASROOT"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode != 0
    assert "Must not run with sudo" in result.stderr


def test_registration_flow_runs_job_with_hooks(emu: Emulator, app: Path, tmp_path: Path) -> None:
    """A runner registered by config.sh runs a job with its hooks and GitHub's environment.

    arrange: an ephemeral runner configured with labels, started and completed hooks and an extra
        variable in .env.
    act: start run.sh and queue a pull_request job for its labels (any case) that writes a file.
    assert: .runner and private .credentials are written; the job succeeds with GitHub's steps; the
        started hook sees GitHub's variables and event; the completed hook ran; the file is in the
        work directory; run.sh exits 0; _diag holds Runner and Worker logs.
    """
    result = configure(emu, app, "--name", "host-runner", "--labels", "alpha,beta", "--ephemeral")
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads((app / ".runner").read_text())["agentName"] == "host-runner"
    assert (app / ".credentials").stat().st_mode & 0o077 == 0
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "started.sh").write_text('env | sort > "$RUNNER_TEMP/started.env"\n')
    (hooks / "completed.sh").write_text('echo done > "$RUNNER_TEMP/completed"\n')
    (app / ".env").write_text(
        "# hooks\n"
        f"ACTIONS_RUNNER_HOOK_JOB_STARTED={hooks / 'started.sh'}\n"
        f"ACTIONS_RUNNER_HOOK_JOB_COMPLETED={hooks / 'completed.sh'}\n"
        "EXTRA_FROM_DOTENV=yes=really\n"
    )
    process = start(app)
    emu.control.wait_for(lambda s: s["runners"][0]["status"] == "online", timeout=10)
    job = emu.control.queue_job(
        REPO,
        ["self-hosted", "Linux", "ALPHA"],
        'echo "script in $PWD"; test "$EXTRA_FROM_DOTENV" = yes=really; echo out > result.txt',
        workflow="host-wf",
        event="pull_request",
        payload={"pull_request": {"number": 7}},
    )
    state = emu.control.wait_for(
        lambda s: s["jobs"][0]["status"] == "completed" and not s["runners"], timeout=15
    )
    code, output = finish(process)
    record = state["jobs"][0]
    assert record["conclusion"] == "success", record["log"]
    assert code == 0, output
    assert "Listening for Jobs" in output and "completed with result: Succeeded" in output
    assert [step["name"] for step in record["steps"]] == [
        "Set up runner",
        "Run script",
        "Complete runner",
    ]
    temp = app / "_work" / "_temp"
    started = dict(
        line.split("=", 1)
        for line in (temp / "started.env").read_text().splitlines()
        if "=" in line
    )
    assert started["GITHUB_REPOSITORY"] == REPO
    assert started["GITHUB_WORKFLOW"] == "host-wf"
    assert started["GITHUB_EVENT_NAME"] == "pull_request"
    assert started["GITHUB_RUN_ID"] == str(job["run_id"])
    assert started["GITHUB_JOB"] == "test"
    assert started["GITHUB_RUN_ATTEMPT"] == "1"
    assert started["RUNNER_NAME"] == "host-runner"
    assert started["GITHUB_SHA"] == job["head_sha"]
    event = json.loads(Path(started["GITHUB_EVENT_PATH"]).read_text())
    assert event["pull_request"] == {"number": 7}
    assert event["repository"]["full_name"] == REPO
    assert (temp / "completed").read_text() == "done\n"
    assert (app / "_work" / "repo" / "repo" / "result.txt").read_text() == "out\n"
    diag = sorted(path.name for path in (app / "_diag").iterdir())
    assert any(name.startswith("Runner_") for name in diag)
    worker_logs = [app / "_diag" / name for name in diag if name.startswith("Worker_")]
    assert worker_logs and "script in" in worker_logs[0].read_text()


def test_jit_run_with_failing_script(emu: Emulator, app: Path) -> None:
    """A JIT runner runs a failing script to its end and exits 0.

    arrange: a JIT config for an organisation runner.
    act: start run.sh with it and queue a job that exits 3 halfway.
    assert: the job fails with exit code 3 and only the output before the exit; run.sh exits 0 and
        no .runner file is left.
    """
    body = {"name": "jit-host", "runner_group_id": 1, "labels": ["jit"]}
    config = api(emu, "POST", f"/orgs/{ORG}/actions/runners/generate-jitconfig", body)
    process = start(app, "--jitconfig", config["encoded_jit_config"])
    emu.control.wait_for(lambda s: s["runners"][0]["status"] == "online", timeout=10)
    emu.control.queue_job(f"{ORG}/service", ["jit"], "echo before; exit 3; echo after")
    state = emu.control.wait_for(
        lambda s: s["jobs"][0]["status"] == "completed" and not s["runners"], timeout=15
    )
    code, output = finish(process)
    record = state["jobs"][0]
    assert (record["conclusion"], record["exit_code"]) == ("failure", 3)
    assert "before" in record["log"] and "after" not in record["log"]
    assert code == 0, output
    assert not (app / ".runner").exists()


def test_failing_started_hook_skips_the_script(emu: Emulator, app: Path, tmp_path: Path) -> None:
    """A failing job-started hook fails the job and skips its script.

    arrange: an ephemeral runner whose started hook fails halfway.
    act: start run.sh and queue a job that would make a marker file.
    assert: the job fails, the log has the hook's output up to the failure, no marker exists, and
        run.sh exits 0.
    """
    assert configure(emu, app, "--name", "hooked", "--ephemeral").returncode == 0
    hook = tmp_path / "fail.sh"
    hook.write_text("echo refusing; false; echo unreachable\n")
    (app / ".env").write_text(f"ACTIONS_RUNNER_HOOK_JOB_STARTED={hook}\n")
    marker = tmp_path / "ran"
    process = start(app)
    emu.control.wait_for(lambda s: s["runners"][0]["status"] == "online", timeout=10)
    emu.control.queue_job(REPO, [], f"touch {marker}")
    state = emu.control.wait_for(lambda s: s["jobs"][0]["status"] == "completed", timeout=15)
    code, _ = finish(process)
    record = state["jobs"][0]
    assert record["conclusion"] == "failure"
    assert "refusing" in record["log"] and "unreachable" not in record["log"]
    assert not marker.exists()
    assert code == 0


def listener(app: Path, *args: str, **env_vars: str) -> subprocess.Popen[str]:
    """``bin/Runner.Listener run`` started directly, as the product's start script does."""
    return subprocess.Popen(
        [str(app / "bin" / "Runner.Listener"), "run", *args],
        env={**env(), **env_vars},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def jit(emu: Emulator, name: str, labels: list[str]) -> str:
    body = {"name": name, "runner_group_id": 1, "labels": labels}
    return api(emu, "POST", f"/orgs/{ORG}/actions/runners/generate-jitconfig", body)[
        "encoded_jit_config"
    ]


def test_deleted_registration_is_exit_1_for_the_listener_and_0_for_run_sh(
    emu: Emulator, app: Path
) -> None:
    """A deleted registration ends the listener with 1 and run.sh with 0, as the real runner.

    arrange: a configured runner, started once as the bare listener and once through run.sh.
    act: delete its registration through the API while it runs.
    assert: the listener exits 1 and run.sh 0, both saying it was deleted from the server; the
        runner stays configured until its files are removed.
    """
    assert configure(emu, app, "--name", "doomed").returncode == 0
    for start_it, expected in ((lambda: listener(app), 1), (lambda: start(app), 0)):
        process = start_it()
        state = emu.control.wait_for(
            lambda s: bool(s["runners"]) and s["runners"][0]["status"] == "online", timeout=10
        )
        api(emu, "DELETE", f"/repos/{REPO}/actions/runners/{state['runners'][0]['id']}")
        code, output = finish(process)
        assert code == expected, output
        assert "deleted from the server" in output
        assert configure(emu, app, "--name", "doomed").returncode != 0  # still configured
        (app / ".runner").unlink()
        (app / ".credentials").unlink()
        assert configure(emu, app, "--name", "doomed").returncode == 0


def test_deprecated_version_exit_codes(emu: Emulator, app: Path) -> None:
    """A deprecated runner version exits 7 with the opt-in variable, else 1; run.sh says 0.

    arrange: the emulator refusing versions below 9.0.0, and JIT configs.
    act: start the listener without and with the opt-in variable, then run.sh.
    assert: the listener exits 1 mentioning deprecated, 7 with the opt-in; run.sh exits 0.
    """
    emu.control.settings(deprecated_below="9.0.0")
    code, output = finish(listener(app, "--jitconfig", jit(emu, "old-1", ["x"])))
    assert code == 1 and "deprecated" in output, output
    opted = listener(
        app,
        "--jitconfig",
        jit(emu, "old-2", ["x"]),
        ACTIONS_RUNNER_RETURN_VERSION_DEPRECATED_EXIT_CODE="1",
    )
    code, output = finish(opted)
    assert code == 7, output
    code, output = finish(start(app, "--jitconfig", jit(emu, "old-3", ["x"])))
    assert code == 0, output


def test_update_demand_updates_then_run_sh_starts_the_new_version(
    emu: Emulator, app: Path
) -> None:
    """An outdated JIT runner is told to update; run.sh starts the updated listener.

    arrange: the emulator at runner version 2.399.0 and an older runner application.
    act: start the listener from a JIT config; then restore the old version and start run.sh from a
        JIT config, and queue a job.
    assert: the listener downloads 2.399.0, writes update.finished and exits 4; through run.sh the
        runner comes online as 2.399.0, runs the job and exits 0 after restarting.
    """
    emu.control.settings(runner_version="2.399.0")
    code, output = finish(listener(app, "--jitconfig", jit(emu, "outdated", ["up"])))
    assert code == 4, output
    assert "Runner update in progress" in output
    assert json.loads((app / "bin" / "runner.json").read_text())["version"] == "2.399.0"
    assert (app / "update.finished").exists()
    (app / "update.finished").unlink()
    # Back to the old version; run.sh does the whole dance itself.
    emu.control.settings(runner_version="2.330.0")
    finish(listener(app, "--version"))
    (app / "bin" / "runner.json").write_text(json.dumps({"version": "2.330.0", "arch": "x64"}))
    emu.control.settings(runner_version="2.399.0")
    process = start(app, "--jitconfig", jit(emu, "updater", ["up"]))
    state = emu.control.wait_for(
        lambda s: (
            any(r["name"] == "updater" and r["version"] == "2.399.0" for r in s["runners"])
            and any(r["status"] == "online" for r in s["runners"] if r["name"] == "updater")
        ),
        timeout=30,
    )
    assert state
    emu.control.queue_job(f"{ORG}/service", ["up"], "true")
    emu.control.wait_for(lambda s: s["jobs"][0]["status"] == "completed", timeout=15)
    code, output = finish(process, timeout=15)
    assert code == 0 and "Restarting runner" in output, output


def test_disableupdate_runner_gets_no_update_demand(emu: Emulator, app: Path) -> None:
    """A runner configured with --disableupdate is not told to update.

    arrange: the emulator at a newer runner version and an ephemeral runner configured with
        --disableupdate.
    act: start the listener and queue a job.
    assert: it exits 0 and its output never mentions an update.
    """
    emu.control.settings(runner_version="2.399.0")
    assert (
        configure(emu, app, "--name", "pinned", "--disableupdate", "--ephemeral").returncode == 0
    )
    process = listener(app)
    emu.control.wait_for(lambda s: s["runners"][0]["status"] == "online", timeout=10)
    emu.control.queue_job(REPO, [], "true")
    emu.control.wait_for(lambda s: s["jobs"][0]["status"] == "completed", timeout=15)
    code, output = finish(process)
    assert code == 0 and "update" not in output.lower(), output


def test_jit_configuration_from_the_environment(emu: Emulator, app: Path, tmp_path: Path) -> None:
    """The JIT config can come from ACTIONS_RUNNER_INPUT_JITCONFIG, cleared for the job.

    arrange: the listener started with the JIT config in ACTIONS_RUNNER_INPUT_JITCONFIG.
    act: queue a job that writes its environment to a file.
    assert: the listener exits 0 and the job's environment has no ACTIONS_RUNNER_INPUT_JITCONFIG.
    """
    seen = tmp_path / "env"
    process = listener(app, ACTIONS_RUNNER_INPUT_JITCONFIG=jit(emu, "env-jit", ["envjit"]))
    emu.control.wait_for(lambda s: s["runners"][0]["status"] == "online", timeout=10)
    emu.control.queue_job(f"{ORG}/service", ["envjit"], f"env > {seen}")
    emu.control.wait_for(lambda s: s["jobs"][0]["status"] == "completed", timeout=15)
    code, output = finish(process)
    assert code == 0, output
    assert "ACTIONS_RUNNER_INPUT_JITCONFIG" not in seen.read_text()


def test_config_sh_adds_the_default_labels(emu: Emulator, app: Path) -> None:
    """config.sh adds the default labels unless told not to.

    arrange: the runner application.
    act: configure with labels a,b; then remove the files and configure with --no-default-labels.
    assert: self-hosted, Linux, X64, a and b the first time; only a the second.
    """
    assert configure(emu, app, "--name", "labelled", "--labels", "a,b").returncode == 0
    labels = [label["name"] for label in emu.control.runners()[0]["labels"]]
    assert labels == ["self-hosted", "Linux", "X64", "a", "b"]
    (app / ".runner").unlink()
    (app / ".credentials").unlink()
    bare = configure(emu, app, "--name", "bare", "--labels", "a", "--no-default-labels")
    assert bare.returncode == 0
    bare_runner = next(r for r in emu.control.runners() if r["name"] == "bare")
    assert [label["name"] for label in bare_runner["labels"]] == ["a"]


def test_sigterm_while_idle_exits_zero_and_goes_offline(emu: Emulator, app: Path) -> None:
    """SIGTERM to an idle runner exits 0 and the runner goes offline.

    arrange: a configured runner started through run.sh and online.
    act: send SIGTERM.
    assert: it exits 0 and the runner is offline.
    """
    assert configure(emu, app, "--name", "stopper").returncode == 0
    process = start(app)
    emu.control.wait_for(lambda s: s["runners"][0]["status"] == "online", timeout=10)
    process.send_signal(signal.SIGTERM)
    code, _ = finish(process)
    assert code == 0
    assert emu.control.runners()[0]["status"] == "offline"


def test_config_errors_and_remove(emu: Emulator, app: Path) -> None:
    """config.sh refuses bad tokens, unknown scopes and taken names; it replaces and removes.

    arrange: the runner application.
    act: configure with a wrong token, for an unknown repository, twice, then with a taken name and
        with --replace; then config.sh remove; then start the listener and run.sh unconfigured.
    assert: "Failed to register", failure, "already configured", "same name"; --replace leaves one
        runner; remove deletes it and its files; unconfigured the listener exits 1 "Not configured"
        and run.sh 0.
    """
    bad = subprocess.run(
        [str(app / "config.sh"), "--url", f"{emu.url}/{REPO}", "--token", "WRONG", "--unattended"],
        env=env(),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert bad.returncode != 0 and "Failed to register" in bad.stdout
    unknown = configure(emu, app, "--name", "x", url=f"{emu.url}/nobody/nothing")
    assert unknown.returncode != 0
    assert configure(emu, app, "--name", "taken").returncode == 0
    again = configure(emu, app, "--name", "taken")
    assert again.returncode != 0 and "already configured" in again.stdout
    (app / ".runner").rename(app / ".runner.bak")
    clash = configure(emu, app, "--name", "taken")
    assert clash.returncode != 0 and "same name" in clash.stdout
    replaced = configure(emu, app, "--name", "taken", "--replace")
    assert replaced.returncode == 0, replaced.stdout
    assert len(emu.control.runners(REPO)) == 1
    remove_token = api(emu, "POST", f"/repos/{REPO}/actions/runners/remove-token")["token"]
    removed = subprocess.run(
        [str(app / "config.sh"), "remove", "--token", remove_token],
        env=env(),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert removed.returncode == 0, removed.stdout
    assert emu.control.runners(REPO) == []
    assert not (app / ".runner").exists() and not (app / ".credentials").exists()
    # The listener says 1 (TerminatedError); run.sh turns it into 0, as the real one does.
    not_configured = finish(listener(app))
    assert not_configured[0] == 1 and "Not configured" in not_configured[1]
    assert finish(start(app))[0] == 0


def load_listener_module() -> Any:
    """The stand-in's listener module, loaded from its source file (afresh each time)."""
    source = (
        Path(__file__).resolve().parents[1] / "github_emulator/runner_app/bin/runner_listener.py"
    )
    spec = importlib.util.spec_from_file_location("stand_in_runner_listener", source)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def listener_module() -> Any:
    return load_listener_module()


@pytest.mark.parametrize(
    ("url", "direct"),
    [
        ("http://127.0.0.1:8080/x", True),  # loopback: always direct
        ("https://localhost/x", True),
        ("https://10.1.2.3/api", False),  # an IP in no_proxy is ignored, as the real runner does
        ("https://ghes.example.com/api", True),
        ("https://a.ghes.example.com/api", True),
        ("https://other.example.org/", False),
        ("https://svc.internal:8443/", True),
        ("https://svc.internal:443/", False),
    ],
)
def test_no_proxy_like_the_real_runner(
    listener_module: Any, monkeypatch: pytest.MonkeyPatch, url: str, direct: bool
) -> None:
    """The listener bypasses the proxy for the URLs the real runner bypasses.

    arrange: no_proxy with an IP, a domain, a host with port and a network.
    act: ask whether a URL bypasses the proxy.
    assert: loopback, the domain and its subdomains and the host on its port go direct; the IP, the
        network, other hosts and other ports do not.
    """
    monkeypatch.setenv("no_proxy", "10.1.2.3,ghes.example.com,svc.internal:8443,10.0.0.0/8")
    assert listener_module.bypasses_proxy(url) is direct


def test_set_up_job_failure_runs_no_hook(emu: Emulator, app: Path, tmp_path: Path) -> None:
    """A job failing in "Set up job" runs no job-started hook.

    arrange: a JIT runner whose started hook makes a marker file.
    act: queue a job whose set-up fails to resolve an action.
    assert: the job fails with the set-up error in its log, the listener exits 0, and the hook
        never ran.
    """
    hook = tmp_path / "started.sh"
    marker = tmp_path / "hook-ran"
    hook.write_text(f"touch {marker}\n")
    (app / ".env").write_text(f"ACTIONS_RUNNER_HOOK_JOB_STARTED={hook}\n")
    process = listener(app, "--jitconfig", jit(emu, "setup-fail", ["setup"]))
    emu.control.wait_for(lambda s: s["runners"][0]["status"] == "online", timeout=10)
    emu.control.queue_job(
        f"{ORG}/service", ["setup"], "true", setup_error="Unable to resolve action x/y@v1"
    )
    state = emu.control.wait_for(lambda s: s["jobs"][0]["status"] == "completed", timeout=15)
    code, _ = finish(process)
    assert code == 0
    assert state["jobs"][0]["conclusion"] == "failure"
    assert "Unable to resolve action" in state["jobs"][0]["log"]
    assert not marker.exists()


def test_the_listener_retries_an_unreachable_server_without_end(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The listener never gives up on an unreachable GitHub; only a test may set a limit.

    arrange: the listener module loaded without, then with RUNNER_EMULATOR_GIVE_UP_SECONDS.
    act: read its give-up delay.
    assert: infinite without the variable, 3 seconds with it set to 3.
    """
    monkeypatch.delenv("RUNNER_EMULATOR_GIVE_UP_SECONDS", raising=False)
    assert float("inf") == load_listener_module().UNREACHABLE_GIVE_UP
    monkeypatch.setenv("RUNNER_EMULATOR_GIVE_UP_SECONDS", "3")
    assert load_listener_module().UNREACHABLE_GIVE_UP == 3.0


def test_a_cancelled_job_stops_and_ends_cancelled_with_diag_logs(emu: Emulator, app: Path) -> None:
    """A job cancelled on GitHub stops on the runner and ends cancelled, with its output in _diag.

    arrange: a JIT runner through run.sh, running a long job that printed a line.
    act: cancel the job.
    assert: the job ends cancelled, run.sh exits 0, the Worker log has the job's output and the
        Runner log the cancellation.
    """
    process = start(app, "--jitconfig", jit(emu, "cancel-host", ["jit"]))
    emu.control.wait_for(lambda s: s["runners"][0]["status"] == "online", timeout=10)
    job = emu.control.queue_job(f"{ORG}/service", ["jit"], "echo started-job; sleep 60")
    emu.control.wait_for(lambda s: s["jobs"][0]["status"] == "in_progress", timeout=10)
    time.sleep(0.5)

    emu.control.cancel_job(job["id"])

    state = emu.control.wait_for(lambda s: s["jobs"][0]["status"] == "completed", timeout=15)
    code, output = finish(process)
    assert state["jobs"][0]["conclusion"] == "cancelled"
    assert code == 0, output
    worker = "".join(p.read_text() for p in (app / "_diag").glob("Worker_*.log"))
    runner = "".join(p.read_text() for p in (app / "_diag").glob("Runner_*.log"))
    assert "started-job" in worker and "The job was cancelled" in runner


def test_a_queued_job_cancelled_never_runs(emu: Emulator) -> None:
    """A queued job that is cancelled completes as cancelled without running.

    arrange: a job queued for labels no runner has.
    act: cancel it.
    assert: it is completed with the conclusion cancelled.
    """
    job = emu.control.queue_job(REPO, ["nobody-has-this"], "true")

    record = emu.control.cancel_job(job["id"])

    assert (record["status"], record["conclusion"]) == ("completed", "cancelled")
