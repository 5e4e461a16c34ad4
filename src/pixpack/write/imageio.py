"""Decode one source image into the array a pack stores.

:func:`load_image` returns HWC, C-contiguous, little-endian ``uint8`` or ``uint16``
(files) with the channel axis always present; NumPy arrays may also be ``int16`` or
``float32`` (finite) with 1 to 255 channels, stored as they are. EXIF orientation is
applied. Modes convert like this (the conversion is reported by
:func:`load_image_info` so the pack's metadata can count it):

=================================  ==========================================
source mode                        stored as
=================================  ==========================================
``1`` (bilevel)                    ``L`` (1 channel, 0/255)
``L``                              ``L`` (grayscale stays 1 channel)
``LA`` / ``La``                    ``L``, alpha dropped (``RGBA`` if channels=4)
``P`` without transparency         ``RGB``
``P`` with transparency, ``PA``    ``RGBA``
``RGB`` / ``RGBA``                 unchanged (alpha kept, never composited)
``RGBX`` / ``RGBa``                ``RGB`` / ``RGBA`` (un-premultiplied)
``CMYK``, ``YCbCr``, ``LAB``,      ``RGB`` (Pillow's conversion)
``HSV``
``I;16``, ``I;16B``, ``I;16L``     ``uint16``, 1 channel
``I`` (32-bit int)                 ``uint16`` when every value fits, else rejected
``F`` (32-bit float)               ``float32``, 1 channel (finite values)
16-bit RGB/RGBA PNG                ``uint16`` 3/4 channels (decoded by OpenCV:
                                   Pillow would truncate them to 8 bits)
16-bit RGB/RGBA TIFF               ``uint16`` 3/4 channels (``tifffile``)
16-bit RGB PPM (maxval > 255)      ``uint16`` 3 channels (OpenCV)
DICOM (``DICM`` at offset 128, or  :mod:`.dicomio`: HU/rescaled ``int16`` or
named ``*.dcm``/``*.dicom``)       ``float32``, else ``uint8``/``uint16``;
                                   multi-frame files refused (use
                                   :class:`~.sources.dicom.DicomSource`)
=================================  ==========================================

``channels`` forces 1, 3 or 4 channels afterwards: colour to gray uses Pillow's
ITU-R 601-2 luma (``L = (19595 R + 38470 G + 7471 B + 2**15) >> 16``, like
torchvision's ``Grayscale``); gray to colour replicates; a missing alpha is opaque;
an alpha channel is dropped (not composited) when going to 1 or 3 channels.

``max_side`` downscales so the longer side equals it (never upscales; a
:class:`.resize.SizeLimit` also limits the shorter side, ``short_side``): JPEGs are
first reduced in the DCT domain (libjpeg-turbo scaled IDCT) while the result stays
>= 2x the target, like ``Image.thumbnail(reducing_gap=2.0)``, then every image is
resized by :func:`.resize.downscale` (Gaussian blur + bilinear, GIL-free).

Unreadable, corrupt, truncated, empty or non-image files raise
:class:`~pixpack.errors.ImageDecodeError`. A truncated file is an error, never
silently padded: this relies on Pillow's default ``ImageFile.LOAD_TRUNCATED_IMAGES =
False`` (not mutated here), and JPEGs are decoded by libjpeg-turbo in strict mode,
so damaged entropy-coded data is rejected where Pillow would return garbled blocks.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from ..errors import ImageDecodeError
from ..regular_files import open_regular
from . import jpeg
from .dicomio import decode_dicom, is_dicom
from .pixel_limit import check_pixels
from .resize import SizeLimit, downscale, target_size
from .scratch import scratch
from .tiff import PageRef, Pages, decode_tiff, is_tiff

__all__ = ["LoadedImage", "load_image", "load_image_info", "read_file", "target_size"]

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_SOI = b"\xff\xd8\xff"
_ORIENTATION_TAG = 0x0112
_TO_RGB_MODES = ("CMYK", "YCbCr", "LAB", "HSV", "RGBX")
_UINT16_MODES = ("I;16", "I;16L", "I;16B", "I;16N")


@dataclass(frozen=True)
class LoadedImage:
    """A decoded image plus what was done to it (for the pack's metadata)."""

    array: np.ndarray
    source_mode: str  # Pillow mode (or "array", "RGB;16" ...) before conversion
    conversion: str | None  # e.g. "CMYK->RGB"; None when stored as decoded
    orientation: int = 1  # the EXIF orientation that was applied (1: none)


def load_image(
    item: Any,
    *,
    channels: int | None = None,
    max_side: int | SizeLimit | None = None,
    pages: Pages = "error",
) -> np.ndarray:
    """Decode ``item`` (path, ``PIL.Image`` or ``ndarray``) to an HWC array."""
    return load_image_info(item, channels=channels, max_side=max_side, pages=pages).array


def load_image_info(
    item: Any,
    *,
    channels: int | None = None,
    max_side: int | SizeLimit | None = None,
    data: bytes | None = None,
    pages: Pages = "error",
) -> LoadedImage:
    """Like :func:`load_image`, also reporting the source mode and conversion.

    ``data``: the file's bytes when ``item`` is a path whose file was already read.
    ``pages``: what the pages of a multi-page TIFF are (:mod:`.tiff`); a
    :class:`~.tiff.PageRef` item is one page of one.
    """
    if isinstance(item, PageRef):  # one page of a stack: only its bytes are read
        path = item.path
        with _any_error_is_undecodable(path):
            array = _resize_array(decode_tiff(None, path, pages, item.page), max_side)
        array = _force_channels(array, channels)
        return LoadedImage(np.ascontiguousarray(array), _mode_name(array), None, 1)
    if isinstance(item, (str, os.PathLike)):
        path = os.fspath(item)
        if data is None:
            data = read_file(path)
        with _any_error_is_undecodable(path):
            if is_tiff(data) and _beyond_pillow(data):
                array = _resize_array(decode_tiff(data, path, pages), max_side)
                mode, orientation = _mode_name(array), 1
            else:
                array, mode, orientation = _decode_bytes(data, path, channels, max_side)
    elif isinstance(item, Image.Image):
        path = getattr(item, "filename", "") or "<PIL.Image>"
        with _any_error_is_undecodable(path):
            array, mode, orientation = _from_pil(item, path, channels, max_side, draft=False)
    else:
        path = "<array>"
        array, mode = _from_array(item, max_side)
        orientation = 1
    array = _force_channels(_orient(array, orientation), channels)
    if mode in _UINT16_MODES:
        mode = "I;16"
    after = _mode_name(array)
    conversion = None if after == mode else f"{mode}->{after}"
    return LoadedImage(np.ascontiguousarray(array), mode, conversion, orientation)


@contextlib.contextmanager
def _any_error_is_undecodable(path: str) -> Iterator[None]:
    """A damaged file can make a decoder raise anything (Pillow: TypeError, IndexError,
    struct.error...): that is one unreadable image to skip, not a failed pack."""
    try:
        yield
    except ImageDecodeError:
        raise
    except Exception as e:
        raise ImageDecodeError(path, f"cannot decode ({type(e).__name__}: {e})") from None


def read_file(path: str | os.PathLike[str]) -> bytes:
    """A source file's bytes; a missing, unreadable, empty or special file (FIFO,
    device, socket) is an ImageDecodeError."""
    path = os.fspath(path)
    try:
        # Regular files only: a FIFO would block forever, /dev/zero fill memory.
        with open_regular(path, lambda reason: ImageDecodeError(path, reason)) as f:
            data = f.read()
    except FileNotFoundError:
        raise ImageDecodeError(path, "file not found") from None
    except OSError as e:
        raise ImageDecodeError(path, f"cannot read file ({e.strerror or e})") from None
    if not data:
        raise ImageDecodeError(path, "empty file (0 bytes)")
    return data


# -- decoding ------------------------------------------------------------------------------
def _decode_bytes(
    data: bytes, path: str, channels: int | None, max_side: int | SizeLimit | None
) -> tuple[np.ndarray, str, int]:
    if is_dicom(data, path):  # DICM at offset 128, or named *.dcm / *.dicom
        array = decode_dicom(data, path)  # multi-frame files: an error (DicomSource chooses)
        check_pixels(path, array.shape[0], array.shape[1])
        return _resize_array(array, max_side), "DICOM", 1
    if data.startswith(_JPEG_SOI):
        # Gray/colour JPEGs: libjpeg-turbo only, no Pillow parsing (little GIL time).
        header = jpeg.read_header(data, path)  # over the pixel limit: raises
        if header is not None:
            return _decode_jpeg(data, header, path, max_side), header.mode, header.orientation
    try:
        img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as e:
        raise ImageDecodeError(path, f"image too large ({e})") from None
    except Exception as e:  # Pillow raises many types for non-images
        reason = "not an image (unrecognised format)" if "identify" in str(e) else str(e)
        raise ImageDecodeError(path, reason) from None
    check_pixels(path, img.height, img.width)  # Image.open read the header only
    if data.startswith(_JPEG_SOI) and img.mode in ("L", "RGB"):
        # JPEG EXIF sits in a header segment: reading it decodes nothing.
        header = jpeg.JpegHeader(img.height, img.width, img.mode, _exif_orientation(img))
        return _decode_jpeg(data, header, path, max_side), img.mode, header.orientation
    deep = _sixteen_bit_colour(data, img)
    if deep is not None:
        # Only EXIF found before the pixel data: asking for more would make Pillow
        # decode (and truncate) the whole image just to find it.
        orientation = _exif_orientation(img) if "exif" in img.info else 1
        array = _decode_deep(data, deep, path)
        mode = f"{'RGBA' if array.shape[2] == 4 else 'RGB'};16"
        if deep == "LA":  # 16-bit gray+alpha: OpenCV returns it as BGRA
            array = array[:, :, :1] if channels != 4 else array
            mode = "LA;16"
        return _resize_array(array, max_side), mode, orientation
    return _from_pil(img, path, channels, max_side, draft=True)


def _decode_jpeg(
    data: bytes, header: jpeg.JpegHeader, path: str, max_side: int | SizeLimit | None
) -> np.ndarray:
    """Strict libjpeg-turbo decode, reduced in the DCT domain while >= 2x the target."""
    th, tw = target_size(header.height, header.width, max_side)
    if (th, tw) == (header.height, header.width):
        return jpeg.decode(data, header.mode, path, 0, 0)
    # The decode is only the downscale's input: a reused per-thread array (any DCT
    # scale fits in the full-size one).
    channels = 1 if header.mode == "L" else 3
    out = scratch("decode", (header.height * header.width * channels,), np.uint8)
    array = jpeg.decode(data, header.mode, path, 2 * th, 2 * tw, out=out)
    return _resize_array(array, max_side, (th, tw))


def _from_pil(
    img: Image.Image,
    path: str,
    channels: int | None,
    max_side: int | SizeLimit | None,
    *,
    draft: bool,
) -> tuple[np.ndarray, str, int]:
    """Decode through Pillow. ``draft`` allows JPEG DCT reduction (not on callers' images)."""
    mode = img.mode
    width, height = img.size
    check_pixels(path, height, width)  # a caller's lazily opened image is not decoded yet
    target = target_size(height, width, max_side)  # from the full size, before any draft
    if draft and max_side is not None and img.format == "JPEG":
        th, tw = target
        if (th, tw) != (height, width):
            img.draft(None, (2 * tw, 2 * th))
    try:
        img.load()
    except Image.DecompressionBombError as e:
        raise ImageDecodeError(path, f"image too large ({e})") from None
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError) as e:
        reason = str(e) or type(e).__name__
        if "truncated" in reason:
            reason = f"truncated file ({reason})"
        raise ImageDecodeError(path, reason) from None
    orientation = _exif_orientation(img)  # after load(): PNG may keep EXIF after the pixels
    img = _normalise_mode(img, path, channels)
    if img.mode in _UINT16_MODES:
        array = np.asarray(img).astype("<u2")[:, :, None]
    elif img.mode == "F":
        array = np.asarray(img).astype("<f4")[:, :, None]
    else:
        array = np.asarray(img)
        array = array[:, :, None] if array.ndim == 2 else array
    return _resize_array(array, max_side, target), mode, orientation


