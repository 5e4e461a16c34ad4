"""JPEG region / DCT-scaled decoding against Pillow, on real photographs.

Measured on this machine (system libjpeg-turbo 2.1.5 for the extension, Pillow's
bundled 3.2.0): every comparison below is bit-exact, so the tests assert equality
rather than a tolerance. ISLOW IDCT, fancy upsampling and the scaled IDCTs are
integer code that is identical across these versions.
"""

from __future__ import annotations

import io
import threading
import time

import numpy as np
import pytest
from PIL import Image

from pixpack import sample_data
from pixpack.errors import UsageError
from pixpack.read import jpeg

needs_native = pytest.mark.skipif(
    not jpeg.native_available(), reason="pixpack._native._jpeg was not built"
)


def _encode(image: Image.Image, **kwargs) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "JPEG", **kwargs)
    return buf.getvalue()


@pytest.fixture(scope="module")
def jpegs(photos: list[np.ndarray]) -> dict[str, bytes]:
    """Photo JPEGs covering the layouts a decoder must get right."""
    import simplejpeg

    rng = np.random.default_rng(7)
    out: dict[str, bytes] = {}
    odd = sample_data.make_photo(photos, (501, 377), rng)
    out["420_q75"] = _encode(odd, quality=75, subsampling=2)
    out["444_q95"] = _encode(odd, quality=95, subsampling=0)
    out["422_prog"] = _encode(
        sample_data.make_photo(photos, (377, 501), rng),
        quality=85,
        subsampling=1,
        progressive=True,
    )
    out["420_prog_q90"] = _encode(odd, quality=90, subsampling=2, progressive=True)
    out["gray"] = _encode(odd.convert("L"), quality=85)
    out["restart_420"] = _encode(odd, quality=80, subsampling=2, restart_marker_rows=1)
    arr = np.asarray(sample_data.make_photo(photos, (333, 250), rng))
    out["sj_411"] = simplejpeg.encode_jpeg(arr, quality=85, colorsubsampling="411")
    out["sj_440"] = simplejpeg.encode_jpeg(arr, quality=85, colorsubsampling="440")
    out["tiny_7x13"] = _encode(sample_data.make_photo(photos, (13, 7), rng), quality=90)
    return out


