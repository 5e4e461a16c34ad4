"""``pixpack.open``: which reader a path or URL needs.

A pack file opens as a :class:`~.pack.Pack`; a sharded pack's directory (or its
``shards.json``) as a :class:`~.sharded.ShardedPack`; a URL as a ``ShardedPack`` whose
shards come through the local cache of :mod:`.remote`. Kept apart from the readers so
that each of them knows only its own kind of pack.
"""

from __future__ import annotations

import os
from typing import Any

from ..errors import UsageError
from ..storage import Access
from .pack import Pack

__all__ = ["open_pack"]


def open_pack(
    path: str | os.PathLike[str],
    *,
    in_memory: bool = False,
    check_checksums: bool = False,
    access: Access = "random",
    storage_options: dict[str, Any] | None = None,
    remote: Any = None,
) -> Any:
    """Open a pack (``pixpack.open``): a pack file gives a :class:`Pack`; a sharded
    pack's directory (or its ``shards.json``) a :class:`~.sharded.ShardedPack`, the
    same API over all its shards. A URL (``s3://``, ``gs://``, ``az://``,
    ``https://``: a sharded pack's directory, its ``shards.json``, or one pack file)
    gives a :class:`~.sharded.ShardedPack` whose shards are read through a local cache
    (docs/remote.md).

    in_memory: read the whole file into RAM instead of mapping it (for network file
        systems where mmap page faults are slow, or to survive the file being replaced).
    check_checksums: verify every sample's CRC-32 when it is read.
    access: ``"random"`` (default) reads each sample's exact bytes from disk, for
        shuffled training; ``"sequential"`` reads far ahead, for front-to-back scans.
    storage_options: for URLs, the fsspec file system's options (e.g.
        ``{"endpoint_url": ...}`` or ``{"client_kwargs": {"endpoint_url": ...}}`` for
        s3fs, credentials, ``{"anon": True}``).
    remote: a :class:`~pixpack.storage.remote.RemoteOptions` (cache directory and
        bound, retries, timeouts) for URLs.

    Raises :class:`NotAPackError`, :class:`UnsupportedVersionError`,
    :class:`TruncatedPackError` or :class:`CorruptPackError` with a one-line fix.
    """
    from ..storage.remote import is_url
    from .shard_parts import manifest_path

    if is_url(path):
        from ..storage.remote import RemoteOptions
        from .remote import RemoteShards
        from .sharded import ShardedPack

        if in_memory:
            raise UsageError(
                "in_memory=True does not apply to a remote pack: its shards are read "
                "through a local cache (RemoteOptions(cache_dir=, cache_limit=))"
            )
        if remote is not None and not isinstance(remote, RemoteOptions):
            raise UsageError(f"remote must be a pixpack.RemoteOptions (got {remote!r}).")
        source = RemoteShards(str(path), storage_options, remote)
        return ShardedPack(path, check_checksums=check_checksums, access=access, source=source)
    if storage_options is not None or remote is not None:
        raise UsageError(
            f"storage_options and remote apply to URLs (s3://, gs://, az://, https://), "
            f"not to the local path {path!r}"
        )
    manifest = manifest_path(path)
    if manifest is not None:
        from .sharded import ShardedPack

        return ShardedPack(
            manifest, in_memory=in_memory, check_checksums=check_checksums, access=access
        )
    return Pack(path, in_memory=in_memory, check_checksums=check_checksums, access=access)
