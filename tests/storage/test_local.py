"""LocalFile: the pack's descriptor and map, advised for how it is read.

Page-cache effects are measured with ``read_bytes`` of ``/proc/self/io`` on a file that
was fsync'ed and dropped from the page cache; where the file system does not report
reads (tmpfs), those tests skip instead of passing vacuously.
"""

from __future__ import annotations

import mmap
import os
from pathlib import Path

import numpy as np
import pytest

import pixpack.storage.local as local
from pixpack.storage import LocalFile

from .page_cache import PAGE, evict, read_ahead_kb, read_bytes, skip_unless_reported

pytestmark = pytest.mark.timeout(60)

PIECE = 512 << 10  # the largest single WILLNEED request (local._ADVICE_PIECE)
FILE_MB = 24


@pytest.fixture(scope="module")
def data_file(tmp_path_factory) -> Path:
    """A 24 MB file of random bytes (its first page stands in for a pack's header)."""
    path = tmp_path_factory.mktemp("local") / "data.bin"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, FILE_MB << 20, np.uint8).tobytes())
    return path


def open_local(path: Path, access="random") -> LocalFile:
    with open(path, "rb") as f:  # LocalFile keeps its own descriptor
        return LocalFile(f, access, PAGE, path.stat().st_size)


@pytest.fixture(params=["native", "python"])
def implementation(request, monkeypatch):
    if request.param == "native":
        if local._native_will_need is None:
            pytest.skip("pixpack._native._readahead is not built")
    else:
        monkeypatch.setattr(local, "_native_will_need", None)
    return request.param


