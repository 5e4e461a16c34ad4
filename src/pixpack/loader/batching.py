"""Per-sample execution: read, decode (region-of-interest for JPEG), augment, write.

One task is a run of consecutive positions of one batch. A thread executes it sample
by sample with GIL-releasing kernels (libjpeg via ``decode_jpeg``, OpenCV, numpy) and
writes every result straight into its slot of the batch buffer, so results never
depend on which thread ran which sample, nor in which order.

Per sample:
- the random generator is ``sample_rng(seed, epoch, index)``;
- raw samples are zero-copy views of the memory map (``np.frombuffer``), so a crop is
  a view too and only the resized output is ever written;
- lossless samples decode only the bands of rows a leading region op's box covers (all
  of them otherwise), bounded by their recorded shape, then go on as raw ones do;
- JPEG samples whose pipeline starts with a :class:`~pixpack.ops.base.RegionOp` decode
  only the op's source box at the largest DCT reduction that still covers the output
  (``choose_scale``), then run ``apply_region``; other JPEG samples decode in full;
- anything in the pipeline without ``make_params``/``apply`` is called as
  ``fn(image) -> image`` with Python's, NumPy's and torch's global generators seeded
  for the sample, under a lock (the slow, flexible, deterministic escape hatch);
- flips at the end of the pipeline become views (``img[:, ::-1]``), written out by the
  fused native store in the same pass as Normalize: a flip costs nothing (their
  parameters are still drawn in order, so the output is the same either way);
- a bilinear ``RandomResizedCrop``/``Resize((h, w))`` followed only by flips takes the
  native fast path of :mod:`.fused` (one C call per sample, one per chunk of raw
  samples), with bit-identical output.

Attribute lookups are hoisted into locals and nothing but the kernels' outputs is
allocated per sample: the per-sample Python cost is a few microseconds.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .. import format as fmt
from ..errors import CorruptPackError, LoaderError, PipelineError, UnsupportedModeError, UsageError
from ..ops.base import sample_rng
from ..read.lossless import decode_lossless_rows
from .buffers import BatchBuffer
from .convert import OutputSpec, native_store_available, write_sample
from .fused import FusedPlan, fused_plan
from .validate import failure_advice

__all__ = ["SamplePlan", "SampleReader", "run_chunk", "fill_chunk", "split_pipeline"]

# One generator per worker thread, re-keyed for every sample: building a Philox from
# scratch gathers OS entropy for a seed sequence it then overwrites (~20 us held GIL).
_local = threading.local()


def _thread_rng() -> np.random.Generator:
    rng = getattr(_local, "rng", None)
    if rng is None:
        rng = _local.rng = sample_rng(0, 0, 0)
    return rng


def split_pipeline(pipeline: Any) -> tuple[list[Any], Any, Any]:
    """``(augmentations, Normalize or None, ToOutput or None)`` of a pipeline.

    ``pipeline`` is a :class:`pixpack.ops.Pipeline` or a plain list of ops, in which a
    ``Normalize`` and a ``ToOutput`` (from :mod:`pixpack.ops`) describe the fused final
    conversion. Plain callables are allowed in a list (run as ``fn(image)``).
    """
    from ..ops import Normalize, ToOutput

    if hasattr(pipeline, "ops") and hasattr(pipeline, "normalize") and hasattr(pipeline, "output"):
        return list(pipeline.ops), pipeline.normalize, pipeline.output
    ops, normalize, output = [], None, None
    for op in pipeline:
        if isinstance(op, ToOutput):
            if output is not None:
                raise UsageError("pipeline: ToOutput given twice; keep one, at the end.")
            output = op
        elif isinstance(op, Normalize):
            if normalize is not None:
                raise UsageError("pipeline: Normalize given twice; keep one, after the ops.")
            normalize = op
        elif normalize is not None or output is not None:
            raise UsageError(
                f"pipeline: {type(op).__name__} comes after Normalize/ToOutput; "
                "put augmentations first."
            )
        elif not (_is_op(op) or callable(op)):
            raise UsageError(f"pipeline: {op!r} is neither an op nor a callable.")
        else:
            ops.append(op)
    return ops, normalize, output


class SamplePlan:
    """The augmentation ops, split into an optional leading region op and the rest.

    ``steps`` is a tuple of ``(make_params, apply)`` pairs; a plain callable runs as a
    :class:`~pixpack.ops.python_op.SeededCall`.
    """

    def __init__(self, ops: Sequence[Any]) -> None:
        self.ops = tuple(ops)
        first = self.ops[0] if self.ops else None
        self.region_op = first if _is_region_op(first) else None
        rest = self.ops[1:] if self.region_op is not None else self.ops
        steps = [_step(op) for op in rest]
        if native_store_available():
            for k in range(len(rest) - 1, -1, -1):  # the trailing run of flips
                view = _flip_view(rest[k])
                if view is None:
                    break
                steps[k] = (rest[k].make_params, view)
        self.steps: tuple[tuple[Callable[..., Any] | None, Callable[..., Any]], ...] = tuple(steps)
        self.fused: FusedPlan | None = fused_plan(self.region_op, tuple(rest))

    @property
    def shapes_known(self) -> bool:
        """Whether :meth:`output_shape` is exact: only pixpack ops, whose output shapes
        are declared (a plain callable or ``PythonOp`` is only assumed to keep it)."""
        from ..ops import PythonOp

        return all(_is_op(op) and not isinstance(op, PythonOp) for op in self.ops)

    def output_shape(self, shape: tuple[int, int, int]) -> tuple[int, int, int]:
        """Shape of the output for an input of ``shape`` (plain callables are assumed
        to keep the shape)."""
        for op in self.ops:
            if _is_op(op):
                shape = tuple(op.output_shape(shape))  # type: ignore[assignment]
        return shape

    def output_dtype(self, dtype: np.dtype) -> np.dtype:
        """Pixel type of the output for input pixels of ``dtype``: ops that change it
        (intensity ops giving float32) say so with ``output_dtype``; others keep it."""
        for op in self.ops:
            change = getattr(op, "output_dtype", None)
            if callable(change):
                dtype = np.dtype(change(dtype))
        return np.dtype(dtype)


def _gray_to_rgba(img: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Gray replicated to R, G and B, with an opaque alpha (as packing converts LA)."""
    out = np.empty((*img.shape[:2], 4), dtype)
    out[:, :, :3] = img
    out[:, :, 3] = np.iinfo(dtype).max if dtype.kind in "ui" else 1.0
    return out


