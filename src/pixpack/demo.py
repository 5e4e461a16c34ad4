"""The main job end to end on data made locally: ``python -m pixpack.demo``.

1. make an ImageFolder of real-photo crops (about 500x375 JPEGs; no downloads),
2. pack it (all cores; raw pixels downscaled to ``--max-side`` by default),
3. reopen the pack and train-style iterate it with random augmentation
   (RandomResizedCrop + flip + Normalize to float32 NCHW batches),
4. print the throughput next to torchvision ``ImageFolder`` + ``DataLoader`` on the
   same images and the same augmentation (``--no-baseline`` skips it).

Without torch (``pip install pixpack`` alone) the loader yields NumPy batches and the
torchvision comparison is skipped with a one-line hint.

Idempotent: the photos and the pack are reused when they are already there.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

__all__ = ["main"]


def _iterate(loader: object, epochs: int) -> tuple[float, float]:
    """(seconds to first batch, steady images/s over the epochs after the first batch)."""
    started = time.perf_counter()
    first = None
    images = 0
    for epoch in range(epochs):
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(epoch)
        for batch, _labels in loader:  # type: ignore[attr-defined]
            if first is None:
                first = time.perf_counter()
                continue
            images += len(batch)
    assert first is not None  # the dataset is never empty here
    return first - started, images / max(time.perf_counter() - first, 1e-9)


def _torchvision_rate(folder: Path, workers: int, batch_size: int) -> float:
    import torch
    import torchvision
    from torchvision import transforms

    transform = transforms.Compose(
        [
            transforms.RandomResizedCrop(224),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
        ]
    )
    dataset = torchvision.datasets.ImageFolder(str(folder), transform=transform)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=True, num_workers=workers, drop_last=True
    )
    return _iterate(loader, 1)[1]


def main(argv: list[str] | None = None) -> int:
    import pixpack
    from pixpack.diagnose.bench import default_output
    from pixpack.ops import Normalize, RandomHorizontalFlip, RandomResizedCrop
    from pixpack.optional import EXTRAS, available
    from pixpack.options import default_workers
    from pixpack.sample_data import make_image_folder

    parser = argparse.ArgumentParser(prog="python -m pixpack.demo", description=__doc__)
    parser.add_argument("--workdir", type=Path, default=Path(".demo"))
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--mode", choices=("raw", "jpeg"), default="raw")
    parser.add_argument("--max-side", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--no-baseline", action="store_true")
    args = parser.parse_args(argv)
    workers = default_workers()

    folder = args.workdir / "photos"
    t0 = time.perf_counter()
    make_image_folder(folder, num_classes=args.classes, per_class=args.per_class)
    print(f"[1/4] dataset: {folder} ({args.classes} classes x {args.per_class} photos) "
          f"in {time.perf_counter() - t0:.1f}s")

    out = args.workdir / f"photos-{args.mode}-{args.max_side}.pixpack"
    if not out.exists():
        summary = pixpack.pack(folder, out, mode=args.mode, max_side=args.max_side)
        print(f"[2/4] packed {summary.num_samples} images ({summary.num_skipped} skipped) "
              f"at {summary.images_per_second:.0f} img/s on {workers} cores -> {out} "
              f"({summary.bytes / 1e6:.1f} MB)")
    else:
        print(f"[2/4] reusing {out}")

    t0 = time.perf_counter()
    pack = pixpack.open(out)
    opened_ms = (time.perf_counter() - t0) * 1000
    mean, std = pack.metadata["mean"], pack.metadata["std"]
    print(f"[3/4] opened {len(pack)} samples, {len(pack.classes)} classes in {opened_ms:.1f} ms; "
          f"mean={[round(m, 3) for m in mean]} std={[round(s, 3) for s in std]}")

    loader = pixpack.Loader(
        pack,
        args.batch_size,
        pipeline=[RandomResizedCrop(224), RandomHorizontalFlip(), Normalize(mean, std)],
        seed=0,
        workers=workers,
        drop_last=True,
        output=default_output("cpu"),  # NumPy batches where torch is not installed
    )
    first, rate = _iterate(loader, args.epochs)
    images, labels = next(iter(loader))
    print(f"[4/4] pixpack.Loader: {rate:,.0f} img/s over {args.epochs} epochs "
          f"({workers} threads), first batch after {first * 1000:.0f} ms; "
          f"batch {tuple(images.shape)} {images.dtype}, labels {tuple(labels.shape)}")
    if not args.no_baseline and not (available("torch") and available("torchvision")):
        print(f"      torchvision comparison skipped: it needs torchvision "
              f"({EXTRAS['torchvision']})")
    elif not args.no_baseline:
        baseline = _torchvision_rate(folder, workers, args.batch_size)
        print(f"      torchvision ImageFolder + DataLoader(num_workers={workers}): "
              f"{baseline:,.0f} img/s  ->  pixpack is {rate / baseline:.1f}x faster")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