def _normalise_mode(img: Image.Image, path: str, channels: int | None) -> Image.Image:
    """Map every Pillow mode onto L, RGB, RGBA or I;16 (see the module table)."""
    mode = img.mode
    if mode in ("L", "RGB", "RGBA") or mode in _UINT16_MODES:
        return img
    if mode == "1":
        return img.convert("L")
    if mode in ("LA", "La"):
        return img.convert("RGBA") if channels == 4 else img.convert("L")
    if mode == "P":
        return img.convert("RGBA" if "transparency" in img.info else "RGB")
    if mode in ("PA", "RGBa"):
        return img.convert("RGBA")
    if mode in _TO_RGB_MODES:
        return img.convert("RGB")
    if mode == "I":
        values = np.asarray(img)
        if values.size and (values.min() < 0 or values.max() > 65535):
            raise ImageDecodeError(
                path, "32-bit integer pixels outside 0..65535; convert to 16-bit first"
            )
        return Image.fromarray(values.astype(np.uint16))
    if mode == "F":  # float32 pixels are stored as they are (finite only)
        if not np.isfinite(np.asarray(img)).all():
            raise ImageDecodeError(path, "float pixels hold NaN or infinity")
        return img
    try:
        return img.convert("RGB")
    except ValueError:
        raise ImageDecodeError(path, f"unsupported image mode {mode!r}") from None


