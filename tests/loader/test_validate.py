"""Pipelines that cannot batch are refused when the Loader is built, with one line that
names the fix (never "re-pack", never on_error='skip': skipping would drop nearly every
sample of a pack whose images differ in size)."""

from __future__ import annotations

import random

import cv2
import numpy as np
import pytest
import torch

from pixpack.errors import LoaderError, UsageError
from pixpack.loader import Loader
from pixpack.ops import (
    CenterCrop,
    Normalize,
    PythonOp,
    RandomHorizontalFlip,
    RandomResizedCrop,
    RandomRotation,
    Resize,
)

from .helpers import write_pack

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def refused(pack, **kwargs) -> str:
    with pytest.raises(UsageError) as info:
        Loader(pack, 8, workers=1, **kwargs)
    message = str(info.value)
    assert "\n" not in message and "re-pack" not in message and "skip" not in message
    return message


@pytest.fixture(scope="module")
def same_size_pack(photos, tmp_path_factory):
    images = [np.ascontiguousarray(p[:40, :60]) for p in photos[:10]]
    return write_pack(tmp_path_factory.mktemp("same") / "same.pixpack", images)


def test_resize_without_a_crop_is_refused(raw_pack):
    message = refused(raw_pack, pipeline=[Resize(32), Normalize(MEAN, STD)])
    assert "Resize(32) keeps each image's aspect ratio" in message
    assert "CenterCrop(224)" in message and "RandomResizedCrop(224)" in message
    assert str(raw_pack.path) in message


def test_no_pipeline_on_images_of_different_sizes_is_refused(raw_pack):
    message = refused(raw_pack, pipeline=[])
    assert "there is no pipeline" in message and "differ in size" in message
    assert "no op of the pipeline sets one size" in refused(
        raw_pack, pipeline=[RandomHorizontalFlip()]
    )


def test_rotation_with_expand_is_refused(raw_pack):
    message = refused(raw_pack, pipeline=[CenterCrop(32), RandomRotation(30, expand=True)])
    assert "RandomRotation(expand=True)" in message


def test_variable_ops_are_fine_on_a_pack_of_one_size(same_size_pack):
    x, _ = next(iter(Loader(same_size_pack, 4, pipeline=[], dtype="uint8", workers=1)))
    assert x.shape == (4, 3, 40, 60)
    x, _ = next(iter(Loader(same_size_pack, 4, pipeline=[Resize(20)], workers=1)))
    assert x.shape == (4, 3, 20, 30)
    with pytest.raises(UsageError, match="expand=True"):  # depends on the angle drawn
        Loader(same_size_pack, 4, pipeline=[RandomRotation(30, expand=True)])


def test_fixed_size_pipelines_are_accepted(raw_pack):
    for pipeline in ([Resize(32), CenterCrop(24)], [RandomResizedCrop(16)], [Resize((20, 30))]):
        x, _ = next(iter(Loader(raw_pack, 8, pipeline=pipeline, dtype="uint8", workers=1)))
        assert x.shape[0] == 8


