"""CSV/TSV manifests: ``path,label`` rows, or a header naming the columns.

- The delimiter is a tab for ``.tsv``; otherwise a comma, unless the first line has
  none: then a tab if it has one, or ``;`` if splitting on it gives a header that names
  a path or label column (:data:`~.manifest.PATH_COLUMNS`, :data:`~.manifest.LABEL_COLUMNS`).
- The first non-blank row is a header when ``path_column=``/``label_column=`` is given
  or when one of its cells is a known column name; it is never read as data. The
  columns are then picked as :mod:`.manifest` describes, and the rest are metadata,
  typed over the whole column (:func:`~.columns.typed_csv_column`).
- Without a header a row is ``path,label`` or just ``path`` (unlabelled), as the first
  row has it. A first row that looks like an unknown header (its path has no image
  extension where the next row's has) is refused with the fix.
- Cells are stripped of surrounding spaces; quoting is the ``csv`` module's (a quoted
  field may hold the delimiter). Relative paths are relative to the file's directory.
- A bad row raises :class:`SourceFormatError` naming ``file:line`` and the fix.
"""

from __future__ import annotations

import contextlib
import csv
import io
import itertools
import re
from collections.abc import Iterator
from typing import Any

from ...errors import SourceFormatError
from .base import IMG_EXTENSIONS, MAX_LABEL
from .columns import MetadataColumns, typed_csv_column
from .manifest import LABEL_COLUMNS, PATH_COLUMNS, LabelReader, ManifestSource, pick_columns

__all__ = ["CsvSource"]

_DIGITS = re.compile(r"^\d+$")
_KNOWN = frozenset(PATH_COLUMNS + LABEL_COLUMNS)


class CsvSource(ManifestSource):
    """A ``.csv`` (comma) or ``.tsv`` (tab) manifest; see the module docstring."""

    kind = "csv"
    _what = "CSV"
    _newline = ""
    _hint = "add path,label rows"

    def _read(
        self, f: io.TextIOWrapper, labels: LabelReader, wanted: tuple[str | None, str | None]
    ) -> tuple[list[str], MetadataColumns]:
        with _csv_errors(self.path) as readers:
            head = list(_through_first_text_line(f))
            delimiter = _delimiter(self.path, head[-1] if head else "", wanted)
            reader = csv.reader(itertools.chain(head, f), delimiter=delimiter)
            readers.append(reader)
            rows = _Rows(self.path, delimiter, labels, wanted)
            for row in reader:
                if row and (len(row) > 1 or row[0].strip()):  # else a blank line
                    rows.add([cell.strip() for cell in row], reader.line_num)
        return rows.relpaths, rows.columns()


def _through_first_text_line(f: io.TextIOWrapper) -> Iterator[str]:
    for line in f:
        yield line
        if line.strip():
            return


def _delimiter(path: str, first: str, columns: tuple[str | None, str | None]) -> str:
    if path.lower().endswith(".tsv"):
        return "\t"
    if "," in first or ("\t" not in first and ";" not in first):
        return ","
    if "\t" in first:
        return "\t"
    names = {cell.strip().strip('"') for cell in first.split(";")}
    named = {n.lower() for n in names} & _KNOWN or names & {c for c in columns if c}
    return ";" if named else ","


