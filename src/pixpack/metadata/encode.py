"""Per-sample metadata columns, built once the pack's samples are known.

Every pack gets a ``path`` column (the sample's source path relative to the source's
root), and one column per extra field the source gives (CSV/JSON-lines columns, a
Python source's dict). Values come from the source by sample, at commit time, in the
main process: the workers that decode images never carry them, and a resumed pack
gets the columns of the samples an earlier run wrote too.

Types are decided per column from its values: all booleans -> ``bool``; integers ->
``int``; integers and floats -> ``float``; anything else -> ``string`` (values turned
into text); ``None`` (or NaN in a float column) is missing. Stored as numpy arrays
(strings: one UTF-8 buffer plus offsets), never as per-sample objects in the pack.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import format as fmt
from ..errors import SourceError

__all__ = ["ColumnData", "RESERVED", "build_columns"]

# Names the index already answers (and the SQL table's row number): a source column of
# one of these names is stored with a trailing underscore.
RESERVED = (
    "idx", "label", "height", "width", "channels", "mode", "dtype", "nbytes", "offset",
    "checksum", "class",
)  # fmt: skip
MAX_COLUMNS = 1024


@dataclass(frozen=True)
class ColumnData:
    """One column's type and arrays: ``values``, and ``offsets`` (strings) and ``valid``
    (when some values are missing)."""

    name: str
    type: str
    values: np.ndarray
    offsets: np.ndarray | None = None
    valid: np.ndarray | None = None


def build_columns(src: Any, source_indices: Sequence[int] | np.ndarray) -> list[ColumnData]:
    """The ``path`` column and the source's extra columns for the written samples."""
    order = [int(i) for i in source_indices]
    relpath = getattr(src, "relpath_of", None) or src.path_of
    columns = [_encode("path", [_text(relpath(i)) for i in order], force_string=True)]
    get = getattr(src, "metadata", None)
    if get is None:
        return columns
    by_column = getattr(src, "metadata_column", None)
    names: dict[str, None] = dict.fromkeys(getattr(src, "metadata_columns", lambda: [])())
    if callable(by_column):  # one list per column: no dict per sample (bounded memory)
        if len(names) > MAX_COLUMNS:
            raise SourceError(f"{len(names)} metadata columns (at most {MAX_COLUMNS})")
        for name in names:
            values = by_column(name)
            columns.append(_encode(_stored_name(name), [values[i] for i in order]))
        return columns
    rows = [get(i) or {} for i in order]
    for row in rows:  # keys that only some samples have, in first-seen order
        names.update(dict.fromkeys(row))
    if len(names) > MAX_COLUMNS:
        raise SourceError(f"{len(names)} metadata columns (at most {MAX_COLUMNS})")
    for name in names:
        columns.append(_encode(_stored_name(name), [row.get(name) for row in rows]))
    return columns


def _stored_name(name: Any) -> str:
    stored = f"{name}_" if name in RESERVED or name == "path" else str(name)
    if stored != name:
        warnings.warn(
            f"metadata column {name!r} is stored as {stored!r}: {name!r} is the index's own column",
            stacklevel=4,
        )
    return stored


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _kind(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, (bool, np.bool_)):
        return "bool"
    if isinstance(value, (int, np.integer)):
        return "int"
    if isinstance(value, (float, np.floating)):
        return "float"
    return "string"


def _encode(name: str, values: list[Any], force_string: bool = False) -> ColumnData:
    kinds = [_kind(v) for v in values]
    present = {k for k in kinds if k is not None}
    if force_string or "string" in present or ("bool" in present and len(present) > 1):
        kind = "string"
    elif present == {"int"}:
        kind = "int"
        if any(not -(2**63) <= int(v) < 2**63 for v, k in zip(values, kinds, strict=True) if k):
            kind = "string"  # beyond int64: kept exactly as text
    elif present == {"bool"}:
        kind = "bool"
    else:  # float, int and float, or nothing present
        kind = "float" if present else "string"
    missing = np.array([k is None for k in kinds], dtype=bool)
    valid = None if not missing.any() else (~missing).astype(np.uint8)
    if kind == "string":
        encoded = [b"" if k is None else _text(v).encode("utf-8", "surrogateescape")
                   for v, k in zip(values, kinds, strict=True)]  # fmt: skip
        offsets = np.zeros(len(values) + 1, dtype="<u8")
        np.cumsum([len(b) for b in encoded], out=offsets[1:])
        return ColumnData(name, kind, np.frombuffer(b"".join(encoded), np.uint8), offsets, valid)
    fill = {"int": 0, "float": math.nan, "bool": False}[kind]
    filled = [fill if k is None else v for v, k in zip(values, kinds, strict=True)]
    return ColumnData(name, kind, np.asarray(filled, dtype=fmt.COLUMN_TYPES[kind]), None, valid)
