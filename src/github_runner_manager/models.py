# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""Domain types shared by the planner, the applier and the adapters."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import re

from .errors import ConfigError


class InstanceType(str, enum.Enum):
    """The kind of LXD instance a runner lives in.

    The values are LXD's own names for the instance types, and the runner label for each.
    """

    CONTAINER = "container"
    VIRTUAL_MACHINE = "virtual-machine"


class InstanceStatus(enum.Enum):
    """What LXD says about an instance, reduced to what the planner needs."""

    RUNNING = "running"
    STOPPED = "stopped"
    OTHER = "other"

    @classmethod
    def from_lxd(cls, status: str) -> InstanceStatus:
        """Map an LXD status string (`Running`, `Stopped`, `Error`, ...) to a status.

        Args:
            status: the LXD status string.

        Returns:
            The matching status; anything that is neither running nor stopped is OTHER.
        """
        lowered = status.lower()
        if lowered == "running":
            return cls.RUNNING
        if lowered == "stopped":
            return cls.STOPPED
        return cls.OTHER


class RunnerState(str, enum.Enum):
    """The state of one runner as the planner sees it, from LXD and GitHub together."""

    BOOTING = "booting"
    """Instance running, not yet online on GitHub, still within the registration grace period."""
    IDLE = "idle"
    """Online on GitHub and waiting for a job."""
    BUSY = "busy"
    """Running a job: never removed unless the operator flushes busy runners."""
    UNHEALTHY = "unhealthy"
    """Instance running but not online on GitHub after the grace period: crashed or stuck."""
    STOPPED = "stopped"
    """Instance no longer running (job done, powered off, or failed) but not yet deleted."""
    FINISHED = "finished"
    """Instance still running but its just-in-time registration is gone from GitHub: the
    runner ran its job (GitHub deleted the ephemeral registration) or was deleted, and the
    instance is powering off. Not capacity: its replacement is created at once."""
    CREATING = "creating"
    """Instance not running and very young: LXD may still be creating it for a run that died;
    it is neither counted nor deleted until the creation grace period has passed."""
    UNLISTED = "unlisted"
    """Instance running but its runner absent from GitHub's listing, with no evidence that it
    finished (its process runs, or GitHub could not be asked about its id): the listing may be
    incomplete. Kept and counted, never deleted on this absence; looked at again next run."""
    STANDBY = "standby"
    """A booted container from the baked image with no registration and no configuration yet:
    not a runner, not counted. The replenisher makes it a runner when one ends, within a second."""
    GITHUB_ONLY = "github-only"
    """Registered on GitHub but without an instance: a ghost to delete when offline."""


@dataclasses.dataclass(frozen=True)
class GitHubRepo:
    """A repository whose runners the manager keeps.

    Attributes:
        owner: the owner (user or organisation).
        repo: the repository name.
    """

    owner: str
    repo: str

    def __str__(self) -> str:
        """Return `owner/repo`."""
        return f"{self.owner}/{self.repo}"

    @property
    def api_scope(self) -> str:
        """The API path prefix of this repository's resources."""
        return f"/repos/{self.owner}/{self.repo}"


@dataclasses.dataclass(frozen=True)
class GitHubOrg:
    """An organisation whose runners the manager keeps.

    Attributes:
        org: the organisation name.
        group: the runner group new runners join.
    """

    org: str
    group: str = "default"

    def __str__(self) -> str:
        """Return the organisation name."""
        return self.org

    @property
    def api_scope(self) -> str:
        """The API path prefix of this organisation's resources."""
        return f"/orgs/{self.org}"


GitHubPath = GitHubRepo | GitHubOrg

# GitHub's rules: owners and organisations are alphanumeric with single inner hyphens (up to 39
# characters); repository names take letters, digits, '.', '-' and '_' (up to 100).
_OWNER_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}$")
_REPO_RE = re.compile(r"^[A-Za-z0-9._-]{1,100}$")


