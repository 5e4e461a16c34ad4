"""From what the user passed (a path, a dataset, a Source) and the pack options to a Source."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ...errors import EmptySourceError, SourceFormatError, UsageError
from ...options import PackOptions
from ..dicomio import DICOM_SUFFIXES
from .base import CoreSource, Source
from .csv_source import CsvSource
from .folder import ImageFolderSource
from .jsonl import JSONL_SUFFIXES, JsonlSource
from .sequence import SequenceSource

__all__ = ["resolve_source", "source_for", "with_classes_from"]

_MANIFESTS = (".csv", ".tsv", *JSONL_SUFFIXES)


def resolve_source(
    src: Any,
    classes: Sequence[str] | None = None,
    *,
    path_column: str | None = None,
    label_column: str | None = None,
    frames: str = "error",
) -> Source:
    """Turn what the user passed into a :class:`Source`.

    A directory is an ImageFolder tree (a :class:`~.dicom.DicomSource` with default
    options when its class folders hold ``*.dcm`` files instead of images), a
    ``.csv``/``.tsv`` file a :class:`CsvSource`, a ``.jsonl``/``.ndjson`` file a
    :class:`JsonlSource`, a Source is returned as is, and any sequence / map-style
    dataset becomes a :class:`SequenceSource`.
    ``classes`` fixes the class list; ``path_column``/``label_column`` name a
    manifest's columns; ``frames`` is what a multi-frame DICOM file becomes (the pack
    option ``pages``, which says the same of multi-page TIFFs).
    """
    columns = {"path_column": path_column, "label_column": label_column}
    if isinstance(src, (str, os.PathLike)):
        path = Path(src).expanduser()
        if path.is_dir():
            _no_columns(columns, f"{path}: an ImageFolder directory")
            try:
                return ImageFolderSource(path, classes)
            except EmptySourceError:
                if not _holds_dicom(path):
                    raise
            from .dicom import DicomSource  # class folders of DICOM files: default options

            return DicomSource(path, classes, frames=frames)  # type: ignore[arg-type]
        if not path.exists():
            raise EmptySourceError(
                f"{path}: no such file or directory; pass an ImageFolder directory, "
                "a .csv/.tsv/.jsonl file or a Python sequence."
            )
        suffix = path.suffix.lower()
        if suffix in (".csv", ".tsv"):
            return CsvSource(path, classes, **columns)
        if suffix in JSONL_SUFFIXES:
            return JsonlSource(path, classes, **columns)
        raise SourceFormatError(
            f"{path}: cannot pack a single '{path.suffix}' file; pass an ImageFolder "
            f"directory or a manifest ({'/'.join(_MANIFESTS)}) listing the images."
        )
    if isinstance(src, CoreSource) and not isinstance(src, (list, tuple)):
        if classes is not None:
            raise UsageError(
                f"classes= cannot be applied to a ready-made {type(src).__name__}; build it "
                "with its class list."
            )
        _no_columns(columns, f"a ready-made {type(src).__name__}")
        return src if isinstance(src, Source) else _WithDefaults(src)
    _no_columns(columns, "a Python sequence")
    return SequenceSource(src, classes)


def _holds_dicom(root: Path) -> bool:
    """Whether a file named ``*.dcm``/``*.dicom`` lies anywhere under ``root``."""
    for _, _, fnames in os.walk(root, followlinks=True):
        if any(name.lower().endswith(DICOM_SUFFIXES) for name in fnames):
            return True
    return False


def _no_columns(columns: dict[str, str | None], what: str) -> None:
    given = [name for name, value in columns.items() if value is not None]
    if given:
        raise UsageError(
            f"{what} has no columns to name; {given[0]}= applies to CSV/TSV/JSON-lines "
            "manifests only."
        )


def with_classes_from(options: PackOptions) -> PackOptions:
    """``options`` with ``classes_from`` (another pack) replaced by that pack's classes."""
    if options.classes_from is None:
        return options
    from ...read.open_any import open_pack  # the write side reads a pack only here

    with open_pack(options.classes_from) as other:
        classes = list(other.classes)
    if not classes:
        raise UsageError(
            f"{options.classes_from}: the pack has no classes (unlabelled) to reuse — "
            "pass classes= (CLI --classes) instead."
        )
    return dataclasses.replace(options, classes=tuple(classes), classes_from=None)


def source_for(source: Any, options: PackOptions) -> Source:
    """The Source that :func:`pixpack.pack` packs with ``options`` (classes, columns)."""
    options = with_classes_from(options)
    return resolve_source(
        source,
        options.classes,
        path_column=options.path_column,
        label_column=options.label_column,
        frames=options.pages,
    )


class _WithDefaults:
    """Such a source with the newer methods: no relative path, no metadata."""

    def __init__(self, src: Any) -> None:
        self.src = src

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or "src" not in self.__dict__:  # copying, unpickling
            raise AttributeError(name)
        return getattr(self.src, name)

    def __len__(self) -> int:
        return len(self.src)

    def relpath_of(self, i: int) -> str:
        own = getattr(self.src, "relpath_of", None)
        return "" if own is None else str(own(i))

    def metadata(self, i: int) -> dict[str, Any] | None:
        own = getattr(self.src, "metadata", None)
        return None if own is None else own(i)

    def metadata_columns(self) -> list[str]:
        own = getattr(self.src, "metadata_columns", None)
        return [] if own is None else list(own())
