"""Opening a pack: validate the header once, map the file, read samples by index.

Opening costs the same for ten samples or ten million: one 128-byte read for the
header, one read for the (small) JSON metadata, one ``mmap``. The index is never
copied or scanned; it is a numpy structured *view* of the mapped file, so
``pack.targets`` is a strided int64 view whose pages belong to the page cache, not
to this process's anonymous memory.

Every sample read checks its index entry against the header (the sample must lie in
the data region, and raw samples must hold exactly ``h*w*c*itemsize`` bytes; lossless
ones must decompress to exactly that) before touching the map, so a corrupted index
raises :class:`CorruptPackError` instead of reading past the end of the file. What
this cannot prevent: if another process *truncates the file after it was opened*,
touching the lost pages raises SIGBUS, as with any memory map. Packs are written to a
temp file and renamed, so rewriting a pack never does this; only editing the file in
place does.

Packs pickle as their path and options; the map reopens lazily in the receiving
process, so a :class:`Pack` is safe to hand to DataLoader worker processes.
"""

from __future__ import annotations

import operator
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import numpy as np

from .. import format as fmt
from ..errors import CorruptPackError, UnsupportedModeError, UsageError
from ..storage import Access, LocalFile
from ._open import OpenedFile, open_file
from .jpeg import decode_jpeg, jpeg_shape
from .lossless import decode_lossless
from .metadata_access import MetadataAccess

__all__ = ["Pack"]


