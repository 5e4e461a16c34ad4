"""``ShardedPack``: one dataset over a directory of packs (``pixpack.open(DIR)``).

Opening reads the manifest only (:mod:`pixpack.shard_format`): the cost grows with the
number of shards, never with the number of samples, and no shard is touched. A shard
is opened (an ordinary :class:`~pixpack.read.pack.Pack`, one map) the first time one
of its samples is read, and checked against the manifest then (size, header CRC,
sample count): a missing, replaced or re-packed shard raises a one-line
:class:`~pixpack.errors.CorruptPackError` naming it. Global sample ``i`` lives in
shard ``k = searchsorted(starts, i, "right") - 1`` at ``i - starts[k]``.

What needs every sample (``targets``, ``index``, metadata columns, SQL queries) is
joined across shards on first use, one concatenation. Sample bytes stay zero-copy
views of a shard's map (``sample_bytes``); ``sample_spans`` (the loader's native
path, one buffer per chunk) gives the map itself when a chunk lies in one shard and
otherwise gathers the chunk's raw and lossless samples into one buffer (JPEG samples
are decoded from ``sample_bytes`` anyway). ``spans`` and ``storage`` answer in a
virtual address space over the shards (:class:`~.shard_parts.ShardedStorage`), so
read-ahead is unchanged.

Pickles as its manifest path and options; shards reopen lazily in the receiving
process (DataLoader workers).
"""

from __future__ import annotations

import bisect
import operator
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from .. import format as fmt
from .. import shard_format as sf
from ..errors import CorruptPackError, UsageError
from ..storage import Access
from .metadata_access import MetadataAccess
from .pack import Pack
from .shard_parts import LocalShards, ShardedColumns, ShardedStorage, check_shard
from .sharded_spans import ShardedSpans

__all__ = ["ShardedPack"]


