"""Frozen option dataclasses shared by the Python API and the CLI.

Each CLI flag maps 1:1 to a field here, so the two cannot drift. Validation lives in
``__post_init__`` and raises :class:`~pixpack.errors.UsageError` with a one-line fix.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass
from typing import Any, Literal

from .errors import UsageError

__all__ = ["PackOptions", "LoaderOptions", "MAX_BATCH_SIZE", "default_workers", "shard_limit"]

StorageMode = Literal["raw", "jpeg", "lossless"]
ErrorPolicy = Literal["raise", "skip", "warn"]


def default_workers() -> int:
    """Cores this process may use (respects taskset/cgroup affinity)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


# Batch buffers are allocated for a whole batch up front: a batch of 10**9 would ask
# torch for petabytes. 65536 samples per process is far above any real batch size.
MAX_BATCH_SIZE = 1 << 16
_DEVICE = re.compile(r"cpu|cuda(:\d+)?")


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise UsageError(message)


@dataclass(frozen=True)
class PackOptions:
    """How a dataset is converted into a pack.

    mode: ``"raw"`` stores decoded pixels (exact; any pixel type and channel count);
        ``"jpeg"`` stores 8-bit 1/3-channel images as JPEG at ``quality`` (re-encoded, or
        kept as is: see ``reencode``; others stay raw); ``"lossless"`` stores every
        image exact and compressed (any pixel type and channel count; 2-3x smaller than
        raw on 12-bit scans, decoded at ~3 GB/s per core; LZ4 blocks).
    quality: JPEG quality 1-100 for ``mode="jpeg"``.
    max_side: if set, images whose longer side exceeds it are downscaled (Gaussian
        antialiasing + bilinear, aspect kept) so the longer side equals it. Never upscales.
    short_side: if set, images whose shorter side exceeds it are downscaled the same way
        so the shorter side equals it (torchvision's ``Resize(N)``, done once at pack
        time: ``short_side=256`` then ``Resize(256)`` + ``CenterCrop(224)`` never
        upsamples). With ``max_side`` too, both limits hold.
    channels: ``None`` keeps each image's own channel count (grayscale stays 1);
        1, 3 or 4 converts every image to that many channels.
    workers: parallel workers decoding/encoding (default: all usable cores).
    executor: ``"thread"`` or ``"process"`` workers; ``"auto"`` uses threads for
        ImageFolder/CSV/JSON-lines sources and lists (their decoding releases the GIL) and
        processes for other Python datasets, whose ``__getitem__`` may hold it.
        Never changes the pack's bytes.
    strict: the first unreadable image aborts the pack instead of being skipped.
    resume: continue an interrupted pack of the same source and options.
    quiet: no progress bar.
    reencode: ``"auto"`` stores a source JPEG's own bytes (metadata stripped) when
        re-encoding could only lose: it needs no resize, rotation or channel change, is
        baseline 4:2:0 or gray, and is quantised at least as coarsely as ``quality``;
        ``"always"`` re-encodes every image (FFCV's behaviour). Only for ``mode="jpeg"``.
    classes: a fixed class list (names; the CLI takes them comma-separated): labels
        are positions in it, so separately packed splits agree on indices. A manifest
        label or an ImageFolder folder not in it is an error.
    classes_from: the path of another pack whose classes are the fixed class list.
    path_column: the manifest (CSV/TSV/JSON-lines) column holding image paths
        (default: detected from the header: path, file, filename, image, ...).
    label_column: the manifest column holding labels (default: detected from the
        header: label, class, category, target, ...; none: unlabelled).
    pages: what the pages of a multi-page TIFF (a z-stack, a time series), and the
        frames of a multi-frame DICOM file, are:
        ``"error"`` (default: such a file is skipped with the reason, never packed as
        its first page), ``"channels"`` (stacked as the channels of one sample) or
        ``"samples"`` (one sample per page, with a ``page`` column).
    shard_size: write a sharded pack, a directory OUT of ordinary packs plus a
        ``shards.json`` manifest, cutting a new shard at this size: bytes with a unit
        (``"1GB"``, ``"512MB"``, ``"2GiB"``) or a sample count (``"10000samples"``).
        Rerunning keeps the finished shards and redoes the missing ones.
    shard_index, num_shards: pack only slice ``shard_index`` of ``num_shards`` equal,
        contiguous slices of the source (array jobs: one slice per job) into the
        sharded pack OUT; the class list is still the whole source's. The last slice
        to finish writes the manifest (or run ``pixpack merge OUT``).
    engine: pack on a Dask cluster: ``"dask://HOST:PORT"`` (a running scheduler),
        ``"dask:///PATH/scheduler.json"`` or ``"dask://local?workers=N"`` (N worker
        processes started here for this pack). Each task packs whole shards into OUT
        (which, like SRC, every worker must reach); the manifest is written last. With a
        sample-count ``shard_size`` the shards are those of a one-machine pack; with
        ``num_shards`` alone, the engine runs every slice. Never changes the pack's bytes.
    """

    mode: StorageMode = "raw"
    quality: int = 90
    max_side: int | None = None
    channels: int | None = None
    workers: int = dataclasses.field(default_factory=default_workers)
    executor: Literal["auto", "thread", "process"] = "auto"
    strict: bool = False
    resume: bool = False
    quiet: bool = False
    # Last, so positional construction from before it existed keeps its meaning.
    reencode: Literal["auto", "always"] = "auto"
    short_side: int | None = None
    classes: tuple[str, ...] | None = None
    classes_from: str | None = None
    path_column: str | None = None
    label_column: str | None = None
    pages: Literal["error", "channels", "samples"] = "error"
    shard_size: str | None = None
    shard_index: int | None = None
    num_shards: int | None = None
    engine: str | None = None

    def __post_init__(self) -> None:
        self._check_shards()
        _check(
            self.pages in ("error", "channels", "samples"),
            f"pages must be 'error', 'channels' or 'samples' (got {self.pages!r}).",
        )
        _check(
            self.mode in ("raw", "jpeg", "lossless"),
            f"mode must be 'raw', 'jpeg' or 'lossless' (got {self.mode!r}).",
        )
        _check(
            isinstance(self.quality, int) and 1 <= self.quality <= 100,
            f"quality must be an integer from 1 to 100 (got {self.quality!r}).",
        )
        _check(
            self.reencode in ("auto", "always"),
            f"reencode must be 'auto' or 'always' (got {self.reencode!r}).",
        )
        _check(
            self.max_side is None or (isinstance(self.max_side, int) and self.max_side >= 8),
            f"max_side must be an integer >= 8 or None (got {self.max_side!r}).",
        )
        _check(
            self.short_side is None or (isinstance(self.short_side, int) and self.short_side >= 8),
            f"short_side must be an integer >= 8 or None (got {self.short_side!r}).",
        )
        _check(
            self.channels in (None, 1, 3, 4),
            f"channels must be None, 1, 3 or 4 (got {self.channels!r}).",
        )
        _check(
            isinstance(self.workers, int) and self.workers >= 1,
            f"workers must be a positive integer (got {self.workers!r}).",
        )
        _check(
            self.executor in ("auto", "thread", "process"),
            f"executor must be 'auto', 'thread' or 'process' (got {self.executor!r}).",
        )
        self._check_source_fields()

    def _check_source_fields(self) -> None:
        if self.classes is not None:
            _check(
                isinstance(self.classes, (list, tuple))
                and all(isinstance(c, str) and c for c in self.classes)
                and len(set(self.classes)) == len(self.classes) > 0,
                "classes must be a list of distinct non-empty names, e.g. ['cat', 'dog'] "
                f"(CLI --classes cat,dog) (got {self.classes!r}).",
            )
            object.__setattr__(self, "classes", tuple(self.classes))  # frozen: hashable
        if self.classes_from is not None:
            _check(
                isinstance(self.classes_from, (str, os.PathLike)) and bool(self.classes_from),
                f"classes_from must be the path of a pack (got {self.classes_from!r}).",
            )
            _check(self.classes is None, "give classes or classes_from, not both.")
            object.__setattr__(self, "classes_from", os.fspath(self.classes_from))
        for name in ("path_column", "label_column"):
            value = getattr(self, name)
            _check(
                value is None or (isinstance(value, str) and bool(value)),
                f"{name} must be a column name (got {value!r}).",
            )
        _check(
            self.path_column is None or self.path_column != self.label_column,
            f"path_column and label_column are both {self.path_column!r}; name two columns.",
        )

    def _check_shards(self) -> None:
        if self.shard_size is not None:
            shard_limit(self.shard_size)  # raises the UsageError that says what is valid
        if self.engine is not None:
            self._check_engine()
        else:
            _check(
                (self.shard_index is None) == (self.num_shards is None),
                "give shard_index and num_shards together (CLI --shard-index I --num-shards N).",
            )
        if self.num_shards is not None:
            _check(
                isinstance(self.num_shards, int) and self.num_shards >= 1,
                f"num_shards must be a positive integer (got {self.num_shards!r}).",
            )
            _check(
                (self.shard_index is None and self.engine is not None)
                or (isinstance(self.shard_index, int) and 0 <= self.shard_index < self.num_shards),
                f"shard_index must be in [0, num_shards={self.num_shards}) "
                f"(got {self.shard_index!r}).",
            )

    def _check_engine(self) -> None:
        from .write.engines import parse_engine

        parse_engine(self.engine)  # raises the UsageError that says what is valid
        _check(
            self.shard_index is None,
            "engine runs every slice itself; give num_shards without shard_index (or drop "
            "engine and run slice shard_index as an array job).",
        )
        bytes_sized = self.shard_size is not None and shard_limit(self.shard_size)[0] == "bytes"
        _check(
            (self.shard_size is not None and not bytes_sized) or self.num_shards is not None,
            "engine packs whole shards in parallel: give a sample-count shard_size (e.g. "
            "'10000samples', the shards of a one-machine pack) or num_shards (slices, each "
            f"cut by size as array jobs do) (got shard_size={self.shard_size!r}).",
        )

    @property
    def sharded(self) -> bool:
        """Whether these options write a sharded pack (a directory)."""
        return self.shard_size is not None or self.num_shards is not None

    def content_key(self) -> dict[str, Any]:
        """The options that change the pack's bytes (used in cache fingerprints)."""
        key: dict[str, Any] = {
            "mode": self.mode,
            "quality": self.quality if self.mode == "jpeg" else None,
            "max_side": self.max_side,
            "channels": self.channels,
        }
        if self.mode == "jpeg":  # absent for raw: raw packs' cache keys stay as they were
            key["reencode"] = self.reencode
        if self.short_side is not None:  # absent when unset: older keys stay valid
            key["short_side"] = self.short_side
        if self.classes is not None:  # these too: they change labels
            key["classes"] = list(self.classes)
        if self.classes_from is not None:  # pack() reads it into classes first
            key["classes_from"] = os.path.abspath(self.classes_from)
        for name in ("path_column", "label_column"):
            if getattr(self, name) is not None:
                key[name] = getattr(self, name)
        if self.pages != "error":
            key["pages"] = self.pages
        return key


