"""The contract every op honours (torchvision's check_transform, for pixpack ops).

Picklable (a round-trip gives equal output), output shape and dtype as declared by
``output_shape``, deterministic given the generator's seed, input never modified,
and working on uint8/uint16 with 1/3/4 channels, contiguous or strided views. The
intensity ops (float32 output, declared by ``output_dtype``) are held to the same
contract on uint8/uint16/int16/float32 with 1/3/5 channels.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from pixpack import ops
from pixpack.ops.base import Op, RegionOp, op_output_dtype

OPS = [
    ops.RandomResizedCrop(40),
    ops.RandomResizedCrop((30, 50), scale=(0.5, 1.0), interpolation="bicubic"),
    ops.Resize(48),
    ops.Resize((20, 60), antialias=False),
    ops.Resize(40, interpolation="nearest-exact", max_size=50),
    ops.CenterCrop(40),
    ops.CenterCrop((90, 30)),  # taller than the image: padded
    ops.RandomCrop(50, padding=4, fill=3, padding_mode="reflect"),
    ops.RandomCrop((80, 100), pad_if_needed=True, padding_mode="edge"),
    ops.RandomHorizontalFlip(p=1.0),
    ops.RandomVerticalFlip(p=1.0),
    ops.RandomRotation(30, fill=7),
    ops.RandomRotation((10, 80), interpolation="bilinear", expand=True, center=(10, 20)),
    ops.RandomAffine(20, translate=(0.1, 0.2), scale=(0.8, 1.2), shear=(-5, 5, -3, 3)),
    ops.ColorJitter(0.4, 0.4, 0.4, 0.1),
    ops.ColorJitter(brightness=(0.5, 0.6), hue=0.5),
    ops.RandomGrayscale(p=1.0),
]
IDS = [repr(op)[:60] for op in OPS]
CASES = [
    (d, c, lay) for d in ("uint8", "uint16") for c in (1, 3, 4) for lay in ("contiguous", "view")
]
INTENSITY_OPS = [
    ops.WindowLevel(40, 400),
    ops.WindowLevel("lung", function="linear"),
    ops.WindowLevel(windows=["brain", "subdural", (40, 400)]),
    ops.ScaleIntensityRange(-1000, 1000),
    ops.ScaleIntensityRange(0, 255, b_min=-1, b_max=1, clip=False),
    ops.ScaleIntensityRangePercentiles(1, 99),
    ops.ScaleIntensityRangePercentiles(5, 95, 0, 10, relative=True, channel_wise=True),
    ops.ToFloat(),
    ops.ToFloat(bits=8),
]
INTENSITY_IDS = [repr(op)[:60] for op in INTENSITY_OPS]
INTENSITY_CASES = [
    (d, c, lay)
    for d in ("uint8", "uint16", "int16", "float32")
    for c in (1, 3, 5)
    for lay in ("contiguous", "view")
]


def _run(op, image: np.ndarray, seed: int) -> np.ndarray:
    params = op.make_params(np.random.default_rng(seed), image.shape)
    return op.apply(image, params)


@pytest.mark.parametrize("op", OPS, ids=IDS)
def test_is_an_op(op) -> None:
    assert isinstance(op, Op)
    if isinstance(op, (ops.RandomResizedCrop, ops.Resize, ops.CenterCrop)):
        assert isinstance(op, RegionOp)


def _check_contract(op, image: np.ndarray) -> np.ndarray:
    before = image.copy()
    out = _run(op, image, seed=3)

    np.testing.assert_array_equal(image, before)  # input untouched
    assert out.dtype == op_output_dtype(op, image.dtype)
    declared = op.output_shape(image.shape)
    assert out.ndim == 3
    for got, want in zip(out.shape, declared, strict=True):
        assert want == ops.VARIABLE or got == want
    np.testing.assert_array_equal(_run(op, image, seed=3), out)  # deterministic
    clone = pickle.loads(pickle.dumps(op))
    assert clone == op
    np.testing.assert_array_equal(_run(clone, image, seed=3), out)
    return out


@pytest.mark.parametrize("op", OPS, ids=IDS)
@pytest.mark.parametrize("dtype,channels,layout", CASES)
def test_contract(op, image_of, dtype: str, channels: int, layout: str) -> None:
    out = _check_contract(op, image_of(dtype, channels, layout))
    assert out.dtype == np.dtype(dtype) and out.shape[2] == channels


@pytest.mark.parametrize("op", INTENSITY_OPS, ids=INTENSITY_IDS)
@pytest.mark.parametrize("dtype,channels,layout", INTENSITY_CASES)
def test_intensity_contract(op, image_of, dtype: str, channels: int, layout: str) -> None:
    image = image_of(dtype, channels, layout)
    out = _check_contract(op, image)
    assert isinstance(op, Op) and not isinstance(op, RegionOp)
    assert out.dtype == np.float32
    assert out.shape == op.output_shape(image.shape)  # no VARIABLE sizes
    # Deterministic ops: no parameters drawn, whatever the generator.
    assert op.make_params(np.random.default_rng(0), image.shape) is None


@pytest.mark.parametrize("op", OPS, ids=IDS)
def test_different_seeds_differ_for_random_ops(op, image_of) -> None:
    image = image_of("uint8", 3, "contiguous")
    params = {repr(op.make_params(np.random.default_rng(s), image.shape)) for s in range(8)}
    deterministic = isinstance(op, (ops.Resize, ops.CenterCrop)) or getattr(op, "p", 0.5) in (0, 1)
    assert (len(params) == 1) == deterministic


@pytest.mark.parametrize("op", [o for o in OPS if hasattr(o, "region")], ids=repr)
@pytest.mark.parametrize("channels", [1, 3])
def test_region_ops(op, image_of, channels: int) -> None:
    image = image_of("uint8", channels, "view")
    params = op.make_params(np.random.default_rng(5), image.shape)
    box = op.region(params, image.shape)
    assert 0 <= box.top and box.top + box.height <= image.shape[0]
    assert 0 <= box.left and box.left + box.width <= image.shape[1]
    crop = image[box.top : box.top + box.height, box.left : box.left + box.width]
    full = op.apply(image, params)
    np.testing.assert_array_equal(op.apply_region(crop, params), full)
    assert full.shape[:2] == tuple(op.output_shape(image.shape)[:2]) or ops.VARIABLE in box.size
    # A crop decoded at half the DCT scale still yields the declared output size.
    half = crop[::2, ::2]
    assert op.apply_region(half, params).shape == full.shape
    # out= writes into the caller's buffer (the loader's batch slot).
    buf = np.zeros(full.shape, np.uint8)
    res = op.apply_region(crop, params, out=buf)
    assert res is buf
    np.testing.assert_array_equal(buf, full)


@pytest.mark.parametrize(
    "op",
    [ops.RandomHorizontalFlip(1.0), ops.RandomVerticalFlip(1.0), ops.RandomRotation(20)],
    ids=repr,
)
@pytest.mark.parametrize("channels", [1, 4])
def test_out_keyword(op, image_of, channels: int) -> None:
    image = image_of("uint16", channels, "view")
    params = op.make_params(np.random.default_rng(0), image.shape)
    expected = op.apply(image, params)
    buf = np.zeros_like(expected)
    assert op.apply(image, params, out=buf) is buf
    np.testing.assert_array_equal(buf, expected)
