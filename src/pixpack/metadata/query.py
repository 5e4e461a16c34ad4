"""A pack's ``samples`` table, made once per open pack and process, and queries on it.

The connection is deserialised from the pack's ``sqlite`` section when there is one
(tens of ms for a million rows), else built from the index and the columns (seconds
for a million rows; older packs, Python 3.10). It lives on the Pack object, is never
pickled (a DataLoader worker that queries builds its own), and answers only reading
statements: an authorizer refuses writes, ATTACH and PRAGMAs with effects.
"""

from __future__ import annotations

import sqlite3
import threading
from typing import Any

import numpy as np

from .sql import INDEX_COLUMNS, PyValues, build_database, deserialize, select, where_indices
from .store import index_table_columns

__all__ = ["connection", "query_indices", "query_rows"]

_LOCK = threading.RLock()
_READS = {
    sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION,
    getattr(sqlite3, "SQLITE_RECURSIVE", 33),
}  # fmt: skip
_PRAGMAS = {"table_info", "table_xinfo"}


def _read_only(action: int, arg1: Any, arg2: Any, db: Any, source: Any) -> int:
    if action in _READS or (action == sqlite3.SQLITE_PRAGMA and arg1 in _PRAGMAS):
        return sqlite3.SQLITE_OK
    return sqlite3.SQLITE_DENY


def connection(pack: Any) -> sqlite3.Connection:
    """The pack's table (cached on the pack)."""
    con = getattr(pack, "_sql", None)
    if con is not None:
        return con
    with _LOCK:
        con = getattr(pack, "_sql", None)
        if con is None:
            con = _open(pack)
            con.set_authorizer(_read_only)
            pack._sql = con
    return con


def _open(pack: Any) -> sqlite3.Connection:
    image = pack.section("sqlite")
    if image is not None:
        try:
            con = deserialize(image)
        except sqlite3.DatabaseError:
            con = None  # not a database: rebuilt from the columns below
        if con is not None and _as_written(con, pack):
            con.execute("PRAGMA temp_store = MEMORY")  # sorts never spill to a temp file
            return con
        if con is not None:
            con.close()
    columns = pack.columns
    meta = [
        (name, kind, PyValues(columns[name], _valid(columns, name), kind))
        for name, kind in columns.types.items()
    ]
    return build_database(index_table_columns(pack.index), pack.classes, meta)


def _as_written(con: sqlite3.Connection, pack: Any) -> bool:
    """Whether a stored database is what the packer writes: the ``samples`` table with
    the index's and the pack's columns, its ``samples_*`` indexes and statistics;
    nothing else (a crafted pack's view over an endless recursive query, a trigger).
    Anything else is ignored and the table rebuilt from the columns."""
    try:
        objects = con.execute("SELECT type, name, tbl_name FROM sqlite_master").fetchall()
        names = [row[1] for row in con.execute("PRAGMA table_info(samples)")]
    except sqlite3.DatabaseError:
        return False
    expected = [n for n, _ in INDEX_COLUMNS] + list(pack.columns.types)
    for kind, name, table in objects:
        ok = (
            (kind, name) == ("table", "samples")
            or (kind == "index" and name.startswith("samples_") and table == "samples")
            or (kind == "table" and name in ("sqlite_stat1", "sqlite_stat4"))
        )
        if not ok:
            return False
    return names == expected


def _valid(columns: Any, name: str) -> np.ndarray | None:
    if columns.types[name] == "string":
        return None  # a StringColumn gives None for missing values itself
    missing = columns.missing(name)
    return ~missing if missing.any() else None


def query_indices(pack: Any, where: str) -> np.ndarray:
    with _LOCK:  # one connection per pack: statements run one at a time
        return where_indices(connection(pack), where, pack.path)


def query_rows(pack: Any, statement: str) -> tuple[list[str], list[tuple]]:
    with _LOCK:
        return select(connection(pack), statement, pack.path)
