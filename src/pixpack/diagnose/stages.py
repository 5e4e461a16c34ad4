"""Timing each stage of the loader alone, on a sample of the pack.

The loader runs, per sample, ``read bytes -> decode -> op 1 -> op 2 ... -> convert``
on worker threads, then hands the batch over (and copies it to the GPU). Here the
same functions the loader calls (``decode_jpeg``/``choose_scale``, each op's
``make_params``/``apply``/``apply_region``, ``write_sample`` into a
:class:`~pixpack.loader.buffers.BatchBuffer`) run on one thread with a timer around
each, so every stage gets its own per-image cost on realistic inputs (the outputs
of the previous stages, drawn with the loader's per-sample generator).

Storage is timed apart, before anything else touches the samples: the pack's pages
are dropped from the page cache (``posix_fadvise(DONTNEED)``) and the sampled
samples are read back with ``pread`` on ``threads`` threads, in shuffled order
(cold); then read again through the memory map (warm). Whether the drop took effect
is checked with ``mincore`` (pages still mapped by a process, e.g. a running loader,
cannot be dropped).

Parallel rates are the one-thread rate times the usable cores for stages that release
the GIL (pixpack's decoders and ops do); plain Python callables and ``PythonOp`` are
assumed to hold it, so their parallel rate is their one-thread rate.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import dataclasses
import mmap
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import format as fmt
from ..ops.base import sample_rng
from ..optional import available
from .pipeline_spec import op_name

__all__ = [
    "StageTiming",
    "ChainTimings",
    "sample_indices",
    "drop_page_cache",
    "resident_fraction",
    "time_storage_cold",
    "time_storage_warm",
    "time_chain",
    "time_host_to_device",
    "holds_gil",
]

_PAGE = mmap.PAGESIZE


@dataclass(frozen=True)
class StageTiming:
    """One stage: ``seconds`` of one-thread time over ``samples`` images.

    kind: ``storage``, ``decode``, ``op``, ``convert``, ``transfer`` or ``reference``
        (measured for comparison only, e.g. a full JPEG decode the loader avoids).
    parallel: how many threads can run this stage at once (the rate multiplier);
        0 means ``seconds`` is already wall time on all threads (cold storage).
    """

    name: str
    kind: str
    samples: int
    seconds: float
    nbytes: int = 0
    parallel: float = 1.0
    note: str = ""

    @property
    def per_image(self) -> float:
        """Seconds per image on one thread (wall seconds per image for parallel=0)."""
        return self.seconds / max(self.samples, 1)

    @property
    def rate(self) -> float | None:
        """Images/s on one thread (None when only the parallel rate was measured)."""
        if self.parallel == 0:
            return None
        return self.samples / max(self.seconds, 1e-12)

    @property
    def parallel_rate(self) -> float:
        """Images/s with every usable thread."""
        base = self.samples / max(self.seconds, 1e-12)
        return base if self.parallel == 0 else base * self.parallel

    @property
    def mb_per_second(self) -> float | None:
        if not self.nbytes:
            return None
        return self.nbytes / max(self.seconds, 1e-12) / 1e6

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "samples": self.samples,
            "ms_per_image": self.per_image * 1e3,
            "images_per_second_1_thread": self.rate,
            "images_per_second_parallel": self.parallel_rate,
            "parallel": self.parallel,
            "mb_per_second": self.mb_per_second,
            "note": self.note,
        }


def sample_indices(n: int, count: int, seed: int = 0) -> np.ndarray:
    """``count`` distinct sample indices in shuffled order (a training epoch's pattern)."""
    rng = np.random.default_rng(seed)
    return rng.permutation(n)[: min(count, n)]


# -- page cache -----------------------------------------------------------------------------
def drop_page_cache(path: str | os.PathLike[str]) -> bool:
    """Ask the kernel to drop the file's clean cached pages; False if it cannot be asked."""
    if not hasattr(os, "posix_fadvise"):  # pragma: no cover - non-Linux
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        return True
    except OSError:  # pragma: no cover - file systems without fadvise
        return False
    finally:
        os.close(fd)


def _libc() -> Any:
    name = ctypes.util.find_library("c")
    if name is None:  # pragma: no cover
        return None
    libc = ctypes.CDLL(name, use_errno=True)
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    libc.mincore.restype = ctypes.c_int
    return libc


def resident_fraction(
    path: str | os.PathLike[str], ranges: Sequence[tuple[int, int]] | None = None
) -> float | None:
    """Fraction of the file's pages (or of the pages of ``ranges`` = ``(offset, nbytes)``)
    in the page cache, from ``mincore`` on a fresh read-only map; None if unknown.

    Only the pages asked about are queried, so a terabyte pack costs no more than its
    sampled ranges.
    """
    try:
        libc = _libc()
        size = os.path.getsize(path)
        if libc is None or size == 0:
            return None
        if ranges is None:
            ranges = [(0, size)]
        spans = sorted(
            (offset // _PAGE, min(-(-(offset + nbytes) // _PAGE), -(-size // _PAGE)))
            for offset, nbytes in ranges
            if nbytes > 0 and offset < size
        )
        if not spans:
            return None
        resident = total = 0
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            base = _address(mm)
            done = -1  # last page counted, so overlapping ranges count once
            for first, stop in spans:
                first = max(first, done + 1)
                if first >= stop:
                    continue
                vec = np.zeros(stop - first, np.uint8)
                length = min(stop * _PAGE, size) - first * _PAGE
                addr = ctypes.c_void_p(base + first * _PAGE)
                if libc.mincore(addr, ctypes.c_size_t(length), vec.ctypes.data) != 0:
                    return None
                resident += int(np.count_nonzero(vec & 1))
                total += len(vec)
                done = stop - 1
    except (OSError, ValueError, AttributeError, BufferError):
        return None
    return resident / total if total else None


def _address(mm: mmap.mmap) -> int:
    """The base address of a read-only map (numpy exposes it without a writable buffer)."""
    return int(np.frombuffer(mm, np.uint8).ctypes.data)


def time_storage_cold(
    path: str | os.PathLike[str], ranges: Sequence[tuple[int, int]], threads: int
) -> tuple[StageTiming, float | None, float | None]:
    """Drop the page cache, then ``pread`` every range on ``threads`` threads.

    Returns the timing and the resident fraction of the ranges before and after the drop.
    """
    before = resident_fraction(path, ranges)
    dropped = drop_page_cache(path)
    after = resident_fraction(path, ranges) if dropped else before
    fd = os.open(path, os.O_RDONLY)
    try:

        def read(r: tuple[int, int]) -> int:
            return len(os.pread(fd, r[1], r[0]))

        start = time.perf_counter()
        with ThreadPoolExecutor(max(1, threads)) as pool:
            total = sum(pool.map(read, ranges))
        wall = time.perf_counter() - start
    finally:
        os.close(fd)
    note = f"{threads} threads, pread, shuffled order"
    if not dropped:
        note += "; page-cache drop unavailable"
    elif after is not None and after > 0.1:
        note += f"; drop did not take effect ({after:.0%} still cached)"
    timing = StageTiming("storage (cold)", "storage", len(ranges), wall, total, 0, note)
    return timing, before, after


def time_storage_warm(pack: Any, indices: np.ndarray, cores: int) -> StageTiming:
    """Copy each sample's bytes out of the memory map once its pages are cached
    (worker threads fault pages in parallel, so the parallel rate is x ``cores``)."""
    biggest = int(max((pack.index["nbytes"][i] for i in indices), default=0))
    scratch = np.empty(max(biggest, 1), np.uint8)
    total = 0
    start = time.perf_counter()
    for i in indices:
        data = np.frombuffer(pack.sample_bytes(int(i)), np.uint8)
        scratch[: len(data)] = data
        total += len(data)
    seconds = time.perf_counter() - start
    return StageTiming(
        "storage (warm)", "storage", len(indices), seconds, total, cores, "page cache, memory map"
    )


# -- the per-sample chain ---------------------------------------------------------------------
def holds_gil(op: Any) -> bool:
    """Plain callables and PythonOp are assumed to hold the GIL (Python per sample)."""
    from ..ops import PythonOp

    is_op = hasattr(op, "make_params") and hasattr(op, "apply")
    return isinstance(op, PythonOp) or not is_op


@dataclass
class ChainTimings:
    """Accumulated one-thread seconds per stage of the per-sample chain."""

    names: list[str]
    kinds: list[str]
    gil: list[bool]
    seconds: list[float]
    samples: int = 0
    shapes: list[tuple[int, int]] = dataclasses.field(default_factory=list)
    modes: dict[str, int] = dataclasses.field(default_factory=dict)
    region_op: str | None = None  # the leading crop/resize op (the loader's ROI decode)

    def add(self, slot: int, seconds: float) -> None:
        self.seconds[slot] += seconds

    def stages(self, cores: int) -> list[StageTiming]:
        out = []
        for name, kind, gil, secs in zip(
            self.names, self.kinds, self.gil, self.seconds, strict=True
        ):
            note = "assumed to hold the GIL" if gil else ""
            out.append(StageTiming(name, kind, self.samples, secs, 0, 1 if gil else cores, note))
        return out


def time_chain(
    pack: Any,
    indices: np.ndarray,
    plan: Any,
    spec: Any,
    *,
    seed: int = 0,
    epoch: int = 0,
    batch_size: int = 64,
    budget: float = 10.0,
    on_sample: Callable[[], None] | None = None,
) -> ChainTimings:
    """Run decode -> ops -> convert per sample as :class:`SampleReader` does, timing each.

    ``plan`` is a :class:`~pixpack.loader.batching.SamplePlan`, ``spec`` the host-side
    :class:`~pixpack.loader.convert.OutputSpec`. Stops after ``budget`` seconds (at
    least 8 samples).
    """
    from ..loader.buffers import BatchBuffer
    from ..loader.convert import write_sample
    from ..read.jpeg import choose_scale, decode_jpeg

    region_op = plan.region_op
    index = pack.index
    modes = {int(m) for m in np.unique(index["mode"][np.sort(indices)])}
    jpeg = fmt.MODE_JPEG in modes
    first = "decode (lossless)" if fmt.MODE_LOSSLESS in modes else "decode (view)"
    names, kinds, gil = [first if not jpeg else "decode"], ["decode"], [False]
    if jpeg:
        names = ["decode (ROI+DCT)" if region_op is not None else "decode (full)"]
        if region_op is not None:
            names.append("decode (full, not used)")
            kinds.append("reference")
            gil.append(False)
    first_op = len(names)
    for op in plan.ops:
        names.append(op_name(op))
        kinds.append("op")
        gil.append(holds_gil(op))
    names.append("convert (collate)")
    kinds.append("convert")
    gil.append(False)
    t = ChainTimings(names, kinds, gil, [0.0] * len(names))
    t.region_op = op_name(region_op) if region_op is not None else None
    dtypes: dict[int, Any] = {
        code: np.dtype(dt).newbyteorder("<")  # type: ignore[call-overload]
        for code, dt in fmt.DTYPE_FROM_CODE.items()
    }
    buf = BatchBuffer(spec, batch_size)
    buf.work[...] = 0  # fault the pages in: the loader reuses warm buffers, so should we
    planes = [np.empty((spec.height, spec.width), spec.pixel_dtype) for _ in range(spec.channels)]
    convert_slot = len(names) - 1
    clock = time.perf_counter
    started = clock()
    slot_in_batch = 0
    for i in indices:
        i = int(i)
        rng = sample_rng(seed, epoch, i)
        entry = index[i]
        shape = (int(entry["height"]), int(entry["width"]), int(entry["channels"]))
        mode = int(entry["mode"])
        data = pack.sample_bytes(i)
        t.shapes.append(shape[:2])
        name = fmt.MODE_NAMES.get(mode, str(mode))
        t.modes[name] = t.modes.get(name, 0) + 1
        if mode == fmt.MODE_RAW:
            a = clock()
            img = np.frombuffer(data, dtype=dtypes[int(entry["dtype"])]).reshape(shape)
            t.add(0, clock() - a)
            if region_op is not None:
                a = clock()
                img = region_op.apply(img, region_op.make_params(rng, shape))
                t.add(first_op, clock() - a)
        elif mode == fmt.MODE_LOSSLESS:
            from ..read.lossless import decode_lossless

            a = clock()
            img = decode_lossless(data, shape, dtypes[int(entry["dtype"])])
            t.add(0, clock() - a)
            if region_op is not None:
                a = clock()
                img = region_op.apply(img, region_op.make_params(rng, shape))
                t.add(first_op, clock() - a)
        else:
            if region_op is not None:
                a = clock()
                params = region_op.make_params(rng, shape)
                box = region_op.region(params, shape)
                out_h, out_w = box.size
                scale = choose_scale(box.height, box.width, out_h, out_w)
                b = clock()
                crop = decode_jpeg(data, region=(box.top, box.left, box.height, box.width),
                                   scale=scale)
                c = clock()
                img = region_op.apply_region(crop, params)
                d = clock()
                t.add(0, c - b)
                t.add(first_op, (b - a) + (d - c))
                a = clock()
                decode_jpeg(data)  # what the loader avoids: reported for comparison
                t.add(1, clock() - a)
            else:
                a = clock()
                img = decode_jpeg(data)
                t.add(0, clock() - a)
        # The plan's own steps, as the loader runs them (trailing flips are free views).
        for k, (make_params, apply) in enumerate(plan.steps):
            slot = first_op + k + (1 if region_op is not None else 0)
            a = clock()
            if make_params is None:
                img = np.asarray(apply(img))
            else:
                img = apply(img, make_params(rng, img.shape))
            t.add(slot, clock() - a)
        a = clock()
        write_sample(img, buf.work[slot_in_batch], spec, planes)
        slot_in_batch += 1
        if slot_in_batch == batch_size:
            buf.finish_chunk(0, batch_size)
            slot_in_batch = 0
        t.add(convert_slot, clock() - a)
        t.samples += 1
        if on_sample is not None:
            on_sample()
        if t.samples >= 8 and clock() - started > budget:
            break
    if slot_in_batch:
        a = clock()
        buf.finish_chunk(0, slot_in_batch)
        t.add(convert_slot, clock() - a)
    return t


def cuda_available() -> bool:
    """Whether torch is installed and sees a GPU (the loader reaches GPUs through torch)."""
    if not available("torch"):
        return False
    import torch

    return bool(torch.cuda.is_available())


def time_host_to_device(spec: Any, batch_size: int, device: str) -> StageTiming | None:
    """Copy a pinned uint8 NHWC batch to the GPU (what the loader sends); None without
    CUDA (or without torch)."""
    if not cuda_available():
        return None
    import torch

    dev = torch.device(device if device.startswith("cuda") else "cuda")
    host = torch.empty(
        (batch_size, spec.height, spec.width, spec.channels), dtype=torch.uint8, pin_memory=True
    )
    for _ in range(2):
        host.to(dev, non_blocking=True)
    torch.cuda.synchronize(dev)
    repeats = 10
    start = time.perf_counter()
    for _ in range(repeats):
        host.to(dev, non_blocking=True)
    torch.cuda.synchronize(dev)
    seconds = time.perf_counter() - start
    nbytes = host.numel() * repeats
    return StageTiming(
        "host-to-device (uint8)", "transfer", batch_size * repeats, seconds, nbytes, 0,
        "pinned memory, one stream",
    )
