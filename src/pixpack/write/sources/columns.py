"""Per-sample metadata as typed columns: one Python list per column, not a dict per row.

Every column has one type: ``int``, ``float``, ``bool`` or ``str``; a missing value is
``None``. CSV cells are text, so their type is inferred over the whole column
(:func:`typed_csv_column`); JSON values and Python dicts carry their own types, checked
per column as rows arrive (:class:`ColumnBuilder`).
"""

from __future__ import annotations

import re
from typing import Any

from ...errors import SourceFormatError

__all__ = ["ColumnBuilder", "MetadataColumns", "typed_csv_column"]

Value = int | float | bool | str | None

# ASCII digits only, no leading zeros: "00123" is an identifier, kept as text.
_INT = re.compile(r"[+-]?(?:0|[1-9][0-9]*)")
_FLOAT = re.compile(
    r"[+-]?(?:(?:0|[1-9][0-9]*)(?:\.[0-9]*)?|\.[0-9]+)(?:e[+-]?[0-9]+)?|[+-]?(?:nan|inf|infinity)",
    re.I,
)
_BOOLS = {"true": True, "false": False}
_INT64 = (-(2**63), 2**63 - 1)


class MetadataColumns:
    """Column names in file order and one list of values per column."""

    __slots__ = ("names", "values")

    def __init__(self, names: list[str], values: list[list[Value]]) -> None:
        self.names = names
        self.values = values

    @classmethod
    def empty(cls) -> MetadataColumns:
        return cls([], [])

    def row(self, i: int) -> dict[str, Value] | None:
        if not self.names:
            return None
        return {name: column[i] for name, column in zip(self.names, self.values, strict=True)}


def typed_csv_column(cells: list[str]) -> list[Value]:
    """``cells`` (stripped text, ``""`` missing) as ints, floats, bools or strings.

    A column is int when every present cell is a decimal integer without leading
    zeros that fits 64 bits (larger ones make a text column); else float when every
    cell is a number (``nan``/``inf`` included; no leading zeros either: ``00123`` is
    an identifier); else bool when every cell is ``true``/``false`` (any case); else
    text.
    """
    present = [c for c in cells if c]
    if all(_INT.fullmatch(c) for c in present):
        if all(_INT64[0] <= int(c) <= _INT64[1] for c in present if len(c) > 18):
            return [int(c) if c else None for c in cells]
        return [c if c else None for c in cells]  # beyond 64 bits: identifiers
    if all(_FLOAT.fullmatch(c) for c in present):
        return [float(c) if c else None for c in cells]
    if all(c.lower() in _BOOLS for c in present):
        return [_BOOLS[c.lower()] if c else None for c in cells]
    return [c if c else None for c in cells]


_KINDS = {bool: "bool", int: "int", float: "float", str: "str"}


class ColumnBuilder:
    """Columns from rows of typed values (JSON objects, dicts a Python dataset returns).

    Columns appear in the order their keys are first seen; a row without a key gets
    ``None``. An int column that meets a float becomes float; any other mix of types,
    a nested value (list, dict) or an integer beyond 64 bits is a
    :class:`SourceFormatError` naming ``where`` and the key.
    """

    def __init__(self) -> None:
        self._columns: dict[str, list[Value]] = {}
        self._kinds: dict[str, str] = {}
        self._rows = 0

    def add(self, values: dict[Any, Any], where: str) -> None:
        for key, value in values.items():
            if not isinstance(key, str):
                raise SourceFormatError(
                    f"{where}: metadata key {key!r} is not a string — name columns with strings."
                )
            column = self._columns.get(key)
            if column is None:
                column = self._columns[key] = [None] * self._rows
            column.append(self._checked(key, _scalar(value), where))
        self._rows += 1
        for column in self._columns.values():
            if len(column) < self._rows:
                column.append(None)

    def _checked(self, key: str, value: Any, where: str) -> Value:
        if value is None:
            return None
        kind = _KINDS.get(type(value))
        if kind is None:
            what = "a nested object" if isinstance(value, dict) else f"a {type(value).__name__}"
            raise SourceFormatError(
                f"{where}: key {key!r} holds {what} — metadata values must be numbers, "
                "booleans, strings or null; flatten it into keys of their own or store it "
                "as a string."
            )
        if kind == "int" and not _INT64[0] <= value <= _INT64[1]:
            raise SourceFormatError(
                f"{where}: key {key!r} holds {value}, beyond a 64-bit integer — store it as "
                "a string."
            )
        known = self._kinds.setdefault(key, kind)
        if known == kind:
            return value
        if {known, kind} == {"int", "float"}:
            if known == "int":  # promote what came before
                self._kinds[key] = "float"
                column = self._columns[key]
                column[:] = [None if v is None else float(v) for v in column]
            return float(value)
        raise SourceFormatError(
            f"{where}: key {key!r} holds a {kind} where earlier rows hold a {known} — use "
            "one type per key (null for a missing value)."
        )

    def build(self) -> MetadataColumns:
        names = list(self._columns)
        return MetadataColumns(names, [self._columns[n] for n in names])


def _scalar(value: Any) -> Any:
    """numpy scalars (``np.int64(3)``) as the Python scalars they hold."""
    item = getattr(value, "item", None)
    if item is not None and getattr(value, "shape", None) == ():
        value = item()
    return value
