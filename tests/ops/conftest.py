"""Small real-photo images in every supported dtype / channel count / memory layout."""

from __future__ import annotations

import numpy as np
import pytest


def make_image(photo: np.ndarray, dtype: str, channels: int, layout: str) -> np.ndarray:
    """A 72x96 photo crop; ``layout='view'``: a read-only strided crop view."""
    crop = photo[100:172, 120:216].astype(np.uint16)
    if dtype == "uint16":
        crop = crop * 257 + (crop >> 1)  # spread over the 16-bit range, not just x257
    crop = crop.astype(dtype)
    if channels == 1:
        crop = crop[:, :, :1]
    elif channels == 4:
        alpha = np.linspace(0, np.iinfo(dtype).max, crop.shape[1]).astype(dtype)
        crop = np.concatenate(
            [crop, np.broadcast_to(alpha[None, :, None], (*crop.shape[:2], 1))], 2
        )
    crop = np.ascontiguousarray(crop)
    if layout == "view":
        big = np.zeros((crop.shape[0] + 10, crop.shape[1] + 20, channels), dtype)
        big[5:-5, 7:-13] = crop
        crop = big[5:-5, 7:-13]
        crop.flags.writeable = False  # like a view of a read-only memory map
        assert not crop.flags.c_contiguous
    return crop


@pytest.fixture(scope="session")
def image_of(photo: np.ndarray):
    """``image_of(dtype, channels, layout)`` -> a test image (see :func:`make_image`)."""
    return lambda dtype, channels, layout: make_image(photo, dtype, channels, layout)


@pytest.fixture(scope="session")
def photo(photos: list[np.ndarray]) -> np.ndarray:
    return photos[1]
