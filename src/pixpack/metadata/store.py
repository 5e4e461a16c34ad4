"""What the packer writes for metadata: the columns' sections and their SQLite image.

Section names are ``col/<i>/values``, ``col/<i>/offsets`` (strings) and
``col/<i>/valid`` (when values are missing), ``<i>`` being the column's position, so a
column name never has to be escaped; ``sqlite`` is the database image
(:mod:`.sql`). ``metadata["columns"]`` lists ``{"name", "type", "sections"}``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import format as fmt
from .encode import ColumnData
from .sql import PyValues, build_database, serialize
from .view import StringColumn

__all__ = ["column_sections", "index_table_columns"]


def index_table_columns(entries: np.ndarray) -> dict[str, np.ndarray]:
    """The index's columns as the SQL table shows them (mode and dtype by name)."""
    modes = np.array([fmt.MODE_NAMES.get(c, f"mode {c}") for c in range(256)], dtype=object)
    dtypes = np.array(
        [str(fmt.DTYPE_FROM_CODE.get(c, f"dtype {c}")) for c in range(256)], dtype=object
    )
    return {
        "label": np.asarray(entries["label"], dtype=np.int64),
        "height": np.asarray(entries["height"]),
        "width": np.asarray(entries["width"]),
        "channels": np.asarray(entries["channels"]),
        "mode": modes[np.asarray(entries["mode"])].tolist(),
        "dtype": dtypes[np.asarray(entries["dtype"])].tolist(),
        "nbytes": np.asarray(entries["nbytes"]),
    }


def column_sections(
    columns: list[ColumnData], entries: np.ndarray, classes: list[str], *, database: bool = True
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """``(sections, described)``: the arrays to write, and ``metadata["columns"]``."""
    sections: dict[str, Any] = {}
    described = []
    for i, col in enumerate(columns):
        refs = {"values": f"col/{i}/values"}
        sections[refs["values"]] = col.values
        if col.offsets is not None:
            refs["offsets"] = f"col/{i}/offsets"
            sections[refs["offsets"]] = col.offsets
        if col.valid is not None:
            refs["valid"] = f"col/{i}/valid"
            sections[refs["valid"]] = col.valid
        described.append({"name": col.name, "type": col.type, "sections": refs})
    if database:
        con = build_database(
            index_table_columns(entries), classes, [(c.name, c.type, _values(c)) for c in columns]
        )
        image = serialize(con)
        con.close()
        if image is not None:
            sections["sqlite"] = np.frombuffer(image, np.uint8)
    return sections, described


def _values(col: ColumnData) -> PyValues:
    if col.offsets is not None:
        return PyValues(StringColumn(col.values, col.offsets, col.valid), None, col.type)
    return PyValues(col.values, col.valid, col.type)
