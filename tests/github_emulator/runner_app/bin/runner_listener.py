# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""Stand-in for GitHub's ``Runner.Listener``: configure, remove and run against the emulator.

Standard library only (it runs inside test instances with a bare ``python3``). Subcommands:

- ``configure``: register with a registration token (``config.sh``), writing ``.runner`` and
  ``.credentials`` next to ``config.sh``;
- ``remove``: deregister with a remove token (``config.sh remove``);
- ``run [--jitconfig BLOB]``: load ``.env``/``.path``, open a session (the runner shows online),
  take jobs, run each one's script with ``bash -e`` between the job-started and job-completed
  hooks, report the result; an ephemeral runner exits 0 after its job. Logs go to ``_diag/``.

Exit codes of ``run`` are the real listener's (actions/runner ``Constants.Runner.ReturnCode``
and ``src/Runner.Listener/Program.cs``): 0 done (ephemeral job finished, or stopped by
SIGTERM/SIGINT); 1 ``TerminatedError`` (the registration is gone, a bad JIT configuration, not
configured, or a deprecated version without the opt-in below); 2 ``RetryableError`` (only when
``RUNNER_EMULATOR_GIVE_UP_SECONDS`` is set: like the real listener it otherwise retries an
unreachable server forever); 3/4 ``RunnerUpdating``/``RunOnceRunnerUpdating`` (GitHub demanded an
update: the new version was downloaded and unpacked, ``update.finished`` written); 7
``RunnerVersionDeprecated`` when ``ACTIONS_RUNNER_RETURN_VERSION_DEPRECATED_EXIT_CODE=1``. The
wrapper ``run.sh`` maps them as the real ``run-helper.sh.template`` does.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime
import ipaddress
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LOG_TAIL = 64 * 1024
# The real listener retries an unreachable server without end; tests may set a limit.
_GIVE_UP = os.environ.get("RUNNER_EMULATOR_GIVE_UP_SECONDS", "")
UNREACHABLE_GIVE_UP = float(_GIVE_UP) if _GIVE_UP else float("inf")
# actions/runner Constants.Runner.ReturnCode.
SUCCESS, TERMINATED_ERROR, RETRYABLE_ERROR = 0, 1, 2
RUNNER_UPDATING, RUN_ONCE_RUNNER_UPDATING, VERSION_DEPRECATED = 3, 4, 7
DEFAULT_LABELS = ("self-hosted", "Linux")


def _info() -> dict[str, str]:
    try:
        return json.loads((ROOT / "bin" / "runner.json").read_text())
    except (OSError, ValueError):
        machine = platform.machine().lower()
        arch = "arm64" if machine in ("aarch64", "arm64") else "x64"
        return {"version": "0.0.0", "os": "linux", "arch": arch}


INFO = _info()


