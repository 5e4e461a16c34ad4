"""Fixtures for the write side: small image trees with every kind of awkward input."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from pixpack import sample_data


def jpeg_bytes(image: Image.Image, **kwargs) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "JPEG", **kwargs)
    return buf.getvalue()


def png_bytes(image: Image.Image, **kwargs) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG", **kwargs)
    return buf.getvalue()


@pytest.fixture(scope="session")
def photo_image(photos: list[np.ndarray]) -> Image.Image:
    """One real photo crop, 160x120 RGB."""
    return sample_data.make_photo(photos, (160, 120), np.random.default_rng(7))


@pytest.fixture(scope="session")
def awkward(tmp_path_factory: pytest.TempPathFactory, photo_image: Image.Image) -> dict[str, Path]:
    """name -> file: every awkward or broken input the packer must handle."""
    root = tmp_path_factory.mktemp("awkward")
    rgb = np.asarray(photo_image)
    files: dict[str, Path] = {}

    def put(name: str, data: bytes) -> None:
        files[name] = root / name
        files[name].write_bytes(data)

    good = jpeg_bytes(photo_image, quality=90)
    put("good.jpg", good)
    corrupt = bytearray(good)
    mid = len(corrupt) // 2
    corrupt[mid : mid + 200] = np.random.default_rng(3).integers(0, 256, 200, np.uint8).tobytes()
    put("corrupt.jpg", bytes(corrupt))
    full_png = png_bytes(photo_image)
    put("truncated.png", full_png[: len(full_png) // 2])
    put("empty.jpg", b"")
    put("text.jpg", b"this is not an image, just some text\n" * 10)
    put("cmyk.jpg", jpeg_bytes(photo_image.convert("CMYK"), quality=95))
    put("gray.jpg", jpeg_bytes(photo_image.convert("L"), quality=95))
    put("gray.png", png_bytes(photo_image.convert("L")))
    put("rgba.png", png_bytes(photo_image.convert("RGBA")))
    gray16 = rgb[:, :, 1].astype(np.uint16) * 257 + np.arange(rgb.shape[1], dtype=np.uint16)
    put("gray16.png", cv2.imencode(".png", gray16)[1].tobytes())
    rgb16 = rgb.astype(np.uint16) * 257 + 3
    put("rgb16.png", cv2.imencode(".png", np.ascontiguousarray(rgb16[:, :, ::-1]))[1].tobytes())
    rgba16 = np.concatenate([rgb16, np.full((*rgb.shape[:2], 1), 40000, np.uint16)], axis=2)
    put(
        "rgba16.png",
        cv2.imencode(".png", np.ascontiguousarray(rgba16[:, :, [2, 1, 0, 3]]))[1].tobytes(),
    )
    palette = photo_image.quantize(16)
    palette.info["transparency"] = 0
    put("palette_t.png", png_bytes(palette, transparency=0))
    put("palette.png", png_bytes(photo_image.quantize(16)))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    put("exif6.jpg", jpeg_bytes(photo_image, quality=95, exif=exif))
    put("ünïcødé 写真.jpg", good)
    put("bilevel.png", png_bytes(photo_image.convert("1")))
    put("la.png", png_bytes(photo_image.convert("LA")))
    return files


@pytest.fixture(scope="session")
def mixed_folder(tmp_path_factory: pytest.TempPathFactory, awkward: dict[str, Path]) -> Path:
    """An ImageFolder tree holding every awkward file (good and bad) in two classes."""
    root = tmp_path_factory.mktemp("mixed")
    for i, (name, path) in enumerate(sorted(awkward.items())):
        cls = root / ("a" if i % 2 else "b")
        cls.mkdir(exist_ok=True)
        shutil.copy(path, cls / name)
    return root
