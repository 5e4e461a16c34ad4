"""The pixpack on-disk format: layouts and codes only, no file I/O.

A pack is one file::

    offset 0                 +--------------------------------------+
                             | Header (HEADER_DTYPE, 128 bytes)     |  written LAST: the commit record
    DATA_ALIGN (4096)        +--------------------------------------+
                             | sample 0 bytes (raw, JPEG, lossless) |  each sample starts on a
                             | sample 1 bytes ...                   |  SAMPLE_ALIGN boundary
                             | ...                                  |
    header.index_offset      +--------------------------------------+
                             | Index: num_samples x INDEX_DTYPE     |  memory-mapped as a numpy
                             |   (entry_size bytes per entry)       |  structured array
                             +--------------------------------------+
                             | Sections (minor >= 1), each on a     |  per-sample metadata columns,
                             |   SECTION_ALIGN boundary             |  an SQLite image of them
    header.meta_offset       +--------------------------------------+
                             | Metadata: UTF-8 JSON                 |  classes, source, options,
                             |                                      |  skipped files, mean/std ...
    header.file_size         +--------------------------------------+

Writers stream samples, then write the index and the metadata, fsync, and only then
write the header (whose magic is all zeros until that moment) and rename the temp file
onto its final name. A file without a valid header is therefore never a pack.

Compatibility rules:
- ``FORMAT_MAJOR`` changes only when an old reader could misread a new file; readers
  refuse a newer major version with :class:`~pixpack.errors.UnsupportedVersionError`.
- ``FORMAT_MINOR`` grows when fields are *appended*: new index columns go after the
  existing ones (``entry_size`` tells the reader the stride, so it ignores columns it
  does not know), new sections (bounding boxes, masks, shard tables) are listed in the
  metadata's ``"sections"`` mapping (below).
- Minor 1 added sections between the index and the metadata, listed in
  ``metadata["sections"]`` as ``{name: {"offset", "nbytes", "crc32"}}`` (absolute
  offsets; :func:`check_sections`), and per-sample metadata columns described by
  ``metadata["columns"]`` (:data:`COLUMN_TYPES`; the values, string offsets and
  missing-value masks are sections). Minor-0 readers only check that the index ends
  before the metadata, so they open minor-1 packs and ignore both.
- New storage modes get new ``MODE_*`` codes; a reader that meets an unknown code
  raises :class:`~pixpack.errors.UnsupportedModeError` for that sample only.

Everything is little-endian and every offset is absolute, so a pack can be read
with HTTP range requests: fetch the header, then the index and metadata, then
samples by ``(offset, nbytes)``.
"""

from __future__ import annotations

import json
import zlib
from typing import Any

import numpy as np

__all__ = [
    "MAGIC",
    "FORMAT_MAJOR",
    "FORMAT_MINOR",
    "HEADER_DTYPE",
    "HEADER_SIZE",
    "INDEX_DTYPE",
    "DATA_ALIGN",
    "SAMPLE_ALIGN",
    "MODE_RAW",
    "MODE_JPEG",
    "MODE_LOSSLESS",
    "MODE_NAMES",
    "LOSSLESS_HEADER_SIZE",
    "LOSSLESS_CODEC_LZ4",
    "LOSSLESS_CODECS",
    "LOSSLESS_FILTER_NONE",
    "LOSSLESS_FILTER_SHUFFLE",
    "LOSSLESS_FILTER_UP",
    "LOSSLESS_FILTERS",
    "DTYPE_CODES",
    "DTYPE_FROM_CODE",
    "widest_known_dtype",
    "NO_LABEL",
    "MAX_METADATA_BYTES",
    "MAX_METADATA_DEPTH",
    "SECTION_ALIGN",
    "COLUMN_TYPES",
    "check_sections",
    "align",
    "checksum",
    "encode_header",
    "decode_header",
    "header_crc_ok",
    "encode_metadata",
    "decode_metadata",
]

MAGIC = b"PIXPACK\x00"
FORMAT_MAJOR = 1
FORMAT_MINOR = 1

