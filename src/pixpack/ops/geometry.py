"""Geometric ops with torchvision.transforms.v2 parameter semantics and draws.

Each op is a frozen dataclass: ``make_params`` mirrors torchvision's ``make_params``
(same distributions, drawn from the injected generator), ``apply`` calls one kernel.
Shapes whose height/width depend on the image are written as :data:`VARIABLE` (-1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from ..errors import UsageError
from . import kernels as K
from ._validate import (
    PADDING_MODES,
    check_interpolation,
    parse_fill,
    parse_probability,
    parse_range,
    parse_size,
)
from .base import Region, Shape

__all__ = [
    "VARIABLE",
    "Box",
    "RandomResizedCrop",
    "Resize",
    "CenterCrop",
    "RandomCrop",
    "RandomHorizontalFlip",
    "RandomVerticalFlip",
]

VARIABLE = -1  # a height/width that depends on the image (or the draw)


class Box(NamedTuple):
    """Source box ``(top, left, height, width)`` and the output size ``(h, w)``."""

    top: int
    left: int
    height: int
    width: int
    size: tuple[int, int]


def _set(obj: Any, name: str, value: Any) -> None:
    object.__setattr__(obj, name, value)  # canonicalise a field of a frozen dataclass


class _BoxOp:
    """A RegionOp whose params are a :class:`Box`, resized to ``Box.size``."""

    interpolation: str = "bilinear"
    antialias: bool = True

    def region(self, params: Box, shape: Shape) -> Region:
        return Region(params.top, params.left, params.height, params.width, params.size)

    def apply_region(
        self, crop: np.ndarray, params: Box, out: np.ndarray | None = None
    ) -> np.ndarray:
        return K.resize(crop, params.size, self.interpolation, self.antialias, out=out)

    def apply(self, image: np.ndarray, params: Box, out: np.ndarray | None = None) -> np.ndarray:
        t, left, h, w, _ = params
        return self.apply_region(image[t : t + h, left : left + w], params, out=out)


@dataclass(frozen=True)
class RandomResizedCrop(_BoxOp):
    """A random box of ``scale`` area fraction and ``ratio`` aspect, resized to ``size``."""

    size: int | tuple[int, int]
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0)
    interpolation: str = "bilinear"
    antialias: bool = True

    def __post_init__(self) -> None:
        name = type(self).__name__
        _set(self, "size", parse_size(name, self.size))
        _set(
            self,
            "scale",
            parse_range(name, "scale", self.scale, symmetric=False, bound=(0.0, math.inf)),
        )
        _set(
            self,
            "ratio",
            parse_range(name, "ratio", self.ratio, symmetric=False, bound=(1e-9, math.inf)),
        )
        _set(self, "interpolation", check_interpolation(name, self.interpolation))
        # Draw constants, computed once (make_params runs per sample holding the GIL).
        log_lo = math.log(self.ratio[0])
        _set(
            self,
            "_draw",
            (
                log_lo,
                math.log(self.ratio[1]) - log_lo,
                self.scale[0],
                self.scale[1] - self.scale[0],
            ),
        )

    def make_params(self, rng: np.random.Generator, shape: Shape) -> Box:
        height, width = shape[0], shape[1]
        area = height * width
        log_lo, log_span, s_lo, s_span = self._draw  # type: ignore[attr-defined]
        for _ in range(10):
            # One generator call per attempt (numpy's per-call overhead dominates):
            # uniform area fraction, log-uniform aspect, then uniform top/left ints.
            u_area, u_ratio, u_top, u_left = rng.random(4).tolist()
            target_area = area * (s_lo + s_span * u_area)
            aspect = math.exp(log_lo + log_span * u_ratio)
            w = round(math.sqrt(target_area * aspect))
            h = round(math.sqrt(target_area / aspect))
            if 0 < w <= width and 0 < h <= height:
                top = int(u_top * (height - h + 1))
                left = int(u_left * (width - w + 1))
                return Box(top, left, h, w, self.size)  # type: ignore[arg-type]
        in_ratio = width / height  # fallback: central crop
        if in_ratio < self.ratio[0]:
            w, h = width, round(width / self.ratio[0])
        elif in_ratio > self.ratio[1]:
            h, w = height, round(height * self.ratio[1])
        else:
            w, h = width, height
        return Box((height - h) // 2, (width - w) // 2, h, w, self.size)  # type: ignore[arg-type]

    def output_shape(self, shape: Shape) -> Shape:
        return (self.size[0], self.size[1], shape[2])  # type: ignore[index]


def resized_shape(
    shape: Shape, size: int | tuple[int, int], max_size: int | None = None
) -> tuple[int, int]:
    """torchvision's ``_compute_resized_output_size``: an int sets the shorter side."""
    if not isinstance(size, int):
        return size
    h, w = shape[0], shape[1]
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = size, int(size * long / short)
    if max_size is not None and new_long > max_size:
        new_short, new_long = int(max_size * new_short / new_long), max_size
    return (new_long, new_short) if w <= h else (new_short, new_long)


