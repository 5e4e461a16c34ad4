"""JAX batches: ``jax.Array`` s on devices, placed with a ``jax.sharding.Sharding``.

A thin adapter over the framework-neutral :class:`~pixpack.Loader` (``output="numpy"``),
which does all the loading, ordering, sharding across processes and resuming; this
module only places each NumPy batch on devices and owns nothing else.

On an accelerator placement copies the batch; on a CPU JAX aliases the Loader's
64-byte aligned buffer instead. Neither can see a rewritten buffer: the loader rewrites a
buffer only once nothing references it (:mod:`pixpack.loader.ring`), and JAX keeps a
reference to the NumPy array until its copy is done, or, aliasing, for the array's life.
So an immutable ``jax.Array`` never changes as the loader advances, unlike
``jax.dlpack.from_dlpack`` over a buffer a loader recycles by itself.

``batch_size`` is the leading dimension of the arrays you get. With a ``sharding`` that
is the *global* batch: over ``jax.process_count()`` processes each process loads
``batch_size // process_count`` samples (the Loader's ``rank=jax.process_index()``) and
:func:`jax.make_array_from_process_local_data` joins them into one global array.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from ._jax_placement import Placement
from .errors import UsageError
from .loader.loader import Loader
from .optional import require

__all__ = ["loader", "JaxLoader"]

_FEATURE = "pixpack.jax"
_OWN = ("output", "device")  # decided here: NumPy batches, placed by JAX


def loader(
    source: Any,
    batch_size: int | None = None,
    *,
    sharding: Any = None,
    pipeline: Any = (),
    layout: str = "NHWC",
    **loader_kwargs: Any,
) -> JaxLoader:
    """Batches ``(images, labels)`` of ``source`` as ``jax.Array`` s.

    ``source``: a pack path, a :class:`~pixpack.Pack`, a :class:`~pixpack.Subset`, or a
    ``Loader(output="numpy")`` (used as it is; pass no other Loader options then).
    ``sharding``: ``None`` puts each batch on the default device; a
    ``jax.sharding.Sharding`` (e.g. ``NamedSharding(mesh, P("data"))``) splits the
    batch's leading axis as it says, over the processes' devices. ``batch_size`` (64 by
    default) is the leading dimension of the yielded arrays: the global batch with a
    sharding, this process's batch without one. ``layout`` defaults to ``"NHWC"``
    (flax's convolutions). Labels are int32 (JAX's default integer type). The other
    keyword arguments are :class:`~pixpack.Loader`'s (``seed``, ``shuffle``,
    ``drop_last``, ``workers``, ``dtype``, ...); determinism, ``set_epoch`` and
    ``state_dict`` behave as there.
    """
    jax = require("jax", _FEATURE)
    if isinstance(source, Loader):
        if batch_size is not None or loader_kwargs or tuple(pipeline) or layout != "NHWC":
            raise UsageError(
                "pixpack.jax.loader(Loader(...)): the Loader you pass is used as it is; "
                "give batch_size, pipeline, layout and the other options to that Loader "
                "(or pass a pack path instead)."
            )
        if source.output != "numpy":
            raise UsageError(
                f"pixpack.jax.loader needs a Loader with output='numpy' (got "
                f"output={source.output!r}); build it with Loader(..., output='numpy')."
            )
        return JaxLoader(source, sharding)
    for name in _OWN:
        if name in loader_kwargs:
            raise UsageError(
                f"pixpack.jax.loader decides {name!r} itself (NumPy batches placed by JAX); "
                f"drop {name}={loader_kwargs[name]!r} and use sharding= to choose devices."
            )
    batch_size = 64 if batch_size is None else batch_size
    processes = jax.process_count()
    if processes > 1 and loader_kwargs.get("seed", 0) is None:
        raise UsageError(
            "seed=None draws a different seed in every JAX process; pass one seed, the "
            "same in every process."
        )
    if processes > 1:  # never every process the same samples
        loader_kwargs.update(_process_shard(jax, loader_kwargs, strict=sharding is not None))
    if processes > 1 and sharding is not None and isinstance(batch_size, int):
        if batch_size % processes:
            raise UsageError(
                f"batch_size={batch_size} is the global batch of {processes} JAX processes "
                f"and must be a multiple of {processes} (each loads batch_size // "
                f"{processes}); use batch_size={batch_size - batch_size % processes or processes}."
            )
        batch_size //= processes
    numpy_loader = Loader(
        source, batch_size, pipeline=pipeline, layout=layout, output="numpy", **loader_kwargs
    )
    return JaxLoader(numpy_loader, sharding)


def _process_shard(jax: Any, kwargs: dict[str, Any], *, strict: bool) -> dict[str, int]:
    """This process's shard of a multi-process job: ``jax.process_index()`` of
    ``jax.process_count()``. With a sharding (``strict``) explicit ``rank``/``world_size``
    must say the same: each process's samples are the rows its devices hold."""
    shard = {"rank": jax.process_index(), "world_size": jax.process_count()}
    if not strict:
        return {k: v if kwargs.get(k) is None else kwargs[k] for k, v in shard.items()}
    for key, value in shard.items():
        if kwargs.get(key) is not None and kwargs[key] != value:
            raise UsageError(
                f"{key}={kwargs[key]!r} contradicts JAX's {value} (jax.process_index() of "
                f"jax.process_count()); drop rank/world_size: with a sharding every process "
                "loads the rows of the global batch its devices hold."
            )
    return shard


