"""JPEG decoding of just the pixels a crop needs, at a reduced DCT scale.

RandomResizedCrop throws most of a decoded image away and then shrinks the rest to
224x224. For a JPEG the decoder can do both jobs cheaper (TensorFlow's
``decode_and_crop_jpeg``, DALI's ROI decoders): libjpeg-turbo's IDCT can output 1/2,
1/4 or 1/8 of the size directly, skip the rows above the box without an IDCT, decode
only the iMCU columns that cover it, and stop after its last row.

Coordinates and rounding (the loader-facing contract)
-----------------------------------------------------
``region=(top, left, height, width)`` is in FULL-resolution pixels. At DCT scale
``s`` the image is ``ceil(H/s) x ceil(W/s)`` (libjpeg's rule) and the returned box
is the region rounded OUTWARD::

    rows floor(top/s) .. ceil((top+height)/s)    cols floor(left/s) .. ceil((left+width)/s)

so it always covers the region; its size is about ``region/s`` (at most one pixel
more per side). Full-resolution coordinate ``y`` maps to ``y/s - floor(top/s)`` in
the returned array. ``output_shape`` computes the shape without decoding, so a
caller can pre-allocate ``out``.

Back-ends, fastest first: the C extension ``pixpack._native._jpeg`` (true ROI
decode, GIL released, writes into ``out``); ``simplejpeg`` (decodes the whole image
at the scale, then slices; also releases the GIL); Pillow with ``draft()`` (same
scaled decode, holds the GIL longer). All three produce the same pixels wherever
their libjpeg-turbo builds agree (ISLOW IDCT, fancy upsampling).

Errors: corrupt, truncated, empty or non-JPEG data raise ``ValueError("corrupt JPEG
data: <libjpeg message>")`` (the pack reader wraps it with the sample index). Bad
arguments (region outside the image, scale not in 1/2/4/8, wrong ``out``) raise
``pixpack.errors.UsageError``, also a ``ValueError``: catch it first if the two must
be told apart. With the native back-end, damage below the region is not detected,
because those rows are never read.
"""

from __future__ import annotations

import io
from typing import Any, Literal

import numpy as np

from pixpack.errors import UsageError

__all__ = [
    "SCALES",
    "native_available",
    "choose_scale",
    "choose_scales",
    "scaled_box",
    "output_shape",
    "jpeg_shape",
    "decode_jpeg",
]

SCALES = (1, 2, 4, 8)
"""The DCT reduction denominators libjpeg-turbo's fast scaled IDCTs support."""

Backend = Literal["native", "simplejpeg", "pil"]
Buffer = bytes | bytearray | memoryview | np.ndarray  # anything with the buffer protocol
Region = tuple[int, int, int, int]

try:  # the optional C extension; absent when libjpeg headers were missing at install
    from pixpack._native import _jpeg as _native  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - depends on the build
    _native = None


def native_available() -> bool:
    """True when the C region decoder was built and imports."""
    return _native is not None


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def choose_scale(region_h: int, region_w: int, out_h: int, out_w: int) -> int:
    """The largest DCT denominator whose scaled region still covers ``out_h x out_w``.

    That is the largest ``d`` in (8, 4, 2, 1) with ``region_h / d >= out_h`` and
    ``region_w / d >= out_w``; 1 when even the full resolution is smaller (the resize
    then upsamples, as it would without DCT scaling). The region's own size counts, not
    the pixels the scaled decode rounds it out to: a 9-pixel region at 1/8 gives 2
    pixels, but they are averages of 16 source pixels, not 2 pixels' worth of detail
    (and a 1-pixel crop at 1/8 would be its 8x8 block's average, not itself).
    """
    if min(region_h, region_w, out_h, out_w) < 1:
        raise UsageError(
            f"choose_scale needs positive sizes (got region {region_h}x{region_w}, "
            f"output {out_h}x{out_w})."
        )
    for d in (8, 4, 2):
        if region_h >= out_h * d and region_w >= out_w * d:
            return d
    return 1


def choose_scales(
    region_h: np.ndarray, region_w: np.ndarray, out_h: int, out_w: int
) -> np.ndarray:
    """:func:`choose_scale` for arrays of regions (int64), for a chunk of samples."""
    scale = np.ones(np.shape(region_h), np.int64)
    for d in (2, 4, 8):  # ascending, overwriting: the largest that fits wins
        scale[(region_h >= out_h * d) & (region_w >= out_w * d)] = d
    return scale


def _check_scale(scale: int) -> None:
    if scale not in SCALES:
        raise UsageError(f"scale must be one of {SCALES} (got {scale!r}).")


def _parse_region(region: Region) -> Region:
    try:
        top, left, h, w = (int(v) for v in region)
    except (TypeError, ValueError):
        raise UsageError(
            f"region must be (top, left, height, width) integers (got {region!r})."
        ) from None
    if top < 0 or left < 0 or h < 1 or w < 1:
        raise UsageError(
            f"region (top={top}, left={left}, height={h}, width={w}) needs top, left >= 0 "
            "and height, width >= 1."
        )
    return (top, left, h, w)


