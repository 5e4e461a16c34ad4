"""Pack reading: shapes, pixels, labels, zero-copy views, pickling, in-memory mode."""

from __future__ import annotations

import io
import pickle

import numpy as np
import pytest
from PIL import Image
from read_helpers import CLASSES, build_pack

import pixpack.read as read
from pixpack import format as fmt
from pixpack.errors import CorruptPackError
from pixpack.read import Pack, open_pack


def test_open_len_classes_targets(mixed_pack, mixed_labels, mixed_images):
    pack = open_pack(mixed_pack)
    assert len(pack) == len(mixed_images)
    assert pack.classes == CLASSES
    assert pack.class_to_idx == {"cat": 0, "dog": 1, "ñandú": 2}
    assert pack.targets.dtype == np.int64
    assert pack.targets.tolist() == mixed_labels
    assert not pack.targets.flags.writeable  # a view of the read-only map, not a copy
    assert pack.path == mixed_pack
    assert pack.metadata["pixpack_version"] == "0.1.0"
    assert "9 samples, 3 classes" in repr(pack)


def test_getitem_returns_exact_raw_pixels_and_close_jpeg(mixed_pack, mixed_images, mixed_modes):
    pack = open_pack(mixed_pack)
    for i, (expected, mode) in enumerate(zip(mixed_images, mixed_modes, strict=True)):
        image, label = pack[i]
        assert image.shape == expected.shape
        assert image.dtype == expected.dtype
        assert isinstance(label, int)
        assert image.flags.writeable and image.flags.c_contiguous
        if mode == "raw":
            np.testing.assert_array_equal(image, expected)
        else:  # JPEG: the same pixels as Pillow's decode of the stored bytes
            ref = np.asarray(Image.open(io.BytesIO(pack.sample_bytes(i))))
            ref = ref.reshape(image.shape)
            assert np.abs(image.astype(np.int16) - ref).max() <= 2
            err = np.abs(image.astype(np.int16) - expected.astype(np.int16)).mean()
            assert err < 10, (i, err)  # and still the photo that was packed


def test_uint16_and_rgba_round_trip(mixed_pack, mixed_images):
    pack = open_pack(mixed_pack)
    deep, _ = pack[8]
    assert deep.dtype == np.uint16 and deep.shape[2] == 1
    assert deep.max() > 255
    np.testing.assert_array_equal(deep, mixed_images[8])
    rgba, _ = pack[7]
    assert rgba.shape[2] == 4


def test_negative_and_numpy_indices_and_out_of_range(mixed_pack):
    pack = open_pack(mixed_pack)
    np.testing.assert_array_equal(pack[-1][0], pack[len(pack) - 1][0])
    np.testing.assert_array_equal(pack[np.int64(2)][0], pack[2][0])
    for bad in (len(pack), -len(pack) - 1, 10**9):
        with pytest.raises(IndexError):
            pack[bad]
    with pytest.raises(TypeError):
        pack[1.5]


def test_read_image_view_is_zero_copy_and_read_only(mixed_pack):
    pack = open_pack(mixed_pack)
    view = pack.read_image(0)
    assert not view.flags.writeable
    assert not view.flags.owndata
    copy = pack.read_image(0, copy=True)
    assert copy.flags.writeable
    np.testing.assert_array_equal(view, copy)
    with pytest.raises(ValueError):
        view[0, 0, 0] = 1


def test_sample_bytes_shape_info(mixed_pack, mixed_images, mixed_modes):
    pack = open_pack(mixed_pack)
    raw = pack.sample_bytes(0)
    assert isinstance(raw, memoryview) and raw.readonly
    assert bytes(raw) == mixed_images[0].tobytes()
    jpeg = pack.sample_bytes(1)
    assert bytes(jpeg[:2]) == b"\xff\xd8"
    assert fmt.checksum(jpeg) == pack.sample_info(1)["checksum"]
    for i, image in enumerate(mixed_images):
        assert pack.sample_shape(i) == image.shape
        info = pack.sample_info(i)
        assert info["mode"] == mixed_modes[i]
        assert (info["height"], info["width"], info["channels"]) == image.shape
        assert info["dtype"] == str(image.dtype)
        assert info["offset"] % fmt.SAMPLE_ALIGN == 0
    assert pack.sample_info(-1)["index"] == len(pack) - 1


