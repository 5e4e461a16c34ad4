"""The contract every pipeline op follows: random parameters apart from pure kernels.

As in torchvision v2, an op first *draws* its parameters (``make_params``, the only
place randomness is used, from an injected generator), then *applies* a deterministic
kernel (``apply``). Because every sample's generator is keyed by
``(seed, epoch, sample index)`` (:func:`sample_rng`), the output never depends on how
many threads ran the pipeline or in which order.

Shapes are ``(height, width, channels)`` of HWC numpy images (uint8 or uint16).
Most ops return their input's dtype; an op that does not (the intensity ops return
float32) says which with ``output_dtype(dtype)`` (see :func:`op_output_dtype`).

Ops that start with a crop (:class:`RegionOp`) expose the source box they read, so
the loader can decode only that region of a JPEG, at a reduced DCT scale, instead of
decoding the whole image and throwing most of it away.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = ["Shape", "Op", "RegionOp", "Region", "sample_rng", "op_output_dtype"]

Shape = tuple[int, int, int]  # (height, width, channels)


_M64 = (1 << 64) - 1


def sample_rng(
    seed: int, epoch: int, index: int, reuse: np.random.Generator | None = None
) -> np.random.Generator:
    """The generator for one sample's random parameters (Philox, keyed, counter-based).

    Philox4x64 keyed by ``(seed, epoch)`` whose 256-bit counter starts at
    ``(0, 0, index, 0)``: every sample reads its own block of the same keyed stream
    (Random123's recipe), so streams of different samples never overlap before 2**128
    draws and the result is a pure function of ``(seed, epoch, index)``.

    ``reuse`` (a Generator over Philox made by an earlier call, owned by one thread)
    is re-keyed in place and returned: a state assignment costs ~1 us where building a
    new Philox costs ~15 us of GIL-held time per sample (it was the largest Python cost
    of the loader's hot path). It draws exactly what a fresh generator would.
    """
    # Plain tuples: the state setter copies word by word, numpy arrays only add cost.
    counter = (0, 0, index & _M64, 0)
    key = (seed & _M64, epoch & _M64)
    if reuse is None:
        return np.random.Generator(np.random.Philox(counter=list(counter), key=list(key)))
    reuse.bit_generator.state = {
        "bit_generator": "Philox",
        "state": {"counter": counter, "key": key},
        "buffer": (0, 0, 0, 0),
        "buffer_pos": 4,
        "has_uint32": 0,
        "uinteger": 0,
    }
    return reuse


@dataclass(frozen=True)
class Region:
    """A source box ``(top, left, height, width)`` resized to ``size=(out_h, out_w)``."""

    top: int
    left: int
    height: int
    width: int
    size: tuple[int, int]


@runtime_checkable
class Op(Protocol):
    """One pipeline step.

    ``make_params`` draws everything random for one sample, given the input shape.
    ``apply`` is deterministic given its params; it may return a view or a new array
    but never modifies its input. ``output_shape`` is the shape ``apply`` returns.
    Implementations are picklable (plain attributes only) and thread-safe.
    """

    def make_params(self, rng: np.random.Generator, shape: Shape) -> Any: ...

    def apply(self, image: np.ndarray, params: Any) -> np.ndarray: ...

    def output_shape(self, shape: Shape) -> Shape: ...


def op_output_dtype(op: Any, dtype: Any) -> np.dtype:
    """The dtype ``op.apply`` returns for an input of ``dtype``: the op's own
    ``output_dtype(dtype)`` where it has one, else ``dtype`` (the dtype is kept)."""
    declared = getattr(op, "output_dtype", None)
    return np.dtype(dtype if declared is None else declared(dtype))


@runtime_checkable
class RegionOp(Op, Protocol):
    """An op that reads one box of its input and resizes it (crops, resizes).

    ``region(params, shape)`` gives the box; ``apply_region(crop, params)`` produces
    the output from the pixels of that box, which may have been decoded at a reduced
    scale (the kernel must resize ``crop`` to ``region.size`` whatever its size).
    ``apply(image, p)`` equals ``apply_region(image[box], p)``.
    """

    def region(self, params: Any, shape: Shape) -> Region: ...

    def apply_region(self, crop: np.ndarray, params: Any) -> np.ndarray: ...