# -- will_need_many: the requests --------------------------------------------------------
def expected_requests(offsets, nbytes) -> int:
    """WILLNEED calls for the spans: touching neighbours (in the given order) merged,
    empty spans skipped, runs cut in pieces of at most PIECE bytes."""
    runs: list[list[int]] = []
    for off, nb in zip(offsets, nbytes, strict=True):
        if nb <= 0:
            continue
        if runs and runs[-1][1] == off:
            runs[-1][1] += nb
        else:
            runs.append([off, off + nb])
    return sum(-(-(stop - start) // PIECE) for start, stop in runs)


SPANS = {
    "touching": ([4096, 5096, 9000, 9100], [1000, 3904, 100, 50]),
    "gaps": ([4096, 20000, 90000], [100, 100, 100]),
    "empty-and-negative": ([4096, 4196, 4196, 8192, 9000], [100, 0, -1, 808, -5]),
    "empty-between-neighbours": ([4096, 5000, 5000], [904, 0, 100]),
    "unsorted": ([9000, 4096, 5096, 4196], [100, 1000, 100, 900]),
    "overlapping": ([4096, 4100, 4096], [1000, 1000, 1000]),
    "nothing": ([], []),
    "all-empty": ([4096, 8192], [0, -1]),
    "large": ([4096, 4096 + 3 * PIECE // 2, 8 << 20], [3 * PIECE // 2, 100, 3 * PIECE]),
}
@pytest.mark.parametrize(
    "name", list(SPANS)
)
def test_will_need_many_requests_fallback(data_file, monkeypatch, name):
    monkeypatch.setattr(local, "_native_will_need", None)
    assert_requests(data_file, name)


@pytest.mark.parametrize("name", list(SPANS))
def test_will_need_many_requests_native(data_file, name):
    if local._native_will_need is None:
        pytest.skip("pixpack._native._readahead is not built")
    assert_requests(data_file, name)


def assert_requests(data_file: Path, name: str) -> None:
    offsets, nbytes = (np.asarray(a, np.int64) for a in SPANS[name])
    storage = open_local(data_file)
    try:
        got = storage.will_need_many(offsets, nbytes)
    finally:
        storage.close()
    assert got == expected_requests(offsets.tolist(), nbytes.tolist())


def pack_like_spans(seed: int, touching: bool):
    """Spans like a pack's samples in a step of a block shuffle: runs of neighbours
    (touching, 64-byte aligned) when ``touching``, else scattered samples."""
    rng = np.random.default_rng(seed)
    nbytes = rng.integers(1_000, 200_000, 300).astype(np.int64)
    nbytes[rng.random(300) < 0.05] = -1  # entries outside the data region
    sizes = -(-np.maximum(nbytes, 0) // 64) * 64
    gaps = np.where(rng.random(300) < 0.7, 0, 64 * rng.integers(1, 5000, 300))
    if not touching:
        gaps = gaps + 64
        nbytes = np.minimum(nbytes, sizes)
    else:
        nbytes = np.where(nbytes > 0, sizes, nbytes)
    offsets = 4096 + np.cumsum(gaps + sizes) - sizes
    return offsets.astype(np.int64), nbytes


@pytest.mark.parametrize(
    "touching", [False, True], ids=["scattered", "runs"]
)
def test_native_and_fallback_agree(data_file, monkeypatch, touching):
    if local._native_will_need is None:
        pytest.skip("pixpack._native._readahead is not built")
    storage = open_local(data_file)
    counts = []
    for seed in range(5):
        offsets, nbytes = pack_like_spans(seed, touching)
        native = storage.will_need_many(offsets, nbytes)
        with monkeypatch.context() as m:
            m.setattr(local, "_native_will_need", None)
            fallback = storage.will_need_many(offsets, nbytes)
        counts.append((native, fallback))
    storage.close()
    assert all(native == fallback for native, fallback in counts), counts
    assert all(0 < native < 300 for native, _ in counts), counts


def test_fallback_requests_are_the_merged_runs_in_pieces(data_file, monkeypatch):
    monkeypatch.setattr(local, "_native_will_need", None)
    calls = []

    def fadvise(fd, offset, length, advice):
        calls.append((offset, length, advice))

    monkeypatch.setattr(local.os, "posix_fadvise", fadvise)
    offsets, nbytes = (np.asarray(a, np.int64) for a in SPANS["large"])
    storage = open_local(data_file)
    storage.will_need_many(offsets, nbytes)
    storage.close()
    assert all(advice == os.POSIX_FADV_WILLNEED for *_, advice in calls)
    assert all(0 < length <= PIECE for _, length, _ in calls)
    covered = sorted((off, off + length) for off, length, _ in calls)
    assert covered[0][0] == 4096 and covered[-1][1] == (8 << 20) + 3 * PIECE
    first_run_end = 4096 + 3 * PIECE // 2 + 100  # the first two spans touch: one run
    assert sum(length for off, length, _ in calls if off < first_run_end) == first_run_end - 4096
    assert len(calls) == expected_requests(offsets.tolist(), nbytes.tolist())


# -- will_need: the reads happen ---------------------------------------------------------
def test_will_need_many_reads_exactly_the_spans(data_file, implementation):
    rng = np.random.default_rng(1)
    pages = rng.integers(2, 120, 30)  # whole pages, some runs longer than PIECE
    gaps = rng.integers(1, 60, 30)
    starts = (PAGE * (1 + np.cumsum(gaps + pages) - pages)).astype(np.int64)
    nbytes = (PAGE * pages).astype(np.int64)
    assert starts[-1] + nbytes[-1] <= FILE_MB << 20
    total = int(nbytes.sum())
    evict(data_file)
    storage = open_local(data_file)
    before = read_bytes()
    storage.will_need_many(starts, nbytes)
    read = read_bytes() - before
    storage.close()
    skip_unless_reported(read, total)
    # Every piece is read (none dropped past the kernel's per-request limit), nothing more.
    assert total * 0.98 <= read <= total + 4 * PAGE * len(starts), (read, total)


# -- the map's advice --------------------------------------------------------------------
def touch_pages(storage: LocalFile, pages) -> int:
    before = read_bytes()
    for p in pages:
        assert storage.map[int(p) * PAGE] >= 0
    return read_bytes() - before


SCATTERED = np.random.default_rng(2).choice(np.arange(2, (FILE_MB << 20) // PAGE), 60, False)


def test_random_access_faults_read_only_their_page(data_file):
    evict(data_file)
    storage = open_local(data_file, "random")
    read = touch_pages(storage, SCATTERED)
    storage.close()
    skip_unless_reported(read, len(SCATTERED) * PAGE)
    # Fault-around maps only pages already cached: one page read per touch.
    assert read <= len(SCATTERED) * PAGE * 1.1, read


def test_default_map_reads_around(data_file):
    """The advice is what makes the difference: a map without it reads around."""
    ra_kb = read_ahead_kb(data_file)
    if ra_kb is None or ra_kb < 64:
        pytest.skip(f"read_ahead_kb {ra_kb}: too small for read-around to show")
    evict(data_file)
    with open(data_file, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        before = read_bytes()
        for p in SCATTERED:
            assert m[int(p) * PAGE] >= 0
        read = read_bytes() - before
    skip_unless_reported(read, len(SCATTERED) * PAGE)
    assert read > 4 * len(SCATTERED) * PAGE, read


def test_sequential_access_reads_ahead(data_file):
    ra_kb = read_ahead_kb(data_file)
    if ra_kb is None or ra_kb < 64:
        pytest.skip(f"read_ahead_kb {ra_kb}: too small for read-ahead to show")
    evict(data_file)
    storage = open_local(data_file, "sequential")
    assert storage.access == "sequential"
    read = touch_pages(storage, range(2, 10))
    storage.close()
    skip_unless_reported(read, 8 * PAGE)
    assert read >= 16 * PAGE, read


# -- lifetime ----------------------------------------------------------------------------
def test_own_descriptor_size_and_idempotent_close(data_file, tmp_path):
    path = tmp_path / "copy.bin"
    path.write_bytes(data_file.read_bytes()[: 1 << 20])
    with open(path, "rb") as f:
        storage = LocalFile(f, "random", PAGE, 1 << 20)
    # The caller's file is closed: the map and the descriptor still work.
    assert storage.size == storage.current_size() == 1 << 20
    assert storage.map[(1 << 20) - 1] == path.read_bytes()[-1]
    assert storage.will_need_many(np.array([PAGE], np.int64), np.array([100], np.int64)) == 1
    os.truncate(path, 1 << 19)
    assert storage.current_size() == 1 << 19 and storage.size == 1 << 20
    storage.close()
    storage.close()
    assert storage.fd == -1 and storage.current_size() == 0
    # Advice after close is a no-op, not an error.
    storage.will_need(PAGE, 100)
    storage.will_need_many(np.array([PAGE], np.int64), np.array([100], np.int64))
