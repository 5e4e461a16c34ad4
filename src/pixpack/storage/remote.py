"""Remote bytes: range reads and whole-file downloads through fsspec, with retries.

Every remote read is ``(url, start, stop)``: the header, an index, a manifest or a
piece of a shard. fsspec picks the client from the URL's scheme (``s3://`` s3fs,
``gs://`` gcsfs, ``az://`` adlfs, ``http(s)://`` aiohttp), configured by the fsspec
``storage_options`` convention (``endpoint_url``, credentials, ...).

Nothing here can hang: every request runs under a per-request timeout (fsspec's
``sync(..., timeout=)`` for the asynchronous clients, which cancels the request, and the
clients' own connect/read timeouts where they have them), and every operation under an
overall deadline. A failed request is retried with exponential backoff and jitter
(``retries`` times, never past the deadline), then fails with :class:`RemoteError`
naming the URL, the byte range, the attempts and the last error. A download goes in
pieces of ``piece_bytes``, each retried on its own: a connection that dies half-way
through a shard costs one piece again, not the whole shard.

An error that retrying cannot fix (no such file, access denied) fails at once.
"""

from __future__ import annotations

import dataclasses
import os
import random
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from ..errors import RemoteError, UsageError
from ..options import shard_limit

__all__ = ["RemoteOptions", "RemoteFiles", "is_url", "join_url"]

T = TypeVar("T")

_LOCAL_SCHEMES = ("file", "local")
# Errors that retrying cannot fix: the file is not there, or we may not read it.
_PERMANENT = (
    FileNotFoundError,
    PermissionError,
    IsADirectoryError,
    NotADirectoryError,
    TypeError,
)  # fmt: skip  (TypeError: storage_options the client does not take)


def is_url(path: Any) -> bool:
    """Whether ``path`` names a remote object (``scheme://...``, not ``file://``)."""
    if not isinstance(path, str) or "://" not in path:
        return False
    scheme = path.split("://", 1)[0].lower()
    return scheme.isidentifier() and scheme not in _LOCAL_SCHEMES


def join_url(base: str, name: str) -> str:
    """``base/name`` for a directory URL (with or without its trailing slash)."""
    return base.rstrip("/") + "/" + name


@dataclasses.dataclass(frozen=True)
class RemoteOptions:
    """How a remote pack is read (``pixpack.open(url, remote=RemoteOptions(...))``).

    cache_dir: where downloaded shards are kept (default
        ``$XDG_CACHE_HOME/pixpack/remote``, else ``~/.cache/pixpack/remote``); many
        processes and ranks may share one directory.
    cache_limit: the most bytes of shards the cache directory holds, an int or a size
        such as ``"20GB"``; least recently used shards are evicted to make room.
    retries: tries after the first failure of a request.
    timeout_s: the longest one request may take before it is cancelled and retried.
    deadline_s: the longest one operation (a range read, a whole shard's download)
        may take with its retries, before :class:`~pixpack.errors.RemoteError`.
    backoff_s: the first retry's wait; it doubles per retry (with jitter), up to 10 s.
    piece_bytes: downloads go in ranges of this many bytes, each retried alone.
    max_open_shards: shards one process keeps mapped (0: as many as fit the cache).
    """

    cache_dir: str | None = None
    cache_limit: int | str = "20GB"
    retries: int = 5
    timeout_s: float = 60.0
    deadline_s: float = 600.0
    backoff_s: float = 0.25
    piece_bytes: int = 16 << 20
    max_open_shards: int = 0

    def __post_init__(self) -> None:
        def check(ok: bool, message: str) -> None:
            if not ok:
                raise UsageError(message)

        limit = self.cache_limit
        if isinstance(limit, str):
            kind, limit = shard_limit(limit)
            check(kind == "bytes", f"cache_limit must be bytes, e.g. '20GB' (got {limit!r}).")
        check(
            isinstance(limit, int) and not isinstance(limit, bool) and limit > 0,
            f"cache_limit must be a positive number of bytes or a size such as '20GB' "
            f"(got {self.cache_limit!r}).",
        )
        object.__setattr__(self, "cache_limit", int(limit))
        check(
            isinstance(self.retries, int) and self.retries >= 0,
            f"retries must be a non-negative integer (got {self.retries!r}).",
        )
        for name in ("timeout_s", "deadline_s", "backoff_s"):
            value = getattr(self, name)
            check(
                isinstance(value, (int, float)) and value > 0,
                f"{name} must be a positive number of seconds (got {value!r}).",
            )
        check(
            isinstance(self.piece_bytes, int) and self.piece_bytes >= 4096,
            f"piece_bytes must be an integer of at least 4096 (got {self.piece_bytes!r}).",
        )
        check(
            isinstance(self.max_open_shards, int) and self.max_open_shards >= 0,
            f"max_open_shards must be a non-negative integer (got {self.max_open_shards!r}).",
        )

    @property
    def limit_bytes(self) -> int:
        return int(self.cache_limit)

    def directory(self) -> str:
        """The cache directory: ``cache_dir``, or the default one."""
        if self.cache_dir is not None:
            return os.fspath(self.cache_dir)
        from ..cache import default_cache_dir

        return os.fspath(default_cache_dir() / "remote")


