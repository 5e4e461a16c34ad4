"""Packs for the diagnose tests: the shared photo folder, and source-size photos.

The "big" folder holds a few 1600x1200 photo mosaics (camera-like sizes), packed
twice: as JPEG (decode-heavy) and raw (the same pixels, nothing to decode).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pixpack import sample_data
from pixpack.write.packer import pack


@pytest.fixture(scope="session")
def small_pack(photo_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 JPEG samples of about 500x375 (the shared photo folder)."""
    out = tmp_path_factory.mktemp("diag_small") / "small.pixpack"
    pack(photo_folder, out, mode="jpeg", workers=1, quiet=True)
    return out


@pytest.fixture(scope="session")
def big_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("diag_big_src")
    return sample_data.make_image_folder(
        root, num_classes=2, per_class=5, size=(1600, 1200), seed=3
    )


@pytest.fixture(scope="session")
def big_jpeg_pack(big_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("diag_big_jpeg") / "big_jpeg.pixpack"
    pack(big_folder, out, mode="jpeg", workers=1, quiet=True)
    return out


@pytest.fixture(scope="session")
def big_raw_pack(big_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("diag_big_raw") / "big_raw.pixpack"
    pack(big_folder, out, mode="raw", workers=1, quiet=True)
    return out
