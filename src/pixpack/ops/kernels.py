"""Pure, deterministic image kernels on HWC numpy arrays (uint8 or uint16, 1-4 channels).

Every kernel is one or two OpenCV calls, or (bilinear resize) one call of the native
``pixpack._native._resample``; all release the GIL, so the loader's threads run them
in parallel. Kernels never modify their input; those that take
``out=`` write into it (e.g. a slot of the loader's batch buffer) and return it.

OpenCV quirks handled here, once:
- a 1-channel image comes back from cv2 as 2-D: :func:`_hwc` restores the channel axis;
- cv2 needs pixel-contiguous rows: :func:`as_cv` copies only views that are not
  (negative or channel strides); row-strided crop views pass through without a copy;
- a ``dst=`` that cv2 cannot use is silently reallocated: :func:`_finish` copies then.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

try:
    from .._native._resample import resize as _native_resize
except ImportError:  # no C compiler at install time: OpenCV + a Gaussian pre-blur
    _native_resize = None

__all__ = [
    "native_resize_available",
    "as_cv",
    "resize",
    "crop",
    "pad",
    "flip",
    "affine_matrix",
    "warp_affine",
    "adjust_brightness",
    "adjust_contrast",
    "adjust_saturation",
    "adjust_hue",
    "to_grayscale",
    "max_value",
]

_CV_INTERP = {
    "nearest": cv2.INTER_NEAREST,
    "nearest-exact": cv2.INTER_NEAREST_EXACT,
    "bilinear": cv2.INTER_LINEAR,
    "bicubic": cv2.INTER_CUBIC,
}
_CV_BORDER = {
    "constant": cv2.BORDER_CONSTANT,
    "edge": cv2.BORDER_REPLICATE,
    "reflect": cv2.BORDER_REFLECT_101,  # torchvision/numpy "reflect" does not repeat the edge
    "symmetric": cv2.BORDER_REFLECT,
}
# Below this Gaussian sigma (source pixels) the anti-alias blur changes < 0.5 level.
_MIN_SIGMA = 0.25


def max_value(dtype: np.dtype) -> int:
    """The value of white: 255, 65535; 1 for int16 and float32, kept in their own units."""
    return 65535 if dtype == np.uint16 else 255 if dtype == np.uint8 else 1


def as_cv(img: np.ndarray) -> np.ndarray:
    """``img`` itself if cv2 can read it in place, else a C-contiguous copy."""
    s = img.strides
    item = img.itemsize
    if s[2] == item and s[1] == item * img.shape[2] and s[0] >= s[1] * img.shape[1]:
        return img
    return np.ascontiguousarray(img)


def _hwc(res: np.ndarray) -> np.ndarray:
    return res[:, :, None] if res.ndim == 2 else res


def _dst(out: np.ndarray | None) -> np.ndarray | None:
    if out is None:
        return None
    return out[:, :, 0] if out.shape[2] == 1 else out


def _finish(res: np.ndarray, out: np.ndarray | None) -> np.ndarray:
    """Return ``out`` holding ``res`` (cv2 wrote into it unless it had to reallocate)."""
    if out is None:
        return _hwc(res)
    if res.ctypes.data != out.ctypes.data:
        np.copyto(out, _hwc(res))
    return out


def _scalar(fill: Sequence[float], channels: int) -> tuple[float, ...]:
    values = tuple(fill) * channels if len(fill) == 1 else tuple(fill)
    return (values + (0.0,) * 4)[:4]


def _aa_sigma(ratio: float) -> float:
    # torchvision's antialiased bilinear is a triangle filter of half-width `ratio`
    # (variance ratio^2 / 6); bilinear sampling itself contributes about 1/6, so the
    # Gaussian pre-blur supplies the rest. Measured within ~0.3 level of torchvision.
    return math.sqrt((ratio * ratio - 1.0) / 6.0) if ratio > 1.0 else 0.0


def native_resize_available() -> bool:
    """Whether bilinear resizes use the native torchvision-exact filter."""
    return _native_resize is not None


def resize(
    src: np.ndarray,
    size: tuple[int, int],
    interpolation: str = "bilinear",
    antialias: bool = True,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Resize to ``size=(h, w)``; antialiased downscale like torchvision when asked.

    Bilinear goes through the native kernel when it is built: torchvision's own
    separable triangle filter (within 1 level of ``F.resize(antialias=True)``, ~0.15
    level on average), one GIL release. Otherwise, and for the other interpolations,
    OpenCV, with a Gaussian pre-blur standing in for the antialias filter (within
    ~0.3 level of torchvision).
    """
    h, w = size
    sh, sw = src.shape[:2]
    if (sh, sw) == (h, w):
        if out is None:
            return np.array(src, order="C")
        np.copyto(out, src)
        return out
    if (
        _native_resize is not None
        and interpolation == "bilinear"
        and src.dtype in (np.uint8, np.uint16)
        and src.shape[2] in (1, 3, 4)
    ):
        if out is None:
            out = np.empty((h, w, src.shape[2]), src.dtype)
        _native_resize(as_cv(src), (0, 0, sh, sw), out, antialias=antialias)
        return out
    src = as_cv(src)
    if antialias and interpolation in ("bilinear", "bicubic") and (sh > h or sw > w):
        sy, sx = _aa_sigma(sh / h), _aa_sigma(sw / w)
        if max(sx, sy) >= _MIN_SIGMA:
            ky = 2 * math.ceil(3 * sy) + 1 if sy >= _MIN_SIGMA else 1
            kx = 2 * math.ceil(3 * sx) + 1 if sx >= _MIN_SIGMA else 1
            src = _hwc(cv2.GaussianBlur(src, (kx, ky), sigmaX=max(sx, 1e-3), sigmaY=max(sy, 1e-3)))
    res = cv2.resize(src, (w, h), dst=_dst(out), interpolation=_CV_INTERP[interpolation])
    return _finish(res, out)


