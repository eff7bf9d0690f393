# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""The runner version ledger: first sightings of versions and the version of each runner."""

from __future__ import annotations

import json

import pytest

from github_runner_manager.runner_versions import UNKNOWN, VersionLedger, is_older, version_key

DAY = 86400.0


@pytest.mark.parametrize(
    ("version", "than", "older"),
    [
        ("2.330.0", "2.331.0", True),
        ("2.9.0", "2.10.0", True),  # numeric, not lexical
        ("2.331.0", "2.331.0", False),
        ("2.332.0", "2.331.0", False),
        (UNKNOWN, "2.331.0", False),  # unknown is never counted as outdated
        ("2.330.0", "garbage", False),
    ],
)
def test_is_older(version, than, older):
    """Versions compare numerically, and an unknown version is never older.

    arrange: two versions.
    act: compare.
    assert: numeric order, unknown never older.
    """
    assert is_older(version, than) is older
    assert version_key("2.330.1") == (2, 330, 1)


def test_all_current_runners_are_not_outdated(tmp_path):
    """Runners on the version GitHub offers are not outdated.

    arrange: GitHub offers the cached version.
    act: update.
    assert: nothing outdated.
    """
    ledger = VersionLedger(tmp_path / "v.json")

    age = ledger.update(
        offered="2.330.0",
        current_version="2.330.0",
        current_hashes=["h1"],
        instance_hashes=["h1", "h1"],
        now=1000.0,
    )

    assert age.latest == "2.330.0"
    assert age.runners == {"2.330.0": 2}
    assert age.outdated == 0
    assert age.newer_since is None


def test_newer_version_age_survives_restarts_and_counts_from_first_sighting(tmp_path):
    """arrange: runners on 2.330.0; GitHub then offers 2.331.0 which cannot be downloaded.

    act: update on day 0, then again 20 days later with a new ledger object (a new run).
    assert: the newer version is dated from its first sighting, runners stay outdated.
    """
    path = tmp_path / "v.json"
    VersionLedger(path).update(
        offered="2.330.0",
        current_version="2.330.0",
        current_hashes=["h-old"],
        instance_hashes=["h-old", "h-old"],
        now=0.0,
    )
    first = VersionLedger(path).update(
        offered="2.331.0",
        current_version="2.330.0",  # the download failed: still creating 2.330.0
        current_hashes=["h-old"],
        instance_hashes=["h-old", "h-old"],
        now=5 * DAY,
    )
    later = VersionLedger(path).update(
        offered="2.331.0",
        current_version="2.330.0",
        current_hashes=["h-old"],
        instance_hashes=["h-old", "h-old"],
        now=25 * DAY,
    )

    assert first.latest == later.latest == "2.331.0"
    assert first.outdated == later.outdated == 2
    assert first.newer_since == later.newer_since == 5 * DAY


def test_oldest_running_version_decides_the_age(tmp_path):
    """The oldest running version decides how long runners have been outdated.

    arrange: 2.331.0 seen on day 1, 2.332.0 on day 10; a busy runner still on 2.330.0.
    act: update.
    assert: the age runs from day 1 (the first version newer than 2.330.0).
    """
    path = tmp_path / "v.json"
    ledger = VersionLedger(path)
    ledger.update(
        offered="2.330.0",
        current_version="2.330.0",
        current_hashes=["a"],
        instance_hashes=["a"],
        now=0.0,
    )
    ledger.update(
        offered="2.331.0",
        current_version="2.331.0",
        current_hashes=["b"],
        instance_hashes=["a", "b"],
        now=1 * DAY,
    )

    age = ledger.update(
        offered="2.332.0",
        current_version="2.332.0",
        current_hashes=["c"],
        instance_hashes=["a", "c"],
        now=10 * DAY,
    )

    assert age.runners == {"2.330.0": 1, "2.332.0": 1}
    assert age.outdated == 1
    assert age.newer_since == 1 * DAY


def test_runners_of_unknown_hash_are_unknown_not_outdated(tmp_path):
    """Runners of a hash the ledger never saw are unknown, not outdated.

    arrange: an instance whose hash the ledger never saw.
    act: update.
    assert: unknown.
    """
    age = VersionLedger(tmp_path / "v.json").update(
        offered="2.331.0",
        current_version="2.331.0",
        current_hashes=["new"],
        instance_hashes=["from-before", "new"],
        now=0.0,
    )

    assert age.runners == {UNKNOWN: 1, "2.331.0": 1}
    assert age.outdated == 0


def test_github_unreachable_keeps_the_last_offered_version(tmp_path):
    """With GitHub unreachable, the last offered version is kept.

    arrange: GitHub offered 2.331.0 once.
    act: update without an answer.
    assert: kept.
    """
    ledger = VersionLedger(tmp_path / "v.json")
    ledger.update(
        offered="2.331.0",
        current_version="2.330.0",
        current_hashes=["a"],
        instance_hashes=["a"],
        now=0.0,
    )

    age = ledger.update(
        offered=None,
        current_version="2.330.0",
        current_hashes=["a"],
        instance_hashes=["a"],
        now=DAY,
    )

    assert age.latest == "2.331.0"
    assert age.outdated == 1
    assert age.newer_since == 0.0


def test_ledger_forgets_deleted_runners_and_old_versions(tmp_path):
    """The ledger forgets deleted runners and versions older than any still in use.

    arrange: runners on two versions, then only the new one.
    act: update.
    assert: pruned.
    """
    path = tmp_path / "v.json"
    ledger = VersionLedger(path)
    ledger.update(
        offered="2.330.0",
        current_version="2.330.0",
        current_hashes=["a"],
        instance_hashes=["a"],
        now=0,
    )
    ledger.update(
        offered="2.331.0",
        current_version="2.331.0",
        current_hashes=["b"],
        instance_hashes=["a", "b"],
        now=1,
    )

    ledger.update(
        offered="2.331.0",
        current_version="2.331.0",
        current_hashes=["b"],
        instance_hashes=["b"],
        now=2,
    )

    document = json.loads(path.read_text())
    assert document["hashes"] == {"b": "2.331.0"}
    assert document["first_seen"] == {"2.331.0": 1}


@pytest.mark.parametrize("content", ["{not json", '{"first_seen": [1, 2]}', '"a string"'])
def test_corrupt_ledger_starts_afresh(tmp_path, content):
    """A corrupt ledger starts afresh.

    arrange: a corrupt ledger file.
    act: update.
    assert: no exception, fresh sightings.
    """
    path = tmp_path / "v.json"
    path.write_text(content)

    age = VersionLedger(path).update(
        offered="2.331.0",
        current_version="2.331.0",
        current_hashes=["a"],
        instance_hashes=["a"],
        now=7,
    )

    assert age.runners == {"2.331.0": 1}
    assert json.loads(path.read_text())["first_seen"] == {"2.331.0": 7}
