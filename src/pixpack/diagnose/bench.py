"""``bench``: how fast does a :class:`~pixpack.Loader` deliver batches of *this* pack?

The consumer does nothing but take batches (and, on CUDA, wait for them to land), so
the numbers are the loader's ceiling for this pack, pipeline, batch size and worker
count. Reported:

- ``images_per_second`` / ``batches_per_second`` after the warm-up batches (the first
  batch pays for thread start-up, buffer allocation and cold caches);
- ``mb_per_second``: stored (on-disk) bytes read per second, i.e. images/s times the
  pack's mean stored sample size;
- ``latency_p50`` / ``latency_p99``: seconds between consecutive batches as the
  consumer sees them (an epoch boundary refills the prefetch queue and shows up in p99);
- ``time_to_first_batch``: from Loader construction (or ``iter()`` for a Loader passed
  in) to the first batch in hand.

Where torch is not installed the Loader measured yields NumPy batches (the same work).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..errors import UsageError
from ..optional import available, require
from .pipeline_spec import describe_pipeline, resolve_pipeline

__all__ = ["BenchResult", "bench"]

_DEFAULT_SECONDS = 10.0


@dataclass(frozen=True)
class BenchResult:
    """What :func:`bench` measured (times in seconds). ``as_dict`` keys are stable."""

    pack: str
    pipeline: str
    batch_size: int
    workers: int
    device: str
    batches: int
    images: int
    warmup_batches: int
    seconds: float
    total_seconds: float
    images_per_second: float
    batches_per_second: float
    mb_per_second: float
    latency_p50: float
    latency_p99: float
    time_to_first_batch: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _open(pack: Any) -> Any:
    if isinstance(pack, (str, bytes)) or hasattr(pack, "__fspath__"):
        from ..read.open_any import open_pack

        return open_pack(pack)
    return pack


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch  # a CUDA Loader exists only where torch does

        torch.cuda.synchronize()


def default_output(device: str) -> str:
    """The Loader ``output`` to measure here: torch tensors (the default) where torch is
    installed, else NumPy arrays, which cost the same (both wrap the loader's buffers);
    a GPU device needs torch."""
    if available("torch"):
        return "torch"
    if device != "cpu":
        require("torch", f"device={device!r}")
    return "numpy"


def bench(
    pack: Any,
    pipeline: Any = None,
    *,
    batch_size: int = 64,
    workers: int | None = None,
    batches: int | None = None,
    seconds: float | None = None,
    device: str = "cpu",
    warmup: int = 1,
    seed: int = 0,
    progress: bool | None = None,
    read_ahead: int = 8,
    block_shuffle: int = 0,
) -> BenchResult:
    """Iterate a Loader over ``pack`` and time it.

    ``pack``: a path, an open pack, a :class:`~pixpack.Subset` (a query or a split), or
    a :class:`~pixpack.Loader` (then ``pipeline``,
    ``batch_size``, ``workers`` and ``device`` are the loader's own). ``pipeline``: a
    ``--pipeline`` string, a :class:`pixpack.ops.Pipeline` or a list of ops (default:
    the ``train`` preset). Stops after ``batches`` measured batches or ``seconds``
    (default 10 s when neither is given), whichever comes first, running more epochs
    if needed. ``progress``: a progress line on stderr (None: only on a TTY).
    ``read_ahead`` and ``block_shuffle``: as for :class:`~pixpack.Loader` (packs larger
    than RAM).
    """
    from ..loader import Loader
    from ..progress import Progress

    if batches is not None and batches < 1:
        raise UsageError(f"batches must be a positive integer (got {batches!r}).")
    if seconds is not None and seconds <= 0:
        raise UsageError(f"seconds must be positive (got {seconds!r}).")
    if warmup < 0:
        raise UsageError(f"warmup must be >= 0 (got {warmup!r}).")
    if batches is None and seconds is None:
        seconds = _DEFAULT_SECONDS
    started = time.perf_counter()
    if isinstance(pack, Loader):
        loader, own = pack, False
        description = describe_pipeline(loader.pipeline.ops)
    else:
        indices = None
        if hasattr(pack, "indices") and hasattr(pack, "pack"):  # a Subset: a query, a split
            pack, indices = pack.pack, pack.indices
        pack = _open(pack)
        steps = resolve_pipeline(pipeline, pack)
        description = describe_pipeline(steps)
        loader = Loader(
            pack,
            batch_size,
            pipeline=steps,
            workers=workers,
            device=device,
            seed=seed,
            read_ahead=read_ahead,
            block_shuffle=block_shuffle,
            indices=indices,
            output=default_output(device),
        )
        own = True
    opts = loader.options
    device = opts.device
    nbytes = np.asarray(loader.pack.index["nbytes"])
    mean_bytes = float(nbytes.mean()) if len(nbytes) else 0.0
    arrivals: list[float] = []
    sizes: list[int] = []
    bar: Any = None
    try:
        first_iter = started if own else time.perf_counter()
        deadline = None
        while True:
            for _images, labels in loader:
                _sync(device)
                now = time.perf_counter()
                arrivals.append(now)
                sizes.append(int(labels.shape[0]))
                measured = len(arrivals) - warmup
                if len(arrivals) == max(warmup, 1):  # the warm-up is over
                    if seconds is not None:
                        deadline = (now if warmup else first_iter) + seconds
                    if progress is not False:
                        bar = _progress_bar(
                            Progress, arrivals, sizes, first_iter, batches, seconds, progress
                        )
                        if warmup == 0:
                            bar.update(sizes[-1])
                elif measured > 0 and bar is not None:
                    bar.update(sizes[-1])
                if measured >= 0 and (
                    (batches is not None and measured >= batches)
                    or (deadline is not None and now >= deadline)
                ):
                    break
            else:
                if len(arrivals) == 0:  # pragma: no cover - Loader refuses empty packs
                    raise UsageError("bench: the loader yielded no batches.")
                continue  # next epoch
            break
    finally:
        if bar is not None:
            bar.close()
        if own:
            loader.close()
    end = arrivals[-1]
    first = arrivals[0] - first_iter
    if len(arrivals) <= warmup:  # too few batches to leave the warm-up out
        t0_eff, kept_sizes, gaps = first_iter, sizes, np.diff([first_iter, *arrivals])
    else:
        t0_eff = arrivals[warmup - 1] if warmup > 0 else first_iter
        kept_sizes = sizes[warmup:]
        gaps = np.diff([t0_eff, *arrivals[warmup:]])
    span = max(end - t0_eff, 1e-9)
    images = int(sum(kept_sizes))
    rate = images / span
    return BenchResult(
        pack=str(getattr(loader.pack, "path", "?")),
        pipeline=description,
        batch_size=opts.batch_size,
        workers=opts.workers,
        device=device,
        batches=len(kept_sizes),
        images=images,
        warmup_batches=min(warmup, len(arrivals)),
        seconds=span,
        total_seconds=end - first_iter,
        images_per_second=rate,
        batches_per_second=len(kept_sizes) / span,
        mb_per_second=rate * mean_bytes / 1e6,
        latency_p50=float(np.percentile(gaps, 50)),
        latency_p99=float(np.percentile(gaps, 99)),
        time_to_first_batch=first,
    )


def _progress_bar(
    progress_cls: Any,
    arrivals: list[float],
    sizes: list[int],
    first_iter: float,
    batches: int | None,
    seconds: float | None,
    enabled: bool | None,
) -> Any:
    """A bar counting images, with a total estimated from the warm-up rate so a
    time-bounded run still shows an ETA."""
    total = None
    if batches is not None:
        total = batches * max(sizes)
    if seconds is not None:
        elapsed = max(arrivals[-1] - first_iter, 1e-3)
        guess = int(sum(sizes) / elapsed * seconds)
        total = guess if total is None else min(total, guess)
    return progress_cls(total, "bench", enabled)
