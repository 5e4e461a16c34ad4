"""pixpack: packing time/size, and throughput through ``pixpack.Loader`` or ``PackDataset``.

``via="loader"``: ``pixpack.Loader(pack, 64, pipeline=[RandomResizedCrop(224),
RandomHorizontalFlip(), Normalize(mean, std)], workers=cores)`` (threads, float32 NCHW).
``via="dataset"``: ``PackDataset`` as a drop-in for ImageFolder under the same torch
DataLoader and torchvision v1 transforms as the baseline.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from .common import BATCH, CROP, MEAN, STD, Unavailable, dir_size, fresh_path, time_loader

__all__ = ["convert", "load"]


def _pack_fn() -> Any:
    try:
        from pixpack.write.packer import pack
    except ImportError as exc:
        raise Unavailable(f"pixpack.write.packer.pack not available yet ({exc})") from exc
    return pack


def convert(cfg: dict[str, Any]) -> dict[str, Any]:
    """``pack(folder, out, mode, max_side, quality, workers[, reencode])``: time and bytes."""
    pack = _pack_fn()
    out = fresh_path(cfg["out"])
    t0 = time.perf_counter()
    summary = pack(
        cfg["data"],
        out,
        mode=cfg["mode"],
        max_side=cfg.get("max_side"),
        quality=cfg.get("quality", 90),
        workers=cfg["workers"],
        quiet=True,
        **({"reencode": cfg["reencode"]} if "reencode" in cfg else {}),
    )
    seconds = time.perf_counter() - t0
    count = getattr(summary, "num_samples", None) or getattr(summary, "count", None)
    return {"seconds": seconds, "bytes": dir_size(out), "images": count}


def _ensure_pack(cfg: dict[str, Any]) -> str:
    if not Path(cfg["artifact"]).exists():
        convert({**cfg, "out": cfg["artifact"]})
    return cfg["artifact"]


def load(cfg: dict[str, Any]) -> dict[str, Any]:
    _pack_fn()
    if cfg.get("via", "loader") == "dataset":
        try:
            from pixpack.dataset import PackDataset
        except ImportError as exc:
            raise Unavailable(f"pixpack.dataset.PackDataset not available yet ({exc})") from exc
        from .torchvision_baseline import import_torch_stack, make_dataloader, make_transform

        import_torch_stack()
        path = _ensure_pack(cfg)

        def make_dataset_loader() -> Any:
            dataset = PackDataset(path, transform=make_transform("v1"))
            return make_dataloader(dataset, cfg["workers"])

        return time_loader(
            make_dataset_loader, passes=cfg["passes"], max_batches=cfg.get("max_batches")
        )

    try:
        from pixpack.loader import Loader
        from pixpack.ops import Normalize, RandomHorizontalFlip, RandomResizedCrop
    except ImportError as exc:
        raise Unavailable(f"pixpack.Loader / pixpack.ops not available yet ({exc})") from exc
    path = _ensure_pack(cfg)

    def make_loader() -> Any:
        pipeline = [RandomResizedCrop(CROP), RandomHorizontalFlip(), Normalize(MEAN, STD)]
        return Loader(path, BATCH, pipeline=pipeline, workers=cfg["workers"], shuffle=True, seed=0)

    return time_loader(make_loader, passes=cfg["passes"], max_batches=cfg.get("max_batches"))
