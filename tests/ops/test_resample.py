"""The native crop + resize kernel (pixpack._native._resample) on real photographs.

Checked against an independent float64 numpy implementation of torchvision's filter
(torch's ``_upsample_bilinear2d_aa``: a separable triangle of half-width
max(scale, 1), half-pixel centres, weights normalised per output), against
torchvision itself, and against itself: every SIMD path, every flip, every output
kind and the chunked entry point must give the same pixels.
"""

from __future__ import annotations

import numpy as np
import pytest

resample = pytest.importorskip("pixpack._native._resample")


def _weights(n_in: int, n_out: int, antialias: bool) -> np.ndarray:
    """The (n_out, n_in) float64 matrix of torchvision's bilinear filter."""
    scale = n_in / n_out
    m = np.zeros((n_out, n_in))
    for i in range(n_out):
        if antialias and scale > 1.0:
            center = scale * (i + 0.5)
            lo = max(int(center - scale + 0.5), 0)
            hi = min(int(center + scale + 0.5), n_in)
            j = np.arange(lo, hi)
            w = np.clip(1.0 - np.abs((j - center + 0.5) / scale), 0.0, None)
            m[i, lo:hi] = w / w.sum()
        else:
            s = max(scale * (i + 0.5) - 0.5, 0.0)
            x0 = min(int(s), n_in - 1)
            x1 = min(x0 + 1, n_in - 1)
            lam = s - x0 if x0 < n_in - 1 else 0.0
            m[i, x0] += 1.0 - lam
            m[i, x1] += lam
    return m


def reference(img: np.ndarray, box, size, antialias: bool = True) -> np.ndarray:
    """Float64 resize of ``img[box]`` to ``size`` (before rounding)."""
    t, left, h, w = box
    crop = img[t : t + h, left : left + w].astype(np.float64)
    wy, wx = _weights(h, size[0], antialias), _weights(w, size[1], antialias)
    return np.einsum("yi,ijc,xj->yxc", wy, crop, wx)


def rounded(ref: np.ndarray, dtype) -> np.ndarray:
    peak = np.iinfo(dtype).max
    return np.floor(np.clip(ref, 0, peak) + 0.5).astype(dtype)


def native(img, box, size, antialias=True, flip=0, dtype=None, **kw) -> np.ndarray:
    out = np.empty((*size, img.shape[2]), dtype or img.dtype)
    resample.resize(img, box, out, flip=flip, antialias=antialias, **kw)
    return out


CASES = [  # box (top, left, h, w), output size: up, down, mixed, tiny, extreme
    ((3, 5, 40, 50), (64, 72)),
    ((0, 0, 72, 96), (30, 41)),
    ((10, 2, 37, 90), (50, 33)),
    ((4, 4, 1, 1), (5, 7)),
    ((0, 0, 72, 96), (3, 2)),
    ((20, 30, 2, 3), (2, 3)),
]


@pytest.mark.parametrize("dtype", ["uint8", "uint16"])
@pytest.mark.parametrize("channels", [1, 3, 4])
@pytest.mark.parametrize("antialias", [True, False])
@pytest.mark.parametrize(("box", "size"), CASES)
def test_matches_float64_reference(image_of, dtype, channels, antialias, box, size):
    img = image_of(dtype, channels, "contiguous")
    ref = reference(img, box, size, antialias)
    got = native(img, box, size, antialias)
    diff = np.abs(got.astype(np.int64) - rounded(ref, img.dtype).astype(np.int64))
    # float32 accumulation can land on the other side of a .5 boundary, nowhere else
    assert diff.max() <= 1
    assert (diff > 0).mean() < 0.02
    near_half = np.abs(np.clip(ref, 0, None) % 1.0 - 0.5) < 1e-3 * max(1.0, ref.max() / 255)
    assert not (diff > 0)[~near_half].any()


