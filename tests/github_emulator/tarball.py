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
import random
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
# Archive sizes: `small` is the stand-in alone (a few KB, for tests that never measure a
# spawn); `real` pads it to the order of GitHub's own linux-x64 runner archive, which is well over
# 100 MB (the .NET runtime in bin/ plus several Node.js builds in externals/) with thousands of
# files. The padding is incompressible (seeded pseudo-random bytes, so the archive and its
# checksum stay deterministic) and spread over many files, so pushing, unpacking and disk use
# cost what they cost with the real application.
SIZES = {"small": (0, 0), "real": (150 * 1024 * 1024, 2400)}


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


def _padding(size: str) -> list[tuple[str, int, bytes]]:
    total, count = SIZES[size]
    if not count:
        return []
    generator = random.Random(f"github-runner-padding-{total}-{count}")  # filler, not a secret
    each = total // count
    members = []
    for index in range(count):
        # Like the real layout: most bytes in bin/ (.NET) and externals/node*/.
        folder = ("bin", "externals/node20/lib", "externals/node24/lib")[index % 3]
        members.append((f"{folder}/padding-{index:05d}.bin", 0o644, generator.randbytes(each)))
    return members


def _members(os_name: str, arch: str, version: str, size: str) -> list[tuple[str, int, bytes]]:
    members = [(name, mode, (APP_DIR / name).read_bytes()) for name, mode in APP_FILES]
    info = {"version": version, "os": os_name, "arch": arch}
    members.append(("bin/runner.json", 0o644, json.dumps(info, indent=2).encode() + b"\n"))
    members.extend(_padding(size))
    return sorted(members)


@functools.lru_cache(maxsize=8)
def build(name: str, size: str = "small") -> bytes:
    """Build the archive for a release asset name.

    Args:
        name: an asset name as :func:`filename` returns.
        size: ``small`` (the stand-in alone) or ``real`` (padded to the real size).

    Returns:
        The archive bytes.

    Raises:
        ValueError: the name is not a runner asset name.
    """
    match = FILENAME_RE.match(name)
    if match is None:
        raise ValueError(f"not a runner archive name: {name}")
    if size not in SIZES:
        raise ValueError(f"unknown archive size {size!r}; known: {sorted(SIZES)}")
    # Only Linux archives are ever unpacked by tests; the others stay small.
    padded = size if match["os"] == "linux" else "small"
    members = _members(match["os"], match["arch"], match["version"], padded)
    buffer = io.BytesIO()
    if match["suffix"] == "zip":
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for path, mode, data in members:
                zip_entry = zipfile.ZipInfo(path, date_time=(2023, 11, 14, 22, 13, 20))
                zip_entry.external_attr = (0o100000 | mode) << 16
                archive.writestr(zip_entry, data)
        return buffer.getvalue()
    with (
        # Padding does not compress: store it (level 0 is still gzip) instead of spending
        # a minute of CPU finding that out.
        gzip.GzipFile(
            fileobj=buffer, mode="wb", mtime=0, compresslevel=0 if padded != "small" else 9
        ) as zipped,
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


@functools.lru_cache(maxsize=32)
def checksum(name: str, size: str = "small") -> str:
    """The SHA-256 of an archive, as GitHub lists it.

    Args:
        name: an asset name.
        size: ``small`` or ``real``.

    Returns:
        The hex digest.
    """
    return hashlib.sha256(build(name, size)).hexdigest()
