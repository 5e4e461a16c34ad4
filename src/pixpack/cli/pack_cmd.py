"""``pixpack pack SRC OUT``: every PackOptions field is a flag of the same name."""

from __future__ import annotations

import argparse
from typing import Any

from ..options import PackOptions
from ._dataclass_args import add_dataclass_flags, dataclass_from_args

__all__ = ["add_parsers", "run_pack"]


def add_parsers(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "pack",
        help="pack an image dataset into one file",
        description=(
            "Pack SRC (an ImageFolder directory root/<class>/<image>, a .csv/.tsv file of "
            "path,label rows or with a header naming its columns, or a .jsonl file of JSON "
            "objects) into the pack file OUT. The file appears only when complete."
        ),
    )
    parser.add_argument("source", metavar="SRC", help="ImageFolder directory or .csv/.tsv/.jsonl file")
    parser.add_argument("out", metavar="OUT", help="pack file to write, e.g. train.pixpack")
    add_dataclass_flags(parser, PackOptions)
    parser.set_defaults(run=run_pack)


def _size(nbytes: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if nbytes < 1000 or unit == "GB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1000
    return f"{nbytes:.1f} TB"  # pragma: no cover


def run_pack(args: argparse.Namespace) -> int:
    from ..write.packer import pack

    options = dataclass_from_args(PackOptions, args)
    summary = pack(args.source, args.out, options)
    print(
        f"packed {summary.num_samples} images into {summary.path} ({_size(summary.bytes)}, "
        f"{summary.seconds:.1f} s, {summary.images_per_second:.0f} images/s)"
    )
    if summary.num_skipped:
        print(
            f"skipped {summary.num_skipped} unreadable image(s); "
            f"list them with `pixpack info {summary.path}`"
        )
    return 0
