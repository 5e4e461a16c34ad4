"""The packer keeps a bounded window of work in flight, whatever the dataset size."""

from __future__ import annotations

import multiprocessing
import time

import numpy as np

from pixpack.write.packer import _Job, _results


class _Counting:
    """A large synthetic source that counts (across processes) how many items were loaded."""

    def __init__(self, n: int) -> None:
        self.classes: list[str] = []
        self.n = n
        self.loaded = multiprocessing.get_context("fork").Value("i", 0)

    def __len__(self) -> int:
        return self.n

    def load(self, i: int):
        with self.loaded.get_lock():
            self.loaded.value += 1
        return np.full((8, 8, 3), i % 256, np.uint8), 0

    def describe(self):
        return {"type": "counting", "num_items": self.n}

    def fingerprint(self):
        return None

    def path_of(self, i: int) -> str:
        return f"item {i}"


def _loaded_while_consumer_stalls(n: int) -> int:
    src = _Counting(n)
    chunks = _results(src, _Job("raw", 90, None, None), 0, n, workers=2)
    try:
        first = next(chunks)
        assert [r.source_index for r in first] == list(range(len(first)))
        time.sleep(0.5)  # the consumer (the writer) stalls: workers must not run ahead
        return src.loaded.value
    finally:
        chunks.close()


def test_in_flight_work_is_bounded_and_independent_of_size():
    small = _loaded_while_consumer_stalls(2_000)
    large = _loaded_while_consumer_stalls(20_000)
    window = 2 * 3 + 2  # workers x chunks per worker, plus the chunk resubmitted and slack
    assert 0 < small <= window * 16
    assert 0 < large <= window * 16
