"""Configurations that measure scaling over cores and the pipeline's own overhead.

Groups:
  scaling     pixpack.Loader with 1 worker, unpinned and pinned to one CPU (the
              all-core point is the main-table row), and the machine ceiling: the
              primitive loop in 1 process vs N processes at once
  primitives  the loader's per-sample primitives alone on one thread, per pack
  convert     (added here) packing with 1 worker, unpinned and pinned, for the
              parallel-efficiency ratios

"Pinned" means the whole benchmark process is restricted to one CPU
(``pin_cpu``, applied by worker.py before any import), so "1 pinned worker vs N
workers on all CPUs" is "1 core -> N cores"; unpinned, a 1-worker loader still
lets OpenCV and the kernel use the other cores.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from configs import Config

__all__ = ["SCALING_PACKS", "scaling_configs"]

# pack name -> (mode, max_side, label)
SCALING_PACKS = {"jpeg256": ("jpeg", 256, "jpeg@256"), "raw256": ("raw", 256, "raw@256")}
PRIMITIVE_PACKS = {**SCALING_PACKS, "jpeg": ("jpeg", None, "jpeg")}


def scaling_configs(base: str, artifacts: Path, workers: int, passes: int) -> list[Config]:
    out: list[Config] = []
    common: dict[str, Any] = {"workers": workers, "passes": passes, "data": base, "quality": 90}
    for name, (mode, side, label) in SCALING_PACKS.items():
        packing = {**common, "mode": mode, "max_side": side, "workers": 1}
        for pinned, tag, how in ((False, "w1", "1 worker"), (True, "w1pin", "1 worker pinned")):
            if name == "jpeg256" and not pinned:
                continue  # pixpack-pack-jpeg256-w1 is in configs.py (older runs keep the id)
            out.append(
                Config(
                    f"pixpack-pack-{name}-{tag}",
                    "convert",
                    f"pixpack pack {label}, {how}" + (" to one CPU" if pinned else ""),
                    "pixpack_bench",
                    "convert",
                    params={
                        **packing,
                        "out": str(artifacts / f"pixpack-{name}-{tag}.pixpack"),
                        "pin_cpu": pinned,
                    },
                )
            )
    if workers < 2:
        return out
    for name, (mode, side, label) in SCALING_PACKS.items():
        loading = {
            **common,
            "artifact": str(artifacts / f"pixpack-{name}.pixpack"),
            "mode": mode,
            "max_side": side,
            "via": "loader",
        }
        out.append(
            Config(
                f"scaling-pixpack-loader-{name}-w1",
                "scaling",
                f"pixpack.Loader {label}, 1 worker",
                "pixpack_bench",
                "load",
                params={**loading, "workers": 1},
            )
        )
        out.append(
            Config(
                f"scaling-pixpack-loader-{name}-w1pin",
                "scaling",
                f"pixpack.Loader {label}, 1 worker, process pinned to one CPU",
                "pixpack_bench",
                "load",
                params={**loading, "workers": 1, "pin_cpu": True},
            )
        )
        out.append(
            Config(
                f"ceiling-{name}",
                "scaling",
                f"machine ceiling, {label}: primitive loop in 1 process vs {workers} at once",
                "primitives_bench",
                "ceiling",
                params=loading,
            )
        )
    for name, (mode, side, label) in PRIMITIVE_PACKS.items():
        out.append(
            Config(
                f"primitives-{name}",
                "primitives",
                f"primitives alone, one thread, {label} pack",
                "primitives_bench",
                "primitives",
                params={
                    **common,
                    "artifact": str(artifacts / f"pixpack-{name}.pixpack"),
                    "mode": mode,
                    "max_side": side,
                },
            )
        )
    return out
