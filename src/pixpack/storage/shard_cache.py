"""A directory of downloaded shards, bounded in bytes, shared by many processes.

Layout (one flat directory, shared by every dataset, process and rank using it)::

    <key>-<shard name>                       a published shard: complete and verified
    <key>-<shard name>.<host>.<pid>.<tok>.tmp   a download in progress (its full size
                                             reserved up front with ftruncate)
    <key>-<shard name>.lock                  "someone is downloading this" (O_EXCL)
    .cache.lock                              held for milliseconds while making room

**Crash safety.** A download lands in its own temp file (a per-process name, so two
downloaders never write one file), is fsynced and verified against the manifest
(size, header CRC, and every CRC the header chains to: index, metadata, every
sample), and only then renamed onto its final name (``os.replace``, atomic) and the
directory fsynced. A killed download leaves at most a ``.tmp`` file, which no reader
ever opens and which the next process to make room deletes (its owner's pid is gone,
or on another host, it has not been written to for ``stale_s``). A published file is
never written again: it is only ever replaced whole or removed.

**Bound.** The bytes of published shards plus those reserved by downloads in progress
never exceed ``limit`` (see below for the one exception). Before a download, under the
cache lock, a process lists the directory, removes stale temp files and evicts the
least recently used published shards (by modification time, which a process sets
with ``os.utime`` whenever it opens a shard: ``atime`` is not reliable under
``relatime``/``noatime``) until the new shard fits, then creates its temp file at full
size and releases the lock. If only downloads in progress fill the cache, it waits for
them (they end, one way or another) until its deadline.

**Concurrency without flock.** ``flock``/``fcntl`` locks do not work on every shared
file system (some NFS and FUSE mounts ignore them, which is how fsspec's cache read
corrupt bytes in fsspec#639). Nothing here relies on them: data correctness rests only
on per-process temp names and atomic rename (a reader sees either no file or a
complete, verified one), and the locks are ``O_CREAT | O_EXCL`` files holding
``host pid token time``. A lock whose owner is dead (same host, no such pid) or which
is older than ``stale_s`` is taken over. Taking over has a narrow race (two processes
judge the same lock stale at once); its worst outcome is two processes making room at
the same time (the cache briefly over its bound by one shard) or one shard downloaded
twice — never a corrupt or half-written file read.

**Evicting a shard in use.** Eviction may unlink a shard another process has mapped.
On POSIX that is safe for the mapper: the mapping keeps the inode (and its bytes)
alive until it is unmapped, and the file is never modified, so the mapper keeps
reading exactly what it verified. The disk space returns when the last mapping goes
(:class:`pixpack.read.sharded.ShardedPack` drops shards beyond ``max_open_shards``).
On Windows the unlink fails while the file is open; that shard is skipped.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from ..errors import RemoteError, UsageError

__all__ = ["ShardCache"]

_LOCK = ".lock"
_TMP = ".tmp"
_CACHE_LOCK = ".cache.lock"
T = TypeVar("T")
_HOST = socket.gethostname().replace(".", "_").replace(" ", "_") or "host"


class ShardCache:
    """Shards cached in ``directory``, at most ``limit`` bytes in all (see module).

    ``stale_s``: a lock or temp file untouched this long, whose owner cannot be checked
    (another host), is abandoned. ``poll_s``: how often a waiting process looks again.
    """

    def __init__(self, directory: str | os.PathLike[str], limit: int, *,
                 stale_s: float = 120.0, poll_s: float = 0.02) -> None:  # fmt: skip
        self.directory = Path(directory)
        self.limit = int(limit)
        self.stale_s = float(stale_s)
        self.poll_s = float(poll_s)
        self.evicted = 0  # shards this process evicted (for tests and doctor)
        self.downloads = 0  # shards this process downloaded

    def path(self, name: str) -> Path:
        """Where the published shard ``name`` lives (it may not be there)."""
        return self.directory / name

    def usage(self) -> int:
        """Bytes of published shards and reserved downloads in the directory now."""
        return sum(size for _, size, _ in self._entries())

    def open(self, name: str, nbytes: int, fetch: Callable[[int, Callable[[], None]], None],
             verify: Callable[[Path], None], use: Callable[[Path], T],
             deadline_s: float) -> T:  # fmt: skip
        """``use(path)`` of published shard ``name`` (``nbytes`` long), downloading it
        first if it is not cached: ``fetch(fd, heartbeat)`` writes its bytes into ``fd``,
        ``verify(path)`` raises if the written file is not the one wanted. ``use`` opens
        (maps) the file: once it returns, eviction can no longer take the bytes away.
        It runs under the shard's lock when the shard was not found at once, and
        eviction skips locked shards, so a shard is never evicted between its download
        and its first open."""
        if nbytes > self.limit:
            raise UsageError(
                f"{name} is {nbytes} bytes, more than the whole cache_limit of {self.limit} "
                f"bytes; raise RemoteOptions(cache_limit=) to at least {nbytes} (a few "
                "shards' worth lets the loader fetch ahead), or re-pack into smaller shards "
                "(pixpack pack --shard-size)"
            )
        deadline = time.monotonic() + deadline_s
        final = self.path(name)
        self.directory.mkdir(parents=True, exist_ok=True)
        if self._touch(final):
            try:
                return use(final)
            except FileNotFoundError:  # evicted just now: take the careful way
                pass
        while True:
            lock_path = self.directory / (name + _LOCK)
            token = _try_lock(lock_path, self.stale_s)
            if token is None:  # someone else is downloading or opening it: wait
                self._wait(deadline, f"another process downloading {name}")
                continue
            try:
                if not self._touch(final):
                    self._download(name, nbytes, fetch, verify, deadline, lock_path)
                try:
                    return use(final)
                except FileNotFoundError:  # our lock was judged stale (see module)
                    pass
            finally:
                _unlock(lock_path, token)
            self._wait(deadline, f"{name} to stay in the cache long enough to open")

    # -- inside the shard's download lock ----------------------------------------------
    def _download(self, name: str, nbytes: int,
                  fetch: Callable[[int, Callable[[], None]], None],
                  verify: Callable[[Path], None], deadline: float,
                  lock_path: Path) -> None:  # fmt: skip
        tmp = self._reserve(name, nbytes, deadline)

        def heartbeat() -> None:  # other hosts judge our lock by its age
            with contextlib.suppress(OSError):
                os.utime(lock_path)

        try:
            fd = os.open(tmp, os.O_RDWR)
            try:
                fetch(fd, heartbeat)  # its writes refresh the temp file's mtime
                os.fsync(fd)
            finally:
                os.close(fd)
            verify(tmp)
            os.replace(tmp, self.path(name))
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        _fsync_dir(self.directory)
        self.downloads += 1

    def _reserve(self, name: str, nbytes: int, deadline: float) -> Path:
        """Make room for ``nbytes`` (evicting LRU shards) and create the temp file at that
        size, under the cache lock; wait while downloads in progress fill the cache."""
        tmp = self.directory / f"{name}.{_HOST}.{os.getpid()}.{secrets.token_hex(4)}{_TMP}"
        lock = self.directory / _CACHE_LOCK
        while True:
            token = _try_lock(lock, self.stale_s)
            if token is not None:
                try:
                    if self._make_room(nbytes, keep=name):
                        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
                        try:
                            os.ftruncate(fd, nbytes)  # the reservation others' scans see
                        finally:
                            os.close(fd)
                        return tmp
                finally:
                    _unlock(lock, token)
            self._wait(deadline, f"room for {name} ({nbytes} bytes) in {self.directory}")

    def _make_room(self, nbytes: int, keep: str) -> bool:
        entries = self._entries(clean=True)
        used = sum(size for _, size, _ in entries)
        busy = set()  # shards being downloaded or opened: never evicted under them
        for e in _scandir(self.directory):
            if e.name.endswith(_LOCK) and not e.name.startswith("."):
                if _stale_lock(Path(e.path), self.stale_s):  # its owner is gone
                    with contextlib.suppress(OSError):
                        os.unlink(e.path)
                else:
                    busy.add(e.name[: -len(_LOCK)])
        published = sorted((mtime, path, size) for path, size, mtime in entries
                           if not path.name.endswith(_TMP) and path.name != keep
                           and path.name not in busy)  # fmt: skip
        for _, path, size in published:
            if used + nbytes <= self.limit:
                break
            try:
                os.unlink(path)  # a process mapping it keeps reading it (see module)
            except FileNotFoundError:
                pass
            except OSError:  # e.g. open on Windows: leave it
                continue
            used -= size
            self.evicted += 1
        return used + nbytes <= self.limit

    def _entries(self, clean: bool = False) -> list[tuple[Path, int, float]]:
        """``(path, size, mtime)`` of published shards and temp files; with ``clean``,
        stale temp files (their writer is gone) are removed instead."""
        out = []
        for entry in _scandir(self.directory):
            name = entry.name
            if name.startswith(".") or name.endswith(_LOCK):
                continue
            try:
                st = entry.stat()
            except FileNotFoundError:
                continue
            if clean and name.endswith(_TMP) and _abandoned(name, st.st_mtime, self.stale_s):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
                continue
            out.append((Path(entry.path), st.st_size, st.st_mtime))
        return out

    def _touch(self, path: Path) -> bool:
        """Mark ``path`` as just used (LRU) if it is published; whether it is."""
        try:
            os.utime(path)
        except FileNotFoundError:
            return False
        return True

    def _wait(self, deadline: float, what: str) -> None:
        if time.monotonic() >= deadline:
            raise RemoteError(
                f"{self.directory}: gave up waiting for {what}; is the cache_limit too small "
                "for the shards many processes read at once?",
                os.fspath(self.directory),
            )
        time.sleep(self.poll_s)


def _scandir(directory: Path) -> Iterator[os.DirEntry[str]]:
    try:
        with os.scandir(directory) as it:
            yield from it
    except FileNotFoundError:
        return


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _stale(host: str, pid: str, mtime: float, stale_s: float) -> bool:
    """Whether the owner ``host pid`` of a lock or temp file is gone: on this host, its
    pid no longer exists; on another (a shared file system), the file has not been
    touched for ``stale_s`` (downloads refresh their lock and temp file as they go)."""
    if host == _HOST and pid.isdigit():
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except OSError:  # alive, someone else's
            return False
        return False
    return time.time() - mtime > stale_s


def _abandoned(tmp_name: str, mtime: float, stale_s: float) -> bool:
    """A temp file ``<name>.<host>.<pid>.<token>.tmp`` whose writer is gone."""
    parts = tmp_name[: -len(_TMP)].rsplit(".", 3)
    if len(parts) != 4:
        return time.time() - mtime > stale_s
    return _stale(parts[1], parts[2], mtime, stale_s)


def _try_lock(path: Path, stale_s: float) -> str | None:
    """Create lock file ``path`` (O_EXCL) and return its token, or None while a live
    owner holds it. A stale lock (owner gone, or older than ``stale_s``) is removed and
    the creation tried again."""
    token = f"{_HOST} {os.getpid()} {secrets.token_hex(8)} {time.time():.3f}"
    for _ in range(2):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            if not _stale_lock(path, stale_s):
                return None
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            continue
        try:
            os.write(fd, token.encode())
        finally:
            os.close(fd)
        return token
    return None


def _stale_lock(path: Path, stale_s: float) -> bool:
    try:
        text = path.read_text()
        mtime = path.stat().st_mtime
    except (FileNotFoundError, UnicodeDecodeError):
        return False  # gone already (or being written): look again
    parts = text.split()
    if len(parts) != 4:  # being written (or foreign): only age tells
        return time.time() - mtime > stale_s
    return _stale(parts[0], parts[1], mtime, stale_s)


def _unlock(path: Path, token: str) -> None:
    """Remove lock file ``path`` if it is still ours (it may have been taken over)."""
    try:
        if path.read_text() == token:
            os.unlink(path)
    except (FileNotFoundError, UnicodeDecodeError):
        pass