DATA_ALIGN = 4096  # data region starts on a page boundary
SAMPLE_ALIGN = 64  # each sample starts on a cache-line boundary (aligned SIMD loads)
SECTION_ALIGN = 64  # a section's arrays are views of the map, aligned for any dtype

# A metadata column's type -> the numpy dtype of its "values" section. Strings are
# UTF-8 bytes in "values" with "<u8" "offsets" (n + 1 of them); any type may have a
# "valid" section (u1, 0 = missing) when some values are missing.
COLUMN_TYPES = {"int": np.dtype("<i8"), "float": np.dtype("<f8"), "bool": np.dtype("u1"),
                "string": np.dtype("u1")}  # fmt: skip

HEADER_DTYPE = np.dtype(
    [
        ("magic", "S8"),
        ("major", "<u2"),
        ("minor", "<u2"),
        ("flags", "<u4"),
        ("num_samples", "<u8"),
        ("data_offset", "<u8"),
        ("index_offset", "<u8"),
        ("entry_size", "<u4"),
        ("index_crc32", "<u4"),  # over the whole index; checked by verify, not on open
        ("meta_offset", "<u8"),
        ("meta_nbytes", "<u8"),
        ("meta_crc32", "<u4"),  # metadata is small: checked on every open
        ("header_crc32", "<u4"),  # over all header bytes before this field
        ("file_size", "<u8"),
    ]
)
HEADER_SIZE = 128
assert HEADER_DTYPE.itemsize <= HEADER_SIZE  # layout invariant, not input validation

# One entry per sample. 40 bytes, 8-byte aligned.
INDEX_DTYPE = np.dtype(
    [
        ("offset", "<u8"),  # absolute file offset of the sample's bytes
        ("nbytes", "<u8"),  # stored length
        ("label", "<i8"),  # class index, or NO_LABEL
        ("height", "<u4"),  # decoded height in pixels
        ("width", "<u4"),  # decoded width in pixels
        ("checksum", "<u4"),  # zlib.crc32 of the stored bytes
        ("channels", "u1"),  # 1-255 (raw); JPEG: 1 or 3
        ("dtype", "u1"),  # DTYPE_CODES
        ("mode", "u1"),  # MODE_* (per sample: a jpeg pack stores 16-bit images raw)
        ("flags", "u1"),  # reserved, 0
    ]
)
assert INDEX_DTYPE.itemsize == 40

MODE_RAW = 0  # C-contiguous HWC pixels, little-endian
MODE_JPEG = 1  # baseline/progressive JPEG bytes, 8-bit, 1 or 3 channels
MODE_LOSSLESS = 2  # filtered, compressed bands of rows (LOSSLESS_* below)
MODE_NAMES = {MODE_RAW: "raw", MODE_JPEG: "jpeg", MODE_LOSSLESS: "lossless"}

# A lossless sample's bytes (all integers little-endian):
#
#   byte 0        codec      LOSSLESS_CODEC_* (1 = LZ4 blocks, no frame, no size prefix)
#   byte 1        filter     LOSSLESS_FILTER_*, applied to each band's values
#   bytes 2-3     reserved, 0
#   bytes 4-7     band_rows  u32 >= 1: the image is cut into bands of this many rows
#                            (the last one may be shorter), each compressed on its own
#   bytes 8...    sizes      u32 x ceil(height / band_rows): each band's compressed bytes
#   then          the bands' compressed blocks, back to back, exactly sum(sizes) bytes
#
# A band decompresses to exactly rows * width * channels * itemsize bytes; a reader
# can decode only the bands a crop needs. The filters see a band's HWC values as rows
# of width*channels values of itemsize bytes (int16 and float32 as the unsigned
# integers of their size, so everything is bit-exact):
#   NONE     the values' bytes as they are;
#   SHUFFLE  byte planes: byte 0 of every value of the band, then byte 1, ...;
#   UP       each value minus the one a row above (a band's first row: minus 0),
#            modulo 2**bits, zigzag-coded ((r << 1) ^ (r >> (bits - 1)): the signed
#            residual's sign into bit 0), then byte planes as SHUFFLE.
LOSSLESS_HEADER_SIZE = 8
LOSSLESS_CODEC_LZ4 = 1
LOSSLESS_CODECS = {LOSSLESS_CODEC_LZ4: "lz4"}
LOSSLESS_FILTER_NONE = 0
LOSSLESS_FILTER_SHUFFLE = 1
LOSSLESS_FILTER_UP = 2
LOSSLESS_FILTERS = {LOSSLESS_FILTER_NONE: "none", LOSSLESS_FILTER_SHUFFLE: "shuffle",
                    LOSSLESS_FILTER_UP: "up"}  # fmt: skip

