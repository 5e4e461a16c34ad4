"""``pixpack cache list | clear | path``: what ``pixpack.cached()`` keeps, and where."""

from __future__ import annotations

import argparse
from typing import Any

from ._text import one_line
from .pack_cmd import _size

__all__ = ["add_parsers", "run_cache"]


def add_parsers(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "cache",
        help="list or clear the packs pixpack.cached() built",
        description="The packs pixpack.cached() built: list them (size, creation time, "
        "source, options), clear them all (keys being built are left), or print the "
        "directory ($XDG_CACHE_HOME/pixpack, else ~/.cache/pixpack, unless --dir).",
    )
    parser.add_argument("action", choices=("list", "clear", "path"))
    parser.add_argument("--dir", metavar="DIR", help="the cache directory (cached(cache_dir=))")
    parser.set_defaults(run=run_cache)


def _options(options: dict[str, Any]) -> str:
    shown = {k: v for k, v in options.items() if v is not None}
    return " ".join(f"{k}={v}" for k, v in sorted(shown.items())) or "-"


def run_cache(args: argparse.Namespace) -> int:
    from ..cache import clear_cache, default_cache_dir, list_cache

    directory = args.dir or str(default_cache_dir())
    if args.action == "path":
        print(directory)
    elif args.action == "list":
        entries = list_cache(directory)
        for e in entries:
            print(
                one_line(
                    f"{_size(e.nbytes):>9}  {e.created or '?':25}  {e.source}  "
                    f"[{_options(e.options)}]  {e.path.name}"
                )
            )
        total = sum(e.nbytes for e in entries)
        print(one_line(f"{len(entries)} pack(s), {_size(total)} in {directory}"))
    else:
        removed, freed, busy = clear_cache(directory)
        left = f"; left {busy} being built" if busy else ""
        print(one_line(f"removed {removed} pack(s), {_size(freed)} from {directory}{left}"))
    return 0
