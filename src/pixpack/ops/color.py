"""Photometric ops: ColorJitter and RandomGrayscale with torchvision v2's draws.

1-channel images get brightness and contrast only (saturation and hue are no-ops, as
in torchvision); 4-channel images are RGB + alpha, and alpha is left untouched.
uint16 images keep their full range (results saturate at 65535).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from . import kernels as K
from ._validate import parse_probability, parse_range
from .base import Shape

__all__ = ["ColorJitter", "JitterParams", "RandomGrayscale"]


def _set(obj: Any, name: str, value: Any) -> None:
    object.__setattr__(obj, name, value)


class JitterParams(NamedTuple):
    """The order of the four adjustments (0 brightness, 1 contrast, 2 saturation,
    3 hue) and each factor (None: that adjustment is off)."""

    order: tuple[int, ...]
    brightness: float | None
    contrast: float | None
    saturation: float | None
    hue: float | None


def _factor_range(
    name: str, value: Any, *, center: float, bound: tuple[float, float], clip: bool
) -> Any:
    if value is None:
        return None
    lo, hi = parse_range(
        "ColorJitter", name, value, center=center, bound=bound, clip_low=0.0 if clip else None
    )
    # torchvision: a range that is just the identity turns the adjustment off.
    return None if lo == hi == center else (lo, hi)


@dataclass(frozen=True)
class ColorJitter:
    """Random brightness, contrast, saturation and hue, applied in a random order.

    A number ``v`` means factors drawn uniformly from ``[max(0, 1 - v), 1 + v]``
    (hue: ``[-v, v]``, ``v <= 0.5``); a pair is the range itself. 0 or None: off.
    """

    brightness: float | tuple[float, float] | None = 0
    contrast: float | tuple[float, float] | None = 0
    saturation: float | tuple[float, float] | None = 0
    hue: float | tuple[float, float] | None = 0

    def __post_init__(self) -> None:
        inf = (0.0, math.inf)
        _set(
            self,
            "brightness",
            _factor_range("brightness", self.brightness, center=1.0, bound=inf, clip=True),
        )
        _set(
            self,
            "contrast",
            _factor_range("contrast", self.contrast, center=1.0, bound=inf, clip=True),
        )
        _set(
            self,
            "saturation",
            _factor_range("saturation", self.saturation, center=1.0, bound=inf, clip=True),
        )
        _set(self, "hue", _factor_range("hue", self.hue, center=0.0, bound=(-0.5, 0.5), clip=False))

    def make_params(self, rng: np.random.Generator, shape: Shape) -> JitterParams:
        order = tuple(int(i) for i in rng.permutation(4))  # torch.randperm(4)
        factors = [
            None if r is None else r[0] + (r[1] - r[0]) * rng.random()  # type: ignore[index]
            for r in (self.brightness, self.contrast, self.saturation, self.hue)
        ]
        return JitterParams(order, *factors)

    def apply(self, image: np.ndarray, params: JitterParams) -> np.ndarray:
        kernels = (K.adjust_brightness, K.adjust_contrast, K.adjust_saturation, K.adjust_hue)
        factors = (params.brightness, params.contrast, params.saturation, params.hue)
        out = image
        for i in params.order:
            factor = factors[i]
            if factor is not None:
                out = kernels[i](out, factor)
        return out

    def output_shape(self, shape: Shape) -> Shape:
        return shape


@dataclass(frozen=True)
class RandomGrayscale:
    """With probability ``p``, grayscale with the input's channel count (alpha kept)."""

    p: float = 0.1

    def __post_init__(self) -> None:
        _set(self, "p", parse_probability(type(self).__name__, self.p))

    def make_params(self, rng: np.random.Generator, shape: Shape) -> bool:
        return bool(rng.random() < self.p)

    def apply(self, image: np.ndarray, params: bool) -> np.ndarray:
        return K.to_grayscale(image) if params else image

    def output_shape(self, shape: Shape) -> Shape:
        return shape
