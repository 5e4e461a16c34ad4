"""Preallocated batch buffers, reused in a ring.

Allocating a fresh 64x3x224x224 float32 batch (38 MB) per step costs page faults on
every batch; like FFCV, the loader instead keeps ``prefetch + 1`` buffers and rewrites
them. Workers write into ``work`` (a numpy array, so no per-sample torch call); the
consumer receives ``images``/``labels``, torch tensors sharing that memory
(``torch.from_numpy`` once per buffer).

Consequence, documented for users: a yielded batch is overwritten once the loader has
moved ``prefetch`` batches past it; ``.clone()`` it to keep it (``reuse_buffers=False``
hands out fresh tensors instead).
"""

from __future__ import annotations

import numpy as np
import torch

from .convert import OutputSpec

__all__ = ["BatchBuffer"]

# "uint8" output: the pixels as stored (B uint8, H uint16, h int16, f float32).
_PIXEL_TORCH = {"B": torch.uint8, "H": torch.uint16, "h": torch.int16, "f": torch.float32}
_TORCH_DTYPES = {
    "int32": torch.int32,
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}


class BatchBuffer:
    """One batch's memory: ``work`` (written by workers), ``images``/``labels`` (yielded).

    ``pin`` allocates page-locked memory (only meaningful, and only used, with CUDA).
    float16/bfloat16 outputs are computed in a float32 ``work`` array and cast once per
    chunk by :meth:`finish_chunk` (numpy has no bfloat16, and float32 math is exact
    enough that the cast is the only rounding).
    """

    def __init__(self, spec: OutputSpec, batch_size: int, *, pin: bool = False) -> None:
        self.spec = spec
        shape = (batch_size, *spec.sample_shape())
        if spec.dtype == "uint8":
            torch_dtype = _PIXEL_TORCH[np.dtype(spec.pixel_dtype).char]
        else:
            torch_dtype = _TORCH_DTYPES[spec.dtype]
        storage = torch.empty(shape, dtype=torch_dtype, pin_memory=pin)
        self.storage = storage
        if spec.dtype in ("float32", "uint8", "int32"):
            self.work = storage.numpy()
            self._cast = False
        else:
            self.work = np.empty(shape, np.float32)
            self._cast = True
        # The yielded view: NCHW shape over NHWC memory for channels_last.
        channels_last = spec.layout == "channels_last"
        self.images = storage.permute(0, 3, 1, 2) if channels_last else storage
        self.labels = torch.empty(batch_size, dtype=torch.int64, pin_memory=pin)
        self.labels_np = self.labels.numpy()
        self.ok = np.ones(batch_size, dtype=bool)
        self.size = 0  # samples of the current batch
        self.failures: list[tuple[int, BaseException]] = []  # (index, error) skipped
        self.event = None  # CUDA event guarding reuse while a copy reads this buffer

    def finish_chunk(self, start: int, stop: int) -> None:
        """Cast ``work[start:stop]`` into the output dtype (float16/bfloat16 only)."""
        if self._cast:
            self.storage[start:stop].copy_(torch.from_numpy(self.work[start:stop]))

    def batch(self, fresh: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """``(images, labels)`` of the current batch, without failed samples."""
        n = self.size
        images, labels = self.images[:n], self.labels[:n]
        ok = self.ok[:n]
        if not ok.all():
            # Indexing, not index_select: that one returns NCHW memory for channels_last.
            keep = torch.from_numpy(np.flatnonzero(ok))
            return images[keep], labels[keep]
        if fresh:
            return images.clone(memory_format=torch.preserve_format), labels.clone()
        return images, labels
