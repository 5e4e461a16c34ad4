"""Opening files that must be regular files, without ever blocking.

Images and packs are only ever read from regular files. A FIFO named ``img.jpg``
would block ``open()`` until a writer appears (forever, in an unattended job), and
``/dev/zero`` or ``/dev/urandom`` behind a symlink would be read until memory runs
out. :func:`open_regular` therefore looks at the file type with ``stat`` before
opening, opens with ``O_NONBLOCK`` (a FIFO swapped in between the two calls still
cannot block) and checks the opened descriptor once more with ``fstat``.

Both sides use it (the write side for source images and CSV files, the read side for
packs); each maps the refusal to its own error through ``refuse``.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from typing import BinaryIO

__all__ = ["file_kind", "open_regular"]


def file_kind(mode: int) -> str | None:
    """``None`` for a regular file, else what it is (for an error message)."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISDIR(mode):
        return "a directory"
    return "not a regular file"


def open_regular(path: str | os.PathLike[str], refuse: Callable[[str], BaseException]) -> BinaryIO:
    """Open ``path`` for binary reading if it is a regular file (symlinks followed).

    Anything else raises ``refuse(reason)`` (reason like ``"not a regular file (a
    FIFO (named pipe))"``) without a blocking open. A missing or unreadable file
    raises the usual ``OSError``.
    """
    kind = file_kind(os.stat(path).st_mode)
    if kind is not None:
        raise refuse(f"not a regular file ({kind})")
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        kind = file_kind(os.fstat(fd).st_mode)  # replaced between stat and open?
        if kind is not None:
            raise refuse(f"not a regular file ({kind})")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
