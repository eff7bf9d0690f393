# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""Builders for GitHub-shaped JSON objects and error bodies.

Everything the emulator serves under ``/api/v3`` is built here, so that the shapes follow GitHub's
OpenAPI description in one place (the functional conformance test validates them against it).
"""

from __future__ import annotations

import datetime
import hashlib
from typing import Any

DOCS = "https://docs.github.com/rest"
DOCS_RUNNERS = "https://docs.github.com/rest/actions/self-hosted-runners"
DOCS_RATE_LIMIT = (
    "https://docs.github.com/rest/using-the-rest-api/rate-limits-for-the-rest-api"
    "#about-secondary-rate-limits"
)
DOCS_PRIMARY_RATE_LIMIT = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"


def iso(timestamp: float) -> str:
    """Format an epoch timestamp the way GitHub formats job and run times (UTC, ``Z``).

    Args:
        timestamp: seconds since the epoch.

    Returns:
        The timestamp as ``YYYY-MM-DDTHH:MM:SSZ``.
    """
    moment = datetime.datetime.fromtimestamp(timestamp, tz=datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_offset(timestamp: float) -> str:
    """Format an epoch timestamp the way GitHub formats token expiry (milliseconds, offset).

    Args:
        timestamp: seconds since the epoch.

    Returns:
        The timestamp as ``YYYY-MM-DDTHH:MM:SS.mmm+00:00``.
    """
    moment = datetime.datetime.fromtimestamp(timestamp, tz=datetime.timezone.utc)
    return moment.isoformat(timespec="milliseconds")


def node_id(kind: str, number: int) -> str:
    """A stable opaque GraphQL-style node id for an object.

    Args:
        kind: the object kind (for example ``CheckRun``).
        number: the object's database id.

    Returns:
        An opaque string.
    """
    digest = hashlib.sha256(f"{kind}:{number}".encode()).hexdigest()[:20]
    return f"{kind[:2].upper()}_{digest}"


def error_body(status: int, message: str, documentation_url: str = DOCS) -> dict[str, Any]:
    """GitHub's ``basic-error`` body.

    Args:
        status: the HTTP status.
        message: the human-readable message.
        documentation_url: the documentation link GitHub adds.

    Returns:
        The error object.
    """
    return {"message": message, "documentation_url": documentation_url, "status": str(status)}


def user(base: str, login: str, user_id: int, kind: str = "User") -> dict[str, Any]:
    """GitHub's ``simple-user`` object.

    Args:
        base: the emulator base URL (``http://127.0.0.1:PORT``).
        login: the login.
        user_id: the account id.
        kind: ``User`` or ``Organization``.

    Returns:
        The user object.
    """
    api = f"{base}/api/v3/users/{login}"
    return {
        "login": login,
        "id": user_id,
        "node_id": node_id(kind, user_id),
        "avatar_url": f"{base}/avatars/{login}",
        "gravatar_id": "",
        "url": api,
        "html_url": f"{base}/{login}",
        "followers_url": f"{api}/followers",
        "following_url": f"{api}/following{{/other_user}}",
        "gists_url": f"{api}/gists{{/gist_id}}",
        "starred_url": f"{api}/starred{{/owner}}{{/repo}}",
        "subscriptions_url": f"{api}/subscriptions",
        "organizations_url": f"{api}/orgs",
        "repos_url": f"{api}/repos",
        "events_url": f"{api}/events{{/privacy}}",
        "received_events_url": f"{api}/received_events",
        "type": kind,
        "site_admin": False,
        "user_view_type": "public",
    }


_REPO_URL_SUFFIXES = {
    "archive_url": "/{archive_format}{/ref}",
    "assignees_url": "/assignees{/user}",
    "blobs_url": "/git/blobs{/sha}",
    "branches_url": "/branches{/branch}",
    "collaborators_url": "/collaborators{/collaborator}",
    "comments_url": "/comments{/number}",
    "commits_url": "/commits{/sha}",
    "compare_url": "/compare/{base}...{head}",
    "contents_url": "/contents/{+path}",
    "contributors_url": "/contributors",
    "deployments_url": "/deployments",
    "downloads_url": "/downloads",
    "events_url": "/events",
    "forks_url": "/forks",
    "git_commits_url": "/git/commits{/sha}",
    "git_refs_url": "/git/refs{/sha}",
    "git_tags_url": "/git/tags{/sha}",
    "hooks_url": "/hooks",
    "issue_comment_url": "/issues/comments{/number}",
    "issue_events_url": "/issues/events{/number}",
    "issues_url": "/issues{/number}",
    "keys_url": "/keys{/key_id}",
    "labels_url": "/labels{/name}",
    "languages_url": "/languages",
    "merges_url": "/merges",
    "milestones_url": "/milestones{/number}",
    "notifications_url": "/notifications{?since,all,participating}",
    "pulls_url": "/pulls{/number}",
    "releases_url": "/releases{/id}",
    "stargazers_url": "/stargazers",
    "statuses_url": "/statuses/{sha}",
    "subscribers_url": "/subscribers",
    "subscription_url": "/subscription",
    "tags_url": "/tags",
    "teams_url": "/teams",
    "trees_url": "/git/trees{/sha}",
}


def minimal_repository(
    base: str, full_name: str, repo_id: int, owner_id: int, owner_is_org: bool
) -> dict[str, Any]:
    """GitHub's ``minimal-repository`` object.

    Args:
        base: the emulator base URL.
        full_name: ``owner/repo``.
        repo_id: the repository id.
        owner_id: the owner's account id.
        owner_is_org: whether the owner is an organisation.

    Returns:
        The repository object.
    """
    owner, name = full_name.split("/", 1)
    api = f"{base}/api/v3/repos/{full_name}"
    repo: dict[str, Any] = {
        "id": repo_id,
        "node_id": node_id("Repository", repo_id),
        "name": name,
        "full_name": full_name,
        "owner": user(base, owner, owner_id, "Organization" if owner_is_org else "User"),
        "private": True,
        "html_url": f"{base}/{full_name}",
        "description": None,
        "fork": False,
        "url": api,
    }
    for key, suffix in _REPO_URL_SUFFIXES.items():
        repo[key] = api + suffix
    return repo


def simple_commit(sha: str, timestamp: float, message: str) -> dict[str, Any]:
    """GitHub's ``simple-commit`` object for a run's head commit.

    Args:
        sha: the commit sha.
        timestamp: the commit time.
        message: the commit message.

    Returns:
        The commit object.
    """
    person = {"name": "Emulator", "email": "emulator@example.invalid"}
    return {
        "id": sha,
        "tree_id": hashlib.sha1(sha.encode(), usedforsecurity=False).hexdigest(),
        "message": message,
        "timestamp": iso(timestamp),
        "author": dict(person),
        "committer": dict(person),
    }
