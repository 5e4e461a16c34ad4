"""The loader's side of read-ahead: which spans, how far, started when.

The mechanism (a thread advising the storage) lives in :mod:`pixpack.storage`; this
module only maps an epoch onto it: the positions of the shard's order from the resume
point on, a window of ``read_ahead`` batches capped at ``read_ahead_bytes`` (for a
block shuffle: steps of one group, and room for at least two; a remote pack: as far
as its storage's ``prefetch_bytes``, so the next shards download while the current
ones are read: remote prefetch is this same read-ahead). The first
``prefetch`` batches are requested before the iteration schedules them, so the very
first decodes already find their reads in flight.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import PixpackError
from ..options import LoaderOptions
from ..storage import ReadAhead
from .ordering import group_length

__all__ = ["start_read_ahead"]


def start_read_ahead(
    pack: Any, order: np.ndarray, slices: list[tuple[int, int]], options: LoaderOptions
) -> ReadAhead | None:
    """A running :class:`ReadAhead` over ``order`` from ``slices[0]``, or None when it
    is off, there is nothing to read, or the pack is not a local file (in memory)."""
    if options.read_ahead == 0 or not slices:
        return None
    storage = getattr(pack, "storage", None)
    if storage is None or not hasattr(pack, "spans"):
        return None
    start = slices[0][0]
    first = slices[min(len(slices), options.prefetch) - 1][1]
    try:
        offsets, nbytes = pack.spans(order[start:first])
    except PixpackError:  # a damaged (truncated) pack: each batch reports it via on_error
        return None
    by_offset = np.argsort(offsets, kind="stable")
    storage.will_need_many(offsets[by_offset], nbytes[by_offset])
    step, max_samples = 32, options.read_ahead * options.batch_size
    max_bytes = options.read_ahead_bytes
    if options.shuffle and options.block_shuffle:
        # A group's stretches merge into large reads only when advised together, and
        # the next group must already be in flight when this one is consumed: the
        # window holds at least two groups.
        step = group_length(options.block_shuffle, options.block_window)
        mean = int(np.maximum(nbytes, 0).mean()) if len(nbytes) else 0
        max_samples = max(max_samples, 2 * step)
        max_bytes = max(max_bytes, 2 * step * mean)
    ahead = int(getattr(storage, "prefetch_bytes", 0) or 0)
    if ahead:  # remote shards: a download needs a longer head start than a disk read
        max_samples = len(order)
        max_bytes = max(max_bytes, ahead)
    return ReadAhead(
        order,
        pack.spans,
        storage.will_need_many,
        start=first,
        step=step,
        max_samples=max_samples,
        max_bytes=max_bytes,
    )
