"""pixpack.jax: the NumPy Loader's batches as jax.Arrays, on devices, never aliased."""

from __future__ import annotations

import gc
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

jax = pytest.importorskip("jax")

import pixpack  # noqa: E402
import pixpack.jax as pj  # noqa: E402
from pixpack import ops  # noqa: E402
from pixpack.errors import UsageError  # noqa: E402

PIPELINE = [
    ops.RandomResizedCrop(32),
    ops.RandomHorizontalFlip(),
    ops.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
]
SCRIPT = Path(__file__).with_name("jax_devices.py")
SRC = Path(pixpack.__file__).parents[1]


def numpy_loader(pack, batch_size=8, **kwargs):
    kwargs = {"pipeline": PIPELINE, "seed": 5, "workers": 2, "layout": "NHWC", **kwargs}
    return pixpack.Loader(pack, batch_size, output="numpy", **kwargs)


def epochs(loader, count):
    return [[(np.asarray(x), np.asarray(y)) for x, y in loader] for _ in range(count)]


def assert_same(got, expected):
    assert len(got) == len(expected)
    for (x, y), (ex, ey) in zip(got, expected, strict=True):
        np.testing.assert_array_equal(x, ex)
        np.testing.assert_array_equal(y, ey)


def test_import_does_not_import_jax():
    code = "import sys, pixpack.jax; print('jax' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.stdout.split() == ["False"], out.stderr


@pytest.mark.parametrize("offset", [0, 16])  # 64-byte aligned (JAX may alias it), or not
def test_jax_keeps_what_it_reads_referenced(offset):
    """What the loader's buffer reuse relies on, for this JAX: device_put copies, or
    aliases aligned memory and then references the NumPy array while the jax.Array
    lives; the reference goes once the array is gone (JAX 0.10: at a gc pass)."""
    raw = np.zeros(4096 + 128, np.uint8)
    start = (-raw.ctypes.data) % 64 + offset
    host = raw[start : start + 4096].view(np.float32)
    before = sys.getrefcount(raw)
    x = jax.device_put(host).block_until_ready()
    host[:] = 7
    if np.asarray(x).any():  # aliased: the NumPy memory is the jax.Array's
        assert sys.getrefcount(raw) > before
    del x
    gc.collect()
    assert sys.getrefcount(raw) == before


def test_batches_equal_numpy_and_torch_loaders(jpeg_photo_pack):
    torch = pytest.importorskip("torch")
    with pj.loader(jpeg_photo_pack, 8, pipeline=PIPELINE, seed=5, workers=2) as loader:
        x, y = next(iter(loader))
        assert isinstance(x, jax.Array) and x.shape == (8, 32, 32, 3) and x.dtype == np.float32
        assert y.dtype == np.int32  # JAX's default integer type
        loader.set_epoch(0)
        got = epochs(loader, 2)
    expected = epochs(numpy_loader(jpeg_photo_pack), 2)
    assert_same(got[0] + got[1], expected[0] + expected[1])
    torch_loader = pixpack.Loader(jpeg_photo_pack, 8, pipeline=PIPELINE, seed=5, workers=2)
    as_nhwc = [
        (x.permute(0, 2, 3, 1).numpy(), y.numpy()) for _ in range(2) for x, y in torch_loader
    ]
    assert torch.is_tensor(next(iter(torch_loader))[0])
    assert_same(got[0] + got[1], as_nhwc)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16", "uint8", "int32"])
def test_dtypes(jpeg_photo_pack, dtype):
    loader = pj.loader(jpeg_photo_pack, 8, pipeline=PIPELINE[:2], dtype=dtype, workers=1)
    x, y = next(iter(loader))
    assert x.dtype == jax.numpy.dtype(dtype) and y.dtype == np.int32
    ex, _ = next(iter(numpy_loader(jpeg_photo_pack, pipeline=PIPELINE[:2], dtype=dtype, seed=0)))
    np.testing.assert_array_equal(np.asarray(x), ex)


def test_kept_batches_never_change(jpeg_photo_pack):
    """Every batch of epoch 0 kept while the loader runs two more epochs (reusing its
    buffers) still equals a fresh computation; also through jax.dlpack, the issue's route."""
    torch = pytest.importorskip("torch")
    loader = pj.loader(jpeg_photo_pack, 8, pipeline=PIPELINE, seed=5, workers=2, prefetch=1)
    kept = list(loader)
    torch_loader = pixpack.Loader(jpeg_photo_pack, 8, pipeline=PIPELINE, seed=5, workers=2)
    via_dlpack = [(jax.dlpack.from_dlpack(x), jax.dlpack.from_dlpack(y)) for x, y in torch_loader]
    for _ in range(2):
        for (x, _y), (tx, _ty) in zip(loader, torch_loader, strict=True):
            x.block_until_ready()
            del tx
    fresh = epochs(numpy_loader(jpeg_photo_pack), 1)[0]
    assert_same([(np.asarray(x), np.asarray(y)) for x, y in kept], fresh)
    nchw = [(np.asarray(x).transpose(0, 2, 3, 1), np.asarray(y)) for x, y in via_dlpack]
    assert_same(nchw, fresh)
    assert via_dlpack[0][0].dtype == np.float32 and torch.is_tensor(next(iter(torch_loader))[0])


