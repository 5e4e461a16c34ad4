"""reencode="auto": source JPEGs that re-encoding could only degrade are stored as is."""

from __future__ import annotations

import io

import numpy as np
import pytest
import simplejpeg
from PIL import Image

from pixpack import format as fmt
from pixpack import pack
from pixpack.options import PackOptions
from pixpack.read.open_any import open_pack
from pixpack.write.passthrough import parse_layout, passthrough_bytes


def jpeg_bytes(image: Image.Image, **kwargs) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "JPEG", **kwargs)
    return buf.getvalue()


def _exif(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010E] = "a description that must not be stored"
    return exif.tobytes()


def _decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


@pytest.mark.parametrize("quality", [60, 75, 90])
def test_coarser_or_equal_quantisation_passes(photo_image, quality):
    data = jpeg_bytes(photo_image, quality=quality)
    assert passthrough_bytes(data, 90) is not None


@pytest.mark.parametrize("quality", [91, 95, 100])
def test_finer_quantisation_is_reencoded(photo_image, quality):
    assert passthrough_bytes(jpeg_bytes(photo_image, quality=quality), 90) is None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"progressive": True},
        {"subsampling": 0},  # 4:4:4 keeps more chroma than pixpack's 4:2:0 encode
        {"subsampling": 1},  # 4:2:2
    ],
)
def test_unsuitable_structure_is_reencoded(photo_image, kwargs):
    assert passthrough_bytes(jpeg_bytes(photo_image, quality=75, **kwargs), 90) is None


def test_gray_passes_and_cmyk_does_not(photo_image):
    assert passthrough_bytes(jpeg_bytes(photo_image.convert("L"), quality=80), 90) is not None
    assert passthrough_bytes(jpeg_bytes(photo_image.convert("CMYK"), quality=80), 90) is None


def test_reference_tables_are_our_encoders(photo_image):
    # simplejpeg at quality Q writes exactly the tables the rule compares against.
    ours = simplejpeg.encode_jpeg(np.asarray(photo_image), quality=90, colorsubsampling="420")
    assert passthrough_bytes(ours, 90) is not None
    assert passthrough_bytes(ours, 89) is None


def test_metadata_is_stripped_and_pixels_are_untouched(photo_image):
    data = jpeg_bytes(photo_image, quality=80, exif=_exif(1), comment=b"secret comment")
    kept = passthrough_bytes(data, 90)
    assert kept is not None and len(kept) < len(data)
    assert b"secret comment" not in kept and b"must not be stored" not in kept
    assert b"Exif" not in kept
    layout = parse_layout(kept)
    assert layout is not None and kept.endswith(b"\xff\xd9")
    np.testing.assert_array_equal(_decode(kept), _decode(data))


@pytest.mark.parametrize("data", [b"", b"\xff\xd8", b"\xff\xd8\xff\xdb\x00\x50", b"not a jpeg"])
def test_malformed_headers_are_not_passed(data):
    assert passthrough_bytes(data, 90) is None


