"""``pixpack.tf``: a pixpack :class:`~pixpack.Loader` as a ``tf.data.Dataset``.

A thin adapter: the Loader (``output="numpy"``) makes every batch; this module only
describes its batches to TensorFlow and hands them over
(:mod:`pixpack.frameworks.tf_source`: ``from_generator``'s op without its per-epoch
and per-batch overhead). It yields whole batches, never samples: a Python call per
element, re-batched by ``tf.data``, is far slower (tensorflow#56258, #14480). Pure
Python over public TensorFlow API, so nothing here is compiled against TensorFlow.
TensorFlow is imported on the first call, never at ``import pixpack.tf``.

Each iteration of the dataset (each ``for`` loop, each Keras epoch) runs the Loader's
next epoch; the Loader stays reachable through :func:`loader_of` for
``state_dict()``/``load_state_dict()``/``set_epoch()`` (docs/tensorflow.md).
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from .errors import UsageError
from .frameworks.tf_source import iterator_dataset
from .optional import require

__all__ = ["dataset", "loader_of", "output_signature", "epoch_callback"]

_FEATURE = "pixpack.tf"
_LOADER_ATTR = "_pixpack_loader"  # set on the dataset dataset() returns
_AUTOTUNE = -1  # tf.data.AUTOTUNE, without importing TensorFlow for a default
REST_AFTER_S = 2.0  # idle seconds after an epoch before the Loader's threads and buffers go


def dataset(
    source: Any,
    batch_size: int | None = None,
    *,
    pipeline: Sequence[Any] | None = None,
    layout: str = "NHWC",
    input_context: Any = None,
    tf_prefetch: int = 0,
    **loader_kwargs: Any,
) -> Any:
    """A ``tf.data.Dataset`` of ``(images, labels)`` batches from ``source``.

    ``source``: a pack path, a :class:`~pixpack.Pack`, a :class:`~pixpack.Subset`
    (each read by a new ``Loader(source, batch_size, pipeline=pipeline,
    layout=layout, output="numpy", **loader_kwargs)``; ``batch_size`` defaults to 64),
    or a ``Loader(output="numpy")`` you built (then give none of those arguments).
    Images are ``(N, H, W, C)`` (``layout="NCHW"``: ``(N, C, H, W)``), labels int64;
    the element spec is :func:`output_signature`.

    ``input_context``: the ``tf.distribute.InputContext`` that
    ``strategy.distribute_datasets_from_function`` passes; the Loader reads input
    pipeline ``input_pipeline_id`` of ``num_input_pipelines`` and ``batch_size`` is
    the per-replica batch (``ctx.get_per_replica_batch_size(global_batch)``).

    ``tf_prefetch``: batches ``tf.data`` fetches ahead of the training step
    (``-1``: ``tf.data.AUTOTUNE``) on top of the Loader's own ``prefetch`` (decoded
    in its threads). The default 0 adds none, so ``loader_of(ds).state_dict()``
    counts exactly the batches the step received; ``2`` lets tf.data fetch batches
    while a step runs, putting the state 2 batches ahead (docs/tensorflow.md).
    """
    tf = require("tensorflow", _FEATURE)
    if not isinstance(tf_prefetch, int) or tf_prefetch < _AUTOTUNE:
        raise UsageError(
            f"tf_prefetch must be a number of batches >= 0, or -1 for tf.data.AUTOTUNE "
            f"(got {tf_prefetch!r})."
        )
    loader = _loader(source, batch_size, pipeline, layout, input_context, loader_kwargs)
    signature = output_signature(loader)
    static = signature[1].shape[0]
    ds = iterator_dataset(tf, _epochs(loader, static), signature)
    options = tf.data.Options()
    if tf_prefetch:
        ds = ds.prefetch(tf_prefetch)
    else:  # tf.data would add a prefetch of its own: the loader one batch ahead
        options.experimental_optimization.inject_prefetch = False
    # Nothing here for tf.data to tune unless tf_prefetch=-1 asks, and its tuning
    # thread, woken 10, 20, 40 ... ms into an iteration, holds each epoch's end until
    # its next wake: epochs of ~0.4 s took 0.63 s (docs/tensorflow.md: turning it on).
    options.autotune.enabled = tf_prefetch == _AUTOTUNE
    ds = ds.with_options(options)
    setattr(ds, _LOADER_ATTR, loader)
    return ds


def loader_of(ds: Any) -> Any:
    """The :class:`~pixpack.Loader` behind ``ds``: a dataset :func:`dataset` returned,
    or one derived from it by transformations (``.map``, ``.take``, ``.prefetch`` ...,
    each of which makes a new dataset object)."""
    seen, todo = set(), [ds]
    while todo:
        d = todo.pop()
        if id(d) in seen:
            continue
        seen.add(id(d))
        found = getattr(d, _LOADER_ATTR, None)
        if found is not None:
            return found
        inputs = getattr(d, "_inputs", None)  # tf.data's input datasets of a transformation
        if callable(inputs):
            try:
                todo.extend(inputs())
            except (NotImplementedError, TypeError):
                pass
    raise UsageError(
        f"{type(ds).__name__} is not made from pixpack.tf.dataset(...); keep the Loader "
        "yourself: ds = pixpack.tf.dataset(pixpack.Loader(..., output='numpy'))."
    )


def epoch_callback(ds: Any) -> Any:
    """A Keras callback that makes ``model.fit``'s epoch ``e`` read the Loader's epoch
    ``e`` (``ds``: a dataset of :func:`dataset`, or its Loader). Needed under a
    ``tf.distribute`` strategy, where Keras starts an iteration before training to
    build the model, and to resume with ``fit(initial_epoch=...)`` (a mid-epoch state:
    finish that epoch in a ``fit`` of its own, which the callback enforces;
    :mod:`pixpack.frameworks.keras_epochs`)."""
    from .frameworks.keras_epochs import loader_epochs
    from .loader.loader import Loader

    return loader_epochs(ds if isinstance(ds, Loader) else loader_of(ds))


def output_signature(loader: Any) -> tuple[Any, Any]:
    """``(TensorSpec images, TensorSpec labels)`` of ``loader``'s batches: the exact
    dtype and sample shape; the batch dimension is static only when every batch is full
    (``drop_last=True``, or an epoch that divides evenly into batches, as does the rest
    of a loaded mid-epoch state, with ``on_error="raise"``), else ``None``."""
    tf = require("tensorflow", _FEATURE)
    spec = loader.spec
    batch = loader.batch_size if _always_full(loader) else None
    dtype = _tf_dtype(tf, spec)
    shape = spec.sample_shape("NCHW" if spec.layout == "NCHW" else "NHWC")
    return (
        tf.TensorSpec((batch, *shape), dtype),
        tf.TensorSpec((batch,), tf.int64),
    )


def _tf_dtype(tf: Any, spec: Any) -> Any:
    if spec.dtype == "uint8":  # "the pixels as stored": uint8, uint16, int16 or float32
        return tf.as_dtype(np.dtype(spec.pixel_dtype))
    return getattr(tf, spec.dtype)  # float32, float16, bfloat16, int32


def _always_full(loader: Any) -> bool:
    """Whether every batch the loader yields has ``batch_size`` samples."""
    from .loader.ordering import shard_length

    o = loader.options
    if o.on_error != "raise" or o.exact:  # skipped samples, empty exact batches
        return False
    if o.drop_last:  # only whole batches, a resumed epoch's too
        return True
    # Every rank's (padded) epoch must divide, and so must the rest of a resumed one (a
    # state saved at another global batch size leaves a partial last batch). A state
    # loaded after the dataset was built can still do that: _epochs says so.
    plan, start = loader._plan, loader._state.resume_position
    rest = shard_length(plan.length - start, o.world_size, False)
    return plan.rank_length() % o.batch_size == 0 and rest % o.batch_size == 0


def _epochs(loader: Any, static: int | None) -> Callable[[], Iterator[Any]]:
    """The generator callable: one call per iteration of the dataset, one epoch each.

    TensorFlow keeps this callable, and the Loader with it, as long as the process
    lives (its py_func registry), so the Loader gives back its threads and buffers
    (``Loader._rest``) once no epoch has started for :data:`REST_AFTER_S` after one
    ended (:class:`_Rest`): back-to-back epochs keep them (making 4 x 38 MB of buffers
    again each epoch cost ~5% of the CPU per image), a dropped dataset frees them soon
    after."""

    rest = _Rest(loader)

    def epoch() -> Iterator[Any]:
        rest.epoch_started()
        batches = iter(loader)
        try:
            for batch in batches:
                if static is not None and len(batch[1]) != static:
                    raise UsageError(
                        f"pixpack.tf: a batch of {len(batch[1])} samples in a dataset declared "
                        f"with {static} per batch: a state saved at another global batch size "
                        "was loaded after the dataset was built; load it before "
                        "pixpack.tf.dataset(loader), build it with drop_last=True, or resume "
                        "with the saved batch size."
                    )
                yield batch
                del batch  # the frame must not hold it: the ring reuses unreferenced buffers
        finally:
            batches.close()  # type: ignore[attr-defined]  # a generator
            rest.epoch_ended()

    return epoch


class _Rest:
    """When the Loader gives back its threads and buffers: :data:`REST_AFTER_S` after
    the last epoch ended, if no epoch started since. One timer per Loader at a time,
    cancelled when an epoch starts, so a timer from an earlier epoch never frees the
    buffers between two later back-to-back epochs; the timer holds the Loader weakly
    and is a daemon (it keeps nothing alive)."""

    def __init__(self, loader: Any) -> None:
        self._loader = weakref.ref(loader)
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._generation = 0  # epochs started: a timer from before one does nothing

    def epoch_started(self) -> None:
        with self._lock:
            self._generation += 1
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    def epoch_ended(self) -> None:
        with self._lock:
            generation = self._generation
            timer = threading.Timer(REST_AFTER_S, self._fire, (generation,))
            timer.daemon = True
            try:
                timer.start()
            except RuntimeError:  # no thread to be had (a limit, interpreter shutdown)
                timer = None
            self._timer = timer
        if timer is None:
            self._fire(generation)

    def _fire(self, generation: int) -> None:
        # Under the lock: an epoch starting now waits until the rest is done (both are
        # quick: Loader._rest waits only for chunks of the next epoch already running),
        # so it never loses what it just made.
        with self._lock:
            if generation != self._generation:
                return  # an epoch started since: it is using the buffers
            self._timer = None
            loader = self._loader()
            if loader is not None:
                loader._rest()  # a no-op if an iteration is running


def _loader(
    source: Any,
    batch_size: int | None,
    pipeline: Sequence[Any] | None,
    layout: str,
    input_context: Any,
    kwargs: dict[str, Any],
) -> Any:
    """The Loader to wrap: ``source`` itself, or a new NumPy one over it."""
    from .loader.loader import Loader

    if layout not in ("NHWC", "NCHW"):
        raise UsageError(
            f"pixpack.tf: layout must be 'NHWC' or 'NCHW' (got {layout!r}); "
            "'channels_last' is torch's memory format."
        )
    if isinstance(source, Loader):
        given = [n for n, v in (("batch_size", batch_size), ("pipeline", pipeline)) if v]
        given += sorted(kwargs) + ([] if layout == "NHWC" else ["layout"])
        if given:
            raise UsageError(
                f"pixpack.tf.dataset(loader): {', '.join(given)} belong to the Loader; "
                "pass them to pixpack.Loader(...) instead."
            )
        if source.output != "numpy" or source.spec.layout == "channels_last":
            raise UsageError(
                "pixpack.tf.dataset(loader) needs Loader(..., output='numpy') with layout "
                f"'NHWC' or 'NCHW' (got output={source.output!r}, "
                f"layout={source.spec.layout!r})."
            )
        _check_context(source, input_context)
        return source
    if not isinstance(source, (str, os.PathLike)) and not hasattr(source, "__len__"):
        raise UsageError(
            f"pixpack.tf.dataset: source must be a pack path, a Pack, a Subset or a "
            f"Loader(output='numpy') (got {type(source).__name__})."
        )
    if "output" in kwargs:
        raise UsageError("pixpack.tf.dataset: output= is always 'numpy' here; drop it.")
    if input_context is not None:
        if "rank" in kwargs or "world_size" in kwargs:
            raise UsageError("pixpack.tf.dataset: give input_context or rank/world_size, not both.")
        kwargs = dict(
            kwargs,
            rank=input_context.input_pipeline_id,
            world_size=input_context.num_input_pipelines,
        )
    return Loader(
        source,
        64 if batch_size is None else batch_size,
        pipeline=() if pipeline is None else pipeline,
        layout=layout,
        output="numpy",
        **kwargs,
    )


def _check_context(loader: Any, ctx: Any) -> None:
    if ctx is None:
        return
    want = (ctx.input_pipeline_id, ctx.num_input_pipelines)
    got = (loader.options.rank, loader.options.world_size)
    if want != got:
        raise UsageError(
            f"pixpack.tf.dataset(loader, input_context=...): the Loader reads shard "
            f"{got[0]} of {got[1]}, the input context wants {want[0]} of {want[1]}; "
            "build it with Loader(..., rank=ctx.input_pipeline_id, "
            "world_size=ctx.num_input_pipelines)."
        )
