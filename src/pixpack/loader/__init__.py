"""The batch loader: threads, preallocated buffers, deterministic order and resume."""

from .loader import Loader
from .ordering import batch_slices, epoch_order, shard

__all__ = ["Loader", "epoch_order", "shard", "batch_slices"]
