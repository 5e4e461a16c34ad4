"""Configurations of the streaming/format peers: WebDataset, HF datasets, Streaming, LitData.

Each peer has a ``<peer>-convert`` row (group ``convert``: the base photo set written in
the peer's native format, time and size on disk) and a ``<peer>`` row (group ``load``:
the main-table task through the peer's recommended PyTorch path). Each runs in its own
venv, ``benchmarks/envs/<env>`` (made by ``install_peers.sh``). A load row builds its
artifact if it is missing, so ``--only`` on a load row works alone.

configs.py appends these to its own list; kept apart so the peer set can grow without
touching the main configuration table.
"""

from __future__ import annotations

from pathlib import Path

from configs import Config

__all__ = ["PEER_ENVS", "peer_configs"]

# env name (benchmarks/envs/<env>) -> distributions whose versions the report records
PEER_ENVS = {
    "webdataset": ("webdataset",),
    "datasets": ("datasets", "pyarrow"),
    "streaming": ("mosaicml-streaming",),
    "litdata": ("litdata",),
}

# id prefix, env, loader module, artifact name, convert title, load title
_PEERS = (
    (
        "webdataset",
        "webdataset",
        "webdataset_bench",
        "webdataset-shards",
        "WebDataset ShardWriter tar shards (original JPEG bytes)",
        "WebDataset WebLoader, shard + buffer shuffle",
    ),
    (
        "hf-datasets",
        "datasets",
        "hf_datasets_bench",
        "hf-datasets",
        "HF datasets Image() column, save_to_disk (Arrow)",
        "HF datasets load_from_disk + set_transform + DataLoader",
    ),
    (
        "streaming",
        "streaming",
        "streaming_bench",
        "streaming-mds",
        "MosaicML Streaming MDSWriter (jpeg column)",
        "MosaicML StreamingDataset (local) + DataLoader",
    ),
    (
        "litdata",
        "litdata",
        "litdata_bench",
        "litdata-chunks",
        "LitData optimize() chunks",
        "LitData StreamingDataset + StreamingDataLoader (v2 transforms)",
    ),
)


def peer_configs(data: dict[str, Path], artifacts: Path, workers: int, passes: int) -> list[Config]:
    """Convert and load configurations for the four peers, on ``data["base"]``."""
    common = {"workers": workers, "passes": passes, "data": str(data["base"])}
    # WebDataset deals whole shards to DataLoader workers: at least one shard per worker.
    extra = {"webdataset": {"shards": max(8, workers)}}
    out: list[Config] = []
    for prefix, env, module, artifact, convert_title, load_title in _PEERS:
        path = str(artifacts / artifact)
        params = {**common, **extra.get(prefix, {})}
        out.append(
            Config(
                f"{prefix}-convert",
                "convert",
                convert_title,
                module,
                "convert",
                env=env,
                params={**params, "out": path},
            )
        )
        out.append(
            Config(
                prefix,
                "load",
                load_title,
                module,
                "load",
                env=env,
                params={**params, "artifact": path},
            )
        )
    return out
