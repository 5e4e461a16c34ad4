"""The native fast path: crop, resize, flips, Normalize and layout in one C call.

When a pipeline is a bilinear box op (``RandomResizedCrop``, or ``Resize`` to a fixed
``(h, w)``) followed by nothing but flips, a sample's whole job is one call of
``pixpack._native._resample`` straight into its slot of the batch buffer:

- raw samples of a chunk go to ``resize_chunk`` together: the chunk's parameters are
  drawn in Python (the generator and ``make_params``, a few microseconds a sample),
  then one GIL release covers every sample's pixels. Per-sample GIL-held work was the
  limit on thread scaling (see docs/loader.md);
- JPEG samples decode their region at the reduced DCT scale (GIL released), then one
  ``resize`` call writes the slot.

The output is bit-identical to the general path (``apply`` then ``write_sample``):
the kernel rounds to pixel values before ``x * alpha + beta``, exactly as a resize to
pixels followed by the store does, and the parameters are drawn in the same order from
the same generator. Anything the fast path cannot take (other storage modes, entries
outside the data region or whose length does not match their shape, every sample of a
checksum-checking pack, a shape the kernel rejects) is handed back to the general
path, which handles or reports it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .. import format as fmt
from ..ops.base import sample_rng
from .convert import OutputSpec

try:
    from .._native._resample import resize as _resize
    from .._native._resample import resize_chunk as _resize_chunk
except ImportError:  # no C compiler at install time: the general path
    _resize = _resize_chunk = None

__all__ = ["FusedPlan", "fused_plan"]

_H_FLIP, _V_FLIP = 1, 2


class FusedPlan:
    """A bilinear box op plus trailing flips, run natively.

    ``flips`` is a tuple of ``(make_params, bit)``: each flip still draws its parameter
    in pipeline order; ``bit`` is 1 (horizontal) or 2 (vertical), XORed together.
    """

    def __init__(self, region_op: Any, flips: tuple[tuple[Callable[..., Any], int], ...]) -> None:
        self.region_op = region_op
        self.flips = flips
        self.antialias = bool(region_op.antialias)

    def run(
        self,
        read: Any,
        indices: np.ndarray,
        rows: list[tuple[int, int, int, int, int]],
        epoch: int,
        work: np.ndarray,
        spec: OutputSpec,
        ok: np.ndarray,
        rng: np.random.Generator,
    ) -> list[int]:
        """Write every sample it can into ``work[j]`` (setting ``ok[j]``); return the
        positions ``j`` left for the general path."""
        seed, ids = read.seed, indices.tolist()
        make_box, out_shape = self.region_op.make_params, self.region_op.output_shape
        flips, itemsize = self.flips, read.itemsize
        buffer, offsets, nbytes = read.pack.sample_spans(indices)
        offsets, nbytes = offsets.tolist(), nbytes.tolist()
        chw = spec.layout == "NCHW"
        alpha, beta = (spec.alpha, spec.beta) if spec.is_float else (None, None)
        raw, jpeg = fmt.MODE_RAW, fmt.MODE_JPEG
        jobs: list[tuple[int, ...]] = []
        rest: list[int] = []
        for j, index in enumerate(ids):
            height, width, channels, code, mode = shape = rows[j]
            r = sample_rng(seed, epoch, index, rng)
            box = make_box(r, shape[:3])
            flip = 0
            if flips:
                after = out_shape(shape[:3])
                for make_params, bit in flips:
                    if make_params(r, after):
                        flip ^= bit
            item = itemsize.get(code, 0)
            if mode == raw and nbytes[j] == height * width * channels * item:
                jobs.append(
                    (offsets[j], height, width, channels, item,
                     box.top, box.left, box.height, box.width, flip, j)
                )  # fmt: skip
            elif mode == jpeg and self._jpeg(read, index, box, flip, work[j], chw, alpha, beta):
                ok[j] = True
            else:
                rest.append(j)
        if jobs:
            done = np.zeros(len(jobs), np.bool_)
            table = np.array(jobs, np.int64)
            _resize_chunk(buffer, table, work, alpha, beta, chw, self.antialias, done)
            ok[table[done, 10]] = True
            rest.extend(table[~done, 10].tolist())
        return rest

    def _jpeg(
        self,
        read: Any,
        index: int,
        box: Any,
        flip: int,
        slot: np.ndarray,
        chw: bool,
        alpha: Any,
        beta: Any,
    ) -> bool:
        """Decode the box at the reduced scale and resize it into ``slot``; False (the
        general path then retries and reports) on any failure."""
        try:
            decode, choose_scale = read.jpeg_codec()
            out_h, out_w = box.size
            scale = choose_scale(box.height, box.width, out_h, out_w)
            data = read.pack.sample_bytes(index)
            crop = decode(data, region=(box.top, box.left, box.height, box.width), scale=scale)
            _resize(crop, (0, 0, crop.shape[0], crop.shape[1]), slot, alpha, beta, chw, flip,
                    self.antialias)  # fmt: skip
        except Exception:
            return False
        return True


def fused_plan(region_op: Any, rest: tuple[Any, ...]) -> FusedPlan | None:
    """The fast path for ``region_op`` followed by ``rest``, or None when it does not
    apply (no native kernel, another op or interpolation, a size that varies)."""
    from ..ops import RandomHorizontalFlip, RandomResizedCrop, RandomVerticalFlip, Resize

    if _resize_chunk is None or region_op is None:
        return None
    if type(region_op) not in (RandomResizedCrop, Resize) or region_op.interpolation != "bilinear":
        return None
    if type(region_op) is Resize and not isinstance(region_op.size, tuple):
        return None  # the output size follows the image: not one batch shape
    flips = []
    for op in rest:
        if type(op) is RandomHorizontalFlip:
            flips.append((op.make_params, _H_FLIP))
        elif type(op) is RandomVerticalFlip:
            flips.append((op.make_params, _V_FLIP))
        else:
            return None
    return FusedPlan(region_op, tuple(flips))
