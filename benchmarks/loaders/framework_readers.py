"""pixpack's rows of ``benchmarks/frameworks.py``: one output per subprocess.

Every row reads the same pack (``mode="jpeg"``, ``max_side=256``, quality 90, made
once by the driver) with ``pipeline=[RandomResizedCrop(224), RandomHorizontalFlip(),
Normalize(ImageNet mean, std)]``, batch 64, ``workers`` = usable cores, seed 0:

- ``torch``: ``pixpack.Loader`` as torch tensors, float32 NCHW (the reference rate);
- ``numpy``: ``pixpack.Loader(..., output="numpy", layout="NHWC")``;
- ``tf``: ``pixpack.tf.dataset(pack, 64, pipeline=..., layout="NHWC")``, iterated eagerly;
- ``jax``: ``pixpack.jax.loader(pack, 64, pipeline=..., sharding=None)``, each batch
  waited for with ``block_until_ready()``.

Each reports the import time of its framework apart from ``time_loader``'s set-up,
first batch and steady windows, and checks that a batch it kept is not overwritten by
the batches after it (the Loader reuses its buffers unless told otherwise).
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import numpy as np

from .common import BATCH, CROP, MEAN, STD, Unavailable, time_loader
from .framework_peers import _finish, _timed_imports

__all__ = ["pixpack_row"]

IMPORTS = {
    "torch": ["torch", "pixpack.loader"],
    "numpy": ["pixpack.loader"],
    "tf": ["tensorflow", "pixpack.loader"],
    "jax": ["jax", "pixpack.loader"],
}


def _pipeline() -> list[Any]:
    from pixpack.ops import Normalize, RandomHorizontalFlip, RandomResizedCrop

    return [RandomResizedCrop(CROP), RandomHorizontalFlip(), Normalize(MEAN, STD)]


def _to_numpy(images: Any) -> np.ndarray:
    if hasattr(images, "detach"):
        return images.detach().cpu().numpy()
    return np.asarray(images)


def _make(output: str, pack: str, workers: int) -> Any:
    """The row's loader (an iterable giving one epoch of ``(images, labels)`` per iter)."""
    import pixpack

    kw = {"pipeline": _pipeline(), "workers": workers, "seed": 0}
    if output == "torch":
        return pixpack.Loader(pack, BATCH, **kw)
    if output == "numpy":
        try:
            return pixpack.Loader(pack, BATCH, output="numpy", layout="NHWC", dtype="float32", **kw)
        except TypeError as exc:
            raise Unavailable(f"pixpack.Loader(output='numpy') not available yet ({exc})") from exc
    if output == "tf":
        try:
            import pixpack.tf as ptf
        except ImportError as exc:
            raise Unavailable(f"pixpack.tf not available yet ({exc})") from exc
        return ptf.dataset(pack, batch_size=BATCH, layout="NHWC", **kw)
    if output == "jax":
        try:
            import pixpack.jax as pjax
        except ImportError as exc:
            raise Unavailable(f"pixpack.jax not available yet ({exc})") from exc
        return pjax.loader(pack, batch_size=BATCH, sharding=None, **kw)
    raise ValueError(f"unknown output {output!r}")


def _kept_batch_check(loader: Any, output: str) -> dict[str, Any]:
    """Keep the first batch of an epoch, read three more, compare: a yielded batch that
    a later one overwrote would make every downstream framework train on wrong data."""
    it = iter(loader)
    first = next(it)
    kept = first[0]
    snapshot = _to_numpy(kept).copy()
    for _ in range(3):
        next(it)
    same = bool(np.array_equal(_to_numpy(kept), snapshot))
    close = getattr(it, "close", None)
    if close is not None:
        close()
    return {
        "kept_batch_intact": same,
        "batch_type": type(kept).__module__ + "." + type(kept).__name__,
    }


def pixpack_row(cfg: dict[str, Any]) -> dict[str, Any]:
    """``cfg``: output (torch | numpy | tf | jax), pack, passes."""
    t_entry = time.time()
    output = cfg["output"]
    import_s = _timed_imports(IMPORTS[output])
    workers = len(os.sched_getaffinity(0))
    block = None
    if output == "jax":

        def block(batch: Any) -> Any:
            batch[0].block_until_ready()
            return batch

    def epoch(loader: Any, _epoch: int) -> Any:
        for batch in loader:
            yield block(batch) if block is not None else batch

    res = time_loader(lambda: _make(output, cfg["pack"], workers), passes=cfg["passes"],
                      epoch_iter=epoch)  # fmt: skip
    if output != "torch":
        res.update(_kept_batch_check(_make(output, cfg["pack"], workers), output))
    res["workers"] = workers
    res["torch_imported"] = "torch" in sys.modules  # the NumPy/TF/JAX paths should not
    return _finish(res, import_s, t_entry)
