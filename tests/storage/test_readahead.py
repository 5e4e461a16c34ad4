"""ReadAhead, driven directly: fake spans, a recording ``advise``, a consumer we control.

The window bounds are checked at every ``advise`` call against the consumer's cursor
as the test knows it. The test moves its own cursor *before* calling ``advance``, so
its cursor is never behind the thread's: the checks can only be looser than the
thread's own state, never fail spuriously.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from pixpack.storage import ReadAhead

pytestmark = pytest.mark.timeout(60)

WAIT_S = 10.0


class Disk:
    """Sample ``i`` is ``size(i)`` bytes at offset ``i * STRIDE``; records every advice
    as the positions (in ``order``) it covers, and checks the window bounds then."""

    STRIDE = 1 << 20

    def __init__(self, order, sizes, *, max_samples=None, max_bytes=None, step=None):
        self.order = np.asarray(order, np.int64)
        self.position = np.empty(len(self.order), np.int64)
        self.position[self.order] = np.arange(len(self.order))
        self.sizes = np.asarray(sizes, np.int64)
        self.max_samples, self.max_bytes, self.step = max_samples, max_bytes, step
        self.cursor = 0  # the consumer's position, moved before ReadAhead.advance
        self.calls: list[np.ndarray] = []  # positions of each advise call
        self.count = 0  # positions advised
        self.held = np.zeros(len(self.order), np.int64)  # bytes advised, by position
        self.violations: list[str] = []
        self.cond = threading.Condition()
        self.lookups = 0

    def spans(self, indices):
        with self.cond:
            self.lookups += 1
            self.cond.notify_all()
        indices = np.asarray(indices, np.int64)
        return indices * self.STRIDE, self.sizes[indices].copy()

    def advise(self, offsets, nbytes):
        assert offsets.dtype == np.int64 and nbytes.dtype == np.int64
        assert np.all(np.diff(offsets) >= 0), "a step is advised sorted by offset"
        positions = np.sort(self.position[offsets // self.STRIDE])
        with self.cond:
            self.calls.append(positions)
            self.count += len(positions)
            self.held[positions] = np.maximum(self.sizes[self.order[positions]], 0)
            self._check(positions)
            self.cond.notify_all()
        return len(offsets)

    def _check(self, positions):
        cursor = self.cursor
        issued = max(int(c[-1]) for c in self.calls if len(c)) + 1
        if self.max_samples is not None and issued - cursor > self.max_samples + self.step:
            self.violations.append(f"{issued - cursor} positions ahead of {cursor}")
        if self.max_bytes is not None:
            held = int(self.held[cursor:].sum())
            one_step = int(self.held[positions].sum())
            if held > max(self.max_bytes, one_step):
                self.violations.append(f"{held} bytes ahead of {cursor}")

    def advised(self) -> np.ndarray:
        with self.cond:
            return np.concatenate(self.calls) if self.calls else np.zeros(0, np.int64)

    def wait_for(self, predicate, what: str) -> None:
        with self.cond:
            assert self.cond.wait_for(predicate, WAIT_S), f"timed out waiting for {what}"


def slow_consumer(disk: Disk, ahead: ReadAhead, stride: int) -> None:
    """Advance up to ``stride`` positions at a time, but never past what the thread has
    advised (it waits for the thread to get ahead first): it never overtakes."""
    n = len(disk.order)
    pos = 0
    while pos < n:
        disk.wait_for(lambda pos=pos: disk.count > pos, f"advice past {pos}")
        with disk.cond:
            pos = disk.cursor = min(pos + stride, disk.count)
        ahead.advance(pos)


def varied_sizes(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(1_000, 200_000, n)


@pytest.mark.parametrize(
    "step, max_samples, max_bytes, stride",
    [
        (32, 256, 64 << 20, 64),  # the samples bound binds
        (7, 1000, 600_000, 5),  # the bytes bound binds
        (16, 50, 1, 16),  # a window smaller than one step: one step at a time
        (1, 1, 0, 1),
        (64, 10, 1 << 30, 3),  # a step larger than max_samples
    ],
)
def test_slow_consumer_gets_every_position_once_in_order(step, max_samples, max_bytes, stride):
    n = 3000
    order = np.random.default_rng(step).permutation(n)
    disk = Disk(order, varied_sizes(n), max_samples=max_samples, max_bytes=max_bytes, step=step)
    ahead = ReadAhead(
        order, disk.spans, disk.advise, step=step, max_samples=max_samples, max_bytes=max_bytes
    )
    try:
        slow_consumer(disk, ahead, stride)
        ahead_bytes = ahead.ahead_bytes
    finally:
        ahead.close()
    assert ahead.error is None
    advised = disk.advised()
    assert advised.tolist() == list(range(n))  # every position once, in order
    assert all(len(c) <= step for c in disk.calls)
    assert disk.violations == []
    biggest_step = max(int(disk.sizes[order[c]].sum()) for c in disk.calls)
    assert 0 < ahead.peak_bytes <= max(max_bytes, biggest_step)
    assert ahead.requests == n  # what advise returned, summed
    assert ahead_bytes == 0  # the consumer reached the end: nothing is ahead


def test_window_fills_and_holds_while_the_consumer_waits():
    n, step, max_samples = 1000, 10, 95
    order = np.arange(n)
    disk = Disk(order, np.full(n, 100), max_samples=max_samples, step=step)
    ahead = ReadAhead(order, disk.spans, disk.advise, step=step, max_samples=max_samples,
                      max_bytes=1 << 40)  # fmt: skip
    try:
        disk.wait_for(lambda: len(disk.calls) == 10, "the window to fill")
        time.sleep(0.1)  # it stays full: nothing more is advised
        assert len(disk.advised()) == 100 and ahead.ahead_bytes == 100 * 100
        with disk.cond:
            disk.cursor = 20
        ahead.advance(20)
        disk.wait_for(lambda: len(disk.calls) == 12, "two more steps")
        time.sleep(0.1)
        assert len(disk.advised()) == 120 and ahead.ahead_bytes == 100 * 100
        ahead.advance(10)  # going back is ignored
        assert ahead.ahead_bytes == 100 * 100
    finally:
        ahead.close()
    assert disk.violations == [] and ahead.peak_bytes == 100 * 100


def test_start_skips_positions_before_it():
    n = 200
    order = np.random.default_rng(3).permutation(n)
    disk = Disk(order, np.full(n, 10))
    ahead = ReadAhead(order, disk.spans, disk.advise, start=77, step=8, max_samples=1000,
                      max_bytes=1 << 30)  # fmt: skip
    disk.wait_for(lambda: disk.count == n - 77, "the rest of the order")
    ahead.close()
    assert disk.advised().tolist() == list(range(77, n))


def test_nonpositive_lengths_count_as_nothing():
    n = 64
    sizes = np.where(np.arange(n) % 2 == 0, -1, 0)  # entries outside the data region, empty
    sizes[5] = 1000
    order = np.arange(n)
    disk = Disk(order, sizes)
    ahead = ReadAhead(order, disk.spans, disk.advise, step=4, max_samples=8, max_bytes=1)
    try:
        slow_consumer(disk, ahead, 4)
    finally:
        ahead.close()
    assert ahead.error is None and ahead.peak_bytes == 1000


def overtaken(jump_to):
    """The thread advises [0, 10), looks up [10, 20) and waits (the window is one
    step); the consumer then jumps to ``jump_to``. Returns the positions advised next."""
    n = 100
    order = np.arange(n)
    disk = Disk(order, np.full(n, 10))
    ahead = ReadAhead(order, disk.spans, disk.advise, step=10, max_samples=10, max_bytes=1 << 30)
    try:
        disk.wait_for(lambda: disk.lookups == 2 and len(disk.calls) == 1, "the second lookup")
        with disk.cond:
            disk.cursor = jump_to
        ahead.advance(jump_to)
        disk.wait_for(lambda: len(disk.calls) >= 2, "the next advice")
    finally:
        ahead.close()
    assert disk.calls[0].tolist() == list(range(10))
    return disk.calls[1].tolist()


def test_overtaken_step_is_looked_up_again():
    assert overtaken(25) == list(range(25, 35))


def test_partly_overtaken_step_advises_nothing_behind_the_cursor():
    assert min(overtaken(15)) >= 15


def test_fast_consumer_never_gets_advice_behind_it():
    """A consumer racing ahead of the thread: advice only moves forward, never repeats a
    position, and stays within the window."""
    n = 20000
    order = np.random.default_rng(5).permutation(n)
    disk = Disk(order, np.full(n, 100), max_samples=64, max_bytes=6400, step=16)
    ahead = ReadAhead(order, disk.spans, disk.advise, step=16, max_samples=64, max_bytes=6400)
    try:
        for pos in range(100, n + 1, 100):
            with disk.cond:
                disk.cursor = pos
            ahead.advance(pos)
            time.sleep(0)
    finally:
        ahead.close()
    advised = disk.advised()
    assert len(np.unique(advised)) == len(advised)  # nothing twice
    assert np.all(np.diff(advised) > 0)  # only forward
    assert disk.violations == []


def test_close_returns_quickly_while_waiting():
    n = 1000
    order = np.arange(n)
    disk = Disk(order, np.full(n, 10))
    ahead = ReadAhead(order, disk.spans, disk.advise, step=10, max_samples=10, max_bytes=1 << 30)
    disk.wait_for(lambda: disk.lookups == 2, "the thread to wait for room")
    t = time.monotonic()
    ahead.close()
    assert time.monotonic() - t < 1.0
    assert not [t for t in threading.enumerate() if t is ahead._thread and t.is_alive()]
    ahead.close()  # idempotent
    ahead.advance(500)  # after close: no effect, no hang
    assert len(disk.advised()) == 10


@pytest.mark.parametrize("failing", ["advise", "spans"])
def test_an_error_is_recorded_and_stops_the_thread(failing):
    n = 500
    order = np.arange(n)
    disk = Disk(order, np.full(n, 10))
    calls = {"advise": 0, "spans": 0}

    def spans(indices):
        calls["spans"] += 1
        if failing == "spans" and calls["spans"] == 3:
            raise OSError("lookup failed")
        return disk.spans(indices)

    def advise(offsets, nbytes):
        calls["advise"] += 1
        if failing == "advise" and calls["advise"] == 3:
            raise OSError("advice failed")
        return disk.advise(offsets, nbytes)

    ahead = ReadAhead(order, spans, advise, step=10, max_samples=1000, max_bytes=1 << 30)
    deadline = time.monotonic() + WAIT_S
    while ahead.error is None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert isinstance(ahead.error, OSError) and "failed" in str(ahead.error)
    ahead._thread.join(WAIT_S)
    assert not ahead._thread.is_alive()
    t = time.monotonic()
    for pos in range(10, n + 1, 10):  # the consumer goes on; nothing blocks it
        ahead.advance(pos)
    ahead.close()
    assert time.monotonic() - t < 1.0
    assert calls[failing] == 3 and len(disk.advised()) == 20
