"""pack(): round trips, JPEG quality, metadata, skip/strict policy, sources, workers."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from PIL import Image

from pixpack import format as fmt
from pixpack.errors import EmptySourceError, ImageDecodeError, ResumeError, UsageError
from pixpack.options import PackOptions
from pixpack.read.open_any import open_pack
from pixpack.write import PackSummary, SequenceSource, pack
from pixpack.write.writer import partial_paths


def read_all(path):
    with open_pack(path) as p:
        return [p[i] for i in range(len(p))], p.metadata, np.array(p.index)


def leftovers(out):
    return [p for p in partial_paths(out) if p.exists()]


BAD = {"corrupt.jpg", "truncated.png", "empty.jpg", "text.jpg"}


def test_raw_round_trip_is_pixel_exact(mixed_folder, tmp_path):
    from pixpack.write import ImageFolderSource

    src = ImageFolderSource(mixed_folder)
    with pytest.warns(UserWarning, match="skipped 4 unreadable"):
        summary = pack(src, tmp_path / "a.pixpack", workers=1, quiet=True)
    assert isinstance(summary, PackSummary)
    samples, meta, _ = read_all(tmp_path / "a.pixpack")
    good = [(p, label) for p, label in src.samples if p.rsplit("/", 1)[1] not in BAD]
    assert summary.num_samples == len(samples) == len(good)
    assert summary.num_skipped == 4 and len(meta["skipped"]) == 4
    assert {s["path"].rsplit("/", 1)[1] for s in meta["skipped"]} == BAD
    assert all(s["reason"] for s in meta["skipped"])
    channels_seen, dtypes_seen = set(), set()
    for (path, label), (image, got_label) in zip(good, samples, strict=True):
        assert got_label == label
        name = path.rsplit("/", 1)[1]
        pil = Image.open(path)
        if "16" in name and pil.mode not in ("I;16",):
            continue  # 16-bit colour: checked against OpenCV in test_imageio
        if name == "exif6.jpg":
            pil = pil.transpose(Image.Transpose.ROTATE_270)
        if pil.mode not in ("L", "RGB", "RGBA", "I;16"):
            pil = pil.convert(
                {"P": "RGBA" if "transparency" in pil.info else "RGB", "1": "L", "LA": "L"}.get(
                    pil.mode, "RGB"
                )
            )
        expected = np.asarray(pil)
        expected = expected.reshape(image.shape)
        np.testing.assert_array_equal(image, expected, err_msg=name)
        channels_seen.add(image.shape[2])
        dtypes_seen.add(image.dtype)
    assert channels_seen == {1, 3, 4} and dtypes_seen == {np.dtype(np.uint8), np.dtype("<u2")}
    assert meta["classes"] == ["a", "b"] and meta["class_to_idx"] == {"a": 0, "b": 1}
    assert meta["conversions"]["CMYK->RGB"] == 1
    assert meta["channels_histogram"]["4"] >= 2
    assert sum(meta["class_counts"].values()) == len(samples)
    assert meta["source"]["type"] == "image_folder" and meta["source"]["fingerprint"]
    assert meta["options"] == {
        "mode": "raw",
        "quality": None,
        "reencode": None,
        "max_side": None,
        "channels": None,
    }
    assert meta["created"].endswith("+00:00") and meta["pixpack_version"]
    assert not leftovers(tmp_path / "a.pixpack")


def test_strict_fails_on_first_bad_file_and_leaves_nothing(mixed_folder, tmp_path):
    out = tmp_path / "s.pixpack"
    with pytest.raises(ImageDecodeError) as info:
        pack(mixed_folder, out, workers=2, strict=True, quiet=True)
    from pixpack.write import ImageFolderSource

    samples = ImageFolderSource(mixed_folder).samples
    first_bad = next(p for p, _ in samples if p.endswith(tuple(BAD)))
    assert info.value.path == first_bad
    assert not out.exists() and not leftovers(out)
    assert list(tmp_path.iterdir()) == []


def test_jpeg_mode_quality(photo_folder, tmp_path):
    out = tmp_path / "j.pixpack"
    # "always": every photo is re-encoded, none kept as its source file.
    summary = pack(
        photo_folder, out, mode="jpeg", quality=90, reencode="always", workers=2, quiet=True
    )
    raw = pack(photo_folder, tmp_path / "r.pixpack", workers=1, quiet=True)
    assert summary.bytes < raw.bytes / 4
    jpeg_samples, meta, index = read_all(out)
    raw_samples, _, _ = read_all(tmp_path / "r.pixpack")
    assert (index["mode"] == fmt.MODE_JPEG).all() and meta["options"]["quality"] == 90
    assert meta["jpeg_kept_as_source"] == 0
    for (a, la), (b, lb) in zip(jpeg_samples, raw_samples, strict=True):
        assert la == lb and a.shape == b.shape
        mse = np.mean((a.astype(np.float64) - b) ** 2)
        assert 10 * np.log10(255**2 / mse) > 35


def test_jpeg_pack_stores_16bit_and_alpha_raw(awkward, tmp_path):
    items = [(awkward[n], 0) for n in ("good.jpg", "gray.png", "rgba.png", "rgb16.png")]
    pack(items, tmp_path / "m.pixpack", mode="jpeg", workers=1, quiet=True)
    samples, _, index = read_all(tmp_path / "m.pixpack")
    assert index["mode"].tolist() == [fmt.MODE_JPEG, fmt.MODE_JPEG, fmt.MODE_RAW, fmt.MODE_RAW]
    assert samples[1][0].shape[2] == 1 and samples[3][0].dtype == np.uint16


def test_mean_std_match_numpy(photo_folder, tmp_path):
    pack(photo_folder, tmp_path / "m.pixpack", workers=2, max_side=100, quiet=True)
    samples, meta, _ = read_all(tmp_path / "m.pixpack")
    pixels = np.concatenate([img.reshape(-1, 3) for img, _ in samples]).astype(np.float64) / 255
    np.testing.assert_allclose(meta["mean"], pixels.mean(axis=0), rtol=1e-9)
    np.testing.assert_allclose(meta["std"], pixels.std(axis=0), rtol=1e-7)
    assert meta["stats_channels"] == 3


def test_mean_std_count_gray_images_for_every_channel(awkward, tmp_path):
    items = [(awkward["good.jpg"], 0), (awkward["cmyk.jpg"], 0), (awkward["gray.png"], 0)]
    pack(items, tmp_path / "g.pixpack", workers=1, quiet=True)
    samples, meta, _ = read_all(tmp_path / "g.pixpack")
    rgb = [np.broadcast_to(img, (*img.shape[:2], 3)).reshape(-1, 3) for img, _ in samples]
    pixels = np.concatenate(rgb).astype(np.float64) / 255
    np.testing.assert_allclose(meta["mean"], pixels.mean(axis=0), rtol=1e-9)
    np.testing.assert_allclose(meta["std"], pixels.std(axis=0), rtol=1e-7)


def test_workers_do_not_change_the_bytes(photo_folder, tmp_path):
    one = pack(photo_folder, tmp_path / "1.pixpack", workers=1, max_side=64, quiet=True)
    two = pack(photo_folder, tmp_path / "2.pixpack", workers=2, max_side=64, quiet=True)
    assert one.num_samples == two.num_samples == 24
    _, meta1, index1 = read_all(one.path)
    _, meta2, index2 = read_all(two.path)
    np.testing.assert_array_equal(index1, index2)
    assert (meta1["mean"], meta1["std"]) == (meta2["mean"], meta2["std"])
    data1 = one.path.read_bytes()
    data2 = two.path.read_bytes()
    assert (
        data1[fmt.DATA_ALIGN : int(index1["offset"][-1])]
        == data2[fmt.DATA_ALIGN : int(index2["offset"][-1])]
    )


def test_sequence_source_pil_arrays_paths(awkward, rng, tmp_path):
    a8 = rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)
    a16 = rng.integers(0, 65536, (7, 5), dtype=np.uint16)
    pil = Image.fromarray(a8[:, :, 0])
    items = [(a8, "cat"), (a16, "dog"), (pil, "cat"), (str(awkward["good.jpg"]), "dog")]
    summary = pack(items, tmp_path / "q.pixpack", workers=2, quiet=True)
    samples, meta, _ = read_all(summary.path)
    assert meta["classes"] == ["cat", "dog"]
    assert [label for _, label in samples] == [0, 1, 0, 1]
    np.testing.assert_array_equal(samples[0][0], a8)
    np.testing.assert_array_equal(samples[1][0], a16[:, :, None])
    np.testing.assert_array_equal(samples[2][0], a8[:, :, :1])
    np.testing.assert_array_equal(samples[3][0], np.asarray(Image.open(awkward["good.jpg"])))
    assert meta["source"]["type"] == "sequence" and meta["source"]["fingerprint"] is None


def test_dataset_without_classes_gets_label_names(rng, tmp_path):
    class Tiny:
        def __len__(self):
            return 5

        def __getitem__(self, i):
            return np.full((4, 4, 3), i * 10, np.uint8), i % 3

    pack(SequenceSource(Tiny()), tmp_path / "t.pixpack", workers=1, quiet=True)
    _, meta, _ = read_all(tmp_path / "t.pixpack")
    assert meta["classes"] == ["0", "1", "2"] and meta["class_counts"] == {"0": 2, "1": 2, "2": 1}


def test_csv_source_packs(photo_folder, tmp_path):
    from pixpack.write import ImageFolderSource

    src = ImageFolderSource(photo_folder)
    lines = ["path,label"] + [f"{p},{src.classes[label]}" for p, label in src.samples[::-3]]
    (tmp_path / "l.csv").write_text("\n".join(lines) + "\n")
    summary = pack(tmp_path / "l.csv", tmp_path / "c.pixpack", workers=1, quiet=True)
    samples, meta, _ = read_all(summary.path)
    assert meta["source"]["type"] == "csv" and len(samples) == len(src.samples[::-3])
    assert [lab for _, lab in samples] == [label for _, label in src.samples[::-3]]


def test_options_and_overrides(photo_folder, tmp_path):
    with pytest.raises(UsageError, match="unknown pack option"):
        pack(photo_folder, tmp_path / "x.pixpack", colour="red")
    with pytest.raises(UsageError, match="directory"):
        pack(photo_folder, tmp_path, quiet=True)
    opts = PackOptions(mode="jpeg", max_side=32, workers=1, quiet=True)
    summary = pack(photo_folder, tmp_path / "o.pixpack", opts, channels=1)
    samples, meta, _ = read_all(summary.path)
    assert meta["options"]["channels"] == 1 and meta["options"]["max_side"] == 32
    assert all(img.shape[2] == 1 and max(img.shape[:2]) == 32 for img, _ in samples)


def test_every_image_unreadable(awkward, tmp_path):
    items = [(awkward["empty.jpg"], 0), (awkward["text.jpg"], 0)]
    with pytest.raises(EmptySourceError, match="none of the 2"):
        pack(items, tmp_path / "e.pixpack", workers=1, quiet=True)
    assert list(tmp_path.iterdir()) == []


def test_resume_with_other_options_raises(photo_folder, tmp_path):
    out = tmp_path / "r.pixpack"
    # An interrupted pack of the same source with mode=raw...
    with pytest.raises(KeyboardInterrupt, match="resume=True"):
        pack(_Interrupting(photo_folder, after=5), out, workers=1, quiet=True)
    assert not out.exists() and partial_paths(out)[0].exists()
    with pytest.raises(ResumeError, match="--resume"):
        pack(
            _Interrupting(photo_folder, after=None),
            out,
            workers=1,
            quiet=True,
            resume=True,
            mode="jpeg",
        )
    summary = pack(_Interrupting(photo_folder, after=None), out, workers=1, quiet=True, resume=True)
    assert summary.num_samples == 24 and not leftovers(out)
    fresh = pack(photo_folder, tmp_path / "f.pixpack", workers=1, quiet=True)
    _, _, index_a = read_all(out)
    _, _, index_b = read_all(fresh.path)
    np.testing.assert_array_equal(index_a, index_b)


def test_strict_resume_fails_on_images_an_earlier_run_skipped(photo_folder, tmp_path):
    """strict is not part of what a partial pack was written with; a strict resume
    must still not accept the unreadable files the first run skipped."""
    import shutil

    root = tmp_path / "src"
    shutil.copytree(photo_folder, root)
    first_class = sorted(p for p in root.iterdir() if p.is_dir())[0]
    bad = first_class / "000_bad.jpg"  # sorts first: skipped before the interruption
    bad.write_text("not an image")
    out = tmp_path / "s.pixpack"
    with pytest.raises(KeyboardInterrupt), pytest.warns(UserWarning):
        pack(_Interrupting(root, after=5), out, workers=1, quiet=True)
    with pytest.raises(ImageDecodeError) as info:
        pack(_Interrupting(root, after=None), out, workers=1, quiet=True, resume=True,
             strict=True)  # fmt: skip
    assert info.value.path == str(bad)
    assert not out.exists() and not leftovers(out)  # strict: nothing is kept


def test_resume_clears_a_header_left_by_an_interrupted_commit(tmp_path):
    """Ctrl-C between the commit's header write and its rename leaves a partial file
    with a valid header; once resumed (and growing again) it must not open as a pack."""
    from pixpack.errors import NotAPackError
    from pixpack.write.writer import PackWriter

    out = tmp_path / "h.pixpack"
    writer = PackWriter(out, {"k": 1}).start()
    for i in range(3):
        writer.append(bytes(12), source_index=i, height=2, width=2, channels=3,
                      dtype_code=0, mode_code=fmt.MODE_RAW, label=0)  # fmt: skip
    writer.abort(keep_partial=True)
    tmp = partial_paths(out)[0]
    with open(tmp, "r+b") as f:  # what the interrupted commit had written
        f.write(fmt.encode_header(num_samples=3, data_offset=fmt.DATA_ALIGN))
    writer = PackWriter(out, {"k": 1}).resume()
    assert writer.next_source_index == 3
    writer.append(bytes(12), source_index=3, height=2, width=2, channels=3, dtype_code=0,
                  mode_code=fmt.MODE_RAW, label=0)  # fmt: skip
    writer.flush()
    assert tmp.read_bytes()[: fmt.HEADER_SIZE] == bytes(fmt.HEADER_SIZE)
    with pytest.raises(NotAPackError):
        open_pack(tmp)
    writer.commit({"classes": ["a"]})
    assert len(open_pack(out)) == 4


class _Interrupting:
    """An ImageFolder source whose load() raises KeyboardInterrupt at item ``after``."""

    def __init__(self, root, after):
        from pixpack.write import ImageFolderSource

        self._inner = ImageFolderSource(root)
        self.classes = self._inner.classes
        self.after = after

    def __len__(self):
        return len(self._inner)

    def load(self, i):
        if self.after is not None and i == self.after:
            raise KeyboardInterrupt
        return self._inner.load(i)

    def describe(self):
        return self._inner.describe()

    def fingerprint(self):
        return self._inner.fingerprint()

    def path_of(self, i):
        return self._inner.path_of(i)


def test_metadata_is_plain_json(photo_folder, tmp_path):
    pack(photo_folder, tmp_path / "p.pixpack", workers=1, quiet=True, max_side=16)
    with open_pack(tmp_path / "p.pixpack") as p:
        assert json.loads(json.dumps(p.metadata)) == p.metadata
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pack(photo_folder, tmp_path / "p2.pixpack", workers=1, quiet=True, max_side=16)


def test_names_that_are_not_utf8_pack_and_read_back(tmp_path, photos):
    """Linux file names are bytes; a Latin-1 class folder and a Latin-1 file that is
    skipped reach the metadata as lone surrogates (the commit failed on them)."""
    import os
    import sys

    if not sys.platform.startswith("linux"):
        pytest.skip("file names as raw bytes")
    root = os.path.join(os.fsencode(tmp_path), b"latin1")
    klass = os.path.join(root, b"caf\xe9")
    try:
        os.makedirs(klass)
    except OSError:
        pytest.skip("this file system refuses non-UTF-8 names")
    Image.fromarray(photos[0][:30, :40]).save(os.fsdecode(os.path.join(klass, b"good.png")))
    with open(os.path.join(klass, b"d\xe9j\xe0.jpg"), "wb") as f:
        f.write(b"not an image")
    out = tmp_path / "p.pixpack"
    with pytest.warns(UserWarning, match="skipped 1"):
        summary = pack(os.fsdecode(root), out, workers=1, quiet=True)
    assert summary.num_samples == 1
    with open_pack(out) as p:
        assert [os.fsencode(c) for c in p.classes] == [b"caf\xe9"]
        (skipped,) = p.metadata["skipped"]
        assert os.fsencode(skipped["path"]).endswith(b"d\xe9j\xe0.jpg")


def test_jpeg_mode_says_which_images_it_stored_raw(tmp_path, photos):
    """Issue 13: --mode jpeg on 16-bit (or RGBA) input stored them raw without a word."""
    rgb = np.ascontiguousarray(photos[0][:40, :60])
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    deep = rgb.astype(np.uint16) * np.uint16(257)
    data = [(rgb, 0), (rgba, 1), (deep, 1)]
    with pytest.warns(UserWarning, match=r"2 of 3 image\(s\) stored raw, not JPEG"):
        summary = pack(data, tmp_path / "a.pixpack", mode="jpeg", workers=1, quiet=True)
    assert summary.modes == {"jpeg": 1, "raw": 2}
    with pytest.warns(UserWarning, match=r"1 of 3 image\(s\) stored raw"):
        summary = pack(data, tmp_path / "b.pixpack", mode="jpeg", channels=3, workers=1, quiet=True)
    assert summary.modes == {"jpeg": 2, "raw": 1}
