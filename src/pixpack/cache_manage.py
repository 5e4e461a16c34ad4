"""What a ``cached()`` directory holds, and how it is emptied.

A cache directory holds ``<key>.pixpack`` (a finished pack), ``<key>.lock`` (the
``filelock`` file its builders take) and, while a build runs, ``<key>.pixpack.partial``
and its sidecars. Packs describe themselves: their metadata names the source (folder
root or CSV path) and the options, which is all :func:`list_cache` shows and all a
rebuild needs to find the packs it supersedes. Nothing is removed while its key's lock
is held (a build in progress, or one about to start).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import PixpackError

__all__ = ["CacheEntry", "list_cache", "clear_cache", "remove_superseded", "is_key"]


@dataclass(frozen=True)
class CacheEntry:
    """One finished pack of a cache directory."""

    path: Path
    nbytes: int
    created: str  # ISO time from the pack's metadata ("" if unreadable)
    source: str  # the folder root / CSV path, or a description of in-memory data
    options: dict[str, Any] = field(default_factory=dict)
    lineage: str | None = None  # equal for packs of one source and options


def is_key(name: str) -> bool:
    """Whether ``name`` is a cache key (a sha256 hex digest): only files named after
    one are ever removed, whatever else the directory holds."""
    return len(name) == 64 and all(c in "0123456789abcdef" for c in name)


def _describe(path: Path) -> tuple[str, str, dict[str, Any], str | None]:
    from .read.open_any import open_pack

    try:
        with open_pack(path) as pack:
            meta = pack.metadata
    except (PixpackError, OSError) as exc:
        return "", f"(unreadable: {type(exc).__name__})", {}, None
    src = meta.get("source") if isinstance(meta.get("source"), dict) else {}
    options = meta.get("options") if isinstance(meta.get("options"), dict) else {}
    kind = src.get("type")
    where = src.get("root") if kind == "image_folder" else src.get("path")
    if kind not in ("image_folder", "csv") or not isinstance(where, str):
        where, lineage = f"in-memory {src.get('class', 'data')}", None
    else:
        lineage = json.dumps([kind, where, options], sort_keys=True)
    return str(meta.get("created", "")), where, options, lineage


def list_cache(cache_dir: str | os.PathLike[str] | None = None) -> list[CacheEntry]:
    """The finished packs of ``cache_dir`` (default: the default cache), newest first."""
    from .cache import default_cache_dir

    directory = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    entries = []
    for path in directory.glob("*.pixpack"):
        try:
            nbytes = path.stat().st_size
        except FileNotFoundError:  # removed meanwhile
            continue
        created, source, options, lineage = _describe(path)
        entries.append(CacheEntry(path, nbytes, created, source, options, lineage))
    return sorted(entries, key=lambda e: (e.created, e.path.name), reverse=True)


def _remove_key(directory: Path, digest: str) -> bool:
    """Remove one key's pack, partial files and lock, unless its lock is held."""
    from filelock import FileLock, Timeout

    lock_path = directory / f"{digest}.lock"
    lock = FileLock(str(lock_path), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        return False
    try:
        for path in directory.glob(f"{digest}.pixpack*"):
            path.unlink(missing_ok=True)
        lock_path.unlink(missing_ok=True)
    finally:
        lock.release()
    return True


def remove_superseded(new_pack: Path) -> list[CacheEntry]:
    """Remove the packs of ``new_pack``'s directory with its source and options
    (older builds of a changed source); returns what was removed."""
    entries = list_cache(new_pack.parent)
    lineage = next((e.lineage for e in entries if e.path == new_pack), None)
    if lineage is None:
        return []
    removed = []
    for entry in entries:
        if entry.path != new_pack and entry.lineage == lineage and is_key(entry.path.stem):
            if _remove_key(new_pack.parent, entry.path.stem):
                removed.append(entry)
    return removed


def clear_cache(cache_dir: str | os.PathLike[str] | None = None) -> tuple[int, int, int]:
    """Remove every pack, partial build and lock file of ``cache_dir``, except keys
    being built; returns ``(packs removed, bytes freed, keys left being built)``."""
    from .cache import default_cache_dir

    directory = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if not directory.is_dir():
        return 0, 0, 0
    digests = {p.name.split(".", 1)[0] for p in directory.iterdir()}
    digests = {d for d in digests if is_key(d)}
    removed = freed = busy = 0
    for digest in sorted(digests):
        packs = list(directory.glob(f"{digest}.pixpack"))
        size = sum(p.stat().st_size for p in directory.glob(f"{digest}.pixpack*"))
        if _remove_key(directory, digest):
            removed += len(packs)
            freed += size
        else:
            busy += 1
    return removed, freed, busy
