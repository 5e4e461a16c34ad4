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

__all__ = ["convert", "load"]


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


def load(cfg: dict[str, Any]) -> dict[str, Any]:
    _import()
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

    if not Path(cfg["artifact"]).exists():
        convert({**cfg, "out": cfg["artifact"]})
    mean = np.array(MEAN) * 255
    std = np.array(STD) * 255

    def make() -> Any:
        return Loader(
            cfg["artifact"],
            batch_size=BATCH,
            num_workers=cfg["workers"],
            order=OrderOption.RANDOM,
            os_cache=True,
            drop_last=False,
            seed=0,
            pipelines={
                "image": [
                    RandomResizedCropRGBImageDecoder((CROP, CROP)),
                    RandomHorizontalFlip(),
                    NormalizeImage(mean, std, np.float32),
                    ToTensor(),
                    ToTorchImage(),
                ],
                "label": [IntDecoder(), ToTensor(), Squeeze()],
            },
        )

    return time_loader(make, passes=cfg["passes"], max_batches=cfg.get("max_batches"))
