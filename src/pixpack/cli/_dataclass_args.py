"""Argparse flags generated from a frozen options dataclass: one flag per field.

The CLI and the Python API cannot drift: a new ``PackOptions`` (or ``LoaderOptions``)
field becomes a flag with its type, choices and the help text of the class docstring.
Unset flags are left out, so the dataclass's own defaults apply.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import types
import typing
from typing import Any, Literal

__all__ = ["add_dataclass_flags", "dataclass_from_args", "field_help"]


def field_help(cls: type) -> dict[str, str]:
    """``name: text`` entries (with indented continuations) from ``cls.__doc__``."""
    found: dict[str, str] = {}
    current: list[str] | None = None
    for line in (cls.__doc__ or "").splitlines():
        match = re.match(r"^\s{4}([a-z_]+(?:, [a-z_]+)*): (.*)$", line)
        if match:
            current = [match.group(2).strip()]
            for name in match.group(1).split(", "):
                found[name] = current  # type: ignore[assignment]
        elif current is not None and line.startswith(" " * 8):
            current.append(line.strip())
        else:
            current = None
    fields = {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()
    return {name: _cli_words(" ".join(parts), fields) for name, parts in found.items()}  # type: ignore[arg-type]


def _cli_words(text: str, fields: set[str]) -> str:
    """Docstring Python into command-line words: ``mode="jpeg"`` -> --mode jpeg,
    ``quality`` -> --quality, ``"raw"`` -> raw, ``None`` keeps -> by default keeps."""

    def flag(name: str) -> str:
        return "--" + name.replace("_", "-")

    text = re.sub(
        r'``(\w+)="?([\w.]+)"?``',
        lambda m: f"{flag(m[1])} {m[2]}" if m[1] in fields else m[0],
        text,
    )
    text = re.sub(r"``None`` (\w+)", r"by default \1", text)
    text = re.sub(r'``"(\w+)"``', r"\1", text)
    text = re.sub(r"``(\w+)``", lambda m: flag(m[1]) if m[1] in fields else m[1], text)
    return text.replace("``", "")


def _flag_kwargs(hint: Any) -> dict[str, Any]:
    if hint is bool:
        return {"action": "store_true"}
    origin = typing.get_origin(hint)
    if origin is Literal:
        return {"choices": list(typing.get_args(hint))}
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return _flag_kwargs(args[0])
    if origin is tuple:  # a list of names: --classes a,b,c
        return {"type": _comma_list, "metavar": "A,B,..."}
    if hint in (int, float, str):
        return {"type": hint, "metavar": hint.__name__.upper() if hint is not str else "TEXT"}
    return {"type": str}


def _comma_list(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(","))


def add_dataclass_flags(
    parser: argparse.ArgumentParser, cls: type, *, exclude: tuple[str, ...] = ()
) -> None:
    """Add ``--field-name`` for every field of dataclass ``cls``."""
    hints = typing.get_type_hints(cls)
    helps = field_help(cls)
    for f in dataclasses.fields(cls):
        if f.name in exclude:
            continue
        kwargs = _flag_kwargs(hints[f.name])
        default = f.default if f.default is not dataclasses.MISSING else None
        text = helps.get(f.name, "")
        if default not in (None, False):
            text += f" (default: {default})"
        parser.add_argument(
            "--" + f.name.replace("_", "-"),
            dest=f.name,
            default=argparse.SUPPRESS,
            help=text or None,
            **kwargs,
        )


def dataclass_from_args(cls: type, args: argparse.Namespace) -> Any:
    """Build ``cls`` from the flags that were given (validation in ``__post_init__``)."""
    names = [f.name for f in dataclasses.fields(cls)]
    given = {name: getattr(args, name) for name in names if hasattr(args, name)}
    return cls(**given)
