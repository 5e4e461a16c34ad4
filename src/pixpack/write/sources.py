"""Where the images to pack come from: ImageFolder trees, CSV files, Python sequences.

A *source* is a protocol, not a base class: anything with ``__len__``, ``load(i) ->
(item, label)`` (``item`` a path, a ``PIL.Image`` or an ``ndarray``; ``label`` an int
class index or :data:`~pixpack.format.NO_LABEL`), ``classes``, ``describe()``,
``fingerprint()`` and ``path_of(i)`` can be packed.

``fingerprint()`` hashes the file list with sizes and modification times (ns), never
the image bytes, so :func:`pixpack.cached` can notice a changed dataset in seconds.
In-memory Python sources return ``None``: they cannot be fingerprinted cheaply.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from ..errors import EmptySourceError, SourceFormatError, UsageError
from ..format import NO_LABEL
from ..regular_files import open_regular

__all__ = [
    "IMG_EXTENSIONS",
    "MAX_IMPLICIT_CLASSES",
    "MAX_LABEL",
    "Source",
    "ImageFolderSource",
    "CsvSource",
    "SequenceSource",
    "resolve_source",
]

# torchvision.datasets.folder.IMG_EXTENSIONS, so the same files are picked up.
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


@runtime_checkable
class Source(Protocol):
    """What :func:`pixpack.pack` needs from a dataset."""

    classes: list[str]

    def __len__(self) -> int: ...

    def load(self, i: int) -> tuple[Any, int]: ...

    def describe(self) -> dict[str, Any]: ...

    def fingerprint(self) -> str | None: ...

    def path_of(self, i: int) -> str: ...


def _stat_digest(paths: Sequence[str], extra: bytes = b"") -> str:
    """sha256 over (path, size, mtime_ns) of every file: detects edits without reading them."""
    h = hashlib.sha256(extra)
    for path in paths:
        try:
            st = os.stat(path)
            h.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode("utf-8", "surrogateescape"))
        except (OSError, ValueError):  # ValueError: a NUL byte in the path
            h.update(f"{path}\0missing\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()


class _FileListSource:
    """Shared by the file-backed sources: a list of (path, label) decided up front."""

    classes: list[str]
    _samples: list[tuple[str, int]]
    _fingerprint: str | None = None

    def __len__(self) -> int:
        return len(self._samples)

    def load(self, i: int) -> tuple[str, int]:
        return self._samples[i]

    def path_of(self, i: int) -> str:
        return self._samples[i][0]

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
            self._fingerprint = _stat_digest(
                [os.path.abspath(p) for p, _ in self._samples], self._extra_fingerprint()
            )
        return self._fingerprint


class ImageFolderSource(_FileListSource):
    """``root/<class>/**/<image>`` with exactly torchvision ``ImageFolder``'s rules.

    Classes are the sorted names of ``root``'s sub-directories; files are found with
    ``sorted(os.walk(class_dir, followlinks=True))`` and kept when their lower-cased
    name ends with one of :data:`IMG_EXTENSIONS`, so labels and order equal
    ``torchvision.datasets.ImageFolder(root)``'s. One difference: a symlink back to a
    directory the walk is already inside (``a/up -> ..``) is not followed, where
    torchvision walks the loop until the OS refuses the path (exponentially long with
    two such loops).
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = os.path.expanduser(os.fspath(root))
        with os.scandir(self.root) as entries:
            self.classes = sorted(entry.name for entry in entries if entry.is_dir())
        if not self.classes:
            raise EmptySourceError(
                f"{self.root}: no class folders found; an ImageFolder source needs one "
                "sub-directory per class (root/<class>/<image>)."
            )
        samples: list[tuple[str, int]] = []
        for label, name in enumerate(self.classes):
            class_dir = os.path.join(self.root, name)
            found = 0
            for dirpath, _, fnames in sorted(_walk(class_dir)):
                for fname in sorted(fnames):
                    if fname.lower().endswith(IMG_EXTENSIONS):
                        samples.append((os.path.join(dirpath, fname), label))
                        found += 1
            if not found:
                raise EmptySourceError(
                    f"{class_dir}: class folder holds no images with extensions "
                    f"{', '.join(IMG_EXTENSIONS)}; add images or remove the folder."
                )
        self._samples = samples

    def describe(self) -> dict[str, Any]:
        return {"type": "image_folder", "root": os.path.abspath(self.root), "num_items": len(self)}

    def _extra_fingerprint(self) -> bytes:
        return "\0".join(self.classes).encode("utf-8", "surrogateescape")


