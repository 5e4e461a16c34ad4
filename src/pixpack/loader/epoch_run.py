"""One epoch's batches in flight, and the next epoch's first batches started early.

Without the early start a loader's threads idle at every epoch boundary: through an
epoch's last batches (fewer chunks than threads) and until the next ``iter()`` asks
for its first batch, which under tf.data includes building a new dataset iterator
(~10 ms per epoch, measured: 14 ms of idle threads per epoch against 2.4 ms for the
NumPy loader). So once an epoch has scheduled its last batch, the loader schedules the
first batches of the epoch that the next ``iter()`` will run, within the same
``prefetch`` budget. The next ``iter()`` adopts them only if nothing that decides its
batches changed (:attr:`EpochRun.key`: epoch, start position, plan, seed), and
cancels them otherwise. Batches are pure functions of (seed, epoch, position), so a
batch made early is exactly the batch made on time.
"""

from __future__ import annotations

import weakref
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from .. import opencv_threads
from .readahead import start_read_ahead

__all__ = ["EpochRun"]

# Schedules one batch of ``indices`` (a slice of the epoch's order) for ``epoch``:
# returns the buffer it is written into and the futures writing it.
Submit = Callable[[int, np.ndarray], tuple[Any, list[Any]]]


class EpochRun:
    """The batches of one epoch from global position ``start``, scheduled in order.

    ``key``: what decides these batches; an early run is adopted only by an ``iter()``
    with the same key. The run keeps OpenCV single-threaded from its creation to
    :meth:`close` (its chunks may run before its ``iter()`` does): the loader's threads
    are the parallelism, and OpenCV's own pool would oversubscribe the cores (even for
    one loader thread its fork/join per call costs more than it saves on images this
    small: workers=1 measured ~10% faster without it)."""

    def __init__(
        self, key: tuple[Any, ...], plan: Any, pack: Any, options: Any, *, early: bool = False
    ) -> None:
        self.key = key
        self.epoch, start = key[0], key[1]
        self.order, self.slices = plan.rank_order(self.epoch, start)
        self.pending: deque[tuple[Any, list[Any]]] = deque()
        self._cursor = 0
        opencv_threads.hold()
        # Released by close(), or when the run is collected or the interpreter exits
        # (a finalizer runs while the modules it needs still exist).
        self._opencv = weakref.finalize(self, opencv_threads.release)
        self._pack, self._options = pack, options
        # An early run reads only the batches it schedules (each faults in its own
        # bytes): the read-ahead, up to read_ahead_bytes of this epoch, waits until
        # an iter() adopts the run, so a last epoch costs no speculative reads.
        self.ahead = None
        self._adopted = False
        if not early:
            self.adopt()

    def adopt(self) -> None:
        """This run's ``iter()`` started: read ahead of what it scheduled so far."""
        if self._adopted:
            return
        self._adopted = True
        self.ahead = start_read_ahead(
            self._pack, self.order, self.slices[self._cursor :], self._options
        )
        if self.ahead is not None:
            # A run dropped with its loader, never closed: its read-ahead thread would
            # wait for a consumer forever.
            weakref.finalize(self, _stop, self.ahead)

    @property
    def all_scheduled(self) -> bool:
        return self._cursor >= len(self.slices)

    def schedule(self, room: int, submit: Submit) -> None:
        """Schedule up to ``room`` more batches, in order."""
        while room > 0 and self._cursor < len(self.slices):
            start, stop = self.slices[self._cursor]
            if self.ahead is not None:
                self.ahead.advance(stop)
            self.pending.append(submit(self.epoch, self.order[start:stop]))
            self._cursor += 1  # only once scheduled: a failed submit leaves the batch to come
            room -= 1

    def close(self, pool: Any, give_back: Callable[[Any], None] | None = None) -> None:
        """Cancel the batches not started, wait for the running ones (they write into
        their buffers), and hand the buffers to ``give_back`` (an early run that was
        not adopted: its buffers were never lent). Idempotent."""
        pending, self.pending = self.pending, deque()
        for buf, futures in pending:
            pool.cancel(futures)
            if give_back is not None:
                give_back(buf)
        if self.ahead is not None:
            self.ahead.close()
            self.ahead = None
        self._opencv()  # once: a finalizer runs at most once


def _stop(ahead: Any) -> None:
    ahead.close(wait=False)
