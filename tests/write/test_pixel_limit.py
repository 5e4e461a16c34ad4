"""Images over the pixel limit (PIL.Image.MAX_IMAGE_PIXELS) are refused from their header,
before any buffer of their size is allocated, on every decode path."""

from __future__ import annotations

import io
import shutil
import tracemalloc

import numpy as np
import pytest
from PIL import Image

from pixpack.errors import ImageDecodeError
from pixpack.read.open_any import open_pack
from pixpack.write import pack
from pixpack.write.imageio import load_image_info
from pixpack.write.passthrough import store_as_is


def _bomb_jpeg(size: int = 13000, mode: str = "RGB") -> bytes:
    """A 1 kB JPEG whose SOF0 header claims ``size`` x ``size`` pixels."""
    buf = io.BytesIO()
    Image.fromarray(np.full((16, 16, 3), 90, np.uint8)).convert(mode).save(buf, "JPEG")
    data = bytearray(buf.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = size.to_bytes(2, "big") * 2
    return bytes(data)


@pytest.mark.parametrize("mode", ["RGB", "L", "CMYK"])  # fast path, gray, Pillow's path
def test_a_jpeg_header_claiming_13000x13000_allocates_nothing(tmp_path, mode):
    path = tmp_path / "bomb.jpg"
    path.write_bytes(_bomb_jpeg(mode=mode))
    tracemalloc.start()
    try:
        with pytest.raises(ImageDecodeError, match="image too large: 13000x13000 = 169000000"):
            load_image_info(path, max_side=256)
        with pytest.raises(ImageDecodeError, match="image too large"):
            store_as_is(path.read_bytes(), str(path), quality=90, max_side=None, channels=None)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 << 20  # the old path allocated the 507 MB decode buffer first


def test_a_bomb_in_a_folder_is_skipped_with_the_reason(tmp_path, photo_folder):
    root = tmp_path / "src"
    shutil.copytree(photo_folder, root)
    (root / "class_00" / "bomb.jpg").write_bytes(_bomb_jpeg())
    for mode in ("raw", "jpeg"):  # jpeg: the keep-as-source path reads the header first
        out = tmp_path / f"{mode}.pixpack"
        with pytest.warns(UserWarning, match="skipped 1 unreadable"):
            summary = pack(root, out, workers=1, quiet=True, mode=mode)
        assert summary.num_samples == 24
        assert "image too large" in open_pack(out).metadata["skipped"][0]["reason"]


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_the_limit_is_pillows_and_can_be_raised(tmp_path, monkeypatch):
    path = tmp_path / "photo.png"
    Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(ImageDecodeError, match="40x30 = 1200 pixels, over the limit of 1000"):
        load_image_info(path)
    with pytest.raises(ImageDecodeError, match="over the limit"):
        load_image_info(Image.open(path))  # a caller's lazily opened image
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    assert load_image_info(path).array.shape == (30, 40, 3)
