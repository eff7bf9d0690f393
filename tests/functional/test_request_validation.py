# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""The emulator holds every request it receives to GitHub's OpenAPI description.

Malformed requests are sent on purpose here: each is refused, recorded with its operation, rule
and value, and listed in the emulator's stats. The test then takes its violations so that the
suite-wide check (conftest's `no_request_violations`) stays for requests nobody meant to break.
The manager's own GitHub client is driven through every call it makes and breaks no rule.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from github_runner_manager.github import GhApiClient
from github_runner_manager.models import parse_github_path
from tests.github_emulator import Emulator

from .conftest import TEST_ORG, TEST_REPO, TEST_TOKEN

RUNNERS = f"/repos/{TEST_REPO}/actions/runners"
JIT_BODY = {"name": "jit-one", "runner_group_id": 1, "labels": ["self-hosted"]}


def send(
    emulator: Emulator,
    method: str,
    path: str,
    body: bytes | None = None,
    content_type: str | None = None,
) -> tuple[int, Any]:
    request = urllib.request.Request(emulator.api_url + path, data=body, method=method)
    request.add_header("Authorization", f"token {TEST_TOKEN}")
    if content_type is not None:
        request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            raw = answer.read()
            return answer.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        return exc.code, json.loads(raw) if raw else None


@pytest.mark.parametrize(
    ("method", "path", "body", "content_type", "status", "rule", "operation", "value"),
    [
        # The JIT body labelled as a form, as ghapi 1.x sends it without a Content-Type.
        ("POST", f"{RUNNERS}/generate-jitconfig", json.dumps(JIT_BODY).encode(),
         "application/x-www-form-urlencoded", 422, "content-type",
         "POST /repos/{owner}/{repo}/actions/runners/generate-jitconfig",
         "application/x-www-form-urlencoded"),
        # A body that breaks the schema: labels must not be empty, the group id is an integer.
        ("POST", f"/orgs/{TEST_ORG}/actions/runners/generate-jitconfig",
         b'{"name": "x", "runner_group_id": "1", "labels": []}', "application/json", 422,
         "body", "POST /orgs/{org}/actions/runners/generate-jitconfig", '"labels": []'),
        # A required body missing.
        ("POST", f"{RUNNERS}/generate-jitconfig", None, None, 422, "body",
         "POST /repos/{owner}/{repo}/actions/runners/generate-jitconfig", "<empty>"),
        # A body where the operation takes none.
        ("POST", f"{RUNNERS}/registration-token", b"{}", "application/json", 422, "body",
         "POST /repos/{owner}/{repo}/actions/runners/registration-token", "{}"),
        # A path parameter of the wrong type.
        ("DELETE", f"{RUNNERS}/abc", None, None, 422, "path-parameter",
         "DELETE /repos/{owner}/{repo}/actions/runners/{runner_id}", "runner_id=abc"),
        # A query parameter of the wrong type, and one the operation does not declare.
        ("GET", f"{RUNNERS}?per_page=many", None, None, 422, "query-parameter",
         "GET /repos/{owner}/{repo}/actions/runners", "per_page=many"),
        ("GET", f"{RUNNERS}?state=idle", None, None, 422, "query-parameter",
         "GET /repos/{owner}/{repo}/actions/runners", "state=idle"),
        # A method the path does not accept, and a path GitHub does not have.
        ("PUT", f"{RUNNERS}/1", None, None, 404, "method",
         "PUT /repos/{owner}/{repo}/actions/runners/{runner_id}", "PUT"),
        ("GET", f"/repos/{TEST_REPO}/actions/robots", None, None, 404, "path",
         f"GET /repos/{TEST_REPO}/actions/robots", f"/repos/{TEST_REPO}/actions/robots"),
    ],
    ids=["form-labelled-json", "schema", "missing-body", "unexpected-body", "path-type",
         "query-type", "query-undeclared", "method", "path"],
)  # fmt: skip
def test_malformed_request_is_refused_and_recorded(
    emulator: Emulator,
    method: str,
    path: str,
    body: bytes | None,
    content_type: str | None,
    status: int,
    rule: str,
    operation: str,
    value: str,
) -> None:
    """A request that breaks GitHub's description is refused and recorded.

    arrange: an emulator.
    act: send a request breaking one rule.
    assert: refused; the violation names the operation, the rule and the value; in the stats.
    """
    code, answer = send(emulator, method, path, body, content_type)

    stats = emulator.control.stats()
    violations = emulator.requests.take()

    assert code == status, answer
    assert [(v.operation, v.rule) for v in violations][:1] == [(operation, rule)], violations
    assert value in violations[0].value
    assert violations[0].message().startswith(f"{operation}: {rule} rule broken by ")
    if status == 422:
        assert any(rule in error for error in answer["errors"]), answer
    assert stats["request_validation"] is True
    assert [v["rule"] for v in stats["request_violations"]] == [v.rule for v in violations]
    assert emulator.control.jobs() == [] and emulator.control.runners() == [], "nothing changed"


def test_well_formed_requests_pass(emulator: Emulator) -> None:
    """Well-formed requests pass the emulator's validation.

    arrange: an emulator.
    act: make the same calls, well formed.
    assert: each is answered and no violation is recorded.
    """
    assert send(emulator, "GET", f"{RUNNERS}?per_page=100&page=1")[0] == 200
    code, jit = send(
        emulator, "POST", f"{RUNNERS}/generate-jitconfig", json.dumps(JIT_BODY).encode(),
        "application/json; charset=utf-8",
    )  # fmt: skip
    assert code == 201, jit
    assert send(emulator, "DELETE", f"{RUNNERS}/{jit['runner']['id']}")[0] == 204
    assert send(emulator, "POST", f"{RUNNERS}/registration-token")[0] == 201
    assert emulator.requests.violations() == []
    assert emulator.control.stats()["request_violations"] == []


@pytest.mark.parametrize("path", [TEST_REPO, TEST_ORG])
def test_the_manager_client_breaks_no_rule(emulator: Emulator, path: str) -> None:
    """The manager's GitHub client breaks no rule of GitHub's description.

    arrange: the manager's GitHub client against the emulator.
    act: make every call it makes.
    assert: no violation is recorded.
    """
    client = GhApiClient(parse_github_path(path), TEST_TOKEN, emulator.api_url, timeout=10)
    emulator.control.settings(jit_enabled=True)

    registration = client.register_runner("jit-client", ["self-hosted", "client"])
    listed = client.list_runners()
    client.delete_runner(listed[0].id)
    client.runner_applications()
    job_repo = TEST_REPO if path == TEST_REPO else f"{TEST_ORG}/service"
    job = emulator.control.queue_job(job_repo, ["self-hosted"], "true")
    client.job_for_runner(job_repo, job["run_id"], "nobody")
    emulator.control.settings(jit_enabled=False)
    token_registration = client.register_runner("token-client", ["self-hosted"])

    assert registration.jit_config and [r.name for r in listed] == ["jit-client"]
    assert token_registration.registration_token
    assert emulator.requests.violations() == []
    assert emulator.control.stats()["request_violations"] == []
