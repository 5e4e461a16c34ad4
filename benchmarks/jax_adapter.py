"""pixpack.jax against the NumPy Loader it wraps: what placing batches on JAX devices costs.

    python benchmarks/jax_adapter.py [--images 1024] [--size 160] [--rounds 5] [--devices 2]

Same pack, pipeline (RandomResizedCrop + flip + Normalize), seed and workers for every
configuration; the configurations run round-robin and the median of the rounds is
reported, with the median of each round's ratio to the NumPy Loader (a shared machine's
load changes within a minute). A JAX configuration waits
for each batch to be on its devices (``block_until_ready``), so its rate includes the
copy. CPU devices: ``--devices N`` sets XLA_FLAGS before JAX starts.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=1024)
    p.add_argument("--size", type=int, default=160)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--epochs", type=int, default=3, help="timed epochs per round")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--devices", type=int, default=2, help="CPU devices for the sharded case")
    args = p.parse_args()
    os.environ.setdefault("XLA_FLAGS", f"--xla_force_host_platform_device_count={args.devices}")

    import jax
    import numpy as np
    from jax.sharding import Mesh, NamedSharding
    from jax.sharding import PartitionSpec as P

    import pixpack
    import pixpack.jax as pj
    from pixpack import ops, sample_data

    tmp = Path(tempfile.mkdtemp(prefix="pixpack-jax-bench-"))
    per_class = max(1, args.images // 4)
    folder = sample_data.make_image_folder(tmp / "src", num_classes=4, per_class=per_class, seed=1)
    pack = tmp / "bench.pixpack"
    pixpack.pack(folder, pack, mode="jpeg", max_side=256, quiet=True)
    pipeline = [
        ops.RandomResizedCrop(args.size),
        ops.RandomHorizontalFlip(),
        ops.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    ]
    common = {"pipeline": pipeline, "seed": 0, "workers": args.workers, "layout": "NHWC"}
    mesh = Mesh(np.array(jax.devices()), ("data",))
    configs = {
        "numpy Loader (no device)": pixpack.Loader(pack, args.batch_size, output="numpy", **common),
        "pixpack.jax, default device": pj.loader(pack, args.batch_size, **common),
        f"pixpack.jax, NamedSharding over {len(mesh.devices)} CPU devices": pj.loader(
            pack, args.batch_size, sharding=NamedSharding(mesh, P("data")), **common
        ),
    }
    rates: dict[str, list[float]] = {name: [] for name in configs}
    for loader in configs.values():  # warm-up: threads, page cache, JAX's first copy
        for _ in loader:
            pass
    for _ in range(args.rounds):
        for name, loader in configs.items():
            rates[name].append(rate(loader, args.epochs))
    print(
        f"{args.images} images, RandomResizedCrop({args.size}) + flip + Normalize, "
        f"batch {args.batch_size}, float32 NHWC, median of {args.rounds} rounds:"
    )
    baseline = rates[next(iter(rates))]
    for name, values in rates.items():
        # The ratio within a round: the machine's load drifts between rounds.
        ratio = statistics.median(v / b for v, b in zip(values, baseline, strict=True))
        print(
            f"  {name:48s} {statistics.median(values):7.0f} img/s  x{ratio:.2f}  "
            f"(rounds: {', '.join(f'{v:.0f}' for v in values)})"
        )
    print(
        f"jax {jax.__version__}, numpy {np.__version__}, Python {sys.version.split()[0]}, "
        f"{os.cpu_count()} CPUs"
    )


def rate(loader, epochs: int) -> float:
    images, start = 0, time.perf_counter()
    for _ in range(epochs):
        for x, _y in loader:
            if hasattr(x, "block_until_ready"):
                x.block_until_ready()
            images += x.shape[0]
    return images / (time.perf_counter() - start)


if __name__ == "__main__":
    main()
