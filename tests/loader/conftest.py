from __future__ import annotations

import numpy as np
import pytest

from .helpers import photo_images, write_pack


@pytest.fixture(scope="session")
def small_images(photos) -> list[np.ndarray]:
    return photo_images(photos, 50)


@pytest.fixture(scope="session")
def raw_pack(small_images, tmp_path_factory):
    """50 raw photo crops of about 48x64, labels i % 5."""
    path = tmp_path_factory.mktemp("loader") / "raw.pixpack"
    return write_pack(path, small_images, [i % 5 for i in range(50)])


@pytest.fixture(scope="session")
def jpeg_pack(small_images, tmp_path_factory):
    path = tmp_path_factory.mktemp("loader") / "jpeg.pixpack"
    return write_pack(path, small_images, [i % 5 for i in range(50)], jpeg=True)
