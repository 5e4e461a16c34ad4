"""What a batch becomes for the caller: NumPy arrays or torch tensors.

The loader core fills :class:`~.buffers.BatchBuffer` NumPy memory and knows no
framework; an output adapter only wraps that memory (no copy) and drops failed
samples. ``"numpy"`` never imports torch; ``"torch"`` imports it on first use.
TF and JAX build on ``"numpy"`` (:mod:`pixpack.tf`, :mod:`pixpack.jax`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import UsageError
from ..optional import require
from .buffers import Allocate, BatchBuffer, Cast
from .convert import OutputSpec

__all__ = ["OUTPUTS", "NumpyOutput", "TorchOutput", "make_output", "device_for", "require_torch"]

OUTPUTS = ("torch", "numpy")


class NumpyOutput:
    """``(images, labels)`` as NumPy arrays over the buffer's memory (int64 labels).

    bfloat16 batches are ``ml_dtypes.bfloat16`` arrays (the dtype JAX and TF use)."""

    name = "numpy"

    def __init__(self, spec: OutputSpec) -> None:
        self._bf16: Any = None
        if spec.dtype == "bfloat16":
            ml_dtypes = require("ml_dtypes", "dtype='bfloat16' NumPy batches")
            self._bf16 = np.dtype(ml_dtypes.bfloat16)

    def allocator(self, pin: bool) -> Allocate | None:
        return None

    def bfloat16_cast(self) -> Cast | None:
        bf16 = self._bf16
        if bf16 is None:
            return None

        def cast(dst: np.ndarray, src: np.ndarray) -> None:
            dst.view(bf16)[...] = src  # ml_dtypes rounds to nearest even, like torch

        return cast

    def deliver(self, buf: BatchBuffer, fresh: bool) -> tuple[np.ndarray, np.ndarray]:
        n = buf.size
        images = buf.layout_view(n)
        if self._bf16 is not None:
            images = images.view(self._bf16)
        labels = buf.labels_np[:n]
        ok = buf.ok[:n]
        if not ok.all():
            keep = np.flatnonzero(ok)
            return images[keep], labels[keep]  # fancy indexing copies
        if fresh:
            return images.copy(order="K"), labels.copy()
        return images, labels


class TorchOutput:
    """``(images, labels)`` as torch tensors sharing the buffer's memory
    (``torch.from_numpy``, which keeps the buffer referenced while a tensor or any
    view of it lives); ``channels_last`` is torch's memory format."""

    name = "torch"

    def __init__(self, spec: OutputSpec) -> None:
        self.torch = require_torch()
        self.spec = spec

    def allocator(self, pin: bool) -> Allocate | None:
        if not pin:
            return None
        torch = self.torch

        def pinned(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
            nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
            raw = torch.empty(max(1, nbytes), dtype=torch.uint8, pin_memory=True)
            return raw.numpy()[:nbytes].view(dtype).reshape(shape)  # keeps ``raw`` alive

        return pinned

    def bfloat16_cast(self) -> Cast:
        torch = self.torch

        def cast(dst: np.ndarray, src: np.ndarray) -> None:
            torch.from_numpy(dst).view(torch.bfloat16).copy_(torch.from_numpy(src))

        return cast

    def tensor(self, array: np.ndarray) -> Any:
        """A tensor over ``array``'s memory, in the spec's dtype."""
        t = self.torch.from_numpy(array)
        return t.view(self.torch.bfloat16) if self.spec.dtype == "bfloat16" else t

    def deliver(self, buf: BatchBuffer, fresh: bool) -> tuple[Any, Any]:
        torch = self.torch
        n = buf.size
        images = self.tensor(buf.storage[:n])
        if self.spec.layout == "channels_last":
            images = images.permute(0, 3, 1, 2)  # NCHW shape over NHWC memory
        labels = torch.from_numpy(buf.labels_np[:n])
        ok = buf.ok[:n]
        if not ok.all():
            # Indexing, not index_select: that one returns NCHW memory for channels_last.
            keep = torch.from_numpy(np.flatnonzero(ok))
            return images[keep], labels[keep]
        if fresh:
            return images.clone(memory_format=torch.preserve_format), labels.clone()
        return images, labels


def make_output(output: str, spec: OutputSpec) -> NumpyOutput | TorchOutput:
    if output == "numpy":
        return NumpyOutput(spec)
    if output == "torch":
        return TorchOutput(spec)
    raise UsageError(
        f"output must be one of {OUTPUTS} (got {output!r}); for TensorFlow use "
        "pixpack.tf.dataset(...), for JAX pixpack.jax.loader(...)."
    )


def device_for(output: str, device: str) -> Any:
    """The CUDA device, or None for the CPU; only the torch output moves batches."""
    if output != "torch":
        if device != "cpu":
            raise UsageError(
                f"device={device!r} needs output='torch'; NumPy batches stay on the CPU "
                "(pixpack.jax.loader(..., sharding=...) places batches on JAX devices)."
            )
        return None
    require_torch()  # before .device, which imports torch at the top
    from .device import cuda_device

    return cuda_device(device)


def require_torch() -> Any:
    return require(
        "torch", "pixpack.Loader's default output (torch tensors; output='numpy' does not)"
    )
