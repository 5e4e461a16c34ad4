"""Hugging Face datasets 5.2: an Arrow dataset with an ``Image()`` column, through DataLoader.

Conversion builds ``Dataset.from_dict({"image": [{"bytes", "path"}], "label": [...]},
features=Features({"image": Image(), "label": ClassLabel(names)}))`` from the original
JPEG bytes (not re-encoded) and writes it with ``save_to_disk`` (Arrow IPC files; the
``bytes`` are embedded, so the folder of JPEGs is no longer needed).

Loading is the pattern of the transformers image-classification example:
``load_from_disk`` (memory-maps the Arrow files), ``set_transform`` with the torchvision
v1 transform applied to the decoded PIL images, then the same shuffled
``DataLoader(batch_size=64, num_workers=cores, persistent_workers=True)`` as the
torchvision baseline. DataLoader uses the dataset's ``__getitems__``, so each worker
fetches a whole batch of rows from Arrow at once and decodes them with Pillow.
Nothing is cached: ``load_from_disk`` reads the saved files in place and the transform
runs on the fly; offline mode is forced so nothing reaches the Hub.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from .common import Unavailable, dir_size, fresh_path, time_loader

__all__ = ["convert", "load"]


def _import() -> Any:
    # Before the first import: datasets reads these when it loads its config module.
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import datasets
    except ImportError as exc:
        raise Unavailable(f"datasets does not import here: {exc}") from exc
    datasets.disable_progress_bars()
    return datasets


def convert(cfg: dict[str, Any]) -> dict[str, Any]:
    """ImageFolder -> ``save_to_disk`` folder of a Dataset with ``Image()`` + ``ClassLabel``."""
    datasets = _import()
    from torchvision.datasets import ImageFolder

    out = fresh_path(cfg["out"])
    t0 = time.perf_counter()
    folder = ImageFolder(cfg["data"])  # the scan only: (path, class) pairs
    features = datasets.Features(
        {"image": datasets.Image(), "label": datasets.ClassLabel(names=folder.classes)}
    )
    columns = {
        "image": [{"bytes": Path(p).read_bytes(), "path": Path(p).name} for p, _ in folder.samples],
        "label": [label for _, label in folder.samples],
    }
    dataset = datasets.Dataset.from_dict(columns, features=features)
    dataset.save_to_disk(str(out), num_proc=None)
    return {"seconds": time.perf_counter() - t0, "bytes": dir_size(out), "images": len(dataset)}


def load(cfg: dict[str, Any]) -> dict[str, Any]:
    datasets = _import()
    from .torchvision_baseline import import_torch_stack, make_dataloader, make_transform

    import_torch_stack()
    if not (Path(cfg["artifact"]) / "dataset_info.json").exists():
        convert({**cfg, "out": cfg["artifact"]})
    transform = make_transform("v1")

    def preprocess(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        # The transformers example's train transform: decoded PIL images in, tensors out.
        return {
            "pixel_values": [transform(image.convert("RGB")) for image in batch["image"]],
            "label": batch["label"],
        }

    def make() -> Any:
        dataset = datasets.load_from_disk(cfg["artifact"])
        dataset.set_transform(preprocess)
        return make_dataloader(dataset, cfg["workers"])

    return time_loader(
        make,
        passes=cfg["passes"],
        max_batches=cfg.get("max_batches"),
        images_of=lambda batch: batch["pixel_values"],
    )
