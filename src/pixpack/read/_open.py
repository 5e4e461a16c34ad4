"""Validating a pack file's header and mapping it: the one place that trusts nothing.

The checks run in the order that gives the most useful message: no magic means "not
a pack" (an unfinished write keeps an all-zero header), then the version (a newer
pixpack may lay its header out differently), then the header CRC, the offsets'
consistency, the file size and the metadata CRC. Nothing here depends on the
number of samples: the index is mapped, never read or checked (``verify`` does that).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from .. import format as fmt
from ..errors import CorruptPackError, NotAPackError, TruncatedPackError, UnsupportedVersionError
from ..regular_files import open_regular
from ..storage import Access, LocalFile

__all__ = ["OpenedFile", "open_file", "index_dtype"]


@lru_cache(maxsize=8)
def index_dtype(entry_size: int) -> np.dtype:
    """INDEX_DTYPE with a stride of ``entry_size``: columns appended later are skipped."""
    fields: Any = fmt.INDEX_DTYPE.fields
    names = list(fields)
    spec: Any = {
        "names": names,
        "formats": [fields[n][0] for n in names],
        "offsets": [fields[n][1] for n in names],
        "itemsize": entry_size,
    }
    return np.dtype(spec)


@dataclass
class OpenedFile:
    header: np.void
    header_bytes: bytes
    metadata: dict[str, Any]
    buffer: Any  # mmap.mmap, or bytes when read into memory
    index: np.ndarray
    storage: LocalFile | None = None  # None when read into memory
    sections: dict[str, tuple[int, int, int]] = field(default_factory=dict)

    def close(self) -> None:
        self.index = np.zeros(0, dtype=self.index.dtype)
        if self.storage is not None:
            self.storage.close()
        self.buffer = b""


def _not_a_pack(path: os.PathLike[str] | str) -> NotAPackError:
    return NotAPackError(
        f"{path} is not a pixpack file (no header; an unfinished or interrupted write?) "
        "— give the path of a pack, made with `pixpack pack SRC NEW.pixpack`",
        path,
    )


def _not_regular(path: os.PathLike[str] | str, why: str) -> NotAPackError:
    if why.endswith("(a directory)"):  # an image folder not packed yet, most likely
        folder = os.path.normpath(os.fspath(path))
        return NotAPackError(
            f"{path} is a directory, not a pack; pack it first: pixpack pack {folder} "
            f"{folder}.pixpack (or pixpack.cached({folder!r}) from Python)",
            path,
        )
    return NotAPackError(f"{path}: {why}; give the path of a pack", path)


def _check_header(path: Any, raw: bytes, size: int) -> np.void:
    if len(raw) < len(fmt.MAGIC) or raw[: len(fmt.MAGIC)] != fmt.MAGIC:
        raise _not_a_pack(path)
    if len(raw) < fmt.HEADER_SIZE:
        raise TruncatedPackError(
            f"{path} is truncated inside its header ({size} bytes); copy it again or re-pack it",
            path,
        )
    major = int(np.frombuffer(raw, dtype="<u2", count=1, offset=8)[0])
    minor = int(np.frombuffer(raw, dtype="<u2", count=1, offset=10)[0])
    if major > fmt.FORMAT_MAJOR:
        raise UnsupportedVersionError(
            f"{path} uses pack format {major}.{minor}, newer than this pixpack reads "
            f"({fmt.FORMAT_MAJOR}.x); upgrade pixpack (pip install -U pixpack)",
            path,
        )
    if not fmt.header_crc_ok(raw) or major < 1:
        raise CorruptPackError(
            f"{path}: the header is damaged (checksum mismatch); re-pack or copy it again",
            path,
        )
    header = fmt.decode_header(raw)
    assert header is not None  # the magic was checked above
    return header


def _check_layout(path: Any, h: np.void, size: int) -> None:
    n, entry = int(h["num_samples"]), int(h["entry_size"])
    data, index = int(h["data_offset"]), int(h["index_offset"])
    meta, meta_n, total = int(h["meta_offset"]), int(h["meta_nbytes"]), int(h["file_size"])
    problem = None
    if entry < fmt.INDEX_DTYPE.itemsize:
        problem = f"index entries of {entry} bytes (at least {fmt.INDEX_DTYPE.itemsize})"
    elif not fmt.HEADER_SIZE <= data <= index:
        problem = f"data offset {data} / index offset {index}"
    elif index + n * entry > meta:
        problem = f"an index of {n} x {entry} bytes at {index} overlapping metadata at {meta}"
    elif meta + meta_n > total:
        problem = f"metadata at {meta} (+{meta_n}) past the file end {total}"
    elif meta_n > fmt.MAX_METADATA_BYTES:
        problem = f"{meta_n} bytes of metadata (a pack holds at most {fmt.MAX_METADATA_BYTES})"
    if problem is not None:
        raise CorruptPackError(
            f"{path}: the header records {problem}; the file is damaged — re-pack it", path
        )
    if size < total:
        raise TruncatedPackError(
            f"{path} is truncated: {size} bytes on disk but its header records {total}; "
            "the copy or download was cut short — copy it again or re-pack it",
            path,
        )
    if size > total:
        raise CorruptPackError(
            f"{path} has {size - total} unexpected bytes past its recorded end ({total}); "
            "it was modified after packing — re-pack it",
            path,
        )


def open_file(
    path: str | os.PathLike[str], *, in_memory: bool = False, access: Access = "random"
) -> OpenedFile:
    """Validate and map (or read) a pack. Raises the PackError subclasses.

    ``access`` advises the map's data region for how samples will be read (see
    :mod:`pixpack.storage.local`)."""
    with open_regular(path, lambda why: _not_regular(path, why)) as f:
        size = os.fstat(f.fileno()).st_size
        raw = f.read(fmt.HEADER_SIZE)
        header = _check_header(path, raw, size)
        _check_layout(path, header, size)
        meta_offset, meta_n = int(header["meta_offset"]), int(header["meta_nbytes"])
        f.seek(meta_offset)
        meta_raw = f.read(meta_n)
        if len(meta_raw) != meta_n or fmt.checksum(meta_raw) != int(header["meta_crc32"]):
            raise CorruptPackError(
                f"{path}: the metadata is damaged (checksum mismatch); re-pack it", path
            )
        try:
            metadata = fmt.decode_metadata(meta_raw)
        except (ValueError, UnicodeDecodeError) as exc:
            message = f"{path}: unreadable metadata ({exc}); re-pack it"
            raise CorruptPackError(message, path) from None
        index_end = int(header["index_offset"]) + int(header["num_samples"]) * int(
            header["entry_size"]
        )
        try:  # sections lie between the index and the metadata (minor >= 1)
            sections = fmt.check_sections(metadata, index_end, meta_offset)
        except ValueError as exc:
            raise CorruptPackError(f"{path}: {exc}; re-pack it", path) from None
        if in_memory:
            f.seek(0)
            buffer: Any = f.read()
            if len(buffer) != int(header["file_size"]):
                raise TruncatedPackError(f"{path} changed while it was being read", path)
            storage = None
        else:
            data = (int(header["data_offset"]), int(header["index_offset"]))
            storage = LocalFile(f, access, *data)
            buffer = storage.map
    # frombuffer (not np.ndarray(buffer=)) holds a buffer export, so the map cannot be
    # closed while the index or a column view of it is alive.
    index = np.frombuffer(
        buffer,
        dtype=index_dtype(int(header["entry_size"])),
        count=int(header["num_samples"]),
        offset=int(header["index_offset"]),
    )
    return OpenedFile(header, bytes(raw), metadata, buffer, index, storage, sections)
