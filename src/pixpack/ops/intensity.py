"""Intensity ops for scans and scientific images: CT windows, range scaling, bit depth.

Every op here is deterministic (``make_params`` draws nothing and returns None) and
returns **float32** HWC, whatever the input dtype (uint8, uint16, int16 or float32;
any number of channels):

- :class:`WindowLevel` ``(center, width)``, a preset name or several ``windows``:
  ``clip((x - (center - width / 2)) / width, 0, 1)`` (DICOM's LINEAR_EXACT VOI LUT,
  which is also what MONAI's ``ScaleIntensityRange`` gives), or DICOM's LINEAR with
  its -0.5/-1 convention; several windows give one output channel per window and input
  channel.
- :class:`ScaleIntensityRange` ``(a_min, a_max, b_min, b_max, clip)`` and
  :class:`ScaleIntensityRangePercentiles`: MONAI's transforms of the same names,
  computed the same way in float32.
- :class:`ToFloat` ``(bits)``: ``0 .. 2**bits - 1`` to ``0 .. 1`` (signed ``int16``:
  ``x / (2**(bits - 1) - 1)``, torchvision's convention), so 12-bit data fill [0, 1].

The kernels (:func:`window`, :func:`scale_range`, :func:`percentile_range`,
:func:`to_float`) are pure functions. NaN in float32 input stays NaN in the output
(the pixel's own value only: percentiles ignore NaN). Differences from MONAI and
torchvision are listed in docs/ops.md, "Intensity ops".
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import UsageError
from .base import Shape

__all__ = [
    "WINDOW_PRESETS",
    "PIXEL_DTYPES",
    "WindowLevel",
    "ScaleIntensityRange",
    "ScaleIntensityRangePercentiles",
    "ToFloat",
    "window",
    "scale_range",
    "percentile_range",
    "to_float",
]

# (center, width) in Hounsfield units, the values of Radiopaedia's "Windowing (CT)"
# article; subdural as in the RSNA intracranial haemorrhage challenge (within
# Radiopaedia's W 130-300, L 50-100).
WINDOW_PRESETS: dict[str, tuple[float, float]] = {
    "brain": (40.0, 80.0),
    "subdural": (80.0, 200.0),
    "stroke": (40.0, 40.0),
    "lung": (-600.0, 1500.0),
    "mediastinum": (50.0, 350.0),
    "soft_tissue": (50.0, 400.0),
    "liver": (30.0, 150.0),
    "bone": (400.0, 1800.0),
}
PIXEL_DTYPES = ("uint8", "uint16", "int16", "float32")
FUNCTIONS = ("linear_exact", "linear")


def _set(obj: Any, name: str, value: Any) -> None:
    object.__setattr__(obj, name, value)


def _number(op: str, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise UsageError(f"{op}: {name} must be a number (got {value!r}).")
    if not math.isfinite(value):
        raise UsageError(f"{op}: {name} must be finite (got {value!r}).")
    return float(value)


def _check_dtype(op: str, image: np.ndarray) -> None:
    if image.dtype.name not in PIXEL_DTYPES or image.ndim != 3:
        raise UsageError(
            f"{op}: expected an HWC image of {', '.join(PIXEL_DTYPES)} "
            f"(got {image.dtype.name} of shape {image.shape})."
        )


def _planes_view(planes: np.ndarray) -> np.ndarray:
    """``(C, H, W)`` planes as an HWC view (no copy: the loader writes NCHW batches
    plane by plane, and ops that need pixel-contiguous input copy it themselves)."""
    return np.moveaxis(planes, 0, 2)


# --------------------------------------------------------------------------- kernels


def _scale_into(
    out: np.ndarray,
    values: np.ndarray,
    a_min: float,
    a_max: float,
    b_min: float,
    b_max: float,
    clip: bool,
) -> np.ndarray:
    """MONAI's float32 operations, in its order: ``x - a_min``, ``/ (a_max - a_min)``,
    ``* (b_max - b_min)``, ``+ b_min``, then the clip (the degenerate ``a_min ==
    a_max``: ``x - a_min + b_min``). float32 of uint8/uint16/int16 values is exact."""
    np.subtract(values, np.float32(a_min), out=out, dtype=np.float32)
    if a_max == a_min:
        out += np.float32(b_min)
    else:
        out /= np.float32(a_max - a_min)
        if (b_min, b_max) != (0.0, 1.0):  # x * 1 + 0 is x: skipped, still bit-identical
            out *= np.float32(b_max - b_min)
            out += np.float32(b_min)
    if clip:
        np.clip(out, min(b_min, b_max), max(b_min, b_max), out=out)
    return out


def scale_range(
    image: np.ndarray,
    a_min: float,
    a_max: float,
    b_min: float = 0.0,
    b_max: float = 1.0,
    clip: bool = True,
) -> np.ndarray:
    """MONAI's ``ScaleIntensityRange`` in float32: ``(x - a_min) / (a_max - a_min)``,
    then ``* (b_max - b_min) + b_min``, then clipped to the b range if ``clip``.

    The same float32 operations in the same order as MONAI (bit-identical results).
    ``a_min == a_max`` gives ``x - a_min + b_min`` (MONAI's fallback), clipped too
    when ``clip``. ``b_min > b_max`` inverts; clipping is then to ``[b_max, b_min]``.
    """
    out = np.empty(image.shape, np.float32)
    return _scale_into(out, image, a_min, a_max, b_min, b_max, clip)


def _window_into(
    out: np.ndarray, values: np.ndarray, center: float, width: float, function: str
) -> np.ndarray:
    if function == "linear_exact":
        return _scale_into(out, values, center - width / 2, center + width / 2, 0.0, 1.0, True)
    np.subtract(values, np.float32(center - 0.5), out=out, dtype=np.float32)
    if width == 1:  # DICOM's threshold: x > center - 0.5; NaN stays NaN
        out[out > 0] = 1.0
        out[out <= 0] = 0.0
        return out
    out /= np.float32(width - 1)
    out += np.float32(0.5)
    return np.clip(out, 0.0, 1.0, out=out)


def window(
    image: np.ndarray,
    windows: Sequence[tuple[float, float]],
    function: str = "linear_exact",
) -> np.ndarray:
    """float32 in [0, 1]: each ``(center, width)`` window of every channel.

    Output channel ``c * len(windows) + k`` is window ``k`` of input channel ``c``.
    ``linear_exact``: ``clip((x - (center - width / 2)) / width, 0, 1)``.
    ``linear`` (DICOM PS3.3 C.11.2.1.2.1): ``clip((x - (center - 0.5)) / (width - 1)
    + 0.5, 0, 1)``; width 1 is a threshold, ``x > center - 0.5``. Several windows
    return an HWC view of channel planes.
    """
    k = len(windows)
    if k == 1:
        return _window_into(np.empty(image.shape, np.float32), image, *windows[0], function)
    h, w, c = image.shape
    planes = np.empty((c * k, h, w), np.float32)
    for ci in range(c):
        values = image[:, :, ci].astype(np.float32)  # exact; converted once, not k times
        for ki, (center, width) in enumerate(windows):
            _window_into(planes[ci * k + ki], values, center, width, function)
    return _planes_view(planes)


def _lerp(a: float, b: float, t: float) -> float:
    """numpy's linear interpolation (``_lerp``), term for term."""
    diff = b - a
    return b - diff * (1 - t) if t >= 0.5 else a + diff * t


def _int_percentiles(flat: np.ndarray, qs: tuple[float, float]) -> tuple[float, float]:
    """numpy's linear percentiles of 8/16-bit integers from a histogram (O(n), no sort)."""
    keys = flat.view(np.uint16) ^ np.uint16(0x8000) if flat.dtype == np.int16 else flat
    cumulative = np.cumsum(np.bincount(keys, minlength=1 << (8 * flat.itemsize)))
    offset = 0x8000 if flat.dtype == np.int16 else 0
    n = flat.size
    result = []
    for q in qs:
        virtual = (n - 1) * (q / 100)
        below = min(math.floor(virtual), n - 1)
        ranks = np.searchsorted(cumulative, (below, min(below + 1, n - 1)), side="right")
        a, b = (float(r) - offset for r in ranks)
        result.append(_lerp(a, b, virtual - below))
    return result[0], result[1]


def _percentiles(values: np.ndarray, lower: float, upper: float) -> tuple[float, float]:
    """numpy's default (linear) percentiles of ``values``, NaN ignored (all NaN: NaN)."""
    flat = np.ascontiguousarray(values).reshape(-1)
    if flat.dtype != np.float32:
        return _int_percentiles(flat, (lower, upper))
    if np.isnan(flat).any():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slice
            lo, hi = np.nanpercentile(flat, (lower, upper))
    else:
        lo, hi = np.percentile(flat, (lower, upper))
    return float(lo), float(hi)


def percentile_range(
    image: np.ndarray,
    lower: float,
    upper: float,
    b_min: float = 0.0,
    b_max: float = 1.0,
    clip: bool = True,
    relative: bool = False,
    channel_wise: bool = False,
) -> np.ndarray:
    """MONAI's ``ScaleIntensityRangePercentiles``: :func:`scale_range` from the
    image's ``lower``/``upper`` percentiles (per channel if ``channel_wise``) to
    ``[b_min, b_max]`` (to its own ``lower``/``upper`` percentiles if ``relative``)."""
    if relative:
        b_min, b_max = (
            (b_max - b_min) * (lower / 100.0) + b_min,
            (b_max - b_min) * (upper / 100.0) + b_min,
        )
    if not channel_wise or image.shape[2] == 1:
        a_min, a_max = _percentiles(image, lower, upper)
        return scale_range(image, a_min, a_max, b_min, b_max, clip)
    h, w, c = image.shape
    planes = np.empty((c, h, w), np.float32)
    for ci in range(c):
        a_min, a_max = _percentiles(image[:, :, ci], lower, upper)
        _scale_into(planes[ci], image[:, :, ci], a_min, a_max, b_min, b_max, clip)
    return _planes_view(planes)


def to_float(image: np.ndarray, bits: int | None = None) -> np.ndarray:
    """float32 ``x * (1 / m)`` (torchvision's ``ToDtype(float32, scale=True)`` kernel).

    ``m = 2**bits - 1`` for unsigned and float32 input, ``2**(bits - 1) - 1`` for
    int16 (``bits`` counts the sign bit, as DICOM's BitsStored does). ``bits=None``:
    the dtype's own range (255, 65535, 32767); float32 is then returned unchanged.
    """
    if bits is None:
        if image.dtype == np.float32:
            return image
        bits = 8 * image.dtype.itemsize
    signed = image.dtype == np.int16
    m = 2 ** (bits - 1) - 1 if signed else 2**bits - 1
    return np.multiply(image, np.float32(1.0 / m), dtype=np.float32)


# --------------------------------------------------------------------------- ops


class _FloatIntensity:
    """What the intensity ops share: nothing random, float32 out, shape kept."""

    def make_params(self, rng: np.random.Generator, shape: Shape) -> None:
        return None

    def output_shape(self, shape: Shape) -> Shape:
        return shape

    def output_dtype(self, dtype: Any) -> np.dtype:
        return np.dtype(np.float32)


def _window_pair(item: Any) -> tuple[float, float]:
    if isinstance(item, str):
        return _preset(item)
    if isinstance(item, Sequence) and len(item) == 2:
        center = _number("WindowLevel", "a window's center", item[0])
        width = _number("WindowLevel", "a window's width", item[1])
        return (center, width)
    raise UsageError(
        "WindowLevel: each window must be a (center, width) pair or a preset name "
        f"{tuple(WINDOW_PRESETS)} (got {item!r})."
    )


def _preset(name: str) -> tuple[float, float]:
    try:
        return WINDOW_PRESETS[name.lower()]
    except KeyError:
        raise UsageError(
            f"WindowLevel: unknown preset {name!r}; use one of {tuple(WINDOW_PRESETS)} "
            "or give (center, width) in the image's units."
        ) from None


@dataclass(frozen=True)
class WindowLevel(_FloatIntensity):
    """CT-style windowing to float32 in [0, 1]: values outside the window are clipped.

    ``WindowLevel(40, 400)``, ``WindowLevel("lung")`` or several windows,
    ``WindowLevel(windows=["brain", "subdural", (40, 400)])``, which turn each input
    channel into one channel per window (a 1-channel CT slice into 3 channels).
    ``function``: ``"linear_exact"`` (default; DICOM LINEAR_EXACT, MONAI's and most
    code's formula) or ``"linear"`` (DICOM's default VOI LUT function, as viewers and
    pydicom's ``apply_windowing`` do; width >= 1). After construction ``windows``
    holds the ``(center, width)`` pairs; ``center``/``width`` the single window's, or
    None for several.
    """

    center: float | str | None = None
    width: float | None = None
    windows: Sequence[Any] | None = None
    function: str = "linear_exact"

    def __post_init__(self) -> None:
        if self.windows is None:
            if isinstance(self.center, str) and self.width is None:
                pairs: tuple[tuple[float, float], ...] = (_preset(self.center),)
            elif self.center is None or self.width is None:
                raise UsageError(
                    "WindowLevel: give center and width (WindowLevel(40, 400)), a preset "
                    f"name (WindowLevel('lung'); one of {tuple(WINDOW_PRESETS)}) or "
                    "windows=[...] (got neither)."
                )
            else:
                pairs = (_window_pair((self.center, self.width)),)
        elif self.center is not None or self.width is not None:
            raise UsageError(
                "WindowLevel: give either center/width or windows=[...], not both "
                f"(got center={self.center!r}, width={self.width!r}, windows={self.windows!r})."
            )
        elif isinstance(self.windows, str) or not isinstance(self.windows, Sequence):
            raise UsageError(
                "WindowLevel: windows must be a list of (center, width) pairs or preset "
                f"names (got {self.windows!r}); for one preset use WindowLevel({self.windows!r})."
            )
        else:
            pairs = tuple(_window_pair(item) for item in self.windows)
            if not pairs:
                raise UsageError("WindowLevel: windows is empty; give at least one window.")
        function = str(self.function).lower()
        if function not in FUNCTIONS:
            raise UsageError(
                f"WindowLevel: function must be one of {FUNCTIONS} (got {self.function!r})."
            )
        for center, width in pairs:
            if (width < 1) if function == "linear" else (width <= 0):
                need = ">= 1 (DICOM LINEAR)" if function == "linear" else "positive"
                raise UsageError(
                    f"WindowLevel: width must be {need} (got {width!r} for center {center!r})."
                )
        _set(self, "windows", pairs)
        _set(self, "center", pairs[0][0] if len(pairs) == 1 else None)
        _set(self, "width", pairs[0][1] if len(pairs) == 1 else None)
        _set(self, "function", function)

    def apply(self, image: np.ndarray, params: None = None) -> np.ndarray:
        _check_dtype("WindowLevel", image)
        return window(image, self.windows, self.function)  # type: ignore[arg-type]

    def output_shape(self, shape: Shape) -> Shape:
        h, w, c = shape
        return (h, w, c * len(self.windows))  # type: ignore[arg-type]


def _b_range(op: str, b_min: Any, b_max: Any) -> tuple[float, float]:
    if b_min is None or b_max is None:
        raise UsageError(
            f"{op}: b_min and b_max must be numbers (got {b_min!r}, {b_max!r}); MONAI's "
            "b_min=b_max=None (no output scaling) is b_min=0.0, b_max=1.0 with clip=False."
        )
    return _number(op, "b_min", b_min), _number(op, "b_max", b_max)


@dataclass(frozen=True)
class ScaleIntensityRange(_FloatIntensity):
    """``[a_min, a_max]`` to ``[b_min, b_max]``, float32, clipped to the b range if
    ``clip`` (MONAI's transform; defaults differ: b 0..1 and clip=True here)."""

    a_min: float
    a_max: float
    b_min: float = 0.0
    b_max: float = 1.0
    clip: bool = True

    def __post_init__(self) -> None:
        op = type(self).__name__
        _set(self, "a_min", _number(op, "a_min", self.a_min))
        _set(self, "a_max", _number(op, "a_max", self.a_max))
        if self.a_min == self.a_max:
            raise UsageError(
                f"{op}: a_min and a_max are equal ({self.a_min!r}), so the range has no "
                "width; give the input range the values span, e.g. a_min=-1000, a_max=1000."
            )
        b_min, b_max = _b_range(op, self.b_min, self.b_max)
        _set(self, "b_min", b_min)
        _set(self, "b_max", b_max)
        _set(self, "clip", bool(self.clip))

    def apply(self, image: np.ndarray, params: None = None) -> np.ndarray:
        _check_dtype(type(self).__name__, image)
        return scale_range(image, self.a_min, self.a_max, self.b_min, self.b_max, self.clip)


@dataclass(frozen=True)
class ScaleIntensityRangePercentiles(_FloatIntensity):
    """:class:`ScaleIntensityRange` from each image's ``lower``/``upper`` percentiles
    (numpy's linear method; NaN ignored), per channel if ``channel_wise``; with
    ``relative`` to the same percentiles of ``[b_min, b_max]`` (MONAI's transform)."""

    lower: float
    upper: float
    b_min: float = 0.0
    b_max: float = 1.0
    clip: bool = True
    relative: bool = False
    channel_wise: bool = False

    def __post_init__(self) -> None:
        op = type(self).__name__
        lower = _number(op, "lower", self.lower)
        upper = _number(op, "upper", self.upper)
        if not 0.0 <= lower < upper <= 100.0:
            raise UsageError(
                f"{op}: lower and upper are percentiles with 0 <= lower < upper <= 100 "
                f"(got lower={self.lower!r}, upper={self.upper!r}); to invert the output, "
                "swap b_min and b_max instead."
            )
        b_min, b_max = _b_range(op, self.b_min, self.b_max)
        _set(self, "lower", lower)
        _set(self, "upper", upper)
        _set(self, "b_min", b_min)
        _set(self, "b_max", b_max)
        for name in ("clip", "relative", "channel_wise"):
            _set(self, name, bool(getattr(self, name)))

    def apply(self, image: np.ndarray, params: None = None) -> np.ndarray:
        _check_dtype(type(self).__name__, image)
        return percentile_range(
            image,
            self.lower,
            self.upper,
            self.b_min,
            self.b_max,
            self.clip,
            self.relative,
            self.channel_wise,
        )


@dataclass(frozen=True)
class ToFloat(_FloatIntensity):
    """Integer pixels of ``bits`` significant bits to float32: ``0 .. 2**bits - 1``
    to ``0 .. 1`` (int16: ``bits`` includes the sign, ``x / (2**(bits - 1) - 1)``, in
    about [-1, 1]). ``bits=None``: the dtype's range (torchvision's ``ToDtype(float32,
    scale=True)``); a float32 image is then unchanged, and with ``bits`` scaled alike.
    Values above the range are not clipped."""

    bits: int | None = None

    def __post_init__(self) -> None:
        bits = self.bits
        if bits is not None and (
            isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 1 <= bits <= 16
        ):
            raise UsageError(
                f"ToFloat: bits must be an int from 1 to 16, the significant bits of the "
                f"pixels (e.g. 12 for 12-bit CT), or None for the dtype's range (got {bits!r})."
            )
        _set(self, "bits", None if bits is None else int(bits))

    def apply(self, image: np.ndarray, params: None = None) -> np.ndarray:
        _check_dtype("ToFloat", image)
        bits = self.bits
        most = 8 * image.dtype.itemsize
        if bits is not None and image.dtype != np.float32 and bits > most:
            raise UsageError(
                f"ToFloat(bits={bits}): a {image.dtype.name} image holds at most {most} bits; "
                f"use ToFloat(bits={most}) or ToFloat() for its full range."
            )
        if bits == 1 and image.dtype == np.int16:
            raise UsageError(
                "ToFloat(bits=1): int16 needs bits >= 2 (one sign bit and one value bit)."
            )
        return to_float(image, bits)
