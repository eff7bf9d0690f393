# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""Packaging of the stand-in runner application into release-like archives.

Archives are deterministic (fixed times, owners and order), so the same version always has the
same ``sha256_checksum`` and a client-side cache keyed by checksum behaves as with GitHub.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import json
import re
import tarfile
import zipfile
from pathlib import Path

APP_DIR = Path(__file__).resolve().parent / "runner_app"
# (path in the archive, mode): an explicit list, so caches (__pycache__) never leak in.
APP_FILES = (
    ("config.sh", 0o755),
    ("run.sh", 0o755),
    ("bin/Runner.Listener", 0o755),
    ("bin/runner_listener.py", 0o644),
)
# Release assets GitHub lists: (os, architecture, archive suffix).
PLATFORMS = (
    ("linux", "x64", "tar.gz"),
    ("linux", "arm64", "tar.gz"),
    ("osx", "x64", "tar.gz"),
    ("win", "x64", "zip"),
)
FILENAME_RE = re.compile(
    r"^actions-runner-(?P<os>linux|osx|win)-(?P<arch>x64|arm64)-"
    r"(?P<version>\d+\.\d+\.\d+)\.(?P<suffix>tar\.gz|zip)$"
)
_FIXED_MTIME = 1_700_000_000


def filename(os_name: str, arch: str, version: str) -> str:
    """The release asset name GitHub uses for a runner build.

    Args:
        os_name: ``linux``, ``osx`` or ``win``.
        arch: ``x64`` or ``arm64``.
        version: ``X.Y.Z``.

    Returns:
        For example ``actions-runner-linux-x64-2.330.0.tar.gz``.
    """
    suffix = "zip" if os_name == "win" else "tar.gz"
    return f"actions-runner-{os_name}-{arch}-{version}.{suffix}"


def _members(os_name: str, arch: str, version: str) -> list[tuple[str, int, bytes]]:
    members = [(name, mode, (APP_DIR / name).read_bytes()) for name, mode in APP_FILES]
    info = {"version": version, "os": os_name, "arch": arch}
    members.append(("bin/runner.json", 0o644, json.dumps(info, indent=2).encode() + b"\n"))
    return sorted(members)


@functools.lru_cache(maxsize=32)
def build(name: str) -> bytes:
    """Build the archive for a release asset name.

    Args:
        name: an asset name as :func:`filename` returns.

    Returns:
        The archive bytes.

    Raises:
        ValueError: the name is not a runner asset name.
    """
    match = FILENAME_RE.match(name)
    if match is None:
        raise ValueError(f"not a runner archive name: {name}")
    members = _members(match["os"], match["arch"], match["version"])
    buffer = io.BytesIO()
    if match["suffix"] == "zip":
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for path, mode, data in members:
                zip_entry = zipfile.ZipInfo(path, date_time=(2023, 11, 14, 22, 13, 20))
                zip_entry.external_attr = (0o100000 | mode) << 16
                archive.writestr(zip_entry, data)
        return buffer.getvalue()
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as zipped,
        tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as archive,
    ):
        directories = sorted({str(Path(path).parent) for path, _, _ in members} - {"."})
        for directory in directories:
            entry = tarfile.TarInfo(f"./{directory}")
            entry.type = tarfile.DIRTYPE
            entry.mode = 0o755
            entry.mtime = _FIXED_MTIME
            archive.addfile(entry)
        for path, mode, data in members:
            entry = tarfile.TarInfo(f"./{path}")
            entry.size = len(data)
            entry.mode = mode
            entry.mtime = _FIXED_MTIME
            archive.addfile(entry, io.BytesIO(data))
    return buffer.getvalue()


def checksum(name: str) -> str:
    """The SHA-256 of an archive, as GitHub lists it.

    Args:
        name: an asset name.

    Returns:
        The hex digest.
    """
    return hashlib.sha256(build(name)).hexdigest()
