"""Which source items a sharded pack's job packs, and where its shards end: pure
functions of integers (no I/O), testable over every size.

Count-based shards (``shard_size="N samples"``) cover fixed source ranges
``[k*N, (k+1)*N)``; byte-based ones end where the next sample would pass the size,
so their ranges are known only while packing. Slices (``shard_index`` of
``num_shards``, one per array job) are contiguous; with a sample count they hold
whole shards, so slices packed apart give exactly the shards of a one-shot run.
"""

from __future__ import annotations

from typing import Literal

__all__ = ["slice_bounds", "shard_end"]

Limit = tuple[Literal["bytes", "samples"], int] | None


def slice_bounds(total: int, limit: Limit, index: int, count: int) -> tuple[int, int]:
    """``[start, stop)``: the source items of slice ``index`` of ``count``."""
    if limit is not None and limit[0] == "samples":
        shards = -(-total // limit[1])
        first, last = index * shards // count, (index + 1) * shards // count
        return min(first * limit[1], total), min(last * limit[1], total)
    return index * total // count, (index + 1) * total // count


def shard_end(start: int, stop: int, limit: Limit) -> int | None:
    """The source position where a count-based shard starting at ``start`` ends (at
    most ``stop``); None when shards end by size or only at ``stop``."""
    if limit is None or limit[0] != "samples":
        return None
    return min((start // limit[1] + 1) * limit[1], stop)
