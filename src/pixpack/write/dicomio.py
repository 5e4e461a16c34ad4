"""Decode one DICOM file into the array a pack stores (pydicom, imported lazily).

Steps, in DICOM's own order (PS3.4 N.2):

1. **Pixel data** through pydicom 3's decoders for the file's transfer syntax; a syntax
   no installed plugin decodes is an :class:`~pixpack.errors.ImageDecodeError` naming
   it (the file is skipped with that reason, or the pack fails under ``strict=True``).
   YBR colour is converted to RGB (pydicom's default), ``PALETTE COLOR`` through its
   palette (``apply_color_lut``) to RGB.
2. **Modality LUT** on grayscale images: exactly ``pydicom.pixels.apply_modality_lut``
   (``RescaleSlope * x + RescaleIntercept`` in float64, or the Modality LUT
   Sequence), so CT is stored in Hounsfield units. An enhanced multi-frame file that
   gives the rescale only in its shared functional groups gets that one; per-frame
   rescale values that differ between frames are refused rather than mis-applied.
3. **MONOCHROME1** (minimum displayed white) is inverted onto MONOCHROME2 over the
   *stored range*, not the image's own min/max: with ``lo, hi`` the smallest and
   largest storable value (``BitsStored``, ``PixelRepresentation``) mapped through
   step 2, ``y' = lo + hi - y``. Every image of a series inverts the same way, and for
   a linear rescale this equals inverting the stored values first
   (``2**BitsStored - 1 - x`` unsigned). The common ``x.max() - x`` depends on each
   image's content, so two slices of one series would no longer be comparable.
4. **dtype**: no rescale (absent, or slope 1 and intercept 0) keeps the stored type:
   ``uint8``/``uint16`` unsigned, signed values as ``int16`` (wider integers when
   their values fit ``int16``/``uint16``). A rescale with integer slope and intercept
   whose values all lie in -32768..32767 gives ``int16``; any other rescale (a
   fractional slope, values beyond int16) ``float32``, exact for integers up to
   2**24. A Modality LUT Sequence yields its own ``uint8``/``uint16``.

Multi-frame files (``NumberOfFrames > 1``) are refused unless the caller chose:
``frame=k`` decodes one frame (``DicomSource(frames="samples")`` makes one sample per
frame), ``frames="channels"`` stacks all frames as channels (HW x frames; colour frames
give 3 channels each, frame-major).
"""

from __future__ import annotations

import io
from typing import Any, Literal

import numpy as np

from ..errors import ImageDecodeError
from .pixel_limit import check_pixels

__all__ = ["DICOM_SUFFIXES", "INSTALL_HINT", "FramesPolicy", "decode_dicom", "is_dicom", "pydicom"]

DICOM_SUFFIXES = (".dcm", ".dicom")
INSTALL_HINT = "pip install 'pixpack[dicom]'"
FramesPolicy = Literal["error", "samples", "channels"]

_PREAMBLE_END = 132  # 128-byte preamble, then b"DICM" (PS3.10 7.1)
_INT16 = (-(2**15), 2**15 - 1)


def is_dicom(data: bytes, path: str) -> bool:
    """A DICOM Part 10 file (``DICM`` at offset 128), or any file named ``*.dcm``/``*.dicom``
    (read then without the preamble, as pydicom's ``force=True`` does)."""
    return data[128:_PREAMBLE_END] == b"DICM" or path.lower().endswith(DICOM_SUFFIXES)


def pydicom() -> Any:
    """The pydicom module, or an ImportError saying how to install it."""
    try:
        import pydicom as module
    except ImportError:
        raise ImportError(f"DICOM files need pydicom 3: {INSTALL_HINT}") from None
    if int(module.__version__.split(".")[0]) < 3:
        raise ImportError(
            f"DICOM files need pydicom >= 3 (found {module.__version__}): {INSTALL_HINT}"
        )
    return module


