"""What a batch looks like: its spec from the pack, the pipeline and the loader's
dtype/layout/channels arguments, refused when it can already tell the batch cannot hold it.

The batch store only widens 1-channel images, and Normalize needs a float output; both
are said once here rather than per sample.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .. import format as fmt
from ..errors import UsageError
from .batching import SamplePlan
from .convert import OutputSpec, affine
from .validate import batch_size_hw

__all__ = ["batch_spec"]


def batch_spec(
    pack: Any,
    plan: SamplePlan,
    normalize: Any,
    dtype: str,
    layout: str,
    channels: int | None,
    probe: Callable[[int], np.ndarray],
) -> OutputSpec:
    """The batch's shape and conversion, or a UsageError for what cannot batch."""
    index = pack.index
    pixel_dtype = fmt.widest_known_dtype(index["dtype"])
    widest = int(np.max(index["channels"]))
    first = (int(index["height"][0]), int(index["width"][0]), widest)
    out_c = plan.output_shape(first)[2]
    # Refuses a pipeline whose output size varies (probing callables once).
    height, width = batch_size_hw(pack, plan, widest, probe)
    if channels is not None:
        if channels not in (1, 3, 4):
            raise UsageError(f"channels must be None, 1, 3 or 4 (got {channels!r}).")
        out_c = channels
    # The batch store only replicates 1-channel images; say so now, not per sample.
    counts = np.asarray(index["channels"])  # a view of the map: no per-sample copy
    present = [c for c in (1, 2, 3, 4) if plan.shapes_known and (counts == c).any()]
    for c in present:
        got = plan.output_shape((first[0], first[1], c))[2]
        if got not in (1, out_c):
            raise UsageError(
                f"{getattr(pack, 'path', 'the pack')}: the pipeline gives "
                f"{got}-channel images but the batch has channels={out_c}; only 1-channel "
                f"images are widened. Re-pack with channels={out_c} (pixpack pack "
                f"--channels {out_c}) or drop the channels argument."
            )
    if normalize is not None and dtype == "uint8":
        raise UsageError("Normalize needs a float dtype; use dtype='float32' (or drop Normalize).")
    mean = getattr(normalize, "mean", None)
    std = getattr(normalize, "std", None)
    alpha, beta = affine(out_c, np.dtype(pixel_dtype), mean, std)
    return OutputSpec(
        int(height), int(width), int(out_c), dtype, layout, np.dtype(pixel_dtype), alpha, beta
    )
