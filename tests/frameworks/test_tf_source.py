"""pixpack.frameworks.tf_source: from_generator's semantics on a cheaper source.

Each TensorFlow iterator draws from its own new Python iterator, ends at its end,
closes it as soon as TensorFlow drops the iterator (ended or not), and passes errors
through; the dataset composes with tf.data transformations and runs inside a
``tf.function``.
"""

from __future__ import annotations

import gc

import numpy as np
import pytest
import tensorflow as tf

from pixpack.frameworks.tf_source import iterator_dataset

SIGNATURE = (tf.TensorSpec((2, 3), tf.float32), tf.TensorSpec((2,), tf.int64))


class Epochs:
    """``make()`` for the source: epoch ``k`` yields ``n`` elements filled with ``k``;
    records which epochs started and which were closed."""

    def __init__(self, n: int = 4, fail_at: int | None = None) -> None:
        self.n, self.fail_at = n, fail_at
        self.started: list[int] = []
        self.closed: list[int] = []

    def __call__(self):
        epoch = len(self.started)
        self.started.append(epoch)
        return self._gen(epoch)

    def _gen(self, epoch: int):
        try:
            for i in range(self.n):
                if i == self.fail_at:
                    raise ValueError(f"sample {i} of epoch {epoch} is broken")
                yield (np.full((2, 3), epoch, np.float32), np.array([epoch, i], np.int64))
        finally:
            self.closed.append(epoch)


def _values(ds):
    return [(x.numpy()[0, 0], y.numpy()[1]) for x, y in ds]


def test_each_iteration_draws_a_new_iterator_to_its_end():
    make = Epochs()
    ds = iterator_dataset(tf, make, SIGNATURE)
    assert ds.element_spec == SIGNATURE
    assert _values(ds) == [(0, i) for i in range(4)]
    assert _values(ds) == [(1, i) for i in range(4)]
    assert make.started == [0, 1] and make.closed == [0, 1]


def test_building_the_dataset_logs_no_warning():
    """Every pixpack.tf.dataset builds one source: a TensorFlow warning there (an
    argument named ``_`` is "not a valid node name") reached every user's log."""
    import logging

    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    logger = tf.get_logger()
    handler = Keep(logging.WARNING)
    logger.addHandler(handler)
    try:
        ds = iterator_dataset(tf, Epochs(), SIGNATURE)
        assert _values(ds)
    finally:
        logger.removeHandler(handler)
    assert seen == []


def test_batches_are_made_on_the_thread_that_asks_for_them():
    """The Python ``next`` runs on the iterating thread (like a NumPy Loader's), not
    handed to one of tf.data's threads and back for every batch (with the options
    pixpack.tf.dataset sets by default: no prefetch injected by tf.data)."""
    import threading

    threads: list[int] = []

    def make():
        for i in range(3):
            threads.append(threading.get_ident())
            yield (np.zeros((2, 3), np.float32), np.array([0, i], np.int64))

    ds = iterator_dataset(tf, make, SIGNATURE)  # (no read-ahead injected by tf.data)
    assert len(_values(ds)) == 3
    assert threads == [threading.get_ident()] * 3


def test_an_iterator_that_ended_is_not_asked_again():
    """StopIteration ends a TensorFlow iterator for good, as with from_generator, even
    when the Python iterator would yield again (not a generator); it is closed then."""

    class Flaky:
        def __init__(self) -> None:
            self.calls, self.closed = 0, False

        def __iter__(self):
            return self

        def __next__(self):
            self.calls += 1
            if self.calls == 3:
                raise StopIteration
            return (np.zeros((2, 3), np.float32), np.array([0, self.calls], np.int64))

        def close(self) -> None:
            self.closed = True

    made: list[Flaky] = []
    ds = iterator_dataset(tf, lambda: made.append(Flaky()) or made[-1], SIGNATURE)
    it = iter(ds)
    got = [int(next(it)[1][1]) for _ in range(2)]
    for _ in range(2):
        with pytest.raises(StopIteration):
            next(it)
    assert got == [1, 2] and made[0].calls == 3 and made[0].closed


def test_a_dropped_iterator_is_closed_at_once():
    make = Epochs()
    ds = iterator_dataset(tf, make, SIGNATURE)
    it = iter(ds)
    next(it)
    assert make.closed == []
    del it
    gc.collect()
    assert make.closed == [0]  # TensorFlow's finalize ran: the generator's finally
    assert _values(ds.take(2)) == [(1, 0), (1, 1)]
    assert make.closed == [0, 1]


def test_a_dropped_iterator_is_closed_even_if_referenced_elsewhere():
    """TensorFlow's finalize closes the Python iterator itself (the Loader's epoch ends
    and gives back its threads), not garbage collection: here another reference keeps
    the generator alive."""
    make = Epochs()
    kept = []

    def keep():
        kept.append(make())
        return kept[-1]

    ds = iterator_dataset(tf, keep, SIGNATURE)
    it = iter(ds)
    next(it)
    del it
    gc.collect()
    assert make.closed == [0] and kept[0].gi_frame is None


def test_two_iterators_draw_from_their_own_iterators():
    make = Epochs()
    ds = iterator_dataset(tf, make, SIGNATURE)
    a, b = iter(ds), iter(ds)
    got_a = [next(a)[1].numpy()[1] for _ in range(2)]
    got_b = [next(b)[1].numpy()[1] for _ in range(4)]
    assert got_a == [0, 1] and got_b == [0, 1, 2, 3]
    assert sorted(make.started) == [0, 1]


def test_errors_pass_through_with_their_message():
    ds = iterator_dataset(tf, Epochs(fail_at=2), SIGNATURE)
    with pytest.raises(tf.errors.OpError, match="sample 2 of epoch 0 is broken"):
        _values(ds)


def test_transformations_repeat_and_tf_function():
    make = Epochs(n=3)
    ds = iterator_dataset(tf, make, SIGNATURE)
    mapped = ds.map(lambda x, y: (x * 2, y)).repeat(2)
    assert [v for v, _ in _values(mapped)] == [0, 0, 0, 2, 2, 2]  # epochs 0 and 1, doubled

    @tf.function
    def total(d):
        s = tf.constant(0.0)
        for x, _ in d:
            s += tf.reduce_sum(x)
        return s

    assert float(total(ds)) == 3 * 6 * 2.0  # epoch 2: three elements of six 2s
    assert make.started == [0, 1, 2]


def test_a_wrong_dtype_is_an_error_not_a_reinterpretation():
    def make():
        yield (np.zeros((2, 3), np.float64), np.zeros(2, np.int64))

    ds = iterator_dataset(tf, make, SIGNATURE)
    with pytest.raises(tf.errors.OpError):
        _values(ds)