class JaxLoader:
    """Iterates one epoch per ``iter()`` like :class:`~pixpack.Loader`, yielding
    ``(images, labels)`` as ``jax.Array`` s. ``loader`` is the NumPy Loader underneath
    (its ``skipped``, ``spec``, ``options``); :meth:`close` closes it."""

    def __init__(self, loader: Loader, sharding: Any = None) -> None:
        self.loader = loader
        self.sharding = sharding
        self._placement = Placement(require("jax", _FEATURE), loader, sharding)

    # -- the Loader's epoch protocol, unchanged ------------------------------------------
    def __len__(self) -> int:
        """Batches per epoch (the same in every process)."""
        return len(self.loader)

    @property
    def batch_size(self) -> int:
        """The leading dimension of a full batch (global with a sharding)."""
        return self._placement.global_batch

    @property
    def epoch(self) -> int:
        """The epoch the next ``iter()`` will run."""
        return self.loader.epoch

    def set_epoch(self, epoch: int) -> None:
        """Run ``epoch`` on the next ``iter()`` (otherwise each ``iter()`` advances by one)."""
        self.loader.set_epoch(epoch)

    def state_dict(self) -> dict[str, Any]:
        """The job's position (global, the same in every process): see
        :meth:`pixpack.Loader.state_dict`."""
        return self.loader.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """The next ``iter()`` yields exactly the rest of the saved epoch."""
        self.loader.load_state_dict(state)

    def close(self) -> None:
        self.loader.close()

    def __enter__(self) -> JaxLoader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- iteration -----------------------------------------------------------------------
    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        return self._placed(iter(self.loader))

    def _placed(self, batches: Iterator[tuple[np.ndarray, np.ndarray]]) -> Iterator[Any]:
        place = self._placement
        try:
            for batch in batches:
                out = place(*batch)
                # Only JAX may still reference the buffer now: the loader can reuse it
                # as soon as JAX's copy is done, whatever the caller keeps.
                del batch
                yield out
        finally:
            batches.close()  # type: ignore[attr-defined]  # a generator

    def __repr__(self) -> str:
        where = "default device" if self.sharding is None else f"sharding={self.sharding}"
        return (
            f"<pixpack.jax.JaxLoader batch_size={self.batch_size}, {len(self)} batches/epoch, "
            f"{where}, pack={os.fspath(getattr(self.loader.pack, 'path', '?'))!r}>"
        )
