"""The lossless storage mode (issue 16 item 4): bit-exact for every pixel type and
channel count, bounded by the index's shape, and refused per sample where unknown."""

from __future__ import annotations

import numpy as np
import pytest

import pixpack
from pixpack import format as fmt
from pixpack.errors import CorruptPackError, UnsupportedModeError
from pixpack.read import lossless
from pixpack.write.encode import encode_sample
from pixpack.write.lossless import encode_lossless

DTYPES = ["uint8", "<u2", "<i2", "<f4"]


def _image(dtype: str, shape: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if dtype == "uint8":
        return rng.integers(0, 256, shape, dtype=np.uint8)
    if dtype == "<f4":
        return rng.normal(0.0, 1e3, shape).astype(np.float32)
    info = np.iinfo(np.dtype(dtype))
    return rng.integers(info.min, info.max + 1, shape, dtype=np.int64).astype(dtype)


@pytest.fixture(params=["native", "python"])
def decoder(request, monkeypatch):
    """Both decoders: the native one, and the lz4-package + numpy fallback."""
    if request.param == "python":
        monkeypatch.setattr(lossless, "_decode_rows", None)
    elif lossless._decode_rows is None:
        pytest.skip("the native extension is not built")
    return request.param


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("channels", [1, 3, 7])
def test_round_trip_is_bit_exact(dtype, channels, decoder):
    for shape in [(1, 1, channels), (37, 23, channels), (300, 120, channels)]:
        image = _image(dtype, shape)
        image[: shape[0] // 2] = image[0, 0]  # flat regions: long LZ4 matches
        stored = encode_sample(image, mode="lossless")
        assert stored.mode_code == fmt.MODE_LOSSLESS
        got = lossless.decode_lossless(stored.data, shape, np.dtype(dtype))
        assert got.dtype == image.dtype and got.tobytes() == image.tobytes()


def test_float_extremes_are_kept(decoder):
    values = np.array([np.nan, np.inf, -np.inf, -0.0, 1e-45, 3.4e38], np.float32)
    image = np.resize(values, (4, 3, 2)).astype(np.float32)
    got = lossless.decode_lossless(encode_lossless(image), image.shape, image.dtype)
    assert got.tobytes() == image.tobytes()


def test_rows_decode_only_the_bands_asked(decoder):
    image = _image("<u2", (700, 64, 1))  # 512 rows per 64 KiB band: two bands
    data = encode_lossless(image)
    rows, first = lossless.decode_lossless_rows(data, image.shape, image.dtype, 600, 650)
    assert first == 512 and np.array_equal(rows, image[512:])
    rows, first = lossless.decode_lossless_rows(data, image.shape, image.dtype, 10, 20)
    assert first == 0 and np.array_equal(rows, image[:512])


def test_compresses_smooth_12_bit_images(photos):
    ct = np.ascontiguousarray(photos[0][:, :, :1].astype(np.int16) * 16 - 1024)
    assert ct.nbytes / len(encode_lossless(ct)) > 1.5


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: d[:5],  # shorter than its header
        lambda d: d[:-1],  # a band's last byte gone
        lambda d: d + b"\0",  # a byte the band table does not account for
        lambda d: d[:4] + b"\0\0\0\0" + d[8:],  # band height 0
        lambda d: d[:4] + (1).to_bytes(4, "little") + d[8:],  # another band height
        lambda d: d[:12] + b"\xff" * (len(d) - 12),  # garbage LZ4 blocks
    ],
)
def test_damaged_samples_fail_cleanly(damage, decoder):
    image = _image("<u2", (100, 50, 3))
    data = damage(encode_lossless(image))
    with pytest.raises(ValueError):
        lossless.decode_lossless(data, image.shape, image.dtype)


def test_random_damage_never_decodes_to_another_shape(decoder):
    rng = np.random.default_rng(1)
    image = _image("<i2", (60, 40, 3))
    clean = encode_lossless(image)
    for _ in range(400):
        data = bytearray(clean)
        for _ in range(int(rng.integers(1, 4))):
            data[int(rng.integers(4, len(data)))] = int(rng.integers(0, 256))
        try:
            got = lossless.decode_lossless(bytes(data), image.shape, image.dtype)
        except ValueError:
            continue
        assert got.shape == image.shape  # a flipped literal: wrong pixels, caught by CRC


def test_unknown_codec_or_filter_is_unsupported():
    data = encode_lossless(_image("uint8", (4, 4, 1)))
    for at in (0, 1, 2):
        crafted = data[:at] + b"\x09" + data[at + 1 :]
        with pytest.raises(UnsupportedModeError, match="upgrade pixpack"):
            lossless.decode_lossless(crafted, (4, 4, 1), np.dtype(np.uint8))


def _write_at(path, offset, data):
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


@pytest.fixture
def lossless_pack(tmp_path, photos):
    images = [_image("<u2", (40, 30, 1), seed=k) for k in range(3)]
    images.append(np.ascontiguousarray(photos[0][:32, :48]))
    path = tmp_path / "l.pixpack"
    pixpack.pack([(img, 0) for img in images], path, mode="lossless", quiet=True, workers=1)
    return path, images


def test_pack_read_image_and_verify(lossless_pack):
    path, images = lossless_pack
    with pixpack.open(path) as pack:
        assert [pack.sample_mode(i) for i in range(len(pack))] == ["lossless"] * 4
        assert pack.metadata["options"]["mode"] == "lossless"
        for i, image in enumerate(images):
            assert np.array_equal(pack[i][0], image)
            assert np.array_equal(pack.read_image(i), image)
    report = pixpack.verify(path)
    assert report.ok, report.problems()


def test_damaged_sample_is_a_corrupt_pack_error_for_that_sample(lossless_pack):
    path, _ = lossless_pack
    with pixpack.open(path) as pack:
        offset = int(pack.index["offset"][1])
    _write_at(path, offset + fmt.LOSSLESS_HEADER_SIZE, b"\xff\xff\xff\x7f")  # the band table
    with pixpack.open(path) as pack:
        with pytest.raises(CorruptPackError, match="sample 1 is not a decodable lossless"):
            pack[1]
        pack[0], pack[2]
    assert 1 in pixpack.verify(path).bad_samples


def test_mode_code_unknown_to_a_reader_is_refused_per_sample(lossless_pack, monkeypatch):
    """What a reader from before the lossless mode does: refuse those samples only."""
    import pixpack.read.pack as pack_module

    monkeypatch.setattr(pack_module.fmt, "MODE_LOSSLESS", 250)  # as if the code were unknown
    path, _ = lossless_pack
    with pixpack.open(path) as pack:
        with pytest.raises(UnsupportedModeError, match="storage mode 2, unknown"):
            pack[0]


def test_cli_pack_mode_lossless(tmp_path, photo_folder):
    from pixpack.cli.main import main

    out = tmp_path / "cli.pixpack"
    assert main(["pack", str(photo_folder), str(out), "--mode", "lossless", "--quiet"]) == 0
    with pixpack.open(out) as pack:
        assert set(pack.index["mode"].tolist()) == {fmt.MODE_LOSSLESS}
        assert pack[0][0].dtype == np.uint8