def _flip_h(img: np.ndarray, flip: bool) -> np.ndarray:
    return img[:, ::-1] if flip else img


def _flip_v(img: np.ndarray, flip: bool) -> np.ndarray:
    return img[::-1] if flip else img


def _flip_view(op: Any) -> Callable[[np.ndarray, bool], np.ndarray] | None:
    """The zero-copy apply of a pixpack flip op (exact types: a subclass may do more)."""
    from ..ops import RandomHorizontalFlip, RandomVerticalFlip

    if type(op) is RandomHorizontalFlip:
        return _flip_h
    if type(op) is RandomVerticalFlip:
        return _flip_v
    return None


def _step(op: Any) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """``(make_params, apply)``; a plain callable runs with the global RNGs (Python's
    ``random``, NumPy's, torch's) seeded per sample, so it is deterministic too."""
    if _is_op(op):
        return op.make_params, op.apply
    from ..ops.python_op import SeededCall

    call = SeededCall(op)
    return call.make_params, call.apply


def _is_op(op: Any) -> bool:
    return hasattr(op, "make_params") and hasattr(op, "apply") and hasattr(op, "output_shape")


def _is_region_op(op: Any) -> bool:
    return _is_op(op) and hasattr(op, "region") and hasattr(op, "apply_region")


