"""TIFF files beyond what Pillow reads: stacks of pages, many channels, 16-bit signed
and float pixels (microscopy, z-stacks), through ``tifffile``.

Pillow opens a multi-page TIFF as its first page and refuses 5-channel ones, so a
z-stack would silently lose all but one slice. Here a TIFF of more than one page is
an error unless the pack says what its pages are (``pages=``): ``"channels"`` stacks
them as the channels of one sample (each page one plane of the same size and type),
``"samples"`` makes each page a sample of its own (:mod:`.sources.pages` expands the
source). A single page keeps its own channels (interleaved or planar). Pixel types:
uint8, uint16, int16 and float32 are stored exactly; others are refused with the
conversion to make.
"""

from __future__ import annotations

import io
from typing import Any, Literal, NamedTuple

import numpy as np

from ..errors import ImageDecodeError
from .pixel_limit import check_pixels

__all__ = ["PAGES", "PageRef", "is_tiff", "count_pages", "decode_tiff"]

Pages = Literal["error", "channels", "samples"]
PAGES = ("error", "channels", "samples")
_MAGICS = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic and BigTIFF
_KEPT = {np.dtype("u1"), np.dtype("<u2"), np.dtype("<i2"), np.dtype("<f4")}


class PageRef(NamedTuple):
    """One page of a multi-page file, as a source item (``pages="samples"``)."""

    path: str
    page: int


def is_tiff(data: bytes) -> bool:
    return data[:4] in _MAGICS


def _tifffile(path: str) -> Any:
    try:
        import tifffile
    except ImportError:
        raise ImageDecodeError(
            path,
            "this TIFF (many pages, channels or 16-bit colour) needs tifffile: "
            "pip install 'pixpack[tiff]'",
        ) from None
    return tifffile


def count_pages(path: str) -> int:
    """Pages of the TIFF file at ``path``, from its page headers alone (1 for anything
    tifffile cannot open: decoding reports it)."""
    tifffile = _tifffile(path)
    try:
        with tifffile.TiffFile(path) as tif:
            return len(tif.pages)
    except Exception:  # a damaged file: its decode names the problem
        return 1


def _hwc(array: np.ndarray, samples: int, path: str) -> np.ndarray:
    """A page as HWC: (H, W), (H, W, S) or planar (S, H, W)."""
    if array.ndim == 2:
        return array[:, :, None]
    if array.ndim == 3 and samples > 1 and array.shape[0] == samples and array.shape[2] != samples:
        return np.moveaxis(array, 0, -1)
    if array.ndim == 3:
        return array
    raise ImageDecodeError(path, f"unsupported TIFF page layout {array.shape}")


def _kept(array: np.ndarray, path: str) -> np.ndarray:
    if array.dtype.kind in "iu" and array.dtype.itemsize > 2 and array.size:
        # 32-bit integer files usually hold 16-bit values: kept exactly when they fit.
        lo, hi = int(array.min()), int(array.max())
        if 0 <= lo and hi <= 65535:
            array = array.astype("<u2")
        elif -32768 <= lo and hi <= 32767:
            array = array.astype("<i2")
    dtype = array.dtype.newbyteorder("<")
    if dtype not in _KEPT:
        raise ImageDecodeError(
            path,
            f"{array.dtype} pixels are not stored (uint8, uint16, int16 or float32 are); "
            "convert the file, e.g. to float32",
        )
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise ImageDecodeError(path, "float pixels hold NaN or infinity")
    if not 1 <= array.shape[2] <= 255:
        raise ImageDecodeError(path, f"{array.shape[2]} channels (at most 255)")
    return np.ascontiguousarray(array.astype(dtype, copy=False))


def decode_tiff(data: bytes | None, path: str, pages: Pages, page: int | None = None) -> np.ndarray:
    """The pixels of a TIFF as HWC, per the ``pages`` policy (``page``: one page, read
    from the file at ``path`` when ``data`` is None: only that page's bytes)."""
    tifffile = _tifffile(path)
    try:
        with tifffile.TiffFile(path if data is None else io.BytesIO(data)) as tif:
            count = len(tif.pages)
            if page is not None:
                if not 0 <= page < count:
                    raise ImageDecodeError(path, f"page {page} of a {count}-page TIFF")
                return _kept(_one(tif.pages[page], path), path)
            if count == 1:
                return _kept(_one(tif.pages[0], path), path)
            if pages != "channels":
                raise ImageDecodeError(
                    path,
                    f"a TIFF of {count} pages (a stack); say what they are: pages='channels' "
                    "(CLI --pages channels) or pages='samples' (--pages samples)",
                )
            depth = sum(_declared(p, path)[2] for p in tif.pages)
            if depth > 255:  # before decoding any page
                raise ImageDecodeError(
                    path,
                    f"{count} pages of {depth} channels in all (at most 255 as channels); "
                    "pack them with pages='samples'",
                )
            planes = [_one(p, path) for p in tif.pages]
    except ImageDecodeError:
        raise
    except Exception as e:  # tifffile raises many types on damaged files
        raise ImageDecodeError(path, f"cannot decode TIFF ({type(e).__name__}: {e})") from None
    shapes = {(p.shape, p.dtype.str) for p in planes}
    if len(shapes) != 1:
        raise ImageDecodeError(
            path, "its pages differ in size, channels or type; pack them with pages='samples'"
        )
    return _kept(np.concatenate(planes, axis=2), path)


def _declared(page: Any, path: str) -> tuple[int, int, int]:
    """A page's height, width and channels from its tags, checked before anything is
    allocated for it (pixel limit, at most 255 channels)."""
    height = int(getattr(page, "imagelength", 0) or 0)
    width = int(getattr(page, "imagewidth", 0) or 0)
    channels = int(getattr(page, "samplesperpixel", 1) or 1)
    depth = int(getattr(page, "imagedepth", 1) or 1)
    if depth != 1:
        raise ImageDecodeError(path, f"a volumetric TIFF page (depth {depth}) is not supported")
    check_pixels(path, height, width)
    if not 1 <= channels <= 255:
        raise ImageDecodeError(path, f"{channels} channels (at most 255)")
    return height, width, channels


def _one(page: Any, path: str) -> np.ndarray:
    _declared(page, path)
    return _hwc(np.asarray(page.asarray()), int(getattr(page, "samplesperpixel", 1)), path)
