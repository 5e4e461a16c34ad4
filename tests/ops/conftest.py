"""Small real-photo images in every supported dtype / channel count / memory layout.

int16 and float32 images hold CT-like values (Hounsfield units, about -1024..3056;
float32 with fractions), so windows and ranges see realistic data.
"""

from __future__ import annotations

import numpy as np
import pytest


def make_image(photo: np.ndarray, dtype: str, channels: int, layout: str) -> np.ndarray:
    """A 72x96 photo crop; ``layout='view'``: a read-only strided crop view.

    dtype uint8, uint16, int16 or float32; channels 1, 3, 4 (RGB + an alpha ramp) or
    more (RGB, then copies of the channels' sums, inverted, as extra bands).
    """
    crop = photo[100:172, 120:216].astype(np.uint16)
    if dtype == "uint16":
        crop = crop * 257 + (crop >> 1)  # spread over the 16-bit range, not just x257
    if channels > 4:
        extra = [(crop.sum(2, keepdims=True) * (i + 2)) % 256 for i in range(channels - 3)]
        crop = np.concatenate([crop, *extra], 2).astype(np.uint16)
    if dtype == "int16":
        crop = crop.astype(np.int16) * 16 - 1024
    elif dtype == "float32":
        crop = crop.astype(np.float32) * np.float32(15.75) - np.float32(1000.25)
    crop = crop.astype(dtype)
    if channels < 3:
        crop = crop[:, :, :channels]
    elif channels == 4:
        top = 1.0 if dtype == "float32" else np.iinfo(dtype).max
        alpha = np.linspace(0, top, crop.shape[1]).astype(dtype)
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
