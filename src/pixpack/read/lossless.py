"""Decode a ``lossless`` sample (layout: ``format.LOSSLESS_*``), bounded by its shape.

The index's shape fixes every size before a byte of the sample is trusted: the number
of bands follows from the height and the band height, each band decompresses to
exactly its rows' bytes (LZ4 is told that maximum, and the result must have that
length), and the band table must account for every stored byte. Anything else is a
``ValueError`` (callers turn it into ``CorruptPackError``); a codec or filter code this
version does not know is :class:`~pixpack.errors.UnsupportedModeError`.

Only the bands a crop needs are decoded (:func:`decode_lossless_rows`), all of them in
one GIL-free native call (``pixpack._native._lossless``: its own bounds-checked LZ4 block
decoder, then the filters); without the extension, the ``lz4`` package and numpy do the
same, band by band.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import format as fmt
from ..errors import UnsupportedModeError

try:
    from .._native._lossless import decode_rows as _decode_rows
except ImportError:  # no C compiler at install time: the lz4 package and numpy
    _decode_rows = None

__all__ = ["decode_lossless", "decode_lossless_rows"]

_H = fmt.LOSSLESS_HEADER_SIZE


def decode_lossless(data: Any, shape: tuple[int, int, int], dtype: np.dtype) -> np.ndarray:
    """Sample bytes ``data`` decoded to a new HWC array of ``shape`` and ``dtype``."""
    return decode_lossless_rows(data, shape, dtype, 0, shape[0])[0]


def decode_lossless_rows(
    data: Any,
    shape: tuple[int, int, int],
    dtype: np.dtype,
    top: int,
    bottom: int,
    scratch: np.ndarray | None = None,
) -> tuple[np.ndarray, int]:
    """``(rows, first)``: the bands covering rows ``top..bottom-1`` of the sample,
    decoded; ``rows[k]`` is the image's row ``first + k``. ``scratch``: a contiguous
    uint8 array to decode into when it is large enough (a view of it is returned:
    reusing one saves a fresh allocation's page faults per sample)."""
    mv = memoryview(data).cast("B")
    if len(mv) < _H:
        raise ValueError(f"{len(mv)} bytes are shorter than the lossless header")
    codec, kind, r0, r1 = mv[:4]
    if codec not in fmt.LOSSLESS_CODECS or kind not in fmt.LOSSLESS_FILTERS or r0 or r1:
        raise UnsupportedModeError(
            f"lossless codec {codec}, filter {kind} (reserved {r0}, {r1}) is unknown to this "
            "pixpack; upgrade pixpack (or the sample is damaged: run `pixpack verify`)"
        )
    h, w, c = shape
    if h < 1 or w < 1 or c < 1:
        raise ValueError(f"its shape {h}x{w}x{c} is empty")
    band = int.from_bytes(mv[4:8], "little")
    if band < 1:
        raise ValueError("its band height is 0")
    top, bottom = min(max(0, top), h - 1), min(h, bottom)
    first_band, last_band = top // band, max(top, bottom - 1) // band
    first = first_band * band
    rows = (min(h, (last_band + 1) * band) - first, w, c)
    size = rows[0] * w * c * dtype.itemsize
    if scratch is not None and scratch.size >= size:
        out = scratch[:size].view(dtype).reshape(rows)
    else:
        out = np.empty(rows, dtype)
    if _decode_rows is not None:  # every band in one GIL release, the table checked there
        _decode_rows(mv, out, h, w * c, dtype.itemsize, first_band)
        return out, first
    nbands = -(-h // band)
    table_end = _H + 4 * nbands
    if len(mv) < table_end:
        raise ValueError(f"{len(mv)} bytes cannot hold its table of {nbands} bands")
    sizes = np.frombuffer(mv[_H:table_end], "<u4").astype(np.int64)
    ends = table_end + np.cumsum(sizes)
    if int(ends[-1]) != len(mv):
        raise ValueError(f"its bands hold {int(ends[-1])} bytes, the sample {len(mv)}")
    starts = np.concatenate(([table_end], ends[:-1]))
    row_bytes = w * c * dtype.itemsize
    block = _lz4_block()
    for k in range(first_band, last_band + 1):
        y0, y1 = k * band, min(h, (k + 1) * band)
        expected = (y1 - y0) * row_bytes
        try:
            planes = block.decompress(
                mv[int(starts[k]) : int(ends[k])], uncompressed_size=expected
            )
        except Exception as exc:  # lz4.block.LZ4BlockError: a damaged block
            raise ValueError(f"band {k} is damaged ({exc})") from None
        if len(planes) != expected:
            raise ValueError(f"band {k} decompresses to {len(planes)} bytes, not {expected}")
        _undo(planes, out[y0 - first : y1 - first], kind)
    return out, first


def _undo(planes: bytes, out: np.ndarray, kind: int) -> None:
    if kind == fmt.LOSSLESS_FILTER_NONE:
        out.reshape(-1).view(np.uint8)[:] = np.frombuffer(planes, np.uint8)
    else:
        _unfilter_numpy(planes, out, kind == fmt.LOSSLESS_FILTER_UP)


def _unfilter_numpy(planes: bytes, out: np.ndarray, up: bool) -> None:
    size = out.dtype.itemsize
    udt = np.dtype(f"<u{size}")
    values = out.reshape(out.shape[0], -1).view(udt)
    flat = values.reshape(-1).view(np.uint8).reshape(-1, size)
    flat[:] = np.frombuffer(planes, np.uint8).reshape(size, -1).T
    if up:
        residual = (values >> np.uint8(1)) ^ (np.zeros((), udt) - (values & np.uint8(1)))
        np.cumsum(residual, axis=0, dtype=udt, out=values)


def _lz4_block() -> Any:
    try:
        import lz4.block
    except ImportError:
        raise UnsupportedModeError(
            "reading a lossless sample needs the lz4 package: pip install lz4 "
            "(a dependency of pixpack; was it installed with --no-deps?)"
        ) from None
    return lz4.block
