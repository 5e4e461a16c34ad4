"""load_image: modes, 16-bit, EXIF, resizing and every kind of broken file."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from pixpack.errors import ImageDecodeError
from pixpack.write.imageio import load_image, load_image_info, target_size


def pil_decode(path) -> np.ndarray:
    a = np.asarray(Image.open(path))
    return a[:, :, None] if a.ndim == 2 else a


@pytest.mark.parametrize(
    ("name", "mode", "conversion", "channels"),
    [
        ("good.jpg", "RGB", None, 3),
        ("gray.jpg", "L", None, 1),
        ("gray.png", "L", None, 1),
        ("rgba.png", "RGBA", None, 4),
        ("cmyk.jpg", "CMYK", "CMYK->RGB", 3),
        ("palette.png", "P", "P->RGB", 3),
        ("palette_t.png", "P", "P->RGBA", 4),
        ("bilevel.png", "1", "1->L", 1),
        ("la.png", "LA", "LA->L", 1),
        ("gray16.png", "I;16", None, 1),
        ("rgb16.png", "RGB;16", None, 3),
        ("rgba16.png", "RGBA;16", None, 4),
    ],
)
def test_modes(awkward, name, mode, conversion, channels):
    info = load_image_info(awkward[name])
    assert info.source_mode == mode
    assert info.conversion == conversion
    a = info.array
    assert a.ndim == 3 and a.shape[2] == channels and a.flags.c_contiguous
    assert a.dtype == (np.uint16 if "16" in name else np.uint8)


@pytest.mark.parametrize("name", ["good.jpg", "gray.jpg", "gray.png", "rgba.png", "la.png"])
def test_8bit_equals_pillow(awkward, name):
    expected = Image.open(awkward[name])
    if expected.mode == "LA":
        expected = expected.convert("L")
    expected = np.asarray(expected)
    got = load_image(awkward[name])
    np.testing.assert_array_equal(got, expected.reshape(got.shape))


def test_cmyk_and_palette_follow_pillow_conversion(awkward):
    cmyk = np.asarray(Image.open(awkward["cmyk.jpg"]).convert("RGB"))
    np.testing.assert_array_equal(load_image(awkward["cmyk.jpg"]), cmyk)
    pal = np.asarray(Image.open(awkward["palette_t.png"]).convert("RGBA"))
    np.testing.assert_array_equal(load_image(awkward["palette_t.png"]), pal)
    assert (pal[:, :, 3] == 0).any()  # the transparent entry is really used


@pytest.mark.parametrize("name", ["gray16.png", "rgb16.png", "rgba16.png"])
def test_16bit_png_is_not_truncated(awkward, name):
    expected = cv2.imread(str(awkward[name]), cv2.IMREAD_UNCHANGED)
    if expected.ndim == 2:
        expected = expected[:, :, None]
    elif expected.shape[2] == 3:
        expected = expected[:, :, ::-1]
    else:
        expected = expected[:, :, [2, 1, 0, 3]]
    got = load_image(awkward[name])
    assert got.dtype == np.dtype("<u2")
    np.testing.assert_array_equal(got, expected)
    assert (got % 257 != 0).any()  # low bytes kept: not an 8-bit image scaled up


def test_16bit_tiff_via_tifffile(tmp_path, rng):
    tifffile = pytest.importorskip("tifffile")
    data = rng.integers(0, 65536, (20, 30, 3), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "x.tif", data)
    np.testing.assert_array_equal(load_image(tmp_path / "x.tif"), data)


@pytest.mark.parametrize("maxval", [65535, 4095])
def test_16bit_ppm_is_not_truncated(tmp_path, rng, photos, maxval):
    """Pillow opens a P6 PPM with maxval > 255 as 8-bit RGB; it is kept as uint16."""
    photo = photos[0][:24, :32].astype(np.uint32)
    data = (photo * maxval // 255 ^ rng.integers(0, 3, photo.shape)).astype(np.uint16)
    header = f"P6\n# a comment\n32 24\n{maxval}\n".encode()
    (tmp_path / "deep.ppm").write_bytes(header + data.astype(">u2").tobytes())
    got = load_image(tmp_path / "deep.ppm")
    assert got.dtype == np.dtype("<u2") and got.shape == (24, 32, 3)
    np.testing.assert_array_equal(got, data)
    plain = tmp_path / "plain.ppm"
    Image.fromarray(photos[0][:24, :32]).save(plain)
    assert load_image(plain).dtype == np.uint8  # maxval 255 stays 8-bit


def test_a_decoder_raising_anything_is_an_unreadable_image(tmp_path, photos):
    """One changed byte in a TIFF (StripOffsets typed ASCII) makes Pillow raise a
    TypeError: that is one image to skip, with the cause in the reason."""
    import struct

    buf = io.BytesIO()
    Image.fromarray(photos[0][:30, :40]).save(buf, "TIFF")
    tif = bytearray(buf.getvalue())
    ifd = struct.unpack_from("<I", tif, 4)[0]
    for k in range(struct.unpack_from("<H", tif, ifd)[0]):
        entry = ifd + 2 + 12 * k
        if struct.unpack_from("<H", tif, entry)[0] == 273:  # StripOffsets
            struct.pack_into("<H", tif, entry + 2, 2)  # LONG -> ASCII
    (tmp_path / "damaged.tif").write_bytes(bytes(tif))
    with pytest.raises(ImageDecodeError) as info:
        load_image(tmp_path / "damaged.tif")
    assert info.value.reason.startswith("cannot decode (TypeError")
    with pytest.raises(ImageDecodeError, match="TypeError"):
        load_image(Image.open(tmp_path / "damaged.tif"))  # a lazily loaded PIL image too


def test_exif_orientation_applied(awkward):
    plain = load_image(awkward["good.jpg"])
    rotated = load_image(awkward["exif6.jpg"])
    # orientation 6 = the camera was turned: display rotated 90 degrees clockwise
    assert rotated.shape == (plain.shape[1], plain.shape[0], 3)
    reference = np.asarray(ImageOps.exif_transpose(Image.open(awkward["exif6.jpg"])))
    np.testing.assert_array_equal(rotated, reference)
    unrotated = np.asarray(Image.open(awkward["exif6.jpg"]))
    np.testing.assert_array_equal(rotated, np.rot90(unrotated, -1))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_matches_pillow(orientation):
    base = Image.fromarray((np.arange(5 * 7 * 3) % 251).astype(np.uint8).reshape(5, 7, 3))
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    base.save(buf, "PNG", exif=exif)
    buf.seek(0)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(buf)))
    buf.seek(0)
    np.testing.assert_array_equal(load_image(Image.open(buf)), expected)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("corrupt.jpg", "corrupt JPEG"),
        ("truncated.png", "truncated"),
        ("empty.jpg", "empty file"),
        ("text.jpg", "not an image"),
    ],
)
def test_broken_files_raise_decode_error(awkward, name, reason):
    with pytest.raises(ImageDecodeError) as info:
        load_image(awkward[name])
    assert info.value.path == str(awkward[name])
    assert reason in info.value.reason
    assert "\n" not in str(info.value)


def test_truncated_jpeg_is_an_error(awkward, tmp_path):
    data = awkward["good.jpg"].read_bytes()
    (tmp_path / "t.jpg").write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(ImageDecodeError):
        load_image(tmp_path / "t.jpg")


def test_missing_file(tmp_path):
    with pytest.raises(ImageDecodeError, match="file not found"):
        load_image(tmp_path / "nope.png")


def test_non_ascii_name(awkward):
    np.testing.assert_array_equal(
        load_image(awkward["ünïcødé 写真.jpg"]), load_image(awkward["good.jpg"])
    )


def test_float_and_32bit_images_are_rejected_or_fit(tmp_path):
    values = np.linspace(-2, 3, 16, dtype=np.float32).reshape(4, 4)
    Image.fromarray(values).save(tmp_path / "f.tif")  # float32 is kept exactly now
    np.testing.assert_array_equal(load_image(tmp_path / "f.tif")[:, :, 0], values)
    np.testing.assert_array_equal(load_image(Image.fromarray(values))[:, :, 0], values)
    with pytest.raises(ImageDecodeError, match="NaN"):
        load_image(Image.fromarray(np.full((2, 2), np.nan, np.float32)))
    small = Image.fromarray(np.full((4, 4), 70000 // 2, np.int32))
    assert load_image(small).dtype == np.uint16
    with pytest.raises(ImageDecodeError, match=r"0\.\.65535"):
        load_image(Image.fromarray(np.full((4, 4), 70000, np.int32)))


def test_arrays_and_pil_images(rng):
    a = rng.integers(0, 256, (9, 11, 3), dtype=np.uint8)
    np.testing.assert_array_equal(load_image(a), a)
    np.testing.assert_array_equal(load_image(Image.fromarray(a)), a)
    gray = rng.integers(0, 65536, (9, 11), dtype=np.uint16)
    np.testing.assert_array_equal(load_image(gray), gray[:, :, None])
    np.testing.assert_array_equal(load_image(gray.astype(">u2")), gray[:, :, None])
    with pytest.raises(ImageDecodeError, match="dtype"):
        load_image(a.astype(np.float64))
    with pytest.raises(ImageDecodeError, match="dtype"):
        load_image(a.astype(np.int32))
    with pytest.raises(ImageDecodeError, match="channels"):
        load_image(np.zeros((4, 4, 256), np.uint8))
    with pytest.raises(ImageDecodeError, match="NaN"):
        load_image(np.full((2, 2), np.nan, np.float32))
    # int16, float32 and any channel count from 1 to 255 are stored as they are.
    for exact in (a[:, :, :2], a.astype(np.int16) - 100, a.astype(np.float32) / 7):
        np.testing.assert_array_equal(load_image(exact), exact)
    with pytest.raises(ImageDecodeError, match="unsupported image type"):
        load_image(42)


def test_forced_channels(photo_image):
    rgb = np.asarray(photo_image)
    gray = load_image(photo_image, channels=1)
    np.testing.assert_array_equal(gray[:, :, 0], np.asarray(photo_image.convert("L")))
    assert load_image(photo_image, channels=4)[:, :, 3].min() == 255
    np.testing.assert_array_equal(
        load_image(photo_image.convert("L"), channels=3)[:, :, 2], gray[:, :, 0]
    )
    np.testing.assert_array_equal(load_image(photo_image.convert("RGBA"), channels=3), rgb)
    assert load_image_info(photo_image, channels=1).conversion == "RGB->L"
    la = photo_image.convert("LA")
    assert load_image(la, channels=4).shape[2] == 4


def test_target_size():
    assert target_size(375, 500, 256) == (192, 256)
    assert target_size(500, 375, 256) == (256, 192)
    assert target_size(100, 50, 256) == (100, 50)  # never upscales
    assert target_size(100, 50, None) == (100, 50)
    assert target_size(1000, 1, 10) == (10, 1)


def test_max_side_jpeg_uses_dct_reduction_and_stays_close(photos, tmp_path):
    from pixpack import sample_data

    big = sample_data.make_photo(photos, (1600, 1200), np.random.default_rng(2))
    big.save(tmp_path / "big.jpg", quality=95)
    got = load_image(tmp_path / "big.jpg", max_side=200)
    assert got.shape == (150, 200, 3)
    reference = np.asarray(
        Image.open(tmp_path / "big.jpg").resize((200, 150), Image.Resampling.LANCZOS)
    )
    diff = got.astype(float) - reference
    psnr = 10 * np.log10(255**2 / np.mean(diff**2))
    assert psnr > 30, psnr


def test_max_side_on_16bit_keeps_dtype(awkward):
    got = load_image(awkward["rgb16.png"], max_side=40)
    assert got.dtype == np.uint16 and max(got.shape[:2]) == 40
    full = load_image(awkward["rgb16.png"]).astype(float)
    assert abs(got.mean() - full.mean()) / full.mean() < 0.02


def test_max_side_with_exif_rotation(awkward):
    got = load_image(awkward["exif6.jpg"], max_side=64)
    assert got.shape[0] == 64 and got.shape[0] > got.shape[1]
