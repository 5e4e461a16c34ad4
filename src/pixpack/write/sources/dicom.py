"""DICOM sources: a folder tree or a manifest of DICOM files, with tags as metadata.

Which files are DICOM: names ending ``.dcm``/``.dicom`` (any case), and any other
file whose bytes 128..131 are ``DICM`` (the Part 10 preamble; one 132-byte read per
such file while walking). Hidden files and ``DICOMDIR`` (a directory index without
pixels) are never samples. Decoding is :mod:`pixpack.write.dicomio`'s.

The headers are read once, when the source is built (``stop_before_pixels``, only the
chosen tags and ``NumberOfFrames``), and kept as one list per column; a file whose
header cannot be read stays in the source and is skipped with the reason when packed
(or fails the pack under ``strict=True``).

Tag columns are typed by the DICOM dictionary, not by the values found: integer VRs
(IS, US, SS, UL, SL, SV, UV) make int columns, decimal ones (DS, FL, FD) float
columns, everything else text. A numeric tag with a fixed multiplicity above one
becomes one column per value, ``<Keyword>_<k>`` from 0 (``PixelSpacing_0`` is the row
spacing, ``PixelSpacing_1`` the column spacing, in mm); other multi-valued tags are
text with the values joined by ``\\`` as DICOM writes them. A missing or malformed
value is null.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, get_args

import numpy as np

from ...errors import EmptySourceError, ImageDecodeError, SourceFormatError, UsageError
from ...format import NO_LABEL
from ..dicomio import DICOM_SUFFIXES, FramesPolicy, decode_dicom, pydicom
from ..imageio import read_file
from .base import stat_digest
from .columns import MetadataColumns, Value
from .folder import ImageFolderSource, _walk
from .jsonl import JSONL_SUFFIXES

__all__ = ["DEFAULT_DICOM_TAGS", "DicomSource"]

DEFAULT_DICOM_TAGS = (
    "PatientID",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "Modality",
    "SliceThickness",
    "PixelSpacing",
    "RescaleSlope",
    "RescaleIntercept",
    "BitsStored",
    "PhotometricInterpretation",
    "InstanceNumber",
)
FRAME_COLUMN = "frame"  # with frames="samples": the frame's index in its file (from 0)

_INT_VRS = frozenset({"IS", "US", "SS", "UL", "SL", "SV", "UV"})
_FLOAT_VRS = frozenset({"DS", "FL", "FD"})
_MANIFESTS = (".csv", ".tsv", *JSONL_SUFFIXES)


class DicomSource:
    """DICOM files from ``src``: a directory or a ``.csv``/``.tsv``/``.jsonl`` manifest.

    A directory holds one sub-directory per class, walked like
    :class:`~.folder.ImageFolderSource` (``root/<class>/**/<file>``); with
    ``labelled=False`` its whole tree is one unlabelled set (``patient/study/series/``
    layouts). A manifest lists the files (and labels, columns) as for
    :class:`~.csv_source.CsvSource`; its columns come first, the tag columns after.

    frames: what a multi-frame file becomes — ``"error"`` (default: it is skipped with
        a reason naming the two choices), ``"samples"`` (one sample per frame, with a
        ``frame`` column) or ``"channels"`` (one sample, frames as channels).
    dicom_tags: keywords of the tags kept as metadata columns
        (:data:`DEFAULT_DICOM_TAGS`; ``()`` for none).
    """

    def __init__(
        self,
        src: str | os.PathLike[str],
        classes: Sequence[str] | None = None,
        *,
        frames: FramesPolicy = "error",
        dicom_tags: Sequence[str] = DEFAULT_DICOM_TAGS,
        labelled: bool = True,
        path_column: str | None = None,
        label_column: str | None = None,
    ) -> None:
        if frames not in get_args(FramesPolicy):
            raise UsageError(
                f"frames must be one of {', '.join(map(repr, get_args(FramesPolicy)))} "
                f"(got {frames!r})."
            )
        if isinstance(dicom_tags, str):
            raise UsageError(
                f"dicom_tags must be a list of keywords, not the string {dicom_tags!r} — "
                "e.g. dicom_tags=['PatientID', 'Modality']."
            )
        module = _pydicom_or_import_error()
        self.frames: FramesPolicy = frames
        self.labelled = labelled
        self.tags = tuple(dicom_tags)
        self.path = os.path.expanduser(os.fspath(src))
        self._specs = [_TagSpec(module, keyword) for keyword in self.tags]
        self._files, self._labels, self._relpaths, manifest = self._list(
            classes, path_column, label_column
        )
        counts, self._errors, tag_columns = _read_headers(module, self._files, self._specs)
        self._columns = _merged(manifest, tag_columns, frames == "samples", self.path)
        if frames == "samples":
            self._file_of = np.repeat(np.arange(len(self._files), dtype=np.int64), counts)
            starts = np.cumsum(counts) - counts
            self._frame_of = np.arange(len(self._file_of)) - np.repeat(starts, counts)
        else:
            self._file_of = np.arange(len(self._files), dtype=np.int64)
            self._frame_of = None
        self._fingerprint: str | None = None

    # -- building -------------------------------------------------------------------------
    def _list(
        self, classes: Sequence[str] | None, path_column: str | None, label_column: str | None
    ) -> tuple[list[str], list[int], list[str], MetadataColumns]:
        path = Path(self.path)
        if path.is_dir():
            if path_column is not None or label_column is not None:
                raise UsageError(
                    f"{path}: a DICOM directory has no columns to name; path_column= and "
                    "label_column= apply to manifests only."
                )
            return (*self._walk_tree(classes), MetadataColumns.empty())
        if path.suffix.lower() not in _MANIFESTS:
            raise SourceFormatError(
                f"{path}: a DicomSource reads a directory or a manifest "
                f"({'/'.join(_MANIFESTS)}), not a '{path.suffix}' file."
            )
        from .resolve import resolve_source  # the manifest sources read the rows

        inner = resolve_source(path, classes, path_column=path_column, label_column=label_column)
        self.classes = list(inner.classes)
        rows = [inner.load(i) for i in range(len(inner))]
        names = inner.metadata_columns()
        values: list[list[Value]] = [[] for _ in names]
        for i in range(len(inner)):
            row = inner.metadata(i) or {}
            for column, name in zip(values, names, strict=True):
                column.append(row.get(name))
        relpaths = [inner.relpath_of(i) for i in range(len(inner))]
        files = [os.fspath(p) for p, _ in rows]
        return files, [int(label) for _, label in rows], relpaths, MetadataColumns(names, values)

    def _walk_tree(self, classes: Sequence[str] | None) -> tuple[list[str], list[int], list[str]]:
        root = self.path
        if self.labelled:
            tree = _DicomFolder(root, classes)
            self.classes = tree.classes
            files = [path for path, _ in tree.samples]
            return (
                files,
                [label for _, label in tree.samples],
                [tree.relpath_of(i) for i in range(len(tree))],
            )
        self.classes = []
        files = _dicom_files(root)
        if not files:
            raise EmptySourceError(f"{root}: no DICOM files found (*.dcm or DICM preamble).")
        prefix = len(os.path.join(root, ""))
        return files, [NO_LABEL] * len(files), [f[prefix:] for f in files]

    # -- the Source protocol --------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._file_of)

    def load(self, i: int) -> tuple[np.ndarray, int]:
        f = int(self._file_of[i])
        path = self._files[f]
        error = self._errors.get(f)
        if error is not None:
            raise ImageDecodeError(path, error)
        frame = None if self._frame_of is None else int(self._frame_of[i])
        return decode_dicom(read_file(path), path, frame=frame, frames=self.frames), self._labels[f]

    def path_of(self, i: int) -> str:
        return self._files[int(self._file_of[i])]

    def relpath_of(self, i: int) -> str:
        return self._relpaths[int(self._file_of[i])]

    def metadata(self, i: int) -> dict[str, Any] | None:
        if not self._columns.names and self._frame_of is None:
            return None
        f = int(self._file_of[i])
        columns = zip(self._columns.names, self._columns.values, strict=True)
        row: dict[str, Any] = {name: column[f] for name, column in columns}
        if self._frame_of is not None:
            row[FRAME_COLUMN] = int(self._frame_of[i])
        return row

    def metadata_columns(self) -> list[str]:
        extra = [FRAME_COLUMN] if self._frame_of is not None else []
        return [*self._columns.names, *extra]

    @property
    def files(self) -> list[str]:
        """The DICOM files, in packing order (a multi-frame file once)."""
        return self._files

    def describe(self) -> dict[str, Any]:
        where = "root" if os.path.isdir(self.path) else "path"
        return {
            "type": "dicom",
            where: os.path.abspath(self.path),
            "frames": self.frames,
            "dicom_tags": list(self.tags),
            "num_files": len(self._files),
            "num_items": len(self),
        }

    def fingerprint(self) -> str:
        if self._fingerprint is None:
            extra = "\0".join([*self.classes, self.frames, *self.tags, str(self.labelled)])
            self._fingerprint = stat_digest(
                [os.path.abspath(p) for p in self._files], extra.encode("utf-8", "surrogateescape")
            )
        return self._fingerprint


# -- files and headers -------------------------------------------------------------------------
def _pydicom_or_import_error() -> Any:
    return pydicom()  # ImportError with the install hint when missing


class _DicomFolder(ImageFolderSource):
    """ImageFolder's class folders and walk, keeping DICOM files instead of images."""

    _wanted = "DICOM files (*.dcm, *.dicom or a DICM preamble)"

    def _is_sample(self, dirpath: str, fname: str) -> bool:
        return _is_dicom_file(dirpath, fname)


