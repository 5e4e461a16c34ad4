"""Rotation and affine warps: torchvision's parameter draws and matrix convention.

``make_params`` draws exactly what torchvision v2 draws (uniform angle; translation
rounded to whole pixels; uniform scale; x/y shear); ``apply`` builds torchvision's
inverse matrix (:func:`~pixpack.ops.kernels.affine_matrix`) and runs one
``cv2.warpAffine``. RandomRotation rotates counter-clockwise for positive angles.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from ..errors import UsageError
from . import kernels as K
from ._validate import check_interpolation, parse_fill, parse_range
from .base import Shape
from .geometry import VARIABLE

__all__ = ["RandomRotation", "RandomAffine", "AffineParams", "expanded_size"]

_WARP_INTERPOLATIONS = ("nearest", "bilinear")  # torchvision's tensor kernels allow these two


def _set(obj: Any, name: str, value: Any) -> None:
    object.__setattr__(obj, name, value)


def _uniform(rng: np.random.Generator, low: float, high: float) -> float:
    # What rng.uniform computes, at a sixth of its per-call overhead.
    return low + (high - low) * rng.random()


def _center_offset(center: tuple[float, float] | None, shape: Shape) -> tuple[float, float]:
    # torchvision: centre in pixel coordinates, shifted so (0, 0) is the image centre.
    if center is None:
        return (0.0, 0.0)
    return (center[0] - shape[1] * 0.5, center[1] - shape[0] * 0.5)


def _parse_center(op: str, center: Any) -> tuple[float, float] | None:
    if center is None:
        return None
    if (
        isinstance(center, Sequence)
        and len(center) == 2
        and all(isinstance(v, (int, float)) for v in center)
    ):
        return (float(center[0]), float(center[1]))
    raise UsageError(f"{op}: center must be None or an (x, y) pair (got {center!r}).")


def expanded_size(matrix: Sequence[float], width: int, height: int) -> tuple[int, int]:
    """torchvision's ``_compute_affine_output_size``: the ``(h, w)`` holding the rotated image."""
    hw, hh = 0.5 * width, 0.5 * height
    pts = np.array([[-hw, -hh, 1.0], [-hw, hh, 1.0], [hw, hh, 1.0], [hw, -hh, 1.0]])
    new = pts @ np.asarray(matrix, dtype=np.float64).reshape(2, 3).T + (hw, hh)
    tol = 1e-4  # drop float noise before ceil/floor, as torchvision does
    hi = np.ceil(np.trunc(new.max(axis=0) / tol) * tol)
    lo = np.floor(np.trunc(new.min(axis=0) / tol) * tol)
    w, h = (hi - lo).astype(int)
    return int(h), int(w)


@dataclass(frozen=True)
class RandomRotation:
    """Rotate by a uniform angle in ``degrees`` (counter-clockwise for positive angles)."""

    degrees: float | tuple[float, float]
    interpolation: str = "nearest"
    expand: bool = False
    center: tuple[float, float] | None = None
    fill: float | tuple[float, ...] = 0

    def __post_init__(self) -> None:
        name = type(self).__name__
        _set(self, "degrees", parse_range(name, "degrees", self.degrees))
        _set(
            self,
            "interpolation",
            check_interpolation(name, self.interpolation, _WARP_INTERPOLATIONS),
        )
        _set(self, "center", _parse_center(name, self.center))
        _set(self, "fill", parse_fill(name, self.fill))

    def make_params(self, rng: np.random.Generator, shape: Shape) -> float:
        return _uniform(rng, self.degrees[0], self.degrees[1])  # type: ignore[index]

    def apply(self, image: np.ndarray, params: float, out: np.ndarray | None = None) -> np.ndarray:
        shape = image.shape
        # F.rotate passes -angle to the shared matrix helper (see its docstring).
        matrix = K.affine_matrix(
            -params, (0.0, 0.0), 1.0, (0.0, 0.0), _center_offset(self.center, shape)
        )
        size = expanded_size(matrix, shape[1], shape[0]) if self.expand else None
        return K.warp_affine(image, matrix, size, self.interpolation, self.fill, out=out)  # type: ignore[arg-type]

    def output_shape(self, shape: Shape) -> Shape:
        return (VARIABLE, VARIABLE, shape[2]) if self.expand else shape


class AffineParams(NamedTuple):
    angle: float
    translate: tuple[int, int]
    scale: float
    shear: tuple[float, float]


@dataclass(frozen=True)
class RandomAffine:
    """Random rotation, translation, scale and shear about the centre (torchvision's draws)."""

    degrees: float | tuple[float, float]
    translate: tuple[float, float] | None = None
    scale: tuple[float, float] | None = None
    shear: float | tuple[float, ...] | None = None
    interpolation: str = "nearest"
    fill: float | tuple[float, ...] = 0
    center: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        name = type(self).__name__
        _set(self, "degrees", parse_range(name, "degrees", self.degrees))
        if self.translate is not None:
            t = self.translate
            if not (isinstance(t, Sequence) and len(t) == 2 and all(0.0 <= v <= 1.0 for v in t)):
                raise UsageError(
                    f"{name}: translate must be None or two fractions in [0, 1] (got {t!r})."
                )
            _set(self, "translate", (float(t[0]), float(t[1])))
        if self.scale is not None:
            _set(
                self,
                "scale",
                parse_range(name, "scale", self.scale, symmetric=False, bound=(1e-9, math.inf)),
            )
        if self.shear is not None:
            s = self.shear
            if isinstance(s, Sequence) and len(s) == 4:
                _set(
                    self,
                    "shear",
                    parse_range(name, "shear", s[:2]) + parse_range(name, "shear", s[2:]),
                )
            else:
                _set(self, "shear", parse_range(name, "shear", s))
        _set(
            self,
            "interpolation",
            check_interpolation(name, self.interpolation, _WARP_INTERPOLATIONS),
        )
        _set(self, "fill", parse_fill(name, self.fill))
        _set(self, "center", _parse_center(name, self.center))

    def make_params(self, rng: np.random.Generator, shape: Shape) -> AffineParams:
        height, width = shape[0], shape[1]
        angle = _uniform(rng, self.degrees[0], self.degrees[1])  # type: ignore[index]
        tx = ty = 0
        if self.translate is not None:
            max_dx, max_dy = self.translate[0] * width, self.translate[1] * height
            tx = round(_uniform(rng, -max_dx, max_dx))
            ty = round(_uniform(rng, -max_dy, max_dy))
        scale = _uniform(rng, self.scale[0], self.scale[1]) if self.scale is not None else 1.0
        shear_x = shear_y = 0.0
        if self.shear is not None:
            s = self.shear
            shear_x = _uniform(rng, s[0], s[1])  # type: ignore[index]
            if len(s) == 4:  # type: ignore[arg-type]
                shear_y = _uniform(rng, s[2], s[3])  # type: ignore[index]
        return AffineParams(angle, (tx, ty), scale, (shear_x, shear_y))

    def apply(
        self, image: np.ndarray, params: AffineParams, out: np.ndarray | None = None
    ) -> np.ndarray:
        center = _center_offset(self.center, image.shape)  # type: ignore[arg-type]
        matrix = K.affine_matrix(params.angle, params.translate, params.scale, params.shear, center)
        return K.warp_affine(image, matrix, None, self.interpolation, self.fill, out=out)  # type: ignore[arg-type]

    def output_shape(self, shape: Shape) -> Shape:
        return shape
