"""Random parameters follow torchvision v2's distributions (two-sample KS tests).

Values differ (torchvision draws from torch's global generator, pixpack from the
injected numpy one) but each parameter's distribution must match: we draw N params
from both (torchvision's own ``make_params`` under ``torch.manual_seed``) and require
``scipy.stats.ks_2samp`` p > 0.001.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import binomtest, ks_2samp
from torchvision.transforms import v2 as T

from pixpack import ops

N = 8000
P_MIN = 1e-3


def ours(op, shape: tuple[int, int, int], n: int = N) -> list:
    rng = np.random.default_rng(2024)
    return [op.make_params(rng, shape) for _ in range(n)]


def theirs(transform, shape: tuple[int, int, int], n: int = N) -> list[dict]:
    torch.manual_seed(2024)
    image = torch.zeros((shape[2], shape[0], shape[1]), dtype=torch.uint8)
    return [transform.make_params([image]) for _ in range(n)]


def assert_same(a, b, what: str) -> None:
    result = ks_2samp(np.asarray(a, float), np.asarray(b, float))
    assert result.pvalue > P_MIN, f"{what}: KS p={result.pvalue:.2g}"


@pytest.mark.parametrize("shape", [(256, 256, 3), (300, 500, 3), (600, 120, 3)])
def test_random_resized_crop(shape: tuple[int, int, int]) -> None:
    a = ours(ops.RandomResizedCrop(224), shape)
    b = theirs(T.RandomResizedCrop(224), shape)
    area = shape[0] * shape[1]
    assert_same(
        [p.height * p.width / area for p in a], [p["height"] * p["width"] / area for p in b], "area"
    )
    assert_same([p.width / p.height for p in a], [p["width"] / p["height"] for p in b], "aspect")
    assert_same([p.top for p in a], [p["top"] for p in b], "top")
    assert_same([p.left for p in a], [p["left"] for p in b], "left")
    # The fallback (centre crop after 10 failed attempts) happens at the same rate.
    full_a = np.mean([(p.height, p.width) == shape[:2] for p in a])
    full_b = np.mean([(p["height"], p["width"]) == shape[:2] for p in b])
    assert abs(full_a - full_b) < 0.02


def test_random_rotation() -> None:
    a = ours(ops.RandomRotation((-10, 40)), (64, 64, 3))
    b = theirs(T.RandomRotation((-10, 40)), (64, 64, 3))
    assert_same(a, [p["angle"] for p in b], "angle")


def test_random_affine() -> None:
    kwargs = dict(degrees=25, translate=(0.1, 0.3), scale=(0.7, 1.2), shear=(-8, 8, -4, 10))
    shape = (120, 200, 3)
    a = ours(ops.RandomAffine(**kwargs), shape)
    b = theirs(T.RandomAffine(**kwargs), shape)
    assert_same([p.angle for p in a], [p["angle"] for p in b], "angle")
    assert_same([p.translate[0] for p in a], [p["translate"][0] for p in b], "tx")
    assert_same([p.translate[1] for p in a], [p["translate"][1] for p in b], "ty")
    assert_same([p.scale for p in a], [p["scale"] for p in b], "scale")
    assert_same([p.shear[0] for p in a], [p["shear"][0] for p in b], "shear x")
    assert_same([p.shear[1] for p in a], [p["shear"][1] for p in b], "shear y")


def test_random_crop() -> None:
    a = ours(ops.RandomCrop(50, padding=(3, 5)), (80, 70, 3))
    b = theirs(T.RandomCrop(50, padding=(3, 5)), (80, 70, 3))
    assert_same([p[0] for p in a], [p["top"] for p in b], "top")
    assert_same([p[1] for p in a], [p["left"] for p in b], "left")
    assert a[0][2] == tuple(b[0]["padding"])  # (left, top, right, bottom)


def test_color_jitter() -> None:
    args = (0.4, (0.5, 1.5), 0.3, 0.1)
    a = ours(ops.ColorJitter(*args), (8, 8, 3))
    b = theirs(T.ColorJitter(*args), (8, 8, 3))
    for i, name in enumerate(("brightness", "contrast", "saturation", "hue")):
        assert_same([p[1 + i] for p in a], [p[f"{name}_factor"] for p in b], name)
    # Every one of the 24 orders is equally likely (torch.randperm(4)).
    orders = {}
    for p in a:
        orders[p.order] = orders.get(p.order, 0) + 1
    assert len(orders) == 24
    assert all(binomtest(k, N, 1 / 24).pvalue > P_MIN for k in orders.values())
    off = ops.ColorJitter(brightness=0.2).make_params(np.random.default_rng(0), (8, 8, 3))
    assert off.contrast is None and off.saturation is None and off.hue is None


@pytest.mark.parametrize(
    "op",
    [ops.RandomHorizontalFlip(0.3), ops.RandomVerticalFlip(0.5), ops.RandomGrayscale(0.1)],
    ids=repr,
)
def test_probability_ops_fire_at_rate_p(op) -> None:
    hits = sum(ours(op, (8, 8, 3)))
    assert binomtest(hits, N, op.p).pvalue > P_MIN
    assert not any(ours(type(op)(p=0.0), (8, 8, 3), n=200))
    assert all(ours(type(op)(p=1.0), (8, 8, 3), n=200))
