"""A pack's metadata side: columns, sections, SQL, splits and subsets.

The implementations live in :mod:`pixpack.metadata`; this mixin gives :class:`~.pack.Pack`
its methods (``pack.columns``, ``pack.query(...)``, ...) without growing the module that
reads samples. It relies on the pack's opened state (``_idx()``, ``_file``,
``_metadata``, ``_n``, ``_path``, ``_sections``, ``_mv``, ``_columns``).
"""

from __future__ import annotations

from typing import Any

__all__ = ["MetadataAccess"]


class MetadataAccess:
    """Metadata columns, SQL and subsets of an open pack."""

    _columns: Any
    _sections: dict[str, tuple[int, int, int]]

    @property
    def columns(self) -> Any:
        """Per-sample metadata columns (``path`` and the source's extra fields) as
        zero-copy views: a :class:`~pixpack.metadata.view.Columns` mapping."""
        if self._columns is None:
            from ..metadata.view import Columns

            self._idx()
            self._columns = Columns(self._file.buffer, self._metadata, self._n, self._path)
        return self._columns

    def section(self, name: str) -> memoryview | None:
        """The bytes of the pack's section ``name`` (a view of the map), or None."""
        self._idx()
        found = self._sections.get(name)
        return None if found is None else self._mv[found[0] : found[0] + found[1]]

    def query(self, where: str) -> Any:
        """The samples matching an SQL condition over the ``samples`` table, e.g.
        ``"site = 'B' AND width > 512"``, as a :class:`~pixpack.Subset`."""
        from ..metadata.query import query_indices
        from ..metadata.subset import Subset

        return Subset(self, query_indices(self, where), where)

    def sql(self, statement: str) -> tuple[list[str], list[tuple]]:
        """``(column names, rows)`` of a ``SELECT ... FROM samples`` statement."""
        from ..metadata.query import query_rows

        return query_rows(self, statement)

    @property
    def splits(self) -> dict[str, Any]:
        """Named splits made by ``pixpack split`` / :func:`pixpack.make_splits`, as
        :class:`~pixpack.Subset` objects (read from ``PACK.splits.json``)."""
        from ..metadata.splits_file import load_splits

        return load_splits(self)

    def subset(self, indices: Any, name: str = "subset") -> Any:
        """These samples (an index array, any order) as a :class:`~pixpack.Subset`."""
        from ..metadata.subset import Subset

        return Subset(self, indices, name)
