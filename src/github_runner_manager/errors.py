# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""Errors of the runner manager, and the one table saying what each kind of error means.

The adapters translate the errors of pylxd and ghapi into these, so that nothing above them
depends on a library's exception types. Each error carries a `kind`, an `ErrorKind`; `KINDS`
says for each kind the command line's exit code, its class (what an operator can do about it)
and the short note the charm's status shows. The command line's exit codes, the Prometheus
exporter's error series, and the charm's status and action messages all read that table: a new
kind is one member and one row.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable, Mapping
from typing import ClassVar

EXIT_OK = 0
EXIT_UNEXPECTED = 1
EXIT_CONFIG = 2
EXIT_GITHUB_AUTH = 3
EXIT_TRANSIENT = 4
EXIT_BUSY = 5


class ErrorKind(str, enum.Enum):
    """The stable short name of an error, as reports, exit codes and the charm see it."""

    CONFIG = "config"
    TOKEN = "token"  # noqa: S105 - the name of an error kind, not a secret
    PERMISSION = "permission"
    PATH = "path"
    BUSY = "busy"
    RATE_LIMIT = "rate-limit"
    IMAGE = "image"
    RUNNER_CREATE = "runner-create"
    LXD = "lxd"
    GITHUB_UNAVAILABLE = "github-unavailable"
    GITHUB_CONFLICT = "github-conflict"
    RUNNER_BINARY = "runner-binary"
    IMAGE_BUILD = "image-build"
    UNEXPECTED = "unexpected"
    GITHUB = "github"
    CORRUPT_RUNNER_DATA = "corrupt-runner-data"
    METRICS = "metrics"
    ERROR = "error"

    def __str__(self) -> str:
        """The kind's name, also in f-strings (`token`, not `ErrorKind.TOKEN`)."""
        return self.value

    @property
    def info(self) -> KindInfo:
        """What this kind means (its row in `KINDS`)."""
        return KINDS[self]


class ErrorClass(str, enum.Enum):
    """What an operator can do about an error: the class of its kind."""

    OPERATOR_FIXABLE = "operator-fixable"
    """Only the operator can fix it (configuration, token, permissions): the unit is Blocked."""
    UNEXPECTED = "unexpected"
    """A bug or an error nobody planned for: see the unit's journal."""
    TRANSIENT = "transient"
    """It may go away by itself (GitHub, LXD, a download): the next run retries."""
    BUSY = "busy"
    """Another run held the lock: try again in a minute."""

    def __str__(self) -> str:
        """The class's name."""
        return self.value


@dataclasses.dataclass(frozen=True)
class KindInfo:
    """One row of the error table.

    Attributes:
        exit_code: the command line's exit code for a run with this error.
        error_class: what an operator can do about it.
        note: the short operator note, if any: what the charm's status says before the error's
            message (or the fix) for an operator-fixable kind, the note its Active status adds
            for a transient or unexpected one.
    """

    exit_code: int
    error_class: ErrorClass
    note: str | None = None


_FIXABLE = ErrorClass.OPERATOR_FIXABLE
_TRANSIENT = ErrorClass.TRANSIENT

# The one table. Its order is the charm's: which operator-fixable error its status names first,
# and the order of the notes it adds for the others.
KINDS: Mapping[ErrorKind, KindInfo] = {
    ErrorKind.TOKEN: KindInfo(EXIT_GITHUB_AUTH, _FIXABLE, "GitHub rejected the token"),
    ErrorKind.PERMISSION: KindInfo(EXIT_GITHUB_AUTH, _FIXABLE),
    ErrorKind.PATH: KindInfo(EXIT_GITHUB_AUTH, _FIXABLE),
    ErrorKind.CONFIG: KindInfo(
        EXIT_CONFIG, _FIXABLE, "the runner manager refused its configuration"
    ),
    ErrorKind.BUSY: KindInfo(EXIT_BUSY, ErrorClass.BUSY),
    ErrorKind.RATE_LIMIT: KindInfo(EXIT_TRANSIENT, _TRANSIENT, "rate limited by GitHub"),
    ErrorKind.IMAGE: KindInfo(EXIT_TRANSIENT, _TRANSIENT, "image missing"),
    ErrorKind.RUNNER_CREATE: KindInfo(EXIT_TRANSIENT, _TRANSIENT, "runner creation failure"),
    ErrorKind.LXD: KindInfo(EXIT_TRANSIENT, _TRANSIENT, "LXD error"),
    ErrorKind.GITHUB_UNAVAILABLE: KindInfo(EXIT_TRANSIENT, _TRANSIENT, "GitHub unavailable"),
    ErrorKind.GITHUB_CONFLICT: KindInfo(EXIT_TRANSIENT, _TRANSIENT, "GitHub refused a change"),
    ErrorKind.RUNNER_BINARY: KindInfo(
        EXIT_TRANSIENT, _TRANSIENT, "runner application unavailable"
    ),
    ErrorKind.IMAGE_BUILD: KindInfo(
        EXIT_TRANSIENT, _TRANSIENT, "the runner image build failed, see the unit's journal"
    ),
    ErrorKind.UNEXPECTED: KindInfo(
        EXIT_UNEXPECTED, ErrorClass.UNEXPECTED, "unexpected error, see the unit's journal"
    ),
    ErrorKind.GITHUB: KindInfo(EXIT_TRANSIENT, _TRANSIENT),
    ErrorKind.CORRUPT_RUNNER_DATA: KindInfo(EXIT_TRANSIENT, _TRANSIENT),
    ErrorKind.METRICS: KindInfo(EXIT_TRANSIENT, _TRANSIENT),
    ErrorKind.ERROR: KindInfo(EXIT_TRANSIENT, _TRANSIENT),
}

