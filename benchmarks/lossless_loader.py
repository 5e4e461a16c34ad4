"""Loader rate and size on disk: raw vs lossless packs of the same 16-bit CT-like slices.

``N`` 512x512 slices made as in ``lossless_codecs.py`` (real photographs scaled to 12
bits with noise, a circular field of view), as uint16 0..4095 and as int16 Hounsfield
units (value - 1024), each packed ``mode="raw"`` and ``mode="lossless"``. With every
pack in the page cache, one epoch of ``pixpack.Loader(batch_size=64, workers=2,
pipeline=[RandomResizedCrop(224), RandomHorizontalFlip()])`` per round, raw and
lossless interleaved; the median img/s of ``ROUNDS`` rounds, and the process CPU time
per image (less sensitive to other load on a shared machine).

Usage: ``flock /tmp/pixpack-bench.lock python benchmarks/lossless_loader.py``; appends
its table to ``benchmarks/results/2026-12-05-intel-xeon-2c-lossless-codecs.md``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

import pixpack
from pixpack.ops import RandomHorizontalFlip, RandomResizedCrop

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lossless_codecs import RESULTS, ct_slices

DATA = Path(__file__).resolve().parent / "data" / "lossless"
ROUNDS = 5
MARKER = "## Loader: raw vs lossless"


def build(n: int) -> dict[str, Path]:
    """The four packs (made once, then reused)."""
    DATA.mkdir(parents=True, exist_ok=True)
    paths = {f"{kind}-{mode}": DATA / f"ct-{kind}-{n}-{mode}.pixpack"
             for kind in ("uint16", "int16") for mode in ("raw", "lossless")}  # fmt: skip
    if all(p.exists() for p in paths.values()):
        return paths
    slices = ct_slices(n)
    sets = {"uint16": slices,
            "int16": [(s.astype(np.int32) - 1024).astype(np.int16) for s in slices]}  # fmt: skip
    for name, path in paths.items():
        if path.exists():
            continue
        kind, mode = name.split("-")
        started = time.perf_counter()
        pixpack.pack([(s, 0) for s in sets[kind]], path, mode=mode, quiet=True)
        print(f"packed {name} in {time.perf_counter() - started:.1f} s", flush=True)
    return paths


def epoch(pack: pixpack.Pack) -> tuple[float, float]:
    """(img/s, CPU ms per image) of one epoch."""
    loader = pixpack.Loader(pack, batch_size=64, workers=2, seed=0,
                            pipeline=[RandomResizedCrop(224), RandomHorizontalFlip()])  # fmt: skip
    wall, cpu, count = time.perf_counter(), time.process_time(), 0
    for images, _ in loader:
        count += len(images)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return count / wall, cpu / count * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    paths = build(args.n)
    packs = {name: pixpack.open(p) for name, p in paths.items()}
    for p in paths.values():  # into the page cache
        with open(p, "rb") as f:
            while f.read(16 << 20):
                pass
    for pack in packs.values():  # warm-up epoch
        epoch(pack)
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in packs}
    for _ in range(ROUNDS):
        for name, pack in packs.items():
            runs[name].append(epoch(pack))
            print(name, runs[name][-1], flush=True)
    report(args.out, args.n, paths, runs)


def report(out: Path, n: int, paths: dict[str, Path], runs: dict) -> None:
    rate = {k: statistics.median(r for r, _ in v) for k, v in runs.items()}
    cpu = {k: statistics.median(c for _, c in v) for k, v in runs.items()}
    size = {k: os.path.getsize(p) for k, p in paths.items()}
    lines = [
        MARKER,
        "",
        f"{n} 512x512 CT-like slices; `pixpack.Loader(batch_size=64, workers=2, "
        "pipeline=[RandomResizedCrop(224), RandomHorizontalFlip()])`, packs in the page "
        f"cache; median of {ROUNDS} epochs, raw and lossless interleaved. CPU = process CPU "
        f"time per image. Load average at the end: {os.getloadavg()[0]:.1f} (a shared "
        "machine: img/s is noisy, CPU per image much less so).",
        "",
        "| pixels | mode | size on disk | vs raw | img/s | vs raw | CPU ms/img | raw CPU / this |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for kind in ("uint16", "int16"):
        raw = f"{kind}-raw"
        for mode in ("raw", "lossless"):
            k = f"{kind}-{mode}"
            lines.append(
                f"| {kind} | {mode} | {size[k] / 1e6:.1f} MB | {size[raw] / size[k]:.2f}x smaller"
                f" | {rate[k]:.0f} | {rate[k] / rate[raw]:.2f}x | {cpu[k]:.3f} "
                f"| {cpu[raw] / cpu[k]:.2f}x |"
            )
    lines += ["", f"Command: `flock /tmp/pixpack-bench.lock python {' '.join(sys.argv)}`", ""]
    text = out.read_text() if out.exists() else ""
    if MARKER in text:
        text = text[: text.index(MARKER)]
    out.write_text(text.rstrip("\n") + "\n\n" + "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
