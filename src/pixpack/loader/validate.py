"""Pipelines that cannot work are refused when the ``Loader`` is built, not mid-epoch.

Every sample of a batch must come out of the pipeline at the same height and width.
pixpack ops declare their output shape (``output_shape``), so for a pipeline of pixpack
ops the check is exact and costs nothing per sample: the shape for an image of any size
(``VARIABLE`` input), and if that varies, the shape for each distinct image size of the
pack (a pack of one image size is fine with ``Resize(256)`` or no pipeline at all).

A plain callable or a ``PythonOp`` without ``size`` does not declare its output, so the
pipeline is *probed*: it runs once on sample 0 (its output size becomes the batch's) and
once on the first sample of another size; two different output sizes are refused. A
probe that fails (a corrupt sample, a callable that fails on that image) decides
nothing: the sample then fails at run time under ``on_error`` as before.

Transforms from other libraries that cannot take pixpack's HWC NumPy images (a
torchvision transform put straight into the list) are refused with the wrapper to use.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..errors import UsageError
from ..ops.geometry import VARIABLE

__all__ = ["check_foreign_ops", "batch_size_hw", "failure_advice", "FIX"]

FIX = (
    "end it with a fixed-size crop such as CenterCrop(224) or RandomResizedCrop(224), "
    "or resize to an exact size with Resize((224, 224))"
)


def check_foreign_ops(ops: Sequence[Any]) -> None:
    """Refuse transforms of libraries whose call convention pixpack cannot meet."""
    from .. import ops as pixpack_ops

    for op in ops:
        module = type(op).__module__ or ""
        name = type(op).__name__
        if module.split(".")[0] == "torchvision":
            native = (
                f", or use pixpack.ops.{name} (same arguments, native speed)"
                if name in pixpack_ops.__all__
                else ""
            )
            raise UsageError(
                f"pipeline: torchvision's {name} cannot take the HWC NumPy images pixpack "
                f"passes; wrap it as pixpack.ops.PythonOp({name}(...)){native}."
            )
        if module.split(".")[0] == "albumentations":
            raise UsageError(
                f"pipeline: albumentations' {name} is called as t(image=img) and returns a "
                f"dict; pass a function instead: lambda img: t(image=img)['image']."
            )


def _sizes(pack: Any) -> np.ndarray:
    """The distinct ``(height, width)`` pairs of the pack's valid index entries, as an
    (n, 2) int64 array (one vectorised pass when all images share one size)."""
    h = np.asarray(pack.index["height"], dtype=np.int64)
    w = np.asarray(pack.index["width"], dtype=np.int64)
    if (h == h[0]).all() and (w == w[0]).all():
        return np.array([[h[0], w[0]]], np.int64)
    valid = (h > 0) & (w > 0)  # a damaged entry fails its own sample, later
    keys = np.unique((h[valid] << 32) | w[valid])
    return np.stack([keys >> 32, keys & 0xFFFFFFFF], axis=1)


def _culprit(ops: Sequence[Any]) -> str:
    """Why the output size follows the image, in a few words naming the op."""
    for op in reversed(ops):
        size = getattr(op, "size", None)
        if type(op).__name__ == "Resize" and isinstance(size, int):
            return f"Resize({size}) keeps each image's aspect ratio"
        if getattr(op, "expand", False):
            return f"{type(op).__name__}(expand=True) sizes each output to its angle"
    return "no op of the pipeline sets one size"


def _static_size(path: Any, plan: Any, channels: int, pack: Any) -> tuple[int, int]:
    generic = plan.output_shape((VARIABLE, VARIABLE, channels))
    if VARIABLE not in generic[:2]:
        return int(generic[0]), int(generic[1])
    sizes = _sizes(pack)
    outs: dict[tuple[int, int], tuple[int, int]] = {}
    for h, w in sizes.tolist():
        try:
            out = plan.output_shape((h, w, channels))[:2]
        except (ArithmeticError, ValueError):  # a nonsensical size fails its sample later
            continue
        if VARIABLE not in out:
            outs.setdefault(tuple(out), (h, w))
        if VARIABLE in out or len(outs) > 1:
            seen = ", ".join(f"{a}x{b}" for a, b in list(outs.values())[:2]) or f"{h}x{w}"
            what = "there is no pipeline" if not plan.ops else _culprit(plan.ops)
            raise UsageError(
                f"{path}: the pipeline's output size follows each image (the pack's images "
                f"differ in size, e.g. {seen}, and {what}); {FIX}."
            )
    if not outs:  # only damaged entries: nothing to decide here
        return int(sizes[0][0]) if len(sizes) else 1, int(sizes[0][1]) if len(sizes) else 1
    (out,) = outs
    return out


def batch_size_hw(
    pack: Any,
    plan: Any,
    channels: int,
    probe: Callable[[int], np.ndarray],
) -> tuple[int, int]:
    """The ``(height, width)`` every sample of this pack comes out of ``plan`` at, or a
    :class:`UsageError` naming the fix when there is no such size.

    ``probe(i)`` runs the pipeline on sample ``i`` (used only when ``plan`` holds
    plain callables or ``PythonOp``s, whose output sizes are not declared).
    """
    path = getattr(pack, "path", "the pack")
    if plan.shapes_known:
        return _static_size(path, plan, channels, pack)
    index = pack.index
    h0, w0 = int(index["height"][0]), int(index["width"][0])
    assumed = plan.output_shape((h0, w0, channels))
    first = _try(probe, 0)
    if first is None:
        return int(assumed[0]), int(assumed[1])
    other = np.flatnonzero(
        (np.asarray(index["height"]) != h0) | (np.asarray(index["width"]) != w0)
    )[:1]
    if len(other):
        j = int(other[0])
        second = _try(probe, j)
        if second is not None and second.shape[:2] != first.shape[:2]:
            (a, b), (c, d) = first.shape[:2], second.shape[:2]
            raise UsageError(
                f"{path}: the pipeline's output size follows each image (sample 0 came out "
                f"{a}x{b}, sample {j} {c}x{d}); {FIX}, or make the callable return one size."
            )
    return int(first.shape[0]), int(first.shape[1])


def _try(probe: Callable[[int], np.ndarray], index: int) -> np.ndarray | None:
    try:
        out = np.asarray(probe(index))
    except Exception:  # decided at run time, under on_error
        return None
    return out if out.ndim in (2, 3) else None


def failure_advice(pack: Any, index: int) -> str:
    """What to do about sample ``index`` that failed in the loader: if its image reads
    fine the pipeline failed on it (re-packing would not help), else the data is bad."""
    try:
        pack[index]
    except Exception:
        return "it cannot be read: pixpack verify finds damaged samples; re-pack it, or pass "
    return (
        "its image reads fine, so an op failed on it: fix the pipeline (a plain callable "
        "gets an HWC NumPy image; wrap a torchvision transform as ops.PythonOp(t)), or pass "
    )
