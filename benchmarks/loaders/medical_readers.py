"""The readers of ``benchmarks/medical.py``: one system per subprocess (``worker.py``).

Every reader does the same work on the CT-like DICOM slices of ``medical_data.py``
(int16 Hounsfield units, 512x512): a random resized crop to 256x256 (area 0.5-1), a
random horizontal flip and the soft-tissue window (centre 40, width 400, i.e.
``clip((HU + 160) / 400, 0, 1)``), into float32 batches of 32 x 1 x 256 x 256, with 2
workers. Each reports its build time (pixpack: the pack; MONAI: the caching), every
epoch's time, the first batch's statistics and its artifact's size.
"""

from __future__ import annotations

import glob
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any

from .common import Unavailable, describe_batch

CENTER, WIDTH = 40, 400
LO, HI = CENTER - WIDTH / 2, CENTER + WIDTH / 2  # -160, 240 HU
BATCH, CROP, WORKERS = 32, 256, 2


def _files(src: str) -> list[str]:
    return sorted(glob.glob(os.path.join(src, "*", "*.dcm")))


def _tree_bytes(path: str) -> dict[str, int]:
    """Apparent bytes, allocated bytes (st_blocks) and file count of a file or folder."""
    p = Path(path)
    items = [p] if p.is_file() else [f for f in p.rglob("*") if f.is_file()]
    stats = [f.stat() for f in items]
    return {
        "bytes": sum(s.st_size for s in stats),
        "allocated": sum(s.st_blocks * 512 for s in stats),
        "files": len(stats),
    }


def _epochs(batches_of_epoch: Any, epochs: int, t_start: float) -> dict[str, Any]:
    """Iterate ``epochs`` epochs; epoch 0 is timed from ``t_start`` (the loader's creation)."""
    times, counts, first = [], [], None
    for epoch in range(epochs):
        t0 = t_start if epoch == 0 else time.perf_counter()
        n = 0
        for images in batches_of_epoch(epoch):
            if first is None:
                first = describe_batch(images)
            n += len(images)
        times.append(time.perf_counter() - t0)
        counts.append(n)
    return {"epoch_s": times, "epoch_images": counts, "output": first}


# -- pixpack ------------------------------------------------------------------------------
def pixpack(cfg: dict[str, Any]) -> dict[str, Any]:
    """``cfg``: src, artifact, mode, build (pack it first, timed), epochs."""
    import torch  # noqa: F401  (imported before any timing, as in the MONAI reader)

    import pixpack as px
    from pixpack import ops

    out: dict[str, Any] = {}
    if cfg.get("build", True):
        Path(cfg["artifact"]).unlink(missing_ok=True)
        t0 = time.perf_counter()
        try:
            px.pack(cfg["src"], cfg["artifact"], mode=cfg["mode"], quiet=True)
        except Exception as exc:
            if cfg["mode"] != "raw" and cfg["mode"] in str(exc):
                raise Unavailable(f"pixpack.pack(mode={cfg['mode']!r}): {exc}") from exc
            raise
        out["build_s"] = time.perf_counter() - t0
    pack = px.open(cfg["artifact"])
    t_start = time.perf_counter()
    loader = px.Loader(
        pack,
        BATCH,
        workers=WORKERS,
        seed=0,
        dtype="float32",
        pipeline=[
            ops.RandomResizedCrop(CROP, scale=(0.5, 1.0)),
            ops.RandomHorizontalFlip(),
            ops.WindowLevel(CENTER, WIDTH),
        ],
    )

    def batches(epoch: int) -> Any:
        loader.set_epoch(epoch)
        for images, _labels in loader:
            yield images

    out.update(_epochs(batches, cfg["epochs"], t_start))
    out["samples"] = len(pack)
    out["stored_dtype"] = str(pack[0][0].dtype)
    out["artifact"] = _tree_bytes(cfg["artifact"])
    return out


# -- MONAI ----------------------------------------------------------------------------------
def _monai_transforms(cache_dtype: str) -> list[Any]:
    """The deterministic part (cached by MONAI) then the random part (run every epoch)."""
    import numpy as np
    from monai.data import PydicomReader
    from monai.transforms import (
        CastToTyped,
        EnsureChannelFirstd,
        LoadImaged,
        RandFlipd,
        RandScaleCropd,
        Resized,
        ScaleIntensityRanged,
    )

    # PydicomReader applies RescaleSlope/Intercept (HU, as float32); swap_ij=False keeps
    # rows as the first spatial axis, so spatial_axis=1 is a horizontal flip.
    load = [
        LoadImaged("image", reader=PydicomReader(swap_ij=False), image_only=True),
        EnsureChannelFirstd("image"),
    ]
    window = ScaleIntensityRanged("image", a_min=LO, a_max=HI, b_min=0.0, b_max=1.0, clip=True)
    crop = [
        # each side uniformly in [sqrt(0.5), 1] x 512 -> area 0.5-1, aspect 0.71-1.41
        RandScaleCropd("image", roi_scale=math.sqrt(0.5), max_roi_scale=1.0, random_size=True),
        Resized("image", spatial_size=(CROP, CROP), mode="bilinear", anti_aliasing=False),
        RandFlipd("image", prob=0.5, spatial_axis=1),
    ]
    if cache_dtype == "float32":  # the usual MONAI recipe: window, then cache
        return [*load, window, *crop]
    # HU cached as int16 (half the bytes), windowed after the crop
    return [*load, CastToTyped("image", dtype=np.int16), *crop, window]


def monai(cfg: dict[str, Any]) -> dict[str, Any]:
    """``cfg``: src, kind ("persistent" | "cache"), cache_dir, cache_dtype, build, epochs."""
    try:
        import monai as _monai  # noqa: F401
        import torch
        from monai.data import CacheDataset, DataLoader, PersistentDataset
        from monai.transforms import Compose
    except ImportError as exc:
        raise Unavailable(f"pip install --no-deps monai: {exc}") from exc
    import warnings

    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)  # two DataLoader workers on two cores
    data = [{"image": f} for f in _files(cfg["src"])]
    transform = Compose(_monai_transforms(cfg.get("cache_dtype", "float32")))
    out: dict[str, Any] = {}
    t_build = time.perf_counter()
    if cfg["kind"] == "persistent":
        if cfg.get("build", True):
            shutil.rmtree(cfg["cache_dir"], ignore_errors=True)
        ds = PersistentDataset(data, transform, cache_dir=cfg["cache_dir"])
    else:
        ds = CacheDataset(data, transform, num_workers=WORKERS, progress=False)
        out["build_s"] = time.perf_counter() - t_build  # caching happens here
        out["cache_tensor_bytes"] = sum(
            int(item["image"].numel() * item["image"].element_size()) for item in ds._cache
        )
    t_start = time.perf_counter()
    loader = DataLoader(
        ds, batch_size=BATCH, shuffle=True, num_workers=WORKERS, persistent_workers=True
    )

    def batches(epoch: int) -> Any:
        for batch in loader:
            yield (
                batch["image"].as_tensor()
                if hasattr(batch["image"], "as_tensor")
                else batch["image"]
            )

    out.update(_epochs(batches, cfg["epochs"], t_start))
    out["samples"] = len(data)
    if cfg["kind"] == "persistent":
        out["artifact"] = _tree_bytes(cfg["cache_dir"])
        sizes = sorted(f.stat().st_size for f in Path(cfg["cache_dir"]).glob("*.pt"))
        out["cache_file_bytes_min_max"] = [sizes[0], sizes[-1]] if sizes else None
    return out
