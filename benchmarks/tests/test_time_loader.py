"""The timing loop every family shares (loaders/common.py): windows of a fixed number of
images over one long-lived loader, across epoch boundaries, after a warm-up epoch.

Run: python -m pytest benchmarks/tests -q
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.append(str(Path(__file__).resolve().parents[1]))

from loaders.common import machine_busy_s, time_loader, tree_cpu_s

SIZES = [4, 4, 4, 4, 2]  # one epoch: 18 images, a short last batch


class FakeLoader:
    """Epochs of SIZES batches; records which epochs were started and which were closed."""

    def __init__(self) -> None:
        self.started = 0
        self.closed: list[int] = []
        self.delivered = 0

    def __iter__(self):
        epoch = self.started
        self.started += 1
        try:
            for n in SIZES:
                self.delivered += n
                yield (np.zeros((n, 3, 2, 2), np.float32), None)
        except GeneratorExit:
            self.closed.append(epoch)
            raise


def test_a_window_is_two_epochs_by_default_and_no_batch_goes_untimed() -> None:
    loader = FakeLoader()
    out = time_loader(lambda: loader, passes=3)
    assert len(out["rates"]) == 3
    assert out["images_per_pass"] == 36  # twice the warm-up epoch's images
    assert loader.started == 1 + 6  # the warm-up epoch, then 3 windows of 2 epochs
    assert loader.delivered == 18 + 3 * 36
    assert out["window_images"] == [36, 36, 36]
    # the last epoch delivered every batch; the stream closes it before its end-of-epoch
    assert loader.closed in ([], [6])
    assert len(out["cores"]) == len(out["cpu_us_per_image"]) == 3


def test_windows_cross_epoch_boundaries_of_one_loader() -> None:
    loader = FakeLoader()
    out = time_loader(lambda: loader, passes=4, pass_images=10)
    # each window ends at the batch that brings it to >= 10 images, wherever the epoch is
    assert out["window_images"] == [12, 10, 12, 10]  # 4+4+4 | 4+2+4 | 4+4+4 | 2+4+4
    assert loader.delivered == 18 + 44
    assert loader.started == 1 + 3  # 44 images span epochs 1-3; the last one left part-way
    assert loader.closed == [3]  # ... and closed, not left running


def test_max_batches_passes_stay_per_epoch() -> None:
    loader = FakeLoader()
    out = time_loader(lambda: loader, passes=2, max_batches=2)
    assert out["images_per_pass"] == 8
    assert loader.started == 3


def test_tree_cpu_counts_this_process() -> None:
    c0 = tree_cpu_s()
    end = time.process_time() + 0.2
    while time.process_time() < end:
        pass
    assert tree_cpu_s() - c0 >= 0.1


def test_other_cores_is_per_window_and_never_negative() -> None:
    out = time_loader(lambda: FakeLoader(), passes=3)
    assert len(out["other_cores"]) == 3
    assert all(c >= 0.0 for c in out["other_cores"])


def test_machine_busy_counts_this_process() -> None:
    t0 = machine_busy_s()
    end = time.process_time() + 0.2
    while time.process_time() < end:
        pass
    assert machine_busy_s() - t0 >= 0.1  # our own 0.2 s of CPU is part of the machine's
