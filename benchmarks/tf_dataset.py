"""pixpack.tf.dataset against the NumPy Loader it wraps: img/s, same pack and pipeline.

Builds ``benchmarks/data/tf/`` (gitignored) from the bundled photos: ``--images`` JPEG
crops packed with the shorter side 256, read with RandomResizedCrop(224) + flip +
Normalize to float32 NHWC batches of 64. Rows, interleaved over ``--rounds``:

- ``numpy``: ``for x, y in Loader(..., output="numpy")``
- ``tf``: ``for x, y in pixpack.tf.dataset(...)`` in eager mode, per ``tf_prefetch``
- ``tf+step``: the same feeding a ``tf.function`` step (a reduce over the batch and
  a small conv), where tf.data prefetch could overlap input with compute

Usage: ``python benchmarks/tf_dataset.py [--images 512] [--rounds 3] [--epochs 2]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import pixpack
import pixpack.tf
from pixpack import ops, sample_data

HERE = Path(__file__).resolve().parent
PIPELINE = [
    ops.RandomResizedCrop(224),
    ops.RandomHorizontalFlip(),
    ops.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
]


def build(images: int) -> Path:
    root = HERE / "data" / "tf"
    out = root / f"photos-{images}.pixpack"
    if not out.exists():
        folder = root / f"photos-{images}"
        if not folder.exists():
            sample_data.make_image_folder(folder, num_classes=8, per_class=images // 8, seed=1)
        pixpack.pack(folder, out, mode="jpeg", max_side=256, quiet=True)
    return out


def run(pack: Path, row: str, epochs: int, workers: int | None) -> float:
    loader = pixpack.Loader(
        pack, 64, pipeline=PIPELINE, output="numpy", layout="NHWC", workers=workers
    )
    if row == "numpy":
        batches = loader
    else:
        import tensorflow as tf

        kind, _, prefetch = row.partition(":")
        batches = pixpack.tf.dataset(loader, tf_prefetch=int(prefetch))
        if kind == "tf+step":
            kernel = tf.random.stateless_normal((3, 3, 3, 16), seed=(1, 2))

            @tf.function
            def step(x: tf.Tensor) -> tf.Tensor:
                return tf.reduce_mean(tf.nn.conv2d(x, kernel, 2, "SAME"))

            batches = batches.map(lambda x, y: (step(x), y))
    for _ in batches:  # warm-up epoch: page cache, threads, tracing
        pass
    start, n = time.perf_counter(), 0
    for _ in range(epochs):
        for _, y in batches:
            n += len(y)
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args()
    pack = build(args.images)
    rows = ["numpy", "tf:0", "tf:2", "tf:-1", "tf+step:0", "tf+step:2", "tf+step:-1"]
    results: dict[str, list[float]] = {r: [] for r in rows}
    for _ in range(args.rounds):
        for row in rows:
            results[row].append(run(pack, row, args.epochs, args.workers))
    print(f"{args.images} images, batch 64, RandomResizedCrop(224)+flip+Normalize, float32 NHWC")
    print("row            img/s (median)  range")
    for row, values in results.items():
        print(f"{row:<14} {statistics.median(values):>12.0f}  {min(values):.0f}-{max(values):.0f}")


if __name__ == "__main__":
    main()
