"""Full verification of a pack: index CRC, every sample's CRC, and the layout.

Opening a pack deliberately checks nothing whose cost grows with the number of
samples; this is the thorough counterpart (``pixpack verify``). It streams: the index
is read with ``pread`` ``_ENTRIES`` entries at a time (its CRC, the layout checks and
the samples' CRCs all run on that slice), sample bytes in large ``pread`` windows, never
through the memory map. Memory therefore stays flat at any sample count and for packs
larger than RAM; the one exception is a pack whose samples are not stored in index
order (only a damaged or foreign writer makes one), whose overlap check sorts every
offset. At most ``MAX_REPORTED`` damaged samples are named; more are counted.
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import numpy as np

from .. import format as fmt
from ..errors import NotAPackError
from ..progress import Progress
from ..regular_files import open_regular
from ._open import index_dtype, open_file

__all__ = ["MAX_REPORTED", "VerifyReport", "verify"]

_CHUNK = 16 << 20  # bytes per read
_ENTRIES = 1 << 16  # index entries per step (2.6 MB of index): memory does not grow with n
MAX_REPORTED = 100_000  # damaged samples named in a report; further ones are counted


@dataclass
class VerifyReport:
    """What :func:`verify` found. ``bad_samples`` maps a sample index to why it failed."""

    path: Path
    num_samples: int
    bytes_checked: int = 0
    index_ok: bool = True
    bad_samples: dict[int, str] = field(default_factory=dict)
    structure_errors: list[str] = field(default_factory=list)
    unlisted: int = 0  # damaged samples beyond MAX_REPORTED: counted, not named

    def _add(self, found: dict[int, str]) -> None:
        for i, why in found.items():
            if i in self.bad_samples:
                continue
            if len(self.bad_samples) < MAX_REPORTED:
                self.bad_samples[i] = why
            else:
                self.unlisted += 1

    @property
    def ok(self) -> bool:
        return self.index_ok and not self.bad_samples and not self.structure_errors

    def problems(self) -> list[str]:
        """One line per problem, for people."""
        lines = list(self.structure_errors)
        if not self.index_ok:
            lines.append("the index does not match its checksum (labels or offsets damaged)")
        lines += [f"sample {i}: {why}" for i, why in sorted(self.bad_samples.items())]
        if self.unlisted:
            lines.append(f"... and {self.unlisted} more damaged samples")
        return lines

    def summary(self) -> str:
        if self.ok:
            return (
                f"{self.path}: ok — {self.num_samples} samples, index and every sample "
                f"checksum match ({_size(self.bytes_checked)} checked)"
            )
        bad = sorted(self.bad_samples)
        shown = ", ".join(map(str, bad[:20])) + (" ..." if len(bad) > 20 else "")
        parts = []
        if bad:
            parts.append(f"{len(bad) + self.unlisted} damaged sample(s): {shown}")
        if not self.index_ok:
            parts.append("index checksum mismatch")
        parts += self.structure_errors
        return f"{self.path}: FAILED — " + "; ".join(parts) + "; re-pack it from the source"


def _size(nbytes: float) -> str:
    units = ("B", "kB", "MB", "GB", "TB")
    power = 0
    while nbytes >= 1000 and power < len(units) - 1:
        nbytes /= 1000
        power += 1
    return f"{nbytes:.0f} B" if power == 0 else f"{nbytes:.1f} {units[power]}"


class _Layout:
    """The layout checks of one slice of the index, carrying state across slices."""

    def __init__(self, header: np.void, classes: int) -> None:
        self.lo, self.hi = int(header["data_offset"]), int(header["index_offset"])
        self.classes = classes
        self.ordered = True
        self.last_offset = 0
        self.max_end, self.max_end_at = 0, -1  # the furthest end of a sample so far

    def check(self, chunk: np.ndarray, first: int, found: dict[int, str]) -> np.ndarray:
        """Record problems of samples ``first...`` in ``found``; returns the mask of
        samples worth checksumming (they lie inside the data region)."""
        offsets = chunk["offset"].astype(np.uint64)
        nbytes = chunk["nbytes"].astype(np.uint64)
        ends = offsets + nbytes
        inside = (offsets >= self.lo) & (ends <= self.hi) & (ends >= offsets)

        def note(mask: np.ndarray, why: object) -> None:
            for k in np.flatnonzero(mask).tolist():
                found.setdefault(first + k, why(k) if callable(why) else str(why))

        note(~inside, lambda k: f"points outside the data region (offset {int(offsets[k])})")
        itemsize = np.zeros(len(chunk), dtype=np.uint64)
        known = np.zeros(len(chunk), dtype=bool)
        for code, dtype in fmt.DTYPE_FROM_CODE.items():
            hit = chunk["dtype"] == code
            itemsize[hit], known[hit] = cast(np.dtype, dtype).itemsize, True
        modes = chunk["mode"]
        known &= np.isin(modes, list(fmt.MODE_NAMES))
        note(~known, "unknown storage mode or pixel type")
        heights, widths, channels = chunk["height"], chunk["width"], chunk["channels"]
        jpeg_channels = (modes != fmt.MODE_JPEG) | np.isin(channels, (1, 3))
        impossible = (heights == 0) | (widths == 0) | (channels == 0) | ~jpeg_channels
        note(impossible, lambda k: f"impossible shape {heights[k]}x{widths[k]}x{channels[k]}")
        pixels = (
            heights.astype(np.uint64) * widths.astype(np.uint64)
            * channels.astype(np.uint64) * itemsize
        )  # fmt: skip
        wrong = known & (modes == fmt.MODE_RAW) & (pixels != nbytes)
        note(wrong, lambda k: f"raw size {int(nbytes[k])} bytes != its recorded shape")
        short = known & (modes == fmt.MODE_LOSSLESS) & (nbytes < fmt.LOSSLESS_HEADER_SIZE)
        note(short, lambda k: f"lossless sample of {int(nbytes[k])} bytes: shorter than its header")
        labels = chunk["label"]
        bad_label = labels < fmt.NO_LABEL
        if self.classes:
            bad_label |= labels >= self.classes
        note(bad_label, lambda k: f"label {int(labels[k])} is not a class index")
        self._order_and_overlap(offsets, np.where(inside, ends, 0), inside, first, found)
        return inside

    def _order_and_overlap(
        self, offsets: np.ndarray, ends: np.ndarray, inside: np.ndarray, first: int,
        found: dict[int, str],
    ) -> None:  # fmt: skip
        """In index order, a sample overlaps when it starts before the furthest end of
        the samples before it (exact for a pack stored in index order)."""
        if len(offsets) == 0:
            return
        previous = np.concatenate(([self.last_offset], offsets[:-1]))
        backwards = offsets < previous
        backwards[0] &= first > 0
        # Past the first sample stored before its predecessor the running end means
        # nothing: the sorted check at the end (_overlaps_out_of_order) takes over.
        limit = len(offsets) if self.ordered else 0
        if self.ordered and backwards.any():
            limit, self.ordered = int(np.argmax(backwards)), False
        self.last_offset = int(offsets[-1])
        running = np.maximum(np.maximum.accumulate(ends), self.max_end)
        positions = np.arange(first, first + len(ends))
        at = np.where(ends == running, positions, -1)
        at = np.maximum(np.maximum.accumulate(at), self.max_end_at)
        before = np.concatenate(([self.max_end], running[:-1]))
        before_at = np.concatenate(([self.max_end_at], at[:-1]))
        for k in np.flatnonzero(inside[:limit] & (offsets[:limit] < before[:limit])).tolist():
            found.setdefault(first + k, f"overlaps sample {int(before_at[k])}")
        self.max_end, self.max_end_at = int(running[-1]), int(at[-1])


def _crc_range(fd: int, offset: int, nbytes: int) -> int:
    crc = 0
    while nbytes > 0:
        block = os.pread(fd, min(nbytes, _CHUNK), offset)
        if not block:
            break
        crc = zlib.crc32(block, crc)
        offset += len(block)
        nbytes -= len(block)
    return crc & 0xFFFFFFFF


class _Window:
    """Sample bytes read ahead in ``_CHUNK`` windows (one pread for many samples)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.data, self.start, self.end = memoryview(b""), 0, 0

    def mismatches(self, offsets: list[int], sizes: list[int], crcs: list[int]) -> list[int]:
        """Positions ``j`` whose bytes do not match ``crcs[j]`` (the hot loop: locals only)."""
        fd, data, start, end = self.fd, self.data, self.start, self.end
        crc32, pread = zlib.crc32, os.pread
        bad = []
        for j, (offset, nbytes, expected) in enumerate(zip(offsets, sizes, crcs, strict=True)):
            if nbytes > _CHUNK:
                crc = _crc_range(fd, offset, nbytes)
            else:
                if not (start <= offset and offset + nbytes <= end):
                    data = memoryview(pread(fd, _CHUNK, offset))
                    start, end = offset, offset + len(data)
                crc = crc32(data[offset - start : offset - start + nbytes]) & 0xFFFFFFFF
            if crc != expected:
                bad.append(j)
        self.data, self.start, self.end = data, start, end
        return bad


