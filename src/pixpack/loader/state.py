"""Epoch bookkeeping and the resumable state of a loader.

The epoch protocol follows ``torch.utils.data.DataLoader`` + ``DistributedSampler``:
``set_epoch(e)`` picks the epoch of the next ``iter()``; without it, every new
``iter()`` advances to the next epoch by itself, so ``for epoch in range(E): for x, y
in loader`` also reshuffles.

The state is a handful of integers. Because batch contents are pure functions of
``(seed, epoch, rank, world_size, batch_size, ...)``, resuming needs no RNG state:
a new loader with the same arguments skips the ``batches_yielded`` first batches of
``epoch`` and yields exactly the remaining ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import ResumeError

__all__ = ["EpochState"]

_CHECKED = (
    "seed",
    "batch_size",
    "num_samples",
    "world_size",
    "rank",
    "shuffle",
    "drop_last",
    "block_shuffle",
    "block_window",
    "exact",
)


@dataclass
class EpochState:
    """Which epoch the next ``iter()`` runs, and where it starts."""

    next_epoch: int = 0
    skip_batches: int = 0  # batches of next_epoch already consumed (from a resume)
    skip_samples: int = 0  # samples in those batches
    current_epoch: int = -1  # epoch of the running (or last) iteration
    yielded: int = 0  # batches of current_epoch handed to the consumer (skipped ones too)
    samples: int = 0  # samples in those batches
    finished: bool = False  # current_epoch was iterated to its end
    superseded: bool = False  # set_epoch() was called after current_epoch began

    def set_epoch(self, epoch: int) -> None:
        if not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"epoch must be a non-negative integer (got {epoch!r})")
        if epoch != self.next_epoch:
            # A resume offset belongs to its own epoch only.
            self.skip_batches, self.skip_samples = 0, 0
        self.next_epoch = epoch
        # The next iter() runs ``epoch``: that is where this loader continues, even if an
        # iteration left early (a steps-per-epoch cap) never reached its end.
        self.superseded = self.current_epoch >= 0

    def begin(self) -> tuple[int, int]:
        """Start an iteration: returns (epoch, first batch) and advances next_epoch."""
        epoch, skip = self.next_epoch, self.skip_batches
        self.current_epoch, self.yielded, self.samples = epoch, skip, self.skip_samples
        self.finished = self.superseded = False
        self.next_epoch, self.skip_batches, self.skip_samples = epoch + 1, 0, 0
        return epoch, skip

    def snapshot(self, config: dict[str, Any], running: bool = True) -> dict[str, Any]:
        """The state a new loader needs to continue exactly where this one is.

        ``running``: the iteration of ``current_epoch`` can still go on (its iterator is
        alive and not closed). Once it was left early (a ``break`` drops the iterator),
        this loader's next ``iter()`` runs ``next_epoch`` from its start, and so does
        the state.
        """
        if self.current_epoch < 0 or self.finished or self.superseded or not running:
            epoch, done, samples = self.next_epoch, self.skip_batches, self.skip_samples
        else:
            epoch, done, samples = self.current_epoch, self.yielded, self.samples
        return {"epoch": epoch, "batches_yielded": done, "samples_yielded": samples, **config}

    def restore(self, state: dict[str, Any], config: dict[str, Any]) -> None:
        for key in _CHECKED:
            if key in state and key in config and state[key] != config[key]:
                raise ResumeError(
                    f"loader state was saved with {key}={state[key]!r} but this loader has "
                    f"{key}={config[key]!r}; create the Loader with the same arguments to resume."
                )
        self.next_epoch = int(state["epoch"])
        self.skip_batches = int(state["batches_yielded"])
        self.skip_samples = int(state.get("samples_yielded", 0))
        self.current_epoch, self.yielded, self.samples = -1, 0, 0
        self.finished = self.superseded = False