def _sixteen_bit_colour(data: bytes, img: Image.Image) -> str | None:
    """'RGB'/'RGBA'/'LA'/'TIFF'/'PPM' when a 16-bit colour image would be truncated by
    Pillow (which opens 16-bit PNG, TIFF and PPM colour as 8-bit RGB)."""
    if data.startswith(_PNG_SIGNATURE) and len(data) >= 26 and data[24] == 16:
        return {2: "RGB", 6: "RGBA", 4: "LA"}.get(data[25])
    if img.format == "PPM" and data.startswith(b"P6") and _pnm_maxval(data) > 255:
        return "PPM"
    if img.format == "TIFF" and img.mode not in _UINT16_MODES:
        bits = getattr(img, "tag_v2", {}).get(258)  # BitsPerSample
        if isinstance(bits, tuple) and len(bits) >= 3 and bits[0] == 16:
            return "TIFF"
    return None


def _pnm_maxval(data: bytes) -> int:
    """The maxval field of a binary PNM header (0 when it cannot be read)."""
    fields: list[bytes] = []
    pos, end = 2, min(len(data), 4096)
    while len(fields) < 3 and pos < end:
        char = data[pos : pos + 1]
        if char == b"#":  # a comment runs to the end of the line
            pos = data.find(b"\n", pos)
            if pos < 0:
                return 0
        elif char.isspace():
            pos += 1
        else:
            start = pos
            while pos < end and not data[pos : pos + 1].isspace() and data[pos] != ord("#"):
                pos += 1
            fields.append(data[start:pos])
    try:
        return int(fields[2])
    except (IndexError, ValueError):
        return 0


