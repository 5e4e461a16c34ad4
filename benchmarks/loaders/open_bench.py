"""Opening a pack of N samples: pixpack.open against FFCV's Reader (issue 2: 1,000,000
samples in under 50 ms, independent of N).

Each configuration builds its file once (tiny 1x1x3 uint8 samples, labels i % 10, so
the file is mostly index), then, in this process: one open of a 10-sample file to load
the imports and lazy caches, and ``repeats`` timed opens of the N-sample file. An
"open" is what a training script does before its first batch: open the file, ask its
length, read the last label. The page cache is warm (the file was just written or
read), as it is for any pack reopened on the machine that built it.

- pixpack: ``PackWriter`` (the real writer, one ``append`` per sample), then
  ``pixpack.open(path)``; ``len``; ``targets[-1]``.
- FFCV 1.0.2: ``DatasetWriter`` with ``NDArrayField(uint8, (1, 1, 3))`` and
  ``IntField`` (an image-like field, so the file has its per-sample allocation table
  like an image .beton), then ``Reader(path)``; ``num_samples``; the last label from
  ``metadata``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from statistics import median
from typing import Any

import numpy as np

from .common import Unavailable

__all__ = ["ffcv_open", "pixpack_open"]

_WARM_SAMPLES = 10


def _timed(open_once: Callable[[], int], repeats: int) -> dict[str, Any]:
    times = []
    last = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        last = open_once()
        times.append((time.perf_counter() - t0) * 1e3)
    return {
        "open_ms": median(times),
        "open_ms_min": min(times),
        "open_ms_max": max(times),
        "open_ms_all": times,
        "last_label": last,
    }


# -- pixpack -----------------------------------------------------------------------------
def _pixpack_file(path: Path, n: int) -> Path:
    from pixpack import format as fmt
    from pixpack.write.writer import PackWriter

    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    pixel = bytes(3)
    writer = PackWriter(path, {"open-bench": n}).start()
    for i in range(n):
        writer.append(
            pixel, source_index=i, height=1, width=1, channels=3,
            dtype_code=0, mode_code=fmt.MODE_RAW, label=i % 10,
        )  # fmt: skip
    writer.commit({"classes": [f"c{k}" for k in range(10)]})
    return path


def pixpack_open(cfg: dict[str, Any]) -> dict[str, Any]:
    import pixpack

    n = int(cfg["samples"])
    t0 = time.perf_counter()
    path = _pixpack_file(Path(cfg["artifact"]), n)
    build_s = time.perf_counter() - t0
    warm = _pixpack_file(Path(cfg["artifact"]).with_name("open-warm.pixpack"), _WARM_SAMPLES)
    pixpack.open(warm).close()

    def open_once() -> int:
        pack = pixpack.open(path)
        try:
            assert len(pack) == n
            return int(pack.targets[-1])
        finally:
            pack.close()

    return {
        **_timed(open_once, int(cfg.get("repeats", 20))),
        "samples": n,
        "bytes": path.stat().st_size,
        "build_s": build_s,
    }


# -- FFCV --------------------------------------------------------------------------------
class _Tiny:
    def __init__(self, n: int) -> None:
        self.n = n
        self.pixel = np.zeros((1, 1, 3), np.uint8)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        return self.pixel, i % 10


def _ffcv_file(path: Path, n: int, workers: int) -> Path:
    from ffcv.fields import IntField, NDArrayField
    from ffcv.writer import DatasetWriter

    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    fields = {"image": NDArrayField(np.dtype("uint8"), (1, 1, 3)), "label": IntField()}
    DatasetWriter(str(path), fields, num_workers=workers).from_indexed_dataset(_Tiny(n))
    return path


def ffcv_open(cfg: dict[str, Any]) -> dict[str, Any]:
    try:
        from ffcv.reader import Reader
    except ImportError as exc:
        raise Unavailable(f"ffcv does not import here: {exc}") from exc
    n = int(cfg["samples"])
    t0 = time.perf_counter()
    path = _ffcv_file(Path(cfg["artifact"]), n, int(cfg.get("workers", 1)))
    build_s = time.perf_counter() - t0
    warm = _ffcv_file(Path(cfg["artifact"]).with_name("open-warm.beton"), _WARM_SAMPLES, 1)
    Reader(str(warm))

    def open_once() -> int:
        reader = Reader(str(path))
        assert reader.num_samples == n
        return int(reader.metadata["f1"][-1])

    return {
        **_timed(open_once, int(cfg.get("repeats", 20))),
        "samples": n,
        "bytes": path.stat().st_size,
        "build_s": build_s,
    }
