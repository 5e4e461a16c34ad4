from __future__ import annotations

import numpy as np
import pytest

from .fakes import FakePack, photo_images


@pytest.fixture(scope="session")
def raw_pack(photos) -> FakePack:
    images = photo_images(photos, 50)
    return FakePack(images, [i % 5 for i in range(50)])


@pytest.fixture(scope="session")
def small_images(photos) -> list[np.ndarray]:
    return photo_images(photos, 50)
