"""What handing one NumPy batch to TensorFlow or JAX costs, and whether it holds the GIL.

A companion of ``frameworks.py``: one float32 batch of 64 x 224 x 224 x 3 (38.5 MB, the
benchmark's), handed over the ways ``pixpack.tf`` / ``pixpack.jax`` (and Grain users)
do, 20 times each, while a Python thread counts in a loop. The counter's rate against
an idle main thread (``sleep``) shows how much of the hand-over holds the GIL, which
the Loader's worker threads need between their native calls. JAX copies arrays that
are not 64-byte aligned and aliases those that are; NumPy's allocator aligns to 16.

    flock /tmp/pixpack-bench.lock python benchmarks/framework_handoff.py
    flock /tmp/pixpack-bench.lock python benchmarks/framework_handoff.py --loader --rounds 2

``--loader``: the same hand-over inside a loop over ``frameworks.py``'s pack (run that
first): the NumPy Loader alone, ``pixpack.tf.dataset`` and ``pixpack.jax.loader``, and
each framework fed the Loader's batches copied into one of four 64-byte aligned buffers
(a ``np.copyto``, then no copy by the framework; an experiment, not an API: the ring of
four is only safe because the loop drops every batch). Interleaved rounds, one process.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

SHAPE = (64, 224, 224, 3)


def aligned(shape: tuple[int, ...], align: int = 64) -> np.ndarray:
    """A float32 array of ``shape`` whose data starts on an ``align``-byte boundary."""
    n = int(np.prod(shape)) * 4
    raw = np.empty(n + align, np.uint8)
    off = (-raw.ctypes.data) % align
    return raw[off : off + n].view(np.float32).reshape(shape)


def measure(fn: Callable[[], Any], repeat: int = 20) -> dict[str, float]:
    """ms per call (wall and this process's CPU, alone), then a spinning thread's
    M loops/s while the calls run again (for at least 0.5 s)."""
    fn()
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(repeat):
        fn()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    state = {"stop": False, "n": 0}

    def spin() -> None:
        while not state["stop"]:
            state["n"] += 1

    thread = threading.Thread(target=spin)
    thread.start()
    t1, calls = time.perf_counter(), 0
    while calls < repeat or time.perf_counter() - t1 < 0.5:  # long enough to count
        fn()
        calls += 1
    spun = time.perf_counter() - t1
    state["stop"] = True
    thread.join()
    return {
        "ms": wall / repeat * 1e3,
        "cpu_ms": cpu / repeat * 1e3,
        "spinner_m_per_s": state["n"] / spun / 1e6,
    }


def _ring(n: int = 4) -> list[np.ndarray]:
    return [aligned(SHAPE) for _ in range(n)]


def _aligned_batches(loader: Any) -> Any:
    """The Loader's batches copied into a ring of 64-byte aligned buffers."""
    ring, k = _ring(), 0
    for x, y in loader:
        buf = ring[k % len(ring)][: len(x)]
        k += 1
        np.copyto(buf, x)
        del x
        yield buf, y


def loader_rows(rounds: int) -> None:
    """img/s, cores and CPU µs per image of each way into TF / JAX (see module doc)."""
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:0] = [here, os.path.join(os.path.dirname(here), "src")]
    import jax
    import tensorflow as tf
    from loaders.common import BATCH, CROP, MEAN, STD, time_loader

    import pixpack
    import pixpack.jax as pjax
    import pixpack.tf as ptf
    from pixpack.ops import Normalize, RandomHorizontalFlip, RandomResizedCrop

    pack = os.path.join(here, "data", "frameworks", "photos-2000-jpeg256.pixpack")
    kw = {"workers": len(os.sched_getaffinity(0)), "seed": 0, "pipeline": [
        RandomResizedCrop(CROP), RandomHorizontalFlip(), Normalize(MEAN, STD)]}  # fmt: skip

    def numpy_loader() -> Any:
        return pixpack.Loader(pack, BATCH, output="numpy", layout="NHWC", **kw)

    def tf_aligned() -> Any:
        loader = numpy_loader()
        sig = (tf.TensorSpec((None, CROP, CROP, 3)), tf.TensorSpec((None,), tf.int64))
        ds = tf.data.Dataset.from_generator(lambda: _aligned_batches(loader), output_signature=sig)
        options = tf.data.Options()
        options.experimental_optimization.inject_prefetch = False  # as pixpack.tf does
        return ds.with_options(options)

    def placed(batches: Any) -> Any:
        for x, y in batches:
            x = jax.device_put(x) if isinstance(x, np.ndarray) else x
            x.block_until_ready()
            yield x, y

    rows = {
        "Loader(output='numpy')": (numpy_loader, None),
        "pixpack.tf.dataset": (lambda: ptf.dataset(pack, BATCH, layout="NHWC", **kw), None),
        "aligned copy + from_generator": (tf_aligned, None),
        "pixpack.jax.loader": (lambda: pjax.loader(pack, BATCH, **kw), placed),
        "aligned copy + device_put": (numpy_loader, lambda it: placed(_aligned_batches(it))),
    }
    print(
        f"{'row':32s} {'round':>5s} {'img/s':>7s} {'cores':>6s} {'other':>6s} {'CPU us/img':>11s}"
    )
    for r in range(rounds):
        for name, (make, wrap) in rows.items():
            epoch = (lambda it, _e, w=wrap: w(it)) if wrap else (lambda it, _e: it)
            res = time_loader(make, passes=3, epoch_iter=epoch)
            print(f"{name:32s} {r + 1:5d} {res['rate_median']:7.0f} "
                  f"{float(np.median(res['cores'])):6.2f} "
                  f"{float(np.median(res['other_cores'])):6.2f} "
                  f"{float(np.median(res['cpu_us_per_image'])):11.0f}", flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loader", action="store_true", help="the loop experiment")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if args.loader:
        loader_rows(args.rounds)
    else:
        handoff()


def handoff() -> None:
    import jax
    import tensorflow as tf

    x = np.random.default_rng(0).random(SHAPE, np.float32)
    xa = aligned(SHAPE)
    xa[...] = x
    dst = np.empty_like(x)

    def gen(batch: np.ndarray) -> Any:
        def batches() -> Any:
            while True:
                yield batch

        return batches

    spec = tf.TensorSpec(SHAPE)
    it = iter(tf.data.Dataset.from_generator(gen(x), output_signature=spec))
    it_a = iter(tf.data.Dataset.from_generator(gen(xa), output_signature=spec))
    cases = {
        "idle (sleep 20 ms)": lambda: time.sleep(0.02),
        "np.copyto into an existing array": lambda: np.copyto(dst, x),
        "ndarray.copy() (fresh memory)": lambda: x.copy(),
        "tf.constant, 16-byte aligned": lambda: tf.constant(x),
        "tf.constant, 64-byte aligned": lambda: tf.constant(xa),
        "next() of Dataset.from_generator, 16-byte aligned": lambda: next(it),
        "next() of Dataset.from_generator, 64-byte aligned": lambda: next(it_a),
        "jax.device_put, 16-byte aligned (copied)": lambda: jax.device_put(x).block_until_ready(),
        "jax.device_put, 64-byte aligned (aliased)": lambda: jax.device_put(xa).block_until_ready(),
    }
    print(f"batch {SHAPE} float32, {x.nbytes / 1e6:.1f} MB; data at {x.ctypes.data % 64} mod 64")
    print(f"{'hand-over':52s} {'ms':>7s} {'CPU ms':>7s} {'spinner M/s':>12s}")
    for name, fn in cases.items():
        r = measure(fn)
        print(f"{name:52s} {r['ms']:7.2f} {r['cpu_ms']:7.2f} {r['spinner_m_per_s']:12.2f}")


if __name__ == "__main__":
    main()
