"""Full verification of a pack: index CRC, every sample's CRC, and the layout.

Opening a pack deliberately checks nothing whose cost grows with the number of
samples; this is the thorough counterpart (``pixpack verify``). Sample bytes are
streamed with ``pread`` in large chunks rather than through the memory map, so
verifying a pack larger than RAM does not inflate the process's resident memory.
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
from ._open import open_file

__all__ = ["VerifyReport", "verify"]

_CHUNK = 16 << 20  # bytes per read


@dataclass
class VerifyReport:
    """What :func:`verify` found. ``bad_samples`` maps a sample index to why it failed."""

    path: Path
    num_samples: int
    bytes_checked: int = 0
    index_ok: bool = True
    bad_samples: dict[int, str] = field(default_factory=dict)
    structure_errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.index_ok and not self.bad_samples and not self.structure_errors

    def problems(self) -> list[str]:
        """One line per problem, for people."""
        lines = list(self.structure_errors)
        if not self.index_ok:
            lines.append("the index does not match its checksum (labels or offsets damaged)")
        lines += [f"sample {i}: {why}" for i, why in sorted(self.bad_samples.items())]
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
            parts.append(f"{len(bad)} damaged sample(s): {shown}")
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


def _structure(
    report: VerifyReport, index: np.ndarray, header: np.void, classes: int
) -> np.ndarray:
    """Vectorised layout checks; returns the mask of samples worth checksumming."""
    offsets = index["offset"].astype(np.uint64)
    nbytes = index["nbytes"].astype(np.uint64)
    ends = offsets + nbytes
    lo, hi = int(header["data_offset"]), int(header["index_offset"])
    inside = (offsets >= lo) & (ends <= hi) & (ends >= offsets)
    for i in np.flatnonzero(~inside)[:1000].tolist():
        report.bad_samples[i] = f"points outside the data region (offset {int(offsets[i])})"

    itemsize = np.zeros(len(index), dtype=np.uint64)
    known = np.zeros(len(index), dtype=bool)
    for code, dtype in fmt.DTYPE_FROM_CODE.items():
        hit = index["dtype"] == code
        itemsize[hit], known[hit] = cast(np.dtype, dtype).itemsize, True
    modes = index["mode"]
    known &= np.isin(modes, list(fmt.MODE_NAMES))
    for i in np.flatnonzero(~known)[:1000].tolist():
        report.bad_samples.setdefault(i, "unknown storage mode or pixel type")
    pixels = (
        index["height"].astype(np.uint64) * index["width"].astype(np.uint64)
        * index["channels"].astype(np.uint64) * itemsize
    )
    heights, widths, channels = index["height"], index["width"], index["channels"]
    impossible = (heights == 0) | (widths == 0) | ~np.isin(channels, (1, 3, 4))
    for i in np.flatnonzero(impossible)[:1000].tolist():
        report.bad_samples.setdefault(
            i, f"impossible shape {int(heights[i])}x{int(widths[i])}x{int(channels[i])}"
        )
    wrong = known & (modes == fmt.MODE_RAW) & (pixels != nbytes)
    for i in np.flatnonzero(wrong)[:1000].tolist():
        report.bad_samples.setdefault(i, f"raw size {int(nbytes[i])} bytes != its recorded shape")
    labels = index["label"]
    bad_label = (labels < fmt.NO_LABEL) | ((labels >= classes) if classes else False)
    for i in np.flatnonzero(bad_label)[:1000].tolist():
        report.bad_samples.setdefault(i, f"label {int(labels[i])} is not a class index")

    if len(index) > 1:
        if np.any(np.diff(offsets.astype(np.int64)) < 0):
            report.structure_errors.append("samples are not stored in index order")
        order = np.argsort(offsets, kind="stable")
        overlap = offsets[order][1:] < ends[order][:-1]
        for k in np.flatnonzero(overlap)[:1000].tolist():
            i, j = int(order[k + 1]), int(order[k])
            report.bad_samples.setdefault(i, f"overlaps sample {j}")
    return inside


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


def verify(path: str | os.PathLike[str], *, progress: bool | None = None) -> VerifyReport:
    """Recompute every checksum and check the layout of the pack at ``path``.

    Header, metadata, version and size problems raise the same errors as opening;
    everything else is collected in the returned :class:`VerifyReport`.
    ``progress``: None shows a bar on a TTY only; True/False force it.
    """
    path = Path(getattr(path, "path", path))
    opened = open_file(path)
    try:
        header, index = opened.header, opened.index
        n = len(index)
        report = VerifyReport(path, n)
        classes = len(opened.metadata.get("classes") or [])
        checkable = _structure(report, index, header, classes)
        offsets = index["offset"].tolist()
        nbytes = index["nbytes"].tolist()
        checksums = index["checksum"].tolist()
        entry_bytes = n * int(header["entry_size"])
        total = entry_bytes + int(np.asarray(index["nbytes"])[checkable].sum(dtype=np.uint64))
    finally:
        opened.close()

    bar = Progress(total, f"verify {path.name}", progress, unit="B")
    refuse = lambda reason: NotAPackError(f"{path}: {reason}", path)  # noqa: E731
    with open_regular(path, refuse) as f, bar:
        fd = f.fileno()
        index_crc = _crc_range(fd, int(header["index_offset"]), entry_bytes)
        report.index_ok = index_crc == int(header["index_crc32"])
        bar.update(entry_bytes)
        report.bytes_checked += entry_bytes
        window, win_start, win_end, pending = memoryview(b""), 0, 0, 0
        order = sorted(range(n), key=offsets.__getitem__) if report.structure_errors else range(n)
        for i in order:
            if not checkable[i]:
                continue
            off, nb = offsets[i], nbytes[i]
            if nb > _CHUNK:
                crc = _crc_range(fd, off, nb)
            else:
                if not (win_start <= off and off + nb <= win_end):
                    window = memoryview(os.pread(fd, _CHUNK, off))
                    win_start, win_end = off, off + len(window)
                crc = zlib.crc32(window[off - win_start : off - win_start + nb]) & 0xFFFFFFFF
            if crc != checksums[i]:
                report.bad_samples.setdefault(i, "checksum mismatch (the stored bytes are damaged)")
            report.bytes_checked += nb
            pending += nb
            if pending >= _CHUNK:
                bar.update(pending)
                pending = 0
        bar.update(pending)
    return report