def crop(src: np.ndarray, top: int, left: int, height: int, width: int) -> np.ndarray:
    """A view of the box; the box must lie inside the image."""
    return src[top : top + height, left : left + width]


def pad(
    src: np.ndarray,
    padding: tuple[int, int, int, int],
    fill: Sequence[float] = (0.0,),
    mode: str = "constant",
) -> np.ndarray:
    """Pad by ``(left, top, right, bottom)`` pixels (torchvision's modes)."""
    left, top, right, bottom = padding
    res = cv2.copyMakeBorder(
        as_cv(src), top, bottom, left, right, _CV_BORDER[mode], value=_scalar(fill, src.shape[2])
    )
    return _hwc(res)


def flip(src: np.ndarray, horizontal: bool = True, out: np.ndarray | None = None) -> np.ndarray:
    res = cv2.flip(as_cv(src), 1 if horizontal else 0, dst=_dst(out))
    return _finish(res, out)


def affine_matrix(
    angle: float,
    translate: tuple[float, float],
    scale: float,
    shear: tuple[float, float],
    center: tuple[float, float] = (0.0, 0.0),
) -> list[float]:
    """torchvision's ``_get_inverse_affine_matrix``: output -> input, about the image centre.

    Coordinates are relative to the image centre; ``center`` is the offset of the
    rotation centre from it. Positive ``angle`` rotates clockwise here (``F.affine``);
    ``F.rotate`` passes ``-angle``, hence counter-clockwise rotation for RandomRotation.
    """
    rot = math.radians(angle)
    sx, sy = math.radians(shear[0]), math.radians(shear[1])
    cx, cy = center
    tx, ty = translate
    a = math.cos(rot - sy) / math.cos(sy)
    b = -(a * math.tan(sx) + math.sin(rot))
    c = math.sin(rot - sy) / math.cos(sy)
    d = math.cos(rot) - c * math.tan(sx)
    m = [d / scale, -b / scale, 0.0, -c / scale, a / scale, 0.0]
    m[2] += cx - m[0] * (cx + tx) - m[1] * (cy + ty)
    m[5] += cy - m[3] * (cx + tx) - m[4] * (cy + ty)
    return m


