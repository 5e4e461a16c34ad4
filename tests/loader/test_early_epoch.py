"""The next epoch's first batches, started before the current one ends (loader/epoch_run.py).

An early batch must be exactly the batch made on time, belong to its own epoch (its
skipped samples, its errors), follow every change that decides the next epoch
(set_epoch, a loaded state), and leave nothing running after close, rest or garbage
collection.
"""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap
import threading

import cv2
import numpy as np
import pytest

from pixpack import opencv_threads
from pixpack.loader import Loader
from pixpack.ops import RandomHorizontalFlip, RandomResizedCrop

from .helpers import photo_images, write_pack

pytestmark = pytest.mark.timeout(60)


def _loader(pack, **kw):
    kw = {"seed": 3, "output": "numpy", "workers": 2, **kw}
    return Loader(pack, 8, pipeline=[RandomResizedCrop(24), RandomHorizontalFlip()], **kw)


def _epoch(it):
    return [(x.copy(), y.copy()) for x, y in it]


def _on_time(pack, epoch, seed=3):
    """Epoch ``epoch`` of a fresh loader: no batch of it was made early."""
    loader = _loader(pack, seed=seed)
    loader.set_epoch(epoch)
    try:
        return _epoch(loader)
    finally:
        loader.close()


def _same(a, b):
    assert len(a) == len(b)
    for (xa, ya), (xb, yb) in zip(a, b, strict=True):
        assert np.array_equal(ya, yb) and np.array_equal(xa, xb)


def test_the_next_epoch_starts_early_with_the_same_batches(jpeg_pack):
    loader = _loader(jpeg_pack)
    first = _epoch(loader)
    early = loader._next
    assert early is not None and early.epoch == 1
    assert len(early.pending) == loader.options.prefetch  # already decoding
    second = _epoch(loader)
    _same(first, _on_time(jpeg_pack, 0))
    _same(second, _on_time(jpeg_pack, 1))
    assert loader._next is not None and loader._next.epoch == 2
    loader.close()


def test_set_epoch_between_epochs_drops_the_early_batches(jpeg_pack):
    loader = _loader(jpeg_pack)
    _epoch(loader)
    loader.set_epoch(5)
    _same(_epoch(loader), _on_time(jpeg_pack, 5))
    loader.close()


def test_set_epoch_during_the_last_batches_restarts_the_early_run(jpeg_pack):
    loader = _loader(jpeg_pack)
    it = iter(loader)
    for _ in range(len(loader) - 1):  # the last batch is scheduled: epoch 1 started
        next(it)
    assert loader._next is not None and loader._next.epoch == 1
    loader.set_epoch(4)
    _epoch(it)
    assert loader._next.epoch == 4
    _same(_epoch(loader), _on_time(jpeg_pack, 4))
    loader.close()


def test_a_state_loaded_between_epochs_resumes_exactly(jpeg_pack):
    saved = _loader(jpeg_pack)
    it = iter(saved)
    for _ in range(3):
        next(it)
    state = saved.state_dict()
    rest = _epoch(it)
    loader = _loader(jpeg_pack)
    _epoch(loader)  # epoch 1's first batches are under way
    loader.load_state_dict(state)
    _same(_epoch(loader), rest)
    saved.close()
    loader.close()


def test_a_broken_off_epoch_keeps_the_next_epochs_batches_right(jpeg_pack):
    loader = _loader(jpeg_pack)
    _epoch(loader)
    it = iter(loader)
    next(it)
    del it  # epoch 1 left early: the next iter() runs epoch 2
    _same(_epoch(loader), _on_time(jpeg_pack, 2))
    loader.close()


def test_a_state_with_another_seed_drops_the_early_batches(jpeg_pack):
    """A loader built with seed=None continues a saved run's seed: the early batches,
    made with the drawn seed, must not be used (the run's key holds the seed)."""
    saved = _loader(jpeg_pack, seed=5)
    _epoch(saved)
    state = saved.state_dict()  # epoch 1 from its start, seed 5
    loader = _loader(jpeg_pack, seed=None)
    _epoch(loader)
    assert loader._next is not None and loader._next.epoch == 1
    loader.load_state_dict(state)
    _same(_epoch(loader), _epoch(saved))
    saved.close()
    loader.close()


def test_in_flight_batches_stay_within_prefetch(jpeg_pack, monkeypatch):
    """This epoch's batches and the next one's share the ``prefetch`` budget."""
    seen = []
    real = Loader._schedule

    def checked(self, run):
        real(self, run)
        early = self._next.pending if self._next is not None else ()
        seen.append(len(run.pending) + len(early))

    monkeypatch.setattr(Loader, "_schedule", checked)
    for prefetch in (1, 2, 3):
        seen.clear()
        loader = _loader(jpeg_pack, prefetch=prefetch)
        for _ in range(2):
            _epoch(loader)
        assert max(seen) == prefetch, (prefetch, seen)
        loader.close()


