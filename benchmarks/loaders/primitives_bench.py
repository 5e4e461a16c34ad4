"""The loader's per-sample primitives alone, on one thread: the floor a pipeline can reach.

``primitives``: one thread, OpenCV single-threaded, a loop over the same shuffled
samples with the same per-sample random parameters as ``pixpack.Loader(seed=0)``
(``epoch_order`` and ``sample_rng(seed, epoch, index)``), calling only what the loader
calls per sample (``SampleReader.sample`` and ``run_chunk`` in
``pixpack/loader/batching.py``):

- read: ``pack.sample_bytes(i)`` (+ the ``np.frombuffer`` view for raw samples);
- decode: ``decode_jpeg(data, region=box, scale=choose_scale(...))`` (JPEG only);
- crop_resize: the region op's ``make_params``, ``region``, ``apply_region``/``apply``;
- flip: the remaining ops of the loader's ``SamplePlan`` (RandomHorizontalFlip);
- normalize: ``write_sample`` into a float32 CHW slot of a batch-sized buffer.

When the loader's plan takes the native fast path (``SamplePlan.fused``: a bilinear
RandomResizedCrop followed by flips), the loader draws every sample's box and flips
natively (``draw_boxes``, once per chunk) and does crop_resize, flip and normalize in
one C call per sample (``pixpack._native._resample.resize`` into the batch slot). This
loop then draws the whole epoch's parameters in one ``draw_boxes`` call (timed as
``flip``: the draws) and times each ``resize`` call as ``crop_resize``; ``normalize``
is 0 (it is inside that call). For raw samples the loader batches a chunk into one
call (``resize_chunk``) and skips the per-sample ``np.frombuffer`` view this loop
still times under ``read``.

Each stage is timed separately; the per-image cost is the sum of the stages' medians
over passes. The objects come from a real ``Loader`` (its ``SamplePlan`` and
``OutputSpec``), so this baseline follows the loader's kernels when they change.

``ceiling``: the same loop in one process alone, then in N independent processes at
once (no shared GIL; the sum of their rates): what the hardware allows N cores to do.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from queue import Empty
from typing import Any

import numpy as np

from .common import BATCH, CROP, MEAN, STD, Unavailable

__all__ = ["STAGES", "PrimitiveLoop", "ceiling", "primitives"]

STAGES = ("read", "decode", "crop_resize", "flip", "normalize")
SEED = 0  # the seed pixpack_bench gives the Loader


class PrimitiveLoop:
    """Runs one epoch of the loader's per-sample calls on the calling thread."""

    def __init__(self, path: str) -> None:
        try:
            from pixpack import format as fmt
            from pixpack.loader import Loader
            from pixpack.loader.batching import SampleReader
            from pixpack.loader.convert import write_sample
            from pixpack.loader.ordering import epoch_order
            from pixpack.ops import Normalize, RandomHorizontalFlip, RandomResizedCrop
            from pixpack.ops.base import sample_rng
            from pixpack.read.jpeg import choose_scale, decode_jpeg
        except ImportError as exc:
            raise Unavailable(f"a pixpack loader internal moved ({exc}); adapt this file") from exc
        pipeline = [RandomResizedCrop(CROP), RandomHorizontalFlip(), Normalize(MEAN, STD)]
        loader = Loader(path, BATCH, pipeline=pipeline, workers=1, shuffle=True, seed=SEED)
        loader.close()  # only its plan, output spec and pack are used
        self.pack, self.plan, self.spec = loader.pack, loader.pipeline, loader.spec
        if self.plan.region_op is None:
            raise Unavailable("the loader's plan has no leading region op; adapt this file")
        self.reader = SampleReader(self.pack, self.plan, SEED)
        self.fused = getattr(self.plan, "fused", None)
        if self.fused is not None:
            from pixpack._native._resample import draw_boxes, resize

            self.native_resize, self.draw_boxes = resize, draw_boxes
        self.fmt, self.write_sample, self.epoch_order = fmt, write_sample, epoch_order
        self.sample_rng, self.choose_scale, self.decode = sample_rng, choose_scale, decode_jpeg
        self.dtypes = {c: np.dtype(d).newbyteorder("<") for c, d in fmt.DTYPE_FROM_CODE.items()}
        spec = self.spec
        self.work = np.empty((BATCH, *spec.sample_shape()), spec.work_dtype)
        self.planes = [
            np.empty((spec.height, spec.width), spec.pixel_dtype) for _ in range(spec.channels)
        ]

    def run(self, epoch: int) -> tuple[int, float, np.ndarray]:
        """One epoch: ``(images, wall seconds, nanoseconds per stage)``."""
        order = self.epoch_order(len(self.pack), SEED, epoch, True)
        rows = self.reader.rows(order)
        region_op, steps = self.plan.region_op, self.plan.steps
        pack, decode, choose_scale, dtypes = self.pack, self.decode, self.choose_scale, self.dtypes
        write_sample, work, spec, planes = self.write_sample, self.work, self.spec, self.planes
        raw, sample_rng = self.fmt.MODE_RAW, self.sample_rng
        rng = sample_rng(SEED, epoch, 0)
        clock = time.perf_counter_ns
        read_ns = decode_ns = crop_ns = flip_ns = norm_ns = 0
        start = time.perf_counter()
        if self.fused is not None:
            return self._run_fused(order, rows, epoch)
        for j, index in enumerate(order.tolist()):
            height, width, channels, code, mode = rows[j]
            shape = (height, width, channels)
            sample_rng(SEED, epoch, index, rng)
            t0 = clock()
            data = pack.sample_bytes(index)
            if mode == raw:
                img = np.frombuffer(data, dtype=dtypes[code]).reshape(shape)
                t1 = clock()
                img = region_op.apply(img, region_op.make_params(rng, shape))
                t2 = clock()
                crop_ns += t2 - t1
            else:
                t1 = clock()
                params = region_op.make_params(rng, shape)
                box = region_op.region(params, shape)
                out_h, out_w = box.size
                scale = choose_scale(box.height, box.width, out_h, out_w)
                ta = clock()
                crop = decode(data, region=(box.top, box.left, box.height, box.width), scale=scale)
                tb = clock()
                img = region_op.apply_region(crop, params)
                t2 = clock()
                decode_ns += tb - ta
                crop_ns += (ta - t1) + (t2 - tb)
            read_ns += t1 - t0
            for make_params, apply in steps:
                img = (
                    np.asarray(apply(img))
                    if make_params is None
                    else apply(img, make_params(rng, img.shape))
                )
            t3 = clock()
            write_sample(img, work[j % BATCH], spec, planes)
            t4 = clock()
            flip_ns += t3 - t2
            norm_ns += t4 - t3
        seconds = time.perf_counter() - start
        stages = np.array([read_ns, decode_ns, crop_ns, flip_ns, norm_ns], dtype=np.float64)
        return len(order), seconds, stages

    def _run_fused(
        self, order: np.ndarray, rows: list[Any], epoch: int
    ) -> tuple[int, float, np.ndarray]:
        """The native fast path's calls (see the module docstring)."""
        fused, reader = self.fused, self.reader
        pack, decode, choose_scale, dtypes = self.pack, self.decode, self.choose_scale, self.dtypes
        work, spec, resize = self.work, self.spec, self.native_resize
        alpha, beta, chw = spec.alpha, spec.beta, spec.layout == "NCHW"
        raw, clock = self.fmt.MODE_RAW, time.perf_counter_ns
        decode_ns = crop_ns = read_ns = 0
        start = time.perf_counter()
        t0 = clock()
        order = np.ascontiguousarray(order, np.int64)
        boxes = np.empty((len(order), 5), np.int64)
        self.draw_boxes(
            SEED,
            epoch,
            order,
            reader.height[order].astype(np.int64),
            reader.width[order].astype(np.int64),
            fused.rrc,
            fused.flips,
            boxes,
        )
        draw_ns = clock() - t0
        for j, (index, box) in enumerate(zip(order.tolist(), boxes.tolist(), strict=True)):
            height, width, channels, code, mode = rows[j]
            top, left, bh, bw, flip = box
            t0 = clock()
            data = pack.sample_bytes(index)
            if mode == raw:
                src, region = np.frombuffer(data, dtype=dtypes[code]), (top, left, bh, bw)
                src = src.reshape(height, width, channels)
                t1 = clock()
            else:
                scale = choose_scale(bh, bw, *fused.size)
                ta = clock()
                src = decode(data, region=(top, left, bh, bw), scale=scale)
                t1 = clock()
                decode_ns += t1 - ta
                read_ns -= t1 - ta
                region = (0, 0, src.shape[0], src.shape[1])
            resize(src, region, work[j % BATCH], alpha, beta, chw, flip, fused.antialias)
            t2 = clock()
            read_ns += t1 - t0
            crop_ns += t2 - t1
        seconds = time.perf_counter() - start
        stages = np.array([read_ns, decode_ns, crop_ns, draw_ns, 0], dtype=np.float64)
        return len(order), seconds, stages


