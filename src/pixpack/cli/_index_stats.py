"""What ``pixpack info`` counts over a pack's index, in memory that does not grow with it.

The index is a view of the memory map; it is read ``_ENTRIES`` entries at a time, so
only one slice's temporaries exist at once (the whole-column numpy expressions this
replaces held ~57 bytes per sample: 6 GB at 100M samples). Medians are exact without
sorting a copy: a first pass counts the high 16 bits of every value, a second the low
16 bits of the values in the bucket that holds the middle rank.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import cast

import numpy as np

from .. import format as fmt

__all__ = ["IndexSummary", "order_statistics", "summarize"]

_ENTRIES = 1 << 16
_BUCKETS = 1 << 16


@dataclass
class IndexSummary:
    stored: int  # sum of nbytes
    decoded: int  # sum of h * w * c * itemsize
    class_counts: np.ndarray  # samples per class index (labels inside the class list)
    unlabeled: int
    out_of_range: int
    modes: dict[int, int]
    dtypes: dict[int, int]
    channels: dict[int, int]
    height: dict[str, int]  # min, median, max
    width: dict[str, int]


def _slices(index: np.ndarray) -> Iterator[np.ndarray]:
    for start in range(0, len(index), _ENTRIES):
        yield index[start : start + _ENTRIES]


def summarize(index: np.ndarray, num_classes: int) -> IndexSummary:
    """One pass for the counts and sums, two more per median column."""
    stored = decoded = unlabeled = out_of_range = 0
    counts = np.zeros(num_classes, dtype=np.int64)
    modes: Counter[int] = Counter()
    dtypes: Counter[int] = Counter()
    channels: Counter[int] = Counter()
    for part in _slices(index):
        itemsize = np.ones(len(part), dtype=np.int64)
        for code, dtype in fmt.DTYPE_FROM_CODE.items():
            itemsize[part["dtype"] == code] = cast(np.dtype, dtype).itemsize
        # float64: exact to 9 PB, and a crafted entry (2**32 x 2**32 x 255) cannot wrap.
        shape = part["height"].astype(np.float64) * part["width"] * part["channels"]
        decoded += int((shape * itemsize).sum())
        stored += int(part["nbytes"].sum(dtype=np.float64))
        labels = part["label"]
        # Labels come from the (unverified) index: a flipped bit can make one huge,
        # and bincount would try to allocate that many counters.
        known = (labels >= 0) & (labels < num_classes)
        seen = np.bincount(labels[known])
        counts[: len(seen)] += seen
        unlabeled += int((labels < 0).sum())
        out_of_range += int((labels >= num_classes).sum())
        for counter, column in ((modes, "mode"), (dtypes, "dtype"), (channels, "channels")):
            keys, found = np.unique(part[column], return_counts=True)
            counter.update(dict(zip(keys.tolist(), found.tolist(), strict=True)))
    return IndexSummary(
        stored, decoded, counts, unlabeled, out_of_range,
        dict(sorted(modes.items())), dict(sorted(dtypes.items())),
        dict(sorted(channels.items())), _min_median_max(index, "height"),
        _min_median_max(index, "width"),
    )  # fmt: skip


def _min_median_max(index: np.ndarray, column: str) -> dict[str, int]:
    n = len(index)
    if n == 0:
        return {"min": 0, "median": 0, "max": 0}
    low, mid_a, mid_b, high = order_statistics(index, column, [0, (n - 1) // 2, n // 2, n - 1])
    return {"min": low, "median": (mid_a + mid_b) // 2, "max": high}  # as int(np.median())


def order_statistics(index: np.ndarray, column: str, ranks: list[int]) -> list[int]:
    """The values of rank ``ranks`` (0-based, ascending) of a uint32 index column."""
    high = np.zeros(_BUCKETS, dtype=np.int64)
    for part in _slices(index):
        high += np.bincount(part[column] >> 16, minlength=_BUCKETS)
    below = np.concatenate(([0], np.cumsum(high)))  # values in buckets before b
    buckets = [int(np.searchsorted(below, r, side="right")) - 1 for r in ranks]
    lows = {b: np.zeros(_BUCKETS, dtype=np.int64) for b in set(buckets)}
    wanted = np.array(sorted(lows), dtype=np.uint32)
    for part in _slices(index):
        values = part[column]
        values = values[np.isin(values >> 16, wanted)]
        for b, low in lows.items():
            low += np.bincount(values[(values >> 16) == b] & 0xFFFF, minlength=_BUCKETS)
    result = []
    for rank, b in zip(ranks, buckets, strict=True):
        within = rank - int(below[b])
        k = int(np.searchsorted(np.cumsum(lows[b]), within, side="right"))
        result.append((b << 16) | k)
    return result