_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}  # fmt: skip
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*")


def shard_limit(text: Any) -> tuple[Literal["bytes", "samples"], int]:
    """``("bytes", n)`` or ``("samples", n)`` from a shard size such as ``"1GB"``,
    ``"512MiB"`` or ``"10000samples"``; anything else is a :class:`UsageError`."""
    match = _SIZE.fullmatch(text.lower()) if isinstance(text, str) else None
    unit = match.group(2) if match else ""
    if match is None or (unit not in _UNITS and unit not in ("samples", "sample")):
        bare = str(text).strip().isdigit()
        hint = (
            f"{str(text).strip()}samples or {str(text).strip()}MB"
            if bare
            else "1GB or 10000samples"
        )
        raise UsageError(
            f"shard_size must be bytes with a unit (B, kB, MB, GB, TB, KiB ... TiB) or a "
            f"sample count ending in 'samples' (got {text!r}); e.g. {hint}."
        )
    if unit in ("samples", "sample"):
        count = float(match.group(1))
        _check(count.is_integer() and count >= 1, f"shard_size {text!r}: at least 1 sample.")
        return "samples", int(count)
    nbytes = int(float(match.group(1)) * _UNITS[unit])
    _check(nbytes >= 1, f"shard_size {text!r}: at least 1 byte.")
    return "bytes", nbytes


