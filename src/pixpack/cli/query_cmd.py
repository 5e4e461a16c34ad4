"""``pixpack query PACK [CONDITION]``: the samples matching an SQL condition, or the
rows of a full ``SELECT`` (``--sql``), as a table, CSV or JSON lines."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from typing import Any

from ..errors import UsageError
from ._text import one_line

__all__ = ["add_parsers", "run_query"]

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


def run_query(args: argparse.Namespace) -> int:
    from ..metadata.sql import condition
    from ..read.pack import open_pack

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
