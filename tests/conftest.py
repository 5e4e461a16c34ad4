"""Shared fixtures: small but realistic datasets made from real photographs."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from pixpack import sample_data

# TensorFlow 2.21 loaded before triton (which torchvision pulls in through torch._dynamo)
# makes triton's import segfault (`python -c "import tensorflow; import triton"`); the
# suite imports both in one process, so triton loads first (docs/tensorflow.md).
if importlib.util.find_spec("triton") is not None:
    import triton  # noqa: F401


@pytest.fixture(scope="session")
def photos() -> list[np.ndarray]:
    """The bundled real photographs (RGB uint8)."""
    return sample_data.load_photos()


@pytest.fixture(scope="session")
def photo_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An ImageFolder tree: 3 classes x 8 JPEG photo crops of about 500x375 (read-only)."""
    root = tmp_path_factory.mktemp("photo_folder")
    return sample_data.make_image_folder(root, num_classes=3, per_class=8, seed=1)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
