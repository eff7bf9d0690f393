# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""An in-process runner speaking the emulator's private runner protocol, for fast tests.

The stand-in runner application (``runner_app/``) speaks the same protocol from a real process;
this class lets a test play a runner step by step without starting one::

    runner = SimulatedRunner.register(emu.url, f"{emu.url}/owner/repo", reg_token, "r1")
    runner.open_session()           # the runner shows online
    message = runner.poll()         # a job, or None
    runner.complete(message["job"]["id"], "success")
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from typing import Any


class RunnerProtocolError(Exception):
    """The emulator refused a runner-protocol request."""

    def __init__(self, status: int, body: Any):
        super().__init__(f"{status}: {body}")
        self.status = status
        self.body = body


def _call(base_url: str, method: str, path: str, body: Any = None, timeout: float = 30.0) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"{base_url}/_emulator/runner{path}", data=data, method=method
    )
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            raw = answer.read()
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            detail: Any = json.loads(raw)
        except ValueError:
            detail = raw.decode(errors="replace")
        raise RunnerProtocolError(exc.code, detail) from None
    return json.loads(raw) if raw else None


def decode_jit_config(encoded_jit_config: str) -> dict[str, Any]:
    """Open a just-in-time configuration: the runner's files, each decoded.

    Args:
        encoded_jit_config: what ``generate-jitconfig`` returned (base64 JSON of base64 JSON
            files).

    Returns:
        Each file's name (``.runner``, ``.credentials``) and its decoded JSON content.
    """
    files = json.loads(base64.b64decode(encoded_jit_config))
    return {name: json.loads(base64.b64decode(content)) for name, content in files.items()}


class SimulatedRunner:
    """A runner process played by the test.

    Args:
        base_url: the emulator base URL.
        runner_id: the registered runner's id.
        secret: its credential.
    """

    def __init__(self, base_url: str, runner_id: int, secret: str):
        self.base_url = base_url.rstrip("/")
        self.runner_id = runner_id
        self.secret = secret
        self.session_id: str | None = None
        self.timings: dict[str, float] = {}

    @classmethod
    def register(
        cls,
        base_url: str,
        url: str,
        token: str,
        name: str,
        labels: Iterable[str] = (),
        ephemeral: bool = True,
        **options: Any,
    ) -> SimulatedRunner:
        """Register with a registration token, as ``config.sh`` does.

        Args:
            base_url: the emulator base URL.
            url: the repository or organisation URL (``http://127.0.0.1:PORT/owner/repo``).
            token: a registration token.
            name: the runner name.
            labels: custom labels.
            ephemeral: register an ephemeral runner.
            options: more registration fields (``replace``, ``runner_group``, ``arch``...).

        Returns:
            The runner.
        """
        body = {
            "url_path": urllib.parse.urlsplit(url).path,
            "token": token,
            "name": name,
            # config.sh adds the system labels itself (ConfigurationManager.CreateNewAgent).
            "labels": [
                *(
                    []
                    if options.get("no_default_labels")
                    else ["self-hosted", "Linux", str(options.get("arch", "x64")).upper()]
                ),
                *labels,
            ],
            "ephemeral": ephemeral,
            **options,
        }
        answer = _call(base_url, "POST", "/register", body)
        credentials = answer["files"][".credentials"]["data"]
        return cls(base_url, credentials["runnerId"], credentials["secret"])

    @classmethod
    def from_jit_config(cls, base_url: str, encoded_jit_config: str) -> SimulatedRunner:
        """Take the credentials out of a just-in-time configuration.

        Args:
            base_url: the emulator base URL.
            encoded_jit_config: what ``generate-jitconfig`` returned.

        Returns:
            The runner.
        """
        credentials = decode_jit_config(encoded_jit_config)[".credentials"]["data"]
        return cls(base_url, credentials["runnerId"], credentials["secret"])

    def open_session(self) -> dict[str, Any]:
        """Connect: the runner shows online while it keeps polling or heart-beating.

        Returns:
            The session (``session_id``, ``poll_wait``, ``heartbeat_interval``).
        """
        answer = _call(
            self.base_url,
            "POST",
            "/sessions",
            {"runner_id": self.runner_id, "secret": self.secret, "version": "simulated"},
        )
        self.session_id = answer["session_id"]
        self.timings = {k: answer[k] for k in ("poll_wait", "heartbeat_interval")}
        return answer

    def poll(self, wait: float = 0.0) -> dict[str, Any] | None:
        """Ask for a job, waiting up to ``wait`` seconds.

        Args:
            wait: the long-poll time.

        Returns:
            The job message (``{"job": {...}}``) or None.
        """
        query = urllib.parse.urlencode({"wait": wait})
        return _call(self.base_url, "GET", f"/sessions/{self.session_id}/message?{query}")

    def heartbeat(self) -> None:
        """Keep the session alive while busy."""
        _call(self.base_url, "POST", f"/sessions/{self.session_id}/heartbeat", {})

    def close_session(self) -> None:
        """Disconnect: the runner shows offline at once."""
        _call(self.base_url, "DELETE", f"/sessions/{self.session_id}")

    def complete(
        self, job_id: int, conclusion: str = "success", exit_code: int = 0, log: str = ""
    ) -> dict[str, Any]:
        """Report a job's result.

        Args:
            job_id: the job.
            conclusion: ``success``, ``failure`` or ``cancelled``.
            exit_code: the script's exit code.
            log: the job output.

        Returns:
            ``deleted``: whether the emulator deleted the (ephemeral) runner.
        """
        body = {
            "runner_id": self.runner_id,
            "secret": self.secret,
            "conclusion": conclusion,
            "exit_code": exit_code,
            "log": log,
            "steps": [{"name": "Run script", "conclusion": conclusion}],
        }
        return _call(self.base_url, "POST", f"/jobs/{job_id}/complete", body)

    def remove(self, url: str, remove_token: str) -> None:
        """Deregister with a remove token, as ``config.sh remove`` does.

        Args:
            url: the repository or organisation URL the runner registered with.
            remove_token: a remove token.
        """
        body = {
            "url_path": urllib.parse.urlsplit(url).path,
            "token": remove_token,
            "runner_id": self.runner_id,
        }
        _call(self.base_url, "POST", "/remove", body)