@dataclass(frozen=True)
class LoaderOptions:
    """How :class:`pixpack.Loader` batches and schedules work.

    batch_size: samples per batch (at most ``MAX_BATCH_SIZE`` = 65536).
    shuffle: a fresh permutation every epoch, a pure function of (seed, epoch).
    seed: base seed for ordering and for every sample's random augmentation.
    drop_last: drop the final incomplete batch.
    workers: threads decoding and augmenting (default: all usable cores).
    prefetch: batches prepared ahead of the consumer.
    device: ``"cpu"``, ``"cuda"`` or ``"cuda:<index>"``; uint8 crosses the bus,
        normalisation runs there.
    on_error: what a failing sample does: ``"raise"``, ``"skip"`` or ``"warn"`` (skip + warning).
    rank, world_size: this process's shard of every epoch (torch.distributed style);
        the Loader takes them from torch.distributed or torchrun when not given.
    exact: every sample exactly once across the ranks, for evaluation: no wrap-around
        padding; every rank still gets the same number of batches (some end smaller
        or empty). Not with ``drop_last``.
    block_shuffle: 0 (default) shuffles samples fully; N > 0 shuffles blocks of N
        neighbouring samples, then mixes the samples of every ``block_window`` blocks
        (:func:`pixpack.loader.ordering.block_order`): large reads for slow or network
        disks, at some cost in shuffle quality (measured in docs/loader.md).
    block_window: blocks whose samples are mixed together in a block shuffle.
    shard_window: 0 (default) off; K > 0 on a sharded (or remote) pack orders the
        shards afresh every epoch and mixes the samples of every K consecutive shards
        (:func:`pixpack.loader.ordering.shard_order`): downloads stay sequential and a
        cache of 2K shards suffices (docs/remote.md).
    read_ahead: batches whose bytes are read from disk ahead of the batches being
        decoded (0: off), so many reads are in flight when the pack is not in RAM.
    read_ahead_bytes: cap on those bytes (page cache, reclaimable; not this process's
        own memory). The window is the smaller of the two bounds.
    """

    batch_size: int = 64
    shuffle: bool = True
    seed: int = 0
    drop_last: bool = False
    workers: int = dataclasses.field(default_factory=default_workers)
    prefetch: int = 2
    device: str = "cpu"
    on_error: ErrorPolicy = "raise"
    rank: int = 0
    world_size: int = 1
    read_ahead: int = 8
    read_ahead_bytes: int = 64 << 20
    block_shuffle: int = 0
    block_window: int = 8
    exact: bool = False
    shard_window: int = 0

    def __post_init__(self) -> None:
        _check(
            not (self.exact and self.drop_last),
            "exact=True sees every sample once and drop_last=True drops some; pick one.",
        )
        _check(
            isinstance(self.block_shuffle, int) and self.block_shuffle >= 0,
            "block_shuffle must be 0 (full shuffle) or a positive number of samples per "
            f"block (got {self.block_shuffle!r}).",
        )
        _check(
            isinstance(self.block_window, int) and self.block_window >= 1,
            f"block_window must be a positive number of blocks (got {self.block_window!r}).",
        )
        _check(
            isinstance(self.shard_window, int) and self.shard_window >= 0,
            f"shard_window must be 0 (off) or a positive number of shards (got "
            f"{self.shard_window!r}).",
        )
        _check(
            not (self.shard_window and self.block_shuffle),
            "shard_window and block_shuffle are two ways to order reads; pick one.",
        )
        _check(
            isinstance(self.read_ahead, int) and self.read_ahead >= 0,
            f"read_ahead must be a non-negative number of batches (got {self.read_ahead!r}).",
        )
        _check(
            isinstance(self.read_ahead_bytes, int) and self.read_ahead_bytes >= 0,
            f"read_ahead_bytes must be a non-negative integer (got {self.read_ahead_bytes!r}).",
        )
        _check(
            isinstance(self.batch_size, int) and 1 <= self.batch_size <= MAX_BATCH_SIZE,
            f"batch_size must be an integer from 1 to {MAX_BATCH_SIZE} per process "
            f"(got {self.batch_size!r}).",
        )
        _check(
            isinstance(self.device, str) and _DEVICE.fullmatch(self.device) is not None,
            f"device must be 'cpu', 'cuda' or 'cuda:<index>' (got {self.device!r}).",
        )
        _check(
            isinstance(self.seed, int) and self.seed >= 0,
            f"seed must be a non-negative integer (got {self.seed!r}).",
        )
        _check(
            isinstance(self.workers, int) and self.workers >= 1,
            f"workers must be a positive integer (got {self.workers!r}).",
        )
        _check(
            isinstance(self.prefetch, int) and self.prefetch >= 1,
            f"prefetch must be a positive integer (got {self.prefetch!r}).",
        )
        _check(
            self.on_error in ("raise", "skip", "warn"),
            f"on_error must be 'raise', 'skip' or 'warn' (got {self.on_error!r}).",
        )
        _check(
            isinstance(self.world_size, int) and self.world_size >= 1,
            f"world_size must be a positive integer (got {self.world_size!r}).",
        )
        _check(
            isinstance(self.rank, int) and 0 <= self.rank < self.world_size,
            f"rank must be in [0, world_size={self.world_size}) (got {self.rank!r}).",
        )