class SampleReader:
    """Turns a sample index into the pipeline's HWC output.

    Index columns are held as numpy views of the pack's memory-mapped index (no copy,
    no per-epoch growth).
    """

    def __init__(self, pack: Any, pipeline: SamplePlan, seed: int) -> None:
        index = pack.index
        self.pack = pack
        self.pipeline = pipeline
        self.seed = seed
        self.height = index["height"]
        self.width = index["width"]
        self.channels = index["channels"]
        self.dtype_code = index["dtype"]
        self.mode = index["mode"]
        self._dtypes = {
            code: np.dtype(dt).newbyteorder("<") for code, dt in fmt.DTYPE_FROM_CODE.items()
        }
        # bytes per value by dtype code, for whole-chunk arithmetic (0: unknown code)
        self.itemsize_table = np.zeros(256, np.int64)
        for code, dt in self._dtypes.items():
            self.itemsize_table[code] = dt.itemsize
        self._decode: Callable[..., np.ndarray] | None = None
        self._choose_scale: Callable[..., int] | None = None

    def jpeg_codec(self) -> tuple[Callable[..., np.ndarray], Callable[..., int]]:
        """``(decode_jpeg, choose_scale)``, imported on first use."""
        if self._decode is None:
            from ..read.jpeg import choose_scale, decode_jpeg

            self._decode, self._choose_scale = decode_jpeg, choose_scale
        return self._decode, self._choose_scale  # type: ignore[return-value]

    def decode_lossless(
        self, index: int, data: Any, shape: tuple[int, int, int], code: int,
        rows: tuple[int, int] | None = None, scratch: np.ndarray | None = None,
    ) -> tuple[np.ndarray, int]:  # fmt: skip
        """``(pixels, first row)`` of lossless sample ``index``: the whole image, or the
        bands covering ``rows`` (top, bottom); never larger than ``shape``; into
        ``scratch`` when it is large enough. A damaged sample raises
        :class:`CorruptPackError`."""
        dtype = self._dtypes.get(code)
        if dtype is None:
            raise UnsupportedModeError(f"sample {index} uses pixel type code {code}, unknown to "
                                       "this version; upgrade pixpack")  # fmt: skip
        top, bottom = (0, shape[0]) if rows is None else rows
        try:
            return decode_lossless_rows(data, shape, dtype, top, bottom, scratch)
        except ValueError as exc:
            path = getattr(self.pack, "path", "the pack")
            raise CorruptPackError(
                f"{path}: sample {index} is not a decodable lossless sample ({exc}); "
                f"run `pixpack verify {path}` and re-pack",
                path,
            ) from None

    def __call__(
        self, index: int, epoch: int, rng: np.random.Generator | None = None
    ) -> np.ndarray:
        """The pipeline output of sample ``index`` (``rng``: a generator to re-key)."""
        i = int(index)
        row = (
            int(self.height[i]),
            int(self.width[i]),
            int(self.channels[i]),
            int(self.dtype_code[i]),
            int(self.mode[i]),
        )
        return self.sample(i, epoch, row, sample_rng(self.seed, epoch, i, rng))

    def rows(self, indices: np.ndarray) -> list[tuple[int, int, int, int, int]]:
        """``(height, width, channels, dtype code, mode)`` of each index, as Python ints.

        One fancy index per column for a whole chunk: reading numpy scalars one
        sample at a time costs more GIL-held time than the rest of the bookkeeping.
        """
        cols = (self.height, self.width, self.channels, self.dtype_code, self.mode)
        return list(zip(*(col[indices].tolist() for col in cols), strict=True))

    def sample(
        self,
        index: int,
        epoch: int,
        row: tuple[int, int, int, int, int],
        rng: np.random.Generator,
    ) -> np.ndarray:
        """The pipeline output of sample ``index`` whose index row is ``row``, drawing
        its parameters from ``rng`` (already keyed for ``(seed, epoch, index)``)."""
        height, width, channels, code, mode = row
        shape = (height, width, channels)
        data = self.pack.sample_bytes(index)
        region_op = self.pipeline.region_op
        if mode == fmt.MODE_RAW:
            img = np.frombuffer(data, dtype=self._dtypes[code]).reshape(shape)
            if region_op is not None:
                img = region_op.apply(img, region_op.make_params(rng, shape))
        elif mode == fmt.MODE_JPEG:
            decode, choose_scale = self.jpeg_codec()
            if region_op is not None:
                params = region_op.make_params(rng, shape)
                box = region_op.region(params, shape)
                out_h, out_w = box.size
                scale = choose_scale(box.height, box.width, out_h, out_w)
                crop = decode(data, region=(box.top, box.left, box.height, box.width), scale=scale)
                img = region_op.apply_region(crop, params)
            else:
                img = decode(data)
        elif mode == fmt.MODE_LOSSLESS:
            if region_op is None:
                img = self.decode_lossless(index, data, shape, code)[0]
            else:  # only the bands of rows the op's box covers
                params = region_op.make_params(rng, shape)
                b = region_op.region(params, shape)
                top, bottom, left, right = b.top, b.top + b.height, b.left, b.left + b.width
                if 0 <= top <= bottom <= height and 0 <= left <= right <= width:
                    rows, first = self.decode_lossless(index, data, shape, code, (top, bottom))
                    crop = rows[top - first : bottom - first, left:right]
                    img = region_op.apply_region(crop, params)
                else:
                    img = region_op.apply(self.decode_lossless(index, data, shape, code)[0], params)
        else:
            raise UnsupportedModeError(
                f"sample {index} uses storage mode {mode}, unknown to this version; "
                + "upgrade pixpack"
            )
        for make_params, apply in self.pipeline.steps:
            if make_params is None:
                img = np.asarray(apply(img))
            else:
                img = apply(img, make_params(rng, img.shape))
        return img