def _is_dicom_file(dirpath: str, fname: str) -> bool:
    if fname.startswith(".") or fname.upper() == "DICOMDIR":
        return False
    return fname.lower().endswith(DICOM_SUFFIXES) or _has_preamble(os.path.join(dirpath, fname))


def _dicom_files(top: str) -> list[str]:
    return [
        os.path.join(dirpath, fname)
        for dirpath, _, fnames in sorted(_walk(top))
        for fname in sorted(fnames)
        if _is_dicom_file(dirpath, fname)
    ]


def _has_preamble(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(132)[128:] == b"DICM"
    except OSError:
        return False


class _TagSpec:
    """One requested tag: its dictionary tag, column names and value type."""

    def __init__(self, module: Any, keyword: str) -> None:
        from pydicom.datadict import dictionary_VM, dictionary_VR, tag_for_keyword

        tag = tag_for_keyword(keyword) if isinstance(keyword, str) else None
        if tag is None:
            raise UsageError(
                f"dicom_tags: {keyword!r} is not a DICOM keyword — use dictionary keywords "
                "such as 'PatientID', 'SliceThickness' (pydicom.datadict.keyword_dict)."
            )
        self.keyword = keyword
        self.tag = tag
        vr = dictionary_VR(tag).split(" or ")[0]
        vm = dictionary_VM(tag)
        kind: type = int if vr in _INT_VRS else float if vr in _FLOAT_VRS else str
        if vm == "1" or (vm.isdigit() and kind is not str):
            self.kind, self.width = kind, int(vm)
        else:  # variable multiplicity, or several text values: one text column
            self.kind, self.width = str, 1
        self.names = [keyword] if self.width == 1 else [f"{keyword}_{k}" for k in range(self.width)]

    def cells(self, ds: Any) -> list[Value]:
        elem = ds.get(self.tag)
        value = None if elem is None else elem.value
        if value is None or value == "" or value == b"":
            return [None] * self.width
        many = isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue"
        values = list(value) if many else [value]
        if self.width > 1:
            return [
                _typed(values[k], self.kind) if k < len(values) else None for k in range(self.width)
            ]
        if self.kind is str:
            return [_interned("\\".join(str(v) for v in values))]
        return [_typed(values[0], self.kind) if len(values) == 1 else None]


def _typed(value: Any, kind: type) -> Value:
    try:
        if kind is int:
            return int(value)
        if kind is float:
            return float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return _interned(str(value))


def _interned(text: str) -> str:
    return sys.intern(text)  # UIDs and codes repeat across a series: one string each


def _read_headers(
    module: Any, files: list[str], specs: list[_TagSpec]
) -> tuple[np.ndarray, dict[int, str], MetadataColumns]:
    """Frame counts, per-file header errors and the tag columns (one list each)."""
    from pydicom.tag import Tag

    wanted = sorted({spec.tag for spec in specs} | {Tag("NumberOfFrames")})
    counts = np.ones(len(files), dtype=np.int64)
    errors: dict[int, str] = {}
    names = [name for spec in specs for name in spec.names]
    values: list[list[Value]] = [[] for _ in names]
    for f, path in enumerate(files):
        cells: list[Value] = []
        try:
            ds = module.dcmread(path, stop_before_pixels=True, specific_tags=wanted, force=True)
            claimed = max(1, int(ds.get("NumberOfFrames", 1) or 1))
            # A header may claim any count: every frame takes at least one byte of the
            # file, so a count beyond its size is a damaged or crafted header.
            if claimed > max(1, os.path.getsize(path)):
                raise ValueError(f"NumberOfFrames {claimed} exceeds the file's size")
            counts[f] = claimed
            for spec in specs:
                cells += spec.cells(ds)
        except Exception as e:  # one unreadable header is one skipped file, not a failed source
            errors[f] = " ".join(f"cannot read the DICOM header ({type(e).__name__}: {e})".split())
            cells = [None] * len(names)
        for column, cell in zip(values, cells, strict=True):
            column.append(cell)
    return counts, errors, MetadataColumns(names, values)


def _merged(
    manifest: MetadataColumns, tags: MetadataColumns, frame: bool, where: str
) -> MetadataColumns:
    names = [*manifest.names, *tags.names]
    taken = set(manifest.names)
    for name in [*tags.names, *([FRAME_COLUMN] if frame else [])]:
        if name in taken:
            raise SourceFormatError(
                f"{where}: column {name!r} comes both from the manifest and from "
                "dicom_tags/frames — rename the manifest column or drop the tag."
            )
        taken.add(name)
    return MetadataColumns(names, [*manifest.values, *tags.values])
