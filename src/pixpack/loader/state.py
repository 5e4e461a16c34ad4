"""Epoch bookkeeping and the resumable state of a loader.

The epoch protocol follows ``torch.utils.data.DataLoader`` + ``DistributedSampler``:
``set_epoch(e)`` picks the epoch of the next ``iter()``; without it, every new
``iter()`` advances to the next epoch by itself, so ``for epoch in range(E): for x, y
in loader`` also reshuffles.

The state is a handful of integers, and it is the *job's*, not a rank's: batches are
pure functions of ``(seed, epoch, global position)`` (:mod:`.epoch_plan`), so where a
job is in an epoch is one global position, the same on every rank at a step boundary.
Rank 0 saves it; a new job with the same seed and data resumes from it on any number
of ranks, with any per-rank batch size, and yields exactly the rest of the epoch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import ResumeError

__all__ = ["EpochState"]

# What decides the global order: a state from a loader that differs in one of these
# describes another sequence of samples. (batch_size, rank and world_size may differ.)
_CHECKED = (
    "seed",
    "num_samples",
    "epoch_length",
    "sampling",
    "shuffle",
    "drop_last",
    "block_shuffle",
    "block_window",
    "exact",
)


@dataclass
class EpochState:
    """Which epoch the next ``iter()`` runs, and from which global position."""

    next_epoch: int = 0
    resume_position: int = 0  # global position of next_epoch to start at (a resume)
    resume_samples: int = 0  # this rank's samples before it (informational)
    current_epoch: int = -1  # epoch of the running (or last) iteration
    start_position: int = 0  # where the current iteration started
    yielded: int = 0  # batch positions of this iteration consumed (all-failed ones too)
    samples: int = 0  # samples this rank yielded in current_epoch, a resume's included
    finished: bool = False  # current_epoch was iterated to its end
    superseded: bool = False  # set_epoch() was called after current_epoch began

    def set_epoch(self, epoch: int) -> None:
        if not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"epoch must be a non-negative integer (got {epoch!r})")
        if epoch != self.next_epoch:
            # A resume offset belongs to its own epoch only.
            self.resume_position, self.resume_samples = 0, 0
        self.next_epoch = epoch
        # The next iter() runs ``epoch``: that is where this loader continues, even if an
        # iteration left early (a steps-per-epoch cap) never reached its end.
        self.superseded = self.current_epoch >= 0

    def begin(self) -> tuple[int, int]:
        """Start an iteration: returns (epoch, global start position), advances next_epoch."""
        epoch, start = self.next_epoch, self.resume_position
        self.current_epoch, self.start_position, self.yielded = epoch, start, 0
        self.samples = self.resume_samples
        self.finished = self.superseded = False
        self.next_epoch, self.resume_position, self.resume_samples = epoch + 1, 0, 0
        return epoch, start

    def snapshot(
        self, config: dict[str, Any], stride: int, length: int, running: bool = True
    ) -> dict[str, Any]:
        """The state a new loader needs to continue exactly where this one is.

        ``stride``: global positions per step; ``length``: positions per epoch.
        ``running``: the iteration of ``current_epoch`` can still go on (its iterator is
        alive and not closed). Once it was left early (a ``break`` drops the iterator),
        this loader's next ``iter()`` runs ``next_epoch`` from its start, and so does
        the state.
        """
        if self.current_epoch < 0 or self.finished or self.superseded or not running:
            epoch, position, samples = self.next_epoch, self.resume_position, self.resume_samples
        else:
            epoch, samples = self.current_epoch, self.samples
            position = min(self.start_position + self.yielded * stride, length)
        return {
            "epoch": epoch,
            "position": position,
            # At this loader's geometry; a loader of another world size or batch size
            # resumes from "position".
            "batches_yielded": -(-position // stride),
            "samples_yielded": samples,
            **config,
        }

    def restore(self, state: dict[str, Any], config: dict[str, Any], length: int) -> None:
        for key in _CHECKED:
            if key in state and key in config and state[key] != config[key]:
                raise ResumeError(
                    f"loader state was saved with {key}={state[key]!r} but this loader has "
                    f"{key}={config[key]!r}; create the Loader with the same seed, data and "
                    "order options to resume (batch size and world size may differ)."
                )
        try:
            epoch = int(state["epoch"])
            if "position" in state:
                position = int(state["position"])
            else:  # a state from before positions: same geometry was required then
                stride = int(state["batch_size"]) * int(state.get("world_size", 1))
                position = min(int(state["batches_yielded"]) * stride, length)
        except (KeyError, TypeError, ValueError) as exc:
            raise ResumeError(f"not a pixpack loader state (missing or bad {exc}).") from exc
        if epoch < 0 or not 0 <= position <= length:
            raise ResumeError(
                f"loader state position {position} of epoch {epoch} is outside this loader's "
                f"epoch of {length} samples; was it saved for other data?"
            )
        same_geometry = all(
            state.get(k) == config.get(k) for k in ("batch_size", "world_size", "rank")
        )
        self.next_epoch, self.resume_position = epoch, position
        # This rank's count carries over when the geometry is the same; otherwise its
        # share of the positions done.
        self.resume_samples = (
            int(state.get("samples_yielded", 0))
            if same_geometry
            else position // max(1, int(config.get("world_size", 1)))
        )
        self.current_epoch, self.yielded, self.samples = -1, 0, 0
        self.finished = self.superseded = False
