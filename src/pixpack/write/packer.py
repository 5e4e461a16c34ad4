"""``pack()``: decode and encode a source in worker threads or processes, write in order.

Workers (:mod:`.executor`) receive chunks of *indices* and return encoded bytes plus
per-channel pixel sums, so the calling thread only writes. File sources use threads
(decoding, resizing and encoding release the GIL; no pickling), other sources
processes. At most ``3 x workers`` chunks are in flight, so memory stays flat for any
dataset size. Results are consumed strictly in source order, which makes the pack
byte-identical whatever the number or kind of workers, and resumable from the journal.

Error policy:
- an unreadable image is skipped and recorded (path + reason) in the metadata's
  ``skipped`` list, with one summary warning; ``strict=True`` raises the first
  :class:`~pixpack.errors.ImageDecodeError` instead and removes the temp files;
- Ctrl-C / SIGTERM stops the workers, keeps the flushed partial pack and raises
  ``KeyboardInterrupt`` whose message says to rerun with ``resume=True``
  (CLI ``--resume``);
- any other exception removes the temp files and propagates.

The metadata written with the index (classes, counts, mean/std) is built in
:mod:`.pack_metadata`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import math
import os
import signal
import threading
import time
import warnings
from collections import Counter
from collections.abc import Generator, Iterator
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from .. import format as fmt
from ..errors import (
    EmptySourceError,
    ImageDecodeError,
    PixpackError,
    SourceFormatError,
    UsageError,
)
from ..opencv_threads import single_threaded_opencv
from ..options import PackOptions
from ..progress import Progress
from .encode import EncodedSample, encode_sample
from .executor import WorkerKind, ordered_chunks
from .flusher import Flusher
from .imageio import load_image_info, read_file
from .outpath import OutLock, check_out
from .pack_metadata import metadata, metadata_sections, pixel_stats
from .passthrough import PassedThrough, store_as_is
from .resize import SizeLimit
from .scratch import release_scratch
from .sources import (
    CsvSource,
    ImageFolderSource,
    JsonlSource,
    SequenceSource,
    Source,
    source_for,
    with_classes_from,
)
from .writer import PackWriter

__all__ = ["PackSummary", "pack"]

logger = logging.getLogger("pixpack")

_MAX_CHUNK = 16  # images per task: amortises inter-process overhead
_WINDOW_PER_WORKER = 3  # chunks in flight per worker: keeps workers busy, memory bounded


@dataclasses.dataclass(frozen=True)
class PackSummary:
    """What :func:`pack` did."""

    path: Path
    num_samples: int
    num_skipped: int
    skipped: list[dict[str, str]]
    seconds: float
    images_per_second: float
    bytes: int
    modes: dict[str, int] = dataclasses.field(default_factory=dict)  # images per storage mode


class _Job(NamedTuple):
    """The per-image work description each worker needs (small, picklable)."""

    mode: str
    quality: int
    max_side: int | SizeLimit | None  # SizeLimit with a short_side
    channels: int | None
    passthrough: bool = False  # jpeg mode, reencode="auto": source JPEGs may be stored as is
    pages: str = "error"  # what a multi-page TIFF's pages are (tiff.py)


class _Result(NamedTuple):
    source_index: int
    label: int
    sample: EncodedSample | None  # None: skipped
    pixels: int
    sums: np.ndarray | None
    sumsq: np.ndarray | None
    checksum: int  # of the stored bytes, computed in the worker (the writer is serial)
    conversion: str | None
    path: str
    reason: str
    kept_source: bool = False  # a source JPEG stored as is (reencode="auto")


def pack(
    source: Any,
    out: str | Path,
    options: PackOptions | None = None,
    **overrides: Any,
) -> PackSummary:
    """Pack ``source`` (directory, .csv/.tsv/.jsonl file, sequence or Source) into ``out``.

    ``overrides`` replace fields of ``options`` (``pack(src, out, mode="jpeg")``).
    """
    options = with_classes_from(_merge_options(options, overrides))
    src = source_for(source, options)
    if options.pages == "samples":
        from .sources.pages import PagedSource

        src = PagedSource(src)
    kind = _worker_kind(src, options.executor)  # a bad value fails before any file is touched
    total = len(src)
    if total == 0:
        raise EmptySourceError(f"{_name(src)}: the source holds no images; nothing to pack.")
    out = Path(out)
    if options.engine is not None:  # shards packed by a cluster's tasks (write/cluster.py)
        from .cluster import pack_on_engine

        return pack_on_engine(src, out, options, total)
    if options.sharded:  # a directory of packs and a manifest (write/sharded.py)
        from .sharded import pack_sharded

        return pack_sharded(src, out, options, total)
    check_out(out, src)  # never an input, never an existing file that is not a pack
    with OutLock(out):  # one packer per OUT: a second one fails here, touching nothing
        return _pack_locked(src, out, options, kind, total)


def _pack_locked(
    src: Source, out: Path, options: PackOptions, kind: WorkerKind, total: int
) -> PackSummary:
    executor = options.executor
    resume_key = {
        "source": src.describe(),
        "fingerprint": src.fingerprint(),
        "options": options.content_key(),
        "num_items": total,
    }
    writer = PackWriter(out, resume_key)
    writer = writer.resume() if options.resume else writer.start()
    first = writer.next_source_index
    job = job_for(options)
    conversions: Counter[str] = Counter()
    kept_source = 0  # source JPEGs stored as is (reencode="auto"), in this run
    started = time.perf_counter()
    try:
        if options.strict and first > 0:
            earlier = writer.skipped()  # skipped by an earlier run that was not strict
            if earlier:
                raise ImageDecodeError(earlier[0]["path"], earlier[0]["reason"])
        with (
            _sigterm_as_interrupt(),
            # Writeback overlaps decoding. Not with forked workers: forking a process
            # that runs threads is unsafe (and deprecated from Python 3.12).
            Flusher(writer.tmp_path)
            if kind == "thread" or options.workers == 1
            else contextlib.nullcontext(),
            Progress(
                total,
                "packing",
                False if options.quiet else None,
                initial=first,
                log=None if options.quiet else logger.info,  # a line a minute off a TTY
            ) as bar,
            contextlib.closing(
                _results(src, job, first, total, options.workers, executor)
            ) as chunks,
        ):
            for chunk in chunks:
                for r in chunk:
                    _write(writer, r, options.strict, conversions)
                    kept_source += r.kept_source
                bar.update(len(chunk))
        skipped = writer.skipped()
        if writer.num_samples == 0:
            first_bad = f" (first: {skipped[0]['path']}: {skipped[0]['reason']})" if skipped else ""
            raise EmptySourceError(
                f"{_name(src)}: none of the {total} images could be read{first_bad}; "
                "check the files."
            )
        meta = metadata(src, options, writer, skipped, conversions, kept_source, resumed=first > 0)
        sections, meta["columns"] = metadata_sections(src, writer, meta["classes"])
        writer.commit(meta, sections)
    except KeyboardInterrupt:
        writer.abort(keep_partial=True)
        message = (
            f"{out}: packing interrupted after {writer.next_source_index}/{total} images; "
            f"the partial pack is kept — rerun with resume=True (CLI: --resume) to continue."
        )
        logger.warning(message)
        raise KeyboardInterrupt(message) from None
    except BrokenProcessPool:
        # A worker died (out of memory, a crash in a decoder): what was written is sound.
        writer.abort(keep_partial=True)
        raise
    except OSError as exc:  # a full disk: name the file, which is removed
        writer.abort()
        if exc.filename is None and not isinstance(exc, PixpackError):
            exc.filename = f"{writer.tmp_path} (removed)"
        raise
    except BaseException:
        writer.abort()
        raise
    seconds = time.perf_counter() - started
    done = total - first
    if skipped:
        warnings.warn(
            f"{out}: skipped {len(skipped)} unreadable image(s) of {total} (first: "
            f"{skipped[0]['path']}: {skipped[0]['reason']}); they are listed in the pack "
            "metadata 'skipped' — use strict=True to fail instead.",
            stacklevel=3,
        )
    modes = dict(meta["mode_histogram"])
    if options.mode == "jpeg" and modes.get("raw"):
        warnings.warn(
            f"{out}: {modes['raw']} of {writer.num_samples} image(s) stored raw, not JPEG: "
            "JPEG holds 8-bit images with 1 or 3 channels only, and these are 16-bit, "
            "signed, float or have another number of channels (channels=3, CLI --channels "
            "3, makes 8-bit 2- and 4-channel images RGB; the others stay raw, exact).",
            stacklevel=3,
        )
    return PackSummary(
        path=out,
        num_samples=writer.num_samples,
        num_skipped=len(skipped),
        skipped=[{"path": s["path"], "reason": s["reason"]} for s in skipped],
        seconds=seconds,
        images_per_second=done / seconds if seconds > 0 else float("inf"),
        bytes=out.stat().st_size,
        modes=modes,
    )


def job_for(options: PackOptions) -> _Job:
    """What every worker needs to know to encode one image."""
    return _Job(
        options.mode,
        options.quality,
        # The downscale: a plain int (max_side) keeps the workers' job as it was.
        SizeLimit(options.max_side, options.short_side)
        if options.short_side is not None
        else options.max_side,
        options.channels,
        options.mode == "jpeg" and options.reencode == "auto",
        options.pages,
    )


def _merge_options(options: PackOptions | None, overrides: dict[str, Any]) -> PackOptions:
    options = options if options is not None else PackOptions()
    if not overrides:
        return options
    known = {f.name for f in dataclasses.fields(PackOptions)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise UsageError(
            f"unknown pack option(s) {', '.join(unknown)}; valid: {', '.join(sorted(known))}."
        )
    return dataclasses.replace(options, **overrides)


def _name(src: Source) -> str:
    info = src.describe()
    return str(info.get("root") or info.get("path") or info.get("class") or "source")


def _write(writer: PackWriter, r: _Result, strict: bool, conversions: Counter[str]) -> None:
    if r.sample is None:
        if strict:
            raise ImageDecodeError(r.path, r.reason)
        writer.skip(r.source_index, r.path, r.reason)
        return
    s = r.sample
    assert r.sums is not None and r.sumsq is not None  # set for every written sample
    writer.append(
        s.data,
        source_index=r.source_index,
        height=s.height,
        width=s.width,
        channels=s.channels,
        dtype_code=s.dtype_code,
        mode_code=s.mode_code,
        label=r.label,
        stats=(r.pixels, r.sums, r.sumsq),
        checksum=r.checksum,
    )
    if r.conversion:
        conversions[r.conversion] += 1


# -- the work itself (runs in workers, or in-process for workers=1) ------------------------
def _process(
    src: Source, job: _Job, to_bytes: bool, start: int, stop: int, cancel: threading.Event | None
) -> list[_Result]:
    results = []
    for i in range(start, stop):
        if cancel is not None and cancel.is_set():
            break  # packing was interrupted: nobody will read this chunk
        r = _process_one(src, job, i)
        if to_bytes and r.sample is not None and not isinstance(r.sample.data, bytes):
            r = r._replace(sample=dataclasses.replace(r.sample, data=bytes(r.sample.data)))
        results.append(r)
    return results


def _process_one(src: Source, job: _Job, i: int) -> _Result:
    try:
        item, label = src.load(i)
        data = None
        if job.passthrough and isinstance(item, (str, os.PathLike)):
            data = read_file(item)
            kept = store_as_is(
                data,
                os.fspath(item),
                quality=job.quality,
                max_side=job.max_side,
                channels=job.channels,
            )
            if kept is not None:
                return _passed_through(i, int(label), kept)
        loaded = load_image_info(
            item, channels=job.channels, max_side=job.max_side, data=data, pages=job.pages
        )
    except ImageDecodeError as e:
        path = e.path if not e.path.startswith("<") else src.path_of(i)
        return _Result(i, fmt.NO_LABEL, None, 0, None, None, 0, None, path, e.reason)
    except SourceFormatError:
        raise  # a bad label or row is the dataset's bug, not an unreadable image
    except (OSError, ValueError, SyntaxError, EOFError) as e:  # a dataset's own loader failed
        reason = f"{type(e).__name__}: {e}"
        return _Result(i, fmt.NO_LABEL, None, 0, None, None, 0, None, src.path_of(i), reason)
    array = loaded.array
    sample = encode_sample(array, mode=job.mode, quality=job.quality)
    pixels, sums, sumsq = pixel_stats(array)
    crc = fmt.checksum(sample.data)
    return _Result(i, int(label), sample, pixels, sums, sumsq, crc, loaded.conversion, "", "")


def _passed_through(i: int, label: int, kept: PassedThrough) -> _Result:
    """A source JPEG stored as is; its stats come from the half-scale preview decode."""
    sample = kept.sample
    pixels, sums, sumsq = pixel_stats(kept.preview)
    full = sample.height * sample.width
    scale = full / pixels  # per-pixel means from the preview, counted over the full image
    crc = fmt.checksum(sample.data)
    return _Result(i, label, sample, full, sums * scale, sumsq * scale, crc, None, "", "", True)


def _worker_kind(src: Source, requested: str) -> WorkerKind:
    """Threads for the file-backed sources (their work releases the GIL), else processes."""
    if requested in ("thread", "process"):
        return requested  # type: ignore[return-value]
    if requested != "auto":
        raise UsageError(f"executor must be 'auto', 'thread' or 'process' (got {requested!r}).")
    # Exact types only: a subclass may override load() with GIL-bound Python.
    if type(src) in (ImageFolderSource, CsvSource, JsonlSource):
        return "thread"
    if type(src) is SequenceSource and isinstance(src.seq, (list, tuple)):
        return "thread"  # paths / arrays / PIL images: decoding releases the GIL
    return "process"


def _results(
    src: Source, job: _Job, first: int, total: int, workers: int, executor: str = "auto"
) -> Generator[list[_Result], None, None]:
    """Chunks of results in source order, from a bounded window of in-flight tasks."""
    kind = _worker_kind(src, executor)
    remaining = total - first
    if remaining <= 0:
        return
    chunk = max(1, min(_MAX_CHUNK, math.ceil(remaining / (workers * 8))))
    bounds = [(s, min(s + chunk, total)) for s in range(first, total, chunk)]
    workers = min(workers, len(bounds))
    if workers == 1:
        try:
            with single_threaded_opencv():  # one worker: one core
                for start, stop in bounds:
                    yield _process(src, job, False, start, stop, None)
        finally:
            release_scratch()  # the caller's thread outlives the pack
        return
    # Process results cross a pipe: their sample bytes must be picklable (bytes).
    work = functools.partial(_process, src, job, kind == "process")
    yield from ordered_chunks(
        work, bounds, workers=workers, kind=kind, window_per_worker=_WINDOW_PER_WORKER
    )


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM behaves like Ctrl-C while packing, so the partial pack is kept."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt("SIGTERM")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
