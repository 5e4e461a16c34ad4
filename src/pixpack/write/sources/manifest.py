"""What CSV/TSV and JSON-lines manifests share: finding the path and label columns,
turning labels into class indices (against a fixed class list when one is given),
and the manifest-backed source itself.

Column detection (case-insensitive, surrounding spaces ignored): the path column is
``path_column=`` or the first column named one of :data:`PATH_COLUMNS`; the label
column is ``label_column=`` or the first named one of :data:`LABEL_COLUMNS`. Without a
label column the samples are unlabelled (:data:`~pixpack.format.NO_LABEL`). Every
other column is per-sample metadata.

Labels: integers are class indices, anything else a class name (CSV: a cell of
digits is an integer; JSON: the value's own type). One kind per file. Without a class
list, names give sorted unique classes (as ImageFolder sorts folders) and indices give
``"0".."max"``; with one (``classes=``) names must be in it and indices below its length.
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from collections.abc import Sequence
from typing import Any

from ...errors import EmptySourceError, SourceFormatError
from ...format import NO_LABEL
from ...regular_files import open_regular
from .base import MAX_LABEL, FileListSource, check_implicit_classes, class_list
from .columns import MetadataColumns

__all__ = ["LABEL_COLUMNS", "PATH_COLUMNS", "LabelReader", "ManifestSource", "pick_columns"]

PATH_COLUMNS = (
    "path", "filepath", "file_path", "file", "filename", "file_name", "fname",
    "image", "image_path", "image_file", "img", "img_path",
)  # fmt: skip
LABEL_COLUMNS = ("label", "labels", "class", "class_name", "category", "target")


def pick_columns(
    names: Sequence[str],
    path_column: str | None,
    label_column: str | None,
    where: str,
) -> tuple[int, int | None]:
    """Positions of the path and label columns among a header's ``names``."""
    shown = ", ".join(names)

    def named(wanted: str, flag: str) -> int:
        for i, name in enumerate(names):
            if name == wanted:
                return i
        raise SourceFormatError(
            f"{where}: no column {wanted!r} (columns: {shown}) — pass one of them as "
            f"{flag}= (CLI --{flag.replace('_', '-')})."
        )

    def detected(candidates: tuple[str, ...], skip: int | None) -> int | None:
        lowered = [name.lower() for name in names]
        for candidate in candidates:
            if candidate in lowered and lowered.index(candidate) != skip:
                return lowered.index(candidate)
        return None

    path = named(path_column, "path_column") if path_column is not None else None
    if path is None:
        path = detected(PATH_COLUMNS, None)
    if path is None:
        raise SourceFormatError(
            f"{where}: none of the columns ({shown}) is a path column named "
            f"{'/'.join(PATH_COLUMNS[:5])}/... — pass path_column='<name>' (CLI --path-column)."
        )
    if label_column is not None:
        label = named(label_column, "label_column")
        if label == path:
            raise SourceFormatError(f"{where}: {label_column!r} cannot be both path and label.")
        return path, label
    label = detected(LABEL_COLUMNS, path)
    others = [n for i, n in enumerate(names) if i != path]
    if label is None and others:
        warnings.warn(
            f"{where}: no label column (none named {'/'.join(LABEL_COLUMNS)}): packing "
            f"unlabelled, with {', '.join(others)} as metadata — pass label_column='<name>' "
            "(CLI --label-column) to use one as the label.",
            stacklevel=4,
        )
    return path, label


