"""``pages="samples"``: every page of a multi-page TIFF becomes a sample of its own.

The packer maps one source item to one sample (its journal, resume and columns are
keyed by source position), so the expansion happens here, before packing: each item
that is a TIFF path is opened once to count its pages, and the source is re-indexed
as ``(item, page)`` pairs. A page's sample carries its parent's label and metadata,
plus a ``page`` column, and its ``path`` is ``file.tif#<page>``.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

from ...errors import ImageDecodeError
from ...regular_files import open_regular
from ..tiff import PageRef, count_pages, is_tiff

__all__ = ["PagedSource"]


def _pages_of(path: str) -> int:
    """Pages of the TIFF at ``path``: its magic, then its chain of page headers (the
    pixels are not read). 1 for anything else, or a file that cannot be read now: its
    decode reports why."""
    try:
        with open_regular(path, lambda why: ImageDecodeError(path, why)) as f:
            if not is_tiff(f.read(4)):
                return 1
    except (OSError, ImageDecodeError):
        return 1
    return count_pages(path)


class PagedSource:
    """``src`` with one position per page of each multi-page TIFF."""

    def __init__(self, src: Any) -> None:
        self.src = src
        self.classes = src.classes
        self._rows: list[tuple[int, int | None]] = []  # (source position, page or None)
        for i in range(len(src)):  # path_of: a file source's path, without decoding
            count = _pages_of(src.path_of(i))
            self._rows.extend([(i, None)] if count == 1 else [(i, p) for p in range(count)])

    def __len__(self) -> int:
        return len(self._rows)

    def load(self, i: int) -> tuple[Any, int]:
        parent, page = self._rows[i]
        item, label = self.src.load(parent)
        return (item if page is None else PageRef(os.fspath(item), page)), label

    def path_of(self, i: int) -> str:
        parent, page = self._rows[i]
        return self.src.path_of(parent) + ("" if page is None else f"#{page}")

    def relpath_of(self, i: int) -> str:
        parent, page = self._rows[i]
        return self.src.relpath_of(parent) + ("" if page is None else f"#{page}")

    def metadata(self, i: int) -> dict[str, Any]:
        parent, page = self._rows[i]
        return {**(self.src.metadata(parent) or {}), "page": page}

    def metadata_columns(self) -> list[str]:
        return [*self.src.metadata_columns(), "page"]

    def describe(self) -> dict[str, Any]:
        return {**self.src.describe(), "pages": "samples"}

    def fingerprint(self) -> str | None:
        inner = self.src.fingerprint()
        if inner is None:
            return None
        layout = ",".join(f"{a}:{b}" for a, b in self._rows).encode()
        return hashlib.sha256(inner.encode() + b"\0" + layout).hexdigest()
