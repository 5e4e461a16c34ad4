"""Every benchmark configuration, as data: which module/function runs it, in which env, on what.

Groups:
  convert   dataset conversion: time and size on disk (pixpack, FFCV, SQLite, np.memmap)
  load      training-loader throughput on the ~500x375 photo set (the main table)
  large     ~1600x1200 photographs (region-of-interest JPEG decode matters here)
  workers   torchvision throughput with 1 worker (the all-core point is the main table)
  scaling   pixpack 1 -> N workers/cores and the machine ceiling (configs_scaling.py)
  primitives  the loader's per-sample primitives alone (configs_scaling.py)
  size      memory vs dataset size (base vs k-times-larger set, same number of batches)
  open      opening a pack of 1,000 and of 1,000,000 tiny samples: pixpack vs FFCV's Reader

Every configuration runs once per round (run.py --rounds), except those marked
``once``: the memory-vs-size rows and the pack they need (memory, not speed, is what
they show, and it does not drift with the machine's load), and the context rows no
tracked ratio uses (hand-rolled datasets, PackDataset, torchvision v2, the format
peers), which keeps a 3-round full run near an hour on 2 cores.
Peers contributed in peer_configs.py (``peer_configs(data, artifacts, workers, passes)``)
are added when that file exists.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

__all__ = ["Config", "build_configs"]


@dataclass(frozen=True)
class Config:
    id: str
    group: str
    title: str
    module: str  # benchmarks/loaders/<module>.py
    func: str  # "load" or a builder function
    env: str = "system"  # "system", "ffcv", "dali" or a peer's venv under benchmarks/envs
    params: dict[str, Any] = field(default_factory=dict)
    once: bool = False  # run in the first round only


def build_configs(
    data: dict[str, Path], artifacts: Path, workers: int, passes: int, size_batches: int
) -> list[Config]:
    base, large, scaled = (str(data[k]) for k in ("base", "large", "scaled"))
    art = {
        name: str(artifacts / name)
        for name in (
            "pixpack-raw.pixpack",
            "pixpack-raw256.pixpack",
            "pixpack-jpeg.pixpack",
            "pixpack-jpeg-auto.pixpack",
            "pixpack-jpeg256.pixpack",
            "pixpack-jpeg256-w1.pixpack",
            "pixpack-large-jpeg.pixpack",
            "pixpack-scaled-jpeg256.pixpack",
            "ffcv-raw256.beton",
            "ffcv-jpeg256.beton",
            "ffcv-jpeg.beton",
            "ffcv-large-jpeg.beton",
            "images.sqlite",
            "memmap256",
        )
    }
    common = {"workers": workers, "passes": passes}
    packs = {  # pack name -> (mode, max_side)
        "raw": ("raw", None),
        "raw256": ("raw", 256),
        "jpeg": ("jpeg", None),
        "jpeg256": ("jpeg", 256),
    }
    ffcv_files = {"raw256": ("raw", 256), "jpeg256": ("jpg", 256), "jpeg": ("jpg", None)}
    label = {"raw": "raw", "raw256": "raw@256", "jpeg": "jpeg", "jpeg256": "jpeg@256"}
    out: list[Config] = []
    add = out.append

    # -- conversion --------------------------------------------------------------------
    # The packs the loaders read re-encode every image, as FFCV's writer does, so the
    # loader rows decode the same kind of bytes. The packing ratio at source size uses
    # pixpack's default (reencode="auto": eligible source JPEGs are kept as they are).
    for name, (mode, side) in packs.items():
        always = name == "jpeg"
        add(
            Config(
                f"pixpack-pack-{name}",
                "convert",
                f"pixpack pack {label[name]}" + (", --reencode always" if always else ""),
                "pixpack_bench",
                "convert",
                params={
                    **common,
                    "data": base,
                    "out": art[f"pixpack-{name}.pixpack"],
                    "mode": mode,
                    "max_side": side,
                    "quality": 90,
                    **({"reencode": "always"} if always else {}),
                },
            )
        )
    add(
        Config(
            "pixpack-pack-jpeg-auto",
            "convert",
            "pixpack pack jpeg (default: eligible source JPEGs kept as is)",
            "pixpack_bench",
            "convert",
            params={
                **common,
                "data": base,
                "out": art["pixpack-jpeg-auto.pixpack"],
                "mode": "jpeg",
                "max_side": None,
                "quality": 90,
            },
        )
    )
    add(
        Config(
            "pixpack-pack-jpeg256-w1",
            "convert",
            "pixpack pack jpeg@256, 1 worker",
            "pixpack_bench",
            "convert",
            params={
                **common,
                "workers": 1,
                "data": base,
                "out": art["pixpack-jpeg256-w1.pixpack"],
                "mode": "jpeg",
                "max_side": 256,
                "quality": 90,
            },
        )
    )
    for name, (mode, side) in ffcv_files.items():
        add(
            Config(
                f"ffcv-write-{name}",
                "convert",
                f"FFCV DatasetWriter {label[name]}",
                "ffcv_bench",
                "convert",
                env="ffcv",
                params={
                    **common,
                    "data": base,
                    "out": art[f"ffcv-{name}.beton"],
                    "write_mode": mode,
                    "max_side": side,
                    "quality": 90,
                },
            )
        )
    add(
        Config(
            "sqlite-build",
            "convert",
            "SQLite JPEG BLOBs",
            "naive",
            "build_sqlite",
            params={"data": base, "out": art["images.sqlite"]},
        )
    )
    add(
        Config(
            "memmap-build",
            "convert",
            "np.memmap 256x256 uint8",
            "naive",
            "build_memmap",
            params={"data": base, "out": art["memmap256"]},
        )
    )
    add(
        Config(
            "pixpack-pack-large-jpeg",
            "convert",
            "pixpack pack jpeg (large photos), --reencode always",
            "pixpack_bench",
            "convert",
            params={
                **common,
                "data": large,
                "out": art["pixpack-large-jpeg.pixpack"],
                "mode": "jpeg",
                "max_side": None,
                "quality": 90,
                "reencode": "always",
            },
        )
    )
    add(
        Config(
            "ffcv-write-large-jpeg",
            "convert",
            "FFCV DatasetWriter jpeg (large photos)",
            "ffcv_bench",
            "convert",
            env="ffcv",
            params={
                **common,
                "data": large,
                "out": art["ffcv-large-jpeg.beton"],
                "write_mode": "jpg",
                "max_side": None,
                "quality": 90,
            },
        )
    )

    add(
        Config(
            "pixpack-pack-scaled-jpeg256",
            "convert",
            "pixpack pack jpeg@256 (k-times larger set, for memory vs size)",
            "pixpack_bench",
            "convert",
            once=True,
            params={
                **common,
                "data": scaled,
                "out": art["pixpack-scaled-jpeg256.pixpack"],
                "mode": "jpeg",
                "max_side": 256,
                "quality": 90,
            },
        )
    )

    # -- loading: the main table -------------------------------------------------------
    for version in ("v1", "v2"):
        add(
            Config(
                f"torchvision-{version}",
                "load",
                f"torchvision ImageFolder + DataLoader, transforms {version}",
                "torchvision_baseline",
                "load",
                params={**common, "data": base, "transforms": version},
            )
        )
    naive = {
        "preload": ("Dataset preloading decoded images into a list", {}),
        "mmap": ("Dataset memory-mapping each image file", {}),
        "sqlite": ("Dataset reading JPEG BLOBs from SQLite", {"artifact": art["images.sqlite"]}),
        "memmap256": (
            "one np.memmap array of 256x256 images (v2 tensor transforms)",
            {"artifact": art["memmap256"]},
        ),
    }
    for name, (title, extra) in naive.items():
        add(
            Config(
                f"naive-{name}",
                "load",
                title,
                "naive",
                "load",
                params={**common, "data": base, "dataset": name.replace("256", ""), **extra},
            )
        )
    for name, (mode, side) in packs.items():
        pack_params = {
            **common,
            "data": base,
            "artifact": art[f"pixpack-{name}.pixpack"],
            "mode": mode,
            "max_side": side,
            "quality": 90,
        }
        add(
            Config(
                f"pixpack-loader-{name}",
                "load",
                f"pixpack.Loader, {label[name]} pack",
                "pixpack_bench",
                "load",
                params={**pack_params, "via": "loader"},
            )
        )
        if name != "raw256":
            add(
                Config(
                    f"pixpack-dataset-{name}",
                    "load",
                    f"pixpack PackDataset + DataLoader, {label[name]} pack",
                    "pixpack_bench",
                    "load",
                    params={**pack_params, "via": "dataset"},
                )
            )
    for name, (mode, side) in ffcv_files.items():
        add(
            Config(
                f"ffcv-{name}",
                "load",
                f"FFCV Loader, {label[name]}",
                "ffcv_bench",
                "load",
                env="ffcv",
                params={
                    **common,
                    "data": base,
                    "artifact": art[f"ffcv-{name}.beton"],
                    "write_mode": mode,
                    "max_side": side,
                    "quality": 90,
                },
            )
        )
    add(
        Config(
            "dali-cpu",
            "load",
            "DALI CPU pipeline (fn.readers.file)",
            "dali_bench",
            "load",
            env="dali",
            params={**common, "data": base},
        )
    )

    # -- large photographs -------------------------------------------------------------
    add(
        Config(
            "large-torchvision-v1",
            "large",
            "torchvision v1, large photos",
            "torchvision_baseline",
            "load",
            params={**common, "data": large, "transforms": "v1"},
        )
    )
    add(
        Config(
            "large-pixpack-loader-jpeg",
            "large",
            "pixpack.Loader jpeg, large photos",
            "pixpack_bench",
            "load",
            params={
                **common,
                "data": large,
                "artifact": art["pixpack-large-jpeg.pixpack"],
                "mode": "jpeg",
                "max_side": None,
                "quality": 90,
                "via": "loader",
            },
        )
    )
    add(
        Config(
            "large-ffcv-jpeg",
            "large",
            "FFCV Loader jpeg, large photos",
            "ffcv_bench",
            "load",
            env="ffcv",
            params={
                **common,
                "data": large,
                "artifact": art["ffcv-large-jpeg.beton"],
                "write_mode": "jpg",
                "max_side": None,
                "quality": 90,
            },
        )
    )
    add(
        Config(
            "large-dali-cpu",
            "large",
            "DALI CPU, large photos",
            "dali_bench",
            "load",
            env="dali",
            params={**common, "data": large},
        )
    )

    # -- throughput vs workers (the all-core point is the main-table row; pixpack's 1-worker
    # rows are in the scaling group) ------------------------------------------------------
    if workers > 1:
        add(
            Config(
                "workers1-torchvision-v1",
                "workers",
                "torchvision v1, 1 worker",
                "torchvision_baseline",
                "load",
                params={**common, "workers": 1, "data": base, "transforms": "v1"},
            )
        )
    # -- memory vs dataset size: same number of batches on a small and a large set ---------
    for tag, root, pack in (
        ("base", base, art["pixpack-jpeg256.pixpack"]),
        ("scaled", scaled, art["pixpack-scaled-jpeg256.pixpack"]),
    ):
        sized = {**common, "data": root, "max_batches": size_batches}
        add(
            Config(
                f"size-{tag}-torchvision-v1",
                "size",
                f"torchvision v1 ({tag})",
                "torchvision_baseline",
                "load",
                once=True,
                params={**sized, "transforms": "v1"},
            )
        )
        add(
            Config(
                f"size-{tag}-naive-preload",
                "size",
                f"preload list ({tag})",
                "naive",
                "load",
                once=True,
                params={**sized, "dataset": "preload"},
            )
        )
        add(
            Config(
                f"size-{tag}-pixpack-loader-jpeg256",
                "size",
                f"pixpack.Loader jpeg@256 ({tag})",
                "pixpack_bench",
                "load",
                once=True,
                params={
                    **sized,
                    "artifact": pack,
                    "mode": "jpeg",
                    "max_side": 256,
                    "quality": 90,
                    "via": "loader",
                },
            )
        )
    # -- opening a pack: cost vs number of samples ------------------------------------------
    for fmt_name, module_func, env, suffix in (
        ("pixpack", "pixpack_open", "system", "pixpack"),
        ("ffcv", "ffcv_open", "ffcv", "beton"),
    ):
        for tag, n in (("1k", 1_000), ("1m", 1_000_000)):
            add(
                Config(
                    f"open-{fmt_name}-{tag}",
                    "open",
                    f"{'pixpack.open' if fmt_name == 'pixpack' else 'FFCV Reader'}, {n:,} samples",
                    "open_bench",
                    module_func,
                    env=env,
                    params={
                        "samples": n,
                        "repeats": 20,
                        "workers": workers,
                        "artifact": str(artifacts / f"open-{n}.{suffix}"),
                    },
                )
            )
    from configs_scaling import scaling_configs  # it imports Config from this module

    scaling = scaling_configs(base, artifacts, workers, passes)
    at = next(i for i, c in enumerate(out) if c.id == "pixpack-pack-jpeg256-w1") + 1
    out[at:at] = [c for c in scaling if c.group == "convert"]
    at = next(i for i, c in enumerate(out) if c.group in ("workers", "size"))
    out[at:at] = [c for c in scaling if c.group != "convert"]
    out += _peer_configs(data, artifacts, workers, passes)
    return [replace(c, once=True) if _context_only(c) else c for c in out]


_CONTEXT_PREFIXES = (
    "naive-", "pixpack-dataset-", "torchvision-v2", "sqlite-build", "memmap-build",
    "workers1-", "webdataset", "hf-datasets", "streaming", "litdata",
)  # fmt: skip


def _context_only(cfg: Config) -> bool:
    """Rows shown for context that no tracked ratio reads: measured in round 1 only."""
    return cfg.id.startswith(_CONTEXT_PREFIXES)


def _peer_configs(
    data: dict[str, Path], artifacts: Path, workers: int, passes: int
) -> list[Config]:
    """The other peers' rows (peer_configs.py), or none while that file does not exist."""
    try:
        from peer_configs import peer_configs
    except ModuleNotFoundError as exc:
        if exc.name != "peer_configs":
            raise  # the file exists but one of its own imports is missing: say so
        return []
    return list(peer_configs(data, artifacts, workers, passes))
