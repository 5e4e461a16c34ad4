"""Which shard this process reads: explicit arguments, else the launcher's process group.

Datasets that shard only when told to are the classic silent failure of distributed
training: under ``torchrun`` every rank iterates the whole dataset in the same order,
and nothing complains. So when ``rank``/``world_size`` are not given, the Loader takes
them from an initialised ``torch.distributed`` group (looked for only when the program
imported torch), or else from the ``RANK`` and ``WORLD_SIZE`` variables a launcher
(torchrun, SLURM wrappers, accelerate) sets before the group exists. Explicit
arguments always win; one that contradicts an initialised group is almost always a
mistake, so it warns (once per Loader).

Ranks that differ in what decides the data (the seed, the pack, the batch size, the
pipeline) would read overlapping or mismatched shards without any error: the common
``seed=base + rank`` idiom overlaps and skips samples. So the first iteration of a
sharded Loader compares them across the group (:func:`agree`, one small
``all_gather_object``) and raises a :class:`~pixpack.errors.UsageError` naming what
differs. A seed drawn with ``seed=None`` is not an error: every rank takes rank 0's.
"""

from __future__ import annotations

import itertools
import json
import os
import sys
import warnings
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from ..errors import UsageError

__all__ = ["agree", "resolve_shard", "shard_facts"]

# A rank whose Loader is never iterated on the other ranks (one built on rank 0 only, to
# look at samples) must not wait forever: warned after _PATIENCE, refused after _LIMIT.
_PATIENCE = timedelta(seconds=30)
_LIMIT = timedelta(seconds=300)
_rounds = itertools.count()  # the n-th agreement of this process: the same on every rank


def _group() -> tuple[int, int] | None:
    """``(rank, world_size)`` of the initialised default process group, or None."""
    # A group exists only where the program imported torch: never import it here (a
    # NumPy, TF or JAX Loader must not pay for torch, nor need it installed).
    if "torch" not in sys.modules:
        return None
    try:
        import torch.distributed as dist
    except ImportError:  # pragma: no cover - torch without distributed support
        return None
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return None


def _launcher(env: Mapping[str, str]) -> tuple[int, int] | None:
    """``(RANK, WORLD_SIZE)`` set by a launcher, or None when absent or not integers."""
    try:
        rank, world = int(env["RANK"]), int(env["WORLD_SIZE"])
    except (KeyError, ValueError):
        return None
    return (rank, world) if world >= 1 and 0 <= rank < world else None


def resolve_shard(
    rank: int | None, world_size: int | None, env: Mapping[str, str] | None = None
) -> tuple[int, int]:
    """``(rank, world_size)`` for a Loader: the arguments, or the process group's, or the
    launcher's, or ``(0, 1)``. ``env`` defaults to ``os.environ``."""
    group = _group()
    found = group or _launcher(os.environ if env is None else env)
    if rank is None and world_size is None:
        return found or (0, 1)
    if group is not None and (rank, world_size) != group and world_size is not None:
        warnings.warn(
            f"Loader(rank={rank}, world_size={world_size}) inside an initialised process "
            f"group of rank {group[0]} / world size {group[1]}: every rank reads the shard "
            "it was given; drop rank/world_size to shard by the group",
            stacklevel=3,
        )
    if rank is None:  # world_size given alone: this process's rank in it
        rank = found[0] if found is not None and world_size == found[1] else 0
    if world_size is None:
        world_size = found[1] if found is not None else 1
    return rank, world_size


def shard_facts(loader: Any) -> dict[str, Any]:
    """What must be equal on every rank for the shards to be one epoch's: plain values."""
    o, spec = loader.options, loader.spec
    header = getattr(loader.pack, "header", None)
    return {
        "seed": o.seed,
        "num_samples": loader.num_samples,
        "sampling": loader._plan.describe(),
        "epoch_length": loader._plan.length,
        "pack": header.get("header_crc32") if isinstance(header, dict) else None,
        "batch_size": o.batch_size,
        "shuffle": o.shuffle,
        "drop_last": o.drop_last,
        "block_shuffle": (o.block_shuffle, o.block_window),
        "shard_window": o.shard_window,
        "exact": o.exact,
        "pipeline": [type(op).__name__ for op in loader.pipeline.ops],
        "output": (spec.height, spec.width, spec.channels, spec.dtype),
    }


def agree(world_size: int, facts: dict[str, Any], *, drawn_seed: bool) -> int | None:
    """Check that every rank of the group has the same ``facts`` (a small dict of plain
    values, ``facts["seed"]`` among them); return rank 0's seed when this rank's was
    drawn (``seed=None``) and differs, else None. A no-op outside a group of
    ``world_size`` ranks (a Loader given its own shard is the caller's business)."""
    group = _group()
    if group is None or world_size == 1 or group[1] != world_size:
        return None
    gathered = _gather(group[0], world_size, {**facts, "drawn": drawn_seed})
    first = gathered[0]
    for rank, other in enumerate(gathered):
        for key in facts:
            if key == "seed" and (other["drawn"] or first["drawn"]):
                continue  # drawn seeds: all ranks take rank 0's below
            if other[key] != first[key]:
                hint = (
                    "use one seed on every rank (not seed + rank): the shards are cut from "
                    "the one permutation of that seed"
                    if key == "seed"
                    else f"build the Loader with the same {key} on every rank"
                )
                raise UsageError(
                    f"the ranks disagree on {key}: rank 0 has {first[key]!r}, rank {rank} "
                    f"has {other[key]!r}; {hint}."
                )
    if first["drawn"] and first["seed"] != facts["seed"]:
        return int(first["seed"])
    return None


def _gather(rank: int, world_size: int, facts: dict[str, Any]) -> list[dict[str, Any]]:
    """Every rank's ``facts``, through the group's key-value store with a timeout (a
    collective would wait forever for a rank that never iterates this Loader); the
    collective itself where the store is not reachable."""
    import torch.distributed as dist

    try:
        from torch.distributed.distributed_c10d import _get_default_store

        store = _get_default_store()
    except (ImportError, RuntimeError, ValueError):  # pragma: no cover - older torch
        gathered: list[Any] = [None] * world_size
        dist.all_gather_object(gathered, facts)
        return gathered
    key = f"pixpack/loader-agreement/{next(_rounds)}"
    store.set(f"{key}/{rank}", json.dumps(facts, default=str))
    keys = [f"{key}/{r}" for r in range(world_size)]
    try:
        store.wait(keys, _PATIENCE)
    except RuntimeError:  # timed out (DistStoreError is a RuntimeError)
        warnings.warn(
            f"rank {rank}: waiting for the other ranks to iterate this Loader (sharded by "
            "the process group, every rank must iterate it); a Loader used on one rank "
            "only needs rank=0, world_size=1",
            stacklevel=4,
        )
        try:
            store.wait(keys, _LIMIT - _PATIENCE)
        except RuntimeError:
            raise UsageError(
                f"rank {rank}: the other ranks did not iterate this Loader within "
                f"{int(_LIMIT.total_seconds())} s. A Loader sharded by the process group "
                "must be iterated on every rank; for one used on a single rank pass "
                "rank=0, world_size=1."
            ) from None
    return [json.loads(store.get(k)) for k in keys]
