"""The last step of every sample: channels, Normalize, dtype and layout in one pass.

The pipeline's output (HWC uint8/uint16 pixels) is written straight into its slot of a
preallocated batch buffer. ``Normalize`` is not run as a separate op: its per-channel
``(x - mean) / std`` is folded into the integer-to-float conversion as
``x * alpha + beta``.

The native kernel ``pixpack._native._store`` does all of it (deinterleave, multiply-add,
layout) in one vectorised pass and one GIL release, and reads any strides, so the
loader hands it trailing flips as free views (``img[:, ::-1]``). Without the extension,
OpenCV's ``split`` + ``addWeighted`` per channel plane do the same (~1.7x slower, and
four GIL round trips per sample instead of one).

Layouts: ``"NCHW"`` buffers are contiguous ``(N, C, H, W)``; ``"channels_last"``
buffers are contiguous ``(N, H, W, C)`` handed out as the ``(N, C, H, W)`` view that
torch calls ``memory_format=torch.channels_last``; ``"NHWC"`` hands the same memory
out with the ``(N, H, W, C)`` shape.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import PipelineError, UsageError
from .validate import FIX

try:
    from .._native._store import store as _native_store
except ImportError:  # no C compiler at install time: the OpenCV path below
    _native_store = None

__all__ = ["OutputSpec", "DTYPES", "LAYOUTS", "native_store_available", "write_sample"]


def native_store_available() -> bool:
    """Whether the fused native store (and so free view flips) is in use."""
    return _native_store is not None


DTYPES = ("float32", "float16", "bfloat16", "uint8", "int32")
LAYOUTS = ("NCHW", "channels_last", "NHWC")


@dataclass(frozen=True)
class OutputSpec:
    """What a batch looks like: ``(height, width, channels)``, dtype, layout and the
    fused affine map ``x * alpha[c] + beta[c]`` (float outputs only).

    ``work_dtype`` is the numpy dtype the per-sample kernels write: float32 for every
    float output (float16/bfloat16 are cast once per chunk), the pixel dtype for
    ``"uint8"`` outputs ("the pixels as stored": a uint16 pack stays uint16, int16
    stays int16), int32 for ``"int32"`` (the stored values, in a type torch reduces).
    """

    height: int
    width: int
    channels: int
    dtype: str
    layout: str
    pixel_dtype: np.dtype
    alpha: tuple[float, ...]
    beta: tuple[float, ...]

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise UsageError(f"dtype must be one of {DTYPES} (got {self.dtype!r}).")
        if self.layout not in LAYOUTS:
            raise UsageError(f"layout must be one of {LAYOUTS} (got {self.layout!r}).")

    @property
    def is_float(self) -> bool:
        return self.dtype not in ("uint8", "int32")

    @property
    def work_dtype(self) -> np.dtype:
        if self.dtype == "int32":
            return np.dtype(np.int32)
        return np.dtype(np.float32) if self.is_float else self.pixel_dtype

    def sample_shape(self, layout: str | None = None) -> tuple[int, int, int]:
        """One sample's shape in the buffer for ``layout`` (default: this spec's)."""
        if (layout or self.layout) == "NCHW":
            return (self.channels, self.height, self.width)
        return (self.height, self.width, self.channels)


def affine(
    channels: int,
    pixel_dtype: np.dtype,
    mean: tuple[float, ...] | None,
    std: tuple[float, ...] | None,
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """``alpha, beta`` with ``x * alpha + beta == (x / max_value - mean) / std``.

    ``mean``/``std`` are in [0, 1] units (torchvision's convention); without them the
    output is just scaled to [0, 1] (like ``ToDtype(float32, scale=True)``). Unsigned
    pixels are scaled by their maximum (255, 65535); int16 (e.g. Hounsfield units) and
    float32 pixels keep their values (``max_value`` 1): their mean/std are in the
    pixels' own units, and an intensity op (``WindowLevel``, ``ScaleIntensityRange``)
    is how they are brought to [0, 1].
    """
    peak = float(np.iinfo(pixel_dtype).max) if np.dtype(pixel_dtype).kind == "u" else 1.0
    mean = tuple(mean) if mean is not None else (0.0,)
    std = tuple(std) if std is not None else (1.0,)
    if len(mean) == 1:
        mean = mean * channels
    if len(std) == 1:
        std = std * channels
    if len(mean) != channels or len(std) != channels:
        raise UsageError(
            f"Normalize has {len(mean)} means and {len(std)} stds but the output has "
            f"{channels} channels; give one value per channel."
        )
    alpha = tuple(1.0 / (peak * s) for s in std)
    beta = tuple(-m / s for m, s in zip(mean, std, strict=True))
    return alpha, beta


def write_sample(
    img: np.ndarray, dst: np.ndarray, spec: OutputSpec, planes: list[np.ndarray]
) -> None:
    """Write one HWC pipeline output into ``dst`` (one sample of a work buffer).

    ``dst`` is ``(C, H, W)`` or ``(H, W, C)`` of ``spec.work_dtype``; ``img`` may have
    any strides. ``planes`` is a per-task scratch list of ``spec.channels`` 2-D arrays of
    ``img``'s dtype (used by the OpenCV path only, so its split allocates nothing). Gray
    inputs are replicated to every channel.
    """
    if _native_store is not None:
        try:
            _native_store(img, dst, spec.alpha, spec.beta, spec.layout == "NCHW")
            return
        except ValueError:
            pass  # a shape mismatch: the checks below name it for the user
    # The common case first, with the fewest Python steps (this runs per sample
    # holding the GIL): a contiguous HWC image of the right size into NCHW floats.
    shape = img.shape
    if (
        len(shape) == 3
        and shape[2] == spec.channels
        and shape[2] > 1
        and shape[0] == spec.height
        and shape[1] == spec.width
        and spec.layout == "NCHW"
        and spec.is_float
        and planes[0].dtype == img.dtype
        and img.flags.c_contiguous
    ):
        cv2.split(img, planes)
        alpha, beta, f32 = spec.alpha, spec.beta, cv2.CV_32F
        for c, plane in enumerate(planes):
            cv2.addWeighted(plane, alpha[c], plane, 0.0, beta[c], dst=dst[c], dtype=f32)
        return
    if img.ndim == 2:
        img = img[:, :, None]
    src_c = img.shape[2]
    out_c = spec.channels
    if img.shape[0] != spec.height or img.shape[1] != spec.width or src_c not in (1, out_c):
        got = "x".join(map(str, img.shape))
        want = "x".join(map(str, spec.sample_shape("channels_last")))
        if src_c not in (1, out_c):
            raise PipelineError(
                f"the pipeline produced a {got} image but the batch holds {want} "
                f"({out_c} channels); make every sample come out with {out_c} channels"
            )
        raise PipelineError(
            f"the pipeline produced a {got} image but the batch holds {want}: the "
            f"pipeline's output size follows each image; {FIX}"
        )
    chw = dst.shape[0] == out_c and dst.ndim == 3 and spec.layout == "NCHW"
    if not spec.is_float:
        if chw:
            if src_c == 1:
                dst[:] = img[:, :, 0]
            elif dst.dtype == img.dtype:
                cv2.split(np.ascontiguousarray(img), [dst[c] for c in range(out_c)])
            else:  # int32 planes of 8/16-bit pixels: cv2.split would write new arrays
                dst[:] = img.transpose(2, 0, 1)
        else:
            dst[:] = img  # broadcasts a gray image over the channels
        return
    alpha, beta = spec.alpha, spec.beta
    if src_c == 1:
        sources = [np.ascontiguousarray(img[:, :, 0])] * out_c
    else:
        if planes[0].dtype != img.dtype:
            planes[:] = [np.empty(img.shape[:2], img.dtype) for _ in range(out_c)]
        cv2.split(np.ascontiguousarray(img), planes)
        sources = planes
    if chw:
        for c in range(out_c):
            cv2.addWeighted(
                sources[c], alpha[c], sources[c], 0.0, beta[c], dst=dst[c], dtype=cv2.CV_32F
            )
    else:
        for c in range(out_c):
            # A strided channel of the HWC destination: numpy handles the stride.
            np.multiply(sources[c], np.float32(alpha[c]), out=dst[:, :, c], dtype=np.float32)
            dst[:, :, c] += np.float32(beta[c])
