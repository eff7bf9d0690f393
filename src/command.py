# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""Running the host's commands: one runner tests replace with a fake, and where tools live.

The host side (`host`, `storage`, `firewall`) drives LXD through its `lxc` and `lxd` commands
and the system's tools (`mount`, `mkfs.btrfs`, `ip`...), never through a library: every command
goes through a `CommandRunner`, and every failure is a `HostError` the next event retries. The
application's LXD objects (its storage pool and firewall ACL) are named here, once, for both.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import yaml

# Where `lxc` and `lxd` live, snap first.
BINARY_DIRS = (Path("/snap/bin"), Path("/usr/bin"))
# Where system tools live, merged /usr first (Debian and Ubuntu put them in /sbin or /bin).
TOOL_DIRS = (Path("/usr/sbin"), Path("/usr/bin"), Path("/sbin"), Path("/bin"))
COMMAND_TIMEOUT = 300.0
# Names of LXD network ACLs and storage pools: 1 to 63 letters, digits and hyphens.
LXD_NAME_MAX = 63
SCOPED_PREFIX = "github-runner-"


class HostError(Exception):
    """Preparing the host failed: a command failed or timed out, or LXD is in a strange state."""


class CommandError(HostError):
    """A command exited with an error.

    Attributes:
        returncode: the exit code.
        stderr: what it printed on stderr.
    """

    def __init__(self, message: str, returncode: int, stderr: str):
        """Create the error.

        Args:
            message: what failed.
            returncode: the exit code.
            stderr: what it printed on stderr.
        """
        super().__init__(message)
        self.returncode = returncode
        self.stderr = stderr


class CommandRunner(Protocol):
    """Runs a command and returns its standard output (`run_command` is the real one)."""

    def __call__(
        self, argv: Sequence[str], *, input_text: str | None = None, timeout: float = ...
    ) -> str:
        """Run a command.

        Args:
            argv: the command, with an absolute path first.
            input_text: what to send on standard input.
            timeout: seconds before the command is killed.

        Returns:
            Its standard output.

        Raises:
            CommandError: if it exits with an error.
            HostError: if it cannot be started or times out.
        """


def run_command(
    argv: Sequence[str], *, input_text: str | None = None, timeout: float = COMMAND_TIMEOUT
) -> str:
    """The `CommandRunner` of the real host: a subprocess whose output is captured.

    Args:
        argv: see `CommandRunner`.
        input_text: see `CommandRunner`.
        timeout: see `CommandRunner`.

    Returns:
        see `CommandRunner`.

    Raises:
        CommandError: see `CommandRunner`.
        HostError: see `CommandRunner`.
    """
    command = " ".join(argv[:3])
    try:
        result = subprocess.run(
            list(argv),
            input=input_text,
            capture_output=True,
            text=True,
            check=True,
            timeout=timeout,
        )
    except subprocess.CalledProcessError as exc:
        stderr = (exc.stderr or "").strip()
        raise CommandError(
            f"`{command}` failed with exit code {exc.returncode}: {stderr[-500:]}",
            exc.returncode,
            stderr,
        ) from None
    except subprocess.TimeoutExpired:
        raise HostError(f"`{command}` did not finish within {timeout:.0f}s") from None
    except OSError as exc:
        raise HostError(f"cannot run `{command}`: {exc}") from None
    return result.stdout


def parse_output(output: str, argv: Sequence[str], kind: type = dict) -> Any:
    """Parse what `lxc` printed (YAML or JSON) into the document the caller expects.

    Args:
        output: the command's standard output.
        argv: the command (for the message).
        kind: `dict` or `list`, what the document must be; empty output gives an empty one.

    Returns:
        The document.

    Raises:
        HostError: if the output is not a document of that kind.
    """
    document: Any = None
    if not output.strip():
        document = kind()
    else:
        # JSON first: `lxc query` indents with tabs, which YAML refuses.
        with contextlib.suppress(ValueError):
            document = json.loads(output)
        if document is None:
            with contextlib.suppress(yaml.YAMLError):
                document = yaml.safe_load(output)
    if not isinstance(document, kind):
        command = " ".join([Path(argv[0]).name, *argv[1:3]])
        raise HostError(
            f"`{command}` printed something that is not a {kind.__name__} in YAML or JSON "
            f"({' '.join(output.split())[:80]!r}): check that LXD works (`lxc list`)"
        )
    return document


def find_tool(name: str, directories: Sequence[Path] = TOOL_DIRS) -> str | None:
    """Find a system tool.

    Args:
        name: the command, e.g. `mkfs.btrfs`.
        directories: where to look, in order.

    Returns:
        Its absolute path, or None when it is in none of them.
    """
    for directory in directories:
        path = directory / name
        if path.exists():
            return str(path)
    return None


def lxd_binaries(directories: Sequence[Path] = BINARY_DIRS) -> tuple[str, str] | None:
    """Find the `lxc` and `lxd` commands of one installation.

    Args:
        directories: where to look, in order (snap first).

    Returns:
        Their absolute paths, or None when no directory holds both.
    """
    for directory in directories:
        lxc, lxd = directory / "lxc", directory / "lxd"
        if lxc.exists() and lxd.exists():
            return str(lxc), str(lxd)
    return None


def lxc_command(directories: Sequence[Path] = BINARY_DIRS) -> str:
    """Find the `lxc` command.

    Args:
        directories: where to look, in order (snap first).

    Returns:
        Its absolute path.

    Raises:
        HostError: if LXD is not installed.
    """
    binaries = lxd_binaries(directories)
    if binaries is None:
        raise HostError("LXD is not installed")
    return binaries[0]


def scoped_name(app: str) -> str:
    """The name of an application's own LXD objects (its storage pool and firewall ACL).

    Two applications on one machine (one per repository, say) must not share them: each
    application's denylist and runner storage are its own.

    Args:
        app: the Juju application name.

    Returns:
        `github-runner-<app>`, made of letters, digits and hyphens; an application name too long
        for LXD's 63 characters is cut and ends with a hash of the whole name, so that two long
        names stay apart.
    """
    safe = re.sub(r"[^A-Za-z0-9-]+", "-", app).strip("-") or "app"
    name = f"{SCOPED_PREFIX}{safe}"
    if len(name) <= LXD_NAME_MAX:
        return name
    digest = hashlib.sha256(app.encode()).hexdigest()[:8]
    return f"{name[: LXD_NAME_MAX - len(digest) - 1].rstrip('-')}-{digest}"
