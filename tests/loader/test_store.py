"""The fused native store (flip + Normalize + layout in one pass) and the loader's view flips.

Reference: the same arithmetic in float64 numpy on a contiguous copy of the image.
"""

from __future__ import annotations

import numpy as np
import pytest

import pixpack
from pixpack.loader import convert
from pixpack.loader.convert import OutputSpec, affine, write_sample
from pixpack.ops import Normalize, RandomHorizontalFlip, RandomResizedCrop, RandomVerticalFlip

native = pytest.importorskip("pixpack._native._store")

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _reference(img: np.ndarray, channels: int, chw: bool, alpha, beta) -> np.ndarray:
    x = np.ascontiguousarray(img).astype(np.float64)
    if x.ndim == 2:
        x = x[:, :, None]
    x = np.broadcast_to(x, (*x.shape[:2], channels))
    out = x * np.asarray(alpha) + np.asarray(beta)
    return out.transpose(2, 0, 1) if chw else out


@pytest.fixture(scope="module")
def photo(photos) -> np.ndarray:
    img = np.asarray(photos[0])[:96, :120]
    assert img.ndim == 3 and img.shape[2] == 3
    return np.ascontiguousarray(img)


VIEWS = {
    "contiguous": lambda a: a,
    "hflip": lambda a: a[:, ::-1],
    "vflip": lambda a: a[::-1],
    "both": lambda a: a[::-1, ::-1],
    "crop": lambda a: a[5:69, 7:71],  # row stride larger than the row
    "bgr": lambda a: a[:, :, ::-1],  # negative channel stride
}


@pytest.mark.parametrize("view", sorted(VIEWS))
@pytest.mark.parametrize("chw", [True, False])
def test_float_store_matches_reference_for_any_strides(photo, view, chw):
    img = VIEWS[view](photo)
    alpha, beta = affine(3, np.dtype(np.uint8), MEAN, STD)
    h, w = img.shape[:2]
    dst = np.full((3, h, w) if chw else (h, w, 3), np.nan, np.float32)
    native.store(img, dst, alpha, beta, chw)
    np.testing.assert_allclose(dst, _reference(img, 3, chw, alpha, beta), rtol=0, atol=2e-6)


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_uint16_gray_and_four_channels(photo, channels):
    img16 = photo.astype(np.uint16) * 257
    img = img16[:, :, :1] if channels == 1 else img16
    if channels == 4:
        img = np.concatenate([img16, img16[:, :, :1]], axis=2)
    out_c = 3 if channels == 1 else channels  # gray is replicated into RGB
    alpha, beta = affine(out_c, np.dtype(np.uint16), None, None)
    dst = np.empty((out_c, *img.shape[:2]), np.float32)
    native.store(img[:, ::-1], dst, alpha, beta, True)
    ref = _reference(img[:, ::-1], out_c, True, alpha, beta)
    np.testing.assert_allclose(dst, ref, rtol=0, atol=2e-6)
    assert dst.min() >= 0.0 and dst.max() <= 1.0