def _now() -> str:
    return datetime.datetime.now(tz=datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def _stamp() -> str:
    return datetime.datetime.now(tz=datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")


class Diag:
    """A ``_diag/<Kind>_<time>-utc.log`` file, like the real runner's diagnostics."""

    def __init__(self, kind: str):
        directory = ROOT / "_diag"
        directory.mkdir(exist_ok=True)
        self.path = directory / f"{kind}_{_stamp()}-utc.log"
        suffix = 1
        while self.path.exists():
            self.path = directory / f"{kind}_{_stamp()}-{suffix}-utc.log"
            suffix += 1
        self.kind = kind
        self._lock = threading.Lock()

    def log(self, message: str, level: str = "INFO") -> None:
        """Append a line.

        Args:
            message: the text.
            level: INFO, WARN or ERR.
        """
        with self._lock, self.path.open("a", encoding="utf-8") as stream:
            stream.write(f"[{_now()} {level} {self.kind}] {message}\n")

    def raw(self, text: str) -> None:
        """Append text as it is (job output).

        Args:
            text: the text.
        """
        with self._lock, self.path.open("a", encoding="utf-8") as stream:
            stream.write(text)


def say(message: str, diag: Diag | None = None) -> None:
    """Print a console line (as the real runner does) and log it.

    Args:
        message: the text.
        diag: the log to copy it to.
    """
    print(message, flush=True)
    if diag is not None:
        diag.log(message)


class ServerError(Exception):
    """The server answered with an error status."""

    def __init__(self, status: int, body: Any):
        message = body.get("message") if isinstance(body, dict) else body
        super().__init__(f"{status} {message}")
        self.status = status
        self.message = str(message)
        self.error_code = body.get("errorCode") if isinstance(body, dict) else None


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def bypasses_proxy(url: str) -> bool:
    """Whether the real runner goes to ``url`` directly rather than through the proxy.

    As actions/runner's RunnerWebProxy: loopback is always direct; ``no_proxy`` entries are
    host names (``.suffix`` or a name matching itself and its subdomains, optionally with
    ``:port``), and entries that are IP addresses are ignored ("We don't support IP address
    for no_proxy").

    Args:
        url: the destination.

    Returns:
        True when no proxy is used.
    """
    parts = urllib.parse.urlsplit(url)
    host = (parts.hostname or "").lower()
    if host == "localhost" or (_is_ip(host) and ipaddress.ip_address(host).is_loopback):
        return True
    port = str(parts.port or (443 if parts.scheme == "https" else 80))
    no_proxy = os.environ.get("no_proxy") or os.environ.get("NO_PROXY") or ""
    for entry in (item.strip().lower() for item in no_proxy.split(",")):
        name, _, entry_port = entry.partition(":")
        if not name or _is_ip(name) or (entry_port and entry_port != port):
            continue
        if name.startswith("."):
            if host.endswith(name):
                return True
        elif host == name or host.endswith(f".{name}"):
            return True
    return False


def urlopen(request: urllib.request.Request, timeout: float) -> Any:
    """Open a URL with the real runner's proxy rules (see :func:`bypasses_proxy`).

    Args:
        request: the request.
        timeout: seconds.

    Returns:
        The response.
    """
    scheme = urllib.parse.urlsplit(request.full_url).scheme
    proxy = os.environ.get(f"{scheme}_proxy") or os.environ.get(f"{scheme.upper()}_PROXY")
    proxies = {} if not proxy or bypasses_proxy(request.full_url) else {scheme: proxy}
    opener = urllib.request.build_opener(urllib.request.ProxyHandler(proxies))
    return opener.open(request, timeout=timeout)


def call(base: str, method: str, path: str, body: Any = None, timeout: float = 30.0) -> Any:
    """One JSON request to the emulator's runner protocol.

    Args:
        base: the server URL (scheme and authority).
        method: the HTTP method.
        path: the path below ``/_emulator/runner``.
        body: a JSON body.
        timeout: seconds.

    Returns:
        The decoded answer, or None for an empty one.

    Raises:
        ServerError: an error status.
    """
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{base}/_emulator/runner{path}", data=data, method=method)
    request.add_header("User-Agent", f"GitHubActionsRunner-emulated/{INFO['version']}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urlopen(request, timeout=timeout) as answer:
            raw = answer.read()
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            detail: Any = json.loads(raw)
        except ValueError:
            detail = raw.decode(errors="replace")
        raise ServerError(exc.code, detail) from None
    return json.loads(raw) if raw else None


def _split_url(url: str) -> tuple[str, str]:
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError(f"invalid --url {url!r}")
    return f"{parsed.scheme}://{parsed.netloc}", parsed.path


def _write_json(path: Path, content: Any, private: bool = False) -> None:
    path.write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")
    if private:
        path.chmod(0o600)


# --- configure / remove ----------------------------------------------------------------------


def configure(argv: list[str]) -> int:
    """``config.sh``: register with a registration token.

    Args:
        argv: the options.

    Returns:
        The exit code.
    """
    parser = argparse.ArgumentParser(prog="config.sh", allow_abbrev=False)
    parser.add_argument("--url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--name", default=socket.gethostname())
    parser.add_argument("--labels", default="")
    parser.add_argument("--runnergroup", default=None)
    parser.add_argument("--work", default="_work")
    parser.add_argument("--ephemeral", action="store_true")
    parser.add_argument("--unattended", action="store_true")
    parser.add_argument("--replace", action="store_true")
    parser.add_argument("--disableupdate", action="store_true")
    parser.add_argument("--no-default-labels", action="store_true")
    args = parser.parse_args(argv)
    diag = Diag("Runner")
    if (ROOT / ".runner").exists():
        say(
            "Cannot configure the runner because it is already configured. To reconfigure the "
            "runner, run './config.sh remove' first.",
            diag,
        )
        return 1
    try:
        base, url_path = _split_url(args.url)
    except ValueError as exc:
        say(f"Error: {exc}", diag)
        return 1
    labels = [label.strip() for label in args.labels.split(",") if label.strip()]
    if not args.no_default_labels:
        # Like the real ConfigurationManager.CreateNewAgent: the client adds the system labels.
        labels = [*DEFAULT_LABELS, INFO["arch"].upper(), *labels]
    body = {
        "url_path": url_path,
        "token": args.token,
        "name": args.name,
        "labels": labels,
        "runner_group": args.runnergroup,
        "work_folder": args.work,
        "ephemeral": args.ephemeral,
        "replace": args.replace,
        "disable_update": args.disableupdate,
        "no_default_labels": args.no_default_labels,
        "arch": INFO["arch"],
        "version": INFO["version"],
    }
    say("--------------------------------------------------------------------------------")
    say("|        GitHub Actions runner (emulator stand-in) " + INFO["version"])
    say("--------------------------------------------------------------------------------")
    try:
        answer = call(base, "POST", "/register", body)
    except ServerError as exc:
        say(f"Http response code: {exc.status} from 'POST {args.url}': {exc.message}", diag)
        say("Failed to register the runner.", diag)
        return 1
    except (urllib.error.URLError, OSError) as exc:
        say(f"Failed to connect to {base}: {exc}", diag)
        return 1
    say("√ Connected to GitHub", diag)
    files = answer["files"]
    _write_json(ROOT / ".runner", files[".runner"])
    _write_json(ROOT / ".credentials", files[".credentials"], private=True)
    say(f"√ Runner successfully added (id {answer['runner']['id']}, name {args.name})", diag)
    say("√ Runner connection is good", diag)
    say("√ Settings Saved.", diag)
    return 0


def remove(argv: list[str]) -> int:
    """``config.sh remove``: deregister with a remove token and delete the local settings.

    Args:
        argv: the options.

    Returns:
        The exit code.
    """
    parser = argparse.ArgumentParser(prog="config.sh remove", allow_abbrev=False)
    parser.add_argument("--token", required=True)
    parser.add_argument("--unattended", action="store_true")
    args = parser.parse_args(argv)
    diag = Diag("Runner")
    try:
        settings = json.loads((ROOT / ".runner").read_text())
        credentials = json.loads((ROOT / ".credentials").read_text())["data"]
    except (OSError, ValueError, KeyError):
        say("The runner is not configured; nothing to remove.", diag)
        return 1
    base, url_path = _split_url(settings["gitHubUrl"])
    body = {"url_path": url_path, "token": args.token, "runner_id": credentials["runnerId"]}
    try:
        call(base, "POST", "/remove", body)
    except ServerError as exc:
        if exc.status != 404:
            say(f"Failed: removing the runner from the server: {exc}", diag)
            return 1
        say(f"The runner is not registered on the server any more ({exc.message}).", diag)
    except (urllib.error.URLError, OSError) as exc:
        say(f"Failed to connect to {base}: {exc}", diag)
        return 1
    say("√ Runner removed successfully", diag)
    for name in (".credentials", ".runner"):
        (ROOT / name).unlink(missing_ok=True)
        say(f"√ Removed {name}", diag)
    return 0


# --- run ---------------------------------------------------------------------------------------


class StopRequestedError(Exception):
    """SIGTERM/SIGINT while idle."""


class UpdateAppliedError(Exception):
    """GitHub demanded an update and it was applied: the listener must exit 3 or 4."""


def load_env() -> None:
    """Load ``.env`` (``KEY=VALUE`` lines) and ``.path`` next to ``run.sh``, as the real runner."""
    env_file = ROOT / ".env"
    if env_file.is_file():
        for line in env_file.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if not line or line.startswith("#") or "=" not in line:
                continue
            key, _, value = line.partition("=")
            os.environ[key.strip()] = value
    path_file = ROOT / ".path"
    if path_file.is_file():
        value = path_file.read_text(encoding="utf-8").strip()
        if value:
            os.environ["PATH"] = value


def load_settings(jitconfig: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The runner settings and credentials, from a JIT blob or from the configured files.

    Args:
        jitconfig: the ``encoded_jit_config``, or None.

    Returns:
        ``.runner`` and ``.credentials`` contents.

    Raises:
        ValueError: not configured, or a bad JIT blob.
    """
    if jitconfig:
        try:
            files = json.loads(base64.b64decode(jitconfig))
            settings = json.loads(base64.b64decode(files[".runner"]))
            credentials = json.loads(base64.b64decode(files[".credentials"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"invalid --jitconfig: {exc}") from exc
        return settings, credentials
    try:
        settings = json.loads((ROOT / ".runner").read_text())
        credentials = json.loads((ROOT / ".credentials").read_text())
    except (OSError, ValueError) as exc:
        raise ValueError("Not configured. Run config.sh to configure the runner.") from exc
    return settings, credentials


class Listener:
    """A running runner: its session, its job loop and its signal handling."""

    def __init__(self, settings: dict[str, Any], credentials: dict[str, Any], diag: Diag):
        self.settings = settings
        self.runner_id = credentials["data"]["runnerId"]
        self.secret = credentials["data"]["secret"]
        self.base = settings["serverUrl"].rstrip("/")
        self.diag = diag
        self.session_id: str | None = None
        self.poll_wait = 20.0
        self.heartbeat_interval = 5.0
        self.job_process: subprocess.Popen[bytes] | None = None
        self.cancelled = False
        self.job_cancelled = False
        self.in_job = False

    # signals

    def on_signal(self, signum: int, frame: FrameType | None) -> None:
        """SIGTERM/SIGINT: cancel the running job, or stop at once when idle.

        Args:
            signum: the signal.
            frame: unused.

        Raises:
            StopRequestedError: when idle.
        """
        del frame
        self.diag.log(f"Received signal {signum}", "WARN")
        self.cancelled = True
        if not self.in_job:
            raise StopRequestedError()
        process = self.job_process
        if process is not None and process.poll() is None:
            with contextlib.suppress(OSError):
                os.killpg(process.pid, signal.SIGTERM)

    # protocol with retries

    def _call(self, method: str, path: str, body: Any = None, timeout: float = 30.0) -> Any:
        """A request retried while the server is unreachable (up to a limit)."""
        deadline = time.monotonic() + UNREACHABLE_GIVE_UP
        delay = 0.5
        while True:
            try:
                return call(self.base, method, path, body, timeout)
            except ServerError:
                raise
            except (urllib.error.URLError, OSError) as exc:
                if time.monotonic() > deadline:  # never, unless a test set a limit
                    raise ConnectionError(f"cannot reach {self.base}: {exc}") from exc
                self.diag.log(f"{method} {path} failed ({exc}); retrying", "WARN")
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    def open_session(self) -> None:
        """Create a message session: the runner shows online."""
        answer = self._call(
            "POST",
            "/sessions",
            {
                "runner_id": self.runner_id,
                "secret": self.secret,
                "version": INFO["version"],
                "pid": os.getpid(),
            },
        )
        self.session_id = answer["session_id"]
        self.poll_wait = float(answer.get("poll_wait", 20.0))
        self.heartbeat_interval = float(answer.get("heartbeat_interval", 5.0))

    def close_session(self) -> None:
        """Delete the session (best effort)."""
        if self.session_id is None:
            return
        with contextlib.suppress(ServerError, urllib.error.URLError, OSError):
            call(self.base, "DELETE", f"/sessions/{self.session_id}", timeout=5)
        self.session_id = None

    def loop(self) -> int:
        """Open a session and take jobs until done.

        Returns:
            The exit code.
        """
        self.open_session()
        say("", self.diag)
        say("√ Connected to GitHub", self.diag)
        say("", self.diag)
        say(f"Current runner version: '{INFO['version']}'", self.diag)
        say(f"{_now()}: Listening for Jobs", self.diag)
        while True:
            query = urllib.parse.urlencode({"wait": self.poll_wait})
            message = self._call(
                "GET", f"/sessions/{self.session_id}/message?{query}", timeout=self.poll_wait + 30
            )
            if self.cancelled:
                raise StopRequestedError()
            if not message:
                continue
            if message.get("messageType") == "AgentRefresh":
                self.self_update(str(message["body"]["targetVersion"]))
                raise UpdateAppliedError()
            job = message["job"]
            deleted = self.run_job(job)
            if self.cancelled or deleted or self.settings.get("ephemeral"):
                return 0

    def self_update(self, version: str) -> None:
        """Download and unpack the demanded version over this one, as the real SelfUpdater.

        The real runner downloads the whole application, exits with 3 (4 when ephemeral), and
        its update script swaps the directories and writes ``update.finished``, which
        ``run-helper.sh`` waits for before starting the listener again.

        Args:
            version: the target version.
        """
        say("Runner update in progress, do not shutdown runner.", self.diag)
        say(f"Downloading {version} runner", self.diag)
        name = f"actions-runner-linux-{INFO['arch']}-{version}.tar.gz"
        archive = ROOT / "_update.tar.gz"
        request = urllib.request.Request(f"{self.base}/_emulator/downloads/{name}")
        with urlopen(request, timeout=300) as answer, archive.open("wb") as out:
            while chunk := answer.read(1 << 20):
                out.write(chunk)
        subprocess.run(["tar", "-xzf", str(archive), "-C", str(ROOT)], check=True)
        archive.unlink()
        (ROOT / "update.finished").write_text(version + "\n", encoding="utf-8")
        say(f"Runner update {version} applied", self.diag)

    def _heartbeat(self, done: threading.Event) -> None:
        while not done.wait(self.heartbeat_interval):
            try:
                answer = call(
                    self.base, "POST", f"/sessions/{self.session_id}/heartbeat", {}, timeout=10
                )
            except (ServerError, urllib.error.URLError, OSError) as exc:
                self.diag.log(f"heartbeat failed: {exc}", "WARN")
                continue
            if isinstance(answer, dict) and answer.get("cancel_job") is not None:
                self.cancel_job()

    def cancel_job(self) -> None:
        """GitHub cancelled the running job: stop its processes; it ends ``cancelled``."""
        if self.job_cancelled:
            return
        self.job_cancelled = True
        self.diag.log("The job was cancelled", "WARN")
        process = self.job_process
        if process is not None and process.poll() is None:
            with contextlib.suppress(OSError):
                os.killpg(process.pid, signal.SIGTERM)

    def run_job(self, job: dict[str, Any]) -> bool:
        """Run one job and report it.

        Args:
            job: the job message.

        Returns:
            Whether the server deleted this runner afterwards.
        """
        say(f"{_now()}: Running job: {job['name']}", self.diag)
        self.in_job = True
        done = threading.Event()
        beat = threading.Thread(target=self._heartbeat, args=(done,), daemon=True)
        beat.start()
        try:
            try:
                result = Worker(job, self).execute()
            finally:
                done.set()
                beat.join(timeout=5)
            if self.cancelled or self.job_cancelled:
                result["conclusion"] = "cancelled"
            body = {"runner_id": self.runner_id, "secret": self.secret, **result}
            word = {"success": "Succeeded", "failure": "Failed", "cancelled": "Canceled"}
            say(
                f"{_now()}: Job {job['name']} completed with result: {word[result['conclusion']]}",
                self.diag,
            )
            answer = self._call("POST", f"/jobs/{job['id']}/complete", body)
        finally:
            # Until here a stop signal only cancels the job: the report must go out.
            self.in_job = False
        return bool(answer and answer.get("deleted"))


class Worker:
    """Runs one job: hooks, script, environment, and the ``Worker_*.log``."""

    def __init__(self, job: dict[str, Any], listener: Listener):
        self.job = job
        self.listener = listener
        self.diag = Diag("Worker")
        self.output: list[str] = []
        work = Path(listener.settings.get("workFolder") or "_work")
        self.work = work if work.is_absolute() else ROOT / work
        repo_name = job["repository"].split("/", 1)[1]
        self.workspace = self.work / repo_name / repo_name
        self.temp = self.work / "_temp"

    def environment(self) -> dict[str, str]:
        """The variables hooks and the script see.

        Returns:
            The environment.
        """
        job, settings = self.job, self.listener.settings
        server = settings["serverUrl"].rstrip("/")
        event_dir = self.temp / "_github_workflow"
        event_dir.mkdir(parents=True, exist_ok=True)
        event_path = event_dir / "event.json"
        owner, name = job["repository"].split("/", 1)
        payload = {
            "ref": job["ref"],
            "repository": {
                "full_name": job["repository"],
                "name": name,
                "owner": {"login": owner},
                "html_url": f"{server}/{job['repository']}",
            },
            "sender": {"login": "emulator-user"},
            "workflow": f".github/workflows/{job['workflow']}.yaml",
            "inputs": {},
        }
        payload.update(job.get("payload") or {})
        event_path.write_text(json.dumps(payload, indent=2), encoding="utf-8")
        commands = self.temp / "_runner_file_commands"
        commands.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        for variable in ("GITHUB_ENV", "GITHUB_OUTPUT", "GITHUB_PATH", "GITHUB_STEP_SUMMARY"):
            target = commands / f"{variable.lower()}_{job['id']}"
            target.touch()
            env[variable] = str(target)
        env.update(
            {
                "CI": "true",
                "GITHUB_ACTIONS": "true",
                "GITHUB_WORKFLOW": job["workflow"],
                "GITHUB_REPOSITORY": job["repository"],
                "GITHUB_REPOSITORY_OWNER": owner,
                "GITHUB_EVENT_NAME": job["event"],
                "GITHUB_EVENT_PATH": str(event_path),
                "GITHUB_RUN_ID": str(job["run_id"]),
                "GITHUB_RUN_NUMBER": str(job["run_number"]),
                "GITHUB_RUN_ATTEMPT": str(job["run_attempt"]),
                "GITHUB_JOB": job["name"],
                "GITHUB_SHA": job["sha"],
                "GITHUB_REF": job["ref"],
                "GITHUB_ACTOR": "emulator-user",
                "GITHUB_SERVER_URL": server,
                "GITHUB_API_URL": f"{server}/api/v3",
                "GITHUB_WORKSPACE": str(self.workspace),
                "RUNNER_NAME": str(settings.get("agentName", "")),
                "RUNNER_OS": "Linux",
                "RUNNER_ARCH": INFO["arch"].upper(),
                "RUNNER_TEMP": str(self.temp),
                "RUNNER_WORKSPACE": str(self.workspace.parent),
                "RUNNER_TOOL_CACHE": str(self.work / "_tool"),
            }
        )
        return env

    def _run(self, step: str, command: list[str], env: dict[str, str]) -> int:
        self.diag.log(f"Step '{step}': {' '.join(command)}")
        header = f"##[group]{step}\n"
        self.output.append(header)
        self.diag.raw(header)
        process = subprocess.Popen(
            command,
            cwd=self.workspace,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.listener.job_process = process
        try:
            assert process.stdout is not None
            for raw in iter(process.stdout.readline, b""):
                line = raw.decode(errors="replace")
                self.output.append(line)
                self.diag.raw(line)
            code = process.wait()
        finally:
            self.listener.job_process = None
        footer = f"##[endgroup] exit code {code}\n"
        self.output.append(footer)
        self.diag.raw(footer)
        return code

    def _hook(self, step: str, variable: str, env: dict[str, str]) -> int | None:
        path = os.environ.get(variable)
        if not path:
            return None
        if not os.path.isabs(path) or not os.path.isfile(path):
            self.output.append(f"##[error]{variable}: {path} is not an absolute path to a file\n")
            return 1
        if not path.endswith(".sh"):
            self.output.append(f"##[error]{variable}: {path} has no .sh extension\n")
            return 1
        return self._run(step, ["bash", "-e", path], env)

    def execute(self) -> dict[str, Any]:
        """Run the hooks and the script.

        Returns:
            ``conclusion``, ``exit_code``, ``log`` and ``steps`` for the report.
        """
        self.workspace.mkdir(parents=True, exist_ok=True)
        self.temp.mkdir(parents=True, exist_ok=True)
        env = self.environment()
        steps: list[dict[str, str]] = []
        conclusion = "success"
        exit_code: int | None = None
        if self.job.get("setup_error"):
            # The real runner prepares the job ("Set up job": actions, containers) before the
            # job-started hook, which runs in "Set up runner"; a set-up failure ends the job
            # with neither hook nor script run.
            self.output.append(f"##[error]{self.job['setup_error']}\n")
            steps.append({"name": "Set up job", "conclusion": "failure"})
            log = "".join(self.output)[-LOG_TAIL:]
            return {"conclusion": "failure", "exit_code": None, "log": log, "steps": steps}
        started = self._hook("Set up runner", "ACTIONS_RUNNER_HOOK_JOB_STARTED", env)
        if started is not None:
            steps.append({"name": "Set up runner", "conclusion": _word(started)})
            if started != 0:
                conclusion = "failure"
        if conclusion == "success" and not (
            self.listener.cancelled or self.listener.job_cancelled
        ):
            script = self.temp / f"job-{self.job['id']}.sh"
            script.write_text(self.job["script"], encoding="utf-8")
            exit_code = self._run("Run script", ["bash", "-e", str(script)], env)
            steps.append({"name": "Run script", "conclusion": _word(exit_code)})
            if exit_code != 0:
                conclusion = "failure"
        completed = self._hook("Complete runner", "ACTIONS_RUNNER_HOOK_JOB_COMPLETED", env)
        if completed is not None:
            steps.append({"name": "Complete runner", "conclusion": _word(completed)})
            if completed != 0:
                conclusion = "failure"
        log = "".join(self.output)[-LOG_TAIL:]
        return {"conclusion": conclusion, "exit_code": exit_code, "log": log, "steps": steps}


def _word(code: int) -> str:
    return "success" if code == 0 else "failure"


def run(argv: list[str]) -> int:
    """``run.sh``: take jobs until done.

    Args:
        argv: the options.

    Returns:
        The exit code.
    """
    parser = argparse.ArgumentParser(prog="run.sh", allow_abbrev=False)
    # Like the real CommandSettings, any option may come as ACTIONS_RUNNER_INPUT_<NAME>; the
    # real runner clears the variable once read, so jobs do not inherit the credential.
    parser.add_argument(
        "--jitconfig", default=os.environ.pop("ACTIONS_RUNNER_INPUT_JITCONFIG", None)
    )
    parser.add_argument("--once", action="store_true", help="accepted and ignored")
    parser.add_argument("--startuptype", default=None, help="accepted and ignored")
    args = parser.parse_args(argv)
    load_env()
    diag = Diag("Runner")
    try:
        settings, credentials = load_settings(args.jitconfig)
    except ValueError as exc:
        say(str(exc), diag)
        return 1
    listener = Listener(settings, credentials, diag)
    signal.signal(signal.SIGTERM, listener.on_signal)
    signal.signal(signal.SIGINT, listener.on_signal)
    try:
        code = listener.loop()
    except StopRequestedError:
        say(f"{_now()}: Runner listener exited after a stop signal.", diag)
        listener.close_session()
        return SUCCESS
    except UpdateAppliedError:
        listener.close_session()
        return RUN_ONCE_RUNNER_UPDATING if settings.get("ephemeral") else RUNNER_UPDATING
    except ServerError as exc:
        if exc.status == 403 and exc.error_code == 1:
            say(f"An error occurred: {exc.message}", diag)
            if os.environ.get("ACTIONS_RUNNER_RETURN_VERSION_DEPRECATED_EXIT_CODE") == "1":
                return VERSION_DEPRECATED
            return TERMINATED_ERROR
        if exc.status == 404:
            say("Runner registration has been deleted from the server, please re-configure.", diag)
        else:
            say(f"The server refused the runner: {exc}", diag)
        return 1
    except ConnectionError as exc:
        say(f"Giving up: {exc}", diag)
        return 2
    say(f"{_now()}: Runner listener exit with {code} return code.", diag)
    return code


def main(argv: list[str]) -> int:
    """Dispatch a subcommand.

    Args:
        argv: ``configure|remove|run`` and its options, or ``--version``.

    Returns:
        The exit code.
    """
    if argv and argv[0] == "--version":
        print(INFO["version"])
        return 0
    commands = {"configure": configure, "remove": remove, "run": run}
    if not argv or argv[0] not in commands:
        print("usage: Runner.Listener configure|remove|run [options] | --version", file=sys.stderr)
        return 1
    return commands[argv[0]](argv[1:])
