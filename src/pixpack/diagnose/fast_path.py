"""Timing the loader's native fast path as the loader runs it: whole chunks of samples.

On the fast path (:mod:`pixpack.loader.fused`) one native call per chunk draws the
parameters and crops, resizes, flips and stores every raw sample (JPEG samples: a
region decode plus one resize call each). The op-by-op stages of
:func:`~.stages.time_chain` do the same work one op at a time, through numpy views
and separate calls, so their sum overstates the per-image cost; this stage is what
the doctor's CPU bound uses instead, while the op-by-op stages still say which part
of the work dominates.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ..loader.batching import run_chunk
from ..loader.buffers import BatchBuffer
from .stages import StageTiming

__all__ = ["FAST_PATH_STAGE", "time_fast_path"]

FAST_PATH_STAGE = "fast path (native, whole sample)"


def time_fast_path(
    loader: Any,
    indices: np.ndarray,
    spec: Any,
    cores: int,
    *,
    epoch: int = 0,
    budget: float = 5.0,
) -> StageTiming | None:
    """One thread running ``loader``'s chunks over ``indices``; None off the fast path."""
    reader = loader._reader
    if getattr(reader.pipeline, "fused", None) is None:
        return None
    chunk = max(1, loader._chunk)
    buf = BatchBuffer(spec, chunk)
    buf.work[...] = 0  # fault the pages in: the loader reuses warm buffers
    failures: list[int] = []

    def fail(index: int, exc: BaseException) -> None:
        failures.append(index)

    # One untimed chunk first: per-thread scratch and first-touch costs are paid once
    # per loader thread, not per sample.
    first = np.ascontiguousarray(indices[:chunk], np.int64)
    run_chunk(reader, first, epoch, buf.work[: len(first)], spec, buf.ok[: len(first)], fail)
    failures.clear()
    seconds, samples = 0.0, 0
    for start in range(0, len(indices), chunk):
        part = np.ascontiguousarray(indices[start : start + chunk], np.int64)
        a = time.perf_counter()
        run_chunk(reader, part, epoch, buf.work[: len(part)], spec, buf.ok[: len(part)], fail)
        buf.finish_chunk(0, len(part))
        seconds += time.perf_counter() - a
        samples += len(part)
        if samples >= 8 and seconds > budget:
            break
    note = "draw + crop + resize + flip + store in one native call per chunk"
    if failures:
        note += f"; {len(failures)} sample(s) failed and went to the general path"
    return StageTiming(FAST_PATH_STAGE, "fast", samples, seconds, 0, cores, note)
