"""JPEG files straight through libjpeg-turbo (simplejpeg), without Pillow.

Packing many JPEGs from threads needs the per-image Python work (which holds the GIL)
to be small: :func:`read_header` takes size and colour space from libjpeg-turbo and
the EXIF orientation from the APP1 segment, so Pillow parses nothing for the common
case. Anything unusual returns ``None`` and the caller uses Pillow, whose behaviour
(CMYK conversion, XMP orientation, decompression-bomb limits, error messages) is the
reference: the fast path must give exactly what Pillow's path gives.

:func:`decode` is strict: damaged entropy-coded data is an error (Pillow would return
grey blocks); only harmless libjpeg warnings are tolerated.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from PIL import Image

from ..errors import ImageDecodeError
from .pixel_limit import check_pixels

__all__ = ["JpegHeader", "read_header", "decode"]

_ORIENTATION_TAG = 0x0112
# Harmless libjpeg warnings: the image data itself is intact.
_BENIGN_WARNINGS = (
    "extraneous bytes before marker",
    "Invalid SOS parameters",
    "unknown JFIF revision",
    "thumbnail image size does not match",
)
_EXIF = b"Exif\x00\x00"
# Markers after which no header segment (APPn) can follow: SOFn, DHT..., SOS, EOI.
_IMAGE_MARKERS = frozenset(range(0xC0, 0xD0)) | {0xD9, 0xDA}


class JpegHeader(NamedTuple):
    height: int
    width: int
    mode: str  # "L" or "RGB", as Pillow would open it
    orientation: int  # EXIF orientation (1: none)


def read_header(data: bytes, path: str = "<bytes>") -> JpegHeader | None:
    """Size, Pillow mode and EXIF orientation of a gray/colour JPEG; ``None``: ask Pillow.

    A size over the pixel limit raises :class:`ImageDecodeError` (see ``pixel_limit``).
    """
    import simplejpeg

    try:
        height, width, colorspace, _ = simplejpeg.decode_jpeg_header(data)
    except ValueError:
        return None  # damaged or unusual: Pillow's path says what is wrong
    check_pixels(path, height, width)  # before any buffer of the image's size exists
    if colorspace not in ("Gray", "YCbCr", "RGB"):
        return None  # CMYK / YCCK: Pillow's conversion
    orientation = _orientation(data)
    if orientation is None:
        return None
    return JpegHeader(height, width, "L" if colorspace == "Gray" else "RGB", orientation)


def _orientation(data: bytes) -> int | None:
    """EXIF orientation from the header segments; ``None`` when XMP might hold it.

    Like Pillow: the first EXIF segment counts; XMP is consulted (by Pillow) only when
    that has no orientation tag.
    """
    pos, end = 2, len(data)
    seen_exif = False
    while pos + 4 <= end and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _IMAGE_MARKERS:
            return 1
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if marker == 0xE1:
            segment = data[pos + 4 : pos + 2 + length]
            if not segment.startswith(_EXIF):
                return None  # XMP (or unknown): let Pillow decide
            if not seen_exif:
                seen_exif = True
                exif = Image.Exif()
                try:
                    exif.load(segment)
                    value = exif.get(_ORIENTATION_TAG)
                except Exception:  # a damaged EXIF block must not make the image unreadable
                    return 1
                if value is not None:
                    return value if isinstance(value, int) and 1 <= value <= 8 else 1
        pos += 2 + length
    return 1


def decode(
    data: bytes,
    mode: str,
    path: str,
    min_height: int,
    min_width: int,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """HWC uint8, reduced in the DCT domain while it stays >= ``min_height x min_width``.

    ``out``: a writable uint8 buffer of at least the full-size image's bytes to decode
    into (the result is then a view of it); ``None`` allocates.
    """
    import simplejpeg

    def run(strict: bool) -> np.ndarray:
        return simplejpeg.decode_jpeg(
            data,
            colorspace="GRAY" if mode == "L" else "RGB",
            min_height=min_height,
            min_width=min_width,
            strict=strict,
            buffer=out,
        )

    try:
        array = run(strict=True)
    except ValueError as e:
        message = str(e)
        if not any(w in message for w in _BENIGN_WARNINGS):
            raise ImageDecodeError(path, f"corrupt JPEG data ({message})") from None
        try:
            array = run(strict=False)
        except ValueError as e2:
            raise ImageDecodeError(path, f"corrupt JPEG data ({e2})") from None
    return array[:, :, None] if array.ndim == 2 else array
