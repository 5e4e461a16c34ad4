"""Store a source JPEG's own bytes when re-encoding it could only lose (``reencode="auto"``).

Decoding a JPEG and encoding it again at ``quality`` costs a full decode plus a full
encode, and it adds a generation of loss: the re-encode quantises an image that was
already quantised. When the source's quantisation is already at least as coarse as the
one ``quality`` would use, the re-encode keeps no detail the source lacks, so the
source's own entropy-coded data is stored instead: exact to the source, smaller or
equal in size, and packed at the cost of a half-scale decode (to validate it and
compute the pack's mean/std) instead of decode + encode.

A source qualifies only when every point holds (else it is re-encoded as usual):

- it needs no pixel change: no ``max_side`` downscale, no EXIF rotation, no channel
  conversion (the caller checks these);
- baseline or extended sequential (SOF0/SOF1), 8-bit, one interleaved scan, with
  1 component (gray) or 3 (YCbCr, 4:2:0 like pixpack's encoder): progressive and
  multi-scan files decode slower in the loader, and 4:4:4/4:2:2 keep more chroma
  than ``quality`` would;
- each of its quantisation tables is, entry by entry, >= the table pixpack's encoder
  would write at ``quality`` (read from an actual encode, so they always agree).

The stored bytes drop the metadata segments (EXIF with its thumbnail and GPS, XMP,
ICC, comments: APP1-APP13, APP15, COM), as a re-encode would; the JFIF (APP0) and
Adobe (APP14, it names the colour transform) segments, the tables and the scan are
copied verbatim.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np

from .. import format as fmt
from . import jpeg
from .encode import EncodedSample
from .resize import SizeLimit, target_size
from .scratch import scratch

__all__ = ["JpegLayout", "PassedThrough", "parse_layout", "passthrough_bytes", "store_as_is"]

_UINT8_CODE = fmt.DTYPE_CODES[np.dtype("<u1")]

_SOI = b"\xff\xd8"
_SOS, _DQT, _DHT, _DRI = 0xDA, 0xDB, 0xC4, 0xDD
_SEQUENTIAL_SOF = (0xC0, 0xC1)  # Huffman, baseline / extended sequential
_KEPT = frozenset({_DQT, _DHT, _DRI, 0xE0, 0xEE}) | frozenset(_SEQUENTIAL_SOF)
_DROPPED = frozenset(range(0xE1, 0xEE)) | {0xEF, 0xFE}  # APP1-13, APP15, COM


class JpegLayout(NamedTuple):
    """What :func:`parse_layout` learns from the segments before the first scan."""

    sof: int  # the SOFn marker
    precision: int
    components: tuple[tuple[int, int, int], ...]  # (id, h << 4 | v, quant table id)
    tables: dict[int, np.ndarray]  # quant table id -> 64 entries (zigzag order)
    scan_components: int  # components in the first scan
    kept: bytes  # SOI + the kept segments, in order
    scan_start: int  # offset of the first SOS marker in the source


def parse_layout(data: bytes) -> JpegLayout | None:
    """The header segments of a JPEG up to its first scan; ``None`` if unparsable."""
    if not data.startswith(_SOI):
        return None
    pos, end = 2, len(data)
    kept = [_SOI]
    sof = precision = 0
    components: tuple[tuple[int, int, int], ...] = ()
    tables: dict[int, np.ndarray] = {}
    while pos + 4 <= end:
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if length < 2 or pos + 2 + length > end:
            return None
        body = data[pos + 4 : pos + 2 + length]
        if marker == _SOS:
            if not sof or not body:
                return None
            return JpegLayout(sof, precision, components, tables, body[0], b"".join(kept), pos)
        if marker not in _KEPT and marker not in _DROPPED:
            return None  # SOF2 (progressive), arithmetic coding, DNL... : not ours to copy
        if marker in _SEQUENTIAL_SOF:
            if sof or len(body) < 6:
                return None
            sof, precision, count = marker, body[0], body[5]
            if len(body) < 6 + 3 * count:
                return None
            components = tuple(
                (body[6 + 3 * k], body[7 + 3 * k], body[8 + 3 * k]) for k in range(count)
            )
        elif marker == _DQT and not _read_tables(body, tables):
            return None
        if marker in _KEPT:
            kept.append(data[pos : pos + 2 + length])
        pos += 2 + length
    return None


def passthrough_bytes(data: bytes, quality: int) -> bytes | None:
    """``data`` without its metadata segments if it can be stored as is, else ``None``.

    Only the file's structure and tables are checked here (see the module docstring);
    the caller still decodes the result, which rejects damaged scan data.
    """
    layout = parse_layout(data)
    if layout is None or layout.precision != 8:
        return None
    comps = layout.components
    if len(comps) == 1:
        wanted = [(comps[0][2], _reference_tables(quality, gray=True)[0])]
    elif len(comps) == 3:
        if comps[0][1] != 0x22 or comps[1][1] != 0x11 or comps[2][1] != 0x11:
            return None  # not 4:2:0
        luma, chroma = _reference_tables(quality, gray=False)
        wanted = [(comps[0][2], luma), (comps[1][2], chroma), (comps[2][2], chroma)]
    else:
        return None
    if layout.scan_components != len(comps):
        return None  # non-interleaved (multi-scan) sequential
    for table_id, reference in wanted:
        table = layout.tables.get(table_id)
        if table is None or not bool(np.all(table >= reference)):
            return None
    return layout.kept + data[layout.scan_start :]


def _read_tables(body: bytes, tables: dict[int, np.ndarray]) -> bool:
    """Parse one DQT segment's tables into ``tables``; False when malformed."""
    pos = 0
    while pos < len(body):
        precision, table_id = body[pos] >> 4, body[pos] & 0x0F
        size = 128 if precision else 64
        if precision > 1 or table_id > 3 or pos + 1 + size > len(body):
            return False
        raw = body[pos + 1 : pos + 1 + size]
        dtype = ">u2" if precision else "u1"
        tables[table_id] = np.frombuffer(raw, dtype).astype(np.int32)
        pos += 1 + size
    return True


