"""``pixpack bench | doctor``: measure a pack + pipeline here, and name the bottleneck."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_parsers", "run_bench", "run_doctor"]

_PIPELINE_HELP = (
    "a preset (train: RandomResizedCrop(224),RandomHorizontalFlip(),Normalize(pack); "
    "eval: Resize(256),CenterCrop(224),Normalize(pack)) or comma-separated op calls, e.g. "
    "'RandomResizedCrop(160),ColorJitter(0.4,0.4,0.4),Normalize(imagenet)' (default: train)"
)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pack", metavar="PACK")
    parser.add_argument("--pipeline", default="train", help=_PIPELINE_HELP)
    parser.add_argument("--batch-size", type=int, default=64, help="samples per batch")
    parser.add_argument(
        "--workers", type=int, default=None, help="loader threads (default: all usable cores)"
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:k]")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def add_parsers(subparsers: Any) -> None:
    bench = subparsers.add_parser(
        "bench",
        help="measure loader throughput on a pack",
        description="Iterate a Loader over PACK with a pipeline and report images/s, MB/s, "
        "batch latency p50/p99 and time to first batch (warm-up excluded from the rate).",
    )
    _common(bench)
    bench.add_argument(
        "--seconds",
        type=float,
        default=None,
        help="measure for this long (default 10 unless --batches)",
    )
    bench.add_argument("--batches", type=int, default=None, help="measure this many batches")
    bench.add_argument(
        "--read-ahead",
        type=int,
        default=8,
        metavar="BATCHES",
        help="batches read from disk ahead of decoding (0: off; default 8)",
    )
    bench.add_argument(
        "--where",
        metavar="CONDITION",
        help="only the samples matching this SQL condition (pixpack query)",
    )
    bench.add_argument("--split", metavar="NAME", help="only this split (pixpack split)")
    bench.add_argument(
        "--block-shuffle",
        type=int,
        default=0,
        metavar="SAMPLES",
        help="shuffle blocks of this many neighbouring samples (large reads "
        "for slow disks; default 0: full shuffle)",
    )
    bench.set_defaults(run=run_bench)

    doctor = subparsers.add_parser(
        "doctor",
        help="time each loading stage and name the bottleneck",
        description="Time storage (cold and warm), decode, every op, the batch conversion "
        "and the host-to-device copy alone on a sample of PACK, then the whole Loader; name "
        "the bottleneck and print advice.",
    )
    _common(doctor)
    doctor.add_argument(
        "--step-time",
        type=float,
        default=None,
        metavar="SECONDS",
        help="your training step time per batch: says whether the loader keeps up",
    )
    doctor.add_argument(
        "--samples", type=int, default=256, help="images the stage timings use (default 256)"
    )
    doctor.add_argument(
        "--seconds", type=float, default=3.0, help="length of the end-to-end Loader run (default 3)"
    )
    doctor.set_defaults(run=run_doctor)


def subset_of(path: str, where: str | None, split: str | None) -> Any:
    """The pack at ``path``, or its samples matching ``where`` or of split ``split``."""
    if where is None and split is None:
        return path
    from ..errors import UsageError
    from ..read.open_any import open_pack

    pack = open_pack(path)
    if where is not None and split is not None:
        raise UsageError("give --where or --split, not both.")
    if where is not None:
        return pack.query(where)
    splits = pack.splits
    if split not in splits:
        known = ", ".join(splits) or "none (make them with pixpack split)"
        raise UsageError(f"{path} has no split {split!r}; its splits: {known}.")
    return splits[split]


def run_bench(args: argparse.Namespace) -> int:
    from ..diagnose import bench, format_bench, to_json

    result = bench(
        subset_of(args.pack, args.where, args.split),
        args.pipeline,
        batch_size=args.batch_size,
        workers=args.workers,
        batches=args.batches,
        seconds=args.seconds,
        device=args.device,
        read_ahead=args.read_ahead,
        block_shuffle=args.block_shuffle,
    )
    print(to_json(result) if args.json else format_bench(result))
    return 0


def run_doctor(args: argparse.Namespace) -> int:
    from ..diagnose import doctor, format_diagnosis, to_json

    diagnosis = doctor(
        args.pack,
        args.pipeline,
        step_time=args.step_time,
        device=args.device,
        batch_size=args.batch_size,
        workers=args.workers,
        samples=args.samples,
        bench_seconds=args.seconds,
    )
    print(to_json(diagnosis) if args.json else format_diagnosis(diagnosis))
    return 0
