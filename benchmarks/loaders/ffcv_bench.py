"""FFCV 1.0.2: DatasetWriter conversion and Loader throughput (runs in benchmarks/envs/ffcv).

The CPU pipeline is FFCV's own recommended one: decode + random-resized-crop in one
step, flip, then ``NormalizeImage`` on the NHWC uint8 batch (its CPU kernel works on
numpy arrays, so it comes before ``ToTensor``), then ``ToTorchImage`` gives an NCHW
view (channels-last memory) of float32. The first pass includes Numba compilation
and is reported separately as ``warmup_s``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from .common import BATCH, CROP, MEAN, STD, Unavailable, dir_size, fresh_path, time_loader

__all__ = ["convert", "load", "make_loader"]


def _import() -> Any:
    try:
        import ffcv
    except ImportError as exc:
        raise Unavailable(f"ffcv does not import here: {exc}") from exc
    return ffcv


def convert(cfg: dict[str, Any]) -> dict[str, Any]:
    """ImageFolder -> .beton with ``RGBImageField(write_mode, max_resolution, jpeg_quality)``."""
    _import()
    from ffcv.fields import IntField, RGBImageField
    from ffcv.writer import DatasetWriter
    from torchvision.datasets import ImageFolder

    out = fresh_path(cfg["out"])
    dataset = ImageFolder(cfg["data"])
    t0 = time.perf_counter()
    writer = DatasetWriter(
        str(out),
        {
            "image": RGBImageField(
                write_mode=cfg["write_mode"],
                max_resolution=cfg.get("max_side"),
                jpeg_quality=cfg.get("quality", 90),
            ),
            "label": IntField(),
        },
        num_workers=cfg["workers"],
    )
    writer.from_indexed_dataset(dataset)
    return {"seconds": time.perf_counter() - t0, "bytes": dir_size(out), "images": len(dataset)}


def make_loader(
    path: str, workers: int, *, os_cache: bool = True, quasi_random: bool = False
) -> Any:
    """FFCV's recommended CPU pipeline over ``path`` (shared with the out-of-core group)."""
    from ffcv.fields.basics import IntDecoder
    from ffcv.fields.rgb_image import RandomResizedCropRGBImageDecoder
    from ffcv.loader import Loader, OrderOption
    from ffcv.transforms import (
        NormalizeImage,
        RandomHorizontalFlip,
        Squeeze,
        ToTensor,
        ToTorchImage,
    )

    return Loader(
        path,
        batch_size=BATCH,
        num_workers=workers,
        order=OrderOption.QUASI_RANDOM if quasi_random else OrderOption.RANDOM,
        os_cache=os_cache,
        drop_last=False,
        seed=0,
        pipelines={
            "image": [
                RandomResizedCropRGBImageDecoder((CROP, CROP)),
                RandomHorizontalFlip(),
                NormalizeImage(np.array(MEAN) * 255, np.array(STD) * 255, np.float32),
                ToTensor(),
                ToTorchImage(),
            ],
            "label": [IntDecoder(), ToTensor(), Squeeze()],
        },
    )


def load(cfg: dict[str, Any]) -> dict[str, Any]:
    _import()
    if not Path(cfg["artifact"]).exists():
        convert({**cfg, "out": cfg["artifact"]})
    return time_loader(
        lambda: make_loader(cfg["artifact"], cfg["workers"]),
        passes=cfg["passes"],
        max_batches=cfg.get("max_batches"),
    )
