"""How :mod:`pixpack.jax` puts a NumPy batch on devices, and which batches a sharding can hold.

A sharding that splits the batch axis ``k`` ways holds only batches whose size is a
multiple of ``k`` (JAX's ``IndivisibleError``), and in a multi-process job every process
must bring the same number of rows. So batch sizes that vary are refused when the loader
is built, not at the last step of an epoch: a ragged last batch (``drop_last=False``),
samples dropped by ``on_error="skip"``/``"warn"``, and ``exact=True``'s uneven batches.
"""

from __future__ import annotations

import json
import zlib
from typing import Any

import numpy as np

from .errors import UsageError
from .loader.distributed import shard_facts

__all__ = ["Placement", "label_sharding", "agree"]


def label_sharding(jax: Any, sharding: Any) -> Any:
    """The labels' sharding: a ``NamedSharding``'s batch axis only (its spec may name the
    image axes too); any other sharding as it is."""
    named = jax.sharding.NamedSharding
    if isinstance(sharding, named):
        return named(sharding.mesh, jax.sharding.PartitionSpec(*sharding.spec[:1]))
    return sharding


class Placement:
    """``(images, labels)`` NumPy -> ``jax.Array`` s: ``jax.device_put`` onto the default
    device without a sharding; with one, ``jax.make_array_from_process_local_data``
    (each process gives its rows; in one process, the whole batch)."""

    def __init__(self, jax: Any, loader: Any, sharding: Any) -> None:
        self.jax = jax
        self.sharding = sharding
        self.labels = None if sharding is None else label_sharding(jax, sharding)
        o, spec = loader.options, loader.spec
        self.processes = jax.process_count() if sharding is not None else 1
        self.global_batch = o.batch_size * self.processes
        chw = spec.layout in ("NCHW", "channels_last")  # channels_last: an NCHW-shaped view
        hw = (spec.height, spec.width)
        self.sample_shape = (spec.channels, *hw) if chw else (*hw, spec.channels)
        self._fits: set[int] = set()
        if sharding is not None:
            self._check_shard(loader)
            self._check_sizes(loader)
        if self.processes > 1:
            agree(jax, loader)

    def __call__(self, images: np.ndarray, labels: np.ndarray) -> tuple[Any, Any]:
        labels = labels.astype(np.int32)  # JAX's default integer type, x64 or not
        if self.sharding is None:
            return self.jax.device_put((images, labels))
        n = images.shape[0]
        if n not in self._fits:  # only a resume on another geometry gets here
            self._require_fit(n, "this batch")
        return self.jax.make_array_from_process_local_data(
            (self.sharding, self.labels), (images, labels)
        )

    def _misfit(self, rows: int) -> str | None:
        """Why a batch of ``rows`` local rows does not fit the sharding, or None."""
        whole = rows * self.processes
        try:
            self.sharding.shard_shape((whole, *self.sample_shape))
            self.labels.shard_shape((whole,))
        except ValueError as exc:  # IndivisibleError, or a spec of other rank
            return str(exc)
        self._fits.add(rows)
        return None

    def _require_fit(self, rows: int, what: str, hint: str = "") -> None:
        reason = self._misfit(rows)
        if reason is not None:
            raise UsageError(
                f"{what} ({rows * self.processes} samples) does not fit the sharding: "
                f"{reason}{hint}"
            )

    def _check_shard(self, loader: Any) -> None:
        o = loader.options
        if self.processes > 1 and (o.rank, o.world_size) != (
            self.jax.process_index(),
            self.processes,
        ):
            raise UsageError(
                f"a Loader with rank={o.rank}, world_size={o.world_size} in JAX process "
                f"{self.jax.process_index()} of {self.processes}: each process must load "
                "the rows its devices hold; build it with rank=jax.process_index(), "
                "world_size=jax.process_count()."
            )

    def _check_sizes(self, loader: Any) -> None:
        o = loader.options
        full = min(o.batch_size, max(1, len(loader.sampler)))
        self._require_fit(full, f"batch_size={self.global_batch}", "; choose one it divides.")
        whole = full * self.processes
        split = whole // self.sharding.shard_shape((whole, *self.sample_shape))[0]
        if split == 1 and self.processes == 1:
            return  # every device holds the whole batch: any size fits
        how = f"a sharding that splits the batch over {split} devices"
        if o.on_error != "raise":
            raise UsageError(
                f"on_error={o.on_error!r} drops failing samples, so a batch may come out "
                f"smaller than {how} can hold; use on_error='raise' (pixpack verify finds "
                "damaged samples) or sharding=None."
            )
        if o.exact:
            raise UsageError(
                f"exact=True gives the processes batches of different sizes, which {how} "
                "cannot hold; evaluate with exact=False and drop_last=True, or sharding=None."
            )
        last = len(loader.sampler) % o.batch_size
        if not o.drop_last and last:
            self._require_fit(
                last,
                "the epoch's last batch",
                "; pass drop_last=True, or a batch_size that leaves a last batch it divides.",
            )


def agree(jax: Any, loader: Any) -> None:
    """Every JAX process must build the loader alike (seed, pack, batch size, pipeline):
    shards of different permutations overlap and miss samples without any error (the
    ``seed + process_index`` idiom). One small all-gather of checksums, when it is built
    (every process builds a sharded loader: its batches are one global array)."""
    from jax.experimental import multihost_utils

    facts = shard_facts(loader)
    keys = sorted(facts)
    sums = [zlib.crc32(json.dumps(facts[k], default=str).encode()) & 0x7FFFFFFF for k in keys]
    every = np.asarray(multihost_utils.process_allgather(np.array(sums, np.int32)))
    for column, key in enumerate(keys):
        other = np.flatnonzero(every[:, column] != every[0, column])
        if other.size:
            hint = (
                "one seed in every process (not seed + jax.process_index()): the shards "
                "are cut from the one permutation of that seed"
                if key == "seed"
                else f"the same {key} in every process"
            )
            raise UsageError(
                f"the JAX processes disagree on the loader's {key} (process 0 and process "
                f"{int(other[0])} differ); build it with {hint}."
            )
