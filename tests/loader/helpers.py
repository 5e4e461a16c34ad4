"""Real packs for loader tests, written with PackWriter from photo crops."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from pixpack import format as fmt
from pixpack.read.open_any import open_pack
from pixpack.write.writer import PackWriter


def write_pack(
    path: Path,
    images: Sequence[np.ndarray],
    labels: Sequence[int] | None = None,
    *,
    jpeg: bool | Sequence[bool] = False,
    garbage: int | None = None,
):
    """Write and open a pack; ``jpeg`` per sample or for all; sample ``garbage`` holds
    bytes that are not a JPEG at all (a corrupt sample)."""
    labels = list(range(len(images))) if labels is None else labels
    writer = PackWriter(path, {"test": str(path)}).start()
    for i, img in enumerate(images):
        img = img if img.ndim == 3 else img[:, :, None]
        as_jpeg = jpeg if isinstance(jpeg, bool) else bool(jpeg[i])
        if as_jpeg:
            bgr = img[:, :, ::-1] if img.shape[2] == 3 else img
            data = cv2.imencode(".jpg", np.ascontiguousarray(bgr), [cv2.IMWRITE_JPEG_QUALITY, 90])[
                1
            ]
            data = data.tobytes()
        else:
            data = np.ascontiguousarray(img).astype(img.dtype.newbyteorder("<")).tobytes()
        if i == garbage:
            data = b"\xff\xd8 this is not a jpeg" + bytes(200)
        h, w, c = img.shape
        writer.append(
            data,
            source_index=i,
            height=h,
            width=w,
            channels=c,
            dtype_code=fmt.DTYPE_CODES[np.dtype(img.dtype).newbyteorder("<")],
            mode_code=fmt.MODE_JPEG if as_jpeg else fmt.MODE_RAW,
            label=int(labels[i]),
        )
    writer.commit({"classes": [str(c) for c in sorted(set(labels))], "skipped": []})
    return open_pack(path)


def photo_images(photos, n: int, size=(48, 64), seed: int = 0) -> list[np.ndarray]:
    """``n`` realistic crops of the bundled photos at about ``size`` (varying a little)."""
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
