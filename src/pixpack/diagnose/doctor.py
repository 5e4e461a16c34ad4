"""``doctor``: time every stage alone, name the bottleneck, say what to change.

The model behind the verdict: decode, the ops and the final conversion run one after
another on the same worker threads, so their per-image times *add up* and share the
cores (``cores / sum(ms per image)``), and stages that hold the GIL add up on a
single core. Storage (the disk, or the page cache when the pack fits in RAM) and the
host-to-device copy are separate resources that run alongside. The slowest of these
resources bounds the loader; within the CPU stages, the one with the largest share of
the time is the bottleneck. If the measured end-to-end rate is far below that bound,
the loss is in the scheduling itself (threads, contention), not in a stage.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import UsageError
from ..optional import FRAMEWORKS, installed
from ..options import default_workers
from .bench import BenchResult, _open, bench, default_output
from .fast_path import FAST_PATH_STAGE, time_fast_path
from .out_of_core import memory_budget, out_of_core_advice, time_cold_reads
from .pipeline_spec import describe_pipeline, resolve_pipeline
from .stages import (
    StageTiming,
    cuda_available,
    sample_indices,
    time_chain,
    time_host_to_device,
    time_storage_cold,
    time_storage_warm,
)

__all__ = ["Diagnosis", "doctor"]

_OVERHEAD_RATIO = 0.5  # end-to-end below this fraction of the bound: scheduling loss
_SIGNIFICANT = 0.25  # a CPU stage with this share of the time is worth naming


@dataclass
class Diagnosis:
    """Everything :func:`doctor` found. ``as_dict`` keys are stable (the ``--json`` output)."""

    pack: str
    pipeline: str
    samples: int
    cores: int
    workers: int
    batch_size: int
    device: str
    stages: list[StageTiming]
    bound_rate: float
    bottleneck: list[str]
    bottleneck_kind: str
    overhead: bool
    verdict: str
    page_cache: dict[str, Any]
    step: dict[str, Any] | None
    advice: list[str]
    notes: list[str]
    end_to_end: BenchResult | None = None
    shares: dict[str, float] = dataclasses.field(default_factory=dict)
    # information, not a finding: which frameworks are installed here (version or None)
    frameworks: dict[str, str | None] = dataclasses.field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "pack": self.pack,
            "pipeline": self.pipeline,
            "samples": self.samples,
            "cores": self.cores,
            "workers": self.workers,
            "batch_size": self.batch_size,
            "device": self.device,
            "stages": [
                {**s.as_dict(), "share": self.shares.get(s.name)} for s in self.stages
            ],
            "end_to_end": self.end_to_end.as_dict() if self.end_to_end is not None else None,
            "bound_images_per_second": self.bound_rate,
            "bottleneck": self.bottleneck,
            "bottleneck_kind": self.bottleneck_kind,
            "overhead": self.overhead,
            "verdict": self.verdict,
            "page_cache": self.page_cache,
            "step": self.step,
            "advice": self.advice,
            "notes": self.notes,
            "frameworks": self.frameworks,
        }


def _size(nbytes: float | None) -> str:
    if nbytes is None:
        return "?"
    for unit in ("B", "kB", "MB", "GB"):
        if nbytes < 1000 or unit == "GB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1000
    return f"{nbytes:.1f} TB"  # pragma: no cover


def _path_note(plan: Any) -> str:
    """Which execution path the loader takes for this pipeline, and what that means
    for the per-stage times (which are always taken one op at a time)."""
    if getattr(plan, "fused", None) is not None:
        return (
            "native fast path: the loader draws the parameters and runs crop, resize, "
            "flips and the conversion in one C call per sample; the 'fast path' row times "
            "that, and the CPU bound uses it; the op-by-op rows above it only apportion "
            "the work (their sum overstates what the loader spends)"
        )
    return (
        "general path: only a bilinear RandomResizedCrop or Resize((h, w)) followed by "
        "flips (and Normalize/ToOutput) runs on the native fast path; see docs/loader.md"
    )


def doctor(
    pack_or_loader: Any,
    pipeline: Any = None,
    *,
    step_time: float | None = None,
    device: str = "cpu",
    batch_size: int = 64,
    workers: int | None = None,
    samples: int = 256,
    budget: float = 10.0,
    bench_seconds: float = 3.0,
    end_to_end: bool = True,
    seed: int = 0,
    progress: bool | None = None,
) -> Diagnosis:
    """Time each stage of loading ``pack_or_loader`` alone and diagnose the bottleneck.

    ``pack_or_loader``: a pack path, an open pack, or a :class:`~pixpack.Loader`
    (its pipeline, output spec, batch size, workers and device are used; the loader
    itself is not iterated, a twin is benchmarked). ``pipeline``: as for :func:`bench`.
    ``step_time``: your training step's seconds per batch, to say whether the loader
    keeps up. ``samples``/``budget``: how many images the stage timings use and the
    most seconds they may take; ``bench_seconds``: the end-to-end run
    (``end_to_end=False`` skips it).
    """
    from ..loader import Loader
    from ..progress import Progress

    if step_time is not None and step_time <= 0:
        raise UsageError(f"step_time must be positive seconds per batch (got {step_time!r}).")
    if samples < 1:
        raise UsageError(f"samples must be a positive integer (got {samples!r}).")
    cores = default_workers()
    if isinstance(pack_or_loader, Loader):
        given = pack_or_loader
        pack = given.pack
        o = given.options
        # A twin with the same ops, output and options (LoaderOptions fields are the
        # Loader's keywords, so none can be forgotten): Normalize only changes the fused
        # constants, not the cost, so the spec's dtype/layout suffice.
        options = {f.name: getattr(o, f.name) for f in dataclasses.fields(o)}
        loader = Loader(
            pack,
            pipeline=list(given.pipeline.ops),
            dtype=given.spec.dtype,
            layout=given.spec.layout,
            channels=given.spec.channels,
            output=given.output,
            **options,
        )
        # Only this process runs doctor: the twin must not wait on the other ranks in
        # the first-iteration agreement collective.
        loader._ranks_agreed = True
        spec = given.spec
        description = describe_pipeline(given.pipeline.ops)
    else:
        pack = _open(pack_or_loader)
        steps = resolve_pipeline(pipeline, pack)
        description = describe_pipeline(steps)
        loader = Loader(pack, batch_size, pipeline=steps, workers=workers, device=device,
                        seed=seed, output=default_output(device))
        spec = loader.spec
    opts = loader.options
    path = str(pack.path)
    notes: list[str] = []
    try:
        indices = sample_indices(len(pack), samples, seed)
        reads: dict[str, Any] = {}
        with Progress(len(indices) * 2, "doctor: stages", progress) as bar:
            if getattr(pack, "storage", None) is not None:  # the loader's own read path
                cold, reads = time_cold_reads(pack, indices, opts.read_ahead_bytes)
                before, after = reads["resident_before"], reads["resident_after_drop"]
            else:  # read into memory: only the disk itself can be timed
                index = pack.index
                ranges = [(int(index["offset"][i]), int(index["nbytes"][i])) for i in indices]
                cold, before, after = time_storage_cold(path, ranges, max(opts.workers, 1))
            bar.update(len(indices) // 2)
            warm = time_storage_warm(pack, indices, cores)
            bar.update(len(indices) - len(indices) // 2)
            host_spec = spec
            if opts.device != "cpu" and spec.pixel_dtype == np.uint8:
                host_spec = dataclasses.replace(spec, dtype="uint8", layout="channels_last")
            chain = time_chain(
                pack, indices, loader.pipeline, host_spec, seed=opts.seed,
                batch_size=opts.batch_size, budget=budget, on_sample=lambda: bar.update(1),
            )
            fast = time_fast_path(loader, indices, host_spec, cores, budget=budget / 2)
        stages = [cold, warm, *chain.stages(cores)]
        if fast is not None:
            stages.append(fast)
        transfer = time_host_to_device(spec, opts.batch_size, opts.device)
        if transfer is not None:
            stages.append(transfer)
        elif installed("torch") is None:
            notes.append("host-to-device copy: skipped (torch, which pixpack reaches GPUs "
                         "through, is not installed: pip install 'pixpack[torch]')")
        else:
            notes.append("host-to-device copy: skipped (CUDA is not available here)")
        result = None
        if end_to_end:
            result = bench(loader, seconds=bench_seconds, progress=progress)
    finally:
        loader.close()
    if chain.samples < len(indices):
        notes.append(
            f"stage timings stopped after {chain.samples} of {len(indices)} samples "
            f"(budget {budget:g} s)"
        )
    notes.append(_path_note(loader.pipeline))
    budget = memory_budget()
    pack_bytes = os.path.getsize(path)
    fits = budget["usable"] is not None and pack_bytes < budget["usable"]
    page_cache = {
        "pack_bytes": pack_bytes,
        **budget,
        "fits": fits,
        "read_amplification": reads.get("read_amplification"),
        "read_requests": reads.get("requests"),
        "resident_before": before,
        "resident_after_drop": after,
        "drop_effective": after is not None and after <= 0.1,
    }
    if not page_cache["drop_effective"]:
        notes.append(
            "the page-cache drop did not take effect"
            + (f" ({after:.0%} of the sampled bytes stayed cached" if after is not None else " (")
            + "; another process may map the file, or the file system ignores fadvise): "
            "the cold read numbers are warm numbers"
        )
    diag = _diagnose(
        stages, chain, result, cores, opts, fits, page_cache, spec, step_time, notes
    )
    if not fits and page_cache["usable"] is not None:
        cold_stage = next(s for s in stages if s.name == "storage (cold)")
        max_side = max(64, int(max(spec.height, spec.width) * 8 / 7))
        cpu_rate = diag.bound_rate if diag.bottleneck_kind != "storage" else float("inf")
        for line in out_of_core_advice(pack, page_cache, cold_stage, cpu_rate, max_side):
            if line not in diag.advice:
                diag.advice.append(line)
    diag.pack, diag.pipeline = path, description
    diag.frameworks = {name: installed(name) for name in FRAMEWORKS}
    return diag


def _diagnose(
    stages: list[StageTiming],
    chain: Any,
    e2e: BenchResult | None,
    cores: int,
    opts: Any,
    fits: bool,
    page_cache: dict[str, Any],
    spec: Any,
    step_time: float | None,
    notes: list[str],
) -> Diagnosis:
    gpu = cuda_available()  # advice about the GPU only where there is one
    by_kind = {s.name: s for s in stages}
    storage = by_kind["storage (warm)"] if fits else by_kind["storage (cold)"]
    cpu = [s for s in stages if s.kind in ("decode", "op", "convert")]
    cpu_time = sum(s.per_image for s in cpu) or 1e-12
    shares = {s.name: s.per_image / cpu_time for s in cpu}
    threads = max(1, min(cores, opts.workers))
    # On the fast path the op-by-op stages only apportion the work; its cost is measured
    # whole (their sum overstates it).
    fast = by_kind.get(FAST_PATH_STAGE)
    cpu_rate = threads / (fast.per_image if fast is not None else cpu_time)
    gil = [s for s in cpu if s.parallel == 1 and cores > 1]
    gil_time = sum(s.per_image for s in gil)
    gil_bound = bool(gil) and 1 / gil_time < cpu_rate
    if gil_bound:
        cpu_rate = 1 / gil_time
    resources = {"cpu": cpu_rate, "storage": storage.parallel_rate}
    transfer = by_kind.get("host-to-device (uint8)")
    if transfer is not None:
        resources["transfer"] = transfer.parallel_rate
    limit = min(resources, key=lambda k: resources[k])
    bound = resources[limit]
    advice: list[str] = []
    # Keep a little more than the output size so crops still have detail to resize.
    max_side = max(64, int(max(spec.height, spec.width) * 8 / 7))
    if limit == "storage":
        bottleneck, kind = [storage.name], "storage"
        verdict = (
            f"storage-bound: reads deliver {storage.parallel_rate:,.0f} img/s "
            f"({storage.mb_per_second or 0:,.0f} MB/s), below the {cpu_rate:,.0f} img/s the "
            "CPU stages allow"
        )
        if not fits:
            verdict = (
                "storage-bound: the pack is larger than the page cache and on a slow disk "
                f"(cold reads {storage.mb_per_second or 0:,.0f} MB/s = "
                f"{storage.parallel_rate:,.0f} img/s)"
            )
            usable = page_cache.get("usable", page_cache["ram_available"])
            advice.append(
                f"storage-bound: the pack ({_size(page_cache['pack_bytes'])}) does not fit "
                f"in the {_size(usable)} of memory this process may use, so "
                "every epoch reads the disk: move it to a local NVMe SSD, add RAM, or make "
                f"it smaller (pixpack pack --mode jpeg, --max-side {max_side})"
            )
        else:
            advice.append(
                "storage-bound although the pack fits in RAM: open it with "
                "pixpack.open(path, in_memory=True) to skip page faults"
            )
    elif limit == "transfer":
        bottleneck, kind = [transfer.name], "transfer"  # type: ignore[union-attr]
        verdict = f"copy-bound: the host-to-device copy moves {bound:,.0f} img/s"
        advice.append(
            "copy-bound: send uint8 over the bus (a float dtype with device='cuda' converts "
            "on the GPU), use pinned memory and a smaller output size"
        )
    else:
        pool = gil if gil_bound else cpu
        top = max(pool, key=lambda s: s.per_image)
        bottleneck = [top.name] + [
            s.name for s in cpu
            if s is not top and shares[s.name] >= _SIGNIFICANT
            and s.per_image >= 0.75 * top.per_image
        ]
        kind = top.kind
        label = {"decode": "decode-bound", "op": "op-bound", "convert": "conversion-bound"}[kind]
        verdict = (
            f"{label}: {top.name} takes {shares[top.name]:.0%} of the CPU time per image "
            f"({top.per_image * 1e3:.2f} ms); the stages allow ~{bound:,.0f} img/s on "
            f"{threads} thread(s)"
        )
        if fast is not None:
            verdict = (
                f"CPU-bound on the native fast path: {fast.per_image * 1e3:.3f} ms per image, "
                f"~{bound:,.0f} img/s on {threads} thread(s); of that work {top.name} is the "
                f"largest part ({shares[top.name]:.0%} when timed op by op)"
            )
        if gil_bound:
            verdict += f", limited by {top.name} holding the GIL"
    # Advice for every CPU stage that matters, most expensive first.
    median_hw = np.median(np.array(chain.shapes), axis=0) if chain.shapes else (0, 0)
    # Packing smaller only helps when the stored images are larger than that.
    shrink = max(median_hw) > max_side
    for s in sorted(cpu, key=lambda s: -s.per_image):
        share = shares[s.name]
        if share < _SIGNIFICANT and s.name not in bottleneck:
            continue
        if s.kind == "decode" and chain.modes.get("jpeg"):
            h, w = int(median_hw[0]), int(median_hw[1])
            head = "decode-bound" if s.name in bottleneck else "decode is costly"
            fix = f"--mode raw or --max-side {max_side}" if shrink else "--mode raw"
            advice.append(
                f"{head}: pack with {fix} (decoding {w}x{h} "
                f"JPEGs costs {s.per_image * 1e3:.2f} ms/img, {share:.0%} of the time)"
            )
            if s.name == "decode (full)":
                advice.append(
                    "start the pipeline with RandomResizedCrop/CenterCrop/Resize so the loader "
                    "decodes only the crop at a reduced DCT scale"
                )
        elif s.kind == "op":
            extra = (
                "; it runs Python per sample and holds the GIL, so threads cannot share it: "
                "write it as an op with make_params/apply over a GIL-releasing kernel"
                if s.parallel == 1 and cores > 1 else ""
            )
            if s.name == chain.region_op:
                extra = (
                    f"; its resize work grows with the source size: pack with --max-side "
                    f"{max_side}, or pass antialias=False"
                    if shrink
                    else "; the stored images are already small: pass antialias=False "
                    "(cheaper, slightly aliased)" + (", or resize on the GPU" if gpu else "")
                )
            where = "move it to the GPU or simplify it" if gpu else "simplify it"
            advice.append(
                f"an op is slow: {s.name} takes {share:.0%} of the time "
                f"({s.per_image * 1e3:.2f} ms/img) — {where}{extra}"
            )
        elif s.kind == "convert" and spec.is_float and opts.device == "cpu" and gpu:
            advice.append(
                f"normalise on the GPU: pass device='cuda' to the Loader so uint8 crosses the "
                f"bus (the float conversion takes {share:.0%} of the CPU time)"
            )
    if opts.workers < cores:
        advice.append(
            f"use more workers: only {opts.workers} of {cores} cores used "
            f"(Loader(workers={cores}), pixpack bench --workers {cores})"
        )
    overhead = False
    if e2e is not None and e2e.images_per_second < _OVERHEAD_RATIO * bound:
        overhead = True
        advice.append(
            f"pipeline overhead / threading: the loader delivers {e2e.images_per_second:,.0f} "
            f"img/s, {e2e.images_per_second / bound:.0%} of the {bound:,.0f} img/s its stages "
            "allow: check for other processes on the cores (top), try a larger batch_size "
            "or prefetch, and report it if it persists"
        )
    step: dict[str, Any] | None = None
    if step_time is not None:
        delivered = (
            e2e.batches_per_second if e2e is not None else bound / max(opts.batch_size, 1)
        )
        needed = 1.0 / step_time
        slow = delivered < needed
        message = (
            f"the loader delivers {delivered:,.1f} batches/s; your step needs "
            f"{needed:,.1f} batches/s: "
            + (
                f"the loader is the bottleneck (the step waits about "
                f"{1 - delivered / needed:.0%} of the time)"
                if slow
                else "the loader is not your bottleneck"
            )
        )
        step = {
            "step_time": step_time,
            "loader_batches_per_second": delivered,
            "needed_batches_per_second": needed,
            "loader_is_bottleneck": slow,
            "message": message,
        }
        advice.insert(
            0,
            message
            + ("; start with the advice below" if slow else "; speed up the model step instead"),
        )
        if not slow:
            if delivered < 1.25 * needed:
                notes.append(
                    "the margin is under 25%: training also uses the CPU, so watch for stalls"
                )
    return Diagnosis(
        pack="",
        pipeline="",
        samples=chain.samples,
        cores=cores,
        workers=opts.workers,
        batch_size=opts.batch_size,
        device=opts.device,
        stages=stages,
        bound_rate=bound,
        bottleneck=bottleneck,
        bottleneck_kind=kind,
        overhead=overhead,
        verdict=verdict,
        page_cache=page_cache,
        step=step,
        advice=advice,
        notes=notes,
        end_to_end=e2e,
        shares=shares,
    )

