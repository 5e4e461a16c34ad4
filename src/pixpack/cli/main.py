"""The ``pixpack`` command line: a thin layer over the Python API.

Each command group lives in its own module exposing ``add_parsers(subparsers)``;
every parser sets ``run=<function(args) -> exit code>``. To add a group, write
``cli/<name>_cmd.py`` and list it in ``COMMAND_MODULES`` below (one line).

Exit codes: 0 success, 1 an expected error (``error: <one line>`` on stderr, no
traceback) or a failed ``verify``, 2 a usage error, 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from collections.abc import Sequence
from typing import Any

from .. import __version__
from .. import format as fmt
from ..errors import PixpackError, UsageError
from . import cache_cmd, diagnose_cmd, inspect_cmd, pack_cmd
from ._text import one_line, robust_streams

__all__ = ["COMMAND_MODULES", "build_parser", "main"]

COMMAND_MODULES: tuple[Any, ...] = (
    pack_cmd,
    inspect_cmd,
    diagnose_cmd,
    cache_cmd,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pixpack",
        description="Pack image datasets once into a memory-mapped file; train on them fast.",
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"pixpack {__version__} (pack format {fmt.FORMAT_MAJOR}.{fmt.FORMAT_MINOR})",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMAND_MODULES:
        module.add_parsers(subparsers)
    return parser


def _show_warning(message: Any, category: Any, *args: Any, **kwargs: Any) -> None:
    print(f"warning: {one_line(message)}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (the console script exits with it)."""
    parser = build_parser()
    robust_streams()  # names that are not UTF-8 print escaped, never crash the output
    args = parser.parse_args(argv)  # usage errors: message + exit 2 (argparse)
    logging.basicConfig(format="%(levelname)s: %(message)s", level=logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            return int(args.run(args) or 0)
    except UsageError as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2
    except PixpackError as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 1
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        print(f"error: {one_line(f'{exc.strerror or exc}{where}')}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