def decode_dicom(
    data: bytes, path: str, *, frame: int | None = None, frames: FramesPolicy = "error"
) -> np.ndarray:
    """One DICOM file's pixels as an HWC array (see the module docstring for the rules)."""
    try:
        module = pydicom()
    except ImportError as e:
        raise ImageDecodeError(path, str(e)) from None
    ds = _read(module, data, path)
    try:
        return _decode(module, ds, path, frame, frames)
    except ImageDecodeError:
        raise
    except Exception as e:  # decoders raise many types on damaged or unusual data
        raise ImageDecodeError(
            path, _one_line(f"cannot decode DICOM pixel data ({type(e).__name__}: {e})")
        ) from None


def _read(module: Any, data: bytes, path: str) -> Any:
    try:
        ds = module.dcmread(io.BytesIO(data), force=True)
    except Exception as e:
        raise ImageDecodeError(
            path, _one_line(f"not a readable DICOM file ({type(e).__name__}: {e})")
        ) from None
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        what = ds.get("SOPClassUID")
        kind = f" ({what.name})" if what is not None and hasattr(what, "name") else ""
        raise ImageDecodeError(path, f"DICOM file holds no pixel data{kind}")
    return ds


def _decode(module: Any, ds: Any, path: str, frame: int | None, frames: FramesPolicy) -> np.ndarray:
    from pydicom.pixels import apply_color_lut, get_decoder

    count = int(ds.get("NumberOfFrames", 1) or 1)
    if frame is not None and not 0 <= frame < count:
        raise ImageDecodeError(path, f"frame {frame} out of range (the file has {count})")
    if count > 1 and frame is None and frames != "channels":
        raise ImageDecodeError(
            path,
            f"multi-frame DICOM ({count} frames): pack it with pixpack.DicomSource(..., "
            "frames='samples') (one sample per frame) or frames='channels' — it is not "
            "packed silently as its first frame",
        )
    # The declared size, before anything is allocated for it.
    rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    check_pixels(path, rows, cols)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    if frame is None and count > 1 and count * samples > 255:
        raise ImageDecodeError(
            path,
            f"{count} frames of {samples} channel(s): at most 255 channels in all; pack "
            "it with frames='samples'",
        )
    syntax = _transfer_syntax(module, ds)
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError:
        raise ImageDecodeError(
            path, f"transfer syntax {_syntax_name(syntax)} has no pixel data decoder in pydicom"
        ) from None
    if not decoder.is_available:
        raise ImageDecodeError(
            path, f"unsupported transfer syntax {_syntax_name(syntax)}: {_missing(decoder)}"
        )
    arr, meta = decoder.as_array(ds, index=frame)
    photometric = str(meta.get("photometric_interpretation", ds.PhotometricInterpretation))
    if photometric == "PALETTE COLOR":
        arr = apply_color_lut(arr, ds)  # uint8/uint16 RGB
    elif int(ds.get("SamplesPerPixel", 1) or 1) == 1:
        arr = _grayscale(module, arr, ds, path, photometric)
    else:  # colour: no modality LUT (PS3.3 C.11.1 applies to grayscale only)
        arr = _integers(arr, arr.dtype, path)
    single = frame is not None or count == 1
    return _hwc(arr, single)


def _transfer_syntax(module: Any, ds: Any) -> Any:
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if syntax is not None:
        return syntax
    # No file meta: pydicom knows how the dataset itself was encoded.
    implicit, little = ds.original_encoding
    uid = module.uid
    if implicit:
        return uid.ImplicitVRLittleEndian
    return uid.ExplicitVRLittleEndian if little else uid.ExplicitVRBigEndian


def _syntax_name(syntax: Any) -> str:
    name = getattr(syntax, "name", "")
    return f"{name!r} ({syntax})" if name and name != str(syntax) else str(syntax)


def _missing(decoder: Any) -> str:
    needs = decoder.missing_dependencies  # e.g. ["gdcm - requires gdcm>=3.0.10", ...]
    if isinstance(needs, dict):
        needs = [f"{k} - {', '.join(v)}" for k, v in needs.items()]
    listed = "; ".join(str(n) for n in needs)
    return f"no installed decoder plugin ({listed})" if listed else "no installed decoder"


