"""``pack(..., shard_size=...)``: a directory of ordinary packs plus a manifest.

Each shard is written by the crash-safe :class:`~.writer.PackWriter` (temp file,
journal, header last, rename) under its own lock, named after its first source item
(:func:`pixpack.shard_format.shard_name`), so jobs packing different slices into one
directory never collide. A shard records in its metadata (``"shard"``) the source
items it holds and a digest of what made it (source fingerprint, content options,
shard size and slicing): a rerun keeps every finished shard with that digest (its
header, size and metadata CRC checked by opening it) and packs only the source
ranges no finished shard holds. The manifest (:mod:`.merge`) is written last, by the
job that finds the whole source covered.

Labels are global: the source (and so its class list) is the whole dataset even when
this job packs one slice of it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

from .. import shard_format as sf
from ..errors import PixpackError
from ..options import PackOptions, shard_limit
from ..progress import Progress
from .merge import manifest_for, write_manifest
from .outpath import OutLock, check_out_dir, check_shard_out
from .pack_metadata import metadata, metadata_sections
from .packer import PackSummary, _results, _sigterm_as_interrupt, _write, job_for
from .shard_plan import Limit, shard_end, slice_bounds
from .sources import Source
from .writer import PackWriter

__all__ = ["pack_sharded", "pack_part", "finished_shards", "finish", "run_key", "summary"]

logger = logging.getLogger("pixpack")


def _key(src: Source, options: PackOptions, total: int) -> str:
    """A digest of everything that decides a shard's content and extent."""
    described = {
        "source": src.describe(),
        "fingerprint": src.fingerprint(),
        "options": options.content_key(),
        "num_items": total,
        "shard_size": options.shard_size,
        "num_shards": options.num_shards,
    }
    text = json.dumps(described, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:32]


def finished_shards(out: Path, key: str) -> dict[int, tuple[int, Path]]:
    """``{first source item: (end, path)}`` of the complete shards in ``out`` that were
    written with ``key``; anything else (another run's, damaged, unfinished) is left."""
    from ..read.pack import Pack

    found: dict[int, tuple[int, Path]] = {}
    for path in sorted(out.glob(f"{sf.SHARD_PREFIX}*.pixpack")):
        try:
            with Pack(path) as pack:
                info = pack.metadata.get("shard")
        except (PixpackError, OSError):
            continue
        if isinstance(info, dict) and info.get("key") == key:
            start, stop = info["source"]
            found[int(start)] = (int(stop), path)
    return found


class _Run:
    """Counts of one call, across the shards it writes."""

    def __init__(self) -> None:
        self.samples = self.skipped = self.shards = self.todo = 0
        self.first_skip: dict[str, str] | None = None


def run_key(src: Source, options: PackOptions, total: int) -> tuple[str, Limit]:
    """The digest a run's shards record, and its shard size as a :data:`Limit`."""
    limit = shard_limit(options.shard_size) if options.shard_size is not None else None
    return _key(src, options, total), limit


def pack_sharded(src: Source, out: Path, options: PackOptions, total: int) -> PackSummary:
    check_out_dir(out, src)
    key, limit = run_key(src, options, total)
    index, count = options.shard_index or 0, options.num_shards or 1
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    run = pack_part(src, out, options, (total, key, limit, (index, count)),
                    slice_bounds(total, limit, index, count))  # fmt: skip
    seconds = time.perf_counter() - started
    warn_skipped(out, run.skipped, run.first_skip)
    complete, paths = finish(out, key, total)
    if not complete and count > 1:
        logger.info("%s: slice %d of %d done; the last slice to finish writes %s",
                    out, index, count, sf.MANIFEST_NAME)  # fmt: skip
    return summary(out, paths, complete, run.samples, run.skipped, seconds, run.todo)


def pack_part(
    src: Source, out: Path, options: PackOptions, plan: tuple[int, str, Limit, tuple[int, int]],
    bounds: tuple[int, int],
) -> _Run:  # fmt: skip
    """Pack the source items in ``bounds`` that no finished shard of this run holds (all
    of a slice, or, on a cluster engine, one task's shards); writes no manifest."""
    key = plan[1]
    lo, hi = bounds
    done = {s: v for s, v in finished_shards(out, key).items() if lo <= s and v[0] <= hi}
    run = _Run()
    pos = lo
    gaps = []
    while pos < hi:
        if pos in done:
            pos = done[pos][0]
            continue
        stop = min([s for s in done if s > pos] + [hi])
        gaps.append((pos, stop))
        run.todo += stop - pos
        pos = stop
    with Progress(run.todo, "packing", False if options.quiet else None,
                  log=None if options.quiet else logger.info) as bar:  # fmt: skip
        for start, stop in gaps:
            _pack_range(src, out, options, plan, start, stop, run, bar)
    return run