def warp_affine(
    src: np.ndarray,
    matrix: Sequence[float],
    size: tuple[int, int] | None = None,
    interpolation: str = "nearest",
    fill: Sequence[float] = (0.0,),
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Apply a torchvision-convention inverse matrix (see :func:`affine_matrix`).

    torchvision samples input pixel ``M @ (x - (ow-1)/2, y - (oh-1)/2, 1) + ((w-1)/2, (h-1)/2)``
    for output pixel ``(x, y)`` (grid_sample, align_corners=False); the same map in
    absolute pixel coordinates is handed to cv2 as an inverse map.
    """
    h, w = src.shape[:2]
    oh, ow = size if size is not None else (h, w)
    m0, m1, m2, m3, m4, m5 = matrix
    ox, oy = (ow - 1) * 0.5, (oh - 1) * 0.5
    cv_m = np.array(
        [
            [m0, m1, m2 + (w - 1) * 0.5 - m0 * ox - m1 * oy],
            [m3, m4, m5 + (h - 1) * 0.5 - m3 * ox - m4 * oy],
        ]
    )
    res = cv2.warpAffine(
        as_cv(src),
        cv_m,
        (ow, oh),
        dst=_dst(out),
        flags=_CV_INTERP[interpolation] | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=_scalar(fill, src.shape[2]),
    )
    return _finish(res, out)


# -- colour ------------------------------------------------------------------------
# torchvision: 1-channel images get brightness/contrast only; we define 4 channels as
# RGB + alpha, with alpha passed through untouched.


def _split_alpha(src: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    if src.shape[2] == 4:
        return as_cv(np.ascontiguousarray(src[:, :, :3])), src[:, :, 3:]
    return as_cv(src), None


def _join_alpha(rgb: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    rgb = _hwc(rgb)
    if alpha is None:
        return rgb
    return np.concatenate([rgb, alpha], axis=2)


_TRUNC = 0.499
_LUMA = (0.2989, 0.587, 0.114)  # torchvision's weights


def _blend(a: np.ndarray, b: np.ndarray | float, ratio: float, bias: float = 0.0) -> np.ndarray:
    """``a * ratio + (b + bias) * (1 - ratio)`` saturated to the dtype (b: image or constant).

    torchvision truncates the float result where cv2 rounds: the -0.499 offset turns
    cv2's rounding into truncation.
    """
    if isinstance(b, np.ndarray):
        return cv2.addWeighted(a, ratio, b, 1.0 - ratio, bias * (1.0 - ratio) - _TRUNC)
    return cv2.addWeighted(a, ratio, a, 0.0, (b + bias) * (1.0 - ratio) - _TRUNC)


def _gray(rgb: np.ndarray) -> np.ndarray:
    # cv2 rounds 0.299 R + 0.587 G + 0.114 B where torchvision floors its sum (1 level at
    # most). cv2.transform with exact weights and a floor offset matches exactly but
    # costs ~5x more, so callers correct the mean offset (-0.5) where it matters.
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def adjust_brightness(src: np.ndarray, factor: float) -> np.ndarray:
    rgb, alpha = _split_alpha(src)
    return _join_alpha(_blend(rgb, 0.0, factor), alpha)


def adjust_contrast(src: np.ndarray, factor: float) -> np.ndarray:
    """Blend with the mean of the grayscale image (torchvision's definition)."""
    rgb, alpha = _split_alpha(src)
    means = cv2.mean(rgb)
    if rgb.shape[2] == 3:
        # mean(floor(gray)) from the channel means: flooring costs half a level on average.
        mean = sum(w * m for w, m in zip(_LUMA, means, strict=False)) - 0.5
    else:
        mean = means[0]
    return _join_alpha(_blend(rgb, float(mean), factor), alpha)


def adjust_saturation(src: np.ndarray, factor: float) -> np.ndarray:
    if src.shape[2] == 1:
        return src.copy()
    rgb, alpha = _split_alpha(src)
    gray = cv2.cvtColor(_gray(rgb), cv2.COLOR_GRAY2RGB)
    return _join_alpha(_blend(rgb, gray, factor, bias=-0.5), alpha)


def adjust_hue(src: np.ndarray, factor: float) -> np.ndarray:
    """Rotate hue by ``factor`` turns (in [-0.5, 0.5]) in float32 HSV, like torchvision."""
    if src.shape[2] == 1:
        return src.copy()
    rgb, alpha = _split_alpha(src)
    # H and S do not depend on the value scale, so HSV is taken on raw pixel values.
    # cv2's float HSV2RGB wraps hues in [360, 720) (not negative ones), hence the
    # shift is taken modulo one turn.
    hsv = cv2.cvtColor(rgb.astype(np.float32), cv2.COLOR_RGB2HSV)
    hsv = cv2.add(hsv, ((factor % 1.0) * 360.0, 0.0, 0.0, 0.0))  # type: ignore[call-overload]
    back = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    # torchvision converts back with floor(x01 * (max + 1 - 1e-3)).
    peak = float(max_value(src.dtype))
    depth = cv2.CV_16U if src.dtype == np.uint16 else cv2.CV_8U
    out = cv2.addWeighted(back, (peak + 1.0 - 1e-3) / peak, back, 0.0, -_TRUNC, dtype=depth)
    return _join_alpha(out, alpha)


def to_grayscale(src: np.ndarray) -> np.ndarray:
    """Grayscale with the input's channel count (alpha kept for 4 channels)."""
    if src.shape[2] == 1:
        return src.copy()
    rgb, alpha = _split_alpha(src)
    return _join_alpha(cv2.cvtColor(_gray(rgb), cv2.COLOR_GRAY2RGB), alpha)
