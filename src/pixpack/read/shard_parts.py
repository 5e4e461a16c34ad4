"""The pieces a sharded pack is made of: its manifest on disk, the storage that spreads
span requests over the shards' files, and its metadata columns joined across shards.

The storage answers the same calls as one pack's :class:`~pixpack.storage.LocalFile`
(``will_need_many(offsets, nbytes)``) over a *virtual* address space: shard ``k``'s
file offsets plus the sizes of the shards before it (known from the manifest alone).
Read-ahead therefore works unchanged, and a remote or cached shard store can answer
the same requests later.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .. import shard_format as sf
from ..errors import CorruptPackError, NotAPackError, UnsupportedVersionError
from ..metadata.view import StringColumn
from ..regular_files import open_regular

__all__ = [
    "LocalShards",
    "ShardedColumns",
    "ShardedStorage",
    "check_shard",
    "manifest_path",
    "parse_manifest",
    "read_manifest",
]


def manifest_path(path: str | os.PathLike[str]) -> Path | None:
    """The manifest of ``path`` (a sharded pack's directory or its manifest file), or
    None when ``path`` is neither (an ordinary pack, an image folder)."""
    path = Path(path)
    if path.is_dir():
        inside = path / sf.MANIFEST_NAME
        if inside.exists():
            return inside
        if any(p.name.startswith(sf.SHARD_PREFIX) for p in path.glob("*.pixpack")):
            raise NotAPackError(
                f"{path} holds shards but no {sf.MANIFEST_NAME} (an unfinished sharded pack?); "
                "rerun the same `pixpack pack` (finished shards are kept) or "
                f"`pixpack merge {path}` once every slice is done",
                path,
            )
        return None
    if path.suffix.lower() == ".json":
        return path
    return None


def read_manifest(path: Path) -> tuple[dict[str, Any], bytes]:
    """The checked manifest and its bytes. Raises the PackError subclasses."""

    def refuse(why: str) -> NotAPackError:
        return NotAPackError(f"{path}: {why}; give a sharded pack's directory", path)

    with open_regular(path, refuse) as f:
        raw = f.read(sf.MAX_MANIFEST_BYTES + 1)
    return parse_manifest(raw, path), raw


def parse_manifest(raw: bytes, path: Any) -> dict[str, Any]:
    """The checked manifest in ``raw`` (read from ``path``, a file or a URL)."""
    if len(raw) > sf.MAX_MANIFEST_BYTES:
        raise CorruptPackError(
            f"{path}: a manifest of more than {sf.MAX_MANIFEST_BYTES} bytes; re-merge it", path
        )
    try:
        return sf.decode_manifest(raw)
    except LookupError as exc:
        raise NotAPackError(
            f"{path} is not a pixpack shard manifest ({exc}); give the directory written "
            "by `pixpack pack ... --shard-size` or `pixpack merge`",
            path,
        ) from None
    except OverflowError as exc:
        raise UnsupportedVersionError(
            f"{path} is a shard manifest of format {exc}, newer than this pixpack reads "
            f"({sf.MANIFEST_MAJOR}.x); upgrade pixpack (pip install -U pixpack)",
            path,
        ) from None
    except ValueError as exc:
        raise CorruptPackError(
            f"{path}: damaged shard manifest ({exc}); write it again with `pixpack merge`",
            path,
        ) from None


class LocalShards:
    """The shard source of a sharded pack on a local file system: its manifest file,
    and shards that are files next to it (:class:`~.remote.RemoteShards` is the
    remote one: the same calls, answered by range reads and a cache)."""

    remote = False

    def __init__(self, manifest: Path) -> None:
        self.where = manifest
        self.directory = manifest.parent

    def manifest(self) -> tuple[dict[str, Any], bytes]:
        return read_manifest(self.where)

    def open_shard(self, k: int, entry: dict[str, Any], make: Callable[[Path], Any]) -> Any:
        path = self.directory / entry["path"]
        if not path.exists():
            raise CorruptPackError(
                f"{path}: shard {k} of {self.where} is missing; copy it back, or "
                "rerun the same `pixpack pack` (it redoes only missing shards)",
                path,
            )
        return make(path)


class ShardedStorage:
    """``will_need_many`` over the virtual address space of the shards (see module)."""

    def __init__(self, bases: np.ndarray, storage_of: Callable[[int], Any],
                 prefetch_bytes: int = 0) -> None:  # fmt: skip
        self._bases = bases  # len(shards) + 1 virtual start offsets
        # shard k -> its LocalFile, or None (in memory; remote: not fetched yet, and
        # asking starts its download: remote prefetch is this same read-ahead call)
        self._storage_of = storage_of
        # how far ahead read-ahead should reach (bytes): remote shards need a download's
        # head start, not a disk read's
        self.prefetch_bytes = int(prefetch_bytes)

    def will_need_many(self, offsets: np.ndarray, nbytes: np.ndarray) -> int:
        offsets = np.asarray(offsets, np.int64)
        nbytes = np.asarray(nbytes, np.int64)
        shard = np.searchsorted(self._bases, offsets, side="right") - 1
        requests = 0
        for k in np.unique(shard).tolist():
            if not 0 <= k < len(self._bases) - 1:
                continue
            storage = self._storage_of(k)
            if storage is None:
                continue
            mask = shard == k
            requests += storage.will_need_many(offsets[mask] - self._bases[k], nbytes[mask])
        return requests


class ShardedColumns(Mapping[str, Any]):
    """The shards' metadata columns joined in sample order, each on first use (one
    concatenation per column: numeric columns become one array, string columns one
    buffer with shifted offsets)."""

    def __init__(self, types: dict[str, str], shards: Callable[[], list[Any]], n: int) -> None:
        self.types = dict(types)
        self._shards = shards  # every shard's Pack, opened
        self._n = n
        self._cache: dict[str, Any] = {}

    def _parts(self, name: str) -> list[Any]:
        return [shard.columns[name] for shard in self._shards()]

    def _join(self, name: str) -> Any:
        parts = self._parts(name)
        if self.types[name] != "string":
            out = np.concatenate(parts) if parts else np.zeros(0)
            out.flags.writeable = False
            return out
        data = np.concatenate(
            [p._data[: int(p._offsets[-1])] for p in parts] or [np.zeros(0, np.uint8)]
        )
        offsets = [np.zeros(1, np.uint64)]
        shift = 0
        for p in parts:
            offsets.append(p._offsets[1:].astype(np.uint64) + np.uint64(shift))
            shift += int(p._offsets[-1])
        valid = None
        if any(p._valid is not None for p in parts):
            valid = np.concatenate(
                [p._valid if p._valid is not None else np.ones(len(p), np.uint8) for p in parts]
            )
        return StringColumn(data, np.concatenate(offsets), valid)

    def __getitem__(self, name: str) -> Any:
        if name not in self.types:
            raise KeyError(f"no column {name!r}; this pack has {', '.join(self.types) or 'none'}")
        if name not in self._cache:
            self._cache[name] = self._join(name)
        return self._cache[name]

    def missing(self, name: str) -> np.ndarray:
        parts = [shard.columns.missing(name) for shard in self._shards()]
        return np.concatenate(parts) if parts else np.zeros(0, bool)

    def __iter__(self) -> Iterator[str]:
        return iter(self.types)

    def __len__(self) -> int:
        return len(self.types)

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}: {v}" for k, v in self.types.items())
        return f"<Columns {{{inner}}} of {self._n} samples, joined over shards>"


def check_shard(path: Path, entry: dict[str, Any], header: dict[str, Any], manifest: Path) -> None:
    """A shard must be the file the manifest lists: its size, header CRC and count."""
    got = (int(header["file_size"]), int(header["header_crc32"]), int(header["num_samples"]))
    want = (entry["bytes"], entry["header_crc32"], entry["samples"])
    if got != want:
        raise CorruptPackError(
            f"{path} does not match {manifest} (size {got[0]} vs {want[0]}, header CRC "
            f"{got[1]:08x} vs {want[1]:08x}, {got[2]} vs {want[2]} samples): it was replaced "
            f"or re-packed since; rerun `pixpack merge` or the same `pixpack pack`",
            path,
        )