class ShardedPack(ShardedSpans, MetadataAccess):
    """A read-only dataset over the shards a manifest lists: the :class:`Pack` API
    (``len``, ``pack[i]``, ``targets``, ``index``, ``metadata``, ``columns``,
    ``query``, ...). Use ``pixpack.open(DIR)``."""

    def __init__(
        self,
        manifest: str | os.PathLike[str],
        *,
        in_memory: bool = False,
        check_checksums: bool = False,
        access: Access = "random",
        source: Any = None,
    ) -> None:
        if access not in ("random", "sequential"):
            raise UsageError(f"access must be 'random' or 'sequential' (got {access!r}).")
        # Where the manifest and shards come from: files here (LocalShards) or a remote
        # store read through a bounded cache (remote.RemoteShards).
        self._source = source if source is not None else LocalShards(Path(manifest))
        self._options = {"in_memory": in_memory, "check_checksums": check_checksums,
                         "access": access}  # fmt: skip
        self._expected: bytes | None = None
        self._load()

    @property
    def _manifest_path(self) -> Any:
        return self._source.where

    def _load(self) -> None:
        manifest, raw = self._source.manifest()
        if self._expected is not None and raw != self._expected:
            raise CorruptPackError(
                f"{self._manifest_path} changed on disk since it was opened (re-merged?); "
                "open it again with pixpack.open",
                self._manifest_path,
            )
        self._expected = raw
        self._manifest = manifest
        self._dir = self._source.directory
        self._entries: list[dict[str, Any]] = manifest["shards"]
        self._starts = sf.cumulative_counts(manifest)
        self._starts_list: list[int] = self._starts.tolist()
        sizes = [e["bytes"] for e in self._entries]
        self._bases = np.concatenate(([0], np.cumsum(sizes, dtype=np.int64))).astype(np.int64)
        self._n = int(manifest["num_samples"])
        self._classes = [str(c) for c in manifest.get("classes") or []]
        self._class_to_idx = {c: i for i, c in enumerate(self._classes)}
        self._opened: list[Pack | None] = [None] * len(self._entries)
        # per shard: (data region start, end), known once its header was read
        self._bounds: dict[int, tuple[int, int]] = {}
        self._lock = threading.Lock()
        self._shard_locks = [threading.Lock() for _ in self._entries]
        self._remote = bool(getattr(self._source, "remote", False))
        # remote: opened shards by recency; shards beyond the limit are dropped
        self._recent: OrderedDict[int, None] = OrderedDict()
        self._max_open = self._open_limit()
        self._fetcher: ThreadPoolExecutor | None = None
        self._fetching: dict[int, Future[Any]] = {}
        self._index: np.ndarray | None = None
        self._columns: Any = None
        self._sections: dict[str, tuple[int, int, int]] = {}
        self._sql = None
        self._closed = False

    # -- shards ------------------------------------------------------------------------
    @property
    def shard_paths(self) -> list[Path]:
        """The shards' files, in sample order (local packs)."""
        return [Path(self._dir) / e["path"] for e in self._entries]

    @property
    def shard_starts(self) -> np.ndarray:
        """``len(shards) + 1`` global indices: shard k holds ``starts[k]:starts[k + 1]``."""
        return self._starts

    @property
    def remote(self) -> bool:
        """Whether the shards come from a remote store through the local cache."""
        return self._remote

    @property
    def num_shards(self) -> int:
        return len(self._entries)

    def shard(self, k: int) -> Pack:
        """Shard ``k`` as an open :class:`Pack` (opened and checked on first use; a
        remote shard is downloaded into the cache first)."""
        pack = self._opened[k]
        if pack is not None:
            if self._remote:
                self._used(k)
            return pack
        with self._shard_locks[k]:  # one opener per shard; other shards open meanwhile
            pack = self._opened[k]
            if pack is None:
                if self._closed:
                    raise ValueError(f"{self.path}: the pack is closed; open it again")
                pack = self._open_shard(k)
                self._opened[k] = pack
        if self._remote:
            self._used(k)
        return pack

    def _open_shard(self, k: int) -> Pack:
        entry = self._entries[k]

        def make(path: Path) -> Pack:
            pack = Pack(path, **self._options)
            try:
                header = pack.header
                check_shard(path, entry, header, self._manifest_path)
            except BaseException:
                pack.close()
                raise
            return pack

        pack = self._source.open_shard(k, entry, make)
        header = pack.header
        # the map, for native readers
        pack._shard_region = (  # type: ignore[attr-defined]
            pack.sample_spans(np.zeros(0, np.int64))[0],
            int(header["data_offset"]),
            int(header["index_offset"]),
        )
        self._bounds[k] = (int(header["data_offset"]), int(header["index_offset"]))
        return pack

    # -- remote shards: how many stay mapped, and fetching ahead -----------------------
    def _open_limit(self) -> int:
        if not self._remote:
            return len(self._entries)
        options = self._source.options
        if options.max_open_shards:
            return options.max_open_shards
        largest = max((int(e["bytes"]) for e in self._entries), default=1)
        return max(2, options.limit_bytes // max(1, largest))

    def _used(self, k: int) -> None:
        """Shard ``k`` was just used; drop the least recently used beyond the limit.
        A dropped shard's descriptor closes now and its map when no reader holds it
        (a thread reading it meanwhile keeps valid bytes): its disk space returns once
        the cache evicts it."""
        with self._lock:
            self._recent[k] = None
            self._recent.move_to_end(k)
            drop = []
            while len(self._recent) > self._max_open:
                old = next(iter(self._recent))
                del self._recent[old]
                drop.append(old)
            packs = [self._opened[j] for j in drop]
            for j in drop:
                self._opened[j] = None
        for pack in packs:
            storage = pack._storage if pack is not None else None
            if storage is not None:
                storage.detach()

    def prefetch(self, k: int) -> Future[Any] | None:
        """Start downloading and opening remote shard ``k`` in the background (no-op if
        it is open or on its way; None for local packs)."""
        if not self._remote or self._opened[k] is not None or self._closed:
            return None
        with self._lock:
            future = self._fetching.get(k)
            if future is not None and not future.done():
                return future
            if self._fetcher is None:
                self._fetcher = ThreadPoolExecutor(2, thread_name_prefix="pixpack-fetch")
            future = self._fetcher.submit(self.shard, k)
            self._fetching[k] = future
            return future

    def _storage_or_fetch(self, k: int) -> Any:
        """The open storage of shard ``k``, or None after starting its download."""
        pack = self._opened[k]
        if pack is not None:
            return pack._storage
        self.prefetch(k)
        return None

    def _all_shards(self) -> list[Pack]:
        return [self.shard(k) for k in range(len(self._entries))]

    def _column_parts(self) -> list[Any]:
        """Per shard, something with ``.columns``: the opened shard, or for a remote
        shard not opened, its columns by range reads (no download of its samples)."""
        if not self._remote:
            return self._all_shards()
        parts: list[Any] = []
        for k, entry in enumerate(self._entries):
            pack = self._opened[k]
            parts.append(pack if pack is not None else
                         _ColumnsOnly(self._source.shard_columns(k, entry)))  # fmt: skip
        return parts

    def locate(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(shard, local index)`` of each global index (no bounds check)."""
        indices = np.asarray(indices, np.int64)
        shard = np.searchsorted(self._starts, indices, side="right") - 1
        return shard, indices - self._starts[shard]

    def _where(self, i: int) -> tuple[Pack, int, int]:
        i = operator.index(i)
        n = self._n
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"sample index {i} out of range for a pack of {n} samples")
        k = bisect.bisect_right(self._starts_list, i) - 1
        return self.shard(k), i - self._starts_list[k], i

    # -- pickling and lifetime -----------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        return {"source": self._source, "options": self._options,
                "expected": self._expected}  # fmt: skip

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._source = state["source"]
        self._options = state["options"]
        self._expected = state["expected"]
        self._load()  # the manifest only; shards reopen on first use

    def close(self) -> None:
        """Close every opened shard."""
        with self._lock:
            self._closed = True
            opened, self._opened = self._opened, [None] * len(self._entries)
            fetcher, self._fetcher = self._fetcher, None
        if fetcher is not None:
            fetcher.shutdown(wait=True, cancel_futures=True)
            opened = [*opened, *self._opened]  # what finished fetching meanwhile
            self._opened = [None] * len(self._entries)
        for pack in opened:
            if pack is not None:
                pack.close()
        if self._sql is not None:
            self._sql.close()
            self._sql = None

    def __enter__(self) -> ShardedPack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"<pixpack.ShardedPack {str(self.path)!r}: {self._n} samples in "
            f"{len(self._entries)} shards, {len(self._classes)} classes>"
        )

    # -- whole-dataset properties ----------------------------------------------------------
    def __len__(self) -> int:
        return self._n

    @property
    def path(self) -> Any:
        """The sharded pack's directory (a URL for a remote pack)."""
        return self._dir

    @property
    def manifest(self) -> dict[str, Any]:
        """The parsed manifest (:mod:`pixpack.shard_format`)."""
        return self._manifest

    @property
    def metadata(self) -> dict[str, Any]:
        """The whole dataset's metadata, as a single pack's: classes, counts, options,
        mean/std, skipped, source, columns (from the manifest; no shard is opened)."""
        m = self._manifest
        columns = [{"name": c["name"], "type": c.get("type")} for c in m.get("columns", [])]
        return {**m.get("metadata", {}), "classes": self._classes,
                "class_to_idx": self._class_to_idx, "num_samples": self._n,
                "options": m.get("options"), "columns": columns}  # fmt: skip

    @property
    def classes(self) -> list[str]:
        return self._classes

    @property
    def class_to_idx(self) -> dict[str, int]:
        return self._class_to_idx

    @property
    def index(self) -> np.ndarray:
        """Every shard's index joined (``format.INDEX_DTYPE``; ``offset`` is within the
        sample's shard), built on first use: 40 bytes per sample."""
        if self._index is None:
            out = np.empty(self._n, fmt.INDEX_DTYPE)
            for k in range(len(self._entries)):
                a, b = self._starts_list[k], self._starts_list[k + 1]
                part = self._shard_index(k)
                for name in fmt.INDEX_DTYPE.names or ():
                    out[name][a:b] = part[name]
            out.flags.writeable = False
            self._index = out
        return self._index

    def _shard_index(self, k: int) -> np.ndarray:
        """Shard ``k``'s index: from its map, or for a remote shard not downloaded yet,
        by range reads of its header and index (the shard itself is not fetched)."""
        pack = self._opened[k]
        if pack is None and self._remote:
            index, data, end = self._source.shard_index(k, self._entries[k])
            self._bounds[k] = (data, end)
            return index
        return self.shard(k).index

    @property
    def targets(self) -> np.ndarray:
        """Labels as a read-only int64 array (joined across shards on first use)."""
        return self.index["label"]

    @property
    def header(self) -> dict[str, Any]:
        """A single pack's header fields, for the whole dataset: the manifest's version,
        the shards' total size, and the manifest's CRC as ``header_crc32`` (what splits
        and distributed checks use to tell versions of a dataset apart)."""
        raw = self._expected or b""
        return {"magic": sf.MANIFEST_FORMAT, "major": int(self._manifest["major"]),
                "minor": int(self._manifest["minor"]), "num_samples": self._n,
                "file_size": int(self._bases[-1]), "entry_size": fmt.INDEX_DTYPE.itemsize,
                "meta_nbytes": len(raw), "header_crc32": fmt.checksum(raw)}  # fmt: skip

    @property
    def columns(self) -> Any:
        if self._columns is None:
            types = {c["name"]: str(c.get("type")) for c in self._manifest.get("columns", [])}
            self._columns = ShardedColumns(types, self._column_parts, self._n)
        return self._columns

    def section(self, name: str) -> memoryview | None:
        """None: a sharded pack has no sections of its own (the shards do)."""
        return None

    # -- storage -----------------------------------------------------------------------
    @property
    def storage(self) -> ShardedStorage | None:
        """Span requests in the shards' virtual address space (None when in memory)."""
        if self._options["in_memory"]:
            return None
        if self._remote:  # unopened shards: start their download instead
            options = self._source.options
            largest = max((int(e["bytes"]) for e in self._entries), default=0)
            ahead = min(options.limit_bytes // 2, 2 * largest)
            return ShardedStorage(self._bases, self._storage_or_fetch, prefetch_bytes=ahead)
        return ShardedStorage(self._bases, lambda k: self.shard(k).storage)

    def check_intact(self, sample: int | None = None) -> None:
        """:meth:`Pack.check_intact` of ``sample``'s shard, or of every opened shard."""
        if sample is None:
            for pack in list(self._opened):
                if pack is not None:
                    pack.check_intact()
            return
        pack, local, _ = self._where(sample)
        pack.check_intact(local)

    # -- per sample ----------------------------------------------------------------------
    def sample_bytes(self, i: int) -> memoryview:
        pack, local, _ = self._where(i)
        return pack.sample_bytes(local)

    def sample_shape(self, i: int) -> tuple[int, int, int]:
        pack, local, _ = self._where(i)
        return pack.sample_shape(local)

    def sample_mode(self, i: int) -> str:
        pack, local, _ = self._where(i)
        return pack.sample_mode(local)

    def sample_info(self, i: int) -> dict[str, Any]:
        pack, local, i = self._where(i)
        return {**pack.sample_info(local), "index": i, "shard": str(pack.path)}

    def label(self, i: int) -> int:
        pack, local, _ = self._where(i)
        return pack.label(local)

    def read_image(self, i: int, *, copy: bool = False) -> np.ndarray:
        pack, local, _ = self._where(i)
        return pack.read_image(local, copy=copy)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        pack, local, _ = self._where(i)
        return pack[local]

    def __iter__(self) -> Iterator[tuple[np.ndarray, int]]:
        for k in range(len(self._entries)):
            yield from self.shard(k)


class _ColumnsOnly:
    """A remote shard's metadata columns, read without its samples."""

    def __init__(self, columns: Any) -> None:
        self.columns = columns
