"""A ``tf.data`` source over Python iterators, cheaper per epoch and batch than
``tf.data.Dataset.from_generator``, with the same semantics.

``from_generator`` runs TensorFlow's ``GeneratorDataset`` op (an init function when
an iterator is made, a next function per element, a finalize function when TensorFlow
destroys the iterator) inside a ``flat_map``, which builds it again for every
iterator, and runs structure, conversion and shape-check code in Python for every
element. Here ``GeneratorDataset`` is the source itself and its functions do only
what they must: init makes the Python iterator and returns its key, next returns that
key without Python, finalize closes the iterator. The batches come from a
``MapDataset`` over the keys whose function (``next(iterator)`` of the key's iterator,
arrays handed over as they are: :func:`pixpack.tf.dataset` checks the batch size it
promised) runs with ``use_inter_op_parallelism=False``: on the thread that asks for
the element, like a NumPy Loader's ``next``, instead of on one of tf.data's threads,
which cost a hand-over of the thread and the GIL each way per batch;
``preserve_cardinality=False`` lets its ``StopIteration`` (an ``OutOfRangeError``)
end the iteration. Measured alone, 32 batches of 64x224x224x3 float32: 0.49-0.63 ms
per batch against 0.72-0.74 with the element made by ``GeneratorDataset``'s own next
function on a tf.data thread, in the same run (``from_generator``: 22-24 ms per 32
batches in an earlier one). Built from public API only (``tf.raw_ops`` and
``tf.data.experimental.from_variant``), so nothing is compiled against TensorFlow.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

__all__ = ["iterator_dataset"]

_KEEP_ATTR = "_pixpack_functions"  # the traced functions, kept with the dataset


def iterator_dataset(tf: Any, make: Callable[[], Iterator[Any]], signature: tuple) -> Any:
    """A ``tf.data.Dataset`` whose every iterator draws from a new ``make()``.

    ``make()`` returns an iterator of tuples of NumPy arrays with exactly the dtypes of
    ``signature`` (a tuple of ``tf.TensorSpec``); it is closed (when it has a
    ``close``) as soon as TensorFlow drops the iterator, ended or not."""
    live = _Live(make)
    dtypes = [s.dtype for s in signature]
    scalar = tf.TensorSpec((), tf.int64)

    # (an argument named ``_`` made TensorFlow warn "not a valid node name" per dataset)
    def init(unused: Any) -> Any:
        return tf.numpy_function(live.start, [], tf.int64, stateful=True)

    def same_key(key: Any) -> Any:  # no Python: the generator only carries the key
        return tf.identity(key)

    def finalize(key: Any) -> Any:
        return tf.numpy_function(live.finish, [key], tf.int64, stateful=True)

    def next_element(key: Any) -> Any:
        out = tf.numpy_function(live.next, [key], dtypes, stateful=True)
        for tensor, spec in zip(out, signature, strict=True):
            tensor.set_shape(spec.shape)
        return tuple(out)

    functions = [
        tf.function(f, autograph=False).get_concrete_function(scalar)
        for f in (init, same_key, finalize, next_element)
    ]
    keys = tf.raw_ops.GeneratorDataset(
        init_func_other_args=[tf.constant(0, tf.int64)],
        next_func_other_args=[],
        finalize_func_other_args=[],
        init_func=functions[0],
        next_func=functions[1],
        finalize_func=functions[2],
        output_types=[tf.int64],
        output_shapes=[[]],
    )
    # use_inter_op_parallelism=False runs the function on the thread asking for the
    # element, not on one of tf.data's; preserve_cardinality=False lets the
    # StopIteration at the epoch's end (an OutOfRangeError) end the iteration.
    variant = tf.raw_ops.MapDataset(
        input_dataset=keys,
        other_arguments=[],
        f=functions[3],
        output_types=dtypes,
        output_shapes=[s.shape for s in signature],
        use_inter_op_parallelism=False,
        preserve_cardinality=False,
    )
    # tf.data would inject a prefetch after the MapDataset, reading each Python iterator
    # one element ahead on its own thread; the source reads only what is asked for.
    options = tf.data.Options()
    options.experimental_optimization.inject_prefetch = False
    ds = tf.data.experimental.from_variant(variant, structure=tuple(signature))
    ds = ds.with_options(options)
    setattr(ds, _KEEP_ATTR, (functions, live))
    return ds


class _Live:
    """The Python iterator of each live TensorFlow iterator, by key. TensorFlow may
    call these from any of its threads; an iterator's own calls never overlap."""

    def __init__(self, make: Callable[[], Iterator[Any]]) -> None:
        self._make = make
        self._lock = threading.Lock()
        self._keys = itertools.count()
        self._iterators: dict[int, Iterator[Any]] = {}

    def start(self) -> np.int64:
        iterator = self._make()
        with self._lock:
            key = next(self._keys)
            self._iterators[key] = iterator
        return np.int64(key)

    def next(self, key: np.int64) -> tuple:
        with self._lock:
            iterator = self._iterators.get(int(key))
        if iterator is None:  # finished already
            raise StopIteration
        try:
            return tuple(next(iterator))
        except StopIteration:  # ends TensorFlow's iterator, for good (as from_generator)
            self.finish(key)  # an iterator that would yield again is not asked again
            raise

    def finish(self, key: np.int64) -> np.int64:
        with self._lock:
            iterator = self._iterators.pop(int(key), None)
        close = getattr(iterator, "close", None)
        if close is not None:
            close()
        return np.int64(0)
