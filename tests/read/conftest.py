"""Fixtures for read-side tests: a small mixed pack built from real photo crops."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from read_helpers import build_pack, crops


@pytest.fixture(scope="session")
def mixed_images(photos) -> list[np.ndarray]:
    """RGB crops, a grayscale crop, an RGBA crop and a 16-bit grayscale crop."""
    base = crops(photos, 9)
    gray = base[6].mean(axis=2, keepdims=True).astype(np.uint8)
    rgba = np.concatenate([base[7], base[7][:, :, :1]], axis=2)
    deep = (base[8][:, :, :1].astype(np.uint16) * 257)
    return [*base[:6], gray, rgba, deep]


@pytest.fixture(scope="session")
def mixed_labels() -> list[int]:
    return [0, 1, 2, 0, 1, 2, 0, 1, 2]


@pytest.fixture(scope="session")
def mixed_modes() -> list[str]:
    return ["raw", "jpeg", "raw", "jpeg", "raw", "jpeg", "jpeg", "raw", "raw"]


@pytest.fixture(scope="session")
def mixed_pack(tmp_path_factory, mixed_images, mixed_labels, mixed_modes) -> Path:
    """9 samples: raw and jpeg RGB, jpeg grayscale, raw RGBA, raw uint16 (read-only)."""
    path = tmp_path_factory.mktemp("mixed") / "mixed.pixpack"
    return build_pack(path, mixed_images, mixed_labels, modes=mixed_modes)
