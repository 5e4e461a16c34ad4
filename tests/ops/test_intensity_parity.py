"""Intensity ops against MONAI's, torchvision's and pydicom's own code (each test is
skipped where its library is absent).

MONAI runs on CHW tensors; uint16 goes to it as int32 (torch's uint16 lacks arithmetic)
and integer images go to its percentile transform as float32 (torch.quantile needs
floats). Where MONAI is absent, test_intensity.py still checks the values its
docstring prints.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from pixpack import ops

monai_intensity = pytest.importorskip("monai.transforms.intensity.array")
torch = pytest.importorskip("torch")

DTYPES = ("uint8", "uint16", "int16", "float32")


def _monai(transform, image: np.ndarray, *, floats: bool = False) -> np.ndarray:
    chw = np.ascontiguousarray(np.moveaxis(image, 2, 0))
    if chw.dtype == np.uint16 or (floats and chw.dtype != np.float32):
        chw = chw.astype(np.float32 if floats else np.int32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MONAI warns on a_min == a_max
        out = transform(torch.from_numpy(chw))
    return np.moveaxis(np.asarray(out), 0, 2)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("channels", [1, 3, 5])
@pytest.mark.parametrize(
    "args",
    [(-1000, 1000, 0.0, 1.0, True), (0, 255, -1.0, 1.0, False), (-160, 240, 0.0, 255.0, True)],
)
def test_scale_intensity_range_matches_monai_bit_for_bit(image_of, dtype, channels, args) -> None:
    image = image_of(dtype, channels, "view")
    ours = ops.ScaleIntensityRange(*args).apply(image)
    floats = (float(args[0]), float(args[1]), *args[2:])  # see the wrap-around test below
    theirs = _monai(monai_intensity.ScaleIntensityRange(*floats), image)
    assert theirs.dtype == ours.dtype == np.float32
    np.testing.assert_array_equal(ours, theirs)


def test_monai_wraps_uint8_with_integer_bounds() -> None:
    """MONAI subtracts an int a_min from a uint8 tensor in uint8 (wrapping mod 256);
    pixpack always computes in float32."""
    x = np.array([[[0], [100]]], np.uint8)
    theirs = _monai(monai_intensity.ScaleIntensityRange(-1000, 1000, 0.0, 1.0), x).ravel()
    np.testing.assert_allclose(theirs, [(1000 % 256) / 2000, (1100 % 256) / 2000])
    np.testing.assert_allclose(
        ops.ScaleIntensityRange(-1000, 1000).apply(x).ravel(), [0.5, 0.55], rtol=1e-7
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_window_level_is_monai_scale_intensity_range(image_of, dtype) -> None:
    image = image_of(dtype, 1, "view")
    for name, (center, width) in ops.WINDOW_PRESETS.items():
        monai = monai_intensity.ScaleIntensityRange(
            center - width / 2, center + width / 2, 0.0, 1.0, clip=True
        )
        np.testing.assert_array_equal(ops.WindowLevel(name).apply(image), _monai(monai, image))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize(
    "args",
    [
        (1, 99, 0.0, 1.0, True, False, False),
        (5, 95, 0.0, 200.0, False, True, True),
        (0, 100, -1.0, 1.0, True, False, True),
    ],
)
def test_percentiles_match_monai(image_of, dtype, channels, args) -> None:
    image = image_of(dtype, channels, "view")
    ours = ops.ScaleIntensityRangePercentiles(*args).apply(image)
    theirs = _monai(monai_intensity.ScaleIntensityRangePercentiles(*args), image, floats=True)
    # torch.quantile works in float32, numpy's percentile in float64.
    scale = max(abs(args[2]), abs(args[3]), 1.0)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5 * scale)


def test_percentiles_constant_image_matches_monai() -> None:
    image = np.full((6, 7, 2), 300.0, np.float32)
    for clip in (True, False):
        args = (2, 98, 0.1, 0.9, clip)
        ours = ops.ScaleIntensityRangePercentiles(*args).apply(image)
        np.testing.assert_array_equal(
            ours, _monai(monai_intensity.ScaleIntensityRangePercentiles(*args), image)
        )


def test_documented_differences_from_monai() -> None:
    """Inverted b range with clip, and NaN: MONAI returns constants/NaN everywhere."""
    x = np.array([[[0.0], [1000.0], [4095.0]]], np.float32)
    ours = ops.ScaleIntensityRange(0, 4095, 1.0, 0.0).apply(x).ravel()
    theirs = _monai(monai_intensity.ScaleIntensityRange(0, 4095, 1.0, 0.0, clip=True), x).ravel()
    np.testing.assert_allclose(ours, [1.0, 1 - 1000 / 4095, 0.0], rtol=1e-6)
    np.testing.assert_array_equal(theirs, [0.0, 0.0, 0.0])  # torch.clamp(min > max)
    n = np.array([[[1.0], [np.nan], [3.0]]], np.float32)
    theirs = _monai(monai_intensity.ScaleIntensityRangePercentiles(0, 100, 0.0, 1.0), n)
    assert np.isnan(theirs).all()
    np.testing.assert_array_equal(
        ops.ScaleIntensityRangePercentiles(0, 100).apply(n).ravel(), [0.0, np.nan, 1.0]
    )


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int16"])
def test_to_float_is_torchvision_to_dtype(image_of, dtype) -> None:
    v2 = pytest.importorskip("torchvision.transforms.v2")
    image = image_of(dtype, 3, "contiguous")
    chw = torch.from_numpy(np.ascontiguousarray(np.moveaxis(image, 2, 0)))
    theirs = v2.ToDtype(torch.float32, scale=True)(chw).numpy()
    np.testing.assert_array_equal(ops.ToFloat().apply(image), np.moveaxis(theirs, 0, 2))


@pytest.mark.parametrize("function", ["LINEAR", "LINEAR_EXACT"])
@pytest.mark.parametrize("dtype", ["int16", "float32", "uint8"])
def test_window_level_matches_pydicom_apply_windowing(image_of, function, dtype) -> None:
    """pydicom's VOI windowing of the same (center, width), into a 0..1 output range
    (BitsStored 1, unsigned: y_min 0, y_max 1), for both DICOM functions."""
    processing = pytest.importorskip("pydicom.pixels.processing")
    from pydicom.dataset import Dataset

    image = image_of(dtype, 1, "contiguous")
    for center, width in [*ops.WINDOW_PRESETS.values(), (100, 1), (120.5, 7)]:
        ds = Dataset()
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsStored, ds.PixelRepresentation = 1, 0
        ds.WindowCenter, ds.WindowWidth, ds.VOILUTFunction = center, width, function
        theirs = processing.apply_windowing(image[:, :, 0].copy(), ds)
        ours = ops.WindowLevel(center, width, function=function).apply(image)[:, :, 0]
        np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-6)
