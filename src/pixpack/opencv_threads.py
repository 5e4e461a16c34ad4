"""OpenCV runs each call on one thread while pixpack's own workers run.

Parallelism comes from pixpack's workers (packing threads/processes, loader threads),
so OpenCV's internal pool would only oversubscribe the cores: each resize fans out
and waits for its stripes (measured slower and costlier in CPU time). It also keeps
forking safe: a forked child that reconfigures an OpenCV pool other threads of the
parent had used hangs, while children forked here inherit one thread.

The setting is process-wide, so users are counted: the first one saves OpenCV's
setting, the last one restores it, and a pack and a loader running at the same time
cannot restore it under each other.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

__all__ = ["single_threaded_opencv"]

_lock = threading.Lock()
_users = 0
_saved = 0


def hold() -> None:
    """Count one more user (the first sets OpenCV to one thread); pair with
    :func:`release`. For holders that are not one ``with`` block (a loader's batches
    of its next epoch, started early)."""
    global _users, _saved
    import cv2

    with _lock:
        if _users == 0:
            _saved = cv2.getNumThreads()
            cv2.setNumThreads(1)
        _users += 1


def release() -> None:
    """One user fewer; the last one restores OpenCV's setting."""
    global _users
    import cv2

    with _lock:
        _users -= 1
        if _users == 0:
            cv2.setNumThreads(_saved)


@contextlib.contextmanager
def single_threaded_opencv() -> Iterator[None]:
    hold()
    try:
        yield
    finally:
        release()
