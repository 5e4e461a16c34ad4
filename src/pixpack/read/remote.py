"""Where a remote pack's shards come from: range reads for what is small, a bounded
local cache for what is read a lot.

``pixpack.open("s3://bucket/train")`` (also ``gs://``, ``az://``, ``https://``) opens
a :class:`~pixpack.read.sharded.ShardedPack` whose shard source is a
:class:`RemoteShards`. The pack itself is unchanged: it asks its source for the
manifest, for a shard's index, and for a shard's file, and reads samples from the
file's memory map exactly as for a local sharded pack (and the loader's read-ahead
drives the downloads through the same ``will_need_many`` calls; see
:meth:`RemoteShards.prefetch`).

- **Opening** reads ``shards.json`` only (one GET). A URL that is not a directory with
  a manifest and does not end in ``.json`` is read as a single pack file: its header
  and metadata by two range reads, and it becomes a one-shard manifest.
- **Indexes** (labels, shapes: what a Loader needs before the first batch) come by
  range reads of each shard's header and index (40 bytes per sample), checked against
  the manifest (size, header CRC) and the header (index CRC): no shard is downloaded.
- **Samples** are read from whole shards downloaded into the cache
  (:class:`~pixpack.storage.shard_cache.ShardCache`: bounded, crash-safe, shared by
  processes), verified before they are published (every CRC down to each sample's).
"""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .. import format as fmt
from .. import shard_format as sf
from ..errors import CorruptPackError, NotAPackError, RemoteError
from ..storage.remote import RemoteFiles, RemoteOptions, join_url
from ..storage.shard_cache import ShardCache
from ._open import _check_header, index_dtype
from .shard_parts import check_shard, parse_manifest

__all__ = ["RemoteShards"]


