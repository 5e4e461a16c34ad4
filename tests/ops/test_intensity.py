"""Intensity ops against NumPy references of their formulas (float64), on every pixel
dtype and 1/3/5 channels, plus their edge cases (NaN, constant images, degenerate
ranges) and argument checks. MONAI and torchvision comparisons: test_intensity_parity.py.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pytest

from pixpack import ops
from pixpack.errors import UsageError
from pixpack.ops import intensity as I

DTYPES = ("uint8", "uint16", "int16", "float32")
CHANNELS = (1, 3, 5)
# float32 results of float64 formulas: a few units in the last place of values <= 10.
TOL = {"rtol": 1e-6, "atol": 1e-6}


def ref_window_exact(x: np.ndarray, center: float, width: float) -> np.ndarray:
    return np.clip((x.astype(np.float64) - (center - width / 2)) / width, 0.0, 1.0)


def ref_window_dicom(x: np.ndarray, center: float, width: float) -> np.ndarray:
    """DICOM PS3.3 C.11.2.1.2.1, written as the standard's three cases."""
    x = x.astype(np.float64)
    low = x <= center - 0.5 - (width - 1) / 2
    high = x > center - 0.5 + (width - 1) / 2
    mid = ((x - (center - 0.5)) / max(width - 1, 1e-300) + 0.5) * (1 - 0) + 0
    return np.where(low, 0.0, np.where(high, 1.0, mid))


def ref_scale(x, a_min, a_max, b_min, b_max, clip) -> np.ndarray:
    y = (x.astype(np.float64) - a_min) / (a_max - a_min) * (b_max - b_min) + b_min
    return np.clip(y, min(b_min, b_max), max(b_min, b_max)) if clip else y


@pytest.fixture(params=[(d, c) for d in DTYPES for c in CHANNELS], ids=str)
def image(request, image_of) -> np.ndarray:
    dtype, channels = request.param
    return image_of(dtype, channels, "view")


# ------------------------------------------------------------------ WindowLevel


@pytest.mark.parametrize("center,width", [(40, 400), (-600, 1500), (40, 80), (127.5, 3), (0, 0.5)])
def test_window_linear_exact(image, center, width) -> None:
    out = ops.WindowLevel(center, width).apply(image)
    assert out.dtype == np.float32 and out.shape == image.shape
    np.testing.assert_allclose(out, ref_window_exact(image, center, width), **TOL)
    assert out.min() >= 0.0 and out.max() <= 1.0


@pytest.mark.parametrize("center,width", [(40, 400), (-600, 1500), (40, 80), (100, 2), (10, 1)])
def test_window_dicom_linear(image, center, width) -> None:
    out = ops.WindowLevel(center, width, function="LINEAR").apply(image)
    np.testing.assert_allclose(out, ref_window_dicom(image, center, width), **TOL)


def test_window_conventions_on_integer_levels() -> None:
    """LINEAR_EXACT spans c - w/2 .. c + w/2 (w + 1 levels, inclusive); DICOM LINEAR
    maps the w integer levels c - w/2 .. c + w/2 - 1 onto 0 .. 1."""
    x = np.arange(-170, 250, dtype=np.int16).reshape(1, -1, 1)
    exact = ops.WindowLevel(40, 400).apply(x)[0, :, 0]
    dicom = ops.WindowLevel(40, 400, function="linear").apply(x)[0, :, 0]
    level = dict(zip(x.ravel().tolist(), range(x.size), strict=True))
    assert exact[level[-160]] == 0 and exact[level[240]] == 1 and exact[level[40]] == 0.5
    assert 0 < exact[level[-159]] and exact[level[239]] < 1
    assert dicom[level[-160]] == 0 and dicom[level[239]] == 1 and 0 < dicom[level[-159]]
    assert dicom[level[40]] == pytest.approx(0.5 + 0.5 / 399)
    assert np.abs(exact - dicom).max() <= 1 / 399 + 1e-6  # the conventions differ by ~1/w


def test_window_dicom_width_one_is_a_threshold() -> None:
    x = np.array([[[38.0], [39.5], [39.6], [np.nan], [41.0]]], np.float32)
    out = ops.WindowLevel(40, 1, function="linear").apply(x)[0, :, 0]
    np.testing.assert_array_equal(out, [0, 0, 1, np.nan, 1])


