"""The escape hatch: run any torchvision v2 transform (or callable) per sample.

Slow compared with the native ops (a tensor round-trip plus Python per sample, and
calls are serialised by a lock), so use it for the odd transform pixpack lacks.

Determinism: torchvision transforms draw from torch's *global* generator. So the seed
is drawn from the sample's injected generator in ``make_params``, and ``apply`` runs
``fn`` under a process-wide lock inside ``torch.random.fork_rng()`` after
``torch.manual_seed(seed)``: the result depends only on ``(seed, epoch, index)`` and
the caller's global torch RNG state is left as it was.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import UsageError
from .base import Shape

__all__ = ["PythonOp"]

# torch's global RNG is process-wide, so seeded calls must not interleave.
_TORCH_RNG_LOCK = threading.Lock()


@dataclass(frozen=True)
class PythonOp:
    """Wrap ``fn(tensor_chw) -> tensor_chw`` (e.g. ``torchvision.transforms.v2.RandomErasing()``).

    ``fn`` gets a CHW ``torch.Tensor`` of the image's dtype (uint8/uint16) and may
    return a CHW tensor, an HWC numpy array or a PIL image. ``size``: the ``(h, w)``
    ``fn`` outputs if it changes the size (default: assumed to keep the shape).
    ``fn`` must be picklable for multi-process use (a module-level function or a
    torchvision transform, not a lambda).
    """

    fn: Callable[[Any], Any]
    size: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if not callable(self.fn):
            raise UsageError(f"PythonOp: fn must be callable (got {type(self.fn).__name__}).")
        if self.size is not None:
            s = self.size
            if not (
                isinstance(s, tuple)
                and len(s) == 2
                and all(isinstance(v, int) and v > 0 for v in s)
            ):
                raise UsageError(
                    f"PythonOp: size must be None or an (h, w) pair of positive ints (got {s!r})."
                )

    def make_params(self, rng: np.random.Generator, shape: Shape) -> int:
        return int(rng.integers(0, 2**63 - 1))

    def apply(self, image: np.ndarray, params: int) -> np.ndarray:
        import torch  # lazy: the core ops do not need torch

        arr = np.ascontiguousarray(image)
        if not arr.flags.writeable:  # a view of the read-only map: torch would warn
            arr = arr.copy()
        tensor = torch.from_numpy(arr).permute(2, 0, 1)
        with _TORCH_RNG_LOCK, torch.random.fork_rng(devices=[]):
            torch.manual_seed(params)
            result = self.fn(tensor)
        return _to_hwc(result, image.dtype)

    def output_shape(self, shape: Shape) -> Shape:
        return shape if self.size is None else (self.size[0], self.size[1], shape[2])


def _to_hwc(result: Any, dtype: np.dtype) -> np.ndarray:
    if isinstance(result, np.ndarray):
        arr = result
    elif hasattr(result, "permute"):  # torch.Tensor (or a tv_tensors.Image)
        t = result.detach().cpu()
        arr = t.permute(1, 2, 0).contiguous().numpy() if t.ndim == 3 else t.numpy()
    else:  # PIL image
        arr = np.asarray(result)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.dtype != dtype:
        raise UsageError(
            f"PythonOp: fn returned {arr.dtype} pixels for a {dtype} image; keep the dtype "
            "(convert to float with ToOutput, not inside the pipeline)."
        )
    return arr
