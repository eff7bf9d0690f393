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
    """A leftover metadata file (one ops.testing wrote into the tree) makes charmcraft fail."""
    assert (ROOT / "charmcraft.yaml").is_file()
    assert not (ROOT / name).exists(), (
        f"{name} beside charmcraft.yaml: charmcraft refuses the project; keep the section in "
        "charmcraft.yaml and delete the file (a test with charm_root at the repository root "
        "writes it)"
    )


def test_platforms_are_multi_base_without_a_top_level_base() -> None:
    project = yaml.safe_load((ROOT / "charmcraft.yaml").read_text(encoding="utf-8"))

    assert "base" not in project
    assert "build-base" not in project
    assert set(project["platforms"]) == {
        f"ubuntu@{release}:{arch}" for release in ("22.04", "24.04") for arch in ("amd64", "arm64")
    }