def test_window_presets_and_equality() -> None:
    assert ops.WindowLevel("lung") == ops.WindowLevel(-600, 1500)
    assert ops.WindowLevel("Brain").windows == ((40.0, 80.0),)
    assert ops.WindowLevel(windows=["lung"]) == ops.WindowLevel("lung")
    for name, (center, width) in ops.WINDOW_PRESETS.items():
        op = ops.WindowLevel(name)
        assert (op.center, op.width) == (center, width)


def test_window_presets_are_documented() -> None:
    text = (Path(__file__).parents[2] / "docs" / "ops.md").read_text()
    for name, (center, width) in ops.WINDOW_PRESETS.items():
        row = rf"\| `{name}` \| {center:g} \| {width:g} \|"
        assert re.search(row, text), f"docs/ops.md lacks the preset row for {name}"


@pytest.mark.parametrize("channels", CHANNELS)
def test_several_windows_become_channels(image_of, channels: int) -> None:
    image = image_of("int16", channels, "view")
    windows = ["brain", "subdural", (40, 400)]
    op = ops.WindowLevel(windows=windows)
    out = op.apply(image)
    assert out.shape == (*image.shape[:2], channels * 3) == op.output_shape(image.shape)
    for c in range(channels):
        for k, (center, width) in enumerate(op.windows):
            np.testing.assert_allclose(
                out[:, :, c * 3 + k], ref_window_exact(image[:, :, c], center, width), **TOL
            )
    assert op.output_shape((ops.VARIABLE, ops.VARIABLE, 1)) == (ops.VARIABLE, ops.VARIABLE, 3)


def test_window_nan_stays_nan() -> None:
    x = np.array([[[np.nan, -2000.0], [50.0, 5000.0]]], np.float32)
    out = ops.WindowLevel(windows=[(40, 400), (0, 100)]).apply(x)
    assert np.isnan(out[0, 0, :2]).all() and not np.isnan(out[0, 0, 2:]).any()
    np.testing.assert_array_equal(out[0, 0, 2:], [0.0, 0.0])
    np.testing.assert_allclose(out[0, 1], [0.525, 1.0, 1.0, 1.0], rtol=1e-7)


# ------------------------------------------------------------ ScaleIntensityRange


@pytest.mark.parametrize(
    "a_min,a_max,b_min,b_max,clip",
    [
        (-1000, 1000, 0.0, 1.0, True),
        (0, 255, -1.0, 1.0, False),
        (100, 4000, 0.0, 255.0, True),
        (0, 4095, 1.0, 0.0, True),  # inverted output
        (3000, -500, 0.0, 1.0, True),  # inverted input
        (-1024, 3071, -0.5, 2.5, False),
    ],
)
def test_scale_intensity_range(image, a_min, a_max, b_min, b_max, clip) -> None:
    out = ops.ScaleIntensityRange(a_min, a_max, b_min, b_max, clip).apply(image)
    assert out.dtype == np.float32 and out.shape == image.shape
    want = ref_scale(image, a_min, a_max, b_min, b_max, clip)
    np.testing.assert_allclose(out, want, rtol=1e-6, atol=1e-6 * max(abs(b_max), abs(b_min), 1))


def test_scale_intensity_range_is_a_window() -> None:
    """WindowLevel(c, w) is ScaleIntensityRange(c - w/2, c + w/2), bit for bit."""
    x = np.arange(-1200, 3000, 3, dtype=np.int16).reshape(20, 70, 1)
    np.testing.assert_array_equal(
        ops.WindowLevel(40, 400).apply(x), ops.ScaleIntensityRange(-160, 240).apply(x)
    )


def test_scale_degenerate_range_in_the_kernel() -> None:
    """``a_min == a_max`` (only reachable through percentiles): MONAI's
    ``x - a_min + b_min``, clipped when asked."""
    x = np.array([[[3], [5], [9]]], np.uint8)
    np.testing.assert_array_equal(I.scale_range(x, 5, 5, 0.0, 1.0, False)[0, :, 0], [-2, 0, 4])
    np.testing.assert_array_equal(I.scale_range(x, 5, 5, 0.0, 1.0, True)[0, :, 0], [0, 0, 1])