def test_close_to_torchvision_on_photos(photos):
    """Stated tolerance: within 1 level of torchvision's antialiased resize, ~0.15 on
    average (torchvision rounds its uint8 intermediate; we keep it in float)."""
    torch = pytest.importorskip("torch")
    F = pytest.importorskip("torchvision.transforms.v2.functional")
    for photo in photos[:4]:
        h, w = photo.shape[:2]
        for size in [(224, 224), (h // 3, w // 3), (int(h * 1.7), int(w * 1.3))]:
            got = native(np.ascontiguousarray(photo), (0, 0, h, w), size)
            chw = torch.from_numpy(np.ascontiguousarray(photo)).permute(2, 0, 1)
            want = F.resize(chw, list(size), antialias=True).permute(1, 2, 0).numpy()
            diff = np.abs(got.astype(int) - want.astype(int))
            assert diff.max() <= 1, size
            assert diff.mean() < 0.25, size


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_flips_mirror_the_output_exactly(image_of, channels):
    img = image_of("uint8", channels, "contiguous")
    for box, size in CASES[:3]:
        plain = native(img, box, size)
        assert np.array_equal(native(img, box, size, flip=1), plain[:, ::-1])
        assert np.array_equal(native(img, box, size, flip=2), plain[::-1])
        assert np.array_equal(native(img, box, size, flip=3), plain[::-1, ::-1])


@pytest.mark.parametrize("dtype", ["uint8", "uint16"])
@pytest.mark.parametrize(("src_c", "out_c"), [(3, 3), (1, 3), (4, 4), (1, 1)])
@pytest.mark.parametrize("chw", [True, False])
def test_float_output_is_store_of_the_pixels(image_of, dtype, src_c, out_c, chw):
    """The fused float write equals resize-to-pixels then ``x * alpha + beta``, bit for
    bit: what lets the loader fuse the steps."""
    img = image_of(dtype, src_c, "contiguous")
    box, size = (3, 5, 40, 50), (30, 70)
    mean, std = (0.485, 0.456, 0.406, 0.5)[:out_c], (0.229, 0.224, 0.225, 0.3)[:out_c]
    alpha = tuple(1.0 / (np.iinfo(dtype).max * s) for s in std)
    beta = tuple(-m / s for m, s in zip(mean, std, strict=True))
    pixels = native(img, box, size).astype(np.float32)
    pixels = np.broadcast_to(pixels, (*size, out_c)) if src_c == 1 else pixels
    want = pixels * np.float32(alpha) + np.float32(beta)
    shape = (out_c, *size) if chw else (*size, out_c)
    dst = np.empty(shape, np.float32)
    resample.resize(img, box, dst, alpha, beta, chw)
    got = dst.transpose(1, 2, 0) if chw else dst
    assert np.array_equal(got, want)


@pytest.mark.parametrize("avx2", [True, False])
def test_packed_rgb_float_equals_planar(image_of, avx2):
    """The packed RGB float row (TF's and JAX's NHWC) is written by its own fused
    loop, 8 pixels at a time with a scalar tail: every width around those edges, with
    flips, gives the planar output's values exactly."""
    img = image_of("uint8", 3, "contiguous")
    alpha, beta = (0.017, 0.018, 0.019), (-2.1, -2.0, -1.8)
    before = resample._set_avx2(avx2)
    try:
        for width in (1, 3, 4, 7, 8, 9, 15, 16, 17, 33):
            for flip in (0, 1, 3):
                box, size = (2, 3, 41, 57), (11, width)
                planar = np.empty((3, *size), np.float32)
                resample.resize(img, box, planar, alpha, beta, True, flip)
                packed = np.empty((*size, 3), np.float32)
                resample.resize(img, box, packed, alpha, beta, False, flip)
                assert np.array_equal(packed, planar.transpose(1, 2, 0)), (width, flip)
    finally:
        resample._set_avx2(before)


@pytest.mark.parametrize("layout", ["chw", "hwc"])
def test_integer_output_layouts(image_of, layout):
    img = image_of("uint8", 3, "contiguous")
    box, size = (0, 0, 72, 96), (33, 45)
    want = native(img, box, size)
    if layout == "chw":
        dst = np.empty((3, *size), np.uint8)
        resample.resize(img, box, dst, chw=True)
        dst = dst.transpose(1, 2, 0)
    else:
        dst = np.empty((*size, 3), np.uint8)
        resample.resize(img, box, dst)
    assert np.array_equal(dst, want)


def test_row_strided_source_and_box_offsets(image_of):
    """A crop view of a larger image (the loader's memory-map case) reads in place."""
    img = image_of("uint8", 3, "view")  # row stride wider than the row
    box, size = (7, 9, 50, 60), (64, 64)
    want = native(np.ascontiguousarray(img), box, size)
    assert np.array_equal(native(img, box, size), want)


def test_simd_paths_agree(image_of):
    """AVX2, SSE and scalar loops do the same operations in the same order."""
    for channels in (1, 3, 4):
        img = image_of("uint8", channels, "contiguous")
        for box, size in CASES:
            for kind in (np.uint8, np.float32):
                before = resample._set_avx2(True)
                try:
                    a = native(img, box, size, dtype=kind)
                    resample._set_avx2(False)
                    b = native(img, box, size, dtype=kind)
                finally:
                    resample._set_avx2(before)
                assert np.array_equal(a, b), (channels, box, size, kind)


def _chunk_inputs(image_of):
    imgs = [image_of("uint8", 3, "contiguous"), image_of("uint8", 1, "contiguous")]
    blob = bytearray()
    offsets = []
    for img in imgs:
        offsets.append(len(blob))
        blob += img.tobytes()
    return imgs, bytes(blob), offsets


def test_resize_chunk_equals_per_sample(image_of):
    imgs, blob, offsets = _chunk_inputs(image_of)
    size = (40, 40)
    rows, want = [], {}
    for slot, (k, box, flip) in enumerate(
        [(0, (3, 5, 40, 50), 0), (1, (0, 0, 72, 96), 1), (0, (10, 2, 37, 90), 3)]
    ):
        img = imgs[k]
        h, w, c = img.shape
        rows.append((offsets[k], h, w, c, 1, *box, flip, 2 - slot))  # slots in reverse
        dst = np.empty((3, *size), np.float32)
        resample.resize(img, box, dst, (0.5,) * 3, (0.25,) * 3, True, flip)
        want[2 - slot] = dst
    work = np.full((3, 3, *size), -7.0, np.float32)
    ok = np.zeros(3, np.bool_)
    resample.resize_chunk(
        blob, np.array(rows, np.int64), work, (0.5,) * 3, (0.25,) * 3, True, True, ok
    )
    assert ok.all()
    for slot, dst in want.items():
        assert np.array_equal(work[slot], dst)


def test_resize_chunk_over_several_buffers(image_of):
    """A tuple of buffers (a sharded pack's shards) with a 12th column naming each
    row's buffer gives what one buffer gives; a buffer index out of range is refused."""
    imgs, blob, offsets = _chunk_inputs(image_of)
    rows = [(offsets[k], *imgs[k].shape, 1, 0, 0, 30, 30, 0, k) for k in range(2)]
    one = np.zeros((2, 3, 16, 16), np.float32)
    ok = np.zeros(2, np.bool_)
    resample.resize_chunk(blob, np.array(rows, np.int64), one, None, None, True, True, ok)
    assert ok.all()
    parts = tuple(img.tobytes() for img in imgs[:2])
    split = [(0, *r[1:], k) for k, r in enumerate(rows)] + [(0, *rows[0][1:-1], 1, 2)]
    many = np.zeros((2, 3, 16, 16), np.float32)
    ok = np.zeros(3, np.bool_)
    resample.resize_chunk(parts, np.array(split, np.int64), many, None, None, True, True, ok)
    assert ok.tolist() == [True, True, False]
    assert np.array_equal(one, many)


def test_resize_chunk_flags_rows_that_do_not_fit(image_of):
    imgs, blob, offsets = _chunk_inputs(image_of)
    h, w, c = imgs[0].shape
    good = (offsets[0], h, w, c, 1, 0, 0, h, w, 0, 0)
    bad = [
        (len(blob) - 10, h, w, c, 1, 0, 0, h, w, 0, 1),  # runs past the buffer
        (offsets[0], h, w, c, 1, 1, 0, h, w, 0, 2),  # box leaves the image
        (offsets[0], h, w, 2, 1, 0, 0, 4, 4, 0, 3),  # 2 channels
        (offsets[0], h, w, c, 1, 0, 0, 4, 4, 0, 9),  # slot outside dst
        # a damaged index: sizes whose products or sums wrap around in int64
        (offsets[0], 2**31, 2**31, c, 1, 0, 0, 4, 4, 0, 4),
        (offsets[0], h, w, c, 1, 2**63 - 2, 0, 4, 4, 0, 4),
        (offsets[0], h, w, c, 1, 0, 2**63 - 2, 4, 4, 0, 4),
    ]
    work = np.full((5, 3, 16, 16), -7.0, np.float32)
    ok = np.ones(1 + len(bad), np.bool_)
    resample.resize_chunk(blob, np.array([good, *bad], np.int64), work, None, None, True, True, ok)
    assert ok.tolist() == [True] + [False] * len(bad)
    assert (work[1:] == -7.0).all()  # nothing written for a rejected row
    assert not (work[0] == -7.0).any()


def test_bad_arguments_raise_value_errors(image_of):
    img = image_of("uint8", 3, "contiguous")
    out = np.empty((8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="does not fit"):
        resample.resize(img, (0, 0, 500, 10), out)
    # top + height (and left + width) past INT_MAX: compared without wrapping around
    for box in ((2**31 - 2, 0, 4, 4), (0, 2**31 - 2, 4, 4)):
        with pytest.raises(ValueError, match="does not fit"):
            resample.resize(img, box, out)
    with pytest.raises(ValueError, match="dst"):
        resample.resize(img, (0, 0, 10, 10), np.empty((8, 8, 3), np.int32))
    with pytest.raises(ValueError, match="src"):
        resample.resize(img.astype(np.float32), (0, 0, 10, 10), out)
    with pytest.raises(ValueError, match="packed"):
        resample.resize(img[:, ::-1], (0, 0, 10, 10), out)
    with pytest.raises(ValueError, match="jobs"):
        resample.resize_chunk(b"", np.zeros((1, 3), np.int64), out[None], None, None, 0, 1,
                              np.zeros(1, np.bool_))  # fmt: skip


def test_thread_scratch_is_freed_when_threads_exit(photos):
    """Each thread keeps one scratch block (up to 32 MB) for the next sample; threads
    of loaders and packs come and go, so the block must go with its thread."""
    import threading

    def rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096

    # a very wide box: its row as floats and the taps take ~20 MB of scratch, under
    # the 32 MB a thread keeps between calls
    rng = np.random.default_rng(0)
    big = rng.integers(0, 255, (2, 1_000_000, 3), dtype=np.uint8)
    out = np.empty((2, 1000, 3), np.uint8)

    def work() -> None:
        resample.resize(big, (0, 0, 2, 1_000_000), out)

    for _ in range(2):  # warm up the allocator
        t = threading.Thread(target=work)
        t.start()
        t.join()
    before = rss()
    for _ in range(20):
        t = threading.Thread(target=work)
        t.start()
        t.join()
    assert rss() - before < 100 << 20  # a leak would be ~20 x 20 MB
