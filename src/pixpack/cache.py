"""``cached()``: pack a dataset once, reuse the pack until the dataset changes.

The cache key is a sha256 over the source's fingerprint (file list, sizes and
modification times: computed with ``stat`` only, no image is read), the options that
change the pack's bytes (:meth:`PackOptions.content_key`) and the format's major
version. The pack lives at ``<cache_dir>/<key>.pixpack``:

- present and valid: opened and returned, nothing else happens;
- absent (or damaged): one process takes ``<key>.lock`` (``filelock``), checks
  again, builds the pack with :func:`pixpack.pack` (temp file + atomic rename) and
  opens it. Other processes asking for the same key meanwhile wait on the lock, then
  find the finished pack; nobody ever sees a half-written one.

It says what it does through :mod:`logging` (logger ``pixpack.cache``): one INFO line
when it reuses a pack, a WARNING line when it starts a build (which may take hours and
gigabytes) and one when the build is done.

A rebuild *supersedes* the packs of the same source (the same folder or CSV path,
packed with the same options): once the new pack is committed, they are removed with
their ``.lock`` files (``keep_old=True`` keeps them), so copies do not pile up.
In-memory sources (``key=``) are never superseded: their keys name them.
:func:`list_cache` and :func:`clear_cache` (``pixpack cache list|clear|path``) show and
empty a cache directory.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import time
import warnings
from pathlib import Path
from typing import Any

from . import format as fmt
from .cache_manage import clear_cache, list_cache, remove_superseded
from .errors import PackError, UsageError
from .options import PackOptions
from .read.open_any import open_pack
from .read.pack import Pack

__all__ = ["cached", "cache_key", "default_cache_dir", "list_cache", "clear_cache"]

log = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/pixpack``, else ``~/.cache/pixpack`` (the XDG default)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "pixpack"


def cache_key(source: Any, options: PackOptions, key: str | None = None) -> str:
    """The hex digest naming ``source`` packed with ``options`` in the cache."""
    from .write.sources import source_for, with_classes_from

    options = with_classes_from(options)
    src = source_for(source, options)
    fingerprint = src.fingerprint()
    if fingerprint is None and key is None:
        raise UsageError(
            "this source (in-memory Python data) has no fingerprint to detect changes; "
            "pass cached(..., key='<a name that changes when the data changes>')."
        )
    payload = {
        "fingerprint": fingerprint,
        "key": key,
        "options": options.content_key(),
        "format_major": fmt.FORMAT_MAJOR,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _open_if_valid(path: Path) -> Pack | None:
    try:
        return open_pack(path)
    except FileNotFoundError:
        return None
    except PackError as exc:
        warnings.warn(f"rebuilding a damaged cached pack: {exc}", stacklevel=3)
        return None


def cached(
    source: Any,
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    key: str | None = None,
    keep_old: bool = False,
    **pack_options: Any,
) -> Pack:
    """Open the cached pack of ``source``, building it first if needed.

    source: what :func:`pixpack.pack` accepts (a directory, a CSV file, a sequence).
    cache_dir: where packs are kept (default: :func:`default_cache_dir`).
    key: required for sources without a fingerprint (in-memory data): a name that
        changes whenever the data does.
    keep_old: keep the packs this build supersedes (default: removed once it is done).
    pack_options: :class:`PackOptions` fields (``mode="jpeg"``, ``max_side=512`` ...).
    """
    known = {f.name for f in dataclasses.fields(PackOptions)}
    unknown = sorted(set(pack_options) - known)
    if unknown:
        raise UsageError(
            f"unknown pack option(s) {', '.join(unknown)}; valid: {', '.join(sorted(known))}."
        )
    options = PackOptions(**pack_options)
    if options.resume:
        raise UsageError("cached() manages its own builds; resume=True is not allowed here.")
    directory = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    digest = cache_key(source, options, key)
    path = directory / f"{digest}.pixpack"
    found = _open_if_valid(path)
    if found is not None:
        return _reused(found)
    from filelock import FileLock

    from .write.packer import pack

    directory.mkdir(parents=True, exist_ok=True)
    with FileLock(str(directory / f"{digest}.lock")):
        found = _open_if_valid(path)  # another process may have built it meanwhile
        if found is not None:
            return _reused(found)
        path.unlink(missing_ok=True)
        log.warning("pixpack.cached: building a pack of %s into %s", _name(source), path)
        start = time.monotonic()
        summary = pack(source, path, options)
        log.warning(
            "pixpack.cached: built %s (%d images, %s) in %.0f s",
            path,
            summary.num_samples,
            _human(summary.bytes),
            time.monotonic() - start,
        )
        if not keep_old:
            removed = remove_superseded(path)
            if removed:
                log.warning(
                    "pixpack.cached: removed %d older pack(s) of the same source (%s): %s",
                    len(removed),
                    _human(sum(e.nbytes for e in removed)),
                    ", ".join(e.path.name for e in removed),
                )
    return open_pack(path)


def _reused(found: Pack) -> Pack:
    log.info("pixpack.cached: reusing %s (%d images)", found.path, len(found))
    return found


def _human(nbytes: int) -> str:
    return f"{nbytes / 1e9:.1f} GB" if nbytes >= 1e9 else f"{nbytes / 1e6:.1f} MB"


def _name(source: Any) -> str:
    return os.fspath(source) if isinstance(source, (str, os.PathLike)) else type(source).__name__