def test_index_view_has_format_columns(mixed_pack, mixed_images):
    pack = open_pack(mixed_pack)
    index = pack.index
    assert set(index.dtype.names) == set(fmt.INDEX_DTYPE.names)
    assert index["height"].tolist() == [im.shape[0] for im in mixed_images]
    assert int(index["offset"].min()) >= fmt.DATA_ALIGN


def test_pickle_reopens_lazily(mixed_pack):
    pack = open_pack(mixed_pack, check_checksums=True)
    state = pickle.dumps(pack)
    assert len(state) < 1000  # path + options, not the data
    clone = pickle.loads(state)
    assert clone._index is None  # not opened until used
    assert len(clone) == len(pack)
    np.testing.assert_array_equal(clone[3][0], pack[3][0])
    assert clone._check


def test_pickled_pack_refuses_a_replaced_file(tmp_path, mixed_images):
    path = build_pack(tmp_path / "a.pixpack", mixed_images[:2], [0, 1])
    state = pickle.dumps(open_pack(path))
    build_pack(tmp_path / "a.pixpack", mixed_images[2:5], [0, 1, 2])
    clone = pickle.loads(state)
    with pytest.raises(CorruptPackError, match="changed on disk"):
        len(clone)


def test_in_memory_matches_mapped(mixed_pack):
    mapped = open_pack(mixed_pack)
    memory = open_pack(mixed_pack, in_memory=True)
    for i in range(len(mapped)):
        np.testing.assert_array_equal(mapped[i][0], memory[i][0])
    assert bytes(memory.sample_bytes(2)) == bytes(mapped.sample_bytes(2))
    assert memory.targets.tolist() == mapped.targets.tolist()


def test_close_and_context_manager(mixed_pack):
    with open_pack(mixed_pack) as pack:
        buffer = pack._file.buffer
        pack[0]
    assert buffer.closed
    assert "closed" in repr(pack)
    with pytest.raises(ValueError, match="closed"):
        pack[0]


def test_close_keeps_handed_out_views_valid(mixed_pack, mixed_images):
    pack = open_pack(mixed_pack)
    view = pack.read_image(0)
    pack.close()
    np.testing.assert_array_equal(view, mixed_images[0])  # the map lives while views do


def test_iteration(mixed_pack):
    pack = open_pack(mixed_pack)
    labels = [label for _, label in pack]
    assert labels == pack.targets.tolist()


def test_wider_index_entries_from_a_newer_minor_are_skipped(tmp_path, mixed_images):
    """entry_size > 40: a newer writer appended index columns; this reader ignores them."""
    path = build_pack(tmp_path / "old.pixpack", mixed_images[:3], [2, 1, 0])
    pack = open_pack(path)
    h = pack.header
    old = np.asarray(pack.index).copy()
    blob = bytearray(path.read_bytes())
    pack.close()
    wide = np.dtype([*fmt.INDEX_DTYPE.descr, ("future", "<u8")])
    entries = np.zeros(len(old), dtype=wide)
    for name in fmt.INDEX_DTYPE.names:
        entries[name] = old[name]
    entries["future"] = 0xDEADBEEF
    meta = bytes(blob[h["meta_offset"] :])
    index_offset = h["index_offset"]
    meta_offset = index_offset + entries.nbytes
    new = blob[:index_offset] + entries.tobytes() + meta
    header = fmt.encode_header(
        num_samples=3, data_offset=h["data_offset"], index_offset=index_offset,
        entry_size=wide.itemsize, index_crc32=fmt.checksum(entries.tobytes()),
        meta_offset=meta_offset, meta_nbytes=len(meta), meta_crc32=h["meta_crc32"],
        file_size=len(new), minor=1,
    )
    new[: fmt.HEADER_SIZE] = header
    (tmp_path / "wide.pixpack").write_bytes(bytes(new))
    wide_pack = open_pack(tmp_path / "wide.pixpack")
    assert wide_pack.targets.tolist() == [2, 1, 0]
    for i in range(3):
        np.testing.assert_array_equal(wide_pack[i][0], mixed_images[i])


def test_empty_pack(tmp_path):
    path = build_pack(tmp_path / "empty.pixpack", [], [])
    pack = open_pack(path)
    assert len(pack) == 0
    assert pack.targets.tolist() == []
    with pytest.raises(IndexError):
        pack[0]


def test_public_surface():
    assert isinstance(open_pack, type(lambda: 0))
    assert set(read.__all__) >= {"Pack", "open_pack", "verify", "VerifyReport", "export"}
    assert Pack.__module__ == "pixpack.read.pack"
