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

__all__ = ["batch_spec", "candidates"]


class _Candidates:
    """The samples a loader reads (``indices=``, a query, a split) as the pack-like
    object the checks below look at: a subset's sizes, channels and pixel types decide
    its batch, not those of samples it never reads."""

    def __init__(self, pack: Any, indices: np.ndarray) -> None:
        self.rows = np.unique(indices)
        self.index = _Gathered(pack.index, self.rows)
        self.path = getattr(pack, "path", "the pack")

    def __len__(self) -> int:
        return len(self.rows)


class _Gathered:
    """Index columns of some rows, gathered one column at a time when asked (the checks
    read four small columns; the whole entries of a large subset would be 40 B each)."""

    def __init__(self, index: np.ndarray, rows: np.ndarray) -> None:
        self._index, self._rows = index, rows
        self._cache: dict[str, np.ndarray] = {}

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._cache:
            self._cache[name] = np.asarray(self._index[name])[self._rows]
        return self._cache[name]


def candidates(
    pack: Any, indices: np.ndarray | None, probe: Callable[[int], np.ndarray]
) -> tuple[Any, Callable[[int], np.ndarray]]:
    """``(pack-like, probe)`` restricted to ``indices`` (positions of the view map to
    sample indices for ``probe``), or the pack itself when there are none."""
    if indices is None:
        return pack, probe
    view = _Candidates(pack, indices)
    return view, lambda j: probe(int(view.rows[j]))


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
    try:
        stored = fmt.widest_known_dtype(index["dtype"])
    except ValueError as exc:
        raise UsageError(
            f"{getattr(pack, 'path', 'the pack')}: {exc}; pack them into separate packs "
            "(or convert them to one pixel type before packing)."
        ) from None
    _check_color_ops(pack, plan, stored, int(np.max(index["channels"])))
    # What the pipeline hands the batch store: intensity ops turn pixels into float32.
    pixel_dtype = plan.output_dtype(stored)
    widest = int(np.max(index["channels"]))
    first = (int(index["height"][0]), int(index["width"][0]), widest)
    out_c = plan.output_shape(first)[2]
    # Refuses a pipeline whose output size varies (probing callables once).
    height, width = batch_size_hw(pack, plan, widest, probe)
    if channels is not None:
        if not isinstance(channels, int) or not 1 <= channels <= 255:
            raise UsageError(f"channels must be None or 1 to 255 (got {channels!r}).")
        out_c = channels
    # The batch store only replicates 1-channel images; say so now, not per sample.
    counts = np.asarray(index["channels"])  # a view of the map: no per-sample copy
    present = np.unique(counts).tolist() if plan.shapes_known else []
    for c in present:
        got = plan.output_shape((first[0], first[1], c))[2]
        if got not in (1, out_c):
            raise UsageError(
                f"{getattr(pack, 'path', 'the pack')}: the pipeline gives "
                f"{got}-channel images but the batch has channels={out_c}; only 1-channel "
                f"images are widened. Re-pack with channels={out_c} (pixpack pack "
                f"--channels {out_c}) or drop the channels argument."
            )
    if normalize is not None and dtype in ("uint8", "int32"):
        raise UsageError("Normalize needs a float dtype; use dtype='float32' (or drop Normalize).")
    if dtype == "int32" and pixel_dtype.kind == "f":
        raise UsageError(
            "dtype='int32' gives integer pixels as int32, but these pixels are float32; "
            "use dtype='float32'."
        )
    if normalize is not None and hasattr(normalize, "check_units"):
        normalize.check_units(pixel_dtype)
    mean = getattr(normalize, "mean", None)
    std = getattr(normalize, "std", None)
    alpha, beta = affine(out_c, np.dtype(pixel_dtype), mean, std)
    return OutputSpec(
        int(height), int(width), int(out_c), dtype, layout, np.dtype(pixel_dtype), alpha, beta
    )


def _check_color_ops(pack: Any, plan: SamplePlan, stored: np.dtype, channels: int) -> None:
    """Colour ops assume RGB(A) pixels whose white is the type's maximum: refused on
    signed, float or multispectral images (before the first batch, not per sample)."""
    from ..ops import ColorJitter, RandomGrayscale

    if stored.kind == "u" and channels <= 4:
        return
    for op in plan.ops:
        if isinstance(op, (ColorJitter, RandomGrayscale)):
            what = f"{stored} pixels" if stored.kind != "u" else f"{channels}-channel images"
            raise UsageError(
                f"{getattr(pack, 'path', 'the pack')}: {type(op).__name__} works on 8- or "
                f"16-bit RGB(A) images, not {what}; drop it (intensity ops such as "
                "WindowLevel or ScaleIntensityRange suit scans)."
            )