# Which class decides a run's exit code when its errors differ: a problem the operator must fix
# first, then a bug, then a transient failure; a busy lock only when nothing else went wrong.
_PRECEDENCE = (
    ErrorClass.OPERATOR_FIXABLE,
    ErrorClass.UNEXPECTED,
    ErrorClass.TRANSIENT,
    ErrorClass.BUSY,
)


def exit_code_of(kinds: Iterable[ErrorKind]) -> int:
    """The command line's exit code for a run that met errors of these kinds.

    Args:
        kinds: the kinds of the run's errors.

    Returns:
        0 without errors; else the exit code of the most pressing class (the lowest code
        within it, so a configuration error wins over a token error).
    """
    infos = [KINDS[ErrorKind(kind)] for kind in kinds]
    for error_class in _PRECEDENCE:
        codes = [info.exit_code for info in infos if info.error_class is error_class]
        if codes:
            return min(codes)
    return EXIT_OK


class RunnerManagerError(Exception):
    """Base class of every error the runner manager raises on purpose."""

    kind: ClassVar[ErrorKind] = ErrorKind.ERROR


class ConfigError(RunnerManagerError):
    """The manager's configuration file is missing, unreadable or invalid."""

    kind = ErrorKind.CONFIG


class LockBusyError(RunnerManagerError):
    """Another run of the manager holds the lock."""

    kind = ErrorKind.BUSY


class GitHubError(RunnerManagerError):
    """An error talking to the GitHub API."""

    kind = ErrorKind.GITHUB

    def __init__(self, message: str, status: int | None = None):
        """Create the error.

        Args:
            message: what went wrong, safe to show an operator (never holds the token).
            status: the HTTP status code, when there was a response.
        """
        super().__init__(message)
        self.status = status


class TokenError(GitHubError):
    """GitHub rejected the token (401): it is wrong, expired or revoked."""

    kind = ErrorKind.TOKEN


class PermissionDeniedError(GitHubError):
    """The token is valid but lacks the scopes or permissions the call needs (403)."""

    kind = ErrorKind.PERMISSION


class PathNotFoundError(GitHubError):
    """The organisation or repository does not exist or the token cannot see it (404)."""

    kind = ErrorKind.PATH


class RateLimitError(GitHubError):
    """The GitHub rate limit is spent; no call is made until it resets."""

    kind = ErrorKind.RATE_LIMIT

    def __init__(self, message: str, reset_at: float | None = None, status: int | None = None):
        """Create the error.

        Args:
            message: what went wrong.
            reset_at: epoch seconds when calls may resume, when GitHub said so.
            status: the HTTP status code, when there was a response.
        """
        super().__init__(message, status)
        self.reset_at = reset_at


class GitHubUnavailableError(GitHubError):
    """GitHub kept failing with server or network errors after the retries."""

    kind = ErrorKind.GITHUB_UNAVAILABLE


class GitHubConflictError(GitHubError):
    """GitHub refused the call because of the resource's state (409 or 422)."""

    kind = ErrorKind.GITHUB_CONFLICT


class LxdError(RunnerManagerError):
    """An LXD call failed or timed out."""

    kind = ErrorKind.LXD


class StorageFullError(LxdError):
    """LXD ran out of space (the storage pool, or a quota) while writing."""


class RunnerBinaryError(RunnerManagerError):
    """The runner application could not be found, downloaded or verified."""

    kind = ErrorKind.RUNNER_BINARY


class RunnerCreateError(RunnerManagerError):
    """A runner could not be created; whatever was made for it has been removed."""

    kind = ErrorKind.RUNNER_CREATE


class ImageBuildError(RunnerManagerError):
    """The runner image could not be built; the previous image stays in use."""

    kind = ErrorKind.IMAGE_BUILD
