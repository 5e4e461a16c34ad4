"""MosaicML Streaming 0.13: MDS shards with a ``jpeg`` column, read by ``StreamingDataset``.

Conversion: ``MDSWriter(out=dir, columns={"image": "jpeg", "label": "int"})`` fed with
``PIL.Image.open(path)`` (lazy: only the header is parsed). Streaming's ``jpeg``
encoding stores the file's original bytes when the image came from a JPEG file, so
nothing is re-encoded; no shard compression (JPEG does not compress further).

Loading follows Streaming's image-classification examples: a ``StreamingDataset``
subclass whose ``__getitem__`` applies the torchvision v1 transform to the decoded
PIL image, ``local=<the MDS dir>, remote=None`` (the shards are read in place; no
download, no copy), ``shuffle=True`` (algorithm ``py1e``; the default shuffle block
of 262,144 samples is larger than these data sets, so every epoch is a full
permutation), ``batch_size=64``, under the same shuffled-by-the-dataset
``DataLoader(num_workers=cores, persistent_workers=True)``.

Streaming coordinates its workers through POSIX shared memory (``/dev/shm``);
``clean_stale_shared_memory()`` runs before and after, so a killed earlier run cannot
change this one. With ``remote=None`` it keeps no cache of its own.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from .common import BATCH, Unavailable, dir_size, fresh_path, time_loader

__all__ = ["convert", "load"]


def _import() -> Any:
    try:
        import streaming
    except ImportError as exc:
        raise Unavailable(f"mosaicml-streaming does not import here: {exc}") from exc
    return streaming


def convert(cfg: dict[str, Any]) -> dict[str, Any]:
    """ImageFolder -> MDS shards (``jpeg`` + ``int`` columns, original JPEG bytes)."""
    streaming = _import()
    from PIL import Image
    from torchvision.datasets import ImageFolder

    out = fresh_path(cfg["out"])
    t0 = time.perf_counter()
    samples = ImageFolder(cfg["data"]).samples
    columns = {"image": "jpeg", "label": "int"}
    with streaming.MDSWriter(out=str(out), columns=columns, compression=None) as writer:
        for path, label in samples:
            with Image.open(path) as image:
                writer.write({"image": image, "label": label})
    return {"seconds": time.perf_counter() - t0, "bytes": dir_size(out), "images": len(samples)}


def load(cfg: dict[str, Any]) -> dict[str, Any]:
    streaming = _import()
    from streaming.base.util import clean_stale_shared_memory

    from .torchvision_baseline import import_torch_stack, make_transform

    import_torch_stack()
    if not (Path(cfg["artifact"]) / "index.json").exists():
        convert({**cfg, "out": cfg["artifact"]})

    class ImageStream(streaming.StreamingDataset):  # the pattern of Streaming's examples
        def __init__(self, transform: Any, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.transform = transform

        def __getitem__(self, index: int) -> tuple[Any, int]:
            sample = super().__getitem__(index)
            return self.transform(sample["image"].convert("RGB")), sample["label"]

    def make() -> Any:
        from torch.utils.data import DataLoader

        dataset = ImageStream(
            make_transform("v1"),
            local=cfg["artifact"],
            remote=None,
            shuffle=True,
            batch_size=BATCH,
        )
        return DataLoader(
            dataset,
            batch_size=BATCH,
            num_workers=cfg["workers"],
            persistent_workers=cfg["workers"] > 0,
        )

    clean_stale_shared_memory()
    try:
        return time_loader(make, passes=cfg["passes"], max_batches=cfg.get("max_batches"))
    finally:
        clean_stale_shared_memory()
