"""Low-level, crash-safe writing of one pack file.

Samples stream into ``OUT.partial`` (its header is all zeros, so it never opens as a
pack) while one journal record per processed source item goes to
``OUT.partial.journal``. Data is flushed to the OS before the journal records that
point at it, so after a crash, SIGKILL or Ctrl-C the journal never references bytes
that were not written: :meth:`PackWriter.resume` continues from the last record.

:meth:`PackWriter.commit` copies the journal into the index, appends the metadata,
fsyncs, writes the header last (the commit record), fsyncs again and renames the
temp file onto ``OUT``. :meth:`PackWriter.abort` removes the temp files; an
interrupted writer may instead keep them for a later resume.

Memory stays flat: index entries live in the journal on disk, not in a list.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np

from .. import format as fmt
from ..errors import ResumeError, SourceError

__all__ = ["JOURNAL_DTYPE", "PackWriter", "partial_paths"]

# One record per processed source item, in source order.
JOURNAL_DTYPE = np.dtype(
    [
        ("entry", fmt.INDEX_DTYPE),  # the index entry (unused when skipped)
        ("source_index", "<u8"),  # position of the item in the source
        ("skipped", "u1"),  # 1: the item was unreadable and skipped
        ("pad", "u1", (7,)),
        ("pixels", "<u8"),  # height * width, for the mean/std accumulators
        ("sum", "<f8", (4,)),  # per-channel sum of pixel values
        ("sumsq", "<f8", (4,)),  # per-channel sum of squares
    ]
)
# The same record as JOURNAL_DTYPE, packed by ``struct``: building a numpy structured
# scalar field by field cost ~40 us of GIL-held time per sample in the writer thread,
# time the decoding threads then wait for; one ``struct.pack`` costs ~1 us.
_RECORD = struct.Struct("<QQqIIIBBBB" + "QB7xQ4d4d")
assert _RECORD.size == JOURNAL_DTYPE.itemsize
_NO_STATS = (0.0,) * 4
_JOURNAL_HEAD = 4096  # JSON describing what is being packed, zero-padded
_FLUSH_EVERY = 64  # records buffered before data and journal are flushed


def partial_paths(path: str | os.PathLike[str]) -> tuple[Path, Path, Path]:
    """(temp pack, journal, skipped-reasons JSONL) paths for a pack being written."""
    path = Path(path)
    tmp = path.with_name(path.name + ".partial")
    return tmp, tmp.with_name(tmp.name + ".journal"), tmp.with_name(tmp.name + ".skipped")


class PackWriter:
    """Append samples, then :meth:`commit` (or :meth:`abort`).

    ``resume_key`` is a JSON-able description of source and options; :meth:`resume`
    refuses a partial pack written for a different key.
    """

    def __init__(self, path: str | os.PathLike[str], resume_key: dict[str, Any]) -> None:
        self.path = Path(path)
        self.tmp_path, self.journal_path, self.skipped_path = partial_paths(self.path)
        self.resume_key = resume_key
        self._pending: list[bytes] = []
        self._data = None  # type: Any
        self._journal = None  # type: Any
        self._skipped = None  # type: Any
        self.num_samples = 0
        self.next_source_index = 0
        self._end = fmt.DATA_ALIGN

    @property
    def data_bytes(self) -> int:
        """Bytes of samples written so far (with their alignment)."""
        return self._end - fmt.DATA_ALIGN

    # -- opening -------------------------------------------------------------------------
    def start(self) -> PackWriter:
        """Begin a new partial pack, replacing any previous one."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._data = open(self.tmp_path, "w+b")
        self._data.write(b"\x00" * fmt.DATA_ALIGN)
        self._journal = open(self.journal_path, "w+b")
        head = json.dumps(self.resume_key, sort_keys=True).encode()
        if len(head) > _JOURNAL_HEAD:
            head = json.dumps({"digest": _digest(head)}).encode()
        self._journal.write(head.ljust(_JOURNAL_HEAD, b"\x00"))
        self._journal.flush()
        self._skipped = open(self.skipped_path, "w", encoding="utf-8")
        return self

    def resume(self) -> PackWriter:
        """Continue a partial pack; starts fresh when none exists."""
        if not (self.tmp_path.exists() and self.journal_path.exists()):
            return self.start()
        with open(self.journal_path, "rb") as f:
            head = f.read(_JOURNAL_HEAD)
            body = f.read()
        expected = json.dumps(self.resume_key, sort_keys=True).encode()
        if len(expected) > _JOURNAL_HEAD:
            expected = json.dumps({"digest": _digest(expected)}).encode()
        if head.rstrip(b"\x00") != expected:
            raise ResumeError(
                f"{self.tmp_path}: the partial pack was written from another source or with "
                "other options; rerun without --resume to start over."
            )
        count = len(body) // JOURNAL_DTYPE.itemsize
        records = np.frombuffer(body[: count * JOURNAL_DTYPE.itemsize], dtype=JOURNAL_DTYPE)
        data_size = self.tmp_path.stat().st_size
        # Drop trailing records whose bytes did not fully reach the data file.
        keep = count
        while keep > 0:
            rec = records[keep - 1]
            if rec["skipped"] or int(rec["entry"]["offset"] + rec["entry"]["nbytes"]) <= data_size:
                break
            keep -= 1
        records = records[:keep]
        written = records[~records["skipped"].astype(bool)]["entry"]
        ends = written["offset"] + written["nbytes"]
        self._end = fmt.align(int(ends.max()), fmt.SAMPLE_ALIGN) if len(ends) else fmt.DATA_ALIGN
        self.num_samples = len(written)
        self.next_source_index = int(records[-1]["source_index"]) + 1 if keep else 0
        # Truncate both files to what the surviving records describe.
        self._data = open(self.tmp_path, "r+b")
        # A commit interrupted between writing the header and the rename left a valid
        # header: zero it, or a partial file that grows again would look like a pack.
        self._data.write(b"\x00" * fmt.HEADER_SIZE)
        self._data.truncate(self._end)
        self._data.seek(self._end)
        self._journal = open(self.journal_path, "r+b")
        self._journal.truncate(_JOURNAL_HEAD + keep * JOURNAL_DTYPE.itemsize)
        self._journal.seek(0, os.SEEK_END)
        self._skipped = open(self.skipped_path, "a", encoding="utf-8")
        return self

    # -- writing -------------------------------------------------------------------------
    def append(
        self,
        data: bytes | memoryview,
        *,
        source_index: int,
        height: int,
        width: int,
        channels: int,
        dtype_code: int,
        mode_code: int,
        label: int,
        stats: tuple[int, np.ndarray, np.ndarray] | None = None,
        checksum: int | None = None,
    ) -> int:
        """Write one sample's stored bytes; returns its sample index.

        ``checksum``: ``fmt.checksum(data)`` when the caller computed it already (the
        packer does, in its workers, so the single writer thread only writes).
        """
        pixels, sums, sumsq = 0, _NO_STATS, _NO_STATS
        if stats is not None:
            pixels = stats[0]
            sums = (*stats[1].tolist(), 0.0, 0.0, 0.0)[:4]
            sumsq = (*stats[2].tolist(), 0.0, 0.0, 0.0)[:4]
        size = len(data)
        record = _RECORD.pack(
            self._end, size, label, height, width,
            fmt.checksum(data) if checksum is None else checksum,
            channels, dtype_code, mode_code, 0,
            source_index, 0, pixels, *sums, *sumsq,
        )  # fmt: skip
        self._data.write(data)
        padded = fmt.align(self._end + size, fmt.SAMPLE_ALIGN)
        if padded > self._end + size:
            self._data.write(b"\x00" * (padded - self._end - size))
        self._end = padded
        self._push(record, source_index)
        self.num_samples += 1
        return self.num_samples - 1

    def skip(self, source_index: int, path: str, reason: str) -> None:
        """Record an unreadable source item (reported in the pack's metadata)."""
        record = _RECORD.pack(
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, source_index, 1, 0, *_NO_STATS, *_NO_STATS
        )
        self._skipped.write(
            json.dumps({"source_index": source_index, "path": path, "reason": reason}) + "\n"
        )
        self._push(record, source_index)

    def _push(self, record: bytes, source_index: int) -> None:
        self._pending.append(record)
        self.next_source_index = source_index + 1
        if len(self._pending) >= _FLUSH_EVERY:
            self.flush()

    def flush(self) -> None:
        """Data first, then the journal records that point at it."""
        self._data.flush()
        self._skipped.flush()
        if self._pending:
            self._journal.write(b"".join(self._pending))
            self._pending.clear()
        self._journal.flush()

    # -- reading back the journal ---------------------------------------------------------
    def records(self) -> np.ndarray:
        """All journal records so far (a memory map; flushes first)."""
        self.flush()
        size = self.journal_path.stat().st_size - _JOURNAL_HEAD
        count = size // JOURNAL_DTYPE.itemsize
        if count == 0:
            return np.zeros(0, dtype=JOURNAL_DTYPE)
        return np.memmap(self.journal_path, JOURNAL_DTYPE, "r", _JOURNAL_HEAD, (count,))

    def skipped(self) -> list[dict[str, Any]]:
        """Skipped items recorded so far, in source order, deduplicated after resumes."""
        self.flush()
        found: dict[int, dict[str, Any]] = {}
        with open(self.skipped_path, encoding="utf-8") as f:
            for line in f:
                try:
                    item = json.loads(line)
                except json.JSONDecodeError:  # a line cut by a crash
                    continue
                found[int(item["source_index"])] = item
        kept = self.records()
        valid = set(kept["source_index"][kept["skipped"].astype(bool)].tolist())
        return [found[i] for i in sorted(found) if i in valid]

    # -- finishing -----------------------------------------------------------------------
    def commit(self, metadata: dict[str, Any], sections: dict[str, Any] | None = None) -> Path:
        """Write index, sections, metadata and header; atomically rename onto the final
        path. ``sections``: name -> bytes-like (e.g. a numpy array), each written on a
        SECTION_ALIGN boundary after the index and listed in ``metadata["sections"]``."""
        records = self.records()
        entries = records["entry"][~records["skipped"].astype(bool)]
        index_offset = fmt.align(self._end, 8)
        self._data.seek(index_offset)
        chunk = 1 << 16
        index_crc = 0
        for start in range(0, len(entries), chunk):
            block = np.ascontiguousarray(entries[start : start + chunk]).tobytes()
            index_crc = _crc_update(index_crc, block)
            self._data.write(block)
        end = index_offset + len(entries) * fmt.INDEX_DTYPE.itemsize
        listed = {}
        for name, data in (sections or {}).items():
            view = memoryview(np.ascontiguousarray(data)).cast("B")
            offset = fmt.align(end, fmt.SECTION_ALIGN)
            self._data.seek(offset)
            self._data.write(view)
            listed[name] = {"offset": offset, "nbytes": len(view), "crc32": fmt.checksum(view)}
            end = offset + len(view)
        if listed:
            metadata = {**metadata, "sections": listed}
        meta_offset = end
        self._data.seek(meta_offset)
        meta = fmt.encode_metadata(metadata)
        if len(meta) > fmt.MAX_METADATA_BYTES:  # readers would refuse the pack
            raise SourceError(
                f"{self.path}: the pack's metadata would be {len(meta)} bytes, over the "
                f"{fmt.MAX_METADATA_BYTES} a pack may hold (millions of skipped files or "
                "class names?); fix or remove the unreadable files and pack again."
            )
        self._data.write(meta)
        file_size = meta_offset + len(meta)
        self._data.truncate(file_size)
        self._data.flush()
        os.fsync(self._data.fileno())
        header = fmt.encode_header(
            num_samples=len(entries),
            data_offset=fmt.DATA_ALIGN,
            index_offset=index_offset,
            entry_size=fmt.INDEX_DTYPE.itemsize,
            index_crc32=index_crc,
            meta_offset=meta_offset,
            meta_nbytes=len(meta),
            meta_crc32=fmt.checksum(meta),
            file_size=file_size,
        )
        self._data.seek(0)
        self._data.write(header)
        self._data.flush()
        os.fsync(self._data.fileno())
        self._close()
        os.replace(self.tmp_path, self.path)
        _fsync_dir(self.path.parent)
        self._remove_sidecars()
        return self.path

    def abort(self, keep_partial: bool = False) -> None:
        """Stop writing. Without ``keep_partial`` every temp file is removed.

        Called while an error propagates, so it raises nothing itself: on a full disk,
        closing a file flushes its buffer and fails again, and the files must still be
        closed and removed (else the partial pack's whole size stays on the full disk).
        """
        if keep_partial and self._data is not None:
            try:
                self.flush()
            except (OSError, ValueError):
                pass
        self._close(raise_errors=False)
        if not keep_partial:
            for path in (self.tmp_path, self.journal_path, self.skipped_path):
                try:
                    path.unlink(missing_ok=True)
                except OSError:  # pragma: no cover - the directory itself went away
                    pass

    def _close(self, raise_errors: bool = True) -> None:
        """Close every file, even when closing one fails (its buffer's flush raised:
        the file is closed all the same); then raise the first error."""
        first: BaseException | None = None
        for f in (self._data, self._journal, self._skipped):
            if f is not None and not f.closed:
                try:
                    f.close()
                except (OSError, ValueError) as exc:
                    first = first or exc
        if first is not None and raise_errors:
            raise first

    def _remove_sidecars(self) -> None:
        self.journal_path.unlink(missing_ok=True)
        self.skipped_path.unlink(missing_ok=True)


def _crc_update(crc: int, data: bytes) -> int:
    import zlib

    return zlib.crc32(data, crc) & 0xFFFFFFFF


def _digest(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