def _walk(top: str) -> Iterator[tuple[str, list[str], list[str]]]:
    """``os.walk(top, followlinks=True)`` that does not enter a directory whose real
    path is the real path of one of its ancestors (a symlink loop). Two links to one
    directory that is not an ancestor (a diamond) are both walked, as os.walk does."""
    chains: dict[str, tuple[str, ...]] = {top: ()}
    for dirpath, dirnames, fnames in os.walk(top, followlinks=True):
        chain = (*chains.pop(dirpath, ()), os.path.realpath(dirpath))
        kept = []
        for name in dirnames:
            child = os.path.join(dirpath, name)
            if os.path.realpath(child) not in chain:
                chains[child] = chain
                kept.append(name)
        dirnames[:] = kept  # os.walk (top-down) descends only into these
        yield dirpath, dirnames, fnames


MAX_LABEL = 2**31 - 1  # the largest integer label a CSV row may hold
# Classes named "0".."N" made from the largest integer label when no class list is
# given: a list of that many names is built, so N is bounded before it is.
MAX_IMPLICIT_CLASSES = 1 << 20


def _check_implicit_classes(top: int, where: str) -> None:
    if top >= MAX_IMPLICIT_CLASSES:
        raise SourceFormatError(
            f"{where}: label {top} would make {top + 1} classes named '0'..'{top}' (at most "
            f"{MAX_IMPLICIT_CLASSES} without a class list) — use labels 0..N-1, name the "
            "classes, or pass classes=."
        )


_INT_RE = re.compile(r"^\d+$")
_HEADER = ["path", "label"]


class CsvSource(_FileListSource):
    """A ``.csv`` (comma) or ``.tsv`` (tab) file of ``path,label`` rows.

    - An optional first row ``path,label`` is a header.
    - Relative paths are relative to the CSV file's directory.
    - Labels are either all class names (classes = their sorted unique names, as
      ImageFolder sorts folder names) or all non-negative integers (classes =
      ``classes`` if given, else ``[str(i) for i in range(max_label + 1)]``).
    - A bad row raises :class:`SourceFormatError` naming ``file:line``.
    """

    def __init__(self, path: str | os.PathLike[str], classes: Sequence[str] | None = None) -> None:
        self.path = os.fspath(path)
        delimiter = "\t" if self.path.lower().endswith(".tsv") else ","
        base = os.path.dirname(os.path.abspath(self.path))
        rows: list[tuple[str, str, int]] = []
        top, top_line = -1, 0  # the largest integer label and its line
        header_seen = False
        try:
            raw = open_regular(self.path, lambda why: SourceFormatError(f"{self.path}: {why}"))
            f = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
        except FileNotFoundError:
            raise EmptySourceError(f"{self.path}: no such CSV file; check the path.") from None
        with f, _csv_errors(self.path) as readers:
            reader = csv.reader(f, delimiter=delimiter)
            readers.append(reader)
            for row in reader:
                line = reader.line_num
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue  # blank line
                if not rows and not header_seen and [c.strip().lower() for c in row] == _HEADER:
                    header_seen = True
                    continue
                where = f"{self.path}:{line}"
                if len(row) != 2:
                    raise SourceFormatError(
                        f"{where}: expected 2 fields (path{delimiter!r}label), got {len(row)} "
                        "— fix the row or quote paths that contain the delimiter."
                    )
                item, label = row[0].strip(), row[1].strip()
                if not item:
                    raise SourceFormatError(f"{where}: empty path — give the image's path.")
                if "\0" in item:
                    raise SourceFormatError(f"{where}: the path contains a NUL byte — fix the row.")
                if not label:
                    raise SourceFormatError(
                        f"{where}: empty label — give a class name or an integer class index."
                    )
                is_int = 1 if _INT_RE.match(label) else 0
                if is_int and (len(label) > 10 or int(label) > MAX_LABEL):
                    shown = label if len(label) <= 20 else f"{label[:20]}... ({len(label)} digits)"
                    raise SourceFormatError(
                        f"{where}: label {shown} is too large — integer labels are class "
                        f"indices from 0 to {MAX_LABEL}; fix the row or name the classes."
                    )
                if is_int and int(label) > top:
                    top, top_line = int(label), line
                if rows and is_int != rows[0][2]:
                    raise SourceFormatError(
                        f"{where}: label {label!r} mixes class names and integer labels "
                        "— use one kind in the whole file."
                    )
                rows.append((os.path.join(base, item), label, is_int))
        if not rows:
            raise EmptySourceError(f"{self.path}: CSV file lists no images; add path,label rows.")
        if rows[0][2]:  # integer labels
            labels = [int(label) for _, label, _ in rows]
            if classes is not None:
                self.classes = [str(c) for c in classes]
                if top >= len(self.classes):
                    raise SourceFormatError(
                        f"{self.path}: label {top} is out of range for {len(self.classes)} "
                        "classes — pass the full class list."
                    )
            else:
                _check_implicit_classes(top, f"{self.path}:{top_line}")
                self.classes = [str(i) for i in range(top + 1)]
            self._samples = [(p, lab) for (p, _, _), lab in zip(rows, labels, strict=True)]
        else:
            if classes is not None:
                raise UsageError(
                    f"{self.path}: classes= applies to integer labels only; this CSV names "
                    "its classes."
                )
            self.classes = sorted({label for _, label, _ in rows})
            to_idx = self.class_to_idx
            self._samples = [(p, to_idx[label]) for p, label, _ in rows]

    def describe(self) -> dict[str, Any]:
        return {"type": "csv", "path": os.path.abspath(self.path), "num_items": len(self)}

    def _extra_fingerprint(self) -> bytes:
        with open(self.path, "rb") as f:
            return hashlib.sha256(f.read()).digest()


