"""One rank of the distributed benchmark (``benchmarks/distributed.py``), run by torchrun.

    python -m torch.distributed.run --standalone --nproc_per_node N \\
        benchmarks/loaders/dist_rank.py --pack P --out OUT.json [--cgroup DIR]

Every rank: ``init_process_group("gloo")``, then ``pixpack.Loader(pack, 64,
pipeline=[RandomResizedCrop(224), RandomHorizontalFlip(), Normalize(mean, std)],
workers=1)``, which takes its shard from the group (no rank/world_size arguments).
Epoch 0 reads the pack from disk (the parent dropped the page cache) and warms it;
then ``--passes`` timed windows of at least ``--window-images`` images each stream
epoch after epoch from the page cache. At the phase boundaries (after the set-up,
after epoch 0, after the timed windows) the ranks meet at a barrier and rank 0 reads
the node's memory: the cgroup's ``memory.stat`` and the pack's resident pages
(``mincore``). Each rank samples its own ``RssAnon`` / ``RssFile`` every 20 ms and
reads its ``smaps_rollup`` (``Pss_File``: the map's pages split between the ranks that
map them) at the end. Rank 0 gathers everything and writes ``--out``.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loaders.common import BATCH, CROP, MEAN, STD, describe_batch, tree_cpu_s

__all__ = ["cgroup_stat", "machine_cpu", "resident_bytes"]

PAGE = os.sysconf("SC_PAGE_SIZE")


def resident_bytes(path: str | os.PathLike[str]) -> int:
    """Bytes of ``path`` in the page cache, by ``mincore`` over a fresh read-only map
    (mapping touches nothing; the answer is the file's, whoever read it)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [
        ctypes.c_void_p,
        ctypes.c_size_t,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_long,
    ]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        if size == 0:
            return 0
        addr = libc.mmap(None, size, 1, 1, fd, 0)  # PROT_READ, MAP_SHARED
        if addr in (None, ctypes.c_void_p(-1).value):
            raise OSError(ctypes.get_errno(), "mmap failed")
        try:
            vec = np.zeros((size + PAGE - 1) // PAGE, np.uint8)
            if libc.mincore(addr, size, vec.ctypes.data) != 0:
                raise OSError(ctypes.get_errno(), "mincore failed")
        finally:
            libc.munmap(addr, size)
    finally:
        os.close(fd)
    return int(np.count_nonzero(vec & 1)) * PAGE


def cgroup_stat(cgroup: str | None) -> dict[str, int]:
    """The cgroup v1 ``memory.stat`` (bytes and counts), plus ``usage_in_bytes``."""
    if not cgroup:
        return {}
    out: dict[str, int] = {}
    for line in Path(cgroup, "memory.stat").read_text().splitlines():
        key, value = line.split()
        out[key] = int(value)
    out["usage_in_bytes"] = int(Path(cgroup, "memory.usage_in_bytes").read_text())
    return out


def _status() -> dict[str, int]:
    """This process's VmRSS, VmHWM, RssAnon, RssFile, RssShmem in bytes."""
    keys = {"VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem"}
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in keys:
                out[key] = int(rest.split()[0]) * 1024
    return out


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat."""
    tick = os.sysconf("SC_CLK_TCK")
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / tick, sum(fields[:8]) / tick


def _proc_cpu_s(pid: int) -> float:
    """utime + stime of process ``pid`` (all its threads), 0.0 if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def _smaps_rollup() -> dict[str, int]:
    out = {}
    with open("/proc/self/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3 and parts[2] == "kB":
                out[parts[0].rstrip(":")] = int(parts[1]) * 1024
    return out


class _Sampler(threading.Thread):
    """Peak RssAnon / RssFile / VmRSS of this process, sampled every ``interval`` s;
    ``mark(name)`` records the peaks so far under ``name`` (a phase's end)."""

    def __init__(self, interval: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.peak = {"RssAnon": 0, "RssFile": 0, "VmRSS": 0}
        self.marks: dict[str, dict[str, int]] = {}
        self._stop_event = threading.Event()
        self._lock = threading.Lock()

    def _sample(self) -> None:
        now = _status()
        with self._lock:
            for key in self.peak:
                self.peak[key] = max(self.peak[key], now.get(key, 0))

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            self._sample()

    def mark(self, name: str) -> None:
        self._sample()
        with self._lock:
            self.marks[name] = {"peak": dict(self.peak), "now": _status()}

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=2)


def _stream(loader: Any, first_epoch: int) -> Any:
    """Batches across epoch boundaries, forever (one long-lived loader, as training)."""
    epoch = first_epoch
    while True:
        loader.set_epoch(epoch)
        yield from loader
        epoch += 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pack", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--cgroup", default=None, help="cgroup v1 memory dir of the node")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--window-images", type=int, default=5000, help="at least, per rank")
    args = parser.parse_args()

    sampler = _Sampler()
    sampler.start()
    t_start = time.perf_counter()
    import torch
    import torch.distributed as dist

    import pixpack
    from pixpack.ops import Normalize, RandomHorizontalFlip, RandomResizedCrop

    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    node: dict[str, Any] = {}  # rank 0's node-wide snapshots
    cpu_marks: dict[str, float] = {}  # this rank's CPU seconds at each snapshot

    def snapshot(name: str) -> None:
        dist.barrier()
        sampler.mark(name)
        cpu_marks[name] = tree_cpu_s()
        if rank == 0:
            busy, total = machine_cpu()
            node[name] = {
                "t": time.perf_counter(),
                "machine_busy_s": busy,
                "machine_total_s": total,
                "agent_cpu_s": _proc_cpu_s(os.getppid()),  # torchrun's agent
                "pack_resident_bytes": resident_bytes(args.pack),
                "cgroup": cgroup_stat(args.cgroup),
            }
        dist.barrier()

    pipeline = [RandomResizedCrop(CROP), RandomHorizontalFlip(), Normalize(MEAN, STD)]
    loader = pixpack.Loader(args.pack, BATCH, pipeline=pipeline, workers=args.workers, seed=0)
    shard = loader.options.rank, loader.options.world_size
    setup_s = time.perf_counter() - t_start
    snapshot("ready")

    # Epoch 0: from disk (page cache dropped by the parent); warms the pack.
    t0, c0, n = time.perf_counter(), tree_cpu_s(), 0
    output = None
    loader.set_epoch(0)
    for images, _labels in loader:
        if output is None:
            output = describe_batch(images)
        n += len(images)
    cold = {"images": n, "seconds": time.perf_counter() - t0, "cpu_s": tree_cpu_s() - c0}
    cold["t0"] = t0
    epoch_images = n
    snapshot("after_epoch0")

    # Timed windows, warm: whole epochs of this rank, at least --window-images images.
    size = epoch_images * max(1, -(-args.window_images // max(epoch_images, 1)))
    windows: list[dict[str, float]] = []
    stream = _stream(loader, 1)
    t0, c0, n = time.perf_counter(), tree_cpu_s(), 0
    for images, _labels in stream:
        n += len(images)
        if n >= size:
            t1, c1 = time.perf_counter(), tree_cpu_s()
            windows.append({"images": n, "t0": t0, "t1": t1, "cpu_s": c1 - c0})
            if len(windows) == args.passes:
                break
            t0, c0, n = t1, c1, 0
    stream.close()
    snapshot("after_timed")
    rollup = _smaps_rollup()
    sampler.stop()

    mine = {
        "rank": rank,
        "world_size": world,
        "loader_shard": list(shard),
        "local_rank": int(os.environ.get("LOCAL_RANK", "0")),
        "pid": os.getpid(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "pixpack_file": pixpack.__file__,
        "torch_threads": torch.get_num_threads(),
        "setup_s": setup_s,
        "batches_per_epoch": len(loader),
        "epoch_images": epoch_images,
        "cold": cold,
        "windows": windows,
        "memory": sampler.marks,
        "cpu_marks": cpu_marks,
        "smaps_rollup": {
            k: rollup.get(k, 0)
            for k in ("Rss", "Pss", "Pss_Anon", "Pss_File", "Pss_Shmem", "Anonymous")
        },
        "output": output,
    }
    gathered: list[Any] = [None] * world
    dist.all_gather_object(gathered, mine)
    if rank == 0:
        doc = {"ranks": gathered, "node": node, "pack": args.pack}
        Path(args.out).write_text(json.dumps(doc, indent=1))
    dist.barrier()
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
