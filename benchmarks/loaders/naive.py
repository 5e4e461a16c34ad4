""" "What people are told to do": the hand-rolled datasets of forum answers and blog posts.

- preload: decode every image into a Python list up front, then DataLoader workers
  (the pattern behind pytorch/pytorch#13246: each forked worker touches the parent's
  objects, so per-process RSS grows; PSS shows how much is really shared).
- mmap: memory-map each image file and decode from the map.
- sqlite: JPEG files as BLOBs in one SQLite table (builder + dataset).
- memmap: one np.memmap array of images resized to 256x256 (builder + dataset).

Each dataset feeds the same augmentation as the torchvision baseline.
"""

from __future__ import annotations

import mmap
import sqlite3
import time
from pathlib import Path
from typing import Any

import numpy as np

from .common import CROP, MEAN, STD, dir_size, fresh_path, time_loader
from .torchvision_baseline import import_torch_stack, make_dataloader, make_transform

__all__ = ["build_sqlite", "build_memmap", "load"]

MEMMAP_SIDE = 256


def _samples(root: str) -> tuple[list[tuple[str, int]], list[str]]:
    from torchvision.datasets import ImageFolder

    folder = ImageFolder(root)
    return folder.samples, folder.classes


class PreloadDataset:
    """Every image decoded into a list of arrays in __init__."""

    def __init__(self, root: str, transform: Any) -> None:
        from PIL import Image

        samples, _ = _samples(root)
        self.images = [np.asarray(Image.open(p).convert("RGB")) for p, _ in samples]
        self.labels = [label for _, label in samples]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        from PIL import Image

        return self.transform(Image.fromarray(self.images[i])), self.labels[i]


class MmapFileDataset:
    """Each image file memory-mapped and decoded straight from the map."""

    def __init__(self, root: str, transform: Any) -> None:
        self.samples, _ = _samples(root)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        from PIL import Image

        path, label = self.samples[i]
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
            image = Image.open(m).convert("RGB")
        return self.transform(image), label


class SQLiteDataset:
    """JPEG BLOBs read from SQLite; the connection opens lazily in each worker."""

    def __init__(self, db: str, transform: Any) -> None:
        self.db = db
        self.transform = transform
        self.conn: sqlite3.Connection | None = None
        with sqlite3.connect(db) as conn:
            self.length = conn.execute("SELECT COUNT(*) FROM images").fetchone()[0]

    def __len__(self) -> int:
        return self.length

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "conn": None}

    def __getitem__(self, i: int) -> tuple[Any, int]:
        import io

        from PIL import Image

        if self.conn is None:
            self.conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)
        blob, label = self.conn.execute(
            "SELECT data, label FROM images WHERE id = ?", (i,)
        ).fetchone()
        return self.transform(Image.open(io.BytesIO(blob)).convert("RGB")), label


class MemmapArrayDataset:
    """Fixed-size uint8 images in one .npy memory map, augmented as tensors (v2)."""

    def __init__(self, prefix: str) -> None:
        import torch
        from torchvision.transforms import v2

        self.prefix = prefix
        self.images = np.load(prefix + ".images.npy", mmap_mode="r")
        self.labels = np.load(prefix + ".labels.npy")
        self.transform = v2.Compose(
            [
                v2.RandomResizedCrop(CROP, antialias=True),
                v2.RandomHorizontalFlip(),
                v2.ToDtype(torch.float32, scale=True),
                v2.Normalize(MEAN, STD),
            ]
        )

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        import torch

        chw = torch.from_numpy(np.ascontiguousarray(self.images[i])).permute(2, 0, 1)
        return self.transform(chw), int(self.labels[i])


def build_sqlite(cfg: dict[str, Any]) -> dict[str, Any]:
    """One table ``images(id, label, data BLOB)`` holding the original JPEG files."""
    out = fresh_path(cfg["out"])
    samples, _ = _samples(cfg["data"])
    t0 = time.perf_counter()
    conn = sqlite3.connect(out)
    conn.execute("CREATE TABLE images (id INTEGER PRIMARY KEY, label INTEGER, data BLOB)")
    conn.executemany(
        "INSERT INTO images VALUES (?, ?, ?)",
        ((i, label, Path(p).read_bytes()) for i, (p, label) in enumerate(samples)),
    )
    conn.commit()
    conn.close()
    return {"seconds": time.perf_counter() - t0, "bytes": dir_size(out), "images": len(samples)}


def build_memmap(cfg: dict[str, Any]) -> dict[str, Any]:
    """Every image squashed to 256x256 (bilinear) into one uint8 N x 256 x 256 x 3 array."""
    from PIL import Image

    prefix = cfg["out"]
    images_path = fresh_path(prefix + ".images.npy")
    samples, _ = _samples(cfg["data"])
    t0 = time.perf_counter()
    arr = np.lib.format.open_memmap(
        images_path, mode="w+", dtype=np.uint8, shape=(len(samples), MEMMAP_SIDE, MEMMAP_SIDE, 3)
    )
    for i, (p, _) in enumerate(samples):
        image = Image.open(p).convert("RGB").resize((MEMMAP_SIDE, MEMMAP_SIDE), Image.BILINEAR)
        arr[i] = np.asarray(image)
    arr.flush()
    del arr
    np.save(prefix + ".labels.npy", np.array([label for _, label in samples], dtype=np.int64))
    seconds = time.perf_counter() - t0
    size = dir_size(images_path) + dir_size(prefix + ".labels.npy")
    return {"seconds": seconds, "bytes": size, "images": len(samples)}


def load(cfg: dict[str, Any]) -> dict[str, Any]:
    kind = cfg["dataset"]
    import_torch_stack()

    def make() -> Any:
        if kind == "preload":
            dataset: Any = PreloadDataset(cfg["data"], make_transform("v1"))
        elif kind == "mmap":
            dataset = MmapFileDataset(cfg["data"], make_transform("v1"))
        elif kind == "sqlite":
            if not Path(cfg["artifact"]).exists():
                build_sqlite({"data": cfg["data"], "out": cfg["artifact"]})
            dataset = SQLiteDataset(cfg["artifact"], make_transform("v1"))
        elif kind == "memmap":
            if not Path(cfg["artifact"] + ".labels.npy").exists():
                build_memmap({"data": cfg["data"], "out": cfg["artifact"]})
            dataset = MemmapArrayDataset(cfg["artifact"])
        else:
            raise ValueError(f"unknown naive dataset {kind!r}")
        return make_dataloader(dataset, cfg["workers"])

    return time_loader(make, passes=cfg["passes"], max_batches=cfg.get("max_batches"))
