"""The readers of the out-of-core group, each timed the same way (run by worker.py).

Every reader iterates shuffled batches of 64 (RandomResizedCrop(224) + flip +
Normalize, float32, 2 workers/threads) and is timed over ``samples`` images after
``warmup_batches`` untimed batches (thread start-up, FFCV's JIT). The bytes read
from disk in the timed window are ``read_bytes`` of ``/proc/PID/io`` summed over this
process and its children, so DataLoader worker processes and read-ahead threads are
counted; imports before the window are not. (The blkio cgroup's counters stay at zero
on this kernel unless a throttle rule is set, which would change what is measured.)

``pread`` is the disk's limit for the same work: the exact byte spans of the samples
pixpack's loader reads, in the same order, read with ``os.pread`` by ``queue_depth``
threads (no decoding), timed the same way.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from .common import BATCH, CROP, MEAN, STD

__all__ = ["pixpack", "torchvision", "ffcv", "pread"]


def _read_bytes() -> int | None:
    """Bytes this process and its live children have read from storage so far."""
    import psutil

    total = 0
    try:
        me = psutil.Process()
        for proc in (me, *me.children(recursive=True)):
            for line in Path(f"/proc/{proc.pid}/io").read_text().splitlines():
                if line.startswith("read_bytes:"):
                    total += int(line.split()[1])
    except (OSError, psutil.Error):
        return None
    return total


def _timed(batches: Iterable[Any], cfg: dict[str, Any], size_of: Any = len) -> dict[str, Any]:
    """Iterate: ``warmup_batches`` untimed, then ``samples`` images timed."""
    warmup, target = cfg.get("warmup_batches", 5), cfg["samples"]
    seen = timed = 0
    t0 = read0 = None
    start = time.perf_counter()
    first = None
    for b, batch in enumerate(batches):
        n = size_of(batch)
        if first is None:
            first = time.perf_counter() - start
        if b + 1 == warmup:
            t0, read0 = time.perf_counter(), _read_bytes()
        elif t0 is not None:
            timed += n
            if timed >= target:
                break
        seen += n
    if t0 is None or timed == 0:
        raise RuntimeError(f"only {seen} images: not enough for {warmup} warm-up batches")
    seconds = time.perf_counter() - t0
    read1 = _read_bytes()
    read = None if read0 is None or read1 is None else read1 - read0
    return {
        "images": timed,
        "seconds": seconds,
        "rate": timed / seconds,
        "first_batch_s": first,
        "bytes_read": read,
        "bytes_per_image": None if read is None else read / timed,
    }


def pixpack(cfg: dict[str, Any]) -> dict[str, Any]:
    import pixpack as px
    from pixpack.ops import Normalize, RandomHorizontalFlip, RandomResizedCrop

    pack = px.open(cfg["artifact"])
    loader = px.Loader(
        pack,
        BATCH,
        pipeline=[RandomResizedCrop(CROP), RandomHorizontalFlip(), Normalize(MEAN, STD)],
        workers=cfg["workers"],
        seed=0,
        read_ahead=cfg.get("read_ahead", 8),
        block_shuffle=cfg.get("block_shuffle", 0),
        block_window=cfg.get("block_window", 8),
    )
    stored = int(np.asarray(pack.index["nbytes"]).sum(dtype=np.int64))
    out = _timed((labels for _, labels in loader), cfg)
    loader.close()
    out["stored_bytes_per_image"] = stored / len(pack)
    return out


def torchvision(cfg: dict[str, Any]) -> dict[str, Any]:
    from torchvision.datasets import ImageFolder

    from .torchvision_baseline import make_dataloader, make_transform

    dataset = ImageFolder(cfg["data"], transform=make_transform("v1"))
    loader = make_dataloader(dataset, cfg["workers"])
    return _timed((labels for _, labels in loader), cfg)


def ffcv(cfg: dict[str, Any]) -> dict[str, Any]:
    from .ffcv_bench import make_loader

    loader = make_loader(
        cfg["artifact"], cfg["workers"], os_cache=cfg["os_cache"], quasi_random=cfg["quasi_random"]
    )
    return _timed((labels for _, labels in loader), cfg)


def pread(cfg: dict[str, Any]) -> dict[str, Any]:
    """The disk's limit: the loader's exact spans, its order, ``queue_depth`` threads."""
    import pixpack as px
    from pixpack.loader.ordering import epoch_order

    pack = px.open(cfg["artifact"])
    warm = cfg.get("warmup_batches", 5) * BATCH
    order = epoch_order(len(pack), 0, 0, True)[: warm + cfg["samples"]]
    offsets, nbytes = pack.spans(order)
    pack.close()
    fd = os.open(cfg["artifact"], os.O_RDONLY)
    depth = cfg["queue_depth"]
    lock = threading.Lock()
    cursor = [0]
    done = [0]
    finished = threading.Condition()

    def work() -> None:
        while True:
            with lock:
                i = cursor[0]
                cursor[0] += 1
            if i >= len(order):
                return
            os.pread(fd, int(nbytes[i]), int(offsets[i]))
            with finished:
                done[0] += 1
                finished.notify_all()

    def batches() -> Iterable[int]:
        threads = [threading.Thread(target=work, daemon=True) for _ in range(depth)]
        for t in threads:
            t.start()
        for b in range(-(-len(order) // BATCH)):
            need = min(len(order), (b + 1) * BATCH)
            with finished:
                finished.wait_for(lambda need=need: done[0] >= need)
            yield min(BATCH, len(order) - b * BATCH)
        for t in threads:
            t.join()

    try:
        return _timed(batches(), cfg, size_of=int)
    finally:
        os.close(fd)