def test_resume_yields_exactly_the_rest(jpeg_photo_pack):
    loader = pj.loader(jpeg_photo_pack, 4, pipeline=PIPELINE, seed=5, workers=2)
    loader.set_epoch(1)
    whole = [(np.asarray(x), np.asarray(y)) for x, y in loader]
    loader.set_epoch(1)
    it = iter(loader)
    next(it), next(it)
    state = loader.state_dict()
    assert (state["epoch"], state["position"]) == (1, 8)
    resumed = pj.loader(jpeg_photo_pack, 4, pipeline=PIPELINE, seed=5, workers=1)
    resumed.load_state_dict(state)
    assert resumed.epoch == 1
    rest = [(np.asarray(x), np.asarray(y)) for x, y in resumed]
    assert_same(rest, whole[2:])
    assert resumed.epoch == 2 and len(resumed) == len(whole) == 6


def test_wraps_a_numpy_loader_and_refuses_others(jpeg_photo_pack):
    base = numpy_loader(jpeg_photo_pack)
    loader = pj.loader(base)
    assert loader.loader is base and loader.batch_size == 8 and "JaxLoader" in repr(loader)
    assert_same(epochs(loader, 1)[0], epochs(numpy_loader(jpeg_photo_pack), 1)[0])
    with pytest.raises(UsageError, match="output='numpy'"):
        pj.loader(pixpack.Loader(jpeg_photo_pack, 8, pipeline=PIPELINE))
    with pytest.raises(UsageError, match="used as it is"):
        pj.loader(base, 8)
    with pytest.raises(UsageError, match="decides 'output'"):
        pj.loader(jpeg_photo_pack, 8, pipeline=PIPELINE, output="torch")
    loader.close()


def test_single_device_sharding_takes_any_batch(jpeg_photo_pack):
    """A sharding that does not split the batch holds ragged and skipped batches alike."""
    one = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    loader = pj.loader(jpeg_photo_pack, 10, sharding=one, pipeline=PIPELINE, on_error="skip")
    sizes = [x.shape[0] for x, _ in loader]
    assert sizes == [10, 10, 4]


def run_script(*args, devices):
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
        "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
        "JAX_PLATFORMS": "cpu",
    }
    cmd = [sys.executable, str(SCRIPT), *map(str, args)]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def finish(proc, timeout=150):
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    assert proc.returncode == 0, out.decode(errors="replace")[-3000:]


def load(path):
    saved = np.load(path)
    return json.loads(str(saved["checks"])), saved


def test_sharded_over_four_devices(jpeg_photo_pack, tmp_path):
    """A jitted jax.grad step on batches split over 4 CPU devices (in a subprocess: the
    device count is fixed when JAX initialises); each device holds its quarter."""
    finish(run_script("sharded", jpeg_photo_pack, tmp_path / "out.npz", devices=4))
    checks, saved = load(tmp_path / "out.npz")
    assert checks["devices"] == 4 and checks["w_sharding"] == "P()"
    assert len(checks["losses"]) == 3 and all(np.isfinite(checks["losses"]))
    expected = epochs(numpy_loader(jpeg_photo_pack), 1)[0]
    assert_same([(saved[f"x{k}"], saved[f"y{k}"]) for k in range(3)], expected)
    refused = checks["refused"]
    assert set(refused) == {"batch_6", "skip", "ragged"}
    assert "partitioned 4 times" in refused["batch_6"]
    assert "on_error='raise'" in refused["skip"]
    assert "drop_last=True" in refused["ragged"]
    assert checks["dropped_len"] == 2 and checks["dropped_shapes"] == [[8, 32, 32, 3]] * 2


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_load_disjoint_halves_of_one_global_batch(jpeg_photo_pack, tmp_path):
    """jax.distributed on CPU, 2 processes x 2 devices: each process loads 4 of the
    global 8 rows; together they are the 1-process batch, and resume state is global."""
    port = free_port()
    procs = [
        run_script("multihost", jpeg_photo_pack, tmp_path / f"p{i}.npz", i, port, devices=2)
        for i in range(2)
    ]
    for proc in procs:
        finish(proc)
    (c0, p0), (c1, p1) = load(tmp_path / "p0.npz"), load(tmp_path / "p1.npz")
    assert (c0["process"], c1["process"], c0["len"], c0["batch_size"]) == (0, 1, 3, 8)
    single = epochs(numpy_loader(jpeg_photo_pack), 1)[0]  # rows 0..7 of each step
    for k, (x, y) in enumerate(single):
        # Rank r of 2 reads global positions r, r + 2, ...: the even and odd rows.
        np.testing.assert_array_equal(p0[f"x{k}"], x[0::2])
        np.testing.assert_array_equal(p1[f"x{k}"], x[1::2])
        np.testing.assert_array_equal(
            np.concatenate([p0[f"y{k}"], p1[f"y{k}"]]), np.r_[y[0::2], y[1::2]]
        )
        np.testing.assert_array_equal(p0[f"gx{k}"], np.concatenate([x[0::2], x[1::2]]))
        np.testing.assert_array_equal(p0[f"gx{k}"], p1[f"gx{k}"])
    rows0, rows1 = {r.tobytes() for r in p0["x0"]}, {r.tobytes() for r in p1["x0"]}
    assert len(rows0) == len(rows1) == 4 and not rows0 & rows1  # disjoint samples
    assert c0["state"]["position"] == c1["state"]["position"] == 8
    assert c0["w_finite"] and c1["w_finite"]
    for checks in (c0, c1):
        assert "disagree on the loader's seed" in checks["seed_per_process"]