# 2 and 3 (minor 1): signed 16-bit (CT in Hounsfield units) and float32 samples, raw.
DTYPE_CODES = {np.dtype("uint8"): 0, np.dtype("<u2"): 1, np.dtype("<i2"): 2, np.dtype("<f4"): 3}
DTYPE_FROM_CODE = {code: dt for dt, code in DTYPE_CODES.items()}


def widest_known_dtype(codes: np.ndarray) -> np.dtype:
    """The batch pixel type of a pack from its index's ``dtype`` codes: the one type
    its samples have, or uint16 for uint8 and uint16 together (8-bit samples are
    widened). Codes this version does not know are ignored (a damaged entry's unknown
    code is that sample's problem, not the whole pack's). Other mixes raise ValueError."""
    present = [c for c in DTYPE_FROM_CODE if (codes == c).any()]
    if not present:
        return np.dtype(DTYPE_FROM_CODE[min(DTYPE_FROM_CODE)])
    if len(present) == 1 or set(present) == {0, 1}:
        return np.dtype(DTYPE_FROM_CODE[max(present)])
    names = " and ".join(str(DTYPE_FROM_CODE[c]) for c in sorted(present))
    raise ValueError(f"samples of {names} pixels cannot share a batch")


NO_LABEL = -1

# Readers refuse larger or deeper metadata (CorruptPackError) before parsing it: a
# pixpack writer's metadata is a few kB to tens of MB (class names, skipped files) and
# 3 levels deep; parsing JSON costs up to ~8x its size in memory.
MAX_METADATA_BYTES = 256 << 20
MAX_METADATA_DEPTH = 64


def check_sections(meta: dict[str, Any], start: int, end: int) -> dict[str, tuple[int, int, int]]:
    """``metadata["sections"]`` as ``{name: (offset, nbytes, crc32)}``, each inside
    ``[start, end)`` (between the index and the metadata) and aligned, or a one-line
    ``ValueError``. An absent mapping is an empty one (minor-0 packs)."""
    raw = meta.get("sections", {})
    if not isinstance(raw, dict):
        raise ValueError("'sections' must be an object")
    out = {}
    for name, desc in raw.items():
        try:
            offset, nbytes, crc = (int(desc[k]) for k in ("offset", "nbytes", "crc32"))
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"section {name!r} lacks an integer offset, nbytes or crc32") from None
        if offset % SECTION_ALIGN or nbytes < 0 or offset < start or offset + nbytes > end:
            raise ValueError(
                f"section {name!r} at {offset} (+{nbytes}) is outside [{start}, {end}) or unaligned"
            )
        out[name] = (offset, nbytes, crc)
    return out


def align(value: int, alignment: int) -> int:
    """Round ``value`` up to a multiple of ``alignment``."""
    return (value + alignment - 1) // alignment * alignment


def checksum(data: bytes | memoryview | np.ndarray) -> int:
    """The per-sample checksum stored in the index (CRC-32, as unsigned)."""
    return zlib.crc32(data) & 0xFFFFFFFF