# ---------------------------------------------------- ScaleIntensityRangePercentiles


def ref_percentiles(x, lower, upper, b_min, b_max, clip, relative, channel_wise):
    if relative:
        b_min, b_max = (
            (b_max - b_min) * lower / 100 + b_min,
            (b_max - b_min) * upper / 100 + b_min,
        )
    planes = [x[:, :, c : c + 1] for c in range(x.shape[2])] if channel_wise else [x]
    out = []
    for p in planes:
        a_min, a_max = np.nanpercentile(p.astype(np.float64), [lower, upper])
        out.append(ref_scale(p, a_min, a_max, b_min, b_max, clip))
    return np.concatenate(out, 2)


@pytest.mark.parametrize(
    "lower,upper,b_min,b_max,clip,relative,channel_wise",
    [
        (1, 99, 0.0, 1.0, True, False, False),
        (0, 100, 0.0, 1.0, True, False, True),
        (10, 90, 0.0, 200.0, False, True, False),
        (2.5, 97.5, -1.0, 1.0, True, True, True),
        (5, 95, 1.0, 0.0, True, False, True),
    ],
)
def test_percentiles(image, lower, upper, b_min, b_max, clip, relative, channel_wise) -> None:
    args = (lower, upper, b_min, b_max, clip, relative, channel_wise)
    out = ops.ScaleIntensityRangePercentiles(*args).apply(image)
    assert out.dtype == np.float32 and out.shape == image.shape
    np.testing.assert_allclose(out, ref_percentiles(image, *args), rtol=1e-5, atol=2e-5)


def test_percentiles_monai_docstring_example() -> None:
    """The two outputs printed in MONAI's ScaleIntensityRangePercentiles docstring."""
    x = np.tile(np.arange(1, 6, dtype=np.float32), (6, 1))[:, :, None]
    plain = ops.ScaleIntensityRangePercentiles(10, 90, 0, 200, clip=False).apply(x)
    np.testing.assert_allclose(plain[0, :, 0], [0, 50, 100, 150, 200], atol=1e-4)
    rel = ops.ScaleIntensityRangePercentiles(10, 90, 0, 200, clip=False, relative=True).apply(x)
    np.testing.assert_allclose(rel[0, :, 0], [20, 60, 100, 140, 180], atol=1e-4)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("clip", [True, False])
def test_percentiles_constant_image_gives_b_min(dtype: str, clip: bool) -> None:
    x = np.full((8, 9, 3), 7, dtype)
    for channel_wise in (False, True):
        op = ops.ScaleIntensityRangePercentiles(1, 99, 0.25, 0.75, clip, channel_wise=channel_wise)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            out = op.apply(x)
        np.testing.assert_array_equal(out, np.full(x.shape, 0.25, np.float32))


def test_percentiles_constant_channel_among_others() -> None:
    x = np.stack([np.full((4, 4), 100, np.uint16), np.arange(16, dtype=np.uint16).reshape(4, 4)], 2)
    out = ops.ScaleIntensityRangePercentiles(0, 100, channel_wise=True).apply(x)
    np.testing.assert_array_equal(out[:, :, 0], 0.0)
    np.testing.assert_allclose(out[:, :, 1].ravel(), np.arange(16) / 15, atol=1e-7)


