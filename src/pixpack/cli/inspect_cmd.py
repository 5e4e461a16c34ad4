"""``pixpack info | verify | export``: look inside a pack, check it, write it back out."""

from __future__ import annotations

import argparse
import json
from typing import Any

from .. import format as fmt
from ._index_stats import summarize
from ._text import one_line
from .pack_cmd import _size

__all__ = ["add_parsers", "pack_info", "run_info", "run_verify", "run_export"]


def add_parsers(subparsers: Any) -> None:
    info = subparsers.add_parser(
        "info", help="summarise a pack", description="Samples, classes, storage, sizes, stats."
    )
    info.add_argument("pack", metavar="PACK")
    info.add_argument("--json", action="store_true", help="print the summary as JSON")
    info.set_defaults(run=run_info)

    verify = subparsers.add_parser(
        "verify",
        help="recompute every checksum",
        description="Check the index and every sample against their checksums and the "
        "layout. Exits 1 and names the damaged samples on any mismatch.",
    )
    verify.add_argument("pack", metavar="PACK")
    verify.set_defaults(run=run_verify)

    export = subparsers.add_parser(
        "export",
        help="write a pack back out as an ImageFolder tree",
        description="Write DIR/<class>/<index>.png (raw samples, lossless) or .jpg "
        "(JPEG samples, their stored bytes, not re-encoded).",
    )
    export.add_argument("pack", metavar="PACK")
    export.add_argument("out_dir", metavar="DIR")
    export.add_argument(
        "--where",
        metavar="CONDITION",
        help="only the samples matching this SQL condition (pixpack query)",
    )
    export.add_argument("--split", metavar="NAME", help="only this split (pixpack split)")
    export.set_defaults(run=run_export)


def _names(counts: dict[int, int], names: dict[int, str]) -> dict[str, int]:
    return {names.get(k, f"unknown({k})"): c for k, c in counts.items()}


def pack_info(path: str) -> dict[str, Any]:
    """Everything ``pixpack info`` reports, computed from the header, index and metadata."""
    from ..read.open_any import open_pack

    with open_pack(path) as pack:
        header, meta, index = pack.header, pack.metadata, pack.index
        classes = pack.classes
        counted = summarize(index, len(classes))  # in slices: memory flat in len(pack)
        counts = counted.class_counts
        info = {
            "path": str(pack.path),
            "format_version": f"{header['major']}.{header['minor']}",
            "pixpack_version": meta.get("pixpack_version"),
            "created": meta.get("created"),
            "samples": len(pack),
            "classes": [
                {"index": i, "name": name, "count": int(counts[i]) if i < len(counts) else 0}
                for i, name in enumerate(classes)
            ],
            "unlabeled": counted.unlabeled,
            "labels_out_of_range": counted.out_of_range,
            "modes": _names(counted.modes, fmt.MODE_NAMES),
            "dtypes": _names(counted.dtypes, {c: str(d) for c, d in fmt.DTYPE_FROM_CODE.items()}),
            "channels": _names(counted.channels, {c: str(c) for c in range(1, 256)}),
            "height": counted.height,
            "width": counted.width,
            "bytes": {
                "file": int(header["file_size"]),
                "samples": counted.stored,
                "index": len(pack) * int(header["entry_size"]),
                "metadata": int(header["meta_nbytes"]),
                "decoded": counted.decoded,
            },
            "mean": meta.get("mean"),
            "std": meta.get("std"),
            "skipped": meta.get("skipped") or [],
            "source": meta.get("source"),
            "options": meta.get("options"),
            "jpeg_kept_as_source": meta.get("jpeg_kept_as_source"),
            "columns": dict(pack.columns.types),
            "splits": _splits(pack),
        }
        if hasattr(pack, "num_shards"):  # a sharded pack: its manifest's version
            info["shards"] = pack.num_shards
    return info


def _splits(pack: Any) -> dict[str, int] | str:
    """Split name -> samples, or why the splits file cannot be used."""
    from ..errors import PixpackError

    try:
        return {name: len(subset) for name, subset in pack.splits.items()}
    except PixpackError as exc:
        return str(exc)


