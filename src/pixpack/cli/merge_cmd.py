"""``pixpack merge OUT [INPUT ...]``: one sharded pack from packs made apart."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_parsers", "run_merge"]


def add_parsers(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "merge",
        help="join packs or shards made separately into one sharded pack",
        description=(
            "Write OUT/shards.json listing the packs INPUT (pack files, sharded packs, or "
            "directories of packs, taken by name), in order, so that pixpack.open(OUT) "
            "reads them as one dataset. Without INPUT: the packs inside OUT (the shards "
            "that `pixpack pack --shard-index I --num-shards N` jobs wrote there). "
            "Refuses packs whose classes, content options or metadata columns differ, "
            "and shards of one run that leave source items out."
        ),
    )
    parser.add_argument("out", metavar="OUT", help="the sharded pack's directory")
    parser.add_argument("inputs", metavar="INPUT", nargs="*", help="packs or directories")
    parser.set_defaults(run=run_merge)


def run_merge(args: argparse.Namespace) -> int:
    from ..read.open_any import open_pack
    from ..write.merge import merge

    manifest = merge(args.out, args.inputs)
    with open_pack(manifest.parent) as pack:
        print(f"merged {pack.num_shards} packs, {len(pack)} samples, into {manifest}")
    return 0