def verify(path: str | os.PathLike[str], *, progress: bool | None = None) -> VerifyReport:
    """Recompute every checksum and check the layout of the pack at ``path``.

    Header, metadata, version and size problems raise the same errors as opening;
    everything else is collected in the returned :class:`VerifyReport`.
    ``progress``: None shows a bar on a TTY only; True/False force it.
    """
    path = Path(getattr(path, "path", path))
    from .shard_parts import manifest_path

    manifest = manifest_path(path)
    if manifest is not None:  # a sharded pack: the manifest, then every shard
        from .sharded_verify import verify_sharded

        return verify_sharded(manifest, progress=progress)
    opened = open_file(path)  # header, size and metadata checks; the map is not used
    header = opened.header
    classes = len(opened.metadata.get("classes") or [])
    sections = opened.sections
    opened.close()
    n, entry = int(header["num_samples"]), int(header["entry_size"])
    dtype = index_dtype(entry)
    report = VerifyReport(path, n)
    layout = _Layout(header, classes)
    total = n * entry + int(header["index_offset"]) - int(header["data_offset"])
    refuse = lambda reason: NotAPackError(f"{path}: {reason}", path)  # noqa: E731
    index_crc = 0
    bar = Progress(total, f"verify {path.name}", progress, unit="B")
    with open_regular(path, refuse) as f, bar:
        fd = f.fileno()
        window = _Window(fd)
        for first in range(0, n, _ENTRIES):
            count = min(_ENTRIES, n - first)
            raw = os.pread(fd, count * entry, int(header["index_offset"]) + first * entry)
            index_crc = zlib.crc32(raw, index_crc)
            chunk = np.frombuffer(raw, dtype=dtype, count=len(raw) // entry)
            found: dict[int, str] = {}
            inside = layout.check(chunk, first, found)
            rows = chunk[inside]
            checked = int(rows["nbytes"].sum(dtype=np.uint64))
            bad = window.mismatches(
                rows["offset"].tolist(), rows["nbytes"].tolist(), rows["checksum"].tolist()
            )
            positions = np.flatnonzero(inside)
            for j in bad:
                found.setdefault(first + int(positions[j]), _MISMATCH)
            report._add(found)
            report.bytes_checked += len(raw) + checked
            bar.update(len(raw) + checked)
        for name, (offset, nbytes, crc) in sections.items():  # metadata columns, SQL image
            if _crc_range(fd, offset, nbytes) != crc:
                report.structure_errors.append(f"section {name!r} is damaged (checksum mismatch)")
    report.index_ok = (index_crc & 0xFFFFFFFF) == int(header["index_crc32"])
    if not layout.ordered:
        report.structure_errors.append("samples are not stored in index order")
        _overlaps_out_of_order(path, header, report)
    return report


_MISMATCH = "checksum mismatch (the stored bytes are damaged)"


def _overlaps_out_of_order(path: Path, header: np.void, report: VerifyReport) -> None:
    """The overlap check of a pack not stored in index order: sorts every offset (O(n)
    memory, for damaged packs only)."""
    opened = open_file(path)
    try:
        index = opened.index
        offsets = index["offset"].astype(np.uint64)
        ends = offsets + index["nbytes"].astype(np.uint64)
        lo, hi = int(header["data_offset"]), int(header["index_offset"])
        inside = np.flatnonzero((offsets >= lo) & (ends <= hi) & (ends >= offsets))
        order = inside[np.argsort(offsets[inside], kind="stable")]
        overlap = offsets[order][1:] < ends[order][:-1]
        report._add(
            {
                int(order[k + 1]): f"overlaps sample {int(order[k])}"
                for k in np.flatnonzero(overlap).tolist()
            }
        )
    finally:
        opened.close()
