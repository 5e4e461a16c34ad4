"""Which samples go into which batch: pure functions of integers.

Nothing here touches a pack, a thread or a tensor, so every property (a permutation,
disjoint equal shards, batches covering the shard) is tested exhaustively over sizes
and world sizes. The loader composes them per epoch::

    order = epoch_order(n, seed, epoch, shuffle)        # the whole dataset, permuted
    mine = shard(order, rank, world_size, drop_last)    # this rank's equal share
    # (a resumed epoch: shard(order, ..., start=position), positions being global)
    for start, stop in batch_slices(len(mine), batch_size, drop_last): ...
"""

from __future__ import annotations

import itertools

import numpy as np

__all__ = [
    "epoch_order",
    "block_order",
    "shard_order",
    "group_length",
    "exact_batch_slices",
    "shard",
    "shard_length",
    "batch_slices",
    "num_batches",
]

# Keeps the ordering stream apart from the per-sample augmentation streams
# (``ops.base.sample_rng``), which are keyed by (seed, epoch, index).
_ORDER_STREAM = 0x0D3E5


def epoch_order(n: int, seed: int, epoch: int, shuffle: bool) -> np.ndarray:
    """Sample indices for one epoch: ``arange(n)``, or a permutation keyed by (seed, epoch).

    A fresh full permutation every epoch; the same (seed, epoch) always gives the same
    one, whatever the number of threads or processes.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0 (got {n})")
    if not shuffle:
        return np.arange(n, dtype=np.int64)
    return _order_rng(seed, epoch).permutation(n).astype(np.int64, copy=False)


def _order_rng(seed: int, epoch: int) -> np.random.Generator:
    key = np.random.SeedSequence([seed, epoch, _ORDER_STREAM])
    return np.random.Generator(np.random.PCG64(key))


def block_order(n: int, seed: int, epoch: int, block: int, window: int) -> np.ndarray:
    """A block shuffle of ``range(n)`` keyed by (seed, epoch), for slow or remote disks.

    The samples are cut into blocks of ``block`` neighbours (in pack order), the blocks
    are permuted, and then every run of ``window`` consecutive blocks of that
    permutation (a *group*; a shorter last group joins the one before it) has its
    samples permuted together. A group's samples are
    ``window`` contiguous stretches of the file, so they are read as a few large
    requests, while a batch still mixes samples from ``window`` random places (the
    scheme of CorgiPile and of FFCV's ``QUASI_RANDOM``). ``block=1`` is a full shuffle
    within windows; a window covering all blocks is a full shuffle.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0 (got {n})")
    if block < 1 or window < 1:
        raise ValueError(f"block and window must be >= 1 (got {block}, {window})")
    rng = _order_rng(seed, epoch)
    starts = rng.permutation(-(-n // block)).astype(np.int64) * block
    # Group boundaries in blocks; a short last group joins the one before it (alone,
    # it would be a run of a few neighbours: one class in an ImageFolder pack).
    bounds = [*range(0, len(starts), window), len(starts)]
    if len(bounds) > 2 and bounds[-1] - bounds[-2] < window:
        del bounds[-2]
    out = np.empty(n, np.int64)
    at = 0
    for g0, g1 in itertools.pairwise(bounds):
        members = [np.arange(s, min(s + block, n), dtype=np.int64) for s in starts[g0:g1]]
        group = np.concatenate(members)
        out[at : at + len(group)] = rng.permutation(group)
        at += len(group)
    return out


def shard_order(shard_of: np.ndarray, seed: int, epoch: int, window: int) -> np.ndarray:
    """A shard-aware shuffle of positions ``range(len(shard_of))`` keyed by (seed, epoch),
    for packs read through a cache smaller than the dataset (remote shards).

    ``shard_of[j]`` is the shard candidate ``j`` lives in. The shards present are
    permuted, every run of ``window`` consecutive shards of that permutation is a
    *group* (a shorter last group joins the one before it, as in :func:`block_order`),
    and each group's positions are permuted together. So an epoch needs ``window``
    shards at a time, in a fresh order every epoch, and each shard is fetched once per
    epoch, while a batch mixes samples of ``window`` shards. A window covering every
    shard is a full shuffle.
    """
    if window < 1:
        raise ValueError(f"window must be >= 1 (got {window})")
    shard_of = np.asarray(shard_of, np.int64)
    rng = _order_rng(seed, epoch)
    shards, where = np.unique(shard_of, return_inverse=True)
    rank = np.empty(len(shards), np.int64)
    rank[rng.permutation(len(shards))] = np.arange(len(shards))
    groups = rank // window
    last = (len(shards) - 1) // window if len(shards) else 0
    if last > 0 and len(shards) - last * window < window:
        groups[groups == last] = last - 1  # a short last group joins the one before
    group_of = groups[where]
    out = np.argsort(group_of, kind="stable").astype(np.int64)
    counts = np.bincount(group_of, minlength=int(groups.max(initial=-1)) + 1)
    at = 0
    for count in counts.tolist():
        out[at : at + count] = rng.permutation(out[at : at + count])
        at += count
    return out


def group_length(block: int, window: int) -> int:
    """Positions one block-shuffle group spans (the last group may differ)."""
    return block * window


def shard_length(n: int, world_size: int, drop_last: bool) -> int:
    """Samples every rank gets: ``n // world_size`` (drop) or ``ceil(n / world_size)`` (pad)."""
    if drop_last:
        return n // world_size
    return -(-n // world_size)


def shard(
    order: np.ndarray, rank: int, world_size: int, drop_last: bool, start: int = 0
) -> np.ndarray:
    """This rank's share of ``order[start:]``, the same length on every rank.

    Like ``torch.utils.data.DistributedSampler``: with ``drop_last`` the tail that does
    not divide evenly is dropped; otherwise the order is padded by wrapping around to
    the epoch's start, so a few samples appear twice in the epoch. Equal lengths mean
    equal batch counts, so no rank waits forever in a collective for a batch that never
    comes. Ranks take interleaved positions (``rank::world_size``), so the union of the
    ranks' k-th batches is positions ``[k * B * world_size, (k + 1) * B * world_size)``
    of the order whatever the world size, and a job resumes at a global position
    (``start``) on any number of ranks.
    """
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, {world_size}) (got {rank})")
    if not 0 <= start <= len(order):
        raise ValueError(f"start must be in [0, {len(order)}] (got {start})")
    rest = order[start:]
    n = len(rest)
    per_rank = shard_length(n, world_size, drop_last)
    total = per_rank * world_size
    if total > n:  # pad from the epoch's start (len(order) >= 1 here)
        reps = -(-(total - n) // len(order))
        rest = np.concatenate([rest, np.tile(order, reps)[: total - n]])
    return rest[rank:total:world_size]


def num_batches(length: int, batch_size: int, drop_last: bool) -> int:
    """Batches in a shard of ``length`` samples."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1 (got {batch_size})")
    return length // batch_size if drop_last else -(-length // batch_size)


def batch_slices(length: int, batch_size: int, drop_last: bool) -> list[tuple[int, int]]:
    """``(start, stop)`` positions of each batch in a shard of ``length`` samples."""
    count = num_batches(length, batch_size, drop_last)
    return [(b * batch_size, min((b + 1) * batch_size, length)) for b in range(count)]


def exact_batch_slices(
    n: int, rank: int, world_size: int, batch_size: int
) -> list[tuple[int, int]]:
    """Batches of this rank's share ``order[rank::world_size]`` (of an ``order`` of ``n``;
    resumed at ``start``: ``order[start:]`` and ``n - start``) for exact evaluation:
    every sample once across the ranks (no wrap-around padding), and every rank the same
    number of batches, ``ceil(ceil(n / world_size) / batch_size)``: a rank with fewer
    samples gets a smaller last batch, then empty ones, so no collective waits forever."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, {world_size}) (got {rank})")
    length = len(range(rank, n, world_size))
    count = num_batches(-(-n // world_size), batch_size, False)
    out = batch_slices(length, batch_size, False)
    return out + [(length, length)] * (count - len(out))
