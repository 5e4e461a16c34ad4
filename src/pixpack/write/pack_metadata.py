"""The metadata a pack carries beside its index: classes, counts, options, mean/std.

Mean/std: per channel, as fractions of the dtype's maximum (0..1), over every pixel
of every stored image (after ``max_side``/``channels``). They are reported for the
pack's most common channel count ``C``: with ``C`` = 3 (or 4), a grayscale image
counts its gray value for R, G and B (what ``convert("RGB")`` would give), a 4-channel
image contributes its RGB and, for ``C`` = 4, images without alpha count as opaque;
with ``C`` = 1, only 1-channel images are counted. Workers compute each image's sums
(:func:`pixel_stats`); :func:`metadata` aggregates them once the pack is written.
"""

from __future__ import annotations

import math
from collections import Counter
from datetime import datetime, timezone
from typing import Any

import numpy as np

from .. import format as fmt
from ..metadata.encode import build_columns
from ..metadata.store import column_sections
from ..options import PackOptions
from .sources import Source
from .writer import PackWriter

__all__ = ["metadata", "metadata_sections", "pixel_stats"]


def pixel_stats(array: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """Per-channel sum and sum of squares of the pixels as fractions of the dtype max
    (int16 and float32: in their own units). Images of more than 4 channels count no
    pixels: the journal keeps 4 channels' sums, and mean/std are for 1-4 channels."""
    import cv2  # meanStdDev: one fast C pass in float64 (numpy's axis-0 sum is 20x slower)

    if array.shape[2] > 4:
        return 0, np.zeros(4), np.zeros(4)
    pixels = array.shape[0] * array.shape[1]
    top = _TOPS.get(array.dtype.char, 1.0)  # np.iinfo costs ~10 us
    mean, std = cv2.meanStdDev(np.ascontiguousarray(array))
    mean, std = mean.ravel()[: array.shape[2]], std.ravel()[: array.shape[2]]
    sums = mean * (pixels / top)
    sumsq = (std * std + mean * mean) * (pixels / (top * top))
    return pixels, sums, sumsq


_TOPS = {"B": 255.0, "H": 65535.0}  # uint8, uint16


def metadata(
    src: Source,
    options: PackOptions,
    writer: PackWriter,
    skipped: list[dict[str, Any]],
    conversions: Counter[str],
    kept_source: int,
    *,
    resumed: bool,
) -> dict[str, Any]:
    from .. import __version__  # at call time: pixpack/__init__ imports this module

    records = writer.records()
    kept = records[~records["skipped"].astype(bool)]
    entries = kept["entry"]
    labels = entries["label"].astype(np.int64)
    classes = list(src.classes)
    named_by_labels = not classes
    if named_by_labels:  # a dataset without .classes: name classes after the labels seen
        top = int(labels.max()) if len(labels) else -1
        classes = [str(i) for i in range(top + 1)]
    counts = np.bincount(labels[labels >= 0], minlength=len(classes))
    channels = Counter(int(c) for c in entries["channels"])
    mean, std, stats_channels = _mean_std(kept, channels)
    meta: dict[str, Any] = {
        "classes": classes,
        # Only when named after the labels: a shard of such a dataset sees labels up to
        # its own largest, so shards' lists may be prefixes of each other (merge.py).
        **({"classes_from_labels": True} if named_by_labels else {}),
        "class_to_idx": {name: i for i, name in enumerate(classes)},
        "num_samples": len(entries),
        "source": {**src.describe(), "fingerprint": src.fingerprint()},
        "options": {
            "mode": options.mode,
            "quality": options.quality if options.mode == "jpeg" else None,
            "reencode": options.reencode if options.mode == "jpeg" else None,
            "max_side": options.max_side,
            "channels": options.channels,
            # Only when set: packs without it keep the options they always had.
            **({"short_side": options.short_side} if options.short_side is not None else {}),
        },
        "pixpack_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "skipped": [{"path": s["path"], "reason": s["reason"]} for s in skipped],
        "mean": mean,
        "std": std,
        "stats_channels": stats_channels,
        # The pixels mean/std count: shards' statistics combine exactly with it.
        "stats_pixels": _stats_pixels(kept, stats_channels),
        "channels_histogram": {str(k): v for k, v in sorted(channels.items())},
        "dtype_histogram": {
            str(fmt.DTYPE_FROM_CODE[int(k)]): int(v)
            for k, v in zip(*np.unique(entries["dtype"], return_counts=True), strict=True)
        },
        "mode_histogram": {
            fmt.MODE_NAMES[int(k)]: int(v)
            for k, v in zip(*np.unique(entries["mode"], return_counts=True), strict=True)
        },
        "class_counts": {name: int(counts[i]) for i, name in enumerate(classes)},
        "bytes_stored": int(entries["nbytes"].sum()),
        # Counted in this run only: a resumed pack does not know the first run's.
        "conversions": dict(sorted(conversions.items())),
        "jpeg_kept_as_source": kept_source,
        "conversions_complete": not resumed,
    }
    return meta


def metadata_sections(
    src: Source, writer: PackWriter, classes: list[str]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The per-sample columns (``path`` and the source's extra fields) of the written
    samples and their SQLite image, as sections, and ``metadata["columns"]``."""
    records = writer.records()
    kept = records[~records["skipped"].astype(bool)]
    columns = build_columns(src, kept["source_index"])
    return column_sections(columns, kept["entry"], classes)


def _stats_pixels(kept: np.ndarray, target: int) -> int:
    """Pixels behind mean/std (``target`` channels): 1-channel images only for 1, every
    image for 2-4, none above."""
    if not 1 <= target <= 4:
        return 0
    pixels = kept["pixels"].astype(np.int64)
    if target == 1:
        pixels = pixels[kept["entry"]["channels"] == 1]
    return int(pixels.sum())


def _mean_std(kept: np.ndarray, channels: Counter[int]) -> tuple[list[float], list[float], int]:
    """Aggregate per-image sums into per-channel mean/std (see the module docstring)."""
    if not channels:
        return [], [], 0
    target = max(channels, key=lambda c: (channels[c], c))
    if target > 4:  # multispectral: no per-channel statistics are kept
        return [], [], target
    have = kept["entry"]["channels"].astype(np.int64)
    pixels = kept["pixels"].astype(np.float64)
    sums, sumsq = kept["sum"], kept["sumsq"]
    mean: list[float] = []
    std: list[float] = []
    for c in range(target):
        if target == 1:
            use = have == 1
            s, q, n = sums[use, 0].sum(), sumsq[use, 0].sum(), pixels[use].sum()
        elif c < 3:
            col = np.where(have == 1, 0, c)
            s = np.take_along_axis(sums, col[:, None], axis=1).sum()
            q = np.take_along_axis(sumsq, col[:, None], axis=1).sum()
            n = pixels.sum()
        else:  # alpha: images without one are opaque (1.0)
            alpha = have == 4
            s = sums[alpha, 3].sum() + pixels[~alpha].sum()
            q = sumsq[alpha, 3].sum() + pixels[~alpha].sum()
            n = pixels.sum()
        m = float(s / n) if n else 0.0
        mean.append(m)
        std.append(math.sqrt(max(float(q / n) - m * m, 0.0)) if n else 0.0)
    return mean, std, target
