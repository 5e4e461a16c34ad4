"""Which batch buffer the next batch may be written into.

A batch handed to the caller is the caller's for as long as anything references it:
the loader rewrites a buffer only when :meth:`BatchBuffer.held` says no view, tensor
or array made from it is alive. In a training loop that drops each batch after its
step, the same ``prefetch + 2`` buffers cycle and nothing is allocated; a caller that
keeps batches (a list of them, a JAX array still copying) simply gets new buffers,
never a batch that changes under it. This is what makes NumPy, TF and JAX batches
safe to hand out without a copy, and torch tensors safe without ``.clone()``.

``lend=False`` (the CUDA path: the caller only ever sees device tensors) skips the
reference check; a CUDA event guards those buffers instead (:mod:`.device`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from .buffers import BatchBuffer

__all__ = ["BufferRing"]


class BufferRing:
    """Idle buffers, reused once nothing outside holds them.

    ``make()`` builds a new buffer; at most ``keep`` idle buffers are remembered, so
    buffers the caller keeps are forgotten (freed with the caller's last reference)
    rather than accumulated here.
    """

    def __init__(self, make: Callable[[], BatchBuffer], keep: int, *, lend: bool) -> None:
        self._make = make
        self._keep = max(1, keep)
        self._lend = lend
        self._idle: deque[BatchBuffer] = deque(make() for _ in range(self._keep))

    def take(self) -> BatchBuffer:
        """A buffer nothing references: an idle one, or a new one."""
        for _ in range(len(self._idle)):
            buf = self._idle.popleft()
            if not self._lend or not buf.held():
                return buf
            self._idle.append(buf)  # still in the caller's hands: maybe free later
        if len(self._idle) >= self._keep:
            self._idle.popleft()  # the caller keeps it; it is theirs now
        return self._make()

    def give_back(self, buf: BatchBuffer) -> None:
        """``buf``'s batch was delivered and the caller asked for the next one."""
        self._idle.append(buf)

    def __iter__(self):  # the idle buffers (tests, device checks)
        return iter(list(self._idle))

    def __len__(self) -> int:
        return len(self._idle)