def test_percentiles_ignore_nan_and_keep_it() -> None:
    x = np.array([[[1.0], [np.nan], [3.0], [5.0]]], np.float32)
    out = ops.ScaleIntensityRangePercentiles(0, 100).apply(x)[0, :, 0]
    np.testing.assert_array_equal(out, [0.0, np.nan, 0.5, 1.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        allnan = ops.ScaleIntensityRangePercentiles(0, 100).apply(np.full((2, 2, 1), np.nan, "f4"))
    assert np.isnan(allnan).all()


# ------------------------------------------------------------------------ ToFloat


@pytest.mark.parametrize(
    "dtype,bits,top",
    [
        ("uint8", 8, 255),
        ("uint8", 6, 63),
        ("uint16", 12, 4095),
        ("uint16", 16, 65535),
        ("uint16", 10, 1023),
        ("float32", 12, 4095),
    ],
)
def test_to_float_unsigned(dtype: str, bits: int, top: int) -> None:
    x = np.arange(top + 1, dtype=dtype).reshape(1, -1, 1)
    out = ops.ToFloat(bits).apply(x)
    assert out.dtype == np.float32 and out[0, 0, 0] == 0 and out[0, -1, 0] == 1
    np.testing.assert_allclose(out[0, :, 0], np.arange(top + 1) / top, rtol=2e-7, atol=0)
    np.testing.assert_array_equal(out, x.astype(np.float32) * np.float32(1 / top))


def test_to_float_twelve_bits_fill_the_range() -> None:
    """The issue's complaint: 12-bit data scaled by 65535 land in [0, 0.0625]."""
    x = np.array([[[0], [2048], [4095]]], np.uint16)
    assert ops.ToFloat().apply(x).max() == pytest.approx(4095 / 65535)
    np.testing.assert_allclose(ops.ToFloat(bits=12).apply(x).ravel(), [0, 2048 / 4095, 1])


@pytest.mark.parametrize("bits", [16, 12, 2])
def test_to_float_signed(bits: int) -> None:
    m = 2 ** (bits - 1) - 1
    x = np.array([[[-m - 1], [-m], [0], [1], [m]]], np.int16)
    out = ops.ToFloat(bits).apply(x)[0, :, 0]
    np.testing.assert_allclose(out, np.array([-m - 1, -m, 0, 1, m]) / m, rtol=2e-7)
    assert out[1] == -1 and out[-1] == 1


def test_to_float_defaults_and_float_input(image) -> None:
    out = ops.ToFloat().apply(image)
    if image.dtype == np.float32:
        np.testing.assert_array_equal(out, image)
    else:
        top = {"uint8": 255, "uint16": 65535, "int16": 32767}[image.dtype.name]
        np.testing.assert_allclose(out, image / top, rtol=2e-7)


def test_to_float_does_not_clip_out_of_range_values() -> None:
    x = np.array([[[5000]]], np.uint16)
    assert ops.ToFloat(12).apply(x)[0, 0, 0] == pytest.approx(5000 / 4095)


@pytest.mark.parametrize("dtype,bits", [("uint8", 9), ("uint8", 16), ("int16", 1)])
def test_to_float_refuses_more_bits_than_the_dtype(dtype: str, bits: int) -> None:
    with pytest.raises(UsageError, match=f"ToFloat\\(bits={bits}\\)"):
        ops.ToFloat(bits).apply(np.zeros((2, 2, 1), dtype))


# ------------------------------------------------------------------ argument checks


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda: ops.WindowLevel(40, 0), "width must be positive"),
        (lambda: ops.WindowLevel(40, -5), "width must be positive"),
        (lambda: ops.WindowLevel(40, 0.5, function="linear"), r"width must be >= 1"),
        (lambda: ops.WindowLevel(40), "give center and width"),
        (lambda: ops.WindowLevel(), "give center and width"),
        (lambda: ops.WindowLevel("lungs"), "unknown preset 'lungs'.*'lung'"),
        (lambda: ops.WindowLevel(40, 400, windows=["lung"]), "either center/width or windows"),
        (lambda: ops.WindowLevel(windows="lung"), r"for one preset use WindowLevel\('lung'\)"),
        (lambda: ops.WindowLevel(windows=[]), "windows is empty"),
        (lambda: ops.WindowLevel(windows=[(1, 2, 3)]), r"\(center, width\) pair or a preset"),
        (lambda: ops.WindowLevel(40, float("nan")), "must be finite"),
        (lambda: ops.WindowLevel(40, 400, function="sigmoid"), "function must be one of"),
        (lambda: ops.ScaleIntensityRange(5, 5), "a_min and a_max are equal"),
        (lambda: ops.ScaleIntensityRange("0", 1), "a_min must be a number"),
        (lambda: ops.ScaleIntensityRange(0, 1, None, None), "b_min=0.0, b_max=1.0 with clip"),
        (lambda: ops.ScaleIntensityRangePercentiles(50, 50), "0 <= lower < upper <= 100"),
        (lambda: ops.ScaleIntensityRangePercentiles(90, 10), "swap b_min and b_max"),
        (lambda: ops.ScaleIntensityRangePercentiles(-1, 99), "0 <= lower < upper <= 100"),
        (lambda: ops.ScaleIntensityRangePercentiles(1, 101), "0 <= lower < upper <= 100"),
        (lambda: ops.ToFloat(0), "bits must be an int from 1 to 16"),
        (lambda: ops.ToFloat(17), "bits must be an int from 1 to 16"),
        (lambda: ops.ToFloat(12.0), "bits must be an int from 1 to 16"),
        (lambda: ops.ToFloat(True), "bits must be an int from 1 to 16"),
    ],
)
def test_bad_arguments_say_how_to_fix(make, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        make()


@pytest.mark.parametrize(
    "op",
    [
        ops.WindowLevel("bone"),
        ops.ScaleIntensityRange(0, 1),
        ops.ScaleIntensityRangePercentiles(1, 99),
        ops.ToFloat(),
    ],
    ids=repr,
)
@pytest.mark.parametrize("dtype", ["float64", "int32", "bool"])
def test_unsupported_pixel_dtypes_are_refused(op, dtype: str) -> None:
    with pytest.raises(UsageError, match="uint8, uint16, int16, float32.*got " + dtype):
        op.apply(np.zeros((2, 2, 1), dtype))


def test_in_a_pipeline(image_of) -> None:
    """Intensity ops run after the geometric ones and declare their output."""
    image = image_of("int16", 1, "view")
    pipe = ops.Pipeline([ops.CenterCrop(32), ops.WindowLevel(windows=["brain", "lung", "bone"])])
    out = pipe.augment(image, np.random.default_rng(0))
    assert out.shape == pipe.output_shape(image.shape) == (32, 32, 3)
    assert pipe.check_fixed_size(1) == (32, 32, 3)
    assert out.dtype == np.float32
    assert ops.op_output_dtype(pipe.ops[1], np.int16) == np.float32
    assert ops.op_output_dtype(pipe.ops[0], np.int16) == np.int16


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int16"])
def test_integer_percentiles_equal_numpys(dtype: str) -> None:
    """The histogram path gives np.percentile's values exactly (sizes 1 to 5000,
    narrow and full-range data, q from 0 to 100)."""
    rng = np.random.default_rng(7)
    info = np.iinfo(dtype)
    qs = [(0, 100), (1, 99), (2.5, 97.5), (10, 90), (33.3, 66.7), (0.01, 99.99), (49, 50)]
    for trial in range(60):
        n = int(rng.integers(1, 5000))
        lo, hi = (info.min, info.max) if trial % 3 == 0 else (info.min // 2 + 7, info.min // 2 + 40)
        if trial % 3 == 0 and dtype == "int16":  # numpy's int16 lerp can overflow beyond this
            lo, hi = -16000, 16000
        x = rng.integers(lo, hi, n, endpoint=True).astype(dtype).reshape(1, n, 1)
        for lower, upper in qs:
            got = I._percentiles(x, lower, upper)
            assert got == tuple(np.percentile(x, (lower, upper)).tolist()), (n, lower, upper)


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_through_the_loader(tmp_path, photos, layout: str) -> None:
    """An int16 CT pack through the Loader: the batch holds the ops' float32 values,
    unscaled, and Normalize acts in their units."""
    import pixpack

    ct = [p[:48, :64, :1].astype(np.int16) * 16 - 1024 for p in photos[:4]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pixpack.pack([(c, 0) for c in ct], tmp_path / "ct.pixpack", quiet=True, workers=1)
    pack = pixpack.open(tmp_path / "ct.pixpack")
    windows = ops.WindowLevel(windows=["brain", "subdural", "bone"])
    want = np.stack([windows.apply(c) for c in ct])
    if layout == "NCHW":
        want = want.transpose(0, 3, 1, 2)
    for tail, expected in (([], want), ([ops.Normalize(0.5, 0.25)], (want - 0.5) / 0.25)):
        pipeline = [ops.CenterCrop((48, 64)), windows, *tail]
        loader = pixpack.Loader(pack, 4, shuffle=False, workers=1, layout=layout,
                                dtype="float32", pipeline=pipeline)  # fmt: skip
        batch, _ = next(iter(loader))
        np.testing.assert_allclose(batch.numpy(), expected, rtol=1e-6, atol=1e-6)
