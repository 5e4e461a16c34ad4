"""pixpack.tf: a Loader as a tf.data.Dataset (batches, Keras, tf.distribute, resume)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

import pixpack
import pixpack.tf
from pixpack import ops
from pixpack.errors import MissingDependencyError, UsageError

PIPELINE = [
    ops.RandomResizedCrop(32),
    ops.RandomHorizontalFlip(),
    ops.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
]


def numpy_epochs(pack, epochs: int, **kwargs) -> list[list[tuple[np.ndarray, np.ndarray]]]:
    loader = pixpack.Loader(pack, output="numpy", reuse_buffers=False, **kwargs)
    return [[(x, y) for x, y in loader] for _ in range(epochs)]


def tf_epoch(ds) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(x.numpy(), y.numpy()) for x, y in ds]


def assert_same(got, want) -> None:
    assert len(got) == len(want)
    for (gx, gy), (wx, wy) in zip(got, want, strict=True):
        np.testing.assert_array_equal(gy, wy)
        np.testing.assert_array_equal(gx, wx)


def test_batches_equal_the_numpy_and_torch_loaders(jpeg_photo_pack):
    pytest.importorskip("torch")
    kwargs = dict(batch_size=5, pipeline=PIPELINE, seed=7)
    ds = pixpack.tf.dataset(jpeg_photo_pack, **kwargs)
    want = numpy_epochs(jpeg_photo_pack, 2, layout="NHWC", **kwargs)
    torch_loader = pixpack.Loader(jpeg_photo_pack, **kwargs)  # NCHW torch tensors
    for epoch in range(2):
        got = tf_epoch(ds)
        assert_same(got, want[epoch])
        from_torch = [(x.permute(0, 2, 3, 1).numpy(), y.numpy()) for x, y in torch_loader]
        assert_same(got, from_torch)
        assert got[0][0].shape == (5, 32, 32, 3) and got[-1][0].shape[0] == 4
    assert pixpack.tf.loader_of(ds).epoch == 2
    assert not np.array_equal(want[0][0][1], want[1][0][1])  # epochs differ


def test_keras_fit_advances_the_loader_epochs(jpeg_photo_pack):
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(0)
    ds = pixpack.tf.dataset(jpeg_photo_pack, 8, pipeline=PIPELINE)
    loader = pixpack.tf.loader_of(ds)
    model = keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            keras.layers.Conv2D(4, 3, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(3),
        ]
    )
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(ds, epochs=2, verbose=0, shuffle=False)
    assert np.isfinite(history.history["loss"]).all() and len(history.history["loss"]) == 2
    assert loader.epoch == 2
    # A restart at epoch 5: the callback makes Keras epoch 5 read the loader's epoch 5.
    history = model.fit(
        ds,
        initial_epoch=5,
        epochs=6,
        verbose=0,
        shuffle=False,
        callbacks=[pixpack.tf.epoch_callback(ds)],
    )
    assert loader.epoch == 6 and np.isfinite(history.history["loss"]).all()


def test_keras_resume_mid_epoch_keeps_later_epochs_whole(jpeg_photo_pack):
    """Keras learns an unknown epoch length from its first epoch: after a resume 4 of
    6 batches in, one fit over several epochs would read 3 batches of every later
    epoch. The callback refuses that fit; a fit for the rest of the resumed epoch and
    one for the next epochs read every batch."""
    keras = pytest.importorskip("keras")
    kwargs = dict(pipeline=PIPELINE, seed=1, layout="NHWC")
    saver = pixpack.Loader(jpeg_photo_pack, 4, output="numpy", **kwargs)
    it = iter(saver)
    for _ in range(4):
        next(it)
    state = saver.state_dict()
    loader = pixpack.Loader(jpeg_photo_pack, 4, output="numpy", **kwargs)
    loader.load_state_dict(state)
    ds = pixpack.tf.dataset(loader)
    model = keras.Sequential(
        [keras.Input((32, 32, 3)), keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3)]
    )
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    seen: dict[int, int] = {}

    class Count(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            seen[self.epoch] = seen.get(self.epoch, 0) + 1

    args = dict(verbose=0, shuffle=False)
    callback = pixpack.tf.epoch_callback(ds)
    with pytest.raises(UsageError, match="initial_epoch=0, epochs=1"):
        model.fit(ds, initial_epoch=0, epochs=3, callbacks=[callback, Count()], **args)
    assert not seen
    model.fit(ds, initial_epoch=0, epochs=1, callbacks=[callback, Count()], **args)
    model.fit(ds, initial_epoch=1, epochs=3, callbacks=[callback, Count()], **args)
    assert seen == {0: 2, 1: 6, 2: 6} and loader.epoch == 3


MIRRORED = """
import json, sys
import numpy as np
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]  # before anything initialises devices
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
import pixpack.tf
from pixpack import ops

strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
contexts, loaders = [], []

def make(ctx):
    contexts.append([ctx.input_pipeline_id, ctx.num_input_pipelines, ctx.num_replicas_in_sync])
    ds = pixpack.tf.dataset(
        sys.argv[1], ctx.get_per_replica_batch_size(8), input_context=ctx, drop_last=True,
        pipeline=[ops.CenterCrop(32), ops.Normalize((0.5,) * 3, (0.25,) * 3)],
    )
    loaders.append(pixpack.tf.loader_of(ds))
    return ds

dist = strategy.distribute_datasets_from_function(make)
step = tf.function(lambda x, y: (tf.reduce_sum(x, axis=[1, 2, 3]), y))
replicas = [[], []]
for x, y in dist:
    sums, _ = strategy.run(step, args=(x, y))
    for r, s in enumerate(strategy.experimental_local_results(sums)):
        replicas[r] += np.round(s.numpy(), 3).tolist()
loader = loaders[0]
with strategy.scope():
    model = keras.Sequential([
        keras.Input((32, 32, 3)), keras.layers.Conv2D(4, 3),
        keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3)])
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
read = []
class Count(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        read.append([epoch, loader.state_dict()["epoch"]])
loader.set_epoch(0)
history = model.fit(dist, epochs=2, verbose=0,
                    callbacks=[pixpack.tf.epoch_callback(loader), Count()])
print(json.dumps({"contexts": contexts, "replicas": replicas, "read": read,
                  "loss": history.history["loss"], "epoch": loader.epoch}))
"""


def test_mirrored_strategy_two_replicas_read_different_samples(jpeg_photo_pack):
    src = str(Path(pixpack.__file__).resolve().parents[1])
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(MIRRORED), str(jpeg_photo_pack)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["contexts"] == [[0, 1, 2]]  # one input pipeline feeding two replicas
    r0, r1 = out["replicas"]
    assert len(r0) == len(r1) == 12  # 24 samples, 4 per replica per step
    assert not set(r0) & set(r1)  # each replica its own samples
    # Keras built the model from an extra iteration first; the callback still made fit's
    # epochs 0 and 1 read the loader's epochs 0 and 1 (the state after each: the next).
    assert out["read"] == [[0, 1], [1, 2]] and out["epoch"] == 2
    assert np.isfinite(out["loss"]).all()


def _wait_for(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    return condition()


def test_a_dropped_dataset_leaves_no_threads_or_buffers(jpeg_photo_pack, monkeypatch):
    """tf.data never frees a from_generator's callable (nor the Loader it holds): once
    idle after an epoch the Loader must hold no threads and no batch buffers, or every
    dataset a program builds and drops keeps ``prefetch + 2`` batches and its threads
    for good."""
    import threading

    monkeypatch.setattr(pixpack.tf, "REST_AFTER_S", 0.2)

    def loader_threads() -> int:
        return sum(t.name.startswith("pixpack-loader") for t in threading.enumerate())

    before = loader_threads()
    for _ in range(3):
        ds = pixpack.tf.dataset(jpeg_photo_pack, 4, pipeline=PIPELINE, workers=2)
        loader = pixpack.tf.loader_of(ds)
        assert sum(1 for _ in ds) == 6
        assert _wait_for(lambda ld=loader: ld._ring is None)
        for i, _ in enumerate(ds):  # an iteration left early
            if i == 1:
                break
        assert _wait_for(lambda ld=loader: ld._ring is None)
        del ds, loader
    deadline = time.monotonic() + 10
    while loader_threads() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert loader_threads() == before


def test_back_to_back_epochs_keep_the_loaders_buffers(jpeg_photo_pack, monkeypatch):
    """An epoch started within REST_AFTER_S of the last one reuses its batch buffers
    (no 4 x batch-size allocation and page faults per epoch); a running epoch is never
    given back under the loader."""
    monkeypatch.setattr(pixpack.tf, "REST_AFTER_S", 0.3)
    ds = pixpack.tf.dataset(jpeg_photo_pack, 4, pipeline=PIPELINE, workers=2)
    loader = pixpack.tf.loader_of(ds)
    assert sum(1 for _ in ds) == 6
    ring = loader._ring
    assert ring is not None
    for _ in ds:  # slower than the timer: the running epoch keeps its buffers
        time.sleep(0.1)
        assert loader._ring is ring
    assert _wait_for(lambda: loader._ring is None)


def test_an_old_timer_does_not_free_a_later_epochs_buffers(jpeg_photo_pack, monkeypatch):
    """Short epochs with short gaps: each gap is shorter than REST_AFTER_S, so the
    buffers stay, although the first epoch ended longer ago than that (one timer per
    Loader, cancelled when an epoch starts); and at most one timer thread waits."""
    import threading

    monkeypatch.setattr(pixpack.tf, "REST_AFTER_S", 0.4)
    ds = pixpack.tf.dataset(jpeg_photo_pack, 8, pipeline=PIPELINE, workers=2)
    loader = pixpack.tf.loader_of(ds)
    assert sum(1 for _ in ds) == 3
    ring = loader._ring
    started = time.monotonic()
    while time.monotonic() - started < 1.2:  # three timer periods of epochs and gaps
        time.sleep(0.1)
        assert loader._ring is ring, "a timer freed the buffers between two epochs"
        assert sum(1 for _ in ds) == 3
    timers = [t for t in threading.enumerate() if isinstance(t, threading.Timer)]
    assert len(timers) <= 1
    assert _wait_for(lambda: loader._ring is None)


def test_kept_batches_never_change(jpeg_photo_pack):
    ds = pixpack.tf.dataset(jpeg_photo_pack, 5, pipeline=PIPELINE, tf_prefetch=2)
    kept = list(ds)  # every tensor of epoch 0, referenced while the loader runs on
    for _ in range(2):
        for _ in ds:  # epochs 1 and 2 reuse the loader's buffers nobody holds
            pass
    want = numpy_epochs(jpeg_photo_pack, 1, batch_size=5, pipeline=PIPELINE, layout="NHWC")[0]
    assert_same([(x.numpy(), y.numpy()) for x, y in kept], want)


def test_resume_yields_exactly_the_rest_of_the_epoch(jpeg_photo_pack):
    kwargs = dict(batch_size=5, pipeline=PIPELINE, seed=3)
    want = numpy_epochs(jpeg_photo_pack, 2, layout="NHWC", **kwargs)[1]
    ds = pixpack.tf.dataset(jpeg_photo_pack, **kwargs)
    loader = pixpack.tf.loader_of(ds.map(lambda x, y: (x, y)))  # found through .map
    loader.set_epoch(1)
    it = iter(ds)
    for _ in range(2):
        next(it)
    state = loader.state_dict()  # tf_prefetch=0: exactly the batches the loop received
    assert (state["epoch"], state["batches_yielded"]) == (1, 2)
    resumed = pixpack.Loader(jpeg_photo_pack, output="numpy", layout="NHWC", **kwargs)
    resumed.load_state_dict(state)
    assert_same(tf_epoch(pixpack.tf.dataset(resumed)), want[2:])


def test_resume_with_another_batch_size_declares_a_dynamic_batch(jpeg_photo_pack):
    """A state saved at batch 5 resumed at batch 8 (24 samples: a static 8 otherwise)
    leaves a last batch of 3: the signature must not promise 8 (TF would fail there)."""
    kwargs = dict(pipeline=PIPELINE, seed=3, layout="NHWC")
    saver = pixpack.Loader(jpeg_photo_pack, 5, output="numpy", **kwargs)
    it = iter(saver)
    next(it)
    state = saver.state_dict()  # position 5
    resumed = pixpack.Loader(jpeg_photo_pack, 8, output="numpy", **kwargs)
    resumed.load_state_dict(state)
    ds = pixpack.tf.dataset(resumed)
    assert ds.element_spec[0].shape[0] is None
    assert [len(y) for _, y in ds] == [8, 8, 3]
    assert [len(y) for _, y in ds] == [8, 8, 8]  # the next epochs are whole again


def test_tf_prefetch_runs_the_loader_that_many_batches_ahead(jpeg_photo_pack):
    ds = pixpack.tf.dataset(jpeg_photo_pack, 2, pipeline=[ops.CenterCrop(32)], tf_prefetch=2)
    loader, it = pixpack.tf.loader_of(ds), iter(ds)
    next(it)
    deadline = time.monotonic() + 10
    while loader.state_dict()["batches_yielded"] < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)
    assert loader.state_dict()["batches_yielded"] == 3  # 1 received + 2 prefetched


@pytest.mark.parametrize(("tf_prefetch", "tuned"), [(0, False), (2, False), (-1, True)])
def test_autotune_is_off_unless_asked_for(jpeg_photo_pack, tf_prefetch, tuned):
    """tf.data's tuning thread held each epoch's end until its next wake; nothing in
    the dataset is tunable unless tf_prefetch=-1 (AUTOTUNE) asks for it."""
    ds = pixpack.tf.dataset(
        jpeg_photo_pack, 8, pipeline=[ops.CenterCrop(32)], tf_prefetch=tf_prefetch
    )
    assert ds.options().autotune.enabled is tuned
    derived = ds.map(lambda x, y: (x, y))
    assert derived.options().autotune.enabled is tuned  # options carry through
    assert pixpack.tf.loader_of(derived) is pixpack.tf.loader_of(ds)


@pytest.mark.parametrize(
    ("kwargs", "batch"),
    [
        (dict(batch_size=8), 8),  # 24 samples: every batch full
        (dict(batch_size=5), None),  # a last batch of 4
        (dict(batch_size=5, drop_last=True), 5),
        (dict(batch_size=8, on_error="skip"), None),  # a skipped sample shrinks a batch
        (dict(batch_size=5, world_size=2, rank=1, drop_last=True), 5),
    ],
)
def test_output_signature_batch_dimension(jpeg_photo_pack, kwargs, batch):
    ds = pixpack.tf.dataset(jpeg_photo_pack, pipeline=[ops.CenterCrop(32)], **kwargs)
    images, labels = ds.element_spec
    assert images == tf.TensorSpec((batch, 32, 32, 3), tf.uint8)
    assert labels.shape.as_list() == [batch] and labels.dtype == tf.int64
    assert all(x.shape[0] == y.shape[0] for x, y in ds)


@pytest.mark.parametrize(
    ("dtype", "layout", "tf_dtype", "shape"),
    [
        ("float16", "NHWC", tf.float16, (32, 24, 3)),
        ("bfloat16", "NHWC", tf.bfloat16, (32, 24, 3)),
        ("int32", "NHWC", tf.int32, (32, 24, 3)),
        ("float32", "NCHW", tf.float32, (3, 32, 24)),
    ],
)
def test_dtypes_and_layouts(jpeg_photo_pack, dtype, layout, tf_dtype, shape):
    ds = pixpack.tf.dataset(
        jpeg_photo_pack, 8, pipeline=[ops.CenterCrop((32, 24))], dtype=dtype, layout=layout
    )
    assert ds.element_spec[0] == tf.TensorSpec((8, *shape), tf_dtype)
    x, _ = next(iter(ds))
    assert x.dtype == tf_dtype and tuple(x.shape) == (8, *shape)


def test_uint16_pack(tmp_path):
    rng = np.random.default_rng(0)
    items = [(rng.integers(0, 65535, (12, 10, 3), dtype=np.uint16), i % 2) for i in range(6)]
    pixpack.pack(items, tmp_path / "u16.pixpack", quiet=True)
    ds = pixpack.tf.dataset(tmp_path / "u16.pixpack", 3, shuffle=False)
    assert ds.element_spec[0] == tf.TensorSpec((3, 12, 10, 3), tf.uint16)
    x, y = next(iter(ds))
    np.testing.assert_array_equal(x.numpy()[0], items[0][0])
    assert y.numpy().tolist() == [0, 1, 0]


def numpy_loader(pack, **kwargs):
    return pixpack.Loader(pack, pipeline=[ops.CenterCrop(32)], **{"output": "numpy", **kwargs})


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda p: pixpack.tf.dataset(numpy_loader(p), 8), "batch_size"),
        (lambda p: pixpack.tf.dataset(numpy_loader(p), seed=1), "seed"),
        (lambda p: pixpack.tf.dataset(numpy_loader(p, output="torch")), "output='numpy'"),
        (lambda p: pixpack.tf.dataset(p, layout="channels_last"), "layout"),
        (lambda p: pixpack.tf.dataset(p, output="numpy"), "output"),
        (lambda p: pixpack.tf.dataset(p, tf_prefetch=-2), "tf_prefetch"),
        (lambda p: pixpack.tf.dataset(42), "source"),
        (lambda p: pixpack.tf.loader_of(tf.data.Dataset.range(3)), "not made from"),
        (
            lambda p: pixpack.tf.dataset(p, input_context=tf.distribute.InputContext(), rank=0),
            "input_context",
        ),
        (
            lambda p: pixpack.tf.dataset(
                numpy_loader(p, rank=0, world_size=2),
                input_context=tf.distribute.InputContext(),
            ),
            "shard 0 of 2",
        ),
    ],
)
def test_usage_errors(jpeg_photo_pack, make, match):
    with pytest.raises(UsageError, match=match):
        make(jpeg_photo_pack)


def test_missing_tensorflow_is_one_line(jpeg_photo_pack, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # import tensorflow -> ImportError
    with pytest.raises(MissingDependencyError, match=r"pip install 'pixpack\[tf\]'") as info:
        pixpack.tf.dataset(jpeg_photo_pack)
    assert "\n" not in str(info.value)


def test_import_does_not_import_tensorflow():
    code = "import sys, pixpack.tf; print('tensorflow' in sys.modules)"
    src = str(Path(pixpack.__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONPATH=src)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.stdout.strip() == "False", out.stderr
