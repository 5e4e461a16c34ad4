"""``pack(..., engine="dask://...")``: a sharded pack whose shards are packed by the
tasks of a Dask cluster, the manifest written last by the driver (this process).

A task is the sharded writer's own :func:`~.sharded.pack_part` on a range of source
items, run on one core of a worker, writing its shards straight into OUT (crash-safe,
each under its own lock, as on one machine). The work is cut where the shards of a
one-machine run end, so the result is that run's, shard for shard:

- sample-count shards (``shard_size="N samples"``): the shards no finished shard of
  this run already holds, grouped into about four tasks per slot of the cluster; each
  shard records the same run digest as a one-machine pack, so a one-machine rerun
  resumes a cluster run and the other way round;
- ``num_shards=n``: the n slices of the array-job code path (each cut by size within
  itself), one task per slice that is not finished.

The source is sent to the workers once (its file paths: SRC must be readable at the
same path on every worker, as must OUT). A task that fails (its worker killed more
often than the scheduler retries, an unreadable image with ``strict``) cancels the
rest and is raised in one line naming its source items; what finished is kept, and a
partial shard is never published (no manifest until every shard is there), so
rerunning the same command packs only what is missing.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

from .. import shard_format as sf
from ..errors import EngineError, PixpackError
from ..options import PackOptions
from ..progress import Progress
from .engines import DaskEngine, parse_engine
from .outpath import check_out_dir
from .packer import PackSummary
from .shard_plan import Limit, shard_end, slice_bounds
from .sharded import finish, finished_shards, pack_part, run_key, summary, warn_skipped
from .sources import Source

__all__ = ["pack_on_engine", "plan_units"]

logger = logging.getLogger("pixpack")

_TASKS_PER_SLOT = 4  # more tasks than slots: a slow shard does not hold the others up
Unit = tuple[int, int, int]  # [start, stop) of source items, items still to pack


def missing(total: int, done: dict[int, tuple[int, Path]]) -> list[tuple[int, int]]:
    """The source ranges ``[start, stop)`` that no finished shard holds."""
    gaps, pos = [], 0
    for start in sorted(done):
        if start > pos:
            gaps.append((pos, start))
        pos = max(pos, done[start][0])
    if pos < total:
        gaps.append((pos, total))
    return gaps


def plan_units(total: int, limit: Limit, num_shards: int | None, gaps: list[tuple[int, int]],
               slots: int) -> list[Unit]:  # fmt: skip
    """The tasks: ``(start, stop, todo)`` in source order, a pure function of integers.
    Slices when ``num_shards`` is given; else missing shards, grouped into about
    ``_TASKS_PER_SLOT`` tasks per slot."""
    if num_shards is not None:
        units = []
        for i in range(num_shards):
            lo, hi = slice_bounds(total, limit, i, num_shards)
            todo = sum(max(0, min(b, hi) - max(a, lo)) for a, b in gaps)
            if todo:
                units.append((lo, hi, todo))
        return units
    shards = []
    for a, b in gaps:
        while a < b:
            end = shard_end(a, b, limit)
            assert end is not None  # a sample-count limit (PackOptions checks)
            shards.append((a, end))
            a = end
    per = max(1, -(-len(shards) // (slots * _TASKS_PER_SLOT)))
    groups = [shards[i : i + per] for i in range(0, len(shards), per)]
    return [(g[0][0], g[-1][1], sum(b - a for a, b in g)) for g in groups]


def _task(src: Source, out: str, options: PackOptions, plan: tuple, bounds: tuple[int, int]
          ) -> dict[str, Any]:  # fmt: skip
    """One task, on a worker: the sharded writer's code path for these source items."""
    run = pack_part(src, Path(out), options, plan, bounds)
    return {"samples": run.samples, "skipped": run.skipped, "first_skip": run.first_skip}


def pack_on_engine(src: Source, out: Path, options: PackOptions, total: int) -> PackSummary:
    spec = parse_engine(options.engine)
    check_out_dir(out, src)
    key, limit = run_key(src, options, total)
    out.mkdir(parents=True, exist_ok=True)
    gaps = missing(total, finished_shards(out, key))
    # Each task packs on one core: the cluster's slots are the parallelism.
    task_options = dataclasses.replace(options, engine=None, workers=1, quiet=True,
                                       shard_index=0 if options.num_shards else None)  # fmt: skip
    started = time.perf_counter()
    samples = skipped = todo = 0
    first_skip = None
    if gaps:
        with DaskEngine(spec) as engine:
            units = plan_units(total, limit, options.num_shards, gaps, engine.slots)
            todo = sum(u[2] for u in units)
            logger.info("%s: packing %d source items in %d tasks on %s (%d slots)",
                        out, todo, len(units), spec.text, engine.slots)  # fmt: skip
            shared = engine.share(src)
            futures = {}
            for lo, hi, n in units:
                index = slice_index(total, limit, options.num_shards, lo)
                plan = (total, key, limit, index)
                opts = (
                    task_options
                    if options.num_shards is None
                    else dataclasses.replace(task_options, shard_index=index[0])
                )  # the array job of that slice
                future = engine.submit(_task, shared, str(out), opts, plan, (lo, hi),
                                       name=f"pixpack-{lo}-{hi}")  # fmt: skip
                futures[future] = (lo, hi, n)
            with Progress(todo, "packing", False if options.quiet else None,
                          log=None if options.quiet else logger.info) as bar:  # fmt: skip
                for future, result, error in engine.results(list(futures)):
                    lo, hi, n = futures[future]
                    if error is not None:
                        engine.cancel(list(futures))
                        raise _task_error(spec.text, out, lo, hi, error)
                    samples += result["samples"]
                    skipped += result["skipped"]
                    first_skip = first_skip or result["first_skip"]
                    bar.update(n)
    seconds = time.perf_counter() - started
    warn_skipped(out, skipped, first_skip)
    complete, paths = finish(out, key, total)  # the manifest, last
    if not complete:  # only if the source changed under us, or a shard was removed
        raise EngineError(f"{out}: the tasks finished but the shards do not hold the whole "
                          f"source, so no {sf.MANIFEST_NAME} was written; rerun the same "
                          "command to pack what is missing.")  # fmt: skip
    return summary(out, paths, complete, samples, skipped, seconds, todo)


def slice_index(total: int, limit: Limit, num_shards: int | None, start: int) -> tuple[int, int]:
    """``(index, count)`` of the slice a task starting at ``start`` belongs to, as its
    shards record it: ``(0, 1)`` for a one-machine plan."""
    if num_shards is None:
        return (0, 1)
    for i in range(num_shards):
        if slice_bounds(total, limit, i, num_shards)[0] == start:
            return (i, num_shards)
    raise AssertionError(start)  # pragma: no cover - units start where slices do


def _task_error(engine: str, out: Path, lo: int, hi: int, error: BaseException) -> BaseException:
    """A one-line error for a failed task; pixpack's own errors (which name their file)
    keep their type."""
    if isinstance(error, PixpackError):
        return error
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return EngineError(
        f"{out}: the task packing source items {lo}..{hi - 1} on {engine} failed "
        f"({type(error).__name__}: {text}); the finished shards are kept — rerun the "
        "same command to pack only the rest."
    )
