"""The rows of remote_read.py: one loader reading the same JPEGs for ``epochs`` epochs.

Run through ``worker.py remote_readers <func> CFG OUT`` (the peers with their venv's
python). Every row times each epoch separately, from the moment its iterator is asked
for the epoch's first batch to its last batch, after an untimed set-up (opening the
data set, building the loader; for a remote source that reads the index over the
network). The epochs run back to back on one long-lived loader (persistent workers),
so epoch 1 starts from an empty cache and epoch 2 from whatever the cache kept.

The work per image is the same everywhere: JPEG decode, RandomResizedCrop(224),
horizontal flip, normalise to float32 CHW, batches of 64.

- ``pixpack``: ``pixpack.open(path or s3 URL, storage_options, remote=RemoteOptions(
  cache_dir, cache_limit))`` + ``pixpack.Loader(workers=2, shuffle=True, shard_window)``;
- ``streaming``: ``StreamingDataset(remote="s3://...", local=cache, cache_limit,
  shuffle=True)`` subclass applying the torchvision v1 transform on PIL (as
  streaming_bench.py), under ``DataLoader(num_workers=2, persistent_workers=True)``;
- ``litdata``: ``StreamingDataset("s3://...", cache_dir, max_cache_size,
  shuffle=True, storage_options)`` + ``StreamingDataLoader(num_workers=2,
  persistent_workers=True)``, the torchvision v2 transform on LitData's decoded uint8
  tensor (as litdata_bench.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from .common import BATCH, CROP, MEAN, STD, Unavailable, describe_batch

__all__ = ["litdata", "pixpack", "streaming"]


Epochs = Callable[[Any, int], Iterable[Any]]


def _epochs(
    loader: Any, epochs: int, setup_s: float, epoch_iter: Epochs = lambda ld, e: ld
) -> dict[str, Any]:
    times, counts, output = [], [], None
    for epoch in range(epochs):
        t0, n = time.perf_counter(), 0
        for batch in epoch_iter(loader, epoch):
            n += len(batch[0])
            if output is None:
                output = describe_batch(batch[0])
        times.append(time.perf_counter() - t0)
        counts.append(n)
    return {"setup_s": setup_s, "epoch_s": times, "epoch_images": counts, "output": output}


def pixpack(cfg: dict[str, Any]) -> dict[str, Any]:
    import pixpack as px
    from pixpack.ops import Normalize, RandomHorizontalFlip, RandomResizedCrop

    t0 = time.perf_counter()
    kwargs: dict[str, Any] = {}
    if cfg.get("endpoint"):
        kwargs = {
            "storage_options": {
                "key": "testing",
                "secret": "testing",
                "client_kwargs": {"endpoint_url": cfg["endpoint"], "region_name": "us-east-1"},
            },
            "remote": px.RemoteOptions(cache_dir=cfg["cache_dir"], cache_limit=cfg["cache_limit"]),
        }
    pack = px.open(cfg["source"], **kwargs)
    pipeline = [RandomResizedCrop(CROP), RandomHorizontalFlip(), Normalize(MEAN, STD)]
    loader = px.Loader(
        pack, BATCH, pipeline=pipeline, workers=cfg["workers"], shuffle=True, seed=0,
        shard_window=cfg.get("shard_window", 0),
    )  # fmt: skip
    setup = time.perf_counter() - t0

    def epoch_iter(ld: Any, epoch: int) -> Any:
        ld.set_epoch(epoch) if hasattr(ld, "set_epoch") else None
        return ld

    return _epochs(loader, cfg["epochs"], setup, epoch_iter)


def streaming(cfg: dict[str, Any]) -> dict[str, Any]:
    try:
        import streaming as st
        from streaming.base.util import clean_stale_shared_memory
    except ImportError as exc:
        raise Unavailable(f"mosaicml-streaming does not import here: {exc}") from exc
    from torch.utils.data import DataLoader

    from .torchvision_baseline import import_torch_stack, make_transform

    import_torch_stack()

    class ImageStream(st.StreamingDataset):
        def __init__(self, transform: Any, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.transform = transform

        def __getitem__(self, index: int) -> tuple[Any, int]:
            sample = super().__getitem__(index)
            return self.transform(sample["image"].convert("RGB")), sample["label"]

    clean_stale_shared_memory()
    try:
        t0 = time.perf_counter()
        dataset = ImageStream(
            make_transform("v1"), remote=cfg["source"], local=cfg["cache_dir"],
            cache_limit=cfg["cache_limit"], shuffle=True, batch_size=BATCH,
            **{k: cfg[k] for k in ("shuffle_block_size",) if k in cfg},
        )  # fmt: skip
        loader = DataLoader(
            dataset, batch_size=BATCH, num_workers=cfg["workers"], persistent_workers=True
        )
        return _epochs(loader, cfg["epochs"], time.perf_counter() - t0)
    finally:
        clean_stale_shared_memory()


def litdata(cfg: dict[str, Any]) -> dict[str, Any]:
    try:
        import litdata as ld
    except ImportError as exc:
        raise Unavailable(f"litdata does not import here: {exc}") from exc
    from .litdata_bench import _Transform  # the v2 transform on LitData's decoded item
    from .torchvision_baseline import import_torch_stack

    import_torch_stack()
    # LitData sends chunk GETs through obstore when it is installed, and obstore refuses
    # an http:// endpoint (reqwest "BadScheme"; AWS_ALLOW_HTTP is not read by the store
    # LitData builds). Its boto3 path, used when obstore is unavailable, takes any
    # endpoint: switch obstore off (inherited by the forked DataLoader workers).
    from litdata.streaming import downloader

    downloader._OBSTORE_AVAILABLE = False
    t0 = time.perf_counter()
    dataset = ld.StreamingDataset(
        cfg["source"], cache_dir=cfg["cache_dir"], max_cache_size=cfg["cache_limit"],
        shuffle=True, transform=_Transform(),
        storage_options={"endpoint_url": cfg["endpoint"], "aws_access_key_id": "testing",
                         "aws_secret_access_key": "testing", "region_name": "us-east-1"},
    )  # fmt: skip
    loader = ld.StreamingDataLoader(
        dataset, batch_size=BATCH, num_workers=cfg["workers"], persistent_workers=True
    )
    return _epochs(loader, cfg["epochs"], time.perf_counter() - t0)
