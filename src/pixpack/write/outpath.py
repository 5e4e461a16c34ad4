"""What ``pack()`` may write over, and one packer per OUT at a time.

A pack is the one file a packer replaces, so OUT is checked before anything is
written (:func:`check_out`):

- OUT is not an input: not the CSV file, not the source folder nor anything inside
  it, not a file that the source lists (a CSV row, a path in a Python list, a
  torchvision dataset's ``samples``);
- an existing OUT is a pack (it starts with the pixpack magic) or an empty file:
  any other file is refused, never overwritten. An existing pack *is* replaced, as
  before, and only at the very end: the new pack is renamed onto it once complete;
- OUT is not a FIFO, device or socket.

Concurrent packs into one OUT (:class:`OutLock`): the packer holds an exclusive,
non-blocking ``flock`` on ``OUT.partial.lock`` from before it opens
``OUT.partial`` (whose creation truncates it) until it has renamed or given up on
it. A second packer fails at once with :class:`~pixpack.errors.OutputBusyError`
naming the holder's process id. The kernel drops the lock when its holder dies, even
by SIGKILL, so a lock file left behind never blocks a later run.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Any

from .. import format as fmt
from ..errors import OutputBusyError, UsageError
from ..regular_files import file_kind, open_regular
from .writer import partial_paths

__all__ = ["OutLock", "check_out", "check_out_dir", "check_shard_out", "lock_path"]


def lock_path(out: str | os.PathLike[str]) -> Path:
    """The lock file of a pack being written: ``OUT.partial.lock``."""
    out = Path(out)
    return out.with_name(out.name + ".partial.lock")


def check_out(out: Path, src: Any) -> None:
    """Refuse an OUT that is an input of ``src`` or an existing file that is not a pack."""
    real = os.path.realpath(out)
    info = _check_outside_root(out, src)
    csv_path = info.get("path")
    if isinstance(csv_path, str) and real == os.path.realpath(csv_path):
        raise UsageError(
            f"{out}: is the CSV file being packed; packing would overwrite it — name the "
            f"pack differently (e.g. {Path(csv_path).stem}.pixpack)."
        )
    position = _listed_at(out, src)
    if position is not None:
        raise UsageError(
            f"{out}: is an input image of this pack (item {position}); packing would "
            "overwrite it — name the pack differently (e.g. data.pixpack)."
        )
    _check_existing(out)
    _check_partial(out)


def check_out_dir(out: Path, src: Any) -> None:
    """A sharded pack's OUT: a directory (made if absent) that is not an input of
    ``src``; an existing file there is refused (it may be a pack, which is a file)."""
    _check_outside_root(out, src)
    if os.path.lexists(out) and not out.is_dir():
        raise UsageError(
            f"{out}: exists and is not a directory; a sharded pack (--shard-size, "
            "--num-shards) is a directory of packs — choose another OUT name."
        )


def _check_outside_root(out: Path, src: Any) -> dict[str, Any]:
    """Refuse an OUT inside the source folder; returns ``src.describe()``."""
    info = src.describe() if hasattr(src, "describe") else {}
    root = info.get("root")
    if isinstance(root, str):
        real, real_root = os.path.realpath(out), os.path.realpath(root)
        if real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep):
            raise UsageError(
                f"{out}: lies inside the source folder {root}; write the pack outside the "
                f"folder it packs (e.g. {Path(root).name}.pixpack next to it)."
            )
    return info


def check_shard_out(path: Path) -> None:
    """One shard's file: as OUT of a single pack, less the (once per pack) source checks."""
    _check_existing(path)
    _check_partial(path)


def _check_partial(out: Path) -> None:
    """``OUT.partial`` and its sidecars are replaced (or resumed): refuse names that hold
    something else, such as a symlink (writing would follow it) or a file that no
    packer wrote (a partial pack starts with zeros, or a header if its commit was cut)."""
    for path in (*partial_paths(out), lock_path(out)):
        if path.is_symlink():
            raise UsageError(
                f"{path}: is a symlink where pack() keeps its temp file; remove the link "
                "or choose another OUT."
            )
    tmp = partial_paths(out)[0]
    try:
        st = os.stat(tmp)
    except FileNotFoundError:
        return
    kind = file_kind(st.st_mode)
    if kind is not None:
        raise UsageError(f"{tmp}: is {kind}; remove it or choose another OUT.")
    if st.st_size == 0:
        return
    with open_regular(tmp, lambda reason: UsageError(f"{tmp}: {reason}")) as f:
        head = f.read(len(fmt.MAGIC))
    if head not in (b"\x00" * len(fmt.MAGIC), fmt.MAGIC):
        raise UsageError(
            f"{tmp}: exists and is not a partial pack; packing would overwrite it — "
            "choose another OUT name."
        )


def _listed_at(out: Path, src: Any) -> int | None:
    """Position of ``out`` among the source's listed files (compared as absolute paths)."""
    paths = _listed_paths(src)
    if paths is None:
        return None
    name = out.name
    targets = {os.path.abspath(out), os.path.realpath(out)}
    for i, path in enumerate(paths):
        # The suffix test is one C call: normalising every path would cost seconds at 10M.
        if isinstance(path, (str, os.PathLike)) and os.fspath(path).endswith(name):
            if os.path.abspath(path) in targets:
                return i
    return None


def _listed_paths(src: Any) -> Any:
    samples = getattr(src, "samples", None)  # the file sources, torchvision datasets
    if samples is None:
        samples = getattr(src, "seq", None)  # SequenceSource over a list
        samples = getattr(samples, "samples", samples)
    if not isinstance(samples, (list, tuple)):
        return None
    return (s[0] if isinstance(s, (list, tuple)) and s else None for s in samples)


def _check_existing(out: Path) -> None:
    try:
        st = os.stat(out)
    except FileNotFoundError:
        return
    kind = file_kind(st.st_mode)
    if kind == "a directory":
        raise UsageError(f"{out}: is a directory; give the pack a file name like data.pixpack.")
    if kind is not None:
        raise UsageError(f"{out}: is {kind}, not a regular file; give the pack a file name.")
    if st.st_size == 0:
        return  # nothing to lose (e.g. a file made by mktemp)
    with open_regular(out, lambda reason: UsageError(f"{out}: {reason}")) as f:
        magic = f.read(len(fmt.MAGIC))
    if magic != fmt.MAGIC:
        raise UsageError(
            f"{out}: exists and is not a pixpack pack; packing would overwrite it — "
            "choose another OUT name (existing packs are replaced, other files never)."
        )


class OutLock:
    """An exclusive, non-blocking lock on ``OUT.partial.lock`` (a context manager)."""

    def __init__(self, out: str | os.PathLike[str]) -> None:
        self.out = Path(out)
        self.path = lock_path(out)
        self._fd: int | None = None

    def acquire(self) -> OutLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)  # pack() creates OUT's folder
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
                os.close(fd)
                raise OutputBusyError(
                    f"{self.out}: another pixpack pack is writing it (pid {holder}, lock "
                    f"{self.path.name}); wait for it to finish or choose another OUT."
                ) from None
            except BaseException:
                os.close(fd)
                raise
            # The holder before us may have removed the file after we opened it: a lock
            # on an unlinked file protects nothing, so lock the file that is there now.
            try:
                current = os.stat(self.path)
            except FileNotFoundError:
                current = None
            mine = os.fstat(fd)
            if current is not None and (current.st_dev, current.st_ino) == (
                mine.st_dev,
                mine.st_ino,
            ):
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        """Remove the lock file, then drop the lock (that order: see :meth:`acquire`)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        finally:
            os.close(fd)

    def __enter__(self) -> OutLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