def warn_skipped(out: Path, skipped: int, first: dict[str, str] | None) -> None:
    if skipped and first is not None:
        warnings.warn(
            f"{out}: skipped {skipped} unreadable image(s) (first: {first['path']}: "
            f"{first['reason']}); they are listed in the shards' metadata 'skipped'.",
            stacklevel=5,
        )


def finish(out: Path, key: str, total: int) -> tuple[bool, list[Path]]:
    """Write the manifest if this run's finished shards hold the whole source; returns
    whether they do and the shards' paths, in source order."""
    every = finished_shards(out, key)
    paths = [every[s][1] for s in sorted(every)]
    complete = sum(every[s][0] - s for s in every) == total and bool(paths)
    if complete:
        write_manifest(out, manifest_for(out, paths))
    return complete, paths


def summary(out: Path, paths: list[Path], complete: bool, samples: int, skipped: int,
            seconds: float, todo: int) -> PackSummary:  # fmt: skip
    nbytes = sum(p.stat().st_size for p in paths)
    return PackSummary(path=out, num_samples=_samples(paths) if complete else samples,
                       num_skipped=skipped, skipped=[], seconds=seconds,
                       images_per_second=todo / seconds if seconds > 0 else float("inf"),
                       bytes=nbytes)  # fmt: skip


def _samples(paths: list[Path]) -> int:
    from ..read.pack import Pack

    n = 0
    for path in paths:
        with Pack(path) as pack:
            n += len(pack)
    return n


def _pack_range(
    src: Source, out: Path, options: PackOptions, plan: tuple[int, str, Limit, tuple[int, int]],
    start: int, stop: int, run: _Run, bar: Progress,
) -> None:  # fmt: skip
    """Pack source items ``[start, stop)`` into one or more shards."""
    total, key, limit, slicing = plan
    job = job_for(options)
    state: dict[str, Any] = {"writer": None}
    stack = contextlib.ExitStack()

    def open_shard(first: int) -> PackWriter:
        path = out / sf.shard_name(first)
        check_shard_out(path)
        stack.enter_context(OutLock(path))
        # A shard cut by an interruption is packed again from its start.
        writer = PackWriter(path, {"shard_key": key, "first": first}).start()
        state.update(writer=writer, first=first, end=shard_end(first, stop, limit),
                     conversions=Counter(), kept=0)  # fmt: skip
        return writer

    def close_shard(end: int) -> None:
        writer = state["writer"]
        skipped = writer.skipped()
        meta = metadata(src, options, writer, skipped, state["conversions"], state["kept"],
                        resumed=False)  # fmt: skip
        sections, meta["columns"] = metadata_sections(src, writer, meta["classes"])
        meta["shard"] = {"source": [state["first"], end], "source_items": total, "key": key,
                         "slice": list(slicing), "shard_size": options.shard_size}  # fmt: skip
        writer.commit(meta, sections)
        stack.close()  # the shard's lock
        run.samples += writer.num_samples
        run.skipped += len(skipped)
        run.shards += 1
        if skipped and run.first_skip is None:
            run.first_skip = skipped[0]
        state["writer"] = None

    try:
        with (
            _sigterm_as_interrupt(),
            contextlib.closing(
                _results(src, job, start, stop, options.workers, options.executor)
            ) as chunks,
        ):
            writer = open_shard(start)
            for chunk in chunks:
                for r in chunk:
                    end = state["end"]
                    full = (end is not None and r.source_index >= end) or (
                        limit is not None and limit[0] == "bytes" and r.sample is not None
                        and writer.num_samples > 0
                        and writer.data_bytes + len(r.sample.data) > limit[1]
                    )  # fmt: skip
                    if full:
                        close_shard(r.source_index)
                        writer = open_shard(r.source_index)
                    _write(writer, r, options.strict, state["conversions"])
                    state["kept"] += r.kept_source
                bar.update(len(chunk))
            close_shard(stop)
    except KeyboardInterrupt:
        if state["writer"] is not None:
            state["writer"].abort(keep_partial=True)
        stack.close()
        message = (
            f"{out}: packing interrupted; the finished shards are kept — rerun the same "
            "command to pack only the rest."
        )
        logger.warning(message)
        raise KeyboardInterrupt(message) from None
    except BaseException:
        if state["writer"] is not None:
            state["writer"].abort()
        stack.close()
        raise
