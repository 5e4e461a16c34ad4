"""Where the images to pack come from: ImageFolder trees, CSV/TSV and JSON-lines
manifests, Python sequences and datasets.

One module per kind of source (:mod:`.folder`, :mod:`.csv_source`, :mod:`.jsonl`,
:mod:`.sequence`, :mod:`.dicom`), what they share in :mod:`.base` (the :class:`Source` protocol),
:mod:`.manifest` (column detection, labels and class lists) and :mod:`.columns`
(typed per-sample metadata); :func:`resolve_source` picks one (:mod:`.resolve`).
"""

from .base import IMG_EXTENSIONS, MAX_IMPLICIT_CLASSES, MAX_LABEL, Source
from .columns import MetadataColumns
from .csv_source import CsvSource
from .dicom import DEFAULT_DICOM_TAGS, DicomSource
from .folder import ImageFolderSource
from .jsonl import JSONL_SUFFIXES, JsonlSource
from .manifest import LABEL_COLUMNS, PATH_COLUMNS
from .resolve import resolve_source, source_for, with_classes_from
from .sequence import SequenceSource

__all__ = [
    "IMG_EXTENSIONS",
    "JSONL_SUFFIXES",
    "LABEL_COLUMNS",
    "MAX_IMPLICIT_CLASSES",
    "MAX_LABEL",
    "PATH_COLUMNS",
    "Source",
    "ImageFolderSource",
    "CsvSource",
    "DEFAULT_DICOM_TAGS",
    "DicomSource",
    "JsonlSource",
    "SequenceSource",
    "MetadataColumns",
    "resolve_source",
    "source_for",
    "with_classes_from",
]
