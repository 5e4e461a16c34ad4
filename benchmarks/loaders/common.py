"""What every benchmarked family shares: the task definition and the timing loop.

Imports only the standard library and numpy at module level, because it also runs
inside the FFCV and DALI virtual environments.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
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
    "machine_busy_s",
    "time_loader",
    "tree_cpu_s",
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


def tree_cpu_s(pid: int | None = None) -> float:
    """User+system CPU seconds of a live process tree: every thread of ``pid`` (default:
    this process) and of its descendants (DataLoader workers). Read from /proc at the
    boundaries of a timed window only, so it costs nothing inside it; 0.0 off Linux."""
    pid = os.getpid() if pid is None else pid
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    total = 0.0
    stack = [pid]
    while stack:
        p = stack.pop()
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    stack.extend(int(c) for c in f.read().split())
        except (OSError, ValueError, IndexError):
            continue  # ended meanwhile, or no /proc
    return total


def machine_busy_s() -> float:
    """Busy CPU seconds of the whole machine so far (all cores, /proc/stat; 0.0 off Linux).
    Less the process tree's CPU over a window, it is the other work that ran meanwhile."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return 0.0
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    return (sum(fields) - fields[3] - fields[4]) / tick  # less idle and iowait


def _stream(
    loader: Any, epoch_iter: Callable[[Any, int], Iterable[Any]], first_epoch: int
) -> Iterator[Any]:
    """Batches of ``loader`` across epoch boundaries, forever: one long-lived loader, a
    new epoch started as soon as the previous one ends. An epoch iterator left part-way
    when the stream is closed is closed too where it can be (FFCV's stops its thread)."""
    epoch = first_epoch
    while True:
        it = iter(epoch_iter(loader, epoch))
        n, finished = 0, False
        try:
            for batch in it:
                n += 1
                yield batch
            finished = True
        finally:
            close = getattr(it, "close", None)
            if not finished and close is not None and it is not loader:
                close()
        if n == 0:
            raise RuntimeError(f"the loader yielded no batch in epoch {epoch}")
        epoch += 1


def time_loader(
    make_loader: Callable[[], Any],
    *,
    passes: int,
    warmup: int = 1,
    max_batches: int | None = None,
    pass_images: int | None = None,
    epoch_iter: Callable[[Any, int], Iterable[Any]] = lambda loader, epoch: loader,
    images_of: Callable[[Any], Any] = lambda batch: batch[0],
) -> dict[str, Any]:
    """Build a loader once, iterate ``warmup`` untimed epochs, then ``passes`` timed windows.

    A timed window is a fixed number of images (``pass_images``; default: twice the
    images of the warm-up epoch, 4,000 on the 2,000-image set) taken from one continuous
    stream of batches of the same loader, across epoch boundaries. A window starts when
    the batch that closed the previous window arrives (the first: when the warm-up
    ends) and ends when the batch that completes it arrives: nothing between two windows
    goes untimed, every family pays its per-epoch start-up and teardown in proportion to
    the images it delivers, and the timer never includes a set-up other families skip.
    Each window
    also records the CPU seconds of the whole process tree (``cores``: CPU s / wall s;
    ``cpu_us_per_image``), which show when a row ran short of cores, and the cores the
    rest of the machine used meanwhile (``other_cores``: other work, which slows it).

    With ``max_batches`` (the memory-vs-size rows) a pass is instead the first
    ``max_batches`` batches of one epoch, timed from the start of that epoch.

    Reports images/s per timed window (median, min, max), the set-up time, time to the
    first batch (from the start of set-up) and the warm-up, whose time includes worker
    start-up and any JIT compilation.
    """
    start = time.perf_counter()
    loader = make_loader()
    setup_s = time.perf_counter() - start
    first: dict[str, Any] = {}

    def count(batch: Any) -> int:
        images = images_of(batch)
        if not first:
            first["s"] = time.perf_counter() - start
            first["output"] = describe_batch(images)
        return len(images)

    warm_images = 0
    t0 = time.perf_counter()
    for epoch in range(warmup):
        for b, batch in enumerate(epoch_iter(loader, epoch)):
            warm_images += count(batch)
            if max_batches is not None and b + 1 >= max_batches:
                break
    warmup_s = time.perf_counter() - t0
    windows: list[dict[str, float]] = []
    if max_batches is not None:
        for epoch in range(warmup, warmup + passes):
            t0, c0, m0, n = time.perf_counter(), tree_cpu_s(), machine_busy_s(), 0
            for b, batch in enumerate(epoch_iter(loader, epoch)):
                n += count(batch)
                if b + 1 >= max_batches:
                    break
            c1 = tree_cpu_s()
            windows.append(_window(n, time.perf_counter() - t0, c1 - c0, machine_busy_s() - m0))
    else:
        size = pass_images or 2 * warm_images or 1
        stream = _stream(loader, epoch_iter, warmup)
        try:
            t0, c0, m0 = time.perf_counter(), tree_cpu_s(), machine_busy_s()
            n = 0
            for batch in stream:
                n += count(batch)
                if n >= size:
                    t1, c1, m1 = time.perf_counter(), tree_cpu_s(), machine_busy_s()
                    windows.append(_window(n, t1 - t0, c1 - c0, m1 - m0))
                    if len(windows) == passes:
                        break
                    t0, c0, m0, n = t1, c1, m1, 0
        finally:
            stream.close()
    rates = [w["rate"] for w in windows]
    return {
        "setup_s": setup_s,
        "first_batch_s": first.get("s"),
        "warmup_s": warmup_s,
        "images_per_pass": windows[-1]["images"],
        "rate_median": float(np.median(rates)),
        "rate_min": float(min(rates)),
        "rate_max": float(max(rates)),
        "rates": rates,
        "window_images": [int(w["images"]) for w in windows],
        "cores": [w["cores"] for w in windows],
        "cpu_us_per_image": [w["cpu_us_per_image"] for w in windows],
        "other_cores": [w["other_cores"] for w in windows],
        "output": first.get("output"),
    }


def _window(images: int, seconds: float, cpu_s: float, machine_s: float = 0.0) -> dict[str, float]:
    return {
        "images": images,
        "seconds": seconds,
        "rate": images / seconds if seconds > 0 else 0.0,
        "cores": cpu_s / seconds if seconds > 0 else 0.0,
        "cpu_us_per_image": cpu_s * 1e6 / images if images else 0.0,
        "other_cores": max(0.0, machine_s - cpu_s) / seconds if seconds > 0 else 0.0,
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
