"""WebDataset 1.0.2: tar shards of the original JPEG bytes, read through ``WebLoader``.

Conversion writes ``{"__key__", "jpg": <file bytes>, "cls": <label>}`` samples with
``wds.ShardWriter`` into ``cfg["shards"]`` shards (the JPEGs are stored as they are, not
re-encoded). The samples are shuffled once at write time, as the WebDataset docs advise:
reading is sequential, and a shuffle buffer over class-sorted shards would otherwise
give batches of one or two classes.

Loading is the pipeline of the WebDataset README for ImageNet-style training:
``WebDataset(urls, shardshuffle=100).shuffle(1000).decode("pil").to_tuple("jpg", "cls")
.map_tuple(<torchvision v1 transform>, identity).batched(64)`` inside
``WebLoader(dataset, batch_size=None, num_workers=cores, persistent_workers=True)``:
each worker reads whole shards (split by worker), so there must be at least as many
shards as workers, and the shuffle is a per-worker buffer, not a global permutation.
"""

from __future__ import annotations

import math
import random
import time
from pathlib import Path
from typing import Any

from .common import BATCH, Unavailable, dir_size, fresh_path, time_loader

__all__ = ["convert", "load"]

SHUFFLE_BUFFER = 1000  # samples held per worker, the value of the WebDataset examples
SHARD_SHUFFLE = 100  # shard-order buffer (WebDataset's own default for shardshuffle=True)


def _import() -> Any:
    try:
        import webdataset as wds
    except ImportError as exc:
        raise Unavailable(f"webdataset does not import here: {exc}") from exc
    return wds


def _samples(root: str) -> list[tuple[str, int]]:
    """(path, class index) in ImageFolder order, without decoding anything."""
    from torchvision.datasets import ImageFolder

    return list(ImageFolder(root).samples)


def _identity(value: Any) -> Any:
    return value  # a module-level function, so the pipeline pickles for spawned workers


def _shards(directory: str | Path) -> list[str]:
    return sorted(str(p) for p in Path(directory).glob("shard-*.tar"))


def convert(cfg: dict[str, Any]) -> dict[str, Any]:
    """ImageFolder -> ``cfg["shards"]`` tar shards of (original JPEG bytes, class)."""
    wds = _import()
    out = fresh_path(cfg["out"])
    out.mkdir()
    t0 = time.perf_counter()
    samples = _samples(cfg["data"])
    random.Random(0).shuffle(samples)  # write-time shuffle, see the module docstring
    per_shard = math.ceil(len(samples) / cfg.get("shards", 8))
    with wds.ShardWriter(str(out / "shard-%06d.tar"), maxcount=per_shard, verbose=0) as sink:
        for index, (path, label) in enumerate(samples):
            sink.write({"__key__": f"{index:08d}", "jpg": Path(path).read_bytes(), "cls": label})
    return {"seconds": time.perf_counter() - t0, "bytes": dir_size(out), "images": len(samples)}


def load(cfg: dict[str, Any]) -> dict[str, Any]:
    wds = _import()
    from .torchvision_baseline import import_torch_stack, make_transform

    import_torch_stack()
    if not _shards(cfg["artifact"]):
        convert({**cfg, "out": cfg["artifact"]})
    urls = _shards(cfg["artifact"])
    if len(urls) < cfg["workers"]:
        raise ValueError(
            f"{len(urls)} shards for {cfg['workers']} workers: WebDataset splits shards "
            f"between workers, so some would idle; convert with shards >= workers"
        )

    def make() -> Any:
        dataset = (
            wds.WebDataset(urls, shardshuffle=SHARD_SHUFFLE)
            .shuffle(SHUFFLE_BUFFER)
            .decode("pil")
            .to_tuple("jpg", "cls")
            .map_tuple(make_transform("v1"), _identity)
            .batched(BATCH)
        )
        return wds.WebLoader(
            dataset,
            batch_size=None,  # batching happens in the workers, as WebDataset recommends
            num_workers=cfg["workers"],
            persistent_workers=cfg["workers"] > 0,
        )

    return time_loader(make, passes=cfg["passes"], max_batches=cfg.get("max_batches"))