@dataclass(frozen=True)
class Resize(_BoxOp):
    """Resize the whole image: an int sets the shorter side (aspect kept), (h, w) is exact."""

    size: int | tuple[int, int]
    interpolation: str = "bilinear"
    max_size: int | None = None
    antialias: bool = True

    def __post_init__(self) -> None:
        name = type(self).__name__
        _set(self, "size", parse_size(name, self.size, allow_int_short_side=True))
        _set(self, "interpolation", check_interpolation(name, self.interpolation))
        if self.max_size is not None and not (
            isinstance(self.size, int) and self.max_size > self.size
        ):
            raise UsageError(
                f"{name}: max_size must exceed an int size "
                f"(got size={self.size!r}, max_size={self.max_size!r})."
            )

    def make_params(self, rng: np.random.Generator, shape: Shape) -> Box:
        return Box(0, 0, shape[0], shape[1], resized_shape(shape, self.size, self.max_size))

    def output_shape(self, shape: Shape) -> Shape:
        if isinstance(self.size, tuple):
            return (self.size[0], self.size[1], shape[2])
        if shape[0] == VARIABLE or shape[1] == VARIABLE:
            return (VARIABLE, VARIABLE, shape[2])
        return (*resized_shape(shape, self.size, self.max_size), shape[2])


class CropParams(NamedTuple):
    """The part of the crop inside the image, then the zero padding around it."""

    top: int
    left: int
    height: int
    width: int
    padding: tuple[int, int, int, int]  # left, top, right, bottom


@dataclass(frozen=True)
class CenterCrop:
    """The central ``size`` box; a smaller image is zero-padded first (like torchvision)."""

    size: int | tuple[int, int]

    def __post_init__(self) -> None:
        _set(self, "size", parse_size(type(self).__name__, self.size))

    def make_params(self, rng: np.random.Generator, shape: Shape) -> CropParams:
        ch, cw = self.size  # type: ignore[misc]
        h, w = shape[0], shape[1]
        pl, pt = max(cw - w, 0) // 2, max(ch - h, 0) // 2
        padding = (pl, pt, max(cw - w, 0) - pl, max(ch - h, 0) - pt)
        ph, pw = h + padding[1] + padding[3], w + padding[0] + padding[2]
        top, left = round((ph - ch) / 2.0), round((pw - cw) / 2.0)
        # Back to image coordinates, clipped to the image.
        top, left = max(top - pt, 0), max(left - pl, 0)
        return CropParams(top, left, min(ch, h), min(cw, w), padding)

    def region(self, params: CropParams, shape: Shape) -> Region:
        return Region(
            params.top, params.left, params.height, params.width, (params.height, params.width)
        )

    def apply_region(
        self, crop: np.ndarray, params: CropParams, out: np.ndarray | None = None
    ) -> np.ndarray:
        if crop.shape[:2] != (params.height, params.width):  # decoded at a reduced scale
            crop = K.resize(crop, (params.height, params.width))
        if any(params.padding):
            crop = K.pad(crop, params.padding)
        if out is None:
            return crop
        np.copyto(out, crop)
        return out

    def apply(
        self, image: np.ndarray, params: CropParams, out: np.ndarray | None = None
    ) -> np.ndarray:
        t, left, h, w, _ = params
        return self.apply_region(image[t : t + h, left : left + w], params, out=out)

    def output_shape(self, shape: Shape) -> Shape:
        return (self.size[0], self.size[1], shape[2])  # type: ignore[index]


