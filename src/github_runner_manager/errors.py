# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""Errors of the runner manager.

The adapters translate the errors of pylxd and ghapi into these, so that nothing above them
depends on a library's exception types. Each error carries a `kind`, a stable short name that
reports and the charm use to choose a status.
"""

from __future__ import annotations


class RunnerManagerError(Exception):
    """Base class of every error the runner manager raises on purpose."""

    kind = "error"


class ConfigError(RunnerManagerError):
    """The manager's configuration file is missing, unreadable or invalid."""

    kind = "config"


class LockBusyError(RunnerManagerError):
    """Another run of the manager holds the lock."""

    kind = "busy"


class GitHubError(RunnerManagerError):
    """An error talking to the GitHub API."""

    kind = "github"

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

    kind = "token"


class PermissionDeniedError(GitHubError):
    """The token is valid but lacks the scopes or permissions the call needs (403)."""

    kind = "permission"


class PathNotFoundError(GitHubError):
    """The organisation or repository does not exist or the token cannot see it (404)."""

    kind = "path"


class RateLimitError(GitHubError):
    """The GitHub rate limit is spent; no call is made until it resets."""

    kind = "rate-limit"

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

    kind = "github-unavailable"


class GitHubConflictError(GitHubError):
    """GitHub refused the call because of the resource's state (409 or 422)."""

    kind = "github-conflict"


class LxdError(RunnerManagerError):
    """An LXD call failed or timed out."""

    kind = "lxd"


class StorageFullError(LxdError):
    """LXD ran out of space (the storage pool, or a quota) while writing."""


class RunnerBinaryError(RunnerManagerError):
    """The runner application could not be found, downloaded or verified."""

    kind = "runner-binary"


class RunnerCreateError(RunnerManagerError):
    """A runner could not be created; whatever was made for it has been removed."""

    kind = "runner-create"


class ImageBuildError(RunnerManagerError):
    """The runner image could not be built; the previous image stays in use."""

    kind = "image-build"
