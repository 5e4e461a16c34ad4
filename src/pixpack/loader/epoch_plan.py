"""An epoch as global positions: which sample is at each position, and which positions
each rank reads as which batch.

Everything a rank reads is a pure function of ``(seed, epoch, position)``: the epoch's
*global order* (the candidates, shuffled or drawn) does not depend on the world size,
and rank ``r`` of ``W`` takes positions ``r, r + W, r + 2W, ...`` from the resume
position on. So the ranks' k-th batches together are global positions
``[start + k*B*W, start + (k+1)*B*W)`` — the same global batch for any world size with
the same global batch size ``B*W`` — and a job's progress is one number, the global
position, which a job on any other number of ranks can resume from (MosaicML
Streaming's ``sample_in_epoch``). Each sample's augmentation is keyed by
``(seed, epoch, sample index)``, so it does not depend on the world size either.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import numpy as np

from ..errors import UsageError
from ..options import LoaderOptions
from .ordering import (
    batch_slices,
    block_order,
    epoch_order,
    exact_batch_slices,
    num_batches,
    shard,
    shard_length,
    shard_order,
)
from .sampling import fingerprint

__all__ = ["EpochPlan"]


@dataclasses.dataclass(frozen=True, eq=False)
class EpochPlan:
    """The epoch geometry of one loader (or sampler) on one rank."""

    options: LoaderOptions
    labels: np.ndarray  # the pack's labels (class-balanced draws need them)
    indices: np.ndarray | None = None  # candidates: a subset/ordering, or all samples
    sampler: Any = None  # draws positions into the candidates (sampling.Sampler)
    shard_starts: np.ndarray | None = None  # a sharded pack's shard boundaries

    def __post_init__(self) -> None:
        o = self.options
        if self.sampler is not None:
            if not callable(getattr(self.sampler, "draw", None)):
                raise UsageError(
                    "sampler must be a pixpack sampler (pixpack.WeightedSampler, "
                    f"pixpack.ClassBalancedSampler), not {type(self.sampler).__name__}; for a "
                    "fixed subset or order of samples, pass indices= instead."
                )
            if o.block_shuffle or o.shard_window:
                raise UsageError(
                    "a sampler draws its own order; block_shuffle and shard_window do not "
                    "apply to it (drop one of the two)."
                )
            # Fail at construction, not at the first epoch (weights of the wrong length).
            check = getattr(self.sampler, "check", None)
            if callable(check):
                check(self.candidates)

    @property
    def candidates(self) -> int:
        """Samples the epoch draws from."""
        return len(self.labels) if self.indices is None else len(self.indices)

    @property
    def length(self) -> int:
        """Global positions per epoch, before sharding (padding not counted)."""
        if self.sampler is not None:
            return int(self.sampler.epoch_length(self.candidates))
        return self.candidates

    @property
    def stride(self) -> int:
        """Global positions one step (every rank's next batch) consumes."""
        return self.options.batch_size * self.options.world_size

    @functools.cached_property
    def fingerprint(self) -> str:
        """What the candidates and draws are (checksums of their arrays), computed once."""
        return fingerprint(self.indices, self.sampler)

    def describe(self) -> str:
        return self.fingerprint

    def _candidate_shards(self) -> np.ndarray:
        """The shard of each candidate (all in shard 0 for a pack of one file)."""
        if self.shard_starts is None:
            return np.zeros(self.candidates, np.int64)
        samples = np.arange(len(self.labels)) if self.indices is None else self.indices
        return np.searchsorted(self.shard_starts, samples, side="right") - 1

    def _candidate_labels(self) -> np.ndarray:
        return self.labels if self.indices is None else self.labels[self.indices]

    def global_order(self, epoch: int) -> np.ndarray:
        """The epoch's sample indices, position by position, for every rank alike."""
        o, n = self.options, self.candidates
        if self.sampler is not None:
            pos = self.sampler.draw(n, self._candidate_labels(), o.seed, epoch)
        elif o.shuffle and o.block_shuffle:
            pos = block_order(n, o.seed, epoch, o.block_shuffle, o.block_window)
        elif o.shuffle and o.shard_window:
            pos = shard_order(self._candidate_shards(), o.seed, epoch, o.shard_window)
        else:
            pos = epoch_order(n, o.seed, epoch, o.shuffle)
        return pos if self.indices is None else self.indices[pos]

    def rank_order(self, epoch: int, start: int = 0) -> tuple[np.ndarray, list[tuple[int, int]]]:
        """This rank's sample indices from global position ``start`` on, and its batches
        as ``(start, stop)`` slices of them (the same number on every rank)."""
        o = self.options
        whole = self.global_order(epoch)
        if o.exact:  # evaluation: each sample once, equal batch counts (some empty)
            order = whole[start:][o.rank :: o.world_size]
            slices = exact_batch_slices(len(whole) - start, o.rank, o.world_size, o.batch_size)
        else:
            order = shard(whole, o.rank, o.world_size, o.drop_last, start)
            slices = batch_slices(len(order), o.batch_size, o.drop_last)
        return order, slices

    def batches(self, start: int = 0) -> int:
        """Batches per rank from global position ``start`` to the epoch's end."""
        o = self.options
        rest = self.length - start
        return num_batches(shard_length(rest, o.world_size, o.drop_last), o.batch_size, o.drop_last)

    def rank_length(self) -> int:
        """Samples every rank reads in a whole epoch (padded; exact: the most any rank reads)."""
        o = self.options
        return shard_length(self.length, o.world_size, o.drop_last)

    def position(self, start: int, steps: int) -> int:
        """The global position after ``steps`` batches from ``start``."""
        return min(start + steps * self.stride, self.length)