def _full_region(region: Region | None, height: int, width: int) -> Region:
    """Validate ``region`` against a ``height x width`` image (None = all of it)."""
    if region is None:
        return (0, 0, height, width)
    top, left, h, w = _parse_region(region)
    if top + h > height or left + w > width:
        raise UsageError(
            f"region (top={top}, left={left}, height={h}, width={w}) does not fit in the "
            f"{height}x{width} (HxW) image; clip it to the image first."
        )
    return (top, left, h, w)


def scaled_box(region: Region, scale: int) -> Region:
    """``region`` (full resolution) at DCT scale ``scale``, rounded outward."""
    _check_scale(scale)
    top, left, h, w = region
    y0, x0 = top // scale, left // scale
    return (y0, x0, _ceil_div(top + h, scale) - y0, _ceil_div(left + w, scale) - x0)


def output_shape(
    image_shape: tuple[int, ...],
    *,
    region: Region | None = None,
    scale: int = 1,
    channels: int | None = None,
) -> tuple[int, int, int]:
    """Shape of ``decode_jpeg(...)`` for an image of ``image_shape=(h, w[, c])``.

    Pure arithmetic (use ``jpeg_shape(data)`` or the pack index for ``image_shape``),
    so a loader can size a reusable ``out`` buffer before decoding.
    """
    height, width = int(image_shape[0]), int(image_shape[1])
    stored = int(image_shape[2]) if len(image_shape) > 2 else 1
    _, _, h, w = scaled_box(_full_region(region, height, width), scale)
    return (h, w, _channels(channels, stored))


def _channels(channels: int | None, stored: int) -> int:
    if channels is None:
        return 1 if stored == 1 else 3
    if channels not in (1, 3):
        raise UsageError(f"channels must be 1, 3 or None (got {channels!r}).")
    return channels


def jpeg_shape(data: Buffer) -> tuple[int, int, int]:
    """``(height, width, components)`` from the JPEG header, without decoding.

    ``components`` is as stored: 1 (greyscale), 3 (YCbCr/RGB) or 4 (CMYK/YCCK).
    """
    if _native is not None:
        return _native.header(data)
    try:
        import simplejpeg

        h, w, space, _ = simplejpeg.decode_jpeg_header(bytes(data))
        return (h, w, {"Gray": 1, "CMYK": 4, "YCCK": 4}.get(space, 3))
    except ImportError:
        pass
    except ValueError as exc:
        raise ValueError(f"corrupt JPEG data: {exc}") from None
    image = _pil_open(data)
    return (image.height, image.width, len(image.getbands()))


def decode_jpeg(
    data: Buffer,
    *,
    region: Region | None = None,
    scale: int = 1,
    channels: int | None = None,
    out: np.ndarray | None = None,
    fast: bool = False,
    backend: Backend | None = None,
    scratch: np.ndarray | None = None,
) -> np.ndarray:
    """Decode ``region`` of a JPEG at DCT scale ``1/scale`` into an HWC uint8 array.

    ``region=(top, left, height, width)`` in full-resolution pixels (None: the whole
    image); the result covers it, rounded outward (see the module docstring).
    ``channels`` forces 1 (grey) or 3 (RGB); None keeps grey images grey and gives
    RGB otherwise. ``out``: a C-contiguous uint8 array of ``output_shape(...)`` to
    decode into (returned). ``fast`` uses the IFAST IDCT (slightly less accurate).
    ``backend`` forces a back-end; by default the native one when it was built.
    ``scratch``: a 1-D uint8 array the caller reuses, at least as long as the result
    (``height * width * 3`` of the image is always enough); the native back-end
    decodes into its start and returns a view of it (valid until the next decode
    into it): a fresh array per image costs page faults once glibc hands such blocks
    to the kernel (it does at 128 KB once anything fixes ``M_MMAP_THRESHOLD``, as
    TensorFlow 2.21 does when a dataset first runs a Python function). Other back-ends
    ignore it.
    """
    _check_scale(scale)
    if channels is not None:
        _channels(channels, 3)
    if out is not None and not _writable_uint8(out):
        raise UsageError(
            "out must be a writable C-contiguous uint8 numpy array of output_shape(...) "
            f"(got {type(out).__name__} {getattr(out, 'dtype', '')} {getattr(out, 'shape', '')})."
        )
    if scratch is not None and not (_writable_uint8(scratch) and scratch.ndim == 1):
        raise UsageError(
            "scratch must be a writable 1-D C-contiguous uint8 numpy array (got "
            f"{type(scratch).__name__} {getattr(scratch, 'dtype', '')} "
            f"{getattr(scratch, 'shape', '')})."
        )
    if backend is None:
        backend = "native" if _native is not None else "simplejpeg"
    if backend == "native":
        if _native is None:
            raise UsageError(
                "the native JPEG decoder is not built; reinstall pixpack with the "
                "libjpeg-turbo headers present (apt-get install libjpeg-dev)."
            )
        if out is None and scratch is not None:
            return _decode_native(data, region, scale, channels, scratch, fast, into=True)
        return _decode_native(data, region, scale, channels, out, fast)
    if backend not in ("simplejpeg", "pil"):
        raise UsageError(f"backend must be 'native', 'simplejpeg' or 'pil' (got {backend!r}).")
    return _decode_fallback(data, region, scale, channels, out, fast, backend)


