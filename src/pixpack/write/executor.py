"""Run chunks of packing work in threads or processes; hand results back in order.

``work(start, stop, cancel)`` turns source items ``[start, stop)`` into a list of
results. :func:`ordered_chunks` keeps at most ``window_per_worker x workers`` chunks
in flight (memory stays flat for any dataset size) and yields their results strictly
in submission order, so what the caller writes never depends on scheduling.

Two kinds of worker:

- ``"thread"``: a thread pool in the calling process. JPEG decode/encode
  (libjpeg-turbo), OpenCV resizing, Pillow decoders and CRC-32 release the GIL, and
  results (often ~0.5 MB of raw pixels) reach the writer without pickling or copies.
  Threads cannot be killed: on cancellation they see ``cancel`` set and return after
  the item they are decoding; the caller's thread handles signals.
- ``"process"``: a fork-started process pool for sources whose ``load()`` is
  GIL-bound Python. The work function reaches each worker once (initializer), tasks
  carry only indices. Workers ignore SIGINT (the parent decides when to stop) and die
  with their parent (Linux ``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterable
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any, Literal, TypeVar

from ..opencv_threads import single_threaded_opencv

__all__ = ["WorkerKind", "Work", "ordered_chunks"]

T = TypeVar("T")
WorkerKind = Literal["thread", "process"]
Work = Callable[[int, int, "threading.Event | None"], list[T]]


def ordered_chunks(
    work: Work[T],
    bounds: Iterable[tuple[int, int]],
    *,
    workers: int,
    kind: WorkerKind,
    window_per_worker: int = 3,
) -> Generator[list[T], None, None]:
    """Yield ``work(start, stop, cancel)`` for each bound, in order, from ``workers``."""
    with single_threaded_opencv():
        yield from _ordered(work, bounds, workers=workers, kind=kind, window=window_per_worker)


def _ordered(
    work: Work[T], bounds: Iterable[tuple[int, int]], *, workers: int, kind: WorkerKind, window: int
) -> Generator[list[T], None, None]:
    cancel = threading.Event()
    executor: Executor
    if kind == "thread":
        executor = ThreadPoolExecutor(workers, thread_name_prefix="pixpack-pack")
    elif kind == "process":
        context = multiprocessing.get_context("fork" if sys.platform == "linux" else None)
        executor = ProcessPoolExecutor(
            workers, mp_context=context, initializer=_init_process, initargs=(work,)
        )
    else:
        raise ValueError(f"unknown worker kind {kind!r}")

    def submit(start: int, stop: int) -> Future[list[T]]:
        if kind == "thread":
            return executor.submit(work, start, stop, cancel)
        return executor.submit(_process_chunk, start, stop)

    in_flight: deque[Future[list[T]]] = deque()
    todo = iter(bounds)
    finished = False
    try:
        for start, stop in todo:
            in_flight.append(submit(start, stop))
            if len(in_flight) >= workers * window:
                break
        while in_flight:
            results = in_flight.popleft().result()
            nxt = next(todo, None)
            if nxt is not None:
                in_flight.append(submit(*nxt))
            yield results
        finished = True
    finally:
        if finished:
            executor.shutdown(wait=True)
        else:
            # Queued chunks are cancelled; busy workers stop after their current item
            # (threads, through ``cancel``) or chunk (processes) and exit. Processes
            # are not killed: one killed while writing its result leaves a partial
            # message that blocks the executor's manager thread, and so interpreter
            # exit, forever.
            cancel.set()
            executor.shutdown(wait=False, cancel_futures=True)


# -- process workers -------------------------------------------------------------------------
# Set once per worker process by the pool initializer: the work function (holding the
# source) is sent to each worker once instead of with every task.
_process_work: list[Callable[..., Any]] = []


def _init_process(work: Callable[..., Any]) -> None:
    # The parent decides when to stop: Ctrl-C reaches the whole process group, and
    # workers that died on it would break the pool before the partial pack is flushed.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _die_with_parent()
    # OpenCV already runs single-threaded (inherited, see pixpack.opencv_threads).
    torch = sys.modules.get("torch")
    if torch is not None:  # one thread per worker process: no oversubscription
        with contextlib.suppress(Exception):
            torch.set_num_threads(1)
    _process_work[:] = [work]


def _process_chunk(start: int, stop: int) -> Any:
    return _process_work[0](start, stop, None)


def _die_with_parent() -> None:
    """Linux: a SIGKILLed parent takes its workers along (they would block forever)."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(Exception):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() == 1:  # the parent died before prctl took effect
            os._exit(1)
