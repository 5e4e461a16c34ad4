"""int16, float32 and multichannel samples (issue 16 items 2 and 5): stored exactly,
batched without wrapping or crushing, and refused where an op cannot handle them."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import pixpack
from pixpack import ops
from pixpack.errors import UsageError


def _pack(tmp_path, name, images, mode="raw"):
    items = [(img, i % 2) for i, img in enumerate(images)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pixpack.pack(items, tmp_path / name, mode=mode, quiet=True, workers=1)
    return pixpack.open(tmp_path / name), [str(w.message) for w in caught]


@pytest.fixture
def ct_slices(photos):
    """Photos as 12-bit CT-like slices in Hounsfield units (-1024..3071), int16."""
    return [(p[:48, :64, 0].astype(np.int16) * 16 - 1024) for p in photos[:6]]


@pytest.mark.parametrize("mode", ["raw", "jpeg"])
def test_int16_float32_and_many_channels_round_trip_bit_exact(tmp_path, ct_slices, mode):
    rng = np.random.default_rng(0)
    images = [
        ct_slices[0],
        rng.normal(100.0, 50.0, (20, 30, 1)).astype(np.float32),
        rng.integers(0, 65536, (10, 12, 7), dtype=np.uint16),  # 7-channel microscopy
        rng.integers(0, 256, (9, 8, 16), dtype=np.uint8),
    ]
    pack, messages = _pack(tmp_path, "exact.pixpack", images, mode)
    for i, image in enumerate(images):
        got = pack[i][0]
        want = image if image.ndim == 3 else image[:, :, None]
        assert got.dtype == want.dtype and np.array_equal(got, want)
    assert pack.sql("SELECT dtype, channels FROM samples")[1] == [
        ("int16", 1), ("float32", 1), ("uint16", 7), ("uint8", 16),
    ]  # fmt: skip
    assert pixpack.verify(pack.path).ok
    if mode == "jpeg":  # never silently: the reason is in the warning
        assert any("4 of 4 image(s) stored raw" in m and "signed, float" in m for m in messages)


def test_int16_batches_keep_hounsfield_units(tmp_path, ct_slices):
    pack, _ = _pack(tmp_path, "ct.pixpack", ct_slices)
    want = torch.from_numpy(np.stack(ct_slices[:4])[:, None])
    for dtype, torch_dtype in (("uint8", torch.int16), ("int32", torch.int32),
                               ("float32", torch.float32)):  # fmt: skip
        x, _ = next(iter(pixpack.Loader(pack, 4, dtype=dtype, shuffle=False, workers=1,
                                        pipeline=[ops.CenterCrop((48, 64))])))  # fmt: skip
        assert x.dtype == torch_dtype and torch.equal(x.to(torch.int32), want.to(torch.int32))
    # Normalize is in the pixels' own units for int16: (HU - 40) / 400.
    x, _ = next(iter(pixpack.Loader(pack, 4, shuffle=False, workers=1,
                                    pipeline=[ops.CenterCrop((48, 64)),
                                              ops.Normalize(40.0, 400.0)])))  # fmt: skip
    torch.testing.assert_close(x, (want.float() - 40) / 400, atol=1e-5, rtol=0)


@pytest.mark.parametrize("dtype", [np.int16, np.float32])
@pytest.mark.parametrize("channels", [1, 5])
def test_geometry_ops_keep_the_pixel_type_and_channels(tmp_path, dtype, channels):
    rng = np.random.default_rng(1)
    images = [(rng.random((40, 50, channels)) * 2000 - 1000).astype(dtype) for _ in range(4)]
    pack, _ = _pack(tmp_path, "g.pixpack", images)
    pipeline = [ops.RandomResizedCrop(24), ops.RandomHorizontalFlip(), ops.RandomRotation(10)]
    x, _ = next(iter(pixpack.Loader(pack, 4, dtype="uint8", pipeline=pipeline, workers=2)))
    assert x.shape == (4, channels, 24, 24)
    assert x.dtype == {np.int16: torch.int16, np.float32: torch.float32}[dtype]
    assert float(x.min()) >= -1000 and float(x.max()) <= 1000  # interpolated, not wrapped
    again, _ = next(iter(pixpack.Loader(pack, 4, dtype="uint8", pipeline=pipeline, workers=1)))
    assert torch.equal(x, again)  # deterministic whatever the threads


def test_uint16_as_int32_reduces_and_float_is_scaled_as_before(tmp_path):
    images = [np.full((8, 8), v, np.uint16) for v in (0, 4095, 40000, 65535)]
    pack, _ = _pack(tmp_path, "u16.pixpack", images)
    kw = dict(shuffle=False, workers=1, pipeline=[ops.CenterCrop(8)])
    x, _ = next(iter(pixpack.Loader(pack, 4, dtype="int32", **kw)))
    assert x.amax(dim=(1, 2, 3)).tolist() == [0, 4095, 40000, 65535]  # torch.uint16 cannot
    f, _ = next(iter(pixpack.Loader(pack, 4, dtype="float32", **kw)))
    assert f[:, 0, 0, 0].tolist() == pytest.approx([0, 4095 / 65535, 40000 / 65535, 1.0])


def test_what_cannot_batch_is_refused_when_the_loader_is_built(tmp_path, ct_slices):
    mixed, _ = _pack(tmp_path, "mixed.pixpack", [ct_slices[0], ct_slices[1].astype(np.float32)])
    with pytest.raises(UsageError, match="int16 and float32 pixels cannot share a batch"):
        pixpack.Loader(mixed, 2, pipeline=[ops.CenterCrop(8)])
    ct, _ = _pack(tmp_path, "ct.pixpack", ct_slices)
    with pytest.raises(UsageError, match="ColorJitter works on 8- or 16-bit RGB"):
        pixpack.Loader(ct, 2, pipeline=[ops.CenterCrop(8), ops.ColorJitter(0.3)])
    with pytest.raises(UsageError, match="Normalize needs a float dtype"):
        pixpack.Loader(ct, 2, dtype="int32", pipeline=[ops.CenterCrop(8), ops.Normalize(0, 1)])
    photos8, _ = _pack(tmp_path, "p8.pixpack", [np.zeros((8, 8, 3), np.uint8)] * 2)
    with pytest.raises(UsageError, match="0-255 units"):
        pixpack.Loader(photos8, 2, pipeline=[ops.Normalize((123.7, 116.3, 103.5), (58, 57, 57))])


def test_pack_dataset_with_torchvision_never_wraps_16_bit(tmp_path, ct_slices):
    import torchvision.transforms as T

    u16 = [np.full((4, 4), v, np.uint16) for v in (40000, 65535)]
    pack, _ = _pack(tmp_path, "u16.pixpack", [*u16, ct_slices[0][:4, :4].copy()])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchvision's own deprecation notes
        to_tensor = T.ToTensor()
        assert int(to_tensor(pixpack.PackDataset(pack)[0][0]).max()) == 40000
        assert int(to_tensor(pixpack.PackDataset(pack)[1][0]).max()) == 65535
        assert int(to_tensor(pixpack.PackDataset(pack)[2][0]).min()) == int(
            ct_slices[0][:4, :4].min()
        )


def test_a_subset_is_batched_by_its_own_samples(tmp_path):
    """A pack of 1-channel and 5-channel images cannot batch whole, but its 5-channel
    subset (a query) can: the checks look at the samples the loader reads."""
    rng = np.random.default_rng(2)
    images = [
        rng.integers(0, 65535, (16, 16, 5 if i % 2 else 4), dtype=np.uint16) for i in range(6)
    ]
    pack, _ = _pack(tmp_path, "mixed.pixpack", images)
    with pytest.raises(UsageError, match="gives 4-channel images but the batch has channels=5"):
        pixpack.Loader(pack, 2, pipeline=[ops.RandomCrop(8)])
    subset = pack.query("channels = 5")
    x, _ = next(iter(pixpack.Loader(subset, 3, pipeline=[ops.RandomCrop(8)], workers=1)))
    assert x.shape == (3, 5, 8, 8) and sorted(subset.indices.tolist()) == [1, 3, 5]
