"""The native fast path: crop, resize, flips, Normalize and layout in one C call.

When a pipeline is a bilinear box op (``RandomResizedCrop``, or ``Resize`` to a fixed
``(h, w)``) followed by nothing but flips, a sample's whole job is one call of
``pixpack._native._resample`` straight into its slot of the batch buffer:

- the chunk's random parameters come from one ``draw_boxes`` call: the same Philox
  stream, uniforms and RandomResizedCrop/flip logic as the Python ops, natively (in
  Python they were ~12 us of GIL-held time per sample next to a ~95 us kernel);
- raw samples of the chunk go to ``resize_chunk`` together: one GIL release covers
  every sample's pixels;
- so do JPEG samples, to ``resize_jpeg_chunk``: each decodes its region at the
  reduced DCT scale straight into its thread's strip buffer (no copy of the rows) and
  is resized from there. Per sample from Python they were two GIL round trips and
  ~15 us of Python, and whenever anything else held the GIL (a training step's Python,
  TensorFlow's iterator) the loader threads queued for it between samples: 1 ms of
  Python per batch in the consuming loop cost ~10% of the rate, 1 ms of GIL-free work
  ~2% (measured, 2 threads on 2 cores). A checksum-checking pack's JPEG samples,
  which must be read through ``sample_bytes``, still decode one call each;
- lossless samples decode the bands of rows the box covers (GIL released), then one
  ``resize`` call reads the box.

The output is bit-identical to the general path (``make_params``, ``apply``, then
``write_sample``): the parameters are the same draws, and the kernel rounds to pixel
values before ``x * alpha + beta``, exactly as a resize to pixels then the store does.
Anything the fast path cannot take (other storage modes, entries outside the data
region or whose length does not match their shape, every sample of a checksum-checking
pack, a shape the kernel rejects) is handed back to the general path, which handles or
reports it.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from .. import format as fmt
from ..read.jpeg import choose_scales
from .convert import OutputSpec

try:
    from .._native._resample import draw_boxes as _draw_boxes
    from .._native._resample import resize as _resize
    from .._native._resample import resize_chunk as _resize_chunk
    from .._native._resample import resize_jpeg_chunk as _resize_jpeg_chunk
except ImportError:  # no C compiler at install time: the general path
    _draw_boxes = _resize = _resize_chunk = _resize_jpeg_chunk = None
try:  # the chunk's JPEG decoder (libjpeg headers at install time)
    from .._native import _jpeg as _jpeg_native
except ImportError:
    _jpeg_native = None

__all__ = ["FusedPlan", "fused_plan"]

_local = threading.local()  # per decode thread: the lossless scratch buffer

_H_FLIP, _V_FLIP = 1, 2
_M64 = (1 << 64) - 1
_MAX_FLIPS = 8  # flips _native/draw.c draws per sample (a fixed array there)


class FusedPlan:
    """A bilinear box op plus trailing flips, run natively.

    ``flips`` is a tuple of ``(p, bit)`` in pipeline order: each flip draws one
    uniform and applies when it is below ``p``; ``bit`` is 1 (horizontal) or 2
    (vertical), XORed together.
    """

    def __init__(self, region_op: Any, flips: tuple[tuple[float, int], ...]) -> None:
        self.region_op = region_op
        self.flips = flips
        self.antialias = bool(region_op.antialias)
        self.size: tuple[int, int] = tuple(region_op.size)  # type: ignore[assignment]
        # RandomResizedCrop's draw constants for draw_boxes; None: a fixed Resize
        self.rrc = (*region_op._draw, *region_op.ratio) if hasattr(region_op, "_draw") else None

    def run(
        self,
        read: Any,
        indices: np.ndarray,
        epoch: int,
        work: np.ndarray,
        spec: OutputSpec,
        ok: np.ndarray,
    ) -> list[int]:
        """Write every sample it can into ``work[j]`` (setting ``ok[j]``); return the
        positions ``j`` left for the general path, in batch order."""
        indices = np.ascontiguousarray(indices, np.int64)
        heights = read.height[indices].astype(np.int64)
        widths = read.width[indices].astype(np.int64)
        # An empty image (a damaged index) cannot be drawn for: give it a 1x1 stand-in
        # here and leave it to the general path, which reports it through on_error.
        empty = (heights < 1) | (widths < 1)
        if empty.any():
            heights, widths = np.maximum(heights, 1), np.maximum(widths, 1)
        boxes = np.empty((len(indices), 5), np.int64)  # top, left, box_h, box_w, flip
        _draw_boxes(
            read.seed & _M64, epoch & _M64, indices, heights, widths, self.rrc, self.flips, boxes
        )
        modes = read.mode[indices]
        channels = read.channels[indices].astype(np.int64)
        items = read.itemsize_table[read.dtype_code[indices]]
        buffers, which, offsets, nbytes = _span_buffers(read.pack, indices)
        # Left to the general path: samples of another bit depth than the output range
        # (8-bit among 16-bit images: widened) and gray samples of an RGBA batch (they
        # get an opaque alpha); the kernels only copy or replicate channels.
        depth = spec.pixel_dtype.itemsize
        # The native kernels read 8- and 16-bit unsigned pixels of 1, 3 or 4 channels.
        plain = ~((spec.channels == 4) & (channels == 1)) & np.isin(channels, (1, 3, 4))
        plain &= np.isin(read.dtype_code[indices], (0, 1)) & (spec.pixel_dtype.kind == "u")
        raw = (
            (modes == fmt.MODE_RAW)
            & (nbytes == heights * widths * channels * items)
            & (items == depth)
            & plain
        )
        jpeg = (modes == fmt.MODE_JPEG) & (depth == 1) & plain & ~empty
        lossless = (modes == fmt.MODE_LOSSLESS) & (items == depth) & plain & ~empty
        raw &= ~empty
        chw = spec.layout == "NCHW"
        alpha, beta = (spec.alpha, spec.beta) if spec.is_float else (None, None)
        rest: list[int] = []
        # JPEG samples with a span (not a checksum-checking pack's) go native together,
        # into the slots the kernel writes (float32, or pixels: uint8).
        native = _jpeg_native is not None and work.dtype in (np.float32, np.uint8)
        chunked = jpeg & (nbytes > 0) & native
        if chunked.any():
            rest.extend(self._jpeg_chunk(np.flatnonzero(chunked), boxes, buffers, which,
                                         offsets, nbytes, work, chw, alpha, beta, ok))  # fmt: skip
        for j in np.flatnonzero(~raw & ~chunked).tolist():
            top, left, bh, bw, flip = boxes[j].tolist()
            box = (top, left, bh, bw)
            if jpeg[j] and self._decoded(read, int(indices[j]), None, box, flip, work[j], chw,
                                         alpha, beta):  # fmt: skip
                ok[j] = True
            elif lossless[j] and nbytes[j] >= 0 and self._decoded(
                read, int(indices[j]), (buffers[which[j]], int(offsets[j]), int(nbytes[j]),
                (int(heights[j]), int(widths[j]), int(channels[j]))), box, flip, work[j], chw,
                alpha, beta,
            ):  # fmt: skip
                ok[j] = True
            else:
                rest.append(j)
        sel = np.flatnonzero(raw)
        if sel.size:
            table = np.empty((sel.size, 11), np.int64)
            for col, values in enumerate((offsets, heights, widths, channels, items)):
                table[:, col] = values[sel]
            table[:, 5:10] = boxes[sel]
            table[:, 10] = sel
            done = np.zeros(sel.size, np.bool_)
            if len(buffers) == 1:
                _resize_chunk(buffers[0], table, work, alpha, beta, chw, self.antialias, done)
            else:  # one call over the files (shards) the chunk lies in: a 12th column
                table = np.concatenate((table, which[sel, None].astype(np.int64)), axis=1)
                _resize_chunk(tuple(buffers), table, work, alpha, beta, chw, self.antialias,
                              done)  # fmt: skip
            ok[sel[done]] = True
            rest.extend(sel[~done].tolist())
        return sorted(rest)

    def _jpeg_chunk(
        self,
        sel: np.ndarray,
        boxes: np.ndarray,
        buffers: tuple[Any, ...],
        which: np.ndarray,
        offsets: np.ndarray,
        nbytes: np.ndarray,
        work: np.ndarray,
        chw: bool,
        alpha: Any,
        beta: Any,
        ok: np.ndarray,
    ) -> list[int]:
        """Decode and resize the JPEG samples at ``sel`` in one native call, each at
        the largest DCT scale that still covers the output (:func:`choose_scale`);
        return the positions it could not do (left to the general path)."""
        multi = len(buffers) > 1  # a sharded pack: a 10th column names each row's shard
        table = np.empty((sel.size, 10 if multi else 9), np.int64)
        table[:, 0] = offsets[sel]
        table[:, 1] = nbytes[sel]
        table[:, 2:7] = boxes[sel]
        table[:, 7] = sel
        table[:, 8] = choose_scales(boxes[sel, 2], boxes[sel, 3], *self.size)
        if multi:
            table[:, 9] = which[sel]
        done = np.zeros(sel.size, np.bool_)
        try:
            _resize_jpeg_chunk(tuple(buffers) if multi else buffers[0], table, work, alpha,
                               beta, chw, self.antialias, done)  # fmt: skip
        except MemoryError:
            done[:] = False  # the general path tries each again, and reports
        ok[sel[done]] = True
        return sel[~done].tolist()

    def _decoded(
        self,
        read: Any,
        index: int,
        span: tuple[memoryview, int, int, tuple[int, int, int]] | None,
        box: tuple[int, int, int, int],
        flip: int,
        slot: np.ndarray,
        chw: bool,
        alpha: Any,
        beta: Any,
    ) -> bool:
        """Decode what the box needs of a JPEG sample (``span`` None) or of a lossless
        one (``span``: the map, its offset and length, its shape: checked spans of the
        chunk, as raw samples use), GIL released, and resize the box into ``slot``;
        False (the general path then retries and reports) on any failure."""
        try:
            if span is None:  # JPEG: the box only, at the reduced DCT scale
                decode, choose_scale = read.jpeg_codec()
                scale = choose_scale(box[2], box[3], *self.size)
                bound = int(read.height[index]) * int(read.width[index]) * 3
                img = decode(read.pack.sample_bytes(index), region=box, scale=scale,
                             scratch=_scratch(bound))  # fmt: skip
                box = (0, 0, img.shape[0], img.shape[1])
            else:  # lossless: the bands of rows the box covers
                buffer, offset, nbytes, shape = span
                top, left, bh, bw = box
                img, first = read.decode_lossless(
                    index, buffer[offset : offset + nbytes], shape, int(read.dtype_code[index]),
                    (top, top + bh), _scratch(shape[0] * shape[1] * shape[2] * 4),
                )  # fmt: skip
                box = (top - first, left, bh, bw)
            _resize(img, box, slot, alpha, beta, chw, flip, self.antialias)
        except Exception:
            return False
        return True


def _span_buffers(pack: Any, indices: np.ndarray) -> tuple[Any, np.ndarray, Any, Any]:
    """``(buffers, which, offsets, nbytes)``: sample ``j`` lies at ``offsets[j]`` in
    ``buffers[which[j]]``. A sharded pack answers with one buffer per shard (no copy);
    a pack with its one map."""
    by_file = getattr(pack, "sample_span_buffers", None)
    if by_file is not None:
        return by_file(indices)
    buffer, offsets, nbytes = pack.sample_spans(indices)
    return (buffer,), np.zeros(len(indices), np.intp), offsets, nbytes


def _scratch(nbytes: int) -> np.ndarray:
    """This thread's reused decode buffer, at least ``nbytes`` long: decoded samples are
    resized into their slot at once, and a fresh ~0.2-0.5 MB array per sample would
    cost its page faults every time once glibc returns such blocks to the kernel (it
    does above a fixed ``M_MMAP_THRESHOLD``: TensorFlow sets 128 KB, and through
    ``pixpack.tf`` each loader thread then took ~1,100 page faults per 2,000-image
    epoch, and its unmaps, ~5% more CPU in its chunks)."""
    buf = getattr(_local, "scratch", None)
    if buf is None or buf.size < nbytes:
        buf = _local.scratch = np.empty(nbytes, np.uint8)
    return buf


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
            flips.append((float(op.p), _H_FLIP))
        elif type(op) is RandomVerticalFlip:
            flips.append((float(op.p), _V_FLIP))
        else:
            return None
    if len(flips) > _MAX_FLIPS:
        return None  # draw_boxes keeps the flip draws in a fixed array
    return FusedPlan(region_op, tuple(flips))