def _loop_passes(path: str, passes: int, barrier: Any = None) -> dict[str, Any]:
    """One warm-up and ``passes`` timed epochs of the loop, OpenCV single-threaded.

    With ``barrier`` every process finishes its set-up and warm-up before any starts
    its timed passes, so the timed passes overlap.
    """
    from pixpack.opencv_threads import single_threaded_opencv

    loop = PrimitiveLoop(path)
    rates, stage_us = [], []
    with single_threaded_opencv():
        loop.run(0)
        if barrier is not None:
            barrier.wait()
        for epoch in range(1, passes + 1):
            n, seconds, stages = loop.run(epoch)
            rates.append(n / seconds)
            stage_us.append((stages / n / 1e3).tolist())
    return {"images_per_pass": n, "rates": rates, "stage_us": stage_us}


def primitives(cfg: dict[str, Any]) -> dict[str, Any]:
    """Per-stage microseconds per image (median over passes), their sum, the loop's rate."""
    from .pixpack_bench import _ensure_pack

    out = _loop_passes(_ensure_pack(cfg), cfg["passes"])
    return {**summarize_stages(out["stage_us"]), **_rate_summary(out["rates"]), **out}


def summarize_stages(stage_us: list[list[float]]) -> dict[str, Any]:
    """Median microseconds per image of each stage over passes, and their sum."""
    medians = np.median(np.asarray(stage_us), axis=0)
    per_stage = {name: float(v) for name, v in zip(STAGES, medians, strict=True)}
    cost = float(sum(per_stage.values()))
    return {"stage_us_median": per_stage, "cost_us": cost, "primitive_rate": 1e6 / cost}


