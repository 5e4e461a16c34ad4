"""The ``pixpack`` command line: a thin layer over the Python API.

Each command group lives in its own module exposing ``add_parsers(subparsers)``;
every parser sets ``run=<function(args) -> exit code>``. To add a group, write
``cli/<name>_cmd.py`` and list it in ``COMMAND_MODULES`` below (one line).

Exit codes: 0 success, 1 an expected error (``error: <one line>`` on stderr, no
traceback) or a failed ``verify``, 2 a usage error, 130 interrupted (Ctrl-C), 141 the
reader of stdout went away (``| head``; nothing printed).
"""

from __future__ import annotations

import argparse
import difflib
import logging
import os
import sys
import warnings
from collections.abc import Sequence
from typing import Any

from .. import __version__
from .. import format as fmt
from ..errors import OutputExistsError, PixpackError, UsageError
from . import cache_cmd, diagnose_cmd, inspect_cmd, merge_cmd, pack_cmd, query_cmd
from ._text import one_line, robust_streams

__all__ = ["COMMAND_MODULES", "build_parser", "main"]

COMMAND_MODULES: tuple[Any, ...] = (
    pack_cmd,
    merge_cmd,
    inspect_cmd,
    query_cmd,
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
    args, extras = parser.parse_known_args(argv)  # usage errors: message + exit 2
    if extras:
        _unrecognized(parser, args.command, extras)
    logging.basicConfig(format="%(levelname)s: %(message)s", level=logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            return int(args.run(args) or 0)
    except UsageError as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 1 if isinstance(exc, OutputExistsError) else 2
    except PixpackError as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # the reader left (`| head`): not an error of ours
        _silence_stdout()
        return 141
    except OSError as exc:
        print(f"error: {one_line(_os_error(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130


def _unrecognized(parser: argparse.ArgumentParser, command: str, extras: list[str]) -> None:
    """The command's own usage and a suggestion (``--max_side`` -> ``--max-side``)."""
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    sub = subparsers.choices[command]
    flags = [o for a in sub._actions for o in a.option_strings if o.startswith("--")]
    hint = ""
    for extra in extras:
        if extra.startswith("-"):
            name = extra.split("=", 1)[0]
            dashed = "--" + name.lstrip("-").replace("_", "-")
            close = [dashed] if dashed in flags else difflib.get_close_matches(name, flags, 1)
            if close:
                hint = f"; did you mean {close[0]}?"
                break
    sub.error(f"unrecognized arguments: {' '.join(extras)}{hint}")


def _os_error(exc: OSError) -> str:
    """``What happened: PATH; what to do``."""
    message = f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")
    if isinstance(exc, FileNotFoundError):
        return f"{message}; check the path (a pack is written by pixpack pack SRC OUT)"
    if isinstance(exc, PermissionError):
        return f"{message}; check its permissions or choose another path"
    if isinstance(exc, IsADirectoryError):
        return f"{message}; give the path of a file"
    return message


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no real stdout: nothing left to flush
        pass


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
