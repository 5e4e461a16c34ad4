"""The last step: Normalize and the batch's dtype/layout (fused by the loader).

``Normalize(mean, std)`` uses torchvision's convention: values in [0, 1] units, i.e.
it acts on ``ToDtype(float32, scale=True)`` output. The loader does not run it as a
separate pass: :func:`normalize_into` folds the integer-to-float scale and
``(x - mean) / std`` into one ``x * alpha + beta`` per channel, written straight into
a slice of the batch buffer. :class:`ToOutput` says what that buffer holds.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from ..errors import UsageError
from . import kernels as K
from .base import Shape

__all__ = ["Normalize", "ToOutput", "normalize_into", "DTYPES", "LAYOUTS"]

DTYPES = ("float32", "float16", "bfloat16", "uint8", "int32")
LAYOUTS = ("NCHW", "NHWC", "channels_last")  # channels_last: NHWC memory, the torch name


def _floats(name: str, values: Any) -> tuple[float, ...]:
    if isinstance(values, (int, float)):
        values = (values,)
    if not (
        isinstance(values, Sequence)
        and 1 <= len(values) <= 255
        and all(isinstance(v, (int, float)) for v in values)
    ):
        raise UsageError(
            f"Normalize: {name} must be 1-255 numbers, one per channel (got {values!r})."
        )
    return tuple(float(v) for v in values)


@dataclass(frozen=True)
class Normalize:
    """``(x / max_value - mean) / std`` per channel: mean/std in [0, 1] units for 8- and
    16-bit pixels (as torchvision), in the pixels' own units for int16 and float32."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "mean", _floats("mean", self.mean))
        object.__setattr__(self, "std", _floats("std", self.std))
        if any(s <= 0 for s in self.std):
            raise UsageError(f"Normalize: std must be positive (got {self.std!r}).")

    def check_units(self, pixel_dtype: Any) -> None:
        """Refuse 0-255 values for unsigned pixels (the loader calls this once it knows
        the pixel type: HU or float pixels have means far above 1)."""
        if np.dtype(pixel_dtype).kind == "u" and any(m > 1 for m in self.mean):
            mean = tuple(round(m / 255, 3) for m in self.mean)
            std = tuple(round(v / 255, 3) for v in self.std)
            raise UsageError(
                f"Normalize: mean and std are in [0, 1] units, as in torchvision (got "
                f"mean={self.mean!r}, which looks like 0-255 units); divide both by 255: "
                f"Normalize({mean}, {std})."
            )

    def make_params(self, rng: np.random.Generator, shape: Shape) -> None:
        return None

    def apply(self, image: np.ndarray, params: None = None) -> np.ndarray:
        """Reference path: float32 HWC (the loader uses :func:`normalize_into`)."""
        out = np.empty(image.shape, np.float32)
        return normalize_into(image, out, self.mean, self.std, layout="NHWC")

    def output_shape(self, shape: Shape) -> Shape:
        return shape


@dataclass(frozen=True)
class ToOutput:
    """The batch the loader yields: ``dtype`` and ``layout``.

    dtype: ``"float32"``, ``"float16"``, ``"bfloat16"`` (scaled to [0, 1], then
        Normalize if the pipeline has one; int16 and float32 pixels keep their values),
        ``"uint8"`` (the pixels as stored: a uint16 pack stays uint16, int16 stays
        int16) or ``"int32"`` (integer pixels as int32, a type every torch reduction
        supports: 16-bit data without ``torch.uint16``'s gaps); Normalize is not allowed
        with the last two.
    layout: ``"NCHW"`` (contiguous, torchvision's), ``"channels_last"`` (shape
        ``(N, C, H, W)`` over contiguous ``(N, H, W, C)`` memory: torch's channels_last
        format) or ``"NHWC"`` (the same memory with shape ``(N, H, W, C)``).
    """

    dtype: str = "float32"
    layout: str = "NCHW"

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise UsageError(f"ToOutput: dtype must be one of {DTYPES} (got {self.dtype!r}).")
        if self.layout not in LAYOUTS:
            raise UsageError(f"ToOutput: layout must be one of {LAYOUTS} (got {self.layout!r}).")

    @property
    def channels_first(self) -> bool:
        return self.layout == "NCHW"

    def sample_shape(self, shape: Shape) -> tuple[int, int, int]:
        h, w, c = shape
        return (c, h, w) if self.channels_first else (h, w, c)

    def numpy_dtype(self, pixel_dtype: Any = np.uint8) -> np.dtype:
        """Storage dtype of the buffer (bfloat16 is stored as its uint16 bit pattern)."""
        if self.dtype == "uint8":
            return np.dtype(pixel_dtype)
        if self.dtype == "int32":
            return np.dtype(np.int32)
        return np.dtype(np.uint16 if self.dtype == "bfloat16" else self.dtype)

    def write(
        self, src: np.ndarray, dst: np.ndarray, normalize: Normalize | None = None
    ) -> np.ndarray:
        """Write one HWC sample into ``dst`` (one sample's slice of the batch buffer)."""
        layout = "NCHW" if self.channels_first else "NHWC"
        if self.dtype in ("uint8", "int32"):
            if normalize is not None:
                raise UsageError(
                    f"ToOutput(dtype={self.dtype!r}) cannot hold normalized values; use a "
                    "float dtype."
                )
            if self.dtype == "int32":
                np.copyto(dst, src.transpose(2, 0, 1) if self.channels_first else src)
            elif self.channels_first:
                if src.shape[2] == 1:
                    np.copyto(dst[0], src[:, :, 0])
                else:
                    cv2.split(K.as_cv(src), list(dst))
            else:
                np.copyto(dst, src)
            return dst
        mean, std = (normalize.mean, normalize.std) if normalize is not None else ((0.0,), (1.0,))
        return normalize_into(src, dst, mean, std, layout=layout, bfloat16=self.dtype == "bfloat16")


