# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""The charmcraft project: charmcraft.yaml is the only metadata file, in the form charmcraft reads.

charmcraft refuses a project whose `config.yaml`, `actions.yaml` or `metadata.yaml` duplicates a
section of `charmcraft.yaml`, and a top-level `base` beside multi-base platform names. The pack
stage (`tox -e pack`) loads the project with charmcraft itself; these checks fail in the unit
suite already, without charmcraft.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["config.yaml", "actions.yaml", "metadata.yaml"])
def test_no_metadata_file_beside_charmcraft_yaml(name: str) -> None:
    """No metadata file lies beside charmcraft.yaml (charmcraft would refuse the project).

    arrange: the repository root with charmcraft.yaml.
    act: look for config.yaml, actions.yaml and metadata.yaml beside it.
    assert: none exists (a test that wrote one into the tree would fail this).
    """
    assert (ROOT / "charmcraft.yaml").is_file()
    assert not (ROOT / name).exists(), (
        f"{name} beside charmcraft.yaml: charmcraft refuses the project; keep the section in "
        "charmcraft.yaml and delete the file (a test with charm_root at the repository root "
        "writes it)"
    )


def test_platforms_are_multi_base_without_a_top_level_base() -> None:
    """charmcraft.yaml builds for several bases through platforms only.

    arrange: the parsed charmcraft.yaml.
    act: read its base keys and platforms.
    assert: no base or build-base at the top, and platforms for 22.04 and 24.04 on amd64 and arm64.
    """
    project = yaml.safe_load((ROOT / "charmcraft.yaml").read_text(encoding="utf-8"))

    assert "base" not in project
    assert "build-base" not in project
    assert set(project["platforms"]) == {
        f"ubuntu@{release}:{arch}" for release in ("22.04", "24.04") for arch in ("amd64", "arm64")
    }
