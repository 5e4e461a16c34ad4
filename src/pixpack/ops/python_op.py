"""The escape hatch: run any torchvision v2 transform (or callable) per sample.

Slow compared with the native ops (a tensor round-trip plus Python per sample, and
calls are serialised by a lock), so use it for the odd transform pixpack lacks.

Determinism: torchvision transforms draw from torch's *global* generator, albumentations
and hand-written callables from Python's ``random`` and NumPy's global generator. So
the seed is drawn from the sample's injected generator in ``make_params``, and ``apply``
runs ``fn`` under a process-wide lock with all three seeded from it
(:func:`seeded_globals`: torch inside ``torch.random.fork_rng()``, ``random`` and
``np.random`` saved and restored): the result depends only on ``(seed, epoch, index)``
and the caller's global RNG states are left as they were. This is the one place
pixpack touches global RNGs, on purpose: the code it runs reads them. A plain callable
put into a Loader's pipeline runs the same way (:class:`SeededCall`).
"""

from __future__ import annotations

import contextlib
import random
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import PipelineError, UsageError
from ..optional import require
from .base import Shape

__all__ = ["PythonOp", "SeededCall", "seeded_globals"]

# Global RNGs are process-wide, so seeded calls must not interleave.
_GLOBAL_RNG_LOCK = threading.Lock()


@contextlib.contextmanager
def seeded_globals(seed: int) -> Iterator[None]:
    """Python's ``random``, NumPy's global generator and torch's CPU generator (where
    torch is imported) seeded from ``seed`` for the block, under a process-wide lock;
    their states are restored."""
    # Code that draws from torch's generator imported torch before it runs (its module
    # did), so torch is seeded only where it is already loaded: never imported here.
    torch = sys.modules.get("torch")
    fork = torch.random.fork_rng(devices=[]) if torch is not None else contextlib.nullcontext()
    with _GLOBAL_RNG_LOCK, fork:
        py_state, np_state = random.getstate(), np.random.get_state()
        random.seed(seed)
        np.random.seed(seed & 0xFFFFFFFF)
        if torch is not None:
            torch.manual_seed(seed)
        try:
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)


def _draw_seed(rng: np.random.Generator) -> int:
    return int(rng.integers(0, 2**63 - 1))


@dataclass(frozen=True)
class SeededCall:
    """A plain callable ``fn(hwc_ndarray) -> hwc_ndarray`` run with the global RNGs
    seeded per sample (the Loader wraps plain callables of a pipeline in it)."""

    fn: Callable[[np.ndarray], Any]

    def make_params(self, rng: np.random.Generator, shape: Shape) -> int:
        return _draw_seed(rng)

    def apply(self, image: np.ndarray, params: int) -> np.ndarray:
        with seeded_globals(params):
            return np.asarray(self.fn(image))


@dataclass(frozen=True)
class PythonOp:
    """Wrap ``fn(tensor_chw) -> tensor_chw`` (e.g. ``torchvision.transforms.v2.RandomErasing()``).

    ``fn`` gets a CHW ``torch.Tensor`` of the image's dtype (uint8/uint16) and may
    return a CHW tensor, an HWC numpy array or a PIL image; with ``layout="HWC"`` it
    gets a writable HWC NumPy array instead (albumentations, OpenCV code). ``size``: the
    ``(h, w)`` ``fn`` outputs if it changes the size (default: assumed to keep the shape).
    ``fn`` must be picklable for multi-process use (a module-level function or a
    torchvision transform, not a lambda). ``layout="CHW"`` needs torch
    (``pip install 'pixpack[torch]'``); ``"HWC"`` does not.
    """

    fn: Callable[[Any], Any]
    size: tuple[int, int] | None = None
    layout: str = "CHW"

    def __post_init__(self) -> None:
        if not callable(self.fn):
            raise UsageError(f"PythonOp: fn must be callable (got {type(self.fn).__name__}).")
        if self.layout not in ("CHW", "HWC"):
            raise UsageError(
                f"PythonOp: layout must be 'CHW' (a torch tensor) or 'HWC' (a NumPy array) "
                f"(got {self.layout!r})."
            )
        if self.layout == "CHW":  # fail here, not in a worker thread at the first batch
            require("torch", "PythonOp(layout='CHW') (layout='HWC' passes NumPy arrays)")
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
        return _draw_seed(rng)

    def apply(self, image: np.ndarray, params: int) -> np.ndarray:
        arr = np.ascontiguousarray(image)
        if not arr.flags.writeable:  # a view of the read-only map: torch would warn
            arr = arr.copy()
        if self.layout == "HWC":
            given: Any = arr
        else:
            import torch  # checked in __post_init__; lazy: the core ops do not need torch

            given = torch.from_numpy(arr).permute(2, 0, 1)
        with seeded_globals(params):
            result = self.fn(given)
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
        raise PipelineError(
            f"PythonOp: fn returned {arr.dtype} pixels for a {dtype} image; keep the dtype "
            "(convert to float with ToOutput, not inside the pipeline)."
        )
    return arr
