"""Per-thread scratch arrays for intermediates that never leave a packing worker.

A decoded image that is about to be downscaled, and the blurred copy the downscale
makes, are as large as the source image. Allocated fresh per image, glibc hands such
blocks back to the kernel when they are freed (heap trim and ``mmap`` thresholds), so
every image page-faulted its intermediates in again: ~0.35 ms of a ~1.9 ms jpeg@256
image on the benchmark machine. Reusing one buffer per thread and purpose avoids it.

Only intermediates may live here: anything returned to the writer must be a fresh
array, or the next image would overwrite it.
"""

from __future__ import annotations

import math
import threading

import numpy as np

__all__ = ["release_scratch", "scratch"]

_local = threading.local()
# Larger images allocate per call: their page faults are a small part of their decode,
# and a thread should not keep hundreds of MB alive.
_MAX_BYTES = 64 << 20


def scratch(slot: str, shape: tuple[int, ...], dtype: np.dtype | type) -> np.ndarray:
    """A reusable array of ``shape``/``dtype`` for this thread and ``slot`` (contents undefined)."""
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes > _MAX_BYTES:
        return np.empty(shape, dtype)
    buffers: dict[str, np.ndarray] = _local.__dict__.setdefault("buffers", {})
    buf = buffers.get(slot)
    if buf is None or buf.nbytes < nbytes:
        # Grow geometrically so a stream of slightly larger images reallocates rarely.
        grown = 2 * buf.nbytes if buf is not None else 1 << 20
        buf = buffers[slot] = np.empty(min(max(nbytes, grown), _MAX_BYTES), np.uint8)
    return buf[:nbytes].view(dtype).reshape(shape)


def release_scratch() -> None:
    """Free this thread's scratch arrays (pool threads free theirs when they exit)."""
    _local.__dict__.pop("buffers", None)