# -- grayscale: modality LUT, MONOCHROME1, dtype ---------------------------------------------
def _grayscale(module: Any, arr: np.ndarray, ds: Any, path: str, photometric: str) -> np.ndarray:
    from pydicom.pixels import apply_modality_lut

    lut_ds = _modality_dataset(module, ds, path)
    rescaled = not _is_identity(lut_ds) and "ModalityLUTSequence" not in lut_ds
    values = arr if _is_identity(lut_ds) else apply_modality_lut(arr, lut_ds)
    stored = values.dtype  # the type before any inversion (a LUT's uint8/uint16)
    if photometric == "MONOCHROME1":
        if arr.dtype.kind == "f":
            raise ImageDecodeError(path, "MONOCHROME1 float pixel data is not supported")
        ends = np.array(_stored_range(ds), dtype=np.int64)
        if not _is_identity(lut_ds):
            ends = apply_modality_lut(ends, lut_ds)
        low, high = sorted(ends.tolist())
        wide = np.float64 if values.dtype.kind == "f" else np.int64
        values = (low + high) - values.astype(wide)
    if not rescaled:
        return _integers(values, stored, path)
    integral = (
        float(lut_ds.RescaleSlope).is_integer() and float(lut_ds.RescaleIntercept).is_integer()
    )
    if integral and values.size and _INT16[0] <= values.min() and values.max() <= _INT16[1]:
        return values.astype(np.int16)
    return values.astype(np.float32)


def _modality_dataset(module: Any, ds: Any, path: str) -> Any:
    """``ds`` itself, or, for enhanced multi-frame files that keep the rescale in their
    functional groups, a small dataset with the shared values."""
    if "ModalityLUTSequence" in ds or ("RescaleSlope" in ds and "RescaleIntercept" in ds):
        return ds
    found = []
    for group in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        for item in ds.get(group, []) or []:
            for pvt in item.get("PixelValueTransformationSequence", []) or []:
                if "RescaleSlope" in pvt and "RescaleIntercept" in pvt:
                    found.append((float(pvt.RescaleSlope), float(pvt.RescaleIntercept)))
    if not found:
        return ds
    if len(set(found)) > 1:
        raise ImageDecodeError(
            path, "per-frame rescale slope/intercept differ between frames (not supported)"
        )
    small = module.Dataset()
    small.RescaleSlope, small.RescaleIntercept = found[0]
    return small


def _is_identity(ds: Any) -> bool:
    if "ModalityLUTSequence" in ds and ds.ModalityLUTSequence:
        return False
    if "RescaleSlope" not in ds or "RescaleIntercept" not in ds:
        return True
    return float(ds.RescaleSlope) == 1.0 and float(ds.RescaleIntercept) == 0.0


def _stored_range(ds: Any) -> tuple[int, int]:
    bits = int(ds.get("BitsStored") or ds.get("BitsAllocated") or 16)
    if int(ds.get("PixelRepresentation", 0) or 0):
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


def _integers(values: np.ndarray, stored: np.dtype[Any], path: str) -> np.ndarray:
    """Values without a rescale: unsigned 8/16-bit types kept, signed ones as int16,
    wider integers narrowed when their values fit."""
    if values.dtype.kind == "f":
        return values.astype(np.float32)
    lo, hi = (int(values.min()), int(values.max())) if values.size else (0, 0)
    if stored.kind == "u" and lo >= 0:
        if stored.itemsize == 1 and hi <= 255:
            return values.astype(np.uint8)
        if hi <= 65535:
            return values.astype(np.uint16)
    if _INT16[0] <= lo and hi <= _INT16[1]:
        return values.astype(np.int16)
    if -(2**24) <= lo and hi <= 2**24:
        return values.astype(np.float32)
    raise ImageDecodeError(path, f"pixel values {lo}..{hi} do not fit 16 bits or float32 exactly")


def _hwc(arr: np.ndarray, single: bool) -> np.ndarray:
    """(H, W), (H, W, S), (F, H, W) or (F, H, W, S) to HWC; frames become channels."""
    if single:
        return arr[:, :, None] if arr.ndim == 2 else arr
    if arr.ndim == 3:  # (F, H, W)
        return np.moveaxis(arr, 0, -1)
    f, h, w, s = arr.shape
    return np.moveaxis(arr, 0, 2).reshape(h, w, f * s)


def _one_line(reason: str, limit: int = 300) -> str:
    """A decoder's (often multi-line) message as one line of bounded length."""
    text = " ".join(reason.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