def _writable_uint8(a: Any) -> bool:
    """A writable C-contiguous uint8 numpy array (what ``out`` and ``scratch`` take)."""
    return (
        isinstance(a, np.ndarray)
        and a.dtype == np.uint8
        and a.flags.c_contiguous
        and a.flags.writeable
    )


def _decode_native(
    data: Buffer,
    region: Region | None,
    scale: int,
    channels: int | None,
    out: np.ndarray | None,
    fast: bool,
    into: bool = False,
) -> np.ndarray:
    assert _native is not None
    top = left = height = width = 0  # 0 height/width: to the image edge
    if region is not None:
        top, left, height, width = _parse_region(region)  # the C side checks the bounds
    try:
        buf, h, w, c = _native.decode(
            data,
            out,
            scale=scale,
            top=top,
            left=left,
            height=height,
            width=width,
            channels=channels or 0,
            fast=fast,
            scratch=into,
        )
    except _native.ArgError as exc:
        raise UsageError(str(exc)) from None
    if into:  # ``out`` is the caller's scratch: the result is its start
        return out[: h * w * c].reshape(h, w, c)
    if out is not None:
        return out
    return np.frombuffer(buf, dtype=np.uint8).reshape(h, w, c)


def _pil_open(data: Buffer):  # -> PIL.JpegImagePlugin.JpegImageFile
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(io.BytesIO(bytes(data)), formats=["JPEG"])
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ValueError(f"corrupt JPEG data: {exc}") from None
    return image


def _decode_fallback(
    data: Buffer,
    region: Region | None,
    scale: int,
    channels: int | None,
    out: np.ndarray | None,
    fast: bool,
    backend: Backend,
) -> np.ndarray:
    """Decode the whole image at the scale, then slice the box (no true ROI)."""
    height, width, stored = jpeg_shape(data)
    if stored == 4:
        raise ValueError("corrupt JPEG data: CMYK/YCCK JPEGs are not supported")
    box = scaled_box(_full_region(region, height, width), scale)
    want = _channels(channels, stored)
    full = None
    if backend == "simplejpeg":
        full = _simplejpeg_scaled(data, height, width, scale, want, fast)
    if full is None:
        full = _pil_scaled(data, height, width, scale, want)
    y, x, h, w = box
    view = full[y : y + h, x : x + w]
    if out is None:
        return np.ascontiguousarray(view)
    if out.shape != view.shape:
        raise UsageError(f"out must have shape {view.shape} (got {out.shape}).")
    np.copyto(out, view)
    return out


def _simplejpeg_scaled(
    data: Buffer, height: int, width: int, scale: int, channels: int, fast: bool
) -> np.ndarray | None:
    """The whole image at ``1/scale`` via simplejpeg, or None if it cannot give exactly that."""
    try:
        import simplejpeg
    except ImportError:
        return None
    want = (_ceil_div(height, scale), _ceil_div(width, scale))
    try:
        image = simplejpeg.decode_jpeg(
            bytes(data),
            colorspace="GRAY" if channels == 1 else "RGB",
            fastdct=fast,
            min_height=want[0],
            min_width=want[1],
            min_factor=float(scale),
            strict=True,
        )
    except ValueError as exc:
        raise ValueError(f"corrupt JPEG data: {exc}") from None
    if image.shape[:2] != want:  # picked another M/8 factor (tiny images): use Pillow
        return None
    return image.reshape(want[0], want[1], channels)


def _pil_scaled(data: Buffer, height: int, width: int, scale: int, channels: int) -> np.ndarray:
    """The whole image at ``1/scale`` via Pillow's ``draft()`` (the same DCT scaling).

    ``draft`` cannot reach ``1/scale`` for images narrower than ``scale`` pixels; those
    are decoded in full and box-reduced, which is what a DC-only IDCT approximates.
    """
    image = _pil_open(data)
    mode = "L" if channels == 1 else "RGB"
    # draft() also picks libjpeg's own colour conversion (grey = the Y channel).
    image.draft(mode, (max(1, width // scale), max(1, height // scale)))
    want = (_ceil_div(height, scale), _ceil_div(width, scale))
    try:
        image = image.convert(mode)
        if (image.height, image.width) != want:
            image = _pil_open(data)
            image.draft(mode, (width, height))
            image = image.convert(mode).reduce(scale)
    except (OSError, SyntaxError, ValueError) as exc:
        raise ValueError(f"corrupt JPEG data: {exc}") from None
    return np.asarray(image).reshape(want[0], want[1], channels)