def _rate_summary(rates: list[float]) -> dict[str, float]:
    return {
        "rate_median": float(np.median(rates)),
        "rate_min": float(min(rates)),
        "rate_max": float(max(rates)),
    }


def _child(path: str, passes: int, barrier: Any, queue: Any) -> None:
    try:
        queue.put(_loop_passes(path, passes, barrier))
    except BaseException as exc:  # reported to the parent, which fails the configuration
        barrier.abort()
        queue.put({"error": f"{type(exc).__name__}: {exc}"})


def _collect(queue: Any, procs: list[Any]) -> list[dict[str, Any]]:
    """One result per process; fails (instead of waiting forever) once all have died."""
    outs: list[dict[str, Any]] = []
    grace = 3  # polls after the last process ended: its queued result may still arrive
    while len(outs) < len(procs):
        try:
            outs.append(queue.get(timeout=1.0))
        except Empty:
            if not any(p.is_alive() for p in procs):
                grace -= 1
                if grace == 0:
                    codes = [p.exitcode for p in procs]
                    raise RuntimeError(
                        f"ceiling processes ended without results (exit codes {codes})"
                    ) from None
    return outs


def ceiling(cfg: dict[str, Any]) -> dict[str, Any]:
    """The loop in 1 process, then in ``workers`` processes at once (sum of their rates)."""
    from .pixpack_bench import _ensure_pack

    path, passes, n = _ensure_pack(cfg), cfg["passes"], cfg["workers"]
    solo = _loop_passes(path, passes)
    # spawn, not fork: a forked child must not inherit this process's OpenCV pool state.
    ctx = mp.get_context("spawn")
    barrier, queue = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=_child, args=(path, passes, barrier, queue)) for _ in range(n)]
    for p in procs:
        p.start()
    outs = _collect(queue, procs)
    for p in procs:
        p.join()
    errors = [o["error"] for o in outs if "error" in o]
    if errors:
        raise RuntimeError(f"a ceiling process failed: {errors[0]}")
    # Pass k of every process ran at about the same time: their rates add up.
    together = [float(sum(rates)) for rates in zip(*(o["rates"] for o in outs), strict=True)]
    return {
        "processes": n,
        "images_per_pass": solo["images_per_pass"],
        "rates_1": solo["rates"],
        "rates_n": together,
        "rate_1": float(np.median(solo["rates"])),
        "rate_n": float(np.median(together)),
        "ceiling_ratio": float(np.median(together) / np.median(solo["rates"])),
        **_rate_summary(together),
    }
