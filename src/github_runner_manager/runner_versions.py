# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""How old the runners' application version is, against the newest one GitHub offers.

GitHub stops queueing jobs to a self-hosted runner whose application is more than 30 days behind
an available update. The manager downloads a new runner application as soon as GitHub lists it
and replaces idle runners with it, so old runners only linger when something goes wrong (the
download keeps failing, runners stay busy, the new version cannot be verified). To tell how long
that has lasted, the manager keeps a small ledger in its state directory:

- when it first saw each runner version listed by GitHub (the clock of "a newer version is
  available" starts there, and survives restarts of the manager);
- which runner version each configuration hash was created with (an instance carries its hash,
  and the hash covers the tarball's checksum, so the hash names the version it runs).

The ledger is only ever a hint for metrics: a missing or corrupt ledger starts afresh.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from collections.abc import Iterable
from pathlib import Path

from .utils import atomic_write

logger = logging.getLogger(__name__)

UNKNOWN = "unknown"
_VERSION_RE = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")


def version_key(version: str) -> tuple[int, ...] | None:
    """Order runner versions (`2.330.0`) numerically.

    Args:
        version: a version string.

    Returns:
        The numeric parts, or None for anything that is not `X.Y.Z`.
    """
    match = _VERSION_RE.match(version)
    return tuple(int(part) for part in match.groups()) if match else None


def is_older(version: str, than: str) -> bool:
    """Whether a runner version is older than another (unparsable versions are never older).

    Args:
        version: the version a runner runs.
        than: the newest version.

    Returns:
        True only when both are `X.Y.Z` and the first is lower.
    """
    mine, newest = version_key(version), version_key(than)
    return mine is not None and newest is not None and mine < newest


@dataclasses.dataclass(frozen=True)
class VersionAge:
    """The runner versions after a run, against the newest one offered.

    Attributes:
        latest: the newest runner version GitHub offers (None: never listed yet).
        runners: runners per version they run (`unknown` when the ledger cannot tell).
        outdated: runners on a version older than `latest`.
        newer_since: when the manager first saw a version newer than the oldest one still
            running (unix seconds); None when no runner is outdated.
    """

    latest: str | None
    runners: dict[str, int]
    outdated: int
    newer_since: float | None


class VersionLedger:
    """The persisted first sightings of runner versions, and the version of each config hash."""

    def __init__(self, path: Path):
        """Create the ledger.

        Args:
            path: its JSON file in the manager's state directory.
        """
        self.path = path

    def _load(self) -> tuple[dict[str, float], dict[str, str], str | None]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            seen = {str(k): float(v) for k, v in data.get("first_seen", {}).items()}
            hashes = {str(k): str(v) for k, v in data.get("hashes", {}).items()}
            latest = data.get("latest")
            return seen, hashes, str(latest) if latest else None
        except FileNotFoundError:
            return {}, {}, None
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            logger.warning(
                "the runner version ledger %s is unreadable (%s); starting afresh", self.path, exc
            )
            return {}, {}, None

    def update(
        self,
        *,
        offered: str | None,
        current_version: str | None,
        current_hashes: Iterable[str],
        instance_hashes: Iterable[str],
        now: float,
    ) -> VersionAge:
        """Record this run's sightings and count the runners by version.

        Args:
            offered: the version GitHub lists now (None: GitHub could not be asked).
            current_version: the version new runners are created with (the cached tarball).
            current_hashes: the configuration hashes of new runners (created with
                `current_version`).
            instance_hashes: the configuration hash of every runner instance after the run.
            now: the current unix time.

        Returns:
            The runner versions and their age.
        """
        seen, hashes, latest = self._load()
        for version in (offered, current_version):
            if version and version not in seen:
                seen[version] = now
        latest = _latest(latest, offered, current_version)
        current_hashes = list(current_hashes)
        if current_version:
            for config_hash in current_hashes:
                hashes[config_hash] = current_version
        instance_hashes = list(instance_hashes)
        runners: dict[str, int] = {}
        for config_hash in instance_hashes:
            version = hashes.get(config_hash, UNKNOWN)
            runners[version] = runners.get(version, 0) + 1
        outdated_versions = [v for v in runners if latest and is_older(v, latest)]
        newer_since = _newer_since(outdated_versions, latest, seen, now)
        # Forget what no instance needs any more: hashes of deleted runners, versions older
        # than every version still running or offered.
        live = set(instance_hashes) | set(current_hashes)
        hashes = {h: v for h, v in hashes.items() if h in live}
        seen = _forget_older(seen, [*runners, latest or ""])
        document = {"latest": latest, "first_seen": seen, "hashes": hashes}
        try:
            atomic_write(self.path, json.dumps(document, sort_keys=True).encode(), mode=0o644)
        except OSError as exc:
            logger.warning("cannot write the runner version ledger %s: %s", self.path, exc)
        return VersionAge(
            latest=latest,
            runners=dict(sorted(runners.items())),
            outdated=sum(runners[v] for v in outdated_versions),
            newer_since=newer_since,
        )


def _latest(recorded: str | None, offered: str | None, current: str | None) -> str | None:
    """The latest version known: what GitHub offers, else the record, never below the cache.

    Args:
        recorded: the latest version recorded by an earlier run.
        offered: the version GitHub lists now (None: GitHub could not be asked).
        current: the version new runners are created with.

    Returns:
        The latest version, or None when none is known.
    """
    latest = offered or recorded
    if latest is None or (current and is_older(latest, current)):
        latest = current
    return latest


def _newer_since(
    outdated: list[str], latest: str | None, seen: dict[str, float], now: float
) -> float | None:
    """Since when a version newer than the oldest outdated runner's has been seen.

    Args:
        outdated: the versions of the outdated runners.
        latest: the latest version known.
        seen: when each version was first seen.
        now: the current unix time (when no newer version was recorded).

    Returns:
        The unix time, or None when no runner is outdated.
    """
    if not outdated or not latest:
        return None
    oldest = min(outdated, key=lambda v: version_key(v) or ())
    newer = [t for v, t in seen.items() if is_older(oldest, v)]
    return min(newer) if newer else now


def _forget_older(seen: dict[str, float], kept: list[str]) -> dict[str, float]:
    """Drop the sightings of versions older than every version still kept.

    Args:
        seen: when each version was first seen.
        kept: the versions still running or offered (unparsable ones are ignored).

    Returns:
        The sightings worth keeping.
    """
    floor = [v for v in kept if version_key(v)]
    if not floor:
        return seen
    oldest_kept = min(floor, key=lambda v: version_key(v) or ())
    return {v: t for v, t in seen.items() if not is_older(v, oldest_kept)}