def encode_header(**fields: Any) -> bytes:
    """Pack header fields into HEADER_SIZE bytes, filling magic, version and header CRC."""
    header = np.zeros((), dtype=HEADER_DTYPE)
    header["magic"] = MAGIC
    header["major"] = FORMAT_MAJOR
    header["minor"] = FORMAT_MINOR
    for name, value in fields.items():
        header[name] = value
    raw = bytearray(header.tobytes())
    crc_at = HEADER_DTYPE.fields["header_crc32"][1]
    header["header_crc32"] = checksum(bytes(raw[:crc_at]))
    return header.tobytes().ljust(HEADER_SIZE, b"\x00")


def decode_header(raw: bytes) -> np.void | None:
    """Parse header bytes. Returns None when the magic is absent (not a pack).

    Version and CRC checks are left to the reader, which knows the file name to
    put in the error message.
    """
    if len(raw) < HEADER_DTYPE.itemsize or raw[: len(MAGIC)] != MAGIC:
        return None
    return np.frombuffer(raw[: HEADER_DTYPE.itemsize], dtype=HEADER_DTYPE)[0]


def header_crc_ok(raw: bytes) -> bool:
    """True when the stored header CRC matches the header bytes."""
    crc_at = HEADER_DTYPE.fields["header_crc32"][1]
    stored = int(np.frombuffer(raw[crc_at : crc_at + 4], dtype="<u4")[0])
    return checksum(raw[:crc_at]) == stored


def encode_metadata(meta: dict[str, Any]) -> bytes:
    """Metadata is plain JSON (never pickle: opening an untrusted pack runs no code).

    UTF-8 text, except that a file or class name that is not valid UTF-8 (Linux hands
    its bytes to Python as lone surrogates) makes the whole document ASCII with
    ``\\uXXXX`` escapes: still valid UTF-8 and JSON, and ``os.fsencode`` of the
    decoded name gives back the original bytes.
    """
    text = json.dumps(meta, ensure_ascii=False, sort_keys=True, allow_nan=False)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(meta, ensure_ascii=True, sort_keys=True, allow_nan=False).encode()


def decode_metadata(raw: bytes) -> dict[str, Any]:
    """Parse and check the metadata; any problem is a one-line ``ValueError``.

    Bounded: at most ``MAX_METADATA_BYTES`` (checked by the reader before reading) and
    ``MAX_METADATA_DEPTH`` levels of nesting; the fields readers use have their types
    checked (``classes`` a list of strings, ``mean``/``std`` lists of numbers,
    ``skipped`` a list of objects), so a crafted pack fails here, not in a reader.
    """
    try:
        result = json.loads(raw.decode("utf-8"))
    except RecursionError:  # json's C parser recurses once per level
        raise ValueError(
            f"the metadata is nested deeper than {MAX_METADATA_DEPTH} levels"
        ) from None
    if not isinstance(result, dict):
        raise ValueError("pack metadata is not a JSON object")
    _check_depth(result)
    _check_fields(result)
    return result


def _check_depth(value: Any) -> None:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_METADATA_DEPTH:
            raise ValueError(f"the metadata is nested deeper than {MAX_METADATA_DEPTH} levels")
        children = item.values() if isinstance(item, dict) else item
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))


def _check_fields(meta: dict[str, Any]) -> None:
    def fail(key: str, expected: str) -> None:
        raise ValueError(f"{key!r} must be {expected} (got {type(meta[key]).__name__})")

    classes = meta.get("classes")
    if classes is not None:
        if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
            fail("classes", "a list of strings")
        for name in classes:
            try:  # a lone surrogate outside U+DC80..U+DCFF names no file on any system
                name.encode("utf-8", "surrogateescape")
            except UnicodeEncodeError:
                raise ValueError(f"class name {name!r} is not valid text") from None
    for key in ("mean", "std"):
        value = meta.get(key)
        if value is not None and not (
            isinstance(value, list)
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        ):
            fail(key, "a list of numbers")
    skipped = meta.get("skipped")
    if skipped is not None and not (
        isinstance(skipped, list) and all(isinstance(s, dict) for s in skipped)
    ):
        fail("skipped", "a list of objects")