def test_dropped_early_batches_give_their_buffers_back(jpeg_pack):
    """Early batches dropped by set_epoch return their buffers: epochs keep cycling
    through ``prefetch + 2`` buffers instead of allocating new ones."""
    loader = _loader(jpeg_pack, prefetch=2)
    _epoch(loader)
    ring = loader._ring
    made, make = [], ring._make
    ring._make = lambda: made.append(1) or make()
    for epoch in (3, 1, 4, 1, 5):
        assert loader._next is not None
        loader.set_epoch(epoch)  # the early run (the next epoch in order) is dropped
        for _ in loader:
            pass
    assert loader._ring is ring and not made
    loader.close()


def test_a_failure_starting_the_next_epoch_belongs_to_that_epoch(jpeg_pack):
    """The check that the pack is whole fails for the next epoch's first batch while
    it is started early: the current epoch still yields every batch, and the error
    comes from the next epoch; once the check passes again, nothing is missing."""
    from pixpack.errors import LoaderError, TruncatedPackError
    from pixpack.read.open_any import open_pack

    pack = open_pack(jpeg_pack.path)

    def first_of_epoch_1(seed):
        """Epoch 1's first sample, when no batch of epoch 0 starts with it (the check
        looks at a batch's first sample): then only the early batch meets it."""
        plan = _loader(pack, seed=seed)._plan
        (order0, slices0), (order1, _) = plan.rank_order(0), plan.rank_order(1)
        first = int(order1[0])
        return None if first in {int(order0[a]) for a, _ in slices0} else first

    seed, first = next((s, f) for s in range(50) if (f := first_of_epoch_1(s)) is not None)
    broken = [True]
    real = pack.check_intact

    def check(sample=None):  # the batch-level check (the loader's thread), not the reads'
        if broken[0] and sample == first and threading.current_thread() is threading.main_thread():
            raise TruncatedPackError(f"sample {sample}: shard truncated (simulated)", pack.path)
        return real(sample)

    pack.check_intact = check
    loader = _loader(pack, seed=seed)
    _same(_epoch(loader), _on_time(jpeg_pack, 0, seed))  # every batch, no error
    with pytest.raises(LoaderError, match=f"sample {first}"):
        next(iter(loader))  # epoch 1, its own first batch
    broken[0] = False
    loader.set_epoch(1)
    _same(_epoch(loader), _on_time(jpeg_pack, 1, seed))
    loader.close()


@pytest.mark.filterwarnings("ignore:.*skipped 1 sample")
def test_skipped_samples_are_reported_in_their_own_epoch(photos, tmp_path):
    bad = 13  # in the second batch of every epoch: one that starts early
    pack = write_pack(tmp_path / "bad.pixpack", photo_images(photos, 40), jpeg=True, garbage=bad)
    loader = _loader(pack, shuffle=False, on_error="skip")
    for epoch in range(3):
        labels = np.concatenate([y for _, y in _epoch(loader)])
        assert [i for i, _ in loader.skipped] == [bad], epoch
        assert labels.tolist() == [i for i in range(40) if i != bad]
    loader.close()


def _loader_threads():
    return [
        t for t in threading.enumerate() if t.name.startswith("pixpack-loader") and t.is_alive()
    ]


@pytest.mark.parametrize("end", ["close", "rest", "garbage"])
def test_nothing_is_left_running(jpeg_pack, end):
    gc.collect()  # loaders other tests left to the collector
    users = opencv_threads._users
    cv2.setNumThreads(3)
    try:
        loader = _loader(jpeg_pack)
        _epoch(loader)
        # The early batches keep OpenCV on one thread: their chunks run OpenCV calls.
        assert loader._next is not None and opencv_threads._users == users + 1
        if end == "close":
            loader.close()
            assert loader._next is None
        elif end == "rest":
            loader._rest()
            assert loader._next is None
        else:
            del loader
            gc.collect()
        assert opencv_threads._users == users
        if users == 0:
            assert cv2.getNumThreads() == 3  # restored
        for t in _loader_threads():
            t.join(5)
        assert not _loader_threads()
        if end == "rest":  # and the loader goes on where it was
            _same(_epoch(loader), _on_time(jpeg_pack, 1))
            loader.close()
    finally:
        cv2.setNumThreads(0)


def test_exit_with_early_batches_in_flight_is_quiet(jpeg_pack):
    """A script that ends without closing its loader (the usual case) exits cleanly:
    the early run gives OpenCV back while the interpreter still has its modules. With
    TensorFlow loaded, the modules went first and the exit printed "Exception ignored"
    (a context manager's generator collected after the module's globals)."""
    pytest.importorskip("tensorflow")
    code = textwrap.dedent(f"""
        import contextlib
        with contextlib.suppress(ImportError):
            import triton  # before TensorFlow, as in tests/conftest.py
        import tensorflow
        from pixpack.loader import Loader
        from pixpack.ops import RandomResizedCrop
        loader = Loader({str(jpeg_pack.path)!r}, 8, pipeline=[RandomResizedCrop(24)],
                        output="numpy", seed=1)
        for _ in loader:
            pass
        assert loader._next is not None
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Exception ignored" not in done.stderr and "Traceback" not in done.stderr, done.stderr
