"""What every benchmarked family shares: the task definition and the timing loop.

Imports only the standard library and numpy at module level, because it also runs
inside the FFCV and DALI virtual environments.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "BATCH",
    "CROP",
    "MEAN",
    "STD",
    "Unavailable",
    "describe_batch",
    "dir_size",
    "fresh_path",
    "time_loader",
]

BATCH = 64
CROP = 224
MEAN = (0.485, 0.456, 0.406)  # ImageNet statistics, on the 0-1 scale
STD = (0.229, 0.224, 0.225)


class Unavailable(Exception):
    """The configuration cannot run here (library missing, API not landed yet); says why."""


def describe_batch(images: Any) -> dict[str, Any]:
    """dtype, shape and statistics of a batch, to check that every family did the same work."""
    if hasattr(images, "detach"):  # torch tensor
        images = images.detach().cpu().numpy()
    arr = np.asarray(images)
    sample = arr[: min(8, len(arr))].astype(np.float64)
    return {
        "dtype": str(arr.dtype),
        "shape": list(arr.shape),
        "mean": round(float(sample.mean()), 3),
        "std": round(float(sample.std()), 3),
    }


def time_loader(
    make_loader: Callable[[], Any],
    *,
    passes: int,
    warmup: int = 1,
    max_batches: int | None = None,
    epoch_iter: Callable[[Any, int], Iterable[Any]] = lambda loader, epoch: loader,
    images_of: Callable[[Any], Any] = lambda batch: batch[0],
) -> dict[str, Any]:
    """Build a loader, then iterate ``warmup`` untimed and ``passes`` timed epochs.

    A pass is one epoch, or its first ``max_batches`` batches. Reports images/s per
    timed pass (median, min, max), the set-up time, time to the first batch (from
    the start of set-up) and the warm-up pass, whose time includes worker start-up
    and any JIT compilation.
    """
    start = time.perf_counter()
    loader = make_loader()
    setup_s = time.perf_counter() - start
    first_batch_s = None
    output = None
    passes_out: list[dict[str, float]] = []
    for epoch in range(warmup + passes):
        t0 = time.perf_counter()
        n = 0
        for b, batch in enumerate(epoch_iter(loader, epoch)):
            images = images_of(batch)
            if first_batch_s is None:
                first_batch_s = time.perf_counter() - start
                output = describe_batch(images)
            n += len(images)
            if max_batches is not None and b + 1 >= max_batches:
                break
        dt = time.perf_counter() - t0
        passes_out.append({"images": n, "seconds": dt, "rate": n / dt if dt > 0 else 0.0})
    timed = [p["rate"] for p in passes_out[warmup:]]
    return {
        "setup_s": setup_s,
        "first_batch_s": first_batch_s,
        "warmup_s": sum(p["seconds"] for p in passes_out[:warmup]),
        "images_per_pass": passes_out[-1]["images"],
        "rate_median": float(np.median(timed)),
        "rate_min": float(min(timed)),
        "rate_max": float(max(timed)),
        "rates": timed,
        "output": output,
    }


def dir_size(path: str | os.PathLike[str]) -> int:
    """Bytes on disk of a file or a directory tree."""
    p = Path(path)
    if p.is_file():
        return p.stat().st_size
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


def fresh_path(path: str | os.PathLike[str]) -> Path:
    """``path`` with whatever was there removed, its parent created."""
    p = Path(path)
    if p.is_dir():
        shutil.rmtree(p)
    elif p.exists():
        p.unlink()
    p.parent.mkdir(parents=True, exist_ok=True)
    return p