def _pillow(data: bytes, scale: int = 1) -> np.ndarray | None:
    """Pillow's decode at 1/scale; None where draft() cannot reach it (a side < scale)."""
    image = Image.open(io.BytesIO(data))
    if min(image.size) < scale:
        return None
    if scale > 1:
        image.draft(image.mode, (image.width // scale, image.height // scale))
    arr = np.asarray(image)
    return arr[..., None] if arr.ndim == 2 else arr


def _boxes(height: int, width: int, rng: np.random.Generator, n: int) -> list[tuple]:
    """Random boxes plus the corner cases: 1 pixel, whole image, edge-touching."""
    boxes = [
        (0, 0, height, width),
        (0, 0, 1, 1),
        (height - 1, width - 1, 1, 1),
        (0, width - 1, height, 1),
        (height - 1, 0, 1, width),
        (height // 2, width // 2, height - height // 2, width - width // 2),
    ]
    for _ in range(n):
        h = int(rng.integers(1, height + 1))
        w = int(rng.integers(1, width + 1))
        boxes.append(
            (int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w)
        )
    return boxes


# -- exactness against Pillow ------------------------------------------------------


@needs_native
def test_full_decode_equals_pillow(jpegs: dict[str, bytes]) -> None:
    for name, data in jpegs.items():
        ref = _pillow(data)
        got = jpeg.decode_jpeg(data)
        assert got.shape == ref.shape, name
        assert got.dtype == np.uint8 and got.flags.c_contiguous
        np.testing.assert_array_equal(got, ref, err_msg=name)


@needs_native
@pytest.mark.parametrize("scale", [2, 4, 8])
def test_scaled_decode_equals_pillow_draft(jpegs: dict[str, bytes], scale: int) -> None:
    for name, data in jpegs.items():
        ref = _pillow(data, scale)
        if ref is None:
            continue
        h, w, _ = jpeg.jpeg_shape(data)
        assert ref.shape[:2] == (-(-h // scale), -(-w // scale)), name
        np.testing.assert_array_equal(jpeg.decode_jpeg(data, scale=scale), ref, err_msg=name)


@needs_native
@pytest.mark.parametrize("scale", [1, 2, 4, 8])
def test_region_equals_sliced_full_decode(jpegs: dict[str, bytes], scale: int) -> None:
    """Skip + crop + early stop change no pixel, including the upsampled crop edges.

    The reference is the full decode at the same scale (equal to Pillow's, above).
    """
    rng = np.random.default_rng(scale)
    for name, data in jpegs.items():
        full = jpeg.decode_jpeg(data, scale=scale)
        height, width, _ = jpeg.jpeg_shape(data)
        for region in _boxes(height, width, rng, 40):
            y, x, h, w = jpeg.scaled_box(region, scale)
            got = jpeg.decode_jpeg(data, region=region, scale=scale)
            assert got.shape == jpeg.output_shape(
                (height, width, full.shape[2]), region=region, scale=scale
            )
            np.testing.assert_array_equal(
                got, full[y : y + h, x : x + w], err_msg=f"{name} {region}"
            )


@needs_native
def test_large_photo_region(photos: list[np.ndarray]) -> None:
    """Skips over many iMCU rows of a 1600x1200 mosaic, baseline and progressive."""
    image = sample_data.make_photo(photos, (1600, 1200), np.random.default_rng(3))
    for progressive in (False, True):
        data = _encode(image, quality=90, progressive=progressive)
        for scale in (1, 4):
            full = _pillow(data, scale)
            region = (701, 333, 413, 999)
            y, x, h, w = jpeg.scaled_box(region, scale)
            got = jpeg.decode_jpeg(data, region=region, scale=scale)
            np.testing.assert_array_equal(got, full[y : y + h, x : x + w])


# -- rounding, shapes and the output buffer ---------------------------------------------


@pytest.mark.parametrize("scale", [1, 2, 4, 8])
def test_scaled_box_covers_region_minimally(scale: int) -> None:
    for top in range(0, 20):
        for size in range(1, 20):
            y, _, h, _ = jpeg.scaled_box((top, 0, size, 1), scale)
            assert y * scale <= top < (y + 1) * scale  # the first row holds `top`
            assert (y + h) * scale >= top + size > (y + h - 1) * scale  # the last holds the end


def test_output_shape() -> None:
    assert jpeg.output_shape((377, 501, 3)) == (377, 501, 3)
    assert jpeg.output_shape((377, 501, 3), scale=8) == (48, 63, 3)
    assert jpeg.output_shape((377, 501, 1), channels=3, region=(1, 2, 3, 4)) == (3, 4, 3)
    assert jpeg.output_shape((377, 501), region=(7, 9, 100, 17), scale=4) == (26, 5, 1)
    with pytest.raises(UsageError):
        jpeg.output_shape((377, 501, 3), region=(300, 0, 100, 1))
    with pytest.raises(UsageError):
        jpeg.output_shape((377, 501, 3), scale=3)


@needs_native
def test_out_buffer_and_input_types(jpegs: dict[str, bytes]) -> None:
    data = jpegs["420_q75"]
    region, scale = (40, 50, 200, 300), 2
    ref = jpeg.decode_jpeg(data, region=region, scale=scale)
    out = np.empty(jpeg.output_shape(jpeg.jpeg_shape(data), region=region, scale=scale), np.uint8)
    assert jpeg.decode_jpeg(data, region=region, scale=scale, out=out) is out
    np.testing.assert_array_equal(out, ref)
    # a reused flat scratch buffer, viewed at the right shape, works too
    scratch = np.zeros(10**6, np.uint8)
    view = scratch[: out.size].reshape(out.shape)
    jpeg.decode_jpeg(memoryview(data), region=region, scale=scale, out=view)
    np.testing.assert_array_equal(view, ref)
    np.testing.assert_array_equal(
        jpeg.decode_jpeg(np.frombuffer(data, np.uint8), region=region, scale=scale), ref
    )
    for bad in (np.empty((1, 2, 3), np.uint8), np.empty(out.shape, np.float32), out[:, ::2]):
        with pytest.raises(UsageError):
            jpeg.decode_jpeg(data, region=region, scale=scale, out=bad)


@needs_native
def test_channels_conversion(jpegs: dict[str, bytes]) -> None:
    gray = jpeg.decode_jpeg(jpegs["gray"])
    assert gray.shape[2] == 1
    rgb = jpeg.decode_jpeg(jpegs["gray"], channels=3)
    assert rgb.shape[2] == 3 and all(np.array_equal(rgb[..., i], gray[..., 0]) for i in range(3))
    # colour -> grey is libjpeg's Y channel, as Pillow's draft("L") gives it
    image = Image.open(io.BytesIO(jpegs["444_q95"]))
    image.draft("L", image.size)
    y = jpeg.decode_jpeg(jpegs["444_q95"], channels=1, region=(5, 6, 70, 80))
    np.testing.assert_array_equal(y[..., 0], np.asarray(image)[5:75, 6:86])
    assert jpeg.jpeg_shape(jpegs["gray"]) == (377, 501, 1)
    assert jpeg.jpeg_shape(jpegs["444_q95"]) == (377, 501, 3)


@pytest.mark.parametrize(
    ("kwargs", "region"),
    [
        ({"scale": 3}, None),
        ({"channels": 2}, None),
        ({}, (0, 0, 0, 5)),
        ({}, (-1, 0, 5, 5)),
        ({}, (0, 0, 378, 10)),
        ({}, (0, 500, 10, 2)),
        ({}, (1, 2, 3)),
    ],
)
def test_bad_arguments_raise_usage_error(jpegs: dict[str, bytes], kwargs, region) -> None:
    with pytest.raises(UsageError):
        jpeg.decode_jpeg(jpegs["420_q75"], region=region, **kwargs)


# -- corrupt data ---------------------------------------------------------------


def _corruptions(data: bytes) -> dict[str, bytes]:
    png = io.BytesIO()
    Image.new("RGB", (8, 8)).save(png, "PNG")
    return {
        "empty": b"",
        "text": b"definitely not a jpeg",
        "png": png.getvalue(),
        "soi_only": data[:2],
        "header_cut": data[:300],
        "half": data[: len(data) // 2],
        "no_eoi_zeros": data[: len(data) // 2] + bytes(1000),
        "zeros_after_soi": b"\xff\xd8" + bytes(4096),
    }


@pytest.mark.parametrize("backend", ["native", "simplejpeg", "pil"])
def test_corrupt_data_raises_value_error(
    jpegs: dict[str, bytes], backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if backend == "native" and not jpeg.native_available():
        pytest.skip("native decoder not built")
    if backend != "native":
        monkeypatch.setattr(jpeg, "_native", None)
    for name, bad in _corruptions(jpegs["420_q75"]).items():
        with pytest.raises(ValueError, match="corrupt JPEG data") as info:
            jpeg.decode_jpeg(bad, backend=backend)  # type: ignore[arg-type]
        assert not isinstance(info.value, UsageError), name


@needs_native
def test_cmyk_is_rejected(jpegs: dict[str, bytes]) -> None:
    data = _encode(Image.open(io.BytesIO(jpegs["444_q95"])).convert("CMYK"))
    assert jpeg.jpeg_shape(data)[2] == 4
    with pytest.raises(ValueError, match="4 components"):
        jpeg.decode_jpeg(data)


@needs_native
def test_mutated_bytes_never_crash(jpegs: dict[str, bytes]) -> None:
    """Byte flips anywhere: a ValueError or a correctly shaped image, never a crash."""
    rng = np.random.default_rng(11)
    for name in ("420_q75", "422_prog", "restart_420"):
        data = np.frombuffer(jpegs[name], np.uint8)
        for _ in range(60):
            bad = data.copy()
            at = rng.integers(0, len(bad), size=int(rng.integers(1, 6)))
            bad[at] = rng.integers(0, 256, size=len(at))
            scale = int(rng.choice(jpeg.SCALES))
            try:
                height, width, comps = jpeg.jpeg_shape(bad)
                region = _boxes(height, width, rng, 1)[-1]
                got = jpeg.decode_jpeg(bad, region=region, scale=scale)
            except ValueError:
                continue
            assert got.shape == jpeg.output_shape(
                (height, width, comps), region=region, scale=scale
            )


# -- fallback back-ends -------------------------------------------------------------


@pytest.mark.parametrize("backend", ["simplejpeg", "pil"])
def test_fallback_matches_native(
    jpegs: dict[str, bytes], backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the extension: same shapes, same pixels (all builds here agree exactly).

    One exception: Pillow's draft() cannot reach 1/scale when a side is shorter than
    ``scale`` (the 7x13 image at 1/8); the Pillow fallback then box-reduces a full
    decode, which approximates the DC-only IDCT (measured max diff 7-32 levels).
    """
    rng = np.random.default_rng(5)
    expected = {}
    for name, data in jpegs.items():
        height, width, _ = jpeg.jpeg_shape(data)
        for region in _boxes(height, width, rng, 3):
            for scale in jpeg.SCALES:
                full = _reference(data, scale)
                rows, cols = _span(region[0], region[2], scale), _span(region[1], region[3], scale)
                expected[name, region, scale] = full[slice(*rows), slice(*cols)]
    monkeypatch.setattr(jpeg, "_native", None)
    assert not jpeg.native_available()
    for (name, region, scale), ref in expected.items():
        data = jpegs[name]
        got = jpeg.decode_jpeg(data, region=region, scale=scale, backend=backend)  # type: ignore[arg-type]
        assert got.shape == ref.shape, (name, region, scale)
        if backend == "pil" and min(jpeg.jpeg_shape(data)[:2]) < scale:
            assert np.abs(got.astype(int) - ref).max() <= 48
            continue
        np.testing.assert_array_equal(got, ref, err_msg=f"{name} {region} 1/{scale}")
    out = np.empty(ref.shape, np.uint8)
    assert jpeg.decode_jpeg(jpegs[name], region=region, scale=scale, out=out) is out


def _reference(data: bytes, scale: int) -> np.ndarray:
    """The native full decode at the scale when built (exact), else Pillow's."""
    if jpeg.native_available():
        return jpeg.decode_jpeg(data, scale=scale)
    ref = _pillow(data, scale)
    if ref is None:
        pytest.skip("no reference decode at this scale without the native decoder")
    return ref


def _span(start: int, size: int, scale: int) -> tuple[int, int]:
    return start // scale, -(-(start + size) // scale)


# -- choose_scale -------------------------------------------------------------------


def test_choose_scale_exhaustive_grid() -> None:
    sizes = range(1, 90)
    for rh in sizes:
        for rw in range(1, 90, 11):
            for oh in range(1, 40):
                for ow in (1, 7, 23, 39):
                    d = jpeg.choose_scale(rh, rw, oh, ow)
                    covers = [rh / s >= oh and rw / s >= ow for s in (1, 2, 4, 8)]
                    best = max(
                        [s for s, ok in zip((1, 2, 4, 8), covers, strict=True) if ok], default=1
                    )
                    assert d == best, (rh, rw, oh, ow)
    assert jpeg.choose_scale(375, 500, 224, 224) == 1
    assert jpeg.choose_scale(1200, 1600, 224, 224) == 4
    # the region's own size decides, not the pixels a scaled decode rounds it out to
    assert jpeg.choose_scale(1, 1, 1, 1) == 1  # a 1-pixel crop is that pixel
    assert jpeg.choose_scale(9, 9, 2, 2) == 4  # not 8: 9/8 source pixels per output
    with pytest.raises(UsageError):
        jpeg.choose_scale(0, 10, 5, 5)


def test_choose_scales_agrees_with_choose_scale() -> None:
    """The loader's chunk path picks the scales of a whole chunk at once."""
    rh, rw = np.meshgrid(np.arange(1, 200, 3), np.arange(1, 200, 7), indexing="ij")
    rh, rw = rh.ravel().astype(np.int64), rw.ravel().astype(np.int64)
    for oh, ow in ((1, 1), (7, 23), (24, 24), (39, 5)):
        got = jpeg.choose_scales(rh, rw, oh, ow)
        want = [jpeg.choose_scale(int(h), int(w), oh, ow) for h, w in zip(rh, rw, strict=True)]
        assert got.tolist() == want


# -- threads ------------------------------------------------------------------------


@needs_native
def test_decode_releases_the_gil(photos: list[np.ndarray]) -> None:
    """A pure-Python thread keeps running while another thread is inside the decoder.

    If the decoder held the GIL, the ticker could take at most one step between the
    decode thread's timestamps; with it released it takes many (it sleeps 1 ms a step).
    """
    big = _encode(
        sample_data.make_photo(photos, (2400, 1800), np.random.default_rng(9)), quality=95
    )
    spans: list[tuple[float, float]] = []
    ticks: list[float] = []
    done = threading.Event()

    def decode() -> None:
        for _ in range(3):
            t0 = time.perf_counter()
            jpeg.decode_jpeg(big)
            spans.append((t0, time.perf_counter()))
        done.set()

    def tick() -> None:
        while not done.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.001)

    threads = [threading.Thread(target=decode), threading.Thread(target=tick)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    inside = sum(t0 < t < t1 for t0, t1 in spans for t in ticks)
    assert inside >= 3 * 3, f"only {inside} ticks ran during 3 decodes"


@needs_native
def test_concurrent_decodes_agree(jpegs: dict[str, bytes]) -> None:
    from concurrent.futures import ThreadPoolExecutor

    data = jpegs["420_prog_q90"]
    jobs = [((i * 7 % 300, i * 11 % 400, 70, 90), 1 << (i % 4)) for i in range(64)]
    serial = [jpeg.decode_jpeg(data, region=r, scale=s) for r, s in jobs]
    with ThreadPoolExecutor(4) as pool:
        threaded = list(
            pool.map(lambda job: jpeg.decode_jpeg(data, region=job[0], scale=job[1]), jobs)
        )
    for a, b in zip(serial, threaded, strict=True):
        np.testing.assert_array_equal(a, b)


@needs_native
def test_decode_into_a_reused_scratch_buffer(jpegs: dict[str, bytes]) -> None:
    """``scratch``: the result is a view of the start of the caller's buffer (no array
    per image), the same pixels; a buffer too short is a UsageError naming the size."""
    scratch = np.zeros(10**6, np.uint8)
    for name, data in jpegs.items():
        h, w, _ = jpeg.jpeg_shape(data)
        boxes = ((h // 8, w // 8, h // 2 + 1, w // 2 + 1), None, (0, 0, h, w))
        for region, scale in zip(boxes, (2, 1, 8), strict=True):
            ref = jpeg.decode_jpeg(data, region=region, scale=scale)
            got = jpeg.decode_jpeg(data, region=region, scale=scale, scratch=scratch)
            assert np.shares_memory(got, scratch) and got.ctypes.data == scratch.ctypes.data
            np.testing.assert_array_equal(got, ref, err_msg=f"{name} {region} {scale}")
    data = jpegs["420_q75"]
    need = jpeg.decode_jpeg(data).nbytes
    with pytest.raises(UsageError, match=f"at least {need} bytes"):
        jpeg.decode_jpeg(data, scratch=np.zeros(need - 1, np.uint8))
    # out= keeps its exact shape: a longer flat buffer is still refused there
    with pytest.raises(UsageError):
        jpeg.decode_jpeg(data, out=np.zeros(need + 1, np.uint8))
    readonly = np.zeros(need, np.uint8)
    readonly.flags.writeable = False
    for bad in (bytearray(need), np.zeros(2 * need, np.uint8)[::2], readonly,
                np.zeros((need, 1), np.uint8), np.zeros(need, np.int16)):  # fmt: skip
        with pytest.raises(UsageError, match="scratch must be"):
            jpeg.decode_jpeg(data, scratch=bad)
