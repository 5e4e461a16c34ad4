"""Batch memory, framework-neutral: NumPy arrays that workers fill in place.

Allocating a fresh 64x3x224x224 float32 batch (38 MB) per step costs page faults on
every batch; like FFCV, the loader instead keeps a few buffers and rewrites them
(:mod:`.ring` decides when a buffer may be rewritten). Workers write into ``work``;
an output adapter (:mod:`.outputs`) turns ``storage`` into the batch the caller gets,
as NumPy arrays or as torch tensors over the same memory.

float16/bfloat16 outputs are computed in a float32 ``work`` array and cast once per
chunk by :meth:`BatchBuffer.finish_chunk` (NumPy has no bfloat16: those are stored
as their uint16 bit patterns, which the adapter views as ``torch.bfloat16`` or
``ml_dtypes.bfloat16``; float32 math is exact enough that the cast is the only
rounding).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from .convert import OutputSpec

__all__ = ["BatchBuffer", "storage_dtype", "aligned_empty", "Allocate", "Cast"]

# TensorFlow and JAX share (rather than copy) host memory aligned to 64 bytes, Eigen's
# and XLA's alignment; np.empty gives 16 (glibc's). A TF batch from 64-byte aligned
# memory measured 3.4 ms instead of 13.6 ms per 38.5 MB batch (no copy).
ALIGN = 64

# shape, dtype -> a writable C-contiguous array (np.empty, or pinned memory for CUDA)
Allocate = Callable[[tuple[int, ...], np.dtype], np.ndarray]
# (destination bits, float32 source) -> None: the float32 -> bfloat16 rounding
Cast = Callable[[np.ndarray, np.ndarray], None]

_STORED = {"float32": np.float32, "float16": np.float16, "bfloat16": np.uint16, "int32": np.int32}


def storage_dtype(spec: OutputSpec) -> np.dtype:
    """The NumPy dtype of a batch's memory: the pixels as stored for ``"uint8"``
    outputs (uint8/uint16/int16/float32), uint16 bit patterns for bfloat16."""
    if spec.dtype == "uint8":
        return np.dtype(spec.pixel_dtype)
    return np.dtype(_STORED[spec.dtype])


class BatchBuffer:
    """One batch's memory: ``work`` (written by workers), ``storage`` and
    ``labels_np`` (what the batch is made of), ``ok`` (which samples succeeded).

    ``held()`` says whether anything outside the loader still references the
    memory: every NumPy view, ``torch.from_numpy`` tensor, DLPack capsule, TF or
    JAX array made from it keeps a reference to ``storage`` (or ``labels_np``),
    so a buffer nobody holds is safe to rewrite.
    """

    def __init__(
        self,
        spec: OutputSpec,
        batch_size: int,
        *,
        allocate: Allocate | None = None,
        cast: Cast | None = None,
    ) -> None:
        allocate = allocate or aligned_empty
        self.spec = spec
        shape = (batch_size, *spec.sample_shape())
        self.storage = allocate(shape, storage_dtype(spec))
        if spec.dtype in ("float32", "uint8", "int32"):
            self.work = self.storage
            self._cast: Cast | None = None
        else:
            self.work = np.empty(shape, np.float32)
            self._cast = cast if spec.dtype == "bfloat16" else _to_float16
        self.labels_np = allocate((batch_size,), np.dtype(np.int64))
        self.ok = np.ones(batch_size, dtype=bool)
        self.size = 0  # samples of the current batch
        self.failures: list[tuple[int, BaseException]] = []  # (index, error) skipped
        self.event: Any = None  # CUDA event guarding reuse while a copy reads this buffer
        # NumPy points every view's ``base`` at the array that owns the memory (not at
        # the view it was sliced from), so references are counted on the owners; the
        # counts now are the loader's own (attributes, views, getrefcount's argument).
        self._owners = (_owner(self.storage), _owner(self.labels_np))
        self._own = self._counts()

    def finish_chunk(self, start: int, stop: int) -> None:
        """Cast ``work[start:stop]`` into the output dtype (float16/bfloat16 only)."""
        if self._cast is not None:
            self._cast(self.storage[start:stop], self.work[start:stop])

    def _counts(self) -> tuple[int, int]:
        return sys.getrefcount(self._owners[0]), sys.getrefcount(self._owners[1])

    def held(self) -> bool:
        """Whether a batch made from this buffer is still referenced by the caller."""
        return self._counts() != self._own

    def layout_view(self, count: int) -> np.ndarray:
        """The first ``count`` samples in the spec's layout: ``channels_last`` is the
        ``(N, C, H, W)`` view of NHWC memory."""
        images = self.storage[:count]
        return images.transpose(0, 3, 1, 2) if self.spec.layout == "channels_last" else images


def _owner(array: np.ndarray) -> np.ndarray:
    """The ndarray that owns ``array``'s memory (the last ndarray of its ``base``s)."""
    while isinstance(array.base, np.ndarray):
        array = array.base
    return array


def aligned_empty(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """``np.empty(shape, dtype)`` starting on an :data:`ALIGN`-byte boundary (a view
    of a slightly larger array, which it keeps alive as its base)."""
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    raw = np.empty(nbytes + ALIGN, np.uint8)
    start = -raw.ctypes.data % ALIGN
    return raw[start : start + nbytes].view(dtype).reshape(shape)


def _to_float16(dst: np.ndarray, src: np.ndarray) -> None:
    np.copyto(dst, src, casting="same_kind")  # round to nearest even, like torch
