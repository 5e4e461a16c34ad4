"""Turn a decoded image array into the bytes a pack stores.

- ``raw``: the C-contiguous HWC little-endian pixels, exact, as a byte
  ``memoryview`` of the array (no copy: the writer checksums and writes the buffer).
- ``jpeg``: libjpeg-turbo through ``simplejpeg`` (releases the GIL), 4:2:0 chroma
  subsampling for colour. Only 8-bit 1- or 3-channel images can be JPEGs: 16-bit,
  signed, float and other channel counts are stored raw even in a jpeg pack (the
  packer warns with the count and the reason). The index records the mode of
  every sample, so readers never guess.
- ``lossless``: every pixel type and channel count, bit-exact, filtered and
  zstd-compressed (:mod:`.lossless`; the layout is ``format.LOSSLESS_*``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import format as fmt
from ..errors import UsageError
from .lossless import encode_lossless

__all__ = ["EncodedSample", "MAX_CHANNELS", "encode_sample", "jpeg_encodable"]

MAX_CHANNELS = 255  # the index's u1 channels field


@dataclass(frozen=True)
class EncodedSample:
    """Stored bytes plus the index fields that describe them."""

    data: bytes | memoryview  # memoryview: raw pixels, 1-D unsigned bytes
    height: int
    width: int
    channels: int
    dtype_code: int
    mode_code: int


def jpeg_encodable(array: np.ndarray) -> bool:
    """True when the array can be stored as JPEG (8-bit, 1 or 3 channels)."""
    return array.dtype == np.uint8 and array.ndim == 3 and array.shape[2] in (1, 3)


def encode_sample(array: np.ndarray, *, mode: str = "raw", quality: int = 90) -> EncodedSample:
    """Encode one HWC uint8/uint16/int16/float32 array; ``mode`` is ``"raw"``,
    ``"jpeg"`` (what JPEG cannot hold, see :func:`jpeg_encodable`, is stored raw) or
    ``"lossless"``."""
    if array.ndim != 3 or not 1 <= array.shape[2] <= MAX_CHANNELS:
        raise UsageError(
            f"encode_sample needs an HWC array with 1 to {MAX_CHANNELS} channels "
            f"(got {array.shape})."
        )
    dtype = array.dtype.newbyteorder("<")
    if dtype not in fmt.DTYPE_CODES:
        raise UsageError(
            f"encode_sample needs uint8, uint16, int16 or float32 pixels (got {array.dtype})."
        )
    height, width, channels = (int(n) for n in array.shape)
    dtype_code = fmt.DTYPE_CODES[dtype]
    if mode == "jpeg" and jpeg_encodable(array):
        import simplejpeg

        gray = channels == 1
        data = simplejpeg.encode_jpeg(
            np.ascontiguousarray(array),
            quality=quality,
            colorspace="GRAY" if gray else "RGB",
            colorsubsampling="Gray" if gray else "420",
        )
        return EncodedSample(data, height, width, channels, dtype_code, fmt.MODE_JPEG)
    if mode == "lossless":
        data = encode_lossless(np.ascontiguousarray(array, dtype=dtype))
        return EncodedSample(data, height, width, channels, dtype_code, fmt.MODE_LOSSLESS)
    if mode not in ("raw", "jpeg"):
        raise UsageError(f"mode must be 'raw', 'jpeg' or 'lossless' (got {mode!r}).")
    flat = np.ascontiguousarray(array, dtype=dtype).reshape(-1).view(np.uint8)
    data = memoryview(flat)
    return EncodedSample(data, height, width, channels, dtype_code, fmt.MODE_RAW)
