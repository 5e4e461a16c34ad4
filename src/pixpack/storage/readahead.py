"""Read-ahead: keep the disk busy with the samples the loader will need next.

The loader knows an epoch's whole order before it starts, so one background thread
walks that order ahead of the decode threads and asks the storage to start reading
each sample's exact bytes (``LocalFile.will_need``: an asynchronous
``POSIX_FADV_WILLNEED``). Each request returns at once, so the thread keeps many reads
in flight (a queue depth the device can use) instead of the one blocking page fault
per decode thread a memory map gives; by the time a decode thread touches a sample its
pages are in the page cache. Merged neighbours (block shuffle) become one request.

The window is bounded twice, in samples and in bytes: the bytes read ahead of the
position the loader has scheduled never exceed ``max_bytes`` (except that one step of
samples (``step``) is always allowed, so a window smaller than one sample still
makes progress). Those bytes live in the page cache, reclaimable by the kernel, not in
this process's own memory.

Advice never changes results: when a request fails, or the thread stops early, reads
simply fault the bytes in themselves. The thread holds no reference to the loader, is
a daemon, waits on a condition (no polling) and is stopped by :meth:`close`.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["ReadAhead"]

_STEP = 32  # samples whose spans are looked up and advised together
_JOIN_S = 5.0  # how long close() waits for the thread (an fadvise may sit in a full queue)

SpanLookup = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


class ReadAhead:
    """Advise the spans of ``order`` (sample indices, in consumption order) ahead of
    the consumer's position, within ``max_samples`` and ``max_bytes``.

    ``spans(indices) -> (offsets, nbytes)`` looks up the byte spans (nbytes <= 0: skip);
    ``advise(offsets, nbytes)`` starts the reads, a step of ``step`` positions at a time
    (sorted by offset, so neighbours in a step merge). The consumer calls :meth:`advance`
    with the number of positions it has scheduled for decoding.
    """

    def __init__(
        self,
        order: np.ndarray,
        spans: SpanLookup,
        advise: Callable[[np.ndarray, np.ndarray], Any],
        *,
        start: int = 0,
        step: int = _STEP,
        max_samples: int,
        max_bytes: int,
    ) -> None:
        self._order = order
        self._spans = spans
        self._advise = advise
        self.step = max(1, int(step))
        self.max_samples = max(1, int(max_samples))
        self.max_bytes = max(0, int(max_bytes))
        self._cond = threading.Condition()
        self._cursor = start  # positions the consumer has scheduled
        self._issued = start  # positions advised
        self._steps: deque[tuple[int, int]] = deque()  # (end position, bytes) per step
        self._ahead = 0  # bytes advised at positions >= the cursor (whole steps)
        self._stopped = False
        self.peak_bytes = 0  # the largest window held (for tests and doctor)
        self.requests = 0  # read requests made (after merging neighbours)
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="pixpack-readahead", daemon=True)
        self._thread.start()

    def advance(self, position: int) -> None:
        """The consumer has scheduled positions ``[0, position)`` for decoding."""
        with self._cond:
            if position <= self._cursor:
                return
            self._cursor = position
            while self._steps and self._steps[0][0] <= position:
                self._ahead -= self._steps.popleft()[1]
            self._cond.notify()

    @property
    def ahead_bytes(self) -> int:
        """Bytes advised ahead of the consumer's position now."""
        with self._cond:
            return self._ahead

    def close(self, wait: bool = True) -> None:
        """Stop the thread and wait for it (bounded; ``wait=False``: not at all, for
        garbage collection, which may run in any thread). Idempotent."""
        with self._cond:
            self._stopped = True
            self._cond.notify()
        if wait and self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(_JOIN_S)

    def _room(self, nbytes: int) -> bool:
        """Whether a step of ``nbytes`` fits the window now (called under the lock)."""
        if self._issued - self._cursor >= self.max_samples:
            return False
        return self._ahead == 0 or self._ahead + nbytes <= self.max_bytes

    def _run(self) -> None:
        n = len(self._order)
        try:
            while True:
                with self._cond:
                    start = max(self._issued, self._cursor)  # never advise what is done
                stop = min(n, start + self.step)
                if start >= n:
                    return
                offsets, nbytes = self._spans(self._order[start:stop])
                by_offset = np.argsort(offsets, kind="stable")  # neighbours become one read
                offsets, nbytes = offsets[by_offset], nbytes[by_offset]
                total = int(np.maximum(nbytes, 0).sum())
                with self._cond:
                    while not self._stopped and not self._room(total):
                        self._cond.wait()
                    if self._stopped:
                        return
                    if start < self._cursor:  # overtaken while waiting: look up again
                        self._issued = self._cursor
                        continue
                    self._issued = stop
                    self._steps.append((stop, total))
                    self._ahead += total
                    self.peak_bytes = max(self.peak_bytes, self._ahead)
                self.requests += int(self._advise(offsets, nbytes) or 0)
        except BaseException as exc:  # advice only: record it, reads fault in themselves
            self.error = exc
