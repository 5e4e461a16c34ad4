"""Python sources: sequences of ``(image, label[, metadata])`` and map-style datasets."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from ...errors import SourceFormatError, UsageError
from ...format import NO_LABEL
from .base import MAX_IMPLICIT_CLASSES, check_implicit_classes, class_list
from .columns import ColumnBuilder, MetadataColumns

__all__ = ["SequenceSource"]


class SequenceSource:
    """Any sequence of ``(image, label)`` or map-style dataset (e.g. a torchvision dataset).

    ``image`` is a path, a ``PIL.Image`` or an ``ndarray`` (HW or HWC, uint8/uint16).
    ``label`` is an int class index, ``None`` (unlabelled) or, for plain lists/tuples,
    a class name (classes are then the sorted unique names). Classes come from
    ``classes=``, else the dataset's ``.classes`` attribute, else (for lists) the
    labels, else the packer derives ``str(i)`` names from the labels it sees.

    A list/tuple item may be ``(image, label, dict)``: the dict's values (int, float,
    bool, str, None; numpy scalars become Python ones) are the sample's metadata,
    checked when the source is built. A map-style dataset may return such triples
    too, but its dicts are not kept: reading them would load every image a second time.
    """

    def __init__(self, seq: Any, classes: Sequence[str] | None = None) -> None:
        if not (hasattr(seq, "__len__") and hasattr(seq, "__getitem__")):
            raise UsageError(
                f"{type(seq).__name__} is not a sequence or map-style dataset; "
                "pass something with __len__ and __getitem__ returning (image, label)."
            )
        self.seq = seq
        self._to_idx: dict[str, int] | None = None
        self._columns = MetadataColumns.empty()
        is_list = isinstance(seq, (list, tuple))
        if is_list:
            self._columns = _list_metadata(seq)
        if classes is not None:
            self.classes = class_list(classes)
        elif isinstance(getattr(seq, "classes", None), (list, tuple)):
            self.classes = [str(c) for c in seq.classes]
        elif is_list:
            names = {entry[1] for entry in seq if _is_entry(entry) and isinstance(entry[1], str)}
            self.classes = sorted(names)
        else:
            self.classes = []  # unknown up front: the packer derives them from labels
        if self.classes:
            self._to_idx = {name: i for i, name in enumerate(self.classes)}

    def __len__(self) -> int:
        return len(self.seq)

    def load(self, i: int) -> tuple[Any, int]:
        entry = self.seq[i]
        if isinstance(entry, (list, tuple)) and len(entry) == 3:
            item, label, _ = entry
        else:
            item, label = entry
        return item, self._label(label, i)

    def _label(self, label: Any, i: int) -> int:
        if label is None:
            return NO_LABEL
        if isinstance(label, str):
            if self._to_idx is None or label not in self._to_idx:
                raise SourceFormatError(
                    f"item {i}: label {label!r} is not one of the classes; pass classes= "
                    "listing every class name."
                )
            return self._to_idx[label]
        try:
            value = int(label)
        except (TypeError, ValueError):
            raise SourceFormatError(
                f"item {i}: label {label!r} is not an int or class name; return "
                "(image, int_label) from the dataset."
            ) from None
        if not self.classes and value >= MAX_IMPLICIT_CLASSES:
            check_implicit_classes(value, f"item {i}")
        if value < 0 or (self.classes and value >= len(self.classes)):
            raise SourceFormatError(
                f"item {i}: label {value} is out of range for {len(self.classes)} classes; "
                "pass the full class list with classes=."
            )
        return value

    def path_of(self, i: int) -> str:
        return self._path(i) or f"{type(self.seq).__name__}[{i}]"

    def relpath_of(self, i: int) -> str:
        """The item's path (a dataset's ``samples`` path relative to its ``root``), or ``""``."""
        path = self._path(i)
        root = getattr(self.seq, "root", None)
        if (
            path
            and not isinstance(self.seq, (list, tuple))
            and isinstance(root, (str, os.PathLike))
        ):
            prefix = os.path.join(os.fspath(root), "")
            if path.startswith(prefix):
                return path[len(prefix) :]
        return path

    def _path(self, i: int) -> str:
        samples = getattr(self.seq, "samples", None)
        if isinstance(samples, list) and i < len(samples) and isinstance(samples[i], tuple):
            return str(samples[i][0])
        if isinstance(self.seq, (list, tuple)):
            item = self.seq[i][0]
            if isinstance(item, (str, os.PathLike)):
                return os.fspath(item)
        return ""

    def metadata(self, i: int) -> dict[str, Any] | None:
        return self._columns.row(i)

    def metadata_columns(self) -> list[str]:
        return list(self._columns.names)

    def describe(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "type": "sequence",
            "class": f"{type(self.seq).__module__}.{type(self.seq).__qualname__}",
            "num_items": len(self),
        }
        root = getattr(self.seq, "root", None)
        if isinstance(root, (str, os.PathLike)):
            info["root"] = os.path.abspath(os.fspath(root))
        return info

    def fingerprint(self) -> None:
        return None


def _is_entry(entry: Any) -> bool:
    return isinstance(entry, (list, tuple)) and len(entry) in (2, 3)


def _list_metadata(seq: list[Any] | tuple[Any, ...]) -> MetadataColumns:
    """The dicts of ``(image, label, dict)`` items as columns (one pass, checked)."""
    if not any(isinstance(e, (list, tuple)) and len(e) == 3 for e in seq):
        return MetadataColumns.empty()
    builder = ColumnBuilder()
    for i, entry in enumerate(seq):
        extra = entry[2] if isinstance(entry, (list, tuple)) and len(entry) == 3 else {}
        if not isinstance(extra, dict):
            raise SourceFormatError(
                f"item {i}: the third element is a {type(extra).__name__}, not a dict — "
                "return (image, label) or (image, label, {column: value})."
            )
        builder.add(extra, f"item {i}")
    return builder.build()