def run_chunk(
    read: SampleReader,
    indices: np.ndarray,
    epoch: int,
    work: np.ndarray,
    spec: OutputSpec,
    ok: np.ndarray,
    fail: Callable[[int, BaseException], None],
) -> None:
    """Process ``indices`` into ``work[0:len(indices)]`` (a view of the batch buffer).

    ``ok[j]`` is set False for a sample that failed; ``fail(index, exc)`` decides
    whether that raises (the "raise" policy) or is recorded and skipped.
    """
    fused = read.pipeline.fused
    todo = range(len(indices)) if fused is None else fused.run(read, indices, epoch, work, spec, ok)
    if not todo:  # the fast path did the whole chunk
        return
    planes = [np.empty((spec.height, spec.width), spec.pixel_dtype) for _ in range(spec.channels)]
    # Per-task bookkeeping hoisted out of the sample loop: the index rows of the whole
    # chunk in one go and one generator, re-keyed per sample (see ``sample_rng``).
    ids = indices.tolist()
    rows = read.rows(indices)
    seed, sample = read.seed, read.sample
    rng = _thread_rng()
    # A pack mixing 8- and 16-bit images has a 16-bit output range: an 8-bit result is
    # widened exactly (255 * 257 = 65535) so white is white in both.
    widen = spec.pixel_dtype == np.uint16
    rgba = spec.channels == 4  # a gray sample gets an opaque alpha, not a gray one
    for j in todo:
        index = ids[j]
        try:
            img = sample(index, epoch, rows[j], sample_rng(seed, epoch, index, rng))
            if widen and img.dtype == np.uint8:
                img = img.astype(np.uint16) * np.uint16(257)
            if rgba and img.ndim == 3 and img.shape[2] == 1:
                img = _gray_to_rgba(img, spec.pixel_dtype)
            write_sample(img, work[j], spec, planes)
        except Exception as exc:
            ok[j] = False
            fail(index, exc)
        else:
            ok[j] = True


def fill_chunk(
    reader: SampleReader,
    indices: np.ndarray,
    epoch: int,
    buf: BatchBuffer,
    start: int,
    stop: int,
    spec: OutputSpec,
    raise_errors: bool,
    path: Any,
) -> None:
    """One chunk of one batch, run on a worker thread (holds no loader reference)."""

    def fail(index: int, exc: BaseException) -> None:
        if isinstance(exc, PipelineError):  # the pipeline, not the sample: skipping drops all
            raise LoaderError(f"{path}: sample {index}: {exc}", index) from exc
        if raise_errors:
            raise LoaderError(
                f"{path}: sample {index} failed ({type(exc).__name__}: {exc}); "
                f"{failure_advice(reader.pack, index)}on_error='skip' to drop such samples",
                index,
            ) from exc
        buf.failures.append((index, exc))

    run_chunk(reader, indices, epoch, buf.work[start:stop], spec, buf.ok[start:stop], fail)
    buf.finish_chunk(start, stop)
