"""One exception hierarchy for everything pixpack raises on purpose.

::

    PixpackError                      base of every expected error
    ├── UsageError                    a bad option or argument (CLI exit code 2)
    │   ├── OutputExistsError         an output folder already holds files (exit code 1)
    │   ├── MissingDependencyError    a feature's optional package (torch, tensorflow ...) is absent
    │   └── PipelineError             a pipeline output the batch cannot hold (never skipped)
    ├── SourceError                   the input dataset cannot be packed
    │   ├── EmptySourceError          no images / an empty class folder
    │   ├── SourceFormatError         a bad CSV row, an unknown label ...
    │   └── ImageDecodeError          one image is unreadable (skipped unless strict)
    ├── PackError                     a pack file cannot be used
    │   ├── NotAPackError             no pixpack header (or an unfinished write)
    │   ├── UnsupportedVersionError   written by a newer pixpack
    │   ├── CorruptPackError          checksums or structure do not match
    │   │   └── TruncatedPackError    the file is shorter than its header says
    │   ├── UnsupportedModeError      a sample's storage mode is unknown to this version
    │   └── RemoteError               a remote read failed after its retries (names the URL)
    ├── ResumeError                   --resume found nothing compatible to resume
    ├── OutputBusyError               another process is packing into the same OUT
    ├── EngineError                   a cluster engine cannot be reached, or a task on it failed
    └── LoaderError                   a sample failed inside the loader (carries the index)

Every message names the file (or sample) and says how to fix it, in one line, so
the CLI can print it without a traceback. Subclasses of built-in errors are mixed in
where callers already expect them (``FileNotFoundError``, ``ValueError``).
"""

from __future__ import annotations

import os

__all__ = [
    "PixpackError",
    "UsageError",
    "SourceError",
    "EmptySourceError",
    "SourceFormatError",
    "ImageDecodeError",
    "PackError",
    "NotAPackError",
    "UnsupportedVersionError",
    "CorruptPackError",
    "TruncatedPackError",
    "UnsupportedModeError",
    "RemoteError",
    "ResumeError",
    "OutputBusyError",
    "EngineError",
    "OutputExistsError",
    "PipelineError",
    "MissingDependencyError",
    "LoaderError",
]


class PixpackError(Exception):
    """Base class of every error pixpack raises on purpose."""


class UsageError(PixpackError, ValueError):
    """An invalid option value or argument combination."""


class MissingDependencyError(UsageError, ImportError):
    """A feature needs an optional package that is not installed; the message says
    which ``pip install`` fixes it. ``.package`` is the import name."""

    def __init__(self, message: str, package: str) -> None:
        super().__init__(message)
        self.package = package
        self.name = package  # ImportError's attribute

    def __reduce__(self) -> tuple:
        return (type(self), (str(self), self.package))


class SourceError(PixpackError):
    """The dataset to pack cannot be read."""


class EmptySourceError(SourceError, FileNotFoundError):
    """The source holds no images, or a class folder is empty."""


class SourceFormatError(SourceError, ValueError):
    """A malformed source description (CSV row, label, path)."""


class ImageDecodeError(SourceError):
    """One image could not be decoded. ``path`` and ``reason`` say which and why."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class PackError(PixpackError):
    """A pack file cannot be opened or read. ``path`` names it."""

    def __init__(self, message: str, path: str | os.PathLike[str] | None = None) -> None:
        self.path = None if path is None else os.fspath(path)
        super().__init__(message)


class NotAPackError(PackError):
    """The file has no valid pixpack header."""


class UnsupportedVersionError(PackError):
    """The pack was written by a newer, incompatible pixpack."""


class CorruptPackError(PackError):
    """The pack's structure or checksums are inconsistent."""


class TruncatedPackError(CorruptPackError):
    """The file is shorter than its header records."""


class UnsupportedModeError(PackError):
    """A sample uses a storage mode this version cannot decode."""


class RemoteError(PackError):
    """Reading a remote pack (``s3://``, ``gs://``, ``az://``, ``https://``) failed after
    its retries, or ran past its deadline. ``path`` is the URL; ``attempts`` counts the
    tries made."""

    def __init__(self, message: str, path: str | None = None, attempts: int = 0) -> None:
        super().__init__(message, path)
        self.attempts = attempts

    def __reduce__(self) -> tuple:
        return (type(self), (str(self), self.path, self.attempts))


class ResumeError(PixpackError):
    """``resume=True`` found a partial pack that cannot be continued."""


class OutputBusyError(PixpackError):
    """Another process holds the lock on the pack being written (``OUT.partial.lock``)."""


class EngineError(PixpackError):
    """Packing on a cluster engine (``engine=``) failed: its scheduler cannot be
    reached, or a task died; the message names the engine or the source items."""


class OutputExistsError(UsageError, FileExistsError):
    """An output that must be new already holds files. The arguments are well formed,
    the file system is in the way: the CLI exits 1, not 2."""


class PipelineError(UsageError):
    """The pipeline produced an image the batch cannot hold (another size, channel count
    or dtype): the pipeline's fault, not the sample's, so ``on_error`` never skips it."""


class LoaderError(PixpackError):
    """A sample failed while loading. ``index`` is the sample's index in the pack."""

    def __init__(self, message: str, index: int | None = None) -> None:
        self.index = index
        super().__init__(message)
