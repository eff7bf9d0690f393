# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""LXD's error text cut to what a person reads, and out-of-space failures told apart."""

from __future__ import annotations

import pytest

from github_runner_manager.errors import LxdError, StorageFullError
from github_runner_manager.lxd import ERROR_EXCERPT, excerpt, lxd_error

# The shape of LXD's answer when an unpack runs out of space: the failed tool's whole output,
# one line per file it could not write.
UNPACK_FAILURE = (
    "Failed creating instance from image: Unpack failed, Failed to run: unsquashfs "
    + (
        "-f -d /var/lib/lxd/storage-pools/small/containers/r-0/rootfs -n "
        "/var/lib/lxd/images/9f748326f9f3.rootfs: exit status 1\n"
    )
    + "".join(
        f"tar: ./usr/lib/x86_64-linux-gnu/file-{i:05d}.so: Cannot write: No space left on device\n"
        for i in range(2000)
    )
)


def test_huge_lxd_failure_is_cut_to_its_first_line_and_reason():
    """A huge LXD failure is cut to its first line and its reason.

    arrange: a 170 KB unpack failure.
    act: make an LXD error of it.
    assert: a short one-line message keeping the first line and the out-of-space reason, saying how
        much was left out; a StorageFullError.
    """
    assert len(UNPACK_FAILURE) > 150_000

    error = lxd_error("cannot create instance r-0", UNPACK_FAILURE)

    message = str(error)
    assert isinstance(error, StorageFullError)
    assert len(message) < ERROR_EXCERPT + 200
    assert "\n" not in message
    assert message.startswith("cannot create instance r-0: Failed creating instance from image")
    assert "No space left on device" in message
    assert "more characters of LXD output left out" in message


def test_short_error_is_kept_whole_on_one_line():
    """A short LXD error is kept whole, on one line.

    arrange: a two-line start failure.
    act: make an LXD error of it.
    assert: a plain LxdError with the lines joined by a bar.
    """
    error = lxd_error("cannot start instance r-1", "Failed to start\nCommon start logic: oops")

    assert type(error) is LxdError
    assert str(error) == "cannot start instance r-1: Failed to start | Common start logic: oops"


@pytest.mark.parametrize(
    "text",
    [
        "write /x: no space left on device",
        "Failed to write: disk quota exceeded",
        "copy failed: ENOSPC",
    ],
)
def test_out_of_space_is_told_apart(text):
    """Out-of-space failures are told apart from other LXD errors.

    arrange: a text saying no space left, quota exceeded, or ENOSPC.
    act: make an LXD error of it.
    assert: a StorageFullError.
    """
    assert isinstance(lxd_error("cannot push", text), StorageFullError)


def test_storage_full_stays_storage_full_when_wrapped():
    """A storage-full error keeps its kind when wrapped.

    arrange: an inner StorageFullError (an LXD operation).
    act: wrap it in another LXD error.
    assert: the outer one is a StorageFullError too.
    """
    inner = lxd_error("LXD operation Creating instance", "write: no space left on device")

    outer = lxd_error("cannot create instance r-2", inner)

    assert isinstance(outer, StorageFullError)


def test_excerpt_of_one_enormous_line():
    """One enormous line is cut too.

    arrange: a single line of 100,000 characters.
    act: take its excerpt.
    assert: shorter than the excerpt limit plus a note that ends saying how much was left out.
    """
    text = "x" * 100_000

    cut = excerpt(text)

    assert len(cut) < ERROR_EXCERPT + 100
    assert cut.endswith("more characters of LXD output left out]")
