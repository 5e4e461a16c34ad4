"""LitData 0.2.76: ``optimize()`` chunks, read by ``StreamingDataset`` + ``StreamingDataLoader``.

Conversion: ``litdata.optimize(fn=<path, label -> {"image": PIL.Image.open(path),
"label": label}>, inputs=<ImageFolder samples>, output_dir, chunk_bytes="64MB",
num_workers=cores)``. LitData's JPEG serializer stores the file's original bytes for
an image opened from a JPEG file (no re-encode). ``optimize`` first writes chunks to
its own cache folders (``DATA_OPTIMIZER_CACHE_FOLDER`` / ``..._DATA_CACHE_FOLDER``,
by default under the system temp dir); they are pointed at ``<out>.cache`` and removed
afterwards, so nothing is left behind.

Loading: ``StreamingDataset(input_dir=<the local chunks>, shuffle=True,
transform=...)`` under ``StreamingDataLoader(batch_size=64, num_workers=cores,
persistent_workers=True)``. LitData decodes a JPEG itself, into a uint8 CHW tensor
(``torchvision.io.decode_jpeg``), so the transform is the torchvision *v2* one (crop
and flip on uint8, then float and normalise), like the ``torchvision-v2`` row; a PIL
transform cannot take its output. A local, uncompressed ``input_dir`` is read in
place: nothing is copied to LitData's chunk cache (``~/.lightning/chunks``).

Shuffle caveat: LitData shuffles the order of chunks and, inside a chunk, windows of
256 items (``item_shuffle_window``), not a global permutation of all samples.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .common import BATCH, Unavailable, dir_size, fresh_path, time_loader

__all__ = ["convert", "load"]

CHUNK_BYTES = "64MB"  # LitData's documented chunk size for image data sets


def _import() -> Any:
    try:
        import litdata
    except ImportError as exc:
        raise Unavailable(f"litdata does not import here: {exc}") from exc
    return litdata


def _sample(item: tuple[str, int]) -> dict[str, Any]:
    """optimize() fn, module-level so its worker processes can import it."""
    from PIL import Image

    path, label = item
    return {"image": Image.open(path), "label": label}


def convert(cfg: dict[str, Any]) -> dict[str, Any]:
    """ImageFolder -> LitData chunks (original JPEG bytes + int label)."""
    litdata = _import()
    from torchvision.datasets import ImageFolder

    out = fresh_path(cfg["out"])
    scratch = fresh_path(f"{out}.cache")
    os.environ["DATA_OPTIMIZER_CACHE_FOLDER"] = str(scratch / "chunks")
    os.environ["DATA_OPTIMIZER_DATA_CACHE_FOLDER"] = str(scratch / "data")
    t0 = time.perf_counter()
    samples = [(path, label) for path, label in ImageFolder(cfg["data"]).samples]
    try:
        litdata.optimize(
            fn=_sample,
            inputs=samples,
            output_dir=str(out),
            chunk_bytes=CHUNK_BYTES,
            num_workers=cfg["workers"],
            verbose=False,
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return {"seconds": time.perf_counter() - t0, "bytes": dir_size(out), "images": len(samples)}


def _ensure_chunks(cfg: dict[str, Any]) -> None:
    """Convert first if needed, in a child process: optimize() forces the global
    multiprocessing start method to "spawn", which would make this process's DataLoader
    workers re-import torch (seconds) and inflate the time to the first batch."""
    if (Path(cfg["artifact"]) / "index.json").exists():
        return
    code = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); "
        "from loaders.litdata_bench import convert; convert(json.loads(sys.argv[2]))"
    )
    benchmarks = str(Path(__file__).resolve().parent.parent)
    params = json.dumps({**cfg, "out": cfg["artifact"]})
    subprocess.run([sys.executable, "-c", code, benchmarks, params], check=True)


class _Transform:
    """The v2 train transform applied to LitData's decoded ``{"image", "label"}`` item."""

    def __init__(self) -> None:
        from .torchvision_baseline import make_transform

        self.transform = make_transform("v2")

    def __call__(self, item: dict[str, Any]) -> tuple[Any, int]:
        return self.transform(item["image"]), item["label"]


def load(cfg: dict[str, Any]) -> dict[str, Any]:
    litdata = _import()
    from .torchvision_baseline import import_torch_stack

    import_torch_stack()
    _ensure_chunks(cfg)

    def make() -> Any:
        dataset = litdata.StreamingDataset(
            input_dir=cfg["artifact"], shuffle=True, transform=_Transform()
        )
        return litdata.StreamingDataLoader(
            dataset,
            batch_size=BATCH,
            num_workers=cfg["workers"],
            persistent_workers=cfg["workers"] > 0,
        )

    return time_loader(make, passes=cfg["passes"], max_batches=cfg.get("max_batches"))
