"""Encode a sample for the ``lossless`` storage mode (layout: ``format.LOSSLESS_*``).

The image is cut into bands of about ``BAND_BYTES`` of pixels (whole rows), so a
reader decodes only the bands a crop covers. Integer pixels (uint8, uint16, int16) get
the ``UP`` filter: each value minus the one a row above, zigzag-coded, split into byte
planes; float32 pixels get byte planes only (``SHUFFLE``). Each band is then one LZ4
block at high-compression level ``LZ4_LEVEL``: slow to write once, fast to read every
epoch. Chosen by measurement
(``benchmarks/results/2026-12-05-intel-xeon-2c-lossless-codecs.md``): on 12-bit CT-like
slices zstd compresses ~10% more but decodes 2.5x slower; PNG, JPEG-LS, JPEG 2000 and
JPEG XL compress 2.7-2.9x but decode 10-100x slower.
"""

from __future__ import annotations

import numpy as np

from .. import format as fmt
from ..errors import UsageError

__all__ = ["BAND_BYTES", "LZ4_LEVEL", "band_rows_for", "encode_lossless", "filter_values"]

BAND_BYTES = 64 << 10  # LZ4 matches reach back 64 KiB: larger bands compress no better
LZ4_LEVEL = 9  # LZ4 HC; 12 gains < 1% and encodes 3x slower


def band_rows_for(width: int, channels: int, itemsize: int) -> int:
    """Rows per band: as many as fit in ``BAND_BYTES`` (at least one)."""
    return max(1, BAND_BYTES // max(1, width * channels * itemsize))


def filter_values(array: np.ndarray) -> tuple[int, np.ndarray]:
    """``(LOSSLESS_FILTER_*, filtered bytes)`` of a C-contiguous HWC little-endian array
    (one band)."""
    size = array.dtype.itemsize
    values = array.reshape(array.shape[0], -1).view(np.dtype(f"<u{size}"))
    if array.dtype.kind == "f":
        kind, coded = fmt.LOSSLESS_FILTER_SHUFFLE, values
    else:
        kind = fmt.LOSSLESS_FILTER_UP
        residual = values.copy()
        np.subtract(values[1:], values[:-1], out=residual[1:])  # modular: unsigned wraps
        top = residual >> np.uint8(8 * size - 1)
        coded = (residual << np.uint8(1)) ^ (np.zeros((), residual.dtype) - top)
    planes = coded.reshape(-1).view(np.uint8).reshape(-1, size).T  # byte k of every value
    return kind, np.ascontiguousarray(planes)


def encode_lossless(array: np.ndarray) -> bytes:
    """The stored bytes of ``array`` (HWC, uint8/uint16/int16/float32, little-endian)."""
    block = _lz4_block()
    array = np.ascontiguousarray(array)
    h, w, c = array.shape
    rows = band_rows_for(w, c, array.dtype.itemsize)
    kind = fmt.LOSSLESS_FILTER_SHUFFLE if array.dtype.kind == "f" else fmt.LOSSLESS_FILTER_UP
    blocks = []
    for top in range(0, h, rows):
        _, planes = filter_values(array[top : top + rows])
        blocks.append(
            block.compress(planes, mode="high_compression", compression=LZ4_LEVEL, store_size=False)
        )
    head = bytes((fmt.LOSSLESS_CODEC_LZ4, kind, 0, 0)) + np.array([rows], "<u4").tobytes()
    sizes = np.array([len(b) for b in blocks], "<u4").tobytes()
    return b"".join((head, sizes, *blocks))


def _lz4_block():  # type: ignore[no-untyped-def]
    try:
        import lz4.block
    except ImportError:
        raise UsageError(
            "mode='lossless' needs the lz4 package: pip install lz4 "
            "(a dependency of pixpack; was it installed with --no-deps?)"
        ) from None
    return lz4.block