class RemoteFiles:
    """Range reads and downloads of one remote location's objects, with retries.

    ``storage_options`` are fsspec's (passed to the file system's constructor); the
    file system is created on first use and again after unpickling (one per process).
    """

    def __init__(self, url: str, storage_options: Mapping[str, Any] | None,
                 options: RemoteOptions) -> None:  # fmt: skip
        self.url = url
        self.storage_options = dict(storage_options or {})
        self.options = options
        self._fs: Any = None
        self._jitter = random.Random()  # waits only; never affects what is read
        self.retried = 0  # failed attempts that were retried (for tests and doctor)

    def __getstate__(self) -> dict[str, Any]:
        return {"url": self.url, "storage_options": self.storage_options,
                "options": self.options}  # fmt: skip

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["url"], state["storage_options"], state["options"])  # type: ignore[misc]

    # -- the file system ---------------------------------------------------------------
    @property
    def fs(self) -> Any:
        if self._fs is None:
            self._fs = _filesystem(self.url, self.storage_options, self.options.timeout_s)
        return self._fs

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        fs = self.fs
        if getattr(fs, "async_impl", False):  # fsspec's sync(): cancels the request
            kwargs["timeout"] = self.options.timeout_s
        return getattr(fs, method)(*args, **kwargs)

    # -- reads -------------------------------------------------------------------------
    def read_range(self, url: str, start: int, stop: int, exact: bool = True) -> bytes:
        """Bytes ``[start, stop)`` of ``url``: exactly (a short answer is retried), or
        with ``exact=False`` as many as the object has (a header read of a short file)."""
        deadline = time.monotonic() + self.options.deadline_s
        read = self._exact if exact else self._some
        return self._retry(url, f"bytes {start}-{stop - 1}", deadline,
                           lambda: read(url, start, stop))  # fmt: skip

    def read_all(self, url: str, max_bytes: int) -> bytes:
        """A whole small object (a manifest): at most ``max_bytes + 1`` bytes are kept."""
        deadline = time.monotonic() + self.options.deadline_s
        data = self._retry(url, "the whole file", deadline, lambda: self._call("cat_file", url))
        return bytes(data[: max_bytes + 1])

    @staticmethod
    def missing(exc: RemoteError) -> bool:
        """Whether ``exc`` says the object does not exist (not that reading it failed)."""
        return isinstance(exc.__cause__, FileNotFoundError)

    def download(self, url: str, fd: int, nbytes: int,
                 on_piece: Callable[[int], None] | None = None) -> None:  # fmt: skip
        """Write bytes ``[0, nbytes)`` of ``url`` into descriptor ``fd`` at the same
        offsets, a piece at a time; each piece retried alone, the whole under one
        deadline. ``on_piece(done)`` is called after each piece (a heartbeat)."""
        deadline = time.monotonic() + self.options.deadline_s
        piece = self.options.piece_bytes
        for start in range(0, nbytes, piece):
            stop = min(nbytes, start + piece)
            data = self._retry(url, f"bytes {start}-{stop - 1}", deadline,
                               lambda a=start, b=stop: self._exact(url, a, b))  # fmt: skip
            view, at = memoryview(data), start
            while view:
                written = os.pwrite(fd, view, at)
                view, at = view[written:], at + written
            if on_piece is not None:
                on_piece(stop)

    def _exact(self, url: str, start: int, stop: int) -> bytes:
        data = self._call("cat_file", url, start=start, end=stop)
        if len(data) != stop - start:
            raise OSError(f"the server sent {len(data)} bytes for a range of {stop - start}")
        return bytes(data)

    def _some(self, url: str, start: int, stop: int) -> bytes:
        return bytes(self._call("cat_file", url, start=start, end=stop)[: stop - start])

    def _retry(self, url: str, what: str, deadline: float, attempt: Callable[[], T]) -> T:
        o = self.options
        self.fs  # noqa: B018  (a bad storage_options fails here, once, not retried)
        tries = 0
        while True:
            tries += 1
            try:
                return attempt()
            except _PERMANENT as exc:
                raise RemoteError(
                    f"{url}: cannot read {what}: {type(exc).__name__}: {exc}; check the URL "
                    "and the credentials in storage_options",
                    url, tries,
                ) from exc  # fmt: skip
            except Exception as exc:  # network errors come in many types; all retried
                wait = min(10.0, o.backoff_s * 2 ** (tries - 1)) * self._jitter.uniform(0.5, 1.5)
                left = deadline - time.monotonic()
                if tries > o.retries or wait >= left:
                    why = "retries" if tries > o.retries else f"deadline of {o.deadline_s:g} s"
                    raise RemoteError(
                        f"{url}: reading {what} failed {tries} times (out of {why}); last "
                        f"error: {type(exc).__name__}: {exc or 'timed out'}; check the network "
                        "and the server, or raise RemoteOptions(retries=, deadline_s=)",
                        url, tries,
                    ) from exc  # fmt: skip
                self.retried += 1
                time.sleep(wait)


def _filesystem(url: str, storage_options: dict[str, Any], timeout_s: float) -> Any:
    """The fsspec file system for ``url``, with timeouts set where its client takes them
    (the caller's own settings win)."""
    from ..optional import require

    require("fsspec", "reading a remote pack")
    import fsspec

    scheme = url.split("://", 1)[0].lower()
    module = {"s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs",
              "abfs": "adlfs", "abfss": "adlfs", "http": "aiohttp", "https": "aiohttp"}  # fmt: skip
    if scheme in module:
        require(module[scheme], f"reading {scheme}:// URLs")
    options = dict(storage_options)
    if scheme in ("s3", "s3a"):
        config = dict(options.get("config_kwargs") or {})
        config.setdefault("connect_timeout", timeout_s)
        config.setdefault("read_timeout", timeout_s)
        config.setdefault("retries", {"max_attempts": 1})  # we retry, with a deadline
        options["config_kwargs"] = config
    elif scheme in ("http", "https"):
        import aiohttp

        client = dict(options.get("client_kwargs") or {})
        client.setdefault("timeout", aiohttp.ClientTimeout(total=timeout_s))
        options["client_kwargs"] = client
    options.setdefault("skip_instance_cache", True)  # ours, with our settings
    return fsspec.filesystem(scheme, **options)