class RemoteShards:
    """The shard source of a remote sharded pack (or of one remote pack file)."""

    remote = True

    def __init__(self, url: str, storage_options: Mapping[str, Any] | None,
                 options: RemoteOptions | None) -> None:  # fmt: skip
        self.url = url
        self.options = options or RemoteOptions()
        self.files = RemoteFiles(url, storage_options, self.options)
        self.cache = ShardCache(self.options.directory(), self.options.limit_bytes)
        self.where = url  # for messages
        self.directory = url  # what ``pack.path`` shows
        self._base = url

    def __getstate__(self) -> dict[str, Any]:
        return {"url": self.url, "storage_options": self.files.storage_options,
                "options": self.options}  # fmt: skip

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["url"], state["storage_options"], state["options"])  # type: ignore[misc]

    # -- the manifest ------------------------------------------------------------------
    def manifest(self) -> tuple[dict[str, Any], bytes]:
        """The checked manifest and its bytes (one made up for a single pack file).

        ``.../x.json`` is a manifest; another URL is a sharded pack's directory (its
        ``shards.json``) or a pack file, tried in that order (a ``.pixpack`` URL: the
        file first). Existence is learnt from the reads themselves (a "not found"
        answer), never from ``exists()``, which some clients answer False on any error."""
        url = self.url.rstrip("/")
        if url.lower().endswith(".json"):
            return self._manifest_at(url)
        attempts = [self._directory, self._single]
        if url.lower().endswith(".pixpack"):
            attempts.reverse()
        for attempt in attempts:
            try:
                return attempt(url)
            except RemoteError as exc:
                if not RemoteFiles.missing(exc):
                    raise
        raise NotAPackError(
            f"{url}: no {sf.MANIFEST_NAME} there and no pack file by that name; give a "
            "sharded pack's directory URL, its shards.json, or a .pixpack file's URL",
            url,
        )

    def _directory(self, url: str) -> tuple[dict[str, Any], bytes]:
        return self._manifest_at(join_url(url, sf.MANIFEST_NAME))

    def _manifest_at(self, manifest_url: str) -> tuple[dict[str, Any], bytes]:
        raw = self.files.read_all(manifest_url, sf.MAX_MANIFEST_BYTES)
        self._base, self.where = posixpath.dirname(manifest_url), manifest_url
        self.directory = self._base
        return parse_manifest(raw, manifest_url), raw

    def _single(self, url: str) -> tuple[dict[str, Any], bytes]:
        """A one-shard manifest for the pack file at ``url`` (header + metadata reads)."""
        raw = self.files.read_range(url, 0, fmt.HEADER_SIZE, exact=False)
        self._base = posixpath.dirname(url)
        header = _check_header(url, raw, len(raw))
        start, n = int(header["meta_offset"]), int(header["meta_nbytes"])
        if n > fmt.MAX_METADATA_BYTES:
            raise CorruptPackError(f"{url}: {n} bytes of metadata; the file is damaged", url)
        meta_raw = self.files.read_range(url, start, start + n) if n else b""
        if fmt.checksum(meta_raw) != int(header["meta_crc32"]):
            raise CorruptPackError(f"{url}: the metadata is damaged (checksum mismatch)", url)
        meta = fmt.decode_metadata(meta_raw)
        manifest = {
            "format": sf.MANIFEST_FORMAT, "major": sf.MANIFEST_MAJOR,
            "minor": sf.MANIFEST_MINOR, "num_samples": int(header["num_samples"]),
            "classes": meta.get("classes") or [], "options": meta.get("options"),
            "columns": [{"name": c["name"], "type": c.get("type")}
                        for c in meta.get("columns") or []],
            "shards": [{"path": posixpath.basename(url), "samples": int(header["num_samples"]),
                        "first": 0, "bytes": int(header["file_size"]),
                        "header_crc32": int(header["header_crc32"])}],
            "metadata": meta,
        }  # fmt: skip
        self.where = url
        return manifest, sf.encode_manifest(manifest)

    # -- shards ------------------------------------------------------------------------
    def shard_url(self, entry: dict[str, Any]) -> str:
        return join_url(self._base, entry["path"])

    def cache_name(self, entry: dict[str, Any]) -> str:
        """The shard's name in the shared cache: the dataset's URL, the shard's file name
        and its header CRC (a re-packed shard never reuses an old copy)."""
        where = hashlib.sha256(self._base.encode("utf-8", "surrogateescape")).hexdigest()[:16]
        name = posixpath.basename(entry["path"])
        return f"{where}-{int(entry['header_crc32']):08x}-{name}"

    def _shard_header(self, url: str, entry: dict[str, Any]) -> np.void:
        """The shard's header by a range read, checked against the manifest."""
        raw = self.files.read_range(url, 0, fmt.HEADER_SIZE)
        header = _check_header(url, raw, len(raw))
        check_shard(url, entry, _fields(header), self.where)  # type: ignore[arg-type]
        return header

    def shard_index(self, k: int, entry: dict[str, Any]) -> tuple[np.ndarray, int, int]:
        """Shard ``k``'s index (a copy), data offset and index offset, by range reads
        (or from the cached file when it is there), checked against the manifest."""
        url = self.shard_url(entry)
        header = self._shard_header(url, entry)
        start = int(header["index_offset"])
        n, size = int(header["num_samples"]), int(header["entry_size"])
        data = self.files.read_range(url, start, start + n * size) if n else b""
        if fmt.checksum(data) != int(header["index_crc32"]):
            raise CorruptPackError(
                f"{url}: the index does not match its checksum (damaged in storage or in "
                "transit); run `pixpack verify` on the original and upload it again",
                url,
            )
        index = np.frombuffer(data, dtype=index_dtype(size), count=n)
        return index, int(header["data_offset"]), start

    def shard_columns(self, k: int, entry: dict[str, Any]) -> Any:
        """Shard ``k``'s metadata columns without downloading the shard: one range read
        of what lies between its index and the end of its metadata (the sections), each
        section a column uses checked against its CRC."""
        from ..metadata.view import Columns

        url = self.shard_url(entry)
        header = self._shard_header(url, entry)
        n, size = int(header["num_samples"]), int(header["entry_size"])
        start = int(header["index_offset"]) + n * size
        meta_at, meta_n = int(header["meta_offset"]), int(header["meta_nbytes"])
        if not start <= meta_at or meta_n > fmt.MAX_METADATA_BYTES:
            raise CorruptPackError(f"{url}: the header's layout is damaged", url)
        tail = self.files.read_range(url, start, meta_at + meta_n)
        meta_raw = tail[meta_at - start :]
        if fmt.checksum(meta_raw) != int(header["meta_crc32"]):
            raise CorruptPackError(f"{url}: the metadata is damaged (checksum mismatch)", url)
        meta = fmt.decode_metadata(meta_raw)
        try:
            sections = fmt.check_sections(meta, start, meta_at)
        except ValueError as exc:
            raise CorruptPackError(f"{url}: {exc}", url) from None
        for name, (offset, nbytes, crc) in sections.items():
            if fmt.checksum(tail[offset - start : offset - start + nbytes]) != crc:
                raise CorruptPackError(f"{url}: section {name!r} is damaged (checksum)", url)
        return Columns(tail[: meta_at - start], meta, n, url, base=start)

    def open_shard(self, k: int, entry: dict[str, Any], make: Callable[[Path], Any]) -> Any:
        """Shard ``k`` opened by ``make(path)`` from the cache, downloaded and verified
        first if it is not there (:meth:`ShardCache.open`)."""
        url, nbytes = self.shard_url(entry), int(entry["bytes"])

        def download(fd: int, heartbeat: Callable[[], None]) -> None:
            self.files.download(url, fd, nbytes, on_piece=lambda _: heartbeat())

        def check(path: Path) -> None:
            _verify_download(path, entry, url, self.where)

        return self.cache.open(self.cache_name(entry), nbytes, download, check, make,
                               self.options.deadline_s)  # fmt: skip


def _fields(header: np.void) -> dict[str, int]:
    names = header.dtype.names or ()
    return {name: int(header[name]) for name in names if name != "magic"}


def _verify_download(path: Path, entry: dict[str, Any], url: str, manifest: str) -> None:
    """The downloaded file must be the shard the manifest lists, every CRC intact."""
    from .verify import verify

    try:
        report = verify(path, progress=False)
        from ._open import open_file

        opened = open_file(path)
        try:
            check_shard(Path(url), entry, _fields(opened.header), manifest)  # type: ignore[arg-type]
        finally:
            opened.close()
    except (CorruptPackError, NotAPackError) as exc:
        raise CorruptPackError(f"{url}: the download is not the shard listed: {exc}", url) from None
    if not report.ok:
        raise CorruptPackError(
            f"{url}: the downloaded shard fails its checksums ({'; '.join(report.problems())}); "
            "it was damaged in storage or in transit — run `pixpack verify` on the original",
            url,
        )
