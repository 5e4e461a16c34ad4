"""The worker threads: a fixed pool that runs batch chunks and never hangs the consumer.

Threads rather than processes: the kernels (libjpeg, OpenCV, numpy) release the GIL,
so threads scale across cores while sharing the memory-mapped pack and the batch
buffers without pickling or copying anything.

Waiting is never a busy loop: the consumer blocks on a future with a timeout, and on
each timeout checks that the pool is still alive, so a closed pool or a dead thread
turns into an error instead of a hang. Workers hold no reference to the loader, so
garbage collection of the loader (or :meth:`WorkerPool.close`) ends the threads.
"""

from __future__ import annotations

import concurrent.futures as cf
import threading
from collections.abc import Callable, Iterable
from typing import Any

from ..errors import LoaderError

__all__ = ["WorkerPool"]

_POLL_S = 1.0  # how often a blocked consumer re-checks that the pool is alive


class WorkerPool:
    """``workers`` threads named ``pixpack-loader_N``, started lazily, joined on close."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._executor: cf.ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, fn: Callable[..., Any], *args: Any) -> cf.Future[Any]:
        with self._lock:
            if self._closed:
                raise LoaderError("the loader was closed; create a new Loader to iterate again")
            if self._executor is None:
                self._executor = cf.ThreadPoolExecutor(
                    self.workers, thread_name_prefix="pixpack-loader"
                )
            return self._executor.submit(fn, *args)

    def wait(self, futures: Iterable[cf.Future[Any]]) -> None:
        """Block until every future is done; re-raise the first task exception."""
        for future in futures:
            while True:
                try:
                    future.result(timeout=_POLL_S)
                    break
                except cf.TimeoutError:
                    self._check_alive()
                except cf.CancelledError:
                    raise LoaderError(
                        "the loader was closed while a batch was being prepared"
                    ) from None

    def _check_alive(self) -> None:
        executor = self._executor
        if self._closed:
            raise LoaderError("the loader was closed while a batch was being prepared")
        if executor is None:  # stopped between epochs: its queued tasks still run
            return
        threads = getattr(executor, "_threads", ())
        if threads and not any(t.is_alive() for t in threads):
            raise LoaderError(
                "every loader thread died; see the log for the cause and create a new Loader"
            )

    @staticmethod
    def cancel(futures: Iterable[cf.Future[Any]]) -> None:
        """Cancel what has not started and wait for what has (they write into buffers)."""
        pending = [f for f in futures if not f.cancel()]
        cf.wait(pending)

    def stop(self) -> None:
        """End the threads once their queued tasks are done, without waiting; the next
        :meth:`submit` starts new ones (a loader between epochs holds no threads).

        Never blocks (a generator's ``finally`` may run from a garbage collection inside
        :meth:`submit`): when the lock is taken it leaves the threads for next time.
        Under the lock no ``submit`` is running, so ``shutdown`` cannot wait on one."""
        if not self._lock.acquire(blocking=False):
            return
        try:
            executor, self._executor = self._executor, None
            if executor is not None:
                executor.shutdown(wait=False)
        finally:
            self._lock.release()

    def close(self, wait: bool = True) -> None:
        """Cancel queued tasks, let running ones finish, end the threads. Idempotent.

        ``wait=False`` is for garbage collection: a finalizer may run inside *any*
        thread, even one bootstrapping while it holds ``threading``'s internal locks,
        where joining threads deadlocks the whole process. The threads then exit on
        their own as soon as their current task is done.
        """
        with self._lock:
            self._closed = True
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=wait, cancel_futures=True)
