"""Packs shared by the framework adapters' tests (torch, NumPy, tf.data, JAX)."""

from __future__ import annotations

from pathlib import Path

import pytest

import pixpack


@pytest.fixture(scope="session")
def jpeg_photo_pack(photo_folder, tmp_path_factory) -> Path:
    """24 real photo crops (3 classes), JPEG-packed with the shorter side 64."""
    out = tmp_path_factory.mktemp("frameworks") / "photos.pixpack"
    pixpack.pack(photo_folder, out, mode="jpeg", max_side=64, quiet=True)
    return out
