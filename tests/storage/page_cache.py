"""Measuring what reaches the disk: ``read_bytes`` of ``/proc/self/io`` (the whole
process, all threads) on files dropped from the page cache.

Shared by the storage tests and the loader's out-of-core tests
(``from storage.page_cache import ...``: ``tests/`` is on ``sys.path`` through its
conftest).
"""

from __future__ import annotations

import gc
import mmap
import os
from pathlib import Path

import pytest

PAGE = mmap.PAGESIZE


def read_bytes() -> int:
    """Bytes this process has caused to be read from storage so far."""
    with open("/proc/self/io") as f:
        for line in f:
            if line.startswith("read_bytes:"):
                return int(line.split()[1])
    raise AssertionError("/proc/self/io has no read_bytes")


def evict(path: Path) -> None:
    """Drop the file from the page cache (pages still mapped somewhere would stay, so
    collect the garbage first: earlier readers' maps go with it)."""
    gc.collect()
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def skip_unless_reported(read: int, expected: int) -> None:
    """Skip where the file system does not report reads (tmpfs): a bound on bytes read
    would pass there whatever the code does."""
    if read < 0.5 * expected:
        pytest.skip(
            f"the file system does not report reads in /proc/self/io "
            f"(read {read} bytes where {expected} were expected)"
        )


def read_ahead_kb(path: Path) -> int | None:
    """``read_ahead_kb`` of the block device holding ``path`` (None if unknown)."""
    st = os.stat(path)
    base = Path(f"/sys/dev/block/{os.major(st.st_dev)}:{os.minor(st.st_dev)}")
    for queue in (base / "queue", base / ".." / "queue"):  # a disk, or a partition of one
        try:
            return int((queue / "read_ahead_kb").read_text())
        except (OSError, ValueError):
            continue
    return None
