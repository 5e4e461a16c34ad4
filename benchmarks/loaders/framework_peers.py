"""The framework peers of ``benchmarks/frameworks.py``: Keras, plain tf.data, Grain.

Each reads the JPEG files of an ImageFolder tree every epoch and does, as closely as
the library allows, what pixpack's rows do: a random resized crop to 224x224, a random
horizontal flip, float32 in [0, 1] normalised with the ImageNet mean and std, NHWC
batches of 64 with int labels, on every usable core. The differences that remain are
listed per reader (and in ``report_frameworks.py``). Timing: ``common.time_loader``
(one warm-up epoch, then windows of two epochs' images).
"""

from __future__ import annotations

import glob
import math
import os
import time
from typing import Any

import numpy as np

from .common import BATCH, CROP, MEAN, STD, time_loader

__all__ = ["keras_dir", "tfdata", "grain_loader", "rrc_params", "decode_augment"]


def _files(root: str) -> tuple[list[str], list[int]]:
    """Sorted ``root/<class>/*.jpg`` and their class numbers (ImageFolder's order)."""
    classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    paths, labels = [], []
    for k, name in enumerate(classes):
        for p in sorted(glob.glob(os.path.join(root, name, "*.jpg"))):
            paths.append(p)
            labels.append(k)
    return paths, labels


def _timed_imports(names: list[str]) -> float:
    t0 = time.perf_counter()
    for name in names:
        __import__(name)
    return time.perf_counter() - t0


def _finish(res: dict[str, Any], import_s: float, t_entry: float) -> dict[str, Any]:
    """Adds the import time and the time from process start to the first batch."""
    import psutil

    started = psutil.Process().create_time()
    res["import_s"] = import_s
    res["process_to_reader_s"] = t_entry - started
    res["process_to_first_batch_s"] = t_entry - started + import_s + (res["first_batch_s"] or 0)
    return res


# -- Keras ------------------------------------------------------------------------------
def keras_dir(cfg: dict[str, Any]) -> dict[str, Any]:
    """``keras.utils.image_dataset_from_directory`` + preprocessing layers, mapped on
    batches with AUTOTUNE. ``cfg["aug"]``: ``"crop"`` (load at 256x256, RandomCrop(224))
    or ``"zoom"`` (load at 224x224, RandomZoom((-0.5, 0)) zooming in per image)."""
    t_entry = time.time()
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import_s = _timed_imports(["tensorflow", "keras"])
    import keras
    import tensorflow as tf

    auto = tf.data.AUTOTUNE

    def make() -> Any:
        side = 256 if cfg["aug"] == "crop" else CROP
        ds = keras.utils.image_dataset_from_directory(
            cfg["data"], image_size=(side, side), batch_size=BATCH, seed=0, verbose=False
        )
        if cfg["aug"] == "crop":  # one crop offset for the whole batch (Keras 3)
            geometry = [keras.layers.RandomCrop(CROP, CROP, seed=1)]
        else:  # per-image zoom-in factors, bilinear affine warp
            geometry = [keras.layers.RandomZoom((-0.5, 0.0), seed=1)]
        aug = keras.Sequential(
            [
                *geometry,
                keras.layers.RandomFlip("horizontal", seed=2),
                keras.layers.Rescaling(1.0 / 255),
                keras.layers.Normalization(mean=MEAN, variance=[s * s for s in STD]),
            ]
        )
        ds = ds.map(lambda x, y: (aug(x, training=True), y), num_parallel_calls=auto)
        return ds.prefetch(auto)

    res = time_loader(make, passes=cfg["passes"])
    return _finish(res, import_s, t_entry)


# -- plain tf.data with tf.image ---------------------------------------------------------
def tfdata(cfg: dict[str, Any]) -> dict[str, Any]:
    """File names -> ``map(read_file, sample_distorted_bounding_box +
    decode_and_crop_jpeg, resize to 224 (``antialias`` from cfg), random_flip_left_right,
    /255, normalise), num_parallel_calls=AUTOTUNE)`` -> batch -> prefetch(AUTOTUNE): the
    Inception / TF-official random resized crop (area 0.08-1, aspect 3/4-4/3, 10
    attempts, else the whole image), decoding only the crop's box."""
    t_entry = time.time()
    import_s = _timed_imports(["tensorflow"])
    import tensorflow as tf

    tf.random.set_seed(0)
    auto = tf.data.AUTOTUNE
    paths, labels = _files(cfg["data"])
    mean = tf.constant(MEAN, tf.float32)
    inv_std = tf.constant([1.0 / s for s in STD], tf.float32)
    whole = tf.constant([0.0, 0.0, 1.0, 1.0], tf.float32, shape=[1, 1, 4])
    antialias = bool(cfg.get("antialias", True))

    def parse(path: Any, label: Any) -> Any:
        data = tf.io.read_file(path)
        begin, size, _ = tf.image.sample_distorted_bounding_box(
            tf.io.extract_jpeg_shape(data),
            bounding_boxes=whole,
            min_object_covered=0.0,
            aspect_ratio_range=(3 / 4, 4 / 3),
            area_range=(0.08, 1.0),
            max_attempts=10,
            use_image_if_no_bounding_boxes=True,
        )
        oy, ox, _ = tf.unstack(begin)
        h, w, _ = tf.unstack(size)
        img = tf.image.decode_and_crop_jpeg(data, tf.stack([oy, ox, h, w]), channels=3)
        img = tf.image.resize(img, [CROP, CROP], method="bilinear", antialias=antialias)
        img = tf.image.random_flip_left_right(img)
        return (img * (1.0 / 255) - mean) * inv_std, label

    def make() -> Any:
        ds = tf.data.Dataset.from_tensor_slices((paths, np.asarray(labels, np.int64)))
        ds = ds.shuffle(len(paths), seed=0, reshuffle_each_iteration=True)
        ds = ds.map(parse, num_parallel_calls=auto).batch(BATCH)
        return ds.prefetch(auto)

    res = time_loader(make, passes=cfg["passes"])
    return _finish(res, import_s, t_entry)


