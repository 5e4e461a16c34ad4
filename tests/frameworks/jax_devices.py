"""Runs pixpack.jax on several CPU devices, in a process of its own.

XLA_FLAGS=--xla_force_host_platform_device_count=N only works before JAX initialises,
which the pytest process may already have done; test_jax.py runs this script instead:

    python jax_devices.py sharded PACK OUT              # one process, 4 devices
    python jax_devices.py multihost PACK OUT PID PORT   # process PID of 2, 2 devices each

It saves what it saw to OUT (an .npz) for the test to compare with the NumPy Loader.
"""

from __future__ import annotations

import json
import sys

# As on a machine without torch: pixpack.jax must not need it (and the Loader's probe for
# a torch.distributed group would cost every process seconds importing it).
sys.modules["torch"] = None  # type: ignore[assignment]

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import Mesh, NamedSharding  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402

import pixpack.jax as pj  # noqa: E402
from pixpack import ops  # noqa: E402
from pixpack.errors import UsageError  # noqa: E402

PIPELINE = [
    ops.RandomResizedCrop(32),
    ops.RandomHorizontalFlip(),
    ops.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
]


def batch_sharding() -> NamedSharding:
    return NamedSharding(Mesh(np.array(jax.devices()), ("data",)), P("data"))


def train_step(w, x, y):
    """One SGD step of a linear classifier (jax.grad, jit, data-parallel over the mesh)."""

    def loss(w):
        logits = x.reshape(x.shape[0], -1) @ w
        return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(x.shape[0]), y])

    value, grad = jax.value_and_grad(loss)(w)
    return w - 0.01 * grad, value


def local_rows(array: jax.Array) -> np.ndarray:
    """This process's rows of a batch-sharded array, in global order."""
    shards = sorted(array.addressable_shards, key=lambda s: s.index[0].start)
    rows = {s.index[0].start: np.asarray(s.data) for s in shards}  # replicas repeat rows
    return np.concatenate(list(rows.values()))


def sharded(pack: str, out: str) -> None:
    sharding = batch_sharding()
    saved: dict[str, np.ndarray] = {}
    checks: dict[str, object] = {"devices": len(jax.devices())}
    loader = pj.loader(pack, 8, sharding=sharding, pipeline=PIPELINE, seed=5, workers=2)
    w = jax.device_put(jnp.zeros((32 * 32 * 3, 3)), NamedSharding(sharding.mesh, P()))
    step = jax.jit(train_step)
    losses = []
    for k, (x, y) in enumerate(loader):
        assert x.sharding == sharding and y.sharding.spec == P("data")
        host = np.asarray(x)
        held = {}
        for shard in x.addressable_shards:  # each device holds its own quarter
            np.testing.assert_array_equal(np.asarray(shard.data), host[shard.index])
            held[shard.device.id] = (shard.index[0].start, shard.data.shape[0])
        assert sorted(held.values()) == [(0, 2), (2, 2), (4, 2), (6, 2)], held
        w, value = step(w, x, y)
        losses.append(float(value))
        saved[f"x{k}"], saved[f"y{k}"] = host, np.asarray(y)
    checks["losses"] = losses
    checks["w_sharding"] = str(w.sharding.spec)
    refused = {}
    for name, kwargs in {
        "batch_6": {"batch_size": 6},
        "skip": {"batch_size": 8, "on_error": "skip"},
        "ragged": {"batch_size": 8, "indices": np.arange(22)},
    }.items():
        try:
            pj.loader(pack, sharding=sharding, pipeline=PIPELINE, **kwargs)
        except UsageError as exc:
            refused[name] = str(exc)
    checks["refused"] = refused
    dropped = pj.loader(
        pack, 8, sharding=sharding, pipeline=PIPELINE, indices=np.arange(22), drop_last=True
    )
    checks["dropped_len"] = len(dropped)
    checks["dropped_shapes"] = [list(x.shape) for x, _ in dropped]
    np.savez(out, checks=json.dumps(checks), **saved)


def multihost(pack: str, out: str, pid: int, port: int) -> None:
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(f"127.0.0.1:{port}", num_processes=2, process_id=pid)
    from jax.experimental import multihost_utils

    sharding = batch_sharding()
    loader = pj.loader(pack, 8, sharding=sharding, pipeline=PIPELINE, seed=5, workers=1)
    checks = {"process": jax.process_index(), "len": len(loader), "batch_size": loader.batch_size}
    saved: dict[str, np.ndarray] = {}
    w = jax.device_put(jnp.zeros((32 * 32 * 3, 3)), NamedSharding(sharding.mesh, P()))
    step = jax.jit(train_step)
    for k, (x, y) in enumerate(loader):
        assert x.shape == (8, 32, 32, 3) and not x.is_fully_addressable
        w, _ = step(w, x, y)  # a global step: both processes' rows
        saved[f"x{k}"], saved[f"y{k}"] = local_rows(x), local_rows(y)
        saved[f"gx{k}"] = multihost_utils.process_allgather(x, tiled=True)
        if k == 0:
            checks["state"] = loader.state_dict()
    checks["w_finite"] = bool(np.isfinite(np.asarray(w.addressable_data(0))).all())
    try:  # the seed + rank idiom: refused in every process
        pj.loader(pack, 8, sharding=sharding, pipeline=PIPELINE, seed=5 + pid)
    except UsageError as exc:
        checks["seed_per_process"] = str(exc)
    np.savez(out, checks=json.dumps(checks), **saved)
    jax.distributed.shutdown()


if __name__ == "__main__":
    mode, pack_path, out_path = sys.argv[1:4]
    if mode == "sharded":
        sharded(pack_path, out_path)
    else:
        multihost(pack_path, out_path, int(sys.argv[4]), int(sys.argv[5]))
