"""The source protocol and what the file-backed sources share.

A *source* is a protocol, not a base class: anything with ``__len__``, ``load(i) ->
(item, label)`` (``item`` a path, a ``PIL.Image`` or an ``ndarray``; ``label`` an int
class index or :data:`~pixpack.format.NO_LABEL`), ``classes``, ``describe()``,
``fingerprint()``, ``path_of(i)``, ``relpath_of(i)``, ``metadata(i)`` and
``metadata_columns()`` can be packed. The last three describe each sample for the
pack's metadata columns and are called in the main process, once per written sample:
sources compute them up front, so each call is a list lookup.

``fingerprint()`` hashes the file list with sizes and modification times (ns), never
the image bytes, so :func:`pixpack.cached` can notice a changed dataset in seconds.
In-memory Python sources return ``None``: they cannot be fingerprinted cheaply.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from ...errors import SourceFormatError, UsageError
from .columns import MetadataColumns

__all__ = [
    "IMG_EXTENSIONS",
    "MAX_IMPLICIT_CLASSES",
    "MAX_LABEL",
    "CoreSource",
    "Source",
    "check_implicit_classes",
    "class_list",
    "stat_digest",
]

# torchvision.datasets.folder.IMG_EXTENSIONS, so the same files are picked up.
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")

MAX_LABEL = 2**31 - 1  # the largest integer label a manifest row may hold
# Classes named "0".."N" made from the largest integer label when no class list is
# given: a list of that many names is built, so N is bounded before it is.
MAX_IMPLICIT_CLASSES = 1 << 20


@runtime_checkable
class CoreSource(Protocol):
    """A source as written before ``relpath_of``/``metadata``/``metadata_columns``
    existed: :func:`~.resolve.resolve_source` gives it those (no path, no metadata)."""

    classes: list[str]

    def __len__(self) -> int: ...

    def load(self, i: int) -> tuple[Any, int]: ...

    def describe(self) -> dict[str, Any]: ...

    def fingerprint(self) -> str | None: ...

    def path_of(self, i: int) -> str: ...


@runtime_checkable
class Source(CoreSource, Protocol):
    """What :func:`pixpack.pack` needs from a dataset.

    relpath_of(i): the sample's source path relative to the source root
        (ImageFolder: ``cls/file.jpg``; CSV/JSON-lines: the path as written in the
        manifest; Python sources: the path when the item is one, else ``""``).
    metadata(i): the sample's extra typed values, ``{column: int | float | bool | str
        | None}`` with every column of :meth:`metadata_columns` (``None``: missing),
        or ``None`` when the source has no columns.
    metadata_columns(): the column names in file order (``[]`` when none).
    """

    def relpath_of(self, i: int) -> str: ...

    def metadata(self, i: int) -> dict[str, Any] | None: ...

    def metadata_columns(self) -> list[str]: ...


def stat_digest(paths: Sequence[str], extra: bytes = b"") -> str:
    """sha256 over (path, size, mtime_ns) of every file: detects edits without reading them."""
    h = hashlib.sha256(extra)
    for path in paths:
        try:
            st = os.stat(path)
            h.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode("utf-8", "surrogateescape"))
        except (OSError, ValueError):  # ValueError: a NUL byte in the path
            h.update(f"{path}\0missing\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()


def check_implicit_classes(top: int, where: str) -> None:
    if top >= MAX_IMPLICIT_CLASSES:
        raise SourceFormatError(
            f"{where}: label {top} would make {top + 1} classes named '0'..'{top}' (at most "
            f"{MAX_IMPLICIT_CLASSES} without a class list) — use labels 0..N-1, name the "
            "classes, or pass classes=."
        )


def class_list(classes: Sequence[str]) -> list[str]:
    """A fixed class list: names, each once (their positions are the labels)."""
    if isinstance(classes, str):
        raise UsageError(
            f"classes must be a list of names, not the string {classes!r} — e.g. "
            "classes=['cat', 'dog'] (CLI --classes cat,dog)."
        )
    names = [str(c) for c in classes]
    twice = sorted(n for n, k in Counter(names).items() if k > 1)
    if not names or twice or "" in names:
        why = (
            "is empty"
            if not names
            else f"names {twice[0]!r} twice"
            if twice
            else "has an empty name"
        )
        raise UsageError(f"the class list {why} — give every class once, by a non-empty name.")
    return names


class FileListSource:
    """Shared by the file-backed sources: a list of (path, label) decided up front."""

    classes: list[str]
    _samples: list[tuple[str, int]]
    _columns: MetadataColumns = MetadataColumns.empty()
    _fingerprint: str | None = None

    def __len__(self) -> int:
        return len(self._samples)

    def load(self, i: int) -> tuple[str, int]:
        return self._samples[i]

    def path_of(self, i: int) -> str:
        return self._samples[i][0]

    def relpath_of(self, i: int) -> str:
        raise NotImplementedError  # pragma: no cover - every subclass defines it

    def metadata(self, i: int) -> dict[str, Any] | None:
        return self._columns.row(i)

    def metadata_columns(self) -> list[str]:
        return list(self._columns.names)

    def metadata_column(self, name: str) -> list[Any]:
        """One column's values by source position (the packer's fast path: no dict
        per sample)."""
        return self._columns.values[self._columns.names.index(name)]

    @property
    def samples(self) -> list[tuple[str, int]]:
        """(path, label) pairs in packing order (like torchvision's ``samples``)."""
        return self._samples

    @property
    def class_to_idx(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.classes)}

    def _extra_fingerprint(self) -> bytes:
        return b""

    def fingerprint(self) -> str:
        if self._fingerprint is None:
            # Absolute: "data/x" and "/home/me/data/x" are the same source (resume, cache).
            self._fingerprint = stat_digest(
                [os.path.abspath(p) for p, _ in self._samples], self._extra_fingerprint()
            )
        return self._fingerprint