def parse_github_path(path: str, group: str = "default") -> GitHubPath:
    """Parse the `path` option into an organisation or a repository.

    Args:
        path: `org` or `owner/repo`.
        group: the organisation runner group (ignored for repositories).

    Returns:
        The parsed path.

    Raises:
        ConfigError: if the path is empty or malformed.
    """
    path = path.strip()
    if not path:
        raise ConfigError("path is empty: set it to an organisation or to owner/repo")
    parts = path.split("/")
    if len(parts) == 1:
        if not _OWNER_RE.match(parts[0]):
            raise ConfigError(f"path {path!r} is not a valid organisation name")
        return GitHubOrg(org=parts[0], group=group.strip() or "default")
    if len(parts) == 2 and _OWNER_RE.match(parts[0]) and _REPO_RE.match(parts[1]):
        if parts[1] in (".", ".."):
            raise ConfigError(f"path {path!r} is not a valid repository")
        return GitHubRepo(owner=parts[0], repo=parts[1])
    raise ConfigError(f"path {path!r} must be an organisation or owner/repo")


@dataclasses.dataclass(frozen=True)
class RunnerInstance:
    """An LXD instance of this manager, as listed from LXD.

    Attributes:
        name: the instance name, which is also the GitHub runner name.
        instance_type: container or virtual machine.
        status: running, stopped or other.
        created_at: when the manager created it (from its tag).
        config_hash: the hash of the runner configuration it was created with.
        registered_first: whether its GitHub registration was made before the instance (JIT),
            so that a missing registration means the runner is finished, not still starting.
        runner_id: GitHub's id of its runner, when known at creation (JIT).
        github_url: the GitHub URL it was registered with (None: created before it was noted).
        github_path: the organisation or repository it was registered with.
        awaiting_start: created under the manager's lock by the replenisher, which starts it
            after releasing the lock, and never started yet (see `planner.in_creation`).
        standby: a booted container with no registration yet, which the replenisher hands a
            runner's configuration when one ends (see `RunnerManager.replenish`); not a runner.
    """

    name: str
    instance_type: InstanceType
    status: InstanceStatus
    created_at: datetime.datetime
    config_hash: str
    registered_first: bool = False
    runner_id: int | None = None
    github_url: str | None = None
    github_path: str | None = None
    awaiting_start: bool = False
    standby: bool = False

    @property
    def github_target(self) -> tuple[str, str] | None:
        """Where its runner is registered, as `(url, path)`; None when not noted."""
        if self.github_url is None or self.github_path is None:
            return None
        return github_target(self.github_url, self.github_path)


def github_target(url: str, path: str) -> tuple[str, str]:
    """A comparable `(url, path)` pair naming where runners register.

    GitHub compares owner and repository names case-insensitively.

    Args:
        url: the GitHub URL.
        path: `org` or `owner/repo`.

    Returns:
        The normalised pair.
    """
    return url.strip().rstrip("/").lower(), path.strip().lower()


@dataclasses.dataclass(frozen=True)
class GitHubRunner:
    """A self-hosted runner as GitHub lists it.

    Attributes:
        id: GitHub's runner id.
        name: the runner name.
        online: whether GitHub sees the runner process connected.
        busy: whether the runner is running a job.
        labels: the runner's labels.
    """

    id: int
    name: str
    online: bool
    busy: bool
    labels: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class RunnerApplication:
    """A runner application download GitHub offers.

    Attributes:
        os: operating system (`linux`).
        architecture: `x64` or `arm64`.
        download_url: where to download the tarball.
        filename: the tarball's file name (it carries the version).
        sha256_checksum: the tarball's SHA-256, hex.
    """

    os: str
    architecture: str
    download_url: str
    filename: str
    sha256_checksum: str

    @property
    def version(self) -> str:
        """The runner version parsed from the file name, or the file name itself."""
        match = re.search(r"(\d+\.\d+\.\d+)", self.filename)
        return match.group(1) if match else self.filename


@dataclasses.dataclass(frozen=True)
class Registration:
    """How a new runner registers with GitHub.

    Exactly one of the two fields is set.

    Attributes:
        jit_config: the encoded just-in-time configuration (the runner needs no token).
        registration_token: a short-lived registration token for `config.sh`.
        runner_id: GitHub's id for the runner when the JIT call created it.
    """

    jit_config: str | None = None
    registration_token: str | None = None
    runner_id: int | None = None

    def __repr__(self) -> str:
        """Represent the registration without its secrets."""
        kind = "jit" if self.jit_config else "registration-token"
        return f"Registration({kind}, runner_id={self.runner_id})"