class Pack(MetadataAccess):
    """A read-only, memory-mapped pack. Use :func:`~.open_any.open_pack` (``pixpack.open``).

    ``pack[i]`` returns ``(image, label)`` with a writable HWC copy of the image;
    :meth:`read_image` with ``copy=False`` returns a read-only zero-copy view for
    raw samples. ``check_checksums=True`` verifies each sample's CRC-32 on read.
    ``access`` says how samples will be read (:mod:`pixpack.storage.local`):
    ``"random"`` reads each sample's exact bytes (no read-around), ``"sequential"``
    reads far ahead, for front-to-back scans.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        in_memory: bool = False,
        check_checksums: bool = False,
        access: Access = "random",
    ) -> None:
        if access not in ("random", "sequential"):
            raise UsageError(f"access must be 'random' or 'sequential' (got {access!r}).")
        self._path = Path(path)
        self._in_memory = bool(in_memory)
        self._check = bool(check_checksums)
        self._access: Access = access
        self._expected_header: bytes | None = None
        self._closed = False
        self._reset()
        self._load()

    # -- opening ---------------------------------------------------------------------------
    def _reset(self) -> None:
        self._file: OpenedFile | None = None
        self._storage: LocalFile | None = None
        self._advise = False
        self._mv: memoryview | None = None
        self._u8: Any = None
        self._index: np.ndarray | None = None
        self._labels: Any = None
        self._heights: Any = None
        self._widths: Any = None
        self._channels: Any = None
        self._columns: Any = None
        self._sections: dict[str, tuple[int, int, int]] = {}
        old, self._sql = getattr(self, "_sql", None), None  # the metadata's SQLite table
        if old is not None:
            old.close()

    def _load(self) -> np.ndarray:
        """Open (or reopen after unpickling) and return the index view."""
        if self._closed:
            raise ValueError(f"{self._path}: the pack is closed; open it again with pixpack.open")
        opened = open_file(self._path, in_memory=self._in_memory, access=self._access)
        if self._expected_header is not None and opened.header_bytes != self._expected_header:
            opened.close()
            raise CorruptPackError(
                f"{self._path} changed on disk since it was opened (re-packed?); "
                "open it again with pixpack.open",
                self._path,
            )
        self._expected_header = opened.header_bytes
        self._file = opened
        self._mv = memoryview(opened.buffer)
        self._u8 = np.frombuffer(opened.buffer, dtype=np.uint8)
        self._data_offset = int(opened.header["data_offset"])
        self._index_offset = int(opened.header["index_offset"])
        self._n = int(opened.header["num_samples"])
        self._file_size = int(opened.header["file_size"])
        self._storage = opened.storage
        # Random access asks for each sample's exact bytes before touching them.
        self._advise = opened.storage is not None and self._access == "random"
        # Cached column views (strided, zero-copy): the hot paths index these.
        self._labels = opened.index["label"]
        self._heights = opened.index["height"]
        self._widths = opened.index["width"]
        self._channels = opened.index["channels"]
        meta = opened.metadata
        self._metadata = meta
        self._sections = opened.sections
        classes = meta.get("classes") or []
        self._classes = [str(c) for c in classes]
        self._class_to_idx = {c: i for i, c in enumerate(self._classes)}
        self._index = opened.index  # last: other threads test it to see "opened"
        return opened.index

    def _idx(self) -> np.ndarray:
        index = self._index
        return index if index is not None else self._load()

    # -- pickling and lifetime -------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        return {
            "path": self._path,
            "in_memory": self._in_memory,
            "check_checksums": self._check,
            "access": self._access,
            "header": self._expected_header,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._path = state["path"]
        self._in_memory = state["in_memory"]
        self._check = state["check_checksums"]
        self._access = state.get("access", "random")
        self._expected_header = state["header"]
        self._closed = False
        self._reset()  # reopened lazily, on first use in this process

    def close(self) -> None:
        """Release the map. Arrays and memoryviews handed out keep their pages alive."""
        self._closed = True
        file, mv = self._file, self._mv
        self._reset()
        if mv is not None:
            try:
                mv.release()
            except BufferError:  # pragma: no cover - a view of it is still exported
                pass
        if file is not None:
            file.close()

    def __enter__(self) -> Pack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        if self._closed:
            return f"<pixpack.Pack {str(self._path)!r} (closed)>"
        self._idx()
        return (
            f"<pixpack.Pack {str(self._path)!r}: {self._n} samples, {len(self._classes)} classes>"
        )

    # -- whole-pack properties -------------------------------------------------------------
    def __len__(self) -> int:
        self._idx()
        return self._n

    @property
    def path(self) -> Path:
        return self._path

    @property
    def metadata(self) -> dict[str, Any]:
        self._idx()
        return self._metadata

    @property
    def classes(self) -> list[str]:
        self._idx()
        return self._classes

    @property
    def class_to_idx(self) -> dict[str, int]:
        self._idx()
        return self._class_to_idx

    @property
    def targets(self) -> np.ndarray:
        """Labels as a read-only int64 view of the index (no copy, no per-sample objects)."""
        self._idx()
        return self._labels

    @property
    def index(self) -> np.ndarray:
        """The index as a read-only numpy structured view (``format.INDEX_DTYPE`` fields)."""
        return self._idx()

    @property
    def header(self) -> dict[str, int]:
        """The decoded header fields (offsets, sizes, version, CRCs)."""
        self._idx()
        assert self._file is not None  # set by _load
        h = self._file.header
        names = h.dtype.names or ()
        return {name: (h[name] if name == "magic" else int(h[name])) for name in names}

    # -- per-sample access (hot paths: keep lean) ------------------------------------------
    def _entry(self, i: int) -> tuple[int, tuple[int, ...]]:
        """(normalised index, index entry as a tuple of ints) after all bounds checks.

        One ``.item()`` converts the whole entry at once: cheaper than ten column reads.
        """
        index = self._index
        if index is None:
            index = self._load()
        n = self._n
        i = operator.index(i)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"sample index {i} out of range for a pack of {n} samples")
        if self._storage is not None:
            self.check_intact(i)
        entry = index[i].item()
        offset, nbytes = entry[0], entry[1]
        if offset < self._data_offset or offset + nbytes > self._index_offset:
            raise CorruptPackError(
                f"{self._path}: sample {i} points outside the data region "
                f"(offset {offset}, {nbytes} bytes); run `pixpack verify {self._path}`",
                self._path,
            )
        if self._advise:  # one read of exactly this sample, not a fault per page
            self._storage.will_need(offset, nbytes)  # type: ignore[union-attr]
        if self._check and fmt.checksum(self._mv[offset : offset + nbytes]) != entry[5]:  # type: ignore[index]
            raise CorruptPackError(
                f"{self._path}: sample {i} does not match its checksum; "
                f"the file is damaged — run `pixpack verify {self._path}` and re-pack",
                self._path,
            )
        return i, entry

    # -- storage ---------------------------------------------------------------------------
    @property
    def storage(self) -> LocalFile | None:
        """The open file behind the map (None for ``in_memory`` packs)."""
        self._idx()
        return self._storage

    def check_intact(self, sample: int | None = None) -> None:
        """Raise :class:`TruncatedPackError` if the file shrank since it was opened.

        Touching a map past the end of its file kills the process (SIGBUS), so readers
        check this before they touch the index or a sample; someone truncating the file
        in between is the one case left (packs are replaced by rename, never in place).
        """
        if self._storage is not None:
            self._storage.check_intact(self._path, sample)

    def will_need(self, indices: np.ndarray) -> int:
        """Start reading the samples ``indices`` into the page cache (asynchronously).

        Returns the read requests made (neighbouring samples merge into one)."""
        offsets, nbytes = self.spans(indices)
        storage = self._storage
        return 0 if storage is None else storage.will_need_many(offsets, nbytes)

    def sample_bytes(self, i: int) -> memoryview:
        """The stored bytes of sample ``i`` (zero-copy view of the map)."""
        _, (offset, nbytes, *_) = self._entry(i)
        return self._mv[offset : offset + nbytes]  # type: ignore[index]

    def sample_spans(self, indices: np.ndarray) -> tuple[memoryview, np.ndarray, np.ndarray]:
        """The whole map, and the byte offsets and lengths (int64) of ``indices``, one
        fancy index per column: for readers that hand many samples to native code at
        once. The length is -1 for an entry that lies outside the data region, or for
        every entry of a pack that checks checksums: such samples must be read through
        :meth:`sample_bytes`, which checks them and raises the error that names them."""
        offsets, nbytes = self.spans(indices)
        if self._check:
            nbytes[:] = -1
        return self._mv, offsets, nbytes  # type: ignore[return-value]

    def spans(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Byte offsets and lengths (int64) of ``indices``; the length is -1 for an
        entry that lies outside the data region. Raises :class:`TruncatedPackError`
        if the file shrank since it was opened (the index would be gone)."""
        index = self._index if self._index is not None else self._load()
        self.check_intact()
        rows = index[indices]
        offsets = rows["offset"].astype(np.int64)
        nbytes = rows["nbytes"].astype(np.int64)
        inside = (offsets >= self._data_offset) & (offsets + nbytes <= self._index_offset)
        nbytes[~inside] = -1
        return offsets, nbytes

    def sample_shape(self, i: int) -> tuple[int, int, int]:
        """``(height, width, channels)`` of the decoded sample, from the index."""
        if self._index is None:
            self._load()
        return int(self._heights[i]), int(self._widths[i]), int(self._channels[i])

    def sample_mode(self, i: int) -> str:
        """``"raw"``, ``"jpeg"`` or ``"lossless"``: how sample ``i`` is stored."""
        code = int(self._idx()["mode"][i])
        return fmt.MODE_NAMES.get(code, f"unknown({code})")

    def sample_info(self, i: int) -> dict[str, Any]:
        """Everything the index records about sample ``i``."""
        index = self._idx()
        i = operator.index(i)
        entry = index[i]
        mode = int(entry["mode"])
        dtype = fmt.DTYPE_FROM_CODE.get(int(entry["dtype"]))
        return {
            "index": i + self._n if i < 0 else i,
            "offset": int(entry["offset"]),
            "nbytes": int(entry["nbytes"]),
            "height": int(entry["height"]),
            "width": int(entry["width"]),
            "channels": int(entry["channels"]),
            "dtype": str(dtype) if dtype is not None else f"unknown({int(entry['dtype'])})",
            "mode": fmt.MODE_NAMES.get(mode, f"unknown({mode})"),
            "label": int(entry["label"]),
            "checksum": int(entry["checksum"]),
        }

    def label(self, i: int) -> int:
        if self._index is None:
            self._load()
        return int(self._labels[i])

    def read_image(self, i: int, *, copy: bool = False) -> np.ndarray:
        """Sample ``i`` decoded to an HWC array of its pixel type.

        Raw samples with ``copy=False`` are read-only views of the map (no copy at
        all); ``copy=True`` always returns a writable array of its own (JPEG and
        lossless samples are always decoded into one).
        """
        return self._read(i, copy)[0]

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        """``(image, label)``: a writable HWC copy of the decoded image and its class."""
        return self._read(i, True)

    def _read(self, i: int, copy: bool) -> tuple[np.ndarray, int]:
        i, (offset, nbytes, label, h, w, _, c, dtype_code, mode, _) = self._entry(i)
        dtype = _DTYPES.get(dtype_code)
        if dtype is None:
            raise UnsupportedModeError(
                f"{self._path}: sample {i} uses pixel type code {dtype_code}, "
                "unknown to this pixpack; upgrade pixpack",
                self._path,
            )
        if mode == fmt.MODE_RAW:
            if nbytes != h * w * c * dtype.itemsize:
                raise CorruptPackError(
                    f"{self._path}: sample {i} holds {nbytes} bytes but its index says "
                    f"{h}x{w}x{c} {dtype}; run `pixpack verify {self._path}`",
                    self._path,
                )
            # Slicing a frombuffer base keeps a buffer export on the map, so close()
            # cannot unmap pages under an array still in use (np.ndarray(buffer=) would).
            image = self._u8[offset : offset + nbytes]
            if dtype is not _U8:
                image = image.view(dtype)
            image = image.reshape(h, w, c)
            return (image.copy() if copy else image), label
        if mode == fmt.MODE_JPEG:
            return self._decode_jpeg(i, offset, nbytes, (h, w, c)), label
        if mode == fmt.MODE_LOSSLESS:
            return self._decode_lossless(i, offset, nbytes, (h, w, c), dtype), label
        raise UnsupportedModeError(
            f"{self._path}: sample {i} uses storage mode {mode}, unknown to this pixpack; "
            "upgrade pixpack",
            self._path,
        )

    def _decode_jpeg(self, i: int, offset: int, nbytes: int, shape: tuple[int, ...]) -> np.ndarray:
        data = self._mv[offset : offset + nbytes]  # type: ignore[index]
        try:
            _check_jpeg_size(data, shape)  # a crafted header must not size the decode
            image = decode_jpeg(data, channels=shape[2])
        except (ValueError, RuntimeError, OSError) as exc:
            raise CorruptPackError(
                f"{self._path}: sample {i} is not a decodable JPEG ({exc}); "
                f"run `pixpack verify {self._path}` and re-pack",
                self._path,
            ) from None
        if image.ndim == 2:
            image = image[:, :, None]
        if image.shape != shape:
            raise CorruptPackError(
                f"{self._path}: sample {i} decodes to {image.shape[0]}x{image.shape[1]}"
                f"x{image.shape[2]} but its index says {shape[0]}x{shape[1]}x{shape[2]}; "
                f"run `pixpack verify {self._path}`",
                self._path,
            )
        return image

    def _decode_lossless(
        self, i: int, offset: int, nbytes: int, shape: tuple[int, int, int], dtype: np.dtype
    ) -> np.ndarray:
        data = self._mv[offset : offset + nbytes]  # type: ignore[index]
        try:
            return decode_lossless(data, shape, dtype)  # never more than the index's shape
        except UnsupportedModeError as exc:
            raise UnsupportedModeError(f"{self._path}: sample {i}: {exc}", self._path) from None
        except ValueError as exc:
            raise CorruptPackError(
                f"{self._path}: sample {i} is not a decodable lossless sample ({exc}); "
                f"run `pixpack verify {self._path}` and re-pack",
                self._path,
            ) from None

    def __iter__(self) -> Iterator[tuple[np.ndarray, int]]:
        for i in range(len(self)):
            yield self._read(i, True)


def _check_jpeg_size(data: memoryview, shape: tuple[int, ...]) -> None:
    """The JPEG header must declare the index's size: decoding allocates what the
    header says (a damaged or crafted one could ask for gigabytes)."""
    height, width, _ = jpeg_shape(data)
    if (height, width) != tuple(shape[:2]):
        raise ValueError(f"its header says {height}x{width}, the index {shape[0]}x{shape[1]}")


_DTYPES = cast(dict[int, np.dtype], dict(fmt.DTYPE_FROM_CODE))
_U8 = np.dtype(np.uint8)