class LabelReader:
    """Labels row by row, checked where they are read; :meth:`finish` gives indices."""

    def __init__(self, path: str, classes: Sequence[str] | None) -> None:
        self.path = path
        self.fixed = None if classes is None else class_list(classes)
        self._to_idx = None if self.fixed is None else {c: i for i, c in enumerate(self.fixed)}
        self._is_int: bool | None = None
        self._values: list[Any] = []
        self._top, self._top_line = -1, 0

    def add(self, label: int | str, line: int) -> None:
        where = f"{self.path}:{line}"
        is_int = isinstance(label, int)
        if self._is_int is None:
            self._is_int = is_int
        elif is_int != self._is_int:
            raise SourceFormatError(
                f"{where}: label {label!r} mixes class names and integer labels — use one "
                "kind in the whole file."
            )
        if isinstance(label, int):
            if not 0 <= label <= MAX_LABEL:
                raise SourceFormatError(
                    f"{where}: label {label} is not a class index from 0 to {MAX_LABEL} — "
                    "fix the row or name the classes."
                )
            if self.fixed is not None and label >= len(self.fixed):
                raise SourceFormatError(
                    f"{where}: label {label} is out of range for {len(self.fixed)} classes "
                    "— pass the full class list."
                )
            if label > self._top:
                self._top, self._top_line = label, line
            self._values.append(label)
        elif self._to_idx is not None:
            index = self._to_idx.get(label)
            if index is None:
                raise SourceFormatError(
                    f"{where}: label {label!r} is not in the class list "
                    f"({_preview(self.fixed or [])}) — add it to classes= (CLI --classes) "
                    "or fix the row."
                )
            self._values.append(index)
        else:
            self._values.append(label)

    def finish(self, count: int) -> tuple[list[str], list[int]]:
        """(classes, one label per row); ``count`` rows of NO_LABEL when none were read."""
        if self._is_int is None:
            return list(self.fixed or []), [NO_LABEL] * count
        if self.fixed is not None:
            return self.fixed, self._values
        if self._is_int:
            check_implicit_classes(self._top, f"{self.path}:{self._top_line}")
            return [str(i) for i in range(self._top + 1)], self._values
        classes = sorted(set(self._values))
        to_idx = {name: i for i, name in enumerate(classes)}
        return classes, [to_idx[v] for v in self._values]


def _preview(names: list[str]) -> str:
    shown = ", ".join(names[:8])
    return f"{len(names)} classes: {shown}" + (", ..." if len(names) > 8 else "")


class ManifestSource(FileListSource):
    """A manifest file listing images: paths kept as written, resolved against its folder.

    Subclasses read the opened text in :meth:`_read`: the paths as written and the
    metadata columns, labels going to the given :class:`LabelReader`.
    """

    kind = "manifest"
    _what = "manifest"  # in messages: "no such CSV file"
    _newline: str | None = None  # the csv module wants newline=""
    _hint = "add rows"  # how to fix an empty file

    def __init__(
        self,
        path: str | os.PathLike[str],
        classes: Sequence[str] | None = None,
        *,
        path_column: str | None = None,
        label_column: str | None = None,
    ) -> None:
        self.path = os.fspath(path)
        try:
            raw = open_regular(self.path, lambda why: SourceFormatError(f"{self.path}: {why}"))
            f = io.TextIOWrapper(raw, encoding="utf-8-sig", newline=self._newline)
        except FileNotFoundError:
            raise EmptySourceError(
                f"{self.path}: no such {self._what} file; check the path."
            ) from None
        labels = LabelReader(self.path, classes)
        with f:
            relpaths, columns = self._read(f, labels, (path_column, label_column))
        if not relpaths:
            raise EmptySourceError(f"{self.path}: {self._what} file lists no images; {self._hint}.")
        base = os.path.dirname(os.path.abspath(self.path))
        self.classes, indices = labels.finish(len(relpaths))
        self._relpaths = relpaths
        self._samples = [
            (os.path.join(base, p), label) for p, label in zip(relpaths, indices, strict=True)
        ]
        self._columns = columns

    def _read(
        self, f: io.TextIOWrapper, labels: LabelReader, wanted: tuple[str | None, str | None]
    ) -> tuple[list[str], MetadataColumns]:
        raise NotImplementedError  # pragma: no cover - every subclass defines it

    def relpath_of(self, i: int) -> str:
        return self._relpaths[i]

    def describe(self) -> dict[str, Any]:
        return {"type": self.kind, "path": os.path.abspath(self.path), "num_items": len(self)}

    def _extra_fingerprint(self) -> bytes:
        with open(self.path, "rb") as f:
            return hashlib.sha256(f.read()).digest()
