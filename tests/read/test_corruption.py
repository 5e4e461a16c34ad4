"""Damaged packs: every kind of damage becomes a documented PackError, never a crash."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from pixpack import format as fmt
from pixpack.errors import (
    CorruptPackError,
    NotAPackError,
    PackError,
    TruncatedPackError,
    UnsupportedModeError,
    UnsupportedVersionError,
)
from pixpack.read import open_pack, verify
from pixpack.write.writer import PackWriter

INDEX_FIELD = {name: fmt.INDEX_DTYPE.fields[name][1] for name in fmt.INDEX_DTYPE.names}


@pytest.fixture
def copy(tmp_path, mixed_pack) -> Path:
    target = tmp_path / "copy.pixpack"
    shutil.copyfile(mixed_pack, target)
    return target


def header_of(path: Path) -> dict[str, int]:
    with open_pack(path) as pack:
        return pack.header


def flip(path: Path, at: int, mask: int = 0x40) -> None:
    with open(path, "r+b") as f:
        f.seek(at)
        byte = f.read(1)[0]
        f.seek(at)
        f.write(bytes([byte ^ mask]))


def entry_at(path: Path, sample: int, field: str) -> int:
    h = header_of(path)
    return h["index_offset"] + sample * h["entry_size"] + INDEX_FIELD[field]


# -- truncation -----------------------------------------------------------------------------
def cut_points(path: Path) -> dict[str, int]:
    h = header_of(path)
    return {
        "empty": 0,
        "inside magic": 5,
        "inside header": 60,
        "header only": fmt.HEADER_SIZE,
        "inside data": (h["data_offset"] + h["index_offset"]) // 2,
        "inside index": h["index_offset"] + h["entry_size"] * 3 + 7,
        "inside metadata": h["meta_offset"] + h["meta_nbytes"] // 2,
        "last byte missing": h["file_size"] - 1,
    }


@pytest.mark.parametrize(
    "where",
    ["empty", "inside magic", "inside header", "header only", "inside data", "inside index",
     "inside metadata", "last byte missing"],
)
def test_truncated_pack_fails_on_open(copy, where):
    cut = cut_points(copy)[where]
    with open(copy, "r+b") as f:
        f.truncate(cut)
    expected = NotAPackError if cut < len(fmt.MAGIC) else TruncatedPackError
    with pytest.raises(expected) as info:
        open_pack(copy)
    message = str(info.value)
    assert str(copy) in message and "\n" not in message
    if expected is TruncatedPackError:
        assert "truncated" in message
    with pytest.raises(expected):
        verify(copy)


def test_trailing_garbage_is_corrupt(copy):
    with open(copy, "ab") as f:
        f.write(b"junk")
    with pytest.raises(CorruptPackError, match="unexpected bytes"):
        open_pack(copy)


def test_unfinished_partial_file_is_not_a_pack(tmp_path, mixed_images):
    writer = PackWriter(tmp_path / "x.pixpack", {"k": 1}).start()
    writer.append(
        mixed_images[0].tobytes(), source_index=0, height=mixed_images[0].shape[0],
        width=mixed_images[0].shape[1], channels=3, dtype_code=0, mode_code=0, label=0,
    )
    writer.flush()
    with pytest.raises(NotAPackError) as info:
        open_pack(writer.tmp_path)
    assert "pixpack pack SRC" in str(info.value)
    assert "unfinished or interrupted" in str(info.value)
    writer.abort()


def test_other_files_are_not_packs(tmp_path, photo_folder):
    jpeg = next(photo_folder.rglob("*.jpg"))
    with pytest.raises(NotAPackError):
        open_pack(jpeg)
    with pytest.raises(FileNotFoundError):
        open_pack(tmp_path / "missing.pixpack")


# -- versions -------------------------------------------------------------------------------
def rewrite_header(path: Path, **changes: int) -> None:
    h = header_of(path)
    fields = {k: v for k, v in h.items() if k not in ("magic", "header_crc32")}
    fields.update(changes)
    with open(path, "r+b") as f:
        f.write(fmt.encode_header(**fields))


def test_newer_major_version_is_refused(copy):
    rewrite_header(copy, major=fmt.FORMAT_MAJOR + 1, minor=3)
    with pytest.raises(UnsupportedVersionError) as info:
        open_pack(copy)
    assert f"{fmt.FORMAT_MAJOR + 1}.3" in str(info.value)
    assert "upgrade pixpack" in str(info.value)


def test_newer_minor_version_opens(copy, mixed_images):
    rewrite_header(copy, minor=fmt.FORMAT_MINOR + 5)
    pack = open_pack(copy)
    np.testing.assert_array_equal(pack[0][0], mixed_images[0])


# -- bit flips ------------------------------------------------------------------------------
@pytest.mark.parametrize("at", [0, 7, 12, 17, 25, 40, 50, 60, 66, 75])
def test_header_bit_flip_fails_on_open(copy, at):
    flip(copy, at)
    with pytest.raises(PackError) as info:
        open_pack(copy)
    if at < len(fmt.MAGIC):
        assert isinstance(info.value, NotAPackError)
    else:
        assert isinstance(info.value, CorruptPackError)  # CRC, or size vs file_size


def test_metadata_bit_flip_fails_on_open(copy):
    h = header_of(copy)
    flip(copy, h["meta_offset"] + 3)
    with pytest.raises(CorruptPackError, match="metadata"):
        open_pack(copy)


@pytest.mark.parametrize("sample", [0, 1, 7])  # raw RGB, jpeg RGB, raw RGBA
def test_sample_bit_flip(copy, sample):
    pack = open_pack(copy)
    info = pack.sample_info(sample)
    pack.close()
    flip(copy, info["offset"] + info["nbytes"] // 2)
    try:  # structure intact: without checksums a raw sample reads (wrong pixels) ...
        open_pack(copy)[sample]
    except CorruptPackError as exc:  # ... and a JPEG may fail to decode, with the same error
        assert info["mode"] == "jpeg" and f"sample {sample}" in str(exc)
    checked = open_pack(copy, check_checksums=True)
    with pytest.raises(CorruptPackError, match=f"sample {sample} does not match its checksum"):
        checked[sample]
    with pytest.raises(CorruptPackError):
        checked.sample_bytes(sample)
    other = (sample + 2) % len(checked)
    checked[other]  # other samples still read fine
    report = verify(copy)
    assert not report.ok
    assert report.index_ok
    assert list(report.bad_samples) == [sample]
    assert "checksum" in report.bad_samples[sample]
    assert f"1 damaged sample(s): {sample}" in report.summary()


def test_jpeg_damage_maps_to_corrupt_pack_error(copy):
    pack = open_pack(copy)
    info = pack.sample_info(3)
    assert info["mode"] == "jpeg"
    pack.close()
    with open(copy, "r+b") as f:  # destroy the SOI marker and the tables after it
        f.seek(info["offset"])
        f.write(b"\x00" * 64)
    with pytest.raises(CorruptPackError, match="sample 3 is not a decodable JPEG"):
        open_pack(copy)[3]


def test_index_offset_flip_never_reads_past_the_file(copy):
    flip(copy, entry_at(copy, 2, "offset") + 5)  # offset += 2**42: far past the end
    pack = open_pack(copy)
    for read in (lambda: pack[2], lambda: pack.sample_bytes(2), lambda: pack.read_image(2)):
        with pytest.raises(CorruptPackError, match="sample 2 points outside the data region"):
            read()
    pack[3]
    report = verify(copy)
    assert not report.index_ok
    assert "outside the data region" in report.bad_samples[2]


def test_index_shape_flip_is_caught_for_raw_samples(copy):
    flip(copy, entry_at(copy, 0, "height"), 0x01)
    pack = open_pack(copy)
    with pytest.raises(CorruptPackError, match=r"sample 0 holds .* bytes but its index says"):
        pack[0]
    report = verify(copy)
    assert not report.index_ok and 0 in report.bad_samples


def test_index_label_flip_is_caught_by_verify(copy):
    flip(copy, entry_at(copy, 4, "label"), 0x02)
    report = verify(copy)
    assert not report.index_ok
    assert not report.ok
    assert "index" in report.summary()


def test_unknown_mode_raises_for_that_sample_only(copy):
    flip(copy, entry_at(copy, 0, "mode"), 0x08)
    pack = open_pack(copy)
    with pytest.raises(UnsupportedModeError, match="upgrade pixpack"):
        pack[0]
    pack[1]


def test_nbytes_overflow_flip(copy):
    flip(copy, entry_at(copy, 5, "nbytes") + 7, 0x80)  # nbytes ~ 2**63
    pack = open_pack(copy)
    with pytest.raises(CorruptPackError, match="sample 5"):
        pack.sample_bytes(5)
    assert 5 in verify(copy).bad_samples


def test_verify_clean_pack(mixed_pack):
    report = verify(mixed_pack, progress=False)
    assert report.ok, report.problems()
    assert report.num_samples == 9
    pack = open_pack(mixed_pack)
    expected = int(np.asarray(pack.index["nbytes"]).sum()) + 9 * fmt.INDEX_DTYPE.itemsize
    assert report.bytes_checked == expected
    assert "ok" in report.summary()


def test_overlapping_samples_are_reported(tmp_path, mixed_images):
    """A structurally wrong index (with a consistent CRC) is still caught by verify."""
    from read_helpers import build_pack

    path = build_pack(tmp_path / "o.pixpack", mixed_images[:3], [0, 1, 2])
    h = header_of(path)
    blob = bytearray(path.read_bytes())
    index = np.frombuffer(bytes(blob[h["index_offset"] : h["meta_offset"]]), fmt.INDEX_DTYPE).copy()
    index["offset"][2] = index["offset"][1] + 64  # sample 2 now starts inside sample 1
    blob[h["index_offset"] : h["meta_offset"]] = index.tobytes()
    path.write_bytes(bytes(blob))
    rewrite_header(path, index_crc32=fmt.checksum(index.tobytes()))
    report = verify(path)
    assert report.index_ok
    assert "overlaps sample 1" in report.bad_samples[2]
