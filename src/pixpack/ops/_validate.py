"""Argument parsing shared by the op dataclasses (torchvision's accepted forms).

Each helper returns the canonical form stored on the frozen dataclass, or raises
:class:`~pixpack.errors.UsageError` with a one-line message that says how to fix it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ..errors import UsageError

__all__ = [
    "INTERPOLATIONS",
    "PADDING_MODES",
    "check_interpolation",
    "parse_size",
    "parse_range",
    "parse_fill",
    "parse_probability",
]

INTERPOLATIONS = ("nearest", "nearest-exact", "bilinear", "bicubic")
PADDING_MODES = ("constant", "edge", "reflect", "symmetric")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_interpolation(op: str, value: Any, allowed: Sequence[str] = INTERPOLATIONS) -> str:
    # torchvision also accepts InterpolationMode enums; their .value is the same string.
    value = getattr(value, "value", value)
    if value not in allowed:
        raise UsageError(f"{op}: interpolation must be one of {tuple(allowed)} (got {value!r}).")
    return str(value)


def parse_size(op: str, size: Any, *, allow_int_short_side: bool = False) -> int | tuple[int, int]:
    """An int (a square, or the shorter side for ``Resize``) or an ``(h, w)`` pair."""
    if isinstance(size, Sequence) and not isinstance(size, str) and len(size) == 1:
        size = size[0]
    if isinstance(size, int) and not isinstance(size, bool):
        if size < 1:
            raise UsageError(f"{op}: size must be positive (got {size!r}).")
        return size if allow_int_short_side else (size, size)
    if (
        isinstance(size, Sequence)
        and not isinstance(size, str)
        and len(size) == 2
        and all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in size)
    ):
        return (int(size[0]), int(size[1]))
    raise UsageError(
        f"{op}: size must be a positive int or a (height, width) pair of ints (got {size!r})."
    )


def parse_range(
    op: str,
    name: str,
    value: Any,
    *,
    center: float = 0.0,
    symmetric: bool = True,
    bound: tuple[float, float] = (-math.inf, math.inf),
    clip_low: float | None = None,
) -> tuple[float, float]:
    """A number ``v`` (the range ``center ± v``) or an increasing ``(lo, hi)`` pair."""
    if _is_number(value) and symmetric:
        if value < 0:
            raise UsageError(
                f"{op}: {name} as a single number must be non-negative (got {value!r})."
            )
        lo, hi = center - float(value), center + float(value)
        if clip_low is not None:
            lo = max(lo, clip_low)
    elif isinstance(value, Sequence) and len(value) == 2 and all(_is_number(v) for v in value):
        lo, hi = float(value[0]), float(value[1])
    else:
        form = "a non-negative number or a (min, max) pair" if symmetric else "a (min, max) pair"
        raise UsageError(f"{op}: {name} must be {form} (got {value!r}).")
    if not bound[0] <= lo <= hi <= bound[1]:
        raise UsageError(f"{op}: {name} must be increasing and within {bound} (got {(lo, hi)!r}).")
    return (lo, hi)


def parse_fill(op: str, fill: Any) -> tuple[float, ...]:
    """A number or one number per channel; stored as a tuple (length 1 broadcasts)."""
    if _is_number(fill):
        return (float(fill),)
    if isinstance(fill, Sequence) and 1 <= len(fill) <= 4 and all(_is_number(v) for v in fill):
        return tuple(float(v) for v in fill)
    raise UsageError(
        f"{op}: fill must be a number or a sequence of 1-4 numbers, one per channel (got {fill!r})."
    )


def parse_probability(op: str, p: Any) -> float:
    if not _is_number(p) or not 0.0 <= p <= 1.0:
        raise UsageError(f"{op}: p must be a probability in [0, 1] (got {p!r}).")
    return float(p)