class _Rows:
    """The rows of one file: the layout is decided by the first non-blank row."""

    def __init__(
        self,
        path: str,
        delimiter: str,
        labels: LabelReader,
        columns: tuple[str | None, str | None],
    ) -> None:
        self.path, self.labels, self._wanted = path, labels, columns
        self._sep = "<tab>" if delimiter == "\t" else delimiter
        self.relpaths: list[str] = []
        self._layout: tuple[int, int, int | None, list[int]] | None = None
        self._names: list[str] = []
        self._cells: list[list[str]] = []
        self._expected = ""
        self._headerless = False
        self._first = ("", "")  # a headerless file's first row: where, path

    def add(self, cells: list[str], line: int) -> None:
        where = f"{self.path}:{line}"
        if self._layout is None:
            if any(self._wanted) or any(c.lower() in _KNOWN for c in cells):
                self._header(cells, where)
                return
            self._no_header(cells, where)
        assert self._layout is not None  # set by _no_header
        width, path_at, label_at, meta_at = self._layout
        if any("\n" in c or "\r" in c for c in cells):
            raise SourceFormatError(
                f"{where}: a quoted field runs across lines up to here — check for an "
                'unbalanced quote (") on the lines before.'
            )
        if len(cells) != width:
            raise SourceFormatError(
                f"{where}: expected {self._expected}, got {len(cells)} — fix the row or "
                f"quote fields that contain the delimiter ({self._sep})."
            )
        item = cells[path_at]
        if not item:
            raise SourceFormatError(f"{where}: empty path — give the image's path.")
        if "\0" in item:
            raise SourceFormatError(f"{where}: the path contains a NUL byte — fix the row.")
        if self._headerless and len(self.relpaths) == 1:
            self._refuse_unknown_header(item)
        if label_at is not None:
            self.labels.add(_label(cells[label_at], where), line)
        for column, at in zip(self._cells, meta_at, strict=True):
            column.append(cells[at])
        self.relpaths.append(item)

    def _header(self, cells: list[str], where: str) -> None:
        names = [c or f"column{k}" for k, c in enumerate(cells, start=1)]
        if len(set(names)) != len(names):
            twice = sorted({n for n in names if names.count(n) > 1})
            raise SourceFormatError(
                f"{where}: the header names {', '.join(twice)} more than once — give every "
                "column its own name."
            )
        path_at, label_at = pick_columns(names, *self._wanted, where)
        meta_at = [i for i in range(len(names)) if i not in (path_at, label_at)]
        self._layout = (len(names), path_at, label_at, meta_at)
        self._names = [names[i] for i in meta_at]
        self._cells = [[] for _ in meta_at]
        self._expected = f"{len(names)} fields as in the header ({self._sep.join(names)})"

    def _no_header(self, cells: list[str], where: str) -> None:
        if len(cells) > 2:
            raise SourceFormatError(
                f"{where}: {len(cells)} fields but no header row — add a header naming the "
                f"columns (path{self._sep}label{self._sep}...: extra columns are kept as "
                f"metadata), or quote paths that contain the delimiter ({self._sep})."
            )
        self._headerless = True
        self._first = (where, cells[0])
        self._layout = (len(cells), 0, 1 if len(cells) == 2 else None, [])
        self._expected = f"2 fields (path{self._sep}label)" if len(cells) == 2 else "1 field (path)"

    def _refuse_unknown_header(self, second: str) -> None:
        where, first = self._first
        if second.lower().endswith(IMG_EXTENSIONS) and not first.lower().endswith(IMG_EXTENSIONS):
            raise SourceFormatError(
                f"{where}: the first row looks like a header but names no known column "
                f"(path: {'/'.join(PATH_COLUMNS[:4])}/...; label: {'/'.join(LABEL_COLUMNS)}) "
                f"— pass path_column='{first}' (CLI --path-column) and label_column=, or "
                "rename its columns."
            )

    def columns(self) -> MetadataColumns:
        return MetadataColumns(self._names, [typed_csv_column(c) for c in self._cells])


def _label(text: str, where: str) -> int | str:
    if not text:
        raise SourceFormatError(
            f"{where}: empty label — give a class name or an integer class index."
        )
    if not _DIGITS.match(text):
        return text
    if len(text) > 10 or int(text) > MAX_LABEL:
        shown = text if len(text) <= 20 else f"{text[:20]}... ({len(text)} digits)"
        raise SourceFormatError(
            f"{where}: label {shown} is too large — integer labels are class "
            f"indices from 0 to {MAX_LABEL}; fix the row or name the classes."
        )
    return int(text)


@contextlib.contextmanager
def _csv_errors(path: str) -> Iterator[list[Any]]:
    """Undecodable bytes and csv module errors as one-line SourceFormatErrors naming the
    line; the caller appends its ``csv.reader`` to the yielded list."""
    readers: list[Any] = []
    try:
        yield readers
    except UnicodeDecodeError as e:
        line = first_undecodable_line(path)
        raise SourceFormatError(
            f"{path}:{line}: not UTF-8 text (byte 0x{e.object[e.start]:02x}) — save the file "
            "as UTF-8 (e.g. 'CSV UTF-8' in a spreadsheet program)."
        ) from None
    except csv.Error as e:
        line = readers[0].line_num if readers else 0
        raise SourceFormatError(
            f'{path}:{line}: {e} — check for an unbalanced quote (") before this line.'
        ) from None


def first_undecodable_line(path: str) -> int:
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                return number
    return 0