def half_size(img: np.ndarray) -> np.ndarray:  # as albumentations' Downscale or a pyramid
    h, w = img.shape[:2]
    return cv2.resize(img, (w // 2, h // 2))


def test_a_callable_whose_size_follows_the_image_is_refused(raw_pack):
    message = refused(raw_pack, pipeline=[half_size])
    assert "sample 0 came out" in message and "CenterCrop(224)" in message


def test_a_callable_with_a_fixed_output_size_sets_the_batch_size(raw_pack):
    def to_24(img):
        return cv2.resize(img, (24, 24))

    x, _ = next(iter(Loader(raw_pack, 8, pipeline=[to_24], dtype="uint8", workers=1)))
    assert x.shape == (8, 3, 24, 24)


def test_a_size_mismatch_at_run_time_is_raised_even_with_skip(raw_pack):
    calls = []

    def drifting(img):  # passes the probe (two calls), then changes its size
        calls.append(1)
        return cv2.resize(img, (16, 16) if len(calls) <= 2 else (20, 16))

    loader = Loader(raw_pack, 8, pipeline=[drifting], on_error="skip", workers=1)
    with pytest.raises(LoaderError) as info:
        list(loader)
    message = str(info.value)
    assert "output size follows each image" in message and "CenterCrop(224)" in message
    assert "skip" not in message and "re-pack" not in message
    loader.close()


def test_a_torchvision_transform_in_the_list_is_refused():
    v2 = pytest.importorskip("torchvision.transforms.v2")
    with pytest.raises(UsageError, match=r"PythonOp\(RandomErasing\(\.\.\.\)\)"):
        build_loader([v2.RandomErasing()])
    with pytest.raises(UsageError, match=r"pixpack\.ops\.Resize"):
        build_loader([v2.Resize(32)])
    # wrapped, it is fine
    build_loader([PythonOp(v2.RandomErasing()), CenterCrop(8)])


def test_an_albumentations_transform_in_the_list_is_refused():
    Fake = type("HorizontalFlip", (), {"__call__": lambda self, **kw: kw})
    Fake.__module__ = "albumentations.augmentations.geometric.transforms"
    with pytest.raises(UsageError, match=r"t\(image=img\)\['image'\]"):
        build_loader([Fake()])


def build_loader(pipeline):  # a Loader over a tiny one-size pack
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        pack = write_pack(Path(tmp) / "t.pixpack", [np.zeros((8, 8, 3), np.uint8)] * 2)
        Loader(pack, 2, pipeline=pipeline, workers=1).close()
        pack.close()


def test_python_op_with_a_declared_size_is_not_probed_twice_wrong(raw_pack):
    def crop(t: torch.Tensor) -> torch.Tensor:
        return t[:, :16, :16]

    x, _ = next(iter(Loader(raw_pack, 8, pipeline=[PythonOp(crop, size=(16, 16))], workers=1)))
    assert x.shape == (8, 3, 16, 16)


def global_rng_jitter(img: np.ndarray) -> np.ndarray:
    """Draws as albumentations and hand-written augmentations do: from Python's random
    and NumPy's global generator (and torch's)."""
    shift = random.randint(0, 40) + int(np.random.randint(0, 40)) + int(torch.randint(0, 40, ()))
    return cv2.resize(np.clip(img.astype(np.int16) + shift, 0, 255).astype(np.uint8), (16, 16))


def test_callables_drawing_from_global_rngs_are_deterministic(raw_pack):
    """Issue 13 item 3: the same seed gave other batches (threads, runs)."""

    def run(workers: int, seed: int = 5) -> list[torch.Tensor]:
        loader = Loader(raw_pack, 8, pipeline=[global_rng_jitter], seed=seed, workers=workers)
        out = [x.clone() for x, _ in loader]
        loader.close()
        return out

    state = (random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state())
    one, two, again = run(1), run(2), run(2)
    assert all(torch.equal(a, b) for a, b in zip(one, two, strict=True))
    assert all(torch.equal(a, b) for a, b in zip(two, again, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(one, run(1, seed=6), strict=True))
    # the caller's global generators are left as they were
    assert random.getstate() == state[0] and np.array_equal(np.random.get_state()[1], state[1])
    assert torch.equal(torch.get_rng_state(), state[2])


def test_an_op_failing_on_a_readable_sample_is_not_told_to_re_pack(raw_pack):
    """Issue 13: a callable written for tensors failed with '... re-pack it' advice."""

    def tensor_only(img):
        return img.permute(2, 0, 1)  # numpy has no permute

    loader = Loader(raw_pack, 8, pipeline=[CenterCrop(16), tensor_only], workers=1)
    with pytest.raises(LoaderError) as info:
        next(iter(loader))
    message = str(info.value)
    assert "re-pack" not in message and "its image reads fine" in message
    assert "ops.PythonOp(t)" in message and "\n" not in message
    loader.close()