def _affine(
    src: np.ndarray, mean: Sequence[float], std: Sequence[float], scale: float | None
) -> tuple[list[float], list[float]]:
    c = src.shape[2]
    if scale is None:
        scale = 1.0 / K.max_value(src.dtype)
    mean = list(mean) * c if len(mean) == 1 else list(mean)
    std = list(std) * c if len(std) == 1 else list(std)
    if len(mean) != c or len(std) != c:
        raise UsageError(
            f"Normalize has {len(mean)} means and {len(std)} stds for a {c}-channel image; "
            "give one per channel."
        )
    return [scale / s for s in std], [-m / s for m, s in zip(mean, std, strict=False)]


@functools.lru_cache(maxsize=64)
def _lut16(alpha: float, beta: float, bfloat16: bool) -> np.ndarray:
    """uint8 -> float16/bfloat16 bit patterns (exactly rounded), as a cv2.LUT table."""
    values = np.arange(256, dtype=np.float64) * alpha + beta
    if not bfloat16:
        return values.astype(np.float16).view(np.uint16).reshape(1, 256)
    return _bf16_bits(values.astype(np.float32)).reshape(1, 256)


def _bf16_bits(f32: np.ndarray) -> np.ndarray:
    bits = f32.view(np.uint32)
    return (
        (bits + np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16)
    ).astype(np.uint16)


def normalize_into(
    src: np.ndarray,
    dst: np.ndarray,
    mean: Sequence[float],
    std: Sequence[float],
    *,
    layout: str = "NCHW",
    scale: float | None = None,
    bfloat16: bool = False,
) -> np.ndarray:
    """``dst = (src * scale - mean) / std`` per channel; ``src`` HWC uint8/uint16.

    ``dst`` is ``(C, H, W)`` for ``layout="NCHW"`` or ``(H, W, C)`` for ``"NHWC"``, of
    float32 or float16, or uint16 holding bfloat16 bits when ``bfloat16=True`` (pass
    ``tensor.view(torch.int16).numpy().view(np.uint16)``). ``scale`` defaults to
    1/255 or 1/65535. One cv2 pass per channel (GIL released); float16/bfloat16 from
    uint8 go through an exactly rounded 256-entry table.
    """
    alpha, beta = _affine(src, mean, std, scale)
    c = src.shape[2]
    planes = [src[:, :, 0]] if c == 1 else cv2.split(K.as_cv(src))
    chw = layout == "NCHW"
    if dst.dtype == np.float32 and not bfloat16:
        if chw:
            for i in range(c):
                cv2.addWeighted(
                    planes[i], alpha[i], planes[i], 0.0, beta[i], dst=dst[i], dtype=cv2.CV_32F
                )
        else:
            res = [
                cv2.addWeighted(p, a, p, 0.0, b, dtype=cv2.CV_32F)
                for p, a, b in zip(planes, alpha, beta, strict=False)
            ]
            cv2.merge(res, dst=dst) if c > 1 else np.copyto(dst[:, :, 0], res[0])
        return dst
    if dst.dtype not in (np.float16, np.uint16, np.int16):
        raise UsageError(
            f"normalize_into: dst must be float32, float16 or bfloat16 bits (got {dst.dtype})."
        )
    bits = dst.view(np.uint16)
    out = []
    for p, a, b in zip(planes, alpha, beta, strict=False):
        if src.dtype == np.uint8:
            out.append(cv2.LUT(p, _lut16(a, b, bfloat16)))
        else:
            f32 = cv2.addWeighted(p, a, p, 0.0, b, dtype=cv2.CV_32F)
            out.append(_bf16_bits(f32) if bfloat16 else f32.astype(np.float16).view(np.uint16))
    if chw:
        for i in range(c):
            np.copyto(bits[i], out[i])
    elif c > 1:
        cv2.merge(out, dst=bits)
    else:
        np.copyto(bits[:, :, 0], out[0])
    return dst
