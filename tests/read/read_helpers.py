"""Pack builders for read-side tests: PackWriter from arrays, and a vectorised giant."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from pixpack import format as fmt
from pixpack.write.writer import PackWriter

CLASSES = ["cat", "dog", "ñandú"]  # a non-ASCII class name on purpose


def encode_jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image[:, :, 0] if image.shape[2] == 1 else image).save(
        buf, format="JPEG", quality=quality
    )
    return buf.getvalue()


def build_pack(
    path: Path,
    images: Sequence[np.ndarray],
    labels: Sequence[int],
    *,
    modes: Sequence[str] | None = None,
    classes: Sequence[str] = CLASSES,
    extra_meta: dict | None = None,
) -> Path:
    """Write a pack with PackWriter; ``modes[i]`` is "raw" or "jpeg" per sample."""
    writer = PackWriter(path, {"test": str(path)}).start()
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        mode = modes[i] if modes is not None else "raw"
        if mode == "jpeg":
            data = encode_jpeg(image)
            code = fmt.MODE_JPEG
        else:
            data = np.ascontiguousarray(image).astype(image.dtype.newbyteorder("<")).tobytes()
            code = fmt.MODE_RAW
        h, w, c = image.shape
        writer.append(
            data, source_index=i, height=h, width=w, channels=c,
            dtype_code=fmt.DTYPE_CODES[np.dtype(image.dtype)], mode_code=code, label=int(label),
        )
    meta = {
        "classes": list(classes),
        "created": "2024-01-01T00:00:00+00:00",
        "pixpack_version": "0.1.0",
        "skipped": [],
    }
    meta.update(extra_meta or {})
    return writer.commit(meta)


def build_tiny_pack(path: Path, n: int, num_classes: int = 10) -> Path:
    """``n`` 1x1x1 raw samples written with numpy (no per-sample Python), same layout as
    PackWriter: 64-byte-aligned samples, index after the data, JSON metadata last."""
    index = np.zeros(n, dtype=fmt.INDEX_DTYPE)
    index["offset"] = fmt.DATA_ALIGN + np.arange(n, dtype=np.uint64) * fmt.SAMPLE_ALIGN
    index["nbytes"] = 1
    index["label"] = np.arange(n) % num_classes
    index["height"] = index["width"] = index["channels"] = 1
    index["checksum"] = fmt.checksum(b"\x00")
    data_end = fmt.DATA_ALIGN + n * fmt.SAMPLE_ALIGN
    index_offset = fmt.align(data_end, 8)
    index_bytes = index.tobytes()
    meta = fmt.encode_metadata({"classes": [f"c{i}" for i in range(num_classes)]})
    meta_offset = index_offset + len(index_bytes)
    header = fmt.encode_header(
        num_samples=n, data_offset=fmt.DATA_ALIGN, index_offset=index_offset,
        entry_size=fmt.INDEX_DTYPE.itemsize, index_crc32=fmt.checksum(index_bytes),
        meta_offset=meta_offset, meta_nbytes=len(meta), meta_crc32=fmt.checksum(meta),
        file_size=meta_offset + len(meta),
    )
    with open(path, "wb") as f:
        f.write(header)
        f.seek(index_offset)  # the data region stays a hole: every pixel is 0
        f.write(index_bytes)
        f.write(meta)
    return path


def crops(photos: Sequence[np.ndarray], count: int, seed: int = 0) -> list[np.ndarray]:
    """``count`` photo crops of varied sizes (HWC uint8 RGB)."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(count):
        photo = photos[k % len(photos)]
        h = int(rng.integers(24, 80))
        w = int(rng.integers(24, 80))
        y = int(rng.integers(0, photo.shape[0] - h))
        x = int(rng.integers(0, photo.shape[1] - w))
        out.append(np.ascontiguousarray(photo[y : y + h, x : x + w]))
    return out


def _rewrite(path: Path, *, index: np.ndarray | None = None, meta: bytes | None = None) -> Path:
    """Replace a pack's index entries and/or metadata bytes, with every checksum and
    size in the header made to match again: a crafted pack that opens."""
    raw = bytearray(path.read_bytes())
    h = fmt.decode_header(bytes(raw[: fmt.HEADER_SIZE]))
    fields = {name: h[name] for name in h.dtype.names if name not in ("magic", "major", "minor")}
    index_offset, entry = int(h["index_offset"]), int(h["entry_size"])
    meta_offset = int(h["meta_offset"])
    old_meta = bytes(raw[meta_offset : meta_offset + int(h["meta_nbytes"])])
    if index is not None:
        block = index.tobytes()
        raw[index_offset : index_offset + len(block)] = block
        fields["index_crc32"] = fmt.checksum(bytes(raw[index_offset:meta_offset]))
    meta = old_meta if meta is None else meta
    del raw[meta_offset:]
    raw += meta
    fields.update(
        meta_nbytes=len(meta), meta_crc32=fmt.checksum(meta), file_size=len(raw),
        header_crc32=0,
    )  # fmt: skip
    raw[: fmt.HEADER_SIZE] = fmt.encode_header(**fields)
    path.write_bytes(bytes(raw))
    assert entry == fmt.INDEX_DTYPE.itemsize
    return path


def craft_metadata(path: Path, meta: bytes | dict) -> Path:
    """The pack at ``path`` with its metadata replaced (valid checksums)."""
    return _rewrite(path, meta=meta if isinstance(meta, bytes) else fmt.encode_metadata(meta))


def craft_index(path: Path, **columns: object) -> Path:
    """The pack at ``path`` with index columns set (``label=5`` or per-sample arrays)."""
    h = fmt.decode_header(path.read_bytes()[: fmt.HEADER_SIZE])
    index = np.fromfile(
        path, dtype=fmt.INDEX_DTYPE, count=int(h["num_samples"]), offset=int(h["index_offset"])
    )
    for name, value in columns.items():
        index[name] = value
    return _rewrite(path, index=index)
