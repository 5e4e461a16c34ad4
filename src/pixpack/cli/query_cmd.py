"""``pixpack query PACK [CONDITION]``: the samples matching an SQL condition, or the
rows of a full ``SELECT`` (``--sql``), as a table, CSV or JSON lines; ``pixpack split
PACK --by COLUMN --fractions ...``: named group-aware splits beside the pack."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from typing import Any

from ..errors import UsageError
from ._text import one_line

__all__ = ["add_parsers", "run_query", "run_split"]

_DEFAULT_COLUMNS = "idx, label, class, path"


def add_parsers(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "query",
        help="select samples by their metadata with SQL",
        description="Rows of the pack's 'samples' table (idx, label, class, height, width, "
        "channels, mode, dtype, nbytes, path and the source's extra columns) that match "
        "CONDITION, an SQL WHERE clause with or without the keyword, e.g. "
        "\"split = 'val' AND width > 512\"; or the rows of a whole SELECT (--sql).",
    )
    parser.add_argument("pack", metavar="PACK")
    parser.add_argument("condition", metavar="CONDITION", nargs="?", default=None)
    parser.add_argument(
        "--sql", metavar="SELECT", help="a full SELECT ... FROM samples statement instead"
    )
    parser.add_argument(
        "--columns",
        metavar="COLS",
        default=_DEFAULT_COLUMNS,
        help=f"columns to show for CONDITION (default: {_DEFAULT_COLUMNS}; * for all)",
    )
    parser.add_argument("--format", choices=("table", "csv", "json"), default="table")
    parser.add_argument(
        "--count", action="store_true", help="print only the number of matching samples"
    )
    parser.set_defaults(run=run_query)

    split = subparsers.add_parser(
        "split",
        help="make named group-aware splits (train/val/test)",
        description="Split the samples so that no value of --by (a column or SQL expression "
        "of the samples table, e.g. patient_id) lands in two splits, with the given fractions "
        "(each within one group of its target), optionally keeping the mix of --stratify "
        "(e.g. label) in every split. Deterministic from --seed. Saved beside the pack as "
        "PACK.splits.json (splits of other names are kept); listed by pixpack info; used by "
        "Loader(pack.splits[name]), bench/export --split.",
    )
    split.add_argument("pack", metavar="PACK")
    split.add_argument("--by", required=True, metavar="COLUMN")
    split.add_argument("--fractions", required=True, metavar="F,F[,F...]")
    split.add_argument("--names", metavar="N,N[,N...]", help="default: train,val[,test]")
    split.add_argument("--seed", type=int, default=0)
    split.add_argument("--stratify", metavar="COLUMN", help="e.g. label")
    split.set_defaults(run=run_split)


def run_query(args: argparse.Namespace) -> int:
    from ..metadata.sql import condition
    from ..read.open_any import open_pack

    if (args.condition is None) == (args.sql is None):
        raise UsageError("give a CONDITION or --sql SELECT (one of the two).")
    pack = open_pack(args.pack)
    if args.sql is not None:
        names, rows = pack.sql(args.sql)
    elif args.count:
        print(len(pack.query(args.condition)))
        return 0
    else:
        where = condition(args.condition)
        names, rows = pack.sql(f"SELECT {args.columns} FROM samples WHERE ({where}) ORDER BY idx")
    _print(names, rows, args.format)
    return 0


def _print(names: list[str], rows: list[tuple], form: str) -> None:
    if form == "json":
        for row in rows:
            print(json.dumps(dict(zip(names, row, strict=True)), ensure_ascii=False))
    elif form == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(names)
        writer.writerows(rows)
    else:
        text = [[_cell(v) for v in row] for row in rows]
        widths = [max([len(n), *(len(r[i]) for r in text)]) for i, n in enumerate(names)]
        print("  ".join(n.ljust(w) for n, w in zip(names, widths, strict=True)).rstrip())
        for r in text:
            print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
        print(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")


def _cell(value: Any) -> str:
    return "NULL" if value is None else one_line(value)


def run_split(args: argparse.Namespace) -> int:
    from ..metadata.splits_file import make_splits, splits_path
    from ..read.open_any import open_pack

    try:
        fractions = [float(f) for f in args.fractions.split(",")]
    except ValueError:
        message = f"--fractions must be numbers like 0.8,0.1,0.1 (got {args.fractions!r})"
        raise UsageError(message) from None
    names = args.names.split(",") if args.names else None
    pack = open_pack(args.pack)
    splits = make_splits(
        pack, args.by, fractions, seed=args.seed, stratify=args.stratify, names=names
    )
    _, groups = pack.sql(f"SELECT count(DISTINCT {args.by}) FROM samples")
    for name, subset in splits.items():
        share = len(subset) / len(pack)
        print(one_line(f"{name}: {len(subset)} samples ({share:.1%})"))
    print(one_line(f"{groups[0][0]} groups by {args.by}; saved to {splits_path(pack)}"))
    return 0
