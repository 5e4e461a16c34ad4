"""SQL over a pack's samples, with the standard library's ``sqlite3``.

One table, ``samples``: ``idx`` (the sample index, the primary key), the index's
``label``, ``class`` (the label's name), ``height``, ``width``, ``channels``, ``mode``
(``'raw'``/``'jpeg'``), ``dtype`` (``'uint8'``/``'uint16'``), ``nbytes``, then the
metadata columns (``path`` first). Booleans are 0/1; missing values are NULL.

Where the table comes from, measured on 1,000,000 rows x 8 columns (2-core Xeon):
inserting the rows into an in-memory database takes 2.3 s, while handing SQLite a
stored image of the same database (``sqlite3.Connection.deserialize``, Python 3.11+)
takes 38 ms. So the packer stores that image as a section of the pack, and a query
deserialises it once per open pack and process; packs without it (older packs,
Python 3.10) build the table from the columns on first use. The pixels never go
through SQLite.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from ..errors import UsageError

__all__ = [
    "INDEX_COLUMNS",
    "PyValues",
    "condition",
    "build_database",
    "serialize",
    "deserialize",
    "where_indices",
    "select",
]

# (name, SQL type) of the columns every table has, in order.
INDEX_COLUMNS = (
    ("idx", "INTEGER PRIMARY KEY"), ("label", "INTEGER"), ("class", "TEXT"),
    ("height", "INTEGER"), ("width", "INTEGER"), ("channels", "INTEGER"), ("mode", "TEXT"),
    ("dtype", "TEXT"), ("nbytes", "INTEGER"),
)  # fmt: skip
_SQL_TYPES = {"int": "INTEGER", "float": "REAL", "bool": "INTEGER", "string": "TEXT"}
_BATCH = 50_000  # rows per executemany: bounded memory for the Python row tuples
_MAX_INDEXES = 16


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def build_database(
    index_columns: Mapping[str, np.ndarray],
    classes: list[str],
    metadata_columns: Iterable[tuple[str, str, Any]],
) -> sqlite3.Connection:
    """An in-memory database holding the ``samples`` table.

    ``index_columns``: numpy arrays named as in the index (``label``, ``height``, ...,
    ``mode`` and ``dtype`` as names already); ``metadata_columns``: ``(name, type,
    values)`` with ``values`` supporting ``len`` and slicing into Python lists (with
    None for missing)."""
    meta = list(metadata_columns)
    con = sqlite3.connect(":memory:", check_same_thread=False)
    decl = [f"{_quote(n)} {t}" for n, t in INDEX_COLUMNS]
    decl += [f"{_quote(name)} {_SQL_TYPES[kind]}" for name, kind, _ in meta]
    con.execute(f"CREATE TABLE samples ({', '.join(decl)})")
    n = len(index_columns["label"])
    names = np.array([*map(_text, classes), None], dtype=object)
    holes = ", ".join("?" * (len(INDEX_COLUMNS) + len(meta)))
    insert = f"INSERT INTO samples VALUES ({holes})"
    for start in range(0, n, _BATCH):
        stop = min(start + _BATCH, n)
        labels = index_columns["label"][start:stop]
        named = names[np.where((labels >= 0) & (labels < len(classes)), labels, len(classes))]
        cols = [
            range(start, stop),
            labels.tolist(),
            named.tolist(),
            *(index_columns[k][start:stop].tolist() for k in ("height", "width", "channels")),
            *(index_columns[k][start:stop] for k in ("mode", "dtype")),
            index_columns["nbytes"][start:stop].tolist(),
            *(_sql_values(values[start:stop]) for _, _, values in meta),
        ]
        con.executemany(insert, zip(*cols, strict=True))
    # Indexes on label and the extra columns (not path: it is matched with LIKE, which
    # an index does not serve): a selective query reads a few pages instead of scanning
    # every row (1M rows: a 1% query in ~3 ms instead of ~85 ms; the image grows ~30%).
    for name in ["label", *(n for n, _, _ in meta if n != "path")][:_MAX_INDEXES]:
        con.execute(f"CREATE INDEX {_quote('samples_' + name)} ON samples ({_quote(name)})")
    con.execute("ANALYZE")  # statistics, so the planner picks the selective index
    con.commit()
    return con


def _sql_values(values: Any) -> list[Any]:
    out = values.tolist() if hasattr(values, "tolist") else list(values)
    return [int(v) if isinstance(v, bool) else _text(v) if isinstance(v, str) else v for v in out]


def _text(v: str) -> str:
    """SQLite stores UTF-8: a file name that is not (Linux hands its bytes over as lone
    surrogates) shows its bad bytes as ``\\xNN`` in the table."""
    if v.isascii():
        return v
    try:
        v.encode("utf-8")
        return v
    except UnicodeEncodeError:
        return v.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


class PyValues:
    """A column as SQL values, sliced lazily: numpy values (with a ``valid`` mask) or a
    string column whose slices are lists already; missing values are None."""

    def __init__(self, values: Any, valid: np.ndarray | None, kind: str) -> None:
        self.values, self.valid, self.kind = values, valid, kind

    def __len__(self) -> int:
        return len(self.values)

    def __getitem__(self, s: slice) -> list[Any]:
        part = self.values[s]
        out = part.tolist() if isinstance(part, np.ndarray) else list(part)
        if self.valid is not None:
            out = [v if ok else None for v, ok in zip(out, self.valid[s].tolist(), strict=True)]
        return out


def serialize(con: sqlite3.Connection) -> bytes | None:
    """The database as bytes, or None where sqlite3 cannot (Python < 3.11)."""
    if not hasattr(con, "serialize"):
        return None
    return con.serialize()


def deserialize(data: Any) -> sqlite3.Connection | None:
    """A read-only-in-spirit in-memory copy of a stored database, or None (Python < 3.11)."""
    con = sqlite3.connect(":memory:", check_same_thread=False)
    if not hasattr(con, "deserialize"):
        con.close()
        return None
    con.deserialize(data)  # a view of the map: SQLite copies it once, no bytes() copy
    con.execute("PRAGMA trusted_schema = OFF")  # a stored schema runs no functions
    return con


def condition(where: str) -> str:
    """A WHERE clause without its keyword; a UsageError when empty."""
    clause = where.strip()
    if clause[:6].upper() == "WHERE " or clause.upper() == "WHERE":
        clause = clause[5:].strip()
    if not clause:
        raise UsageError('the query is empty; give a condition such as "label = 3".')
    return clause


def where_indices(con: sqlite3.Connection, where: str, path: Any) -> np.ndarray:
    """Sample indices (ascending) of the rows matching a WHERE clause (with or without
    the keyword)."""
    clause = condition(where)
    cursor = _run(con, f"SELECT idx FROM samples WHERE ({clause}) ORDER BY idx", path, where)
    return np.fromiter((row[0] for row in cursor), dtype=np.int64)


def select(con: sqlite3.Connection, sql: str, path: Any) -> tuple[list[str], list[tuple]]:
    """Column names and rows of a full ``SELECT`` over ``samples``; only reading
    statements run (the table is the pack's, not a scratch database)."""
    statement = sql.strip().rstrip(";")
    head = statement.split(None, 1)[0].upper() if statement else ""
    if head not in ("SELECT", "WITH", "VALUES") or not sqlite3.complete_statement(statement + ";"):
        raise UsageError(f"not a single SELECT statement: {sql!r}; pack queries only read.")
    cursor = _run(con, statement, path, sql)
    names = [d[0] for d in cursor.description or ()]
    return names, cursor.fetchall()


def _run(con: sqlite3.Connection, statement: str, path: Any, shown: str) -> sqlite3.Cursor:
    try:
        return con.execute(statement)
    except sqlite3.Warning as exc:  # e.g. more than one statement
        raise UsageError(f"{path}: query {shown!r}: {exc}; give one statement.") from None
    except sqlite3.Error as exc:
        try:
            columns = ", ".join(d[1] for d in con.execute("PRAGMA table_info(samples)"))
        except sqlite3.Error:
            columns = "?"
        raise UsageError(
            f"{path}: query {shown!r} failed: {exc}; table 'samples' has columns {columns}."
        ) from None