@dataclass(frozen=True)
class RandomCrop:
    """A random ``size`` box, after optional padding (torchvision's RandomCrop)."""

    size: int | tuple[int, int]
    padding: int | tuple[int, ...] | None = None
    pad_if_needed: bool = False
    fill: float | tuple[float, ...] = 0
    padding_mode: str = "constant"

    def __post_init__(self) -> None:
        name = type(self).__name__
        _set(self, "size", parse_size(name, self.size))
        _set(self, "fill", parse_fill(name, self.fill))
        if self.padding_mode not in PADDING_MODES:
            raise UsageError(
                f"{name}: padding_mode must be one of {PADDING_MODES} (got {self.padding_mode!r})."
            )
        p = self.padding
        if p is not None:
            p = (p,) if isinstance(p, int) else tuple(p)
            if len(p) not in (1, 2, 4) or not all(isinstance(v, int) and v >= 0 for v in p):
                raise UsageError(
                    f"{name}: padding must be an int or 2 or 4 non-negative ints "
                    f"(got {self.padding!r})."
                )
            # torchvision: 1 -> all sides, 2 -> (left/right, top/bottom), 4 -> (l, t, r, b)
            p = p * 4 if len(p) == 1 else (p[0], p[1], p[0], p[1]) if len(p) == 2 else p
            _set(self, "padding", p)

    def make_params(
        self, rng: np.random.Generator, shape: Shape
    ) -> tuple[int, int, tuple[int, int, int, int]]:
        pl, pt, pr, pb = self.padding if self.padding is not None else (0, 0, 0, 0)  # type: ignore[misc]
        ph, pw = shape[0] + pt + pb, shape[1] + pl + pr
        ch, cw = self.size  # type: ignore[misc]
        if self.pad_if_needed:
            if ph < ch:
                pt, pb, ph = pt + ch - ph, pb + ch - ph, ph + 2 * (ch - ph)
            if pw < cw:
                pl, pr, pw = pl + cw - pw, pr + cw - pw, pw + 2 * (cw - pw)
        if ph < ch or pw < cw:
            raise UsageError(
                f"RandomCrop: crop size {(ch, cw)} is larger than the (padded) image {(ph, pw)}; "
                "set pad_if_needed=True or resize first."
            )
        top = int(rng.integers(0, ph - ch + 1)) if ph > ch else 0
        left = int(rng.integers(0, pw - cw + 1)) if pw > cw else 0
        return top, left, (pl, pt, pr, pb)

    def apply(self, image: np.ndarray, params: Any, out: np.ndarray | None = None) -> np.ndarray:
        top, left, padding = params
        if any(padding):
            image = K.pad(image, padding, self.fill, self.padding_mode)  # type: ignore[arg-type]
        res = image[top : top + self.size[0], left : left + self.size[1]]  # type: ignore[index]
        if out is None:
            return res
        np.copyto(out, res)
        return out

    def output_shape(self, shape: Shape) -> Shape:
        return (self.size[0], self.size[1], shape[2])  # type: ignore[index]


class _RandomFlip:
    p: float
    horizontal: bool

    def make_params(self, rng: np.random.Generator, shape: Shape) -> bool:
        return bool(rng.random() < self.p)  # torchvision applies when rand < p

    def apply(self, image: np.ndarray, params: bool, out: np.ndarray | None = None) -> np.ndarray:
        if params:
            return K.flip(image, self.horizontal, out=out)
        if out is None:
            return image
        np.copyto(out, image)
        return out

    def output_shape(self, shape: Shape) -> Shape:
        return shape


@dataclass(frozen=True)
class RandomHorizontalFlip(_RandomFlip):
    p: float = 0.5

    def __post_init__(self) -> None:
        _set(self, "p", parse_probability(type(self).__name__, self.p))

    @property
    def horizontal(self) -> bool:  # type: ignore[override]
        return True


@dataclass(frozen=True)
class RandomVerticalFlip(_RandomFlip):
    p: float = 0.5

    def __post_init__(self) -> None:
        _set(self, "p", parse_probability(type(self).__name__, self.p))

    @property
    def horizontal(self) -> bool:  # type: ignore[override]
        return False
