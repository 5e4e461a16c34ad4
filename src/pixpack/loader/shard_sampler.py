"""``ShardSampler``: this rank's sample indices per epoch, for ``DataLoader`` users.

The same epoch geometry as :class:`pixpack.Loader` (:mod:`.epoch_plan`) behind
the sampler protocol (``__iter__``, ``__len__``, ``set_epoch``), for the ``PackDataset``
+ ``DataLoader`` path. It is a plain class, not a ``torch.utils.data.Sampler``
subclass: ``DataLoader(sampler=)`` takes any sized iterable, and so it imports without
torch (a NumPy Loader's ``sampler`` is one too). Unlike
``DistributedSampler`` it needs no initialised process group: left out, rank and world
size come from the group or from torchrun's ``RANK``/``WORLD_SIZE``, so a sampler built
before ``init_process_group`` still shards. It takes ``indices=`` (a split) and a
``sampler=`` (weighted or class-balanced draws), and resumes from a global position on
any number of ranks.

A DataLoader's workers read the sampler ahead of the training loop, so the sampler
cannot know how far the loop got: ``state_dict(samples_done)`` takes the count of
samples the loop has consumed on this rank this epoch.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from ..errors import ResumeError
from ..options import LoaderOptions
from .distributed import resolve_shard
from .epoch_plan import EpochPlan
from .sampling import check_indices

__all__ = ["ShardSampler"]


class ShardSampler:
    """Indices of this rank's shard of each epoch (a drop-in for ``DistributedSampler``).

    dataset: a :class:`~pixpack.PackDataset` (or anything with ``targets`` and ``len``).
    shuffle, seed, drop_last: as for ``DistributedSampler``; ``exact=True``: every
    sample once across the ranks (shards may differ by one sample; for evaluation).
    """

    def __init__(
        self,
        dataset: Any,
        *,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        exact: bool = False,
        rank: int | None = None,
        world_size: int | None = None,
        indices: Any = None,
        sampler: Any = None,
    ) -> None:
        rank, world_size = resolve_shard(rank, world_size)
        options = LoaderOptions(
            batch_size=1,
            shuffle=bool(shuffle),
            seed=seed,
            drop_last=bool(drop_last),
            workers=1,
            rank=rank,
            world_size=world_size,
            exact=bool(exact),
        )
        labels = np.asarray(getattr(dataset, "targets", np.zeros(len(dataset), np.int64)))
        if indices is not None:
            indices = check_indices(indices, len(labels), type(dataset).__name__)
        self._plan = EpochPlan(options, labels, indices, sampler)
        self.epoch = 0
        self.start = 0  # global position of ``epoch`` to start at (a resume)
        self._loader: Any = None

    @classmethod
    def of_loader(cls, loader: Any) -> ShardSampler:
        """A view of a Loader's epochs (its ``sampler`` attribute): iterating gives the
        indices of the rank's next epoch, in the loader's order; ``set_epoch`` sets
        the loader's epoch."""
        view = cls.__new__(cls)
        view._plan = loader._plan
        view._loader = loader
        state = loader._state
        view.epoch, view.start = state.next_epoch, state.resume_position
        return view

    @property
    def rank(self) -> int:
        return self._plan.options.rank

    @property
    def world_size(self) -> int:
        return self._plan.options.world_size

    def set_epoch(self, epoch: int) -> None:
        if self._loader is not None:
            self._loader.set_epoch(epoch)
        elif epoch != self.epoch:
            self.start = 0  # a resume position belongs to its own epoch only
        self.epoch = epoch

    def __len__(self) -> int:
        """Samples this rank reads per epoch (exact: the most any rank reads)."""
        return self._plan.rank_length()

    def __iter__(self) -> Iterator[int]:
        order, slices = self._plan.rank_order(self.epoch, self.start)
        stop = slices[-1][1] if slices else 0  # drop_last drops a rank's partial tail too
        return iter(order[:stop].tolist())

    def state_dict(self, samples_done: int) -> dict[str, int]:
        """The job's position after this rank consumed ``samples_done`` samples of the
        epoch (every rank in step): resumable on any number of ranks."""
        plan = self._plan
        return {
            "epoch": self.epoch,
            "position": min(self.start + samples_done * plan.options.world_size, plan.length),
        }

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue ``state["epoch"]`` from its global ``position``."""
        try:
            epoch, position = int(state["epoch"]), int(state["position"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ResumeError(f"not a ShardSampler state (missing or bad {exc}).") from None
        if epoch < 0 or not 0 <= position <= self._plan.length:
            raise ResumeError(
                f"sampler state position {position} of epoch {epoch} is outside this "
                f"sampler's epoch of {self._plan.length} samples; saved for other data?"
            )
        self.epoch, self.start = epoch, position
