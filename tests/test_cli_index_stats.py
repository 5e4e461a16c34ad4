"""``pixpack info``'s streamed index counts equal the whole-array numpy computation."""

from __future__ import annotations

from typing import cast

import numpy as np
import pytest

from pixpack import format as fmt
from pixpack.cli import _index_stats
from pixpack.cli._index_stats import order_statistics, summarize


def _reference(index: np.ndarray, num_classes: int) -> dict:
    """What pack_info computed before it streamed (whole columns at once)."""
    labels, dtypes = index["label"], index["dtype"]
    itemsize = np.ones(len(index), dtype=np.int64)
    for code, dtype in fmt.DTYPE_FROM_CODE.items():
        itemsize[dtypes == code] = cast(np.dtype, dtype).itemsize
    known = (labels >= 0) & (labels < num_classes)

    def hist(values):
        keys, counts = np.unique(values, return_counts=True)
        return dict(zip(keys.tolist(), counts.tolist(), strict=True))

    def stats(values):
        return {
            "min": int(values.min()),
            "median": int(np.median(values)),
            "max": int(values.max()),
        }

    shape = index["height"].astype(np.int64) * index["width"] * index["channels"]
    return {
        "stored": int(index["nbytes"].sum()),
        "decoded": int((shape * itemsize).sum()),
        "class_counts": np.bincount(labels[known], minlength=num_classes).tolist(),
        "unlabeled": int((labels < 0).sum()),
        "out_of_range": int((labels >= num_classes).sum()),
        "modes": hist(index["mode"]),
        "dtypes": hist(dtypes),
        "channels": hist(index["channels"]),
        "height": stats(index["height"]),
        "width": stats(index["width"]),
    }


def _random_index(rng: np.random.Generator, n: int) -> np.ndarray:
    index = np.zeros(n, dtype=fmt.INDEX_DTYPE)
    index["nbytes"] = rng.integers(0, 10**6, n)
    index["label"] = rng.integers(-2, 12, n)  # unlabelled, out of range, normal
    index["height"] = rng.choice([1, 7, 375, 500, 65535, 65536, 70000, 100_000], n)
    index["width"] = rng.integers(1, 300_000, n)
    index["channels"] = rng.choice([1, 3, 4, 2], n)
    index["dtype"] = rng.choice([0, 1, 9], n)
    index["mode"] = rng.choice([0, 1, 5], n)
    return index


@pytest.mark.parametrize("n", [1, 2, 3, 10, 1000, 4097])
@pytest.mark.parametrize("entries", [7, 1 << 16])
def test_streamed_counts_equal_whole_array_numpy(monkeypatch, n, entries):
    monkeypatch.setattr(_index_stats, "_ENTRIES", entries)  # cross slice boundaries
    index = _random_index(np.random.default_rng(n), n)
    got = summarize(index, 10)
    want = _reference(index, 10)
    assert {**vars(got), "class_counts": got.class_counts.tolist()} == want


def test_order_statistics_are_exact(monkeypatch):
    monkeypatch.setattr(_index_stats, "_ENTRIES", 100)
    rng = np.random.default_rng(3)
    index = np.zeros(1001, dtype=fmt.INDEX_DTYPE)
    index["height"] = rng.integers(0, 2**32, 1001, dtype=np.uint64)
    index["height"][::3] = 65536  # many equal values around a bucket edge
    ranks = [0, 1, 500, 999, 1000]
    assert order_statistics(index, "height", ranks) == np.sort(index["height"])[ranks].tolist()


def test_an_empty_index():
    got = summarize(np.zeros(0, dtype=fmt.INDEX_DTYPE), 3)
    assert got.height == got.width == {"min": 0, "median": 0, "max": 0}
    assert got.class_counts.tolist() == [0, 0, 0] and got.stored == got.decoded == 0


def test_crafted_sizes_do_not_wrap_around():
    index = np.zeros(3, dtype=fmt.INDEX_DTYPE)
    index["height"] = index["width"] = 2**32 - 1
    index["channels"], index["nbytes"] = 255, 2**64 - 1
    got = summarize(index, 1)
    assert got.decoded > 3 * 255 * (2**32 - 2) ** 2 and got.stored > 3 * (2**64 - 2)