def _decode_deep(data: bytes, kind: str, path: str) -> np.ndarray:
    # 16-bit colour TIFFs never get here: _beyond_pillow sends them to tiff.decode_tiff.
    import cv2

    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if decoded is None or decoded.dtype != np.uint16:
        name = "PPM" if kind == "PPM" else "PNG"
        raise ImageDecodeError(path, f"corrupt or truncated 16-bit {name}")
    array = np.asarray(decoded)
    if array.ndim == 2:
        array = array[:, :, None]
    elif array.shape[2] == 3:
        array = array[:, :, ::-1]
    elif array.shape[2] == 4:
        array = array[:, :, [2, 1, 0, 3]]
    return array.astype("<u2")


def _from_array(item: Any, max_side: int | SizeLimit | None) -> tuple[np.ndarray, str]:
    if type(item).__module__.startswith("torch"):  # a CHW uint8 tensor from a dataset
        item = item.numpy()
        if item.ndim == 3 and item.shape[0] in (1, 3, 4) and item.shape[2] not in (1, 3, 4):
            item = np.moveaxis(item, 0, -1)
    if not isinstance(item, np.ndarray):
        raise ImageDecodeError(
            "<item>",
            f"unsupported image type {type(item).__name__}; give a path, PIL.Image or ndarray",
        )
    if item.dtype.newbyteorder("<") not in _ARRAY_DTYPES:
        raise ImageDecodeError(
            "<array>",
            f"array dtype {item.dtype} is not uint8, uint16, int16 or float32; convert it "
            "first (casting wider integers or float64 yourself decides how values that do "
            "not fit are handled)",
        )
    if item.ndim == 2:
        item = item[:, :, None]
    if item.ndim != 3 or not 1 <= item.shape[2] <= 255 or 0 in item.shape:
        raise ImageDecodeError(
            "<array>", f"array shape {item.shape} is not HW or HWC with 1 to 255 channels"
        )
    if item.dtype.kind == "f" and not np.isfinite(item).all():
        raise ImageDecodeError("<array>", "float array holds NaN or infinity; fill them first")
    item = item.astype(item.dtype.newbyteorder("<"), copy=False)
    mode = _mode_name(item)
    return _resize_array(item, max_side), mode