@functools.lru_cache(maxsize=8)
def _reference_tables(quality: int, *, gray: bool) -> tuple[np.ndarray, ...]:
    """The (luma[, chroma]) tables pixpack's encoder writes at ``quality``, from an encode."""
    import simplejpeg

    pixels = np.zeros((16, 16, 1 if gray else 3), np.uint8)
    encoded = simplejpeg.encode_jpeg(
        pixels,
        quality=quality,
        colorspace="GRAY" if gray else "RGB",
        colorsubsampling="Gray" if gray else "420",
    )
    layout = parse_layout(encoded)
    assert layout is not None, "simplejpeg wrote a JPEG pixpack cannot parse"
    ids = [c[2] for c in layout.components[: 1 if gray else 2]]
    return tuple(layout.tables[i] for i in ids)


class PassedThrough(NamedTuple):
    sample: EncodedSample
    preview: np.ndarray  # the stored bytes decoded at half scale (a scratch view)


def store_as_is(
    data: bytes, path: str, *, quality: int, max_side: int | SizeLimit | None, channels: int | None
) -> PassedThrough | None:
    """The sample for ``data`` stored as is, or ``None`` when it must be re-encoded.

    The stored bytes are decoded at half scale (strictly: damaged scan data raises
    :class:`~pixpack.errors.ImageDecodeError`, as a full decode would) for the pack's
    mean/std; that decode costs about half of a full one.
    """
    if not data.startswith(_SOI):
        return None
    header = jpeg.read_header(data, path)
    if header is None or header.orientation != 1:
        return None
    height, width = header.height, header.width
    if target_size(height, width, max_side) != (height, width):
        return None
    count = 1 if header.mode == "L" else 3
    if channels not in (None, count):
        return None
    stored = passthrough_bytes(data, quality)
    if stored is None:
        return None
    out = scratch("decode", (height * width * count,), np.uint8)
    preview = jpeg.decode(stored, header.mode, path, -(-height // 2), -(-width // 2), out=out)
    sample = EncodedSample(stored, height, width, count, _UINT8_CODE, fmt.MODE_JPEG)
    return PassedThrough(sample, preview)
