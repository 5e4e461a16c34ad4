"""Pipeline assembly, the fixed-size check, PythonOp, and argument validation."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from torchvision.transforms import v2 as T

from pixpack import ops
from pixpack.errors import UsageError
from pixpack.ops.base import sample_rng

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def train_pipeline(*extra) -> ops.Pipeline:
    return ops.Pipeline(
        [ops.RandomResizedCrop(64), ops.RandomHorizontalFlip(), *extra, ops.Normalize(MEAN, STD)]
    )


def test_pipeline_splits_and_defaults(photos: list[np.ndarray]) -> None:
    pipe = train_pipeline()
    assert len(pipe.ops) == 2 and pipe.normalize == ops.Normalize(MEAN, STD)
    assert pipe.output == ops.ToOutput("float32", "NCHW")
    assert pipe.check_fixed_size(3) == (64, 64, 3)
    out = pipe.run(photos[0], sample_rng(0, 0, 7))
    assert out.shape == (3, 64, 64) and out.dtype == np.float32
    np.testing.assert_array_equal(out, pipe.run(photos[0], sample_rng(0, 0, 7)))
    assert not np.array_equal(out, pipe.run(photos[0], sample_rng(0, 1, 7)))
    assert ops.Pipeline([ops.CenterCrop(8)]).output == ops.ToOutput("uint8", "NCHW")
    assert ops.Compose is ops.Pipeline
    assert pickle.loads(pickle.dumps(pipe)) == pipe


def test_pipeline_uint8_output_matches_augment(photos: list[np.ndarray]) -> None:
    pipe = ops.Pipeline([ops.Resize(40), ops.CenterCrop(32), ops.ToOutput("uint8", "NCHW")])
    hwc = pipe.augment(photos[1], np.random.default_rng(0))
    np.testing.assert_array_equal(
        pipe.run(photos[1], np.random.default_rng(0)), hwc.transpose(2, 0, 1)
    )


def test_variable_output_size_is_rejected() -> None:
    for pipe in (
        ops.Pipeline([ops.Resize(256)]),
        ops.Pipeline([ops.RandomHorizontalFlip()]),
        ops.Pipeline([ops.CenterCrop(64), ops.RandomRotation(10, expand=True)]),
    ):
        with pytest.raises(UsageError, match="add a crop or resize to a fixed size"):
            pipe.check_fixed_size(3)
    assert ops.Pipeline([ops.Resize(256), ops.CenterCrop(224)]).check_fixed_size(1) == (224, 224, 1)


def test_pipeline_order_and_membership_errors() -> None:
    with pytest.raises(UsageError, match="after Normalize"):
        ops.Pipeline([ops.Normalize(MEAN, STD), ops.RandomHorizontalFlip()])
    with pytest.raises(UsageError, match="PythonOp"):
        ops.Pipeline([lambda x: x])
    with pytest.raises(UsageError, match="float"):
        ops.Pipeline([ops.Normalize(MEAN, STD), ops.ToOutput("uint8")])


def test_python_op_wraps_torchvision_deterministically(photos: list[np.ndarray]) -> None:
    op = ops.PythonOp(T.RandomErasing(p=1.0, value=0))
    image = photos[0][:64, :64]
    params = op.make_params(np.random.default_rng(3), image.shape)
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    a = op.apply(image, params)
    assert torch.equal(torch.random.get_rng_state(), state)  # global RNG untouched
    b = pickle.loads(pickle.dumps(op)).apply(image, params)
    np.testing.assert_array_equal(a, b)
    assert a.shape == image.shape and a.dtype == np.uint8 and (a == 0).any()
    other = op.apply(image, op.make_params(np.random.default_rng(4), image.shape))
    assert not np.array_equal(a, other)


def test_python_op_plain_callable_gray_and_size() -> None:
    op = ops.PythonOp(torch.fliplr, size=None)
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4, 1)
    out = op.apply(gray, 0)
    assert out.shape == (3, 4, 1)
    assert ops.PythonOp(torch.fliplr, size=(5, 6)).output_shape((9, 9, 3)) == (5, 6, 3)


@pytest.mark.parametrize(
    "make",
    [
        lambda: ops.RandomResizedCrop(0),
        lambda: ops.RandomResizedCrop(32, scale=(0.9, 0.1)),
        lambda: ops.RandomResizedCrop(32, interpolation="lanczos"),
        lambda: ops.Resize((10, 10, 3)),
        lambda: ops.Resize(32, max_size=16),
        lambda: ops.CenterCrop("big"),
        lambda: ops.RandomCrop(32, padding=(1, 2, 3)),
        lambda: ops.RandomCrop(32, padding_mode="wrap"),
        lambda: ops.RandomHorizontalFlip(p=1.5),
        lambda: ops.RandomRotation(-5),
        lambda: ops.RandomRotation(10, interpolation="bicubic"),
        lambda: ops.RandomAffine(10, translate=(0.1, 2.0)),
        lambda: ops.RandomAffine(10, scale=(-1.0, 1.0)),
        lambda: ops.ColorJitter(brightness=-0.1),
        lambda: ops.ColorJitter(hue=0.6),
        lambda: ops.RandomGrayscale(p=-0.1),
        lambda: ops.Normalize(MEAN, (0.2, 0.0, 0.2)),
        lambda: ops.ToOutput("int8"),
        lambda: ops.ToOutput("float32", "CHW"),
        lambda: ops.PythonOp("not callable"),
    ],
)
def test_invalid_arguments_raise_usage_error(make) -> None:
    with pytest.raises(UsageError):
        make()


def test_random_crop_too_small_names_the_fix() -> None:
    op = ops.RandomCrop(64)
    with pytest.raises(UsageError, match="pad_if_needed"):
        op.make_params(np.random.default_rng(0), (32, 32, 3))


def test_torchvision_argument_forms_are_accepted() -> None:
    assert ops.RandomRotation(30).degrees == (-30.0, 30.0)
    assert ops.RandomAffine(0, shear=10).shear == (-10.0, 10.0)
    assert ops.RandomResizedCrop([96]).size == (96, 96)
    assert (
        ops.RandomResizedCrop(96, interpolation=T.InterpolationMode.BICUBIC).interpolation
        == "bicubic"
    )
    assert ops.ColorJitter(brightness=1.5).brightness == (0.0, 2.5)
    assert ops.ColorJitter(brightness=0).brightness is None
    assert ops.RandomCrop(8, padding=(1, 2)).padding == (1, 2, 1, 2)
    assert ops.Resize(256).output_shape((300, 500, 3)) == (256, 426, 3)


def test_normalize_in_0_255_units_is_refused_with_the_converted_values():
    """Issue 13: torchvision's mean/std copied in 0-255 units were accepted silently."""
    from pixpack.ops import Normalize

    with pytest.raises(UsageError) as info:
        Normalize((123.675, 116.28, 103.53), (58.395, 57.12, 57.375)).check_units(np.uint8)
    assert "0-255 units" in str(info.value)
    # int16 (Hounsfield units) and float32 pixels keep their own units: no refusal.
    Normalize((40.0,), (400.0,)).check_units(np.int16)
    assert "Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))" in str(info.value)
    Normalize((0.5,), (1.5,))  # [0, 1] units, whatever the std: fine


def test_python_op_hwc_layout_gives_a_writable_numpy_image() -> None:
    """Issue 13: PythonOp could declare a size but handed albumentations a CHW tensor."""
    seen = []

    def numpy_only(img: np.ndarray) -> np.ndarray:  # as albumentations' transforms are
        assert isinstance(img, np.ndarray) and img.ndim == 3 and img.flags.writeable
        seen.append(img.shape)
        img[0, 0] = 0  # in place, as some of them do
        return np.ascontiguousarray(img[:2, :3])

    image = np.full((4, 5, 3), 9, np.uint8)
    image.setflags(write=False)  # a raw sample is a read-only view of the map
    op = ops.PythonOp(numpy_only, size=(2, 3), layout="HWC")
    out = op.apply(image, 0)
    assert seen == [(4, 5, 3)] and out.shape == (2, 3, 3) and out[0, 0, 0] == 0
    assert image[0, 0, 0] == 9 and op.output_shape((4, 5, 3)) == (2, 3, 3)
    with pytest.raises(UsageError, match="layout"):
        ops.PythonOp(numpy_only, layout="NHWC")