@pytest.fixture
def sources(tmp_path, photo_image):
    """Files covering every reason to keep or re-encode, in one class folder."""
    folder = tmp_path / "src" / "a"
    folder.mkdir(parents=True)
    files = {
        "keep_q80.jpg": jpeg_bytes(photo_image, quality=80, exif=_exif(1)),
        "keep_gray.jpg": jpeg_bytes(photo_image.convert("L"), quality=70),
        "fine_q95.jpg": jpeg_bytes(photo_image, quality=95),
        "rotated.jpg": jpeg_bytes(photo_image, quality=80, exif=_exif(6)),
        "progressive.jpg": jpeg_bytes(photo_image, quality=80, progressive=True),
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return tmp_path / "src", files


def test_pack_keeps_exactly_the_eligible_files(sources, tmp_path):
    root, files = sources
    out = tmp_path / "p.pixpack"
    pack(root, out, mode="jpeg", quality=90, workers=2, quiet=True)
    names = sorted(files)  # ImageFolder order within the class
    with open_pack(out) as p:
        assert p.metadata["jpeg_kept_as_source"] == 2
        assert (np.asarray(p.index["mode"]) == fmt.MODE_JPEG).all()
        for i, name in enumerate(names):
            image, _ = p[i]
            source = files[name]
            stored = bytes(p.sample_bytes(i))
            if name.startswith("keep"):
                assert stored == passthrough_bytes(source, 90)
                decoded = np.asarray(Image.open(io.BytesIO(source)))
                np.testing.assert_array_equal(image.reshape(decoded.shape), decoded)
            else:
                assert stored != source and stored != passthrough_bytes(source, 90)
        # EXIF orientation 6 was applied: the stored image is the photo turned upright.
        assert p.sample_shape(names.index("rotated.jpg"))[:2] == (160, 120)
        assert p.sample_shape(names.index("keep_q80.jpg"))[:2] == (120, 160)


def test_reencode_always_and_resizing_reencode_everything(sources, tmp_path):
    root, _ = sources
    for out, kwargs in [
        (tmp_path / "always.pixpack", {"reencode": "always"}),
        (tmp_path / "small.pixpack", {"max_side": 100}),
        (tmp_path / "rgb.pixpack", {"channels": 3}),
    ]:
        pack(root, out, mode="jpeg", quality=90, workers=1, quiet=True, **kwargs)
        with open_pack(out) as p:
            kept = p.metadata["jpeg_kept_as_source"]
            if "channels" in kwargs:
                assert kept == 1  # the colour q80 file still needs nothing
            else:
                assert kept == 0


def test_corrupt_eligible_jpeg_is_skipped_and_reported(tmp_path, photo_image):
    folder = tmp_path / "src" / "a"
    folder.mkdir(parents=True)
    good = jpeg_bytes(photo_image, quality=80)
    assert passthrough_bytes(good, 90) is not None
    bad = bytearray(good)
    mid = len(bad) // 2
    bad[mid : mid + 200] = np.random.default_rng(3).integers(0, 256, 200, np.uint8).tobytes()
    (folder / "bad.jpg").write_bytes(bytes(bad))
    (folder / "good.jpg").write_bytes(good)
    with pytest.warns(UserWarning, match="skipped 1"):
        summary = pack(tmp_path / "src", tmp_path / "p.pixpack", mode="jpeg", quiet=True)
    assert summary.num_samples == 1
    assert summary.skipped[0]["path"].endswith("bad.jpg")
    assert "corrupt JPEG" in summary.skipped[0]["reason"]


def test_mean_std_of_kept_jpegs_match_full_decodes(photo_folder, tmp_path):
    out = tmp_path / "p.pixpack"
    pack(photo_folder, out, mode="jpeg", quality=100, workers=2, quiet=True)
    with open_pack(out) as p:
        assert p.metadata["jpeg_kept_as_source"] == len(p)  # every fixture photo is <= q95
        pixels = np.concatenate([p[i][0].reshape(-1, 3) / 255.0 for i in range(len(p))])
        mean, std = np.asarray(p.metadata["mean"]), np.asarray(p.metadata["std"])
    np.testing.assert_allclose(mean, pixels.mean(0), atol=0.5 / 255)
    np.testing.assert_allclose(std, pixels.std(0), rtol=0.01)


def test_reencode_changes_the_content_key():
    jpeg = PackOptions(mode="jpeg")
    assert jpeg.content_key() != PackOptions(mode="jpeg", reencode="always").content_key()
    assert PackOptions().content_key() == PackOptions(reencode="always").content_key()


def test_bad_reencode_value_is_a_usage_error():
    from pixpack.errors import UsageError

    with pytest.raises(UsageError, match="reencode must be"):
        PackOptions(reencode="never")  # type: ignore[arg-type]


def test_jpeg_pack_of_awkward_inputs_skips_the_same_files(mixed_folder, tmp_path):
    # corrupt.jpg is a q90 baseline JPEG: eligible, so only the validating decode
    # of the kept bytes can reject it.
    with pytest.warns(UserWarning, match="skipped 4 unreadable"):
        summary = pack(mixed_folder, tmp_path / "j.pixpack", mode="jpeg", workers=2, quiet=True)
    names = {s["path"].rsplit("/", 1)[1] for s in summary.skipped}
    assert names == {"corrupt.jpg", "truncated.png", "empty.jpg", "text.jpg"}
    with open_pack(tmp_path / "j.pixpack") as p:
        assert p.metadata["jpeg_kept_as_source"] >= 2


def test_interrupted_jpeg_pack_resumes_to_the_same_bytes(photo_folder, tmp_path, monkeypatch):
    from pixpack.write import packer

    reference = tmp_path / "ref.pixpack"
    pack(photo_folder, reference, mode="jpeg", workers=1, quiet=True)
    out = tmp_path / "r.pixpack"
    real = packer._process_one

    def interrupt_at_ten(src, job, i):
        if i == 10:
            raise KeyboardInterrupt
        return real(src, job, i)

    monkeypatch.setattr(packer, "_process_one", interrupt_at_ten)
    with pytest.raises(KeyboardInterrupt, match="resume"):
        pack(photo_folder, out, mode="jpeg", workers=1, quiet=True)
    monkeypatch.setattr(packer, "_process_one", real)
    pack(photo_folder, out, mode="jpeg", workers=2, quiet=True, resume=True)
    with open_pack(out) as a, open_pack(reference) as b:
        assert len(a) == len(b) and a.metadata["jpeg_kept_as_source"] < len(a)
        for i in range(len(a)):
            assert bytes(a.sample_bytes(i)) == bytes(b.sample_bytes(i))
        assert a.metadata["mean"] == pytest.approx(b.metadata["mean"], rel=1e-12)
        assert a.metadata["std"] == pytest.approx(b.metadata["std"], rel=1e-12)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"restart_marker_blocks": 4},
        {"optimize": True},
        {"icc_profile": b"\x00" * 600},
        {"exif": b"Exif\x00\x00" + b"\x00" * 64, "comment": b"x" * 300},
    ],
    ids=["restart-markers", "optimized-huffman", "icc", "junk-exif"],
)
def test_kept_variants_read_back_exactly(tmp_path, photo_image, kwargs):
    folder = tmp_path / "src" / "a"
    folder.mkdir(parents=True)
    data = jpeg_bytes(photo_image, quality=85, **kwargs)
    (folder / "x.jpg").write_bytes(data + b"trailing bytes after EOI")
    out = tmp_path / "p.pixpack"
    pack(tmp_path / "src", out, mode="jpeg", workers=1, quiet=True)
    expected = np.asarray(Image.open(io.BytesIO(data)))
    with open_pack(out) as p:
        assert p.metadata["jpeg_kept_as_source"] == 1
        np.testing.assert_array_equal(p[0][0], expected)
    # The loader's region-of-interest decode reads the kept bytes too.
    from pixpack.loader import Loader
    from pixpack.ops import CenterCrop, ToOutput

    loader = Loader(
        out,
        1,
        pipeline=[CenterCrop(64), ToOutput(dtype="uint8", layout="NHWC")],
        shuffle=False,
        workers=1,
    )
    ((batch, _),) = list(loader)
    top, left = (expected.shape[0] - 64) // 2, (expected.shape[1] - 64) // 2
    np.testing.assert_array_equal(batch[0].numpy(), expected[top : top + 64, left : left + 64])
