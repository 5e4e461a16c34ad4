"""The on-disk layout: field sizes, little-endianness, header codec, alignment."""

from __future__ import annotations

import numpy as np
import pytest

from pixpack import format as fmt


def test_index_entry_is_40_bytes_little_endian_and_aligned() -> None:
    assert fmt.INDEX_DTYPE.itemsize == 40
    for name in ("offset", "nbytes", "label"):
        assert fmt.INDEX_DTYPE.fields[name][1] % 8 == 0
        assert fmt.INDEX_DTYPE[name].byteorder in ("<", "=", "|")
        assert fmt.INDEX_DTYPE[name].str.startswith("<")


def test_header_round_trip_and_crc() -> None:
    raw = fmt.encode_header(num_samples=7, index_offset=8192, meta_offset=9000, file_size=9100)
    assert len(raw) == fmt.HEADER_SIZE
    header = fmt.decode_header(raw)
    assert header is not None
    assert (int(header["num_samples"]), int(header["index_offset"])) == (7, 8192)
    assert (int(header["major"]), int(header["minor"])) == (fmt.FORMAT_MAJOR, fmt.FORMAT_MINOR)
    assert fmt.header_crc_ok(raw)
    flipped = bytearray(raw)
    flipped[20] ^= 0x01
    assert not fmt.header_crc_ok(bytes(flipped))


def test_zero_header_is_not_a_pack() -> None:
    assert fmt.decode_header(b"\x00" * fmt.HEADER_SIZE) is None
    assert fmt.decode_header(b"PIX") is None


@pytest.mark.parametrize("value", [0, 1, 63, 64, 65, 4095, 4096, 10**12 + 3])
def test_align(value: int) -> None:
    aligned = fmt.align(value, 64)
    assert aligned % 64 == 0 and 0 <= aligned - value < 64


def test_metadata_is_json_not_pickle() -> None:
    meta = {"classes": ["chat", "chien", "été"], "mean": [0.5, 0.4, 0.3]}
    raw = fmt.encode_metadata(meta)
    assert fmt.decode_metadata(raw) == meta
    with pytest.raises(ValueError):
        fmt.encode_metadata({"bad": float("nan")})
    with pytest.raises(ValueError):
        fmt.decode_metadata(b"[1, 2]")


def test_checksum_is_crc32_of_bytes() -> None:
    data = np.arange(1000, dtype=np.uint8)
    assert fmt.checksum(data) == fmt.checksum(data.tobytes())
    assert fmt.checksum(b"") == 0
