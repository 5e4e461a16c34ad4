"""A local pack file: one read-only memory map, advised for how it will be read.

Why advice matters: a fault on a memory map that misses the page cache makes the kernel
read *around* the faulting page (``read_ahead_kb``, often 128 kB to 8 MB). For a pack
read in shuffled order that turns every 150 kB sample into megabytes of disk traffic
(37x measured with 8 MB read-around), and a thread blocked in a page fault keeps a
single small read in flight. So the data region of a randomly read map is marked
``MADV_RANDOM`` (a fault reads only its own page), and whoever knows which sample comes
next asks the kernel for exactly its bytes with ``POSIX_FADV_WILLNEED``: an
asynchronous read of that span into the page cache, after which touching it through
the map costs no I/O. Samples stay zero-copy views of the map, so a pack that already
sits in the page cache pays nothing for any of this.

Sequential scans (``access="sequential"``) get ``MADV_SEQUENTIAL`` instead: large,
aggressive read-ahead, which is what ``export`` and other front-to-back passes want.
"""

from __future__ import annotations

import mmap
import os
from typing import Any, Literal

import numpy as np

from ..errors import TruncatedPackError

try:
    from .._native._readahead import will_need as _native_will_need
except ImportError:  # no C compiler at install time: the same requests from Python
    _native_will_need = None

__all__ = ["Access", "LocalFile", "PAGE_SIZE"]

Access = Literal["random", "sequential"]

PAGE_SIZE = mmap.PAGESIZE
_WILLNEED = getattr(os, "POSIX_FADV_WILLNEED", None)
# The kernel reads at most max(read_ahead_kb, the device's optimal I/O size) of one
# WILLNEED request (mm/readahead.c force_page_cache_ra) and silently drops the rest;
# pieces of this size fit every device's I/O size seen in practice.
_ADVICE_PIECE = 512 << 10
_DETACHED = -2  # fd of a detached file: no descriptor, the map still valid
_MADVICE = {
    "random": getattr(mmap, "MADV_RANDOM", None),
    "sequential": getattr(mmap, "MADV_SEQUENTIAL", None),
}


class LocalFile:
    """An open pack file: its descriptor and a read-only map of the whole file.

    ``data_start``/``data_stop`` bound the region of sample bytes, which gets the
    ``access`` advice. The index and metadata after it are read sequentially from the
    faulting page on (``MADV_SEQUENTIAL``): an epoch reads the whole index anyway, and
    the default read-*around* would also read the samples just before the index.
    """

    def __init__(self, f: Any, access: Access, data_start: int, data_stop: int) -> None:
        self.fd = os.dup(f.fileno())  # our own descriptor: the caller's file may close
        self.size = os.fstat(self.fd).st_size
        self.map = mmap.mmap(self.fd, 0, access=mmap.ACCESS_READ)
        self.access = access
        self._advise_map(_MADVICE.get(access), data_start, data_stop)
        self._advise_map(_MADVICE["sequential"], data_stop, self.size)

    def _advise_map(self, advice: int | None, start: int, stop: int) -> None:
        first = start - start % PAGE_SIZE
        if advice is None or stop <= first:
            return
        try:
            self.map.madvise(advice, first, stop - first)
        except (OSError, ValueError):  # advice only: a kernel without it reads as before
            pass

    def will_need(self, offset: int, nbytes: int) -> None:
        """Start reading ``[offset, offset + nbytes)`` into the page cache; returns at
        once (the read completes in the background; a later touch waits for it)."""
        if _WILLNEED is None:
            return
        stop = offset + nbytes
        try:
            while offset < stop:
                piece = min(stop - offset, _ADVICE_PIECE)
                os.posix_fadvise(self.fd, offset, piece, _WILLNEED)
                offset += piece
        except OSError:  # advice only (a closed or odd descriptor): reads still work
            pass

    def will_need_many(self, offsets: np.ndarray, nbytes: np.ndarray) -> int:
        """:meth:`will_need` for each span, merging spans that touch; returns the
        requests made. Natively, the whole call is one GIL release."""
        if _native_will_need is not None and _WILLNEED is not None and self.fd >= 0:
            offsets = np.ascontiguousarray(offsets, np.int64)
            nbytes = np.ascontiguousarray(nbytes, np.int64)
            return int(_native_will_need(self.fd, offsets, nbytes, _ADVICE_PIECE))
        calls = 0
        for start, length in _merge_spans(offsets, nbytes):
            self.will_need(start, length)
            calls += -(-length // _ADVICE_PIECE)  # one request per piece, as natively
        return calls

    def check_intact(self, path: Any, sample: int | None = None) -> None:
        """Raise :class:`TruncatedPackError` (naming ``sample``) if the file is shorter
        than when it was opened: touching the map past its end would be SIGBUS."""
        size = self.current_size()
        if size < self.size:
            which = f"sample {sample} cannot be read: " if sample is not None else ""
            raise TruncatedPackError(
                f"{path}: {which}the file was truncated to {size} bytes after it was "
                f"opened (its header records {self.size}); copy it again or re-pack it",
                path,
            )

    def current_size(self) -> int:
        """The file's size now (it shrinks if someone truncates it after opening)."""
        if self.fd == _DETACHED:
            return self.size
        try:
            return os.fstat(self.fd).st_size
        except OSError:
            return 0

    def detach(self) -> None:
        """Close the descriptor but keep the map for whoever still uses it: it is
        unmapped when the last reference to it goes. For files that are never modified,
        only replaced or removed (cached shards), so there is no size left to watch."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = _DETACHED

    def close(self) -> None:
        try:
            self.map.close()
        except BufferError:
            pass  # arrays handed out still use it; it unmaps when they are freed
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _merge_spans(offsets: np.ndarray, nbytes: np.ndarray) -> list[tuple[int, int]]:
    """``(start, length)`` runs covering the spans, in the given order, merging a span
    into the previous run when it starts where that run ends (neighbours in a block
    shuffle, or consecutive samples): one request instead of many small ones."""
    runs: list[tuple[int, int]] = []
    start = stop = -1
    for off, nb in zip(offsets.tolist(), nbytes.tolist(), strict=True):
        if nb <= 0 or off < 0:
            continue
        if off == stop:
            stop += nb
            continue
        if stop > start:
            runs.append((start, stop - start))
        start, stop = off, off + nb
    if stop > start:
        runs.append((start, stop - start))
    return runs