@contextlib.contextmanager
def _csv_errors(path: str) -> Iterator[list[Any]]:
    """Undecodable bytes and csv module errors as one-line SourceFormatErrors naming the
    line; the caller appends its ``csv.reader`` to the yielded list."""
    readers: list[Any] = []
    try:
        yield readers
    except UnicodeDecodeError as e:
        line = _first_undecodable_line(path)
        raise SourceFormatError(
            f"{path}:{line}: not UTF-8 text (byte 0x{e.object[e.start]:02x}) — save the file "
            "as UTF-8 (e.g. 'CSV UTF-8' in a spreadsheet program)."
        ) from None
    except csv.Error as e:
        line = readers[0].line_num if readers else 0
        raise SourceFormatError(
            f'{path}:{line}: {e} — check for an unbalanced quote (") before this line.'
        ) from None


def _first_undecodable_line(path: str) -> int:
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                return number
    return 0


class SequenceSource:
    """Any sequence of ``(image, label)`` or map-style dataset (e.g. a torchvision dataset).

    ``image`` is a path, a ``PIL.Image`` or an ``ndarray`` (HW or HWC, uint8/uint16).
    ``label`` is an int class index, ``None`` (unlabelled) or, for plain lists/tuples,
    a class name (classes are then the sorted unique names). Classes come from
    ``classes=``, else the dataset's ``.classes`` attribute, else (for lists) the
    labels, else the packer derives ``str(i)`` names from the labels it sees.
    """

    def __init__(self, seq: Any, classes: Sequence[str] | None = None) -> None:
        if not (hasattr(seq, "__len__") and hasattr(seq, "__getitem__")):
            raise UsageError(
                f"{type(seq).__name__} is not a sequence or map-style dataset; "
                "pass something with __len__ and __getitem__ returning (image, label)."
            )
        self.seq = seq
        self._to_idx: dict[str, int] | None = None
        if classes is not None:
            self.classes = [str(c) for c in classes]
        elif isinstance(getattr(seq, "classes", None), (list, tuple)):
            self.classes = [str(c) for c in seq.classes]
        elif isinstance(seq, (list, tuple)):
            names = {lab for _, lab in seq if isinstance(lab, str)}
            self.classes = sorted(names)
        else:
            self.classes = []  # unknown up front: the packer derives them from labels
        if self.classes:
            self._to_idx = {name: i for i, name in enumerate(self.classes)}

    def __len__(self) -> int:
        return len(self.seq)

    def load(self, i: int) -> tuple[Any, int]:
        item, label = self.seq[i]
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
            _check_implicit_classes(value, f"item {i}")
        if value < 0 or (self.classes and value >= len(self.classes)):
            raise SourceFormatError(
                f"item {i}: label {value} is out of range for {len(self.classes)} classes; "
                "pass the full class list with classes=."
            )
        return value

    def path_of(self, i: int) -> str:
        samples = getattr(self.seq, "samples", None)
        if isinstance(samples, list) and i < len(samples) and isinstance(samples[i], tuple):
            return str(samples[i][0])
        if isinstance(self.seq, (list, tuple)):
            item = self.seq[i][0]
            if isinstance(item, (str, os.PathLike)):
                return os.fspath(item)
        return f"{type(self.seq).__name__}[{i}]"

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


def resolve_source(src: Any, classes: Sequence[str] | None = None) -> Source:
    """Turn what the user passed into a :class:`Source`.

    A directory is an ImageFolder tree, a ``.csv``/``.tsv`` file a CSV source, a Source
    is returned as is, and any sequence / map-style dataset becomes a SequenceSource.
    """
    if isinstance(src, (str, os.PathLike)):
        path = Path(src).expanduser()
        if path.is_dir():
            if classes is not None:
                raise UsageError(
                    f"{path}: classes= cannot be used with an ImageFolder directory; "
                    "its class names are the folder names."
                )
            return ImageFolderSource(path)
        if not path.exists():
            raise EmptySourceError(
                f"{path}: no such file or directory; pass an ImageFolder directory, "
                "a .csv/.tsv file or a Python sequence."
            )
        if path.suffix.lower() in (".csv", ".tsv"):
            return CsvSource(path, classes)
        raise SourceFormatError(
            f"{path}: cannot pack a single '{path.suffix}' file; pass an ImageFolder "
            "directory or a .csv/.tsv file listing path,label rows."
        )
    if isinstance(src, Source) and not isinstance(src, (list, tuple)):
        return src
    return SequenceSource(src, classes)
