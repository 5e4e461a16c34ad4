"""Where a sharded pack's samples lie: spans in the shards' virtual address space
(read-ahead), one gathered buffer (``sample_spans``), or each shard's own map
(``sample_span_buffers``, the loader's native path). A mixin of
:class:`~.sharded.ShardedPack`, which provides ``index``, ``shard``, ``locate`` and the
per-shard tables (``_starts``, ``_bases``, ``_bounds``, ``_opened``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .. import format as fmt

__all__ = ["ShardedSpans"]


class ShardedSpans:
    """Span lookups of :class:`~.sharded.ShardedPack` (see the module docstring)."""

    _starts: np.ndarray
    _bases: np.ndarray
    _bounds: dict[int, tuple[int, int]]
    _opened: list[Any]
    _options: dict[str, Any]
    index: Any
    storage: Any
    shard: Callable[[int], Any]  # the methods ShardedPack provides
    locate: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]

    def spans(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Virtual offsets (shard offset + the sizes of the shards before it) and lengths
        of ``indices``; -1 lengths as :meth:`Pack.spans`. Opens no shard (read-ahead
        asks for spans of shards it is about to fetch)."""
        offsets, nbytes, shard, present, which = self._rows(indices)
        lo, hi = np.empty(len(present), np.int64), np.empty(len(present), np.int64)
        for b, k in enumerate(present.tolist()):
            pack = self._opened[k]
            if pack is not None:
                pack.check_intact()
            lo[b], hi[b] = self._bounds[k]
        _outside_to_minus_one(offsets, nbytes, lo[which], hi[which])
        return offsets + self._bases[shard], nbytes

    def will_need(self, indices: np.ndarray) -> int:
        offsets, nbytes = self.spans(indices)
        storage = self.storage
        return 0 if storage is None else storage.will_need_many(offsets, nbytes)

    def sample_spans(self, indices: np.ndarray) -> tuple[Any, np.ndarray, np.ndarray]:
        """As :meth:`Pack.sample_spans`: one buffer and the samples' offsets and lengths
        in it. A chunk within one shard gets that shard's map; otherwise the raw and
        lossless samples are copied into a new buffer, and JPEG samples get length -1
        (read them with :meth:`sample_bytes`, as the loader does)."""
        shard, local = self.locate(indices)
        first = int(shard[0]) if len(shard) else 0
        if len(shard) == 0 or (shard == first).all():
            return self.shard(first).sample_spans(local)
        offsets = np.zeros(len(shard), np.int64)
        nbytes = np.full(len(shard), -1, np.int64)
        pieces: list[tuple[Any, np.ndarray, np.ndarray, np.ndarray]] = []
        total = 0
        for k in np.unique(shard).tolist():
            where = np.flatnonzero(shard == k)
            pack = self.shard(k)
            buf, off, nb = pack.sample_spans(local[where])
            keep = (nb >= 0) & (pack.index["mode"][local[where]] != fmt.MODE_JPEG)
            where, off, nb = where[keep], off[keep], nb[keep]
            starts = total + np.concatenate(([0], np.cumsum(nb)[:-1])) if len(nb) else nb
            offsets[where], nbytes[where] = starts, nb
            total += int(nb.sum())
            pieces.append((buf, where, off, nb))
        out = np.empty(total, np.uint8)
        for buf, where, off, nb in pieces:
            src = np.frombuffer(buf, np.uint8)
            for dst_at, at, count in zip(offsets[where].tolist(), off.tolist(), nb.tolist(),
                                         strict=True):  # fmt: skip
                out[dst_at : dst_at + count] = src[at : at + count]
        return memoryview(out), offsets, nbytes

    def sample_span_buffers(self, indices: np.ndarray) -> tuple[list[Any], np.ndarray, Any, Any]:
        """``(buffers, which, offsets, nbytes)``: sample ``j`` lies at ``offsets[j]`` in
        ``buffers[which[j]]`` (its shard's map, zero-copy): the loader's native path
        reads a chunk spread over shards without gathering it. Lengths are -1 as in
        :meth:`Pack.sample_spans` (outside the data region, or checksums checked)."""
        (buffers, _), which, offsets, nbytes = self._located(indices)
        if self._options["check_checksums"]:
            nbytes[:] = -1
        return buffers, which, offsets, nbytes

    def _located(self, indices: np.ndarray) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray]:
        """``((maps, shard ids), which, offsets within the shard, lengths)`` of
        ``indices``, from the joined index in one go; each shard involved is checked
        intact (touching a truncated map would be SIGBUS)."""
        offsets, nbytes, _, present, which = self._rows(indices)
        buffers, lo, hi = [], np.empty(len(present), np.int64), np.empty(len(present), np.int64)
        for b, k in enumerate(present.tolist()):
            pack = self.shard(k)
            pack.check_intact()
            buffer, lo[b], hi[b] = pack._shard_region  # type: ignore[attr-defined]
            buffers.append(buffer)
        _outside_to_minus_one(offsets, nbytes, lo[which], hi[which])
        return (buffers, present), which, offsets, nbytes

    def _rows(self, indices: np.ndarray) -> tuple[np.ndarray, ...]:
        """``(offsets within the shard, lengths, shard, shards present, position of each
        sample's shard among them)`` of ``indices``, from the joined index in one go."""
        indices = np.asarray(indices, np.int64)
        rows = self.index[indices]
        offsets = rows["offset"].astype(np.int64)
        nbytes = rows["nbytes"].astype(np.int64)
        shard = np.searchsorted(self._starts, indices, side="right") - 1
        present, which = np.unique(shard, return_inverse=True)
        return offsets, nbytes, shard, present, which


def _outside_to_minus_one(
    offsets: np.ndarray, nbytes: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> None:
    """Length -1 for a span outside its shard's data region ``[lo, hi)`` (as Pack.spans)."""
    nbytes[~((offsets >= lo) & (offsets + nbytes <= hi))] = -1