# -- Grain --------------------------------------------------------------------------------
def rrc_params(rng: np.random.Generator, height: int, width: int) -> tuple[int, int, int, int]:
    """torchvision's RandomResizedCrop.get_params (scale 0.08-1, ratio 3/4-4/3)."""
    area = height * width
    log_ratio = (math.log(3 / 4), math.log(4 / 3))
    for _ in range(10):
        target = area * rng.uniform(0.08, 1.0)
        ratio = math.exp(rng.uniform(*log_ratio))
        w = round(math.sqrt(target * ratio))
        h = round(math.sqrt(target / ratio))
        if 0 < w <= width and 0 < h <= height:
            return int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w
    ratio = width / height  # fallback: the central crop of the clamped aspect ratio
    if ratio < 3 / 4:
        w, h = width, round(width / (3 / 4))
    elif ratio > 4 / 3:
        h, w = height, round(height * (4 / 3))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


_SCALE = np.array([1.0 / (255 * s) for s in STD], np.float32)
_SHIFT = np.array([-m / s for m, s in zip(MEAN, STD, strict=True)], np.float32)


def decode_augment(item: tuple[str, int], rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """OpenCV decode to RGB, random resized crop (INTER_AREA when shrinking, else
    bilinear), random flip, float32 normalise: one HWC image."""
    import cv2

    path, label = item
    with open(path, "rb") as f:
        buf = np.frombuffer(f.read(), np.uint8)
    img = cv2.imdecode(buf, cv2.IMREAD_COLOR_RGB)
    y, x, h, w = rrc_params(rng, img.shape[0], img.shape[1])
    crop = img[y : y + h, x : x + w]
    interp = cv2.INTER_AREA if h * w > CROP * CROP else cv2.INTER_LINEAR
    out = cv2.resize(crop, (CROP, CROP), interpolation=interp)
    if rng.random() < 0.5:
        out = out[:, ::-1]
    return out.astype(np.float32) * _SCALE + _SHIFT, label


def _grain_batch(items: Any) -> tuple[np.ndarray, np.ndarray]:
    return np.stack([x for x, _ in items]), np.asarray([y for _, y in items], np.int64)


def _grain_init(_worker: int, _count: int) -> None:
    import cv2

    cv2.setNumThreads(1)


def grain_loader(cfg: dict[str, Any]) -> dict[str, Any]:
    """``grain.MapDataset.source(files).shuffle().repeat(reseed_each_epoch)
    .random_map(decode_augment)``, to an IterDataset that batches 64: ``cfg["mode"]``
    ``"threads"`` (``ReadOptions(num_threads=cores)``) or ``"processes"``
    (``mp_prefetch(MultiprocessingOptions(num_workers=cores))``, one read thread each).
    ``cfg["to_jax"]``: each batch also goes through ``jax.device_put`` and is waited for.
    One long-lived iterator over the repeated data set; an "epoch" is ceil(N / 64)
    batches of it (batches may straddle epochs)."""
    t_entry = time.time()
    mods = ["grain", "cv2"] + (["jax"] if cfg.get("to_jax") else [])
    import_s = _timed_imports(mods)
    import cv2
    import grain
    from absl import flags

    if not flags.FLAGS.is_parsed():  # grain's multiprocessing reads absl flags
        flags.FLAGS.mark_as_parsed()
    cv2.setNumThreads(1)
    cores = len(os.sched_getaffinity(0))
    paths, labels = _files(cfg["data"])
    per_epoch = math.ceil(len(paths) / BATCH)
    to_jax = None
    if cfg.get("to_jax"):
        import jax

        def to_jax(batch: Any) -> Any:
            x, y = jax.device_put(batch[0]), jax.device_put(batch[1])
            x.block_until_ready()
            return x, y

    def make() -> Any:
        ds = grain.MapDataset.source(list(zip(paths, labels, strict=True)))
        ds = ds.shuffle(seed=0).repeat(None).random_map(decode_augment, seed=1)
        if cfg["mode"] == "threads":
            it_ds = ds.to_iter_dataset(
                grain.ReadOptions(num_threads=cores, prefetch_buffer_size=4 * BATCH)
            )
            it_ds = it_ds.batch(BATCH, batch_fn=_grain_batch)
        else:
            it_ds = ds.to_iter_dataset(grain.ReadOptions(num_threads=1, prefetch_buffer_size=BATCH))
            it_ds = it_ds.batch(BATCH, batch_fn=_grain_batch).mp_prefetch(
                grain.MultiprocessingOptions(num_workers=cores, per_worker_buffer_size=2),
                worker_init_fn=_grain_init,
            )
        return iter(it_ds)

    def epoch(it: Any, _epoch: int) -> Any:
        for _ in range(per_epoch):
            batch = next(it)
            yield to_jax(batch) if to_jax is not None else batch

    res = time_loader(make, passes=cfg["passes"], epoch_iter=epoch)
    res["cores_setting"] = cores
    return _finish(res, import_s, t_entry)