def _format_info(info: dict[str, Any]) -> str:
    b = info["bytes"]
    ratio = b["decoded"] / b["samples"] if b["samples"] else 1.0
    lines = [
        f"pack:      {info['path']}",
        f"format:    {info['format_version']} (pixpack {info['pixpack_version'] or '?'}, "
        f"created {info['created'] or '?'})",
        *(
            [f"shards:    {info['shards']} (shard manifest format {info['format_version']})"]
            if "shards" in info
            else []
        ),
        f"samples:   {info['samples']}"
        + (f" ({info['unlabeled']} unlabeled)" if info["unlabeled"] else "")
        + (
            f" ({info['labels_out_of_range']} with a label outside the class list: a damaged "
            "index? run pixpack verify)"
            if info["labels_out_of_range"]
            else ""
        ),
        "storage:   "
        + ", ".join(f"{k} {v}" for k, v in info["modes"].items())
        + (
            f" ({info['jpeg_kept_as_source']} source JPEGs kept as is)"
            if info.get("jpeg_kept_as_source")
            else ""
        ),
        "pixels:    "
        + ", ".join(f"{k} {v}" for k, v in info["dtypes"].items())
        + "; channels "
        + ", ".join(f"{k}: {v}" for k, v in info["channels"].items()),
        "size:      height {min}/{median}/{max}".format(**info["height"])
        + ", width {min}/{median}/{max} (min/median/max)".format(**info["width"]),
        f"on disk:   {_size(b['file'])} (samples {_size(b['samples'])}, index "
        f"{_size(b['index'])}, metadata {_size(b['metadata'])}); decoded "
        f"{_size(b['decoded'])}, {ratio:.1f}x",
    ]
    if info["mean"] and info["std"]:
        lines.append(
            "mean/std:  "
            + ", ".join(f"{m:.4f}" for m in info["mean"])
            + " / "
            + ", ".join(f"{s:.4f}" for s in info["std"])
        )
    if info["columns"]:
        lines.append(
            "columns:   " + ", ".join(f"{one_line(k)} ({v})" for k, v in info["columns"].items())
        )
    splits = info["splits"]
    if isinstance(splits, str):
        lines.append(f"splits:    unusable: {one_line(splits)}")
    elif splits:
        lines.append("splits:    " + ", ".join(f"{one_line(k)} {v}" for k, v in splits.items()))
    classes = info["classes"]
    lines.append(f"classes:   {len(classes)}")
    shown = classes if len(classes) <= 30 else classes[:25]
    width = max((len(c["name"]) for c in shown), default=0)
    lines += [f"  {c['index']:>5}  {one_line(c['name']):<{width}}  {c['count']}" for c in shown]
    if len(shown) < len(classes):
        lines.append(f"  ... {len(classes) - len(shown)} more (pixpack info --json lists all)")
    skipped = info["skipped"]
    lines.append(f"skipped:   {len(skipped)} unreadable file(s)")
    lines += [f"  {one_line(s.get('path'))}: {one_line(s.get('reason'))}" for s in skipped[:20]]
    if len(skipped) > 20:
        lines.append(f"  ... {len(skipped) - 20} more (pixpack info --json lists all)")
    return "\n".join(lines)


def run_info(args: argparse.Namespace) -> int:
    info = pack_info(args.pack)
    if args.json:
        print(json.dumps(info, indent=2, ensure_ascii=False))
    else:
        print(_format_info(info))
    return 0


def run_verify(args: argparse.Namespace) -> int:
    import sys

    from ..read.verify import verify

    report = verify(args.pack)
    if report.ok:
        print(report.summary())
        return 0
    problems = report.problems()
    for line in problems[:100]:
        print(line)
    if len(problems) > 100:
        print(f"... {len(problems) - 100} more")
    print(f"error: {report.summary()}", file=sys.stderr)
    return 1


def run_export(args: argparse.Namespace) -> int:
    from ..read.export import export
    from .diagnose_cmd import subset_of

    count = export(subset_of(args.pack, args.where, args.split), args.out_dir)
    print(f"exported {count} images to {args.out_dir}")
    return 0
