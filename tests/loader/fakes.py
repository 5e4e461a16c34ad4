"""Small test doubles: an in-memory pack and two ops that follow ops/base.py."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from pixpack import format as fmt
from pixpack.ops.base import Region


class FakePack:
    """The Pack contract the loader uses: len, index, sample_bytes, path."""

    def __init__(self, images: Sequence[np.ndarray], labels: Sequence[int], jpeg: Sequence[bool] = ()):
        chunks, entries = [], np.zeros(len(images), dtype=fmt.INDEX_DTYPE)
        offset = 0
        for i, img in enumerate(images):
            img = img if img.ndim == 3 else img[:, :, None]
            as_jpeg = bool(jpeg[i]) if jpeg else False
            data = cv2.imencode(".jpg", img[:, :, ::-1] if img.shape[2] == 3 else img)[1].tobytes() \
                if as_jpeg else np.ascontiguousarray(img).astype(img.dtype.newbyteorder("<")).tobytes()
            e = entries[i]
            e["offset"], e["nbytes"], e["label"] = offset, len(data), labels[i]
            e["height"], e["width"], e["channels"] = img.shape
            e["dtype"] = fmt.DTYPE_CODES[np.dtype(img.dtype).newbyteorder("<")]
            e["mode"] = fmt.MODE_JPEG if as_jpeg else fmt.MODE_RAW
            chunks.append(data)
            offset += len(data)
        self.index = entries
        self._buf = memoryview(b"".join(chunks))
        self.path = Path("fake.pixpack")

    def __len__(self) -> int:
        return len(self.index)

    @property
    def targets(self) -> np.ndarray:
        return self.index["label"]

    def sample_bytes(self, i: int) -> memoryview:
        e = self.index[i]
        return self._buf[int(e["offset"]) : int(e["offset"] + e["nbytes"])]


@dataclass(frozen=True)
class RandomCropResize:
    """A RegionOp: a random box of 50-100% of each side, resized to ``size``."""

    size: int = 32

    def make_params(self, rng: np.random.Generator, shape):
        h, w = shape[:2]
        ch = int(rng.integers(h // 2, h + 1))
        cw = int(rng.integers(w // 2, w + 1))
        return (int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1)), ch, cw)

    def region(self, params, shape) -> Region:
        top, left, h, w = params
        return Region(top, left, h, w, (self.size, self.size))

    def apply_region(self, crop: np.ndarray, params) -> np.ndarray:
        out = cv2.resize(crop, (self.size, self.size), interpolation=cv2.INTER_LINEAR)
        return out if out.ndim == 3 else out[:, :, None]

    def apply(self, image: np.ndarray, params) -> np.ndarray:
        top, left, h, w = params
        return self.apply_region(image[top : top + h, left : left + w], params)

    def output_shape(self, shape):
        return (self.size, self.size, shape[2])


@dataclass(frozen=True)
class RandomFlip:
    p: float = 0.5

    def make_params(self, rng, shape):
        return bool(rng.random() < self.p)

    def apply(self, image, params):
        return image[:, ::-1] if params else image

    def output_shape(self, shape):
        return shape


@dataclass(frozen=True)
class Normalize:
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def make_params(self, rng, shape):
        return None

    def apply(self, image, params):  # not called: the loader fuses it
        raise AssertionError("Normalize must be fused by the loader")

    def output_shape(self, shape):
        return shape


def photo_images(photos, n: int, size=(48, 64), seed: int = 0) -> list[np.ndarray]:
    """``n`` realistic crops of the bundled photos at ~``size`` (varying a little)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        p = photos[i % len(photos)]
        h = size[0] + int(rng.integers(0, 8))
        w = size[1] + int(rng.integers(0, 8))
        y = int(rng.integers(0, p.shape[0] - 200))
        x = int(rng.integers(0, p.shape[1] - 200))
        out.append(np.ascontiguousarray(cv2.resize(p[y : y + 200, x : x + 200], (w, h))))
    return out