_ARRAY_DTYPES = (np.dtype("u1"), np.dtype("<u2"), np.dtype("<i2"), np.dtype("<f4"))


def _beyond_pillow(data: bytes) -> bool:
    """A TIFF that Pillow would misread: several pages (it reads the first), more than
    4 channels (it refuses), signed 16-bit or float pixels, 16-bit colour."""
    try:
        img = Image.open(io.BytesIO(data))
    except Exception:  # Pillow cannot open it: tifffile may
        return True
    return (
        getattr(img, "n_frames", 1) > 1
        or img.mode in ("F", "I", "I;16S", "I;16BS")
        or (_sixteen_bit_colour(data, img) is not None)
    )


# -- geometry ------------------------------------------------------------------------------
def _resize_array(
    array: np.ndarray, max_side: int | SizeLimit | None, target: tuple[int, int] | None = None
) -> np.ndarray:
    """Downscale to ``target`` (default: from ``array``'s own size and ``max_side``).

    Decoders that reduce in the DCT domain pass the target computed from the image's
    full size: recomputed from the reduced size, rounding could differ by a pixel, and
    the packed size would depend on the decode path.
    """
    return downscale(
        array, target if target is not None else target_size(*array.shape[:2], max_side)
    )


def _exif_orientation(img: Image.Image) -> int:
    try:
        value = img.getexif().get(_ORIENTATION_TAG, 1)
    except Exception:  # a damaged EXIF block must not make the image unreadable
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _orient(array: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation, like ``ImageOps.exif_transpose`` (views, copied later)."""
    if orientation == 2:
        return array[:, ::-1]
    if orientation == 3:
        return array[::-1, ::-1]
    if orientation == 4:
        return array[::-1]
    if orientation == 5:
        return array.transpose(1, 0, 2)
    if orientation == 6:
        return np.rot90(array, -1)
    if orientation == 7:
        return np.rot90(array, -1)[::-1]
    if orientation == 8:
        return np.rot90(array, 1)
    return array


# -- channels ------------------------------------------------------------------------------
def _mode_name(array: np.ndarray) -> str:
    c = array.shape[2]
    if array.dtype == np.uint8 and c in (1, 3, 4):
        return {1: "L", 3: "RGB", 4: "RGBA"}[c]
    if array.dtype == np.uint16 and c in (1, 3, 4):
        return {1: "I;16", 3: "RGB;16", 4: "RGBA;16"}[c]
    return f"{array.dtype.name} x{c}"


def _force_channels(array: np.ndarray, channels: int | None) -> np.ndarray:
    have = array.shape[2]
    if channels is None or channels == have:
        return array
    if have not in (1, 3, 4) or array.dtype.kind != "u":
        raise ImageDecodeError(
            "<image>",
            f"channels={channels} converts 1/3/4-channel 8- or 16-bit images only (this one "
            f"is {array.dtype} with {have} channels); pack it without channels=",
        )
    if channels == 1:
        return _luma(array)
    if have == 1:
        gray = np.repeat(array, 3, axis=2)
        return gray if channels == 3 else _add_alpha(gray)
    if channels == 3:
        return array[:, :, :3]
    return _add_alpha(array)


def _add_alpha(array: np.ndarray) -> np.ndarray:
    opaque = np.iinfo(array.dtype).max
    alpha = np.full((*array.shape[:2], 1), opaque, dtype=array.dtype)
    return np.concatenate([array, alpha], axis=2)


def _luma(array: np.ndarray) -> np.ndarray:
    """Pillow's RGB->L fixed-point ITU-R 601-2 luma, for uint8 and uint16."""
    rgb = array[:, :, :3].astype(np.uint64)
    luma = (rgb[:, :, 0] * 19595 + rgb[:, :, 1] * 38470 + rgb[:, :, 2] * 7471 + 0x8000) >> 16
    return luma.astype(array.dtype)[:, :, None]