@pytest.mark.parametrize("view", sorted(VIEWS))
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_integer_store_is_an_exact_copy(photo, view, dtype, channels):
    # Covers the row-memcpy fast path (packed HWC rows, e.g. "contiguous" and "crop"
    # into HWC) and the generic strided loop (flips, BGR, CHW, gray replication).
    base = photo.astype(dtype) * (257 if dtype == np.uint16 else 1)
    if channels == 1:
        base = base[:, :, :1]
    elif channels == 4:
        base = np.concatenate([base, base[:, :, :1] // 2], axis=2)
    img = VIEWS[view](base)
    out_c = 3 if channels == 1 else channels
    expected = np.broadcast_to(np.ascontiguousarray(img), (*img.shape[:2], out_c))
    chw = np.zeros((out_c, *img.shape[:2]), dtype)
    native.store(img, chw, None, None, True)
    np.testing.assert_array_equal(chw, expected.transpose(2, 0, 1))
    hwc = np.zeros((*img.shape[:2], out_c), dtype)
    native.store(img, hwc, None, None, False)
    np.testing.assert_array_equal(hwc, expected)


@pytest.mark.parametrize("width", [1, 2, 3, 5])
@pytest.mark.parametrize("chw", [True, False])
def test_narrow_flipped_uint8_rows(photo, width, chw):
    # The flipped uint8 paths move pixels with 4-byte loads/stores: the first and last
    # pixel of a row are special-cased so nothing past either row is touched.
    img = np.ascontiguousarray(photo[:4, :width])[:, ::-1]
    dst = np.zeros((3, 4, width + 1) if chw else (4, width + 1, 3), np.uint8)
    slot = dst[:, :, :width] if chw else dst[:, :width]
    native.store(img, slot, None, None, chw)
    np.testing.assert_array_equal(slot, img.transpose(2, 0, 1) if chw else img)
    assert not dst[:, :, width:].any() if chw else not dst[:, width:].any()


def test_store_rejects_what_does_not_fit(photo):
    dst = np.empty((3, 10, 10), np.float32)
    with pytest.raises(ValueError, match="does not fit"):
        native.store(photo, dst, (1.0,) * 3, (0.0,) * 3, True)
    with pytest.raises(ValueError, match="alpha/beta"):
        native.store(photo[:10, :10], dst, (1.0,), (0.0,), True)
    with pytest.raises(ValueError, match="dtype"):
        native.store(photo[:10, :10], np.empty((3, 10, 10), np.float64), None, None, True)
    with pytest.raises(ValueError, match="uint8/uint16"):
        native.store(photo[:10, :10].astype(np.float32), dst, None, None, True)


def test_write_sample_native_and_opencv_paths_agree(photo, monkeypatch):
    alpha, beta = affine(3, np.dtype(np.uint8), MEAN, STD)
    spec = OutputSpec(96, 120, 3, "float32", "NCHW", np.dtype(np.uint8), alpha, beta)
    planes = [np.empty((96, 120), np.uint8) for _ in range(3)]
    fast = np.empty((3, 96, 120), np.float32)
    write_sample(photo[:, ::-1], fast, spec, planes)
    monkeypatch.setattr(convert, "_native_store", None)
    slow = np.empty_like(fast)
    write_sample(photo[:, ::-1], slow, spec, planes)
    np.testing.assert_allclose(fast, slow, rtol=0, atol=2e-6)


class _CopyingHorizontalFlip(RandomHorizontalFlip):
    """Not the exact type, so the loader runs its ``apply`` (a real flipped copy)."""


class _CopyingVerticalFlip(RandomVerticalFlip):
    pass


@pytest.mark.parametrize("fixture", ["raw_pack", "jpeg_pack"])
def test_loader_view_flips_equal_copying_flips(fixture, request):
    pack = request.getfixturevalue(fixture)

    def batches(flips):
        pipeline = [RandomResizedCrop(32), *flips, Normalize(MEAN, STD)]
        with pixpack.Loader(pack, 16, pipeline=pipeline, workers=2, seed=3) as loader:
            return [(x.clone(), y.clone()) for x, y in loader]

    fused = batches([RandomHorizontalFlip(), RandomVerticalFlip(p=0.3)])
    copied = batches([_CopyingHorizontalFlip(), _CopyingVerticalFlip(p=0.3)])
    assert len(fused) == len(copied) > 1
    for (xa, ya), (xb, yb) in zip(fused, copied, strict=True):
        assert np.array_equal(xa.numpy(), xb.numpy())  # bit-identical
        assert np.array_equal(ya.numpy(), yb.numpy())


def test_only_trailing_exact_flips_become_views():
    from pixpack.loader import batching
    from pixpack.ops import ColorJitter

    plan = batching.SamplePlan(
        [RandomResizedCrop(32), RandomHorizontalFlip(), RandomVerticalFlip()]
    )
    assert [apply for _, apply in plan.steps] == [batching._flip_h, batching._flip_v]
    plan = batching.SamplePlan([RandomHorizontalFlip(), ColorJitter(0.2), _CopyingVerticalFlip()])
    assert all(apply not in (batching._flip_h, batching._flip_v) for _, apply in plan.steps)
