"""``resize_jpeg_chunk``: a chunk of JPEG samples decoded and resized in one native call.

It must give, pixel for pixel, what the per-sample path gives (``decode_jpeg`` of the
region at the DCT scale, then ``resize`` of all of it), whatever the box, scale, flip,
channels and output layout; and a row it cannot do must only be flagged, never raise
or write (the loader's general path decodes it again and reports why).
"""

from __future__ import annotations

import io
import threading

import numpy as np
import pytest
from PIL import Image

resample = pytest.importorskip("pixpack._native._resample")
pytest.importorskip("pixpack._native._jpeg")

from pixpack.read.jpeg import decode_jpeg  # noqa: E402

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
ALPHA = tuple(1 / (255 * s) for s in STD)
BETA = tuple(-m / s for m, s in zip(MEAN, STD, strict=True))


def _jpeg(image: np.ndarray, quality: int = 85, subsampling: int = 2) -> bytes:
    out = io.BytesIO()
    Image.fromarray(image[:, :, 0] if image.shape[2] == 1 else image).save(
        out, format="JPEG", quality=quality, subsampling=subsampling
    )
    return out.getvalue()


@pytest.fixture(scope="module")
def blob(photos):
    """Three JPEGs in one buffer (a pack's data region): 4:2:0 colour, 4:4:4 colour,
    grey; offsets, lengths and shapes."""
    images = [photos[0][:301, :407], photos[1][:256, :199], photos[2][:210, :333, :1]]
    parts = [_jpeg(images[0]), _jpeg(images[1], 92, 0), _jpeg(images[2])]
    offsets = np.cumsum([0, 17, *[len(p) + 5 for p in parts[:-1]]])[1:]  # odd gaps
    data = bytearray(int(offsets[-1]) + len(parts[-1]) + 3)
    for off, part in zip(offsets, parts, strict=True):
        data[off : off + len(part)] = part
    shapes = [img.shape for img in images]
    return bytes(data), [int(o) for o in offsets], [len(p) for p in parts], shapes


# (sample, (top, left, height, width), flip, scale): crops at every DCT scale, crops
# whose left edge is inside an iMCU (the decoded strip is wider than the box), whole
# images, both flips, a box smaller than the output (an upscale)
CASES = [
    (0, (0, 0, 301, 407), 0, 1),
    (0, (13, 37, 250, 300), 1, 1),
    (0, (5, 9, 290, 390), 3, 2),
    (0, (40, 131, 120, 250), 2, 4),
    (0, (1, 3, 299, 403), 0, 8),
    (1, (7, 21, 200, 150), 1, 1),
    (1, (0, 0, 256, 199), 0, 2),
    (2, (11, 5, 180, 300), 1, 1),
    (2, (3, 17, 100, 100), 0, 4),
    (0, (100, 200, 20, 17), 0, 1),
]


def _expected(data, offsets, lengths, k, box, flip, scale, dst, chw, alpha, beta):
    raw = data[offsets[k] : offsets[k] + lengths[k]]
    img = decode_jpeg(raw, region=box, scale=scale)
    resample.resize(img, (0, 0, *img.shape[:2]), dst, alpha, beta, chw, flip)


@pytest.mark.parametrize("layout", ["NCHW", "NHWC", "uint8"])
def test_equals_decode_then_resize(blob, layout):
    data, offsets, lengths, _ = blob
    size = (40, 48)
    chw = layout == "NCHW"
    dtype = np.uint8 if layout == "uint8" else np.float32
    alpha, beta = (None, None) if layout == "uint8" else (ALPHA, BETA)
    shape = (3, *size) if chw else (*size, 3)
    n = len(CASES)
    rows, want = [], np.full((n, *shape), 7, dtype)
    for i, (k, box, flip, scale) in enumerate(CASES):
        slot = n - 1 - i  # slots in reverse: each row says where it goes
        rows.append((offsets[k], lengths[k], *box, flip, slot, scale))
        _expected(data, offsets, lengths, k, box, flip, scale, want[slot], chw, alpha, beta)
    work = np.full((n, *shape), 3, dtype)
    ok = np.zeros(n, np.bool_)
    resample.resize_jpeg_chunk(data, np.array(rows, np.int64), work, alpha, beta, chw, True, ok)
    assert ok.all()
    assert np.array_equal(work, want)


def test_several_buffers_and_antialias_off(blob):
    """A tuple of buffers (a sharded pack's shards) with a 10th column naming each
    row's buffer gives what one buffer gives; antialias=False is passed through."""
    data, offsets, lengths, _ = blob
    one_rows = [(offsets[k], lengths[k], *box, flip, i, scale)
                for i, (k, box, flip, scale) in enumerate(CASES[:4])]  # fmt: skip
    one = np.zeros((4, 3, 24, 24), np.float32)
    ok = np.zeros(4, np.bool_)
    resample.resize_jpeg_chunk(data, np.array(one_rows, np.int64), one, None, None, True,
                               False, ok)  # fmt: skip
    assert ok.all()
    parts = tuple(data[offsets[k] : offsets[k] + lengths[k]] for k in range(3))
    rows = [(0, r[1], *r[2:], CASES[i][0]) for i, r in enumerate(one_rows)]
    rows.append((0, lengths[0], 0, 0, 8, 8, 0, 0, 1, 3))  # no fourth buffer
    many = np.zeros((4, 3, 24, 24), np.float32)
    ok = np.zeros(5, np.bool_)
    resample.resize_jpeg_chunk(parts, np.array(rows, np.int64), many, None, None, True, False, ok)
    assert ok.tolist() == [True] * 4 + [False]
    assert np.array_equal(one, many)
    for i, (k, box, flip, scale) in enumerate(CASES[:4]):
        want = np.zeros((3, 24, 24), np.float32)
        img = decode_jpeg(parts[k], region=box, scale=scale)
        resample.resize(img, (0, 0, *img.shape[:2]), want, None, None, True, flip, False)
        assert np.array_equal(many[i], want)


def test_rows_it_cannot_do_are_flagged_not_raised(blob):
    data, offsets, lengths, shapes = blob
    o, n = offsets[0], lengths[0]
    h, w, _ = shapes[0]
    good = (o, n, 0, 0, h, w, 0, 0, 1)
    truncated = bytearray(data)
    truncated[o + n // 2 : o + n] = b"\0" * (n - n // 2)  # the second half of the scan gone
    bad = [
        (o, n, 1, 0, h, w, 0, 1, 1),  # the box leaves the image
        (o, n, 0, 0, h, w, 0, 2, 3),  # no DCT scale 3
        (o, n, 0, 0, 8, 8, 0, 9, 1),  # slot outside dst
        (o, 0, 0, 0, 8, 8, 0, 3, 1),  # no bytes
        (len(data) - 10, n, 0, 0, 8, 8, 0, 3, 1),  # runs past the buffer
        (o + 1, n - 1, 0, 0, 8, 8, 0, 3, 1),  # not a JPEG at this offset
        (o, n, 0, 0, 2**31, 8, 0, 3, 1),  # a damaged index's sizes
        (o, n, 2**62, 0, 8, 8, 0, 3, 1),
        (o, n, 0, 0, 8, 8, 0, 3, 2**32 + 2),  # a scale that wraps to 2 in 32 bits
        (o, n, 0, 0, 8, 8, 0, 3, -(2**32) + 4),
        (offsets[2], lengths[2], 0, 0, 8, 8, 0, 3, 1),  # grey: fine (replicated)
    ]
    work = np.full((4, 3, 16, 16), -7.0, np.float32)
    ok = np.ones(1 + len(bad), np.bool_)
    resample.resize_jpeg_chunk(bytes(data), np.array([good, *bad], np.int64), work, None, None,
                               True, True, ok)  # fmt: skip
    assert ok.tolist() == [True] + [False] * (len(bad) - 1) + [True]
    assert (work[1:3] == -7.0).all()  # nothing written for a rejected row
    assert not (work[0] == -7.0).any()
    # corrupt data (strict: libjpeg's warnings count) fails the row, not the call
    ok = np.ones(2, np.bool_)
    rows = np.array([(o, n, 0, 0, h, w, 0, 1, 1), good], np.int64)
    resample.resize_jpeg_chunk(bytes(truncated), rows, work[:2], None, None, True, True, ok)
    assert ok.tolist() == [False, False]


def test_an_rgba_output_leaves_colour_samples_to_the_general_path(blob):
    data, offsets, lengths, _ = blob
    rows = np.array([(offsets[k], lengths[k], 0, 0, 64, 64, 0, k, 1) for k in (0, 2)], np.int64)
    work = np.zeros((3, 16, 16, 4), np.float32)
    ok = np.zeros(2, np.bool_)
    resample.resize_jpeg_chunk(data, rows, work, None, None, False, True, ok)
    assert ok.tolist() == [False, True]  # RGB into 4 channels: no; grey is replicated


def test_bad_arguments_raise_value_errors(blob):
    data, offsets, lengths, _ = blob
    row = np.array([(offsets[0], lengths[0], 0, 0, 64, 64, 0, 0, 1)], np.int64)
    ok = np.zeros(1, np.bool_)
    with pytest.raises(ValueError, match="jobs"):
        resample.resize_jpeg_chunk(data, row[:, :8].copy(), np.zeros((1, 3, 8, 8), np.float32),
                                   None, None, True, True, ok)  # fmt: skip
    with pytest.raises(ValueError, match="dst"):
        resample.resize_jpeg_chunk(data, row, np.zeros((1, 3, 8, 8), np.int32), None, None,
                                   True, True, ok)  # fmt: skip
    with pytest.raises(ValueError, match="ok"):
        resample.resize_jpeg_chunk(data, row, np.zeros((1, 3, 8, 8), np.float32), None, None,
                                   True, True, np.zeros(1, np.int64))  # fmt: skip


@pytest.mark.parametrize("chunk", ["resize_chunk", "resize_jpeg_chunk"])
def test_a_strided_ok_array_is_refused(blob, chunk):
    """ok is written as contiguous bytes: a strided or reversed view would be written
    past its end (found under ASan), so it is a ValueError like any other bad shape."""
    data, offsets, lengths, _ = blob
    cols = 11 if chunk == "resize_chunk" else 9
    jobs = np.zeros((4, cols), np.int64)
    work = np.zeros((4, 3, 8, 8), np.float32)
    for ok in (np.zeros(4, np.bool_)[::-1], np.zeros(8, np.bool_)[::2]):
        with pytest.raises(ValueError, match="ok must be"):
            getattr(resample, chunk)(data, jobs, work, None, None, True, True, ok)


def test_works_in_a_process_that_never_imported_the_jpeg_module(blob, tmp_path):
    """The decoder comes from pixpack._native._jpeg's capsule, which must be imported
    by the call itself (PyCapsule_Import only looks up attributes)."""
    import subprocess
    import sys

    data, offsets, lengths, _ = blob
    (tmp_path / "data.bin").write_bytes(data)
    code = "\n".join([
        "import sys, numpy as np",
        "from pixpack._native import _resample as R",
        "assert 'pixpack._native._jpeg' not in sys.modules",
        f"data = open({str(tmp_path / 'data.bin')!r}, 'rb').read()",
        f"rows = np.array([({offsets[0]}, {lengths[0]}, 0, 0, 64, 64, 0, 0, 1)], np.int64)",
        "ok = np.zeros(1, bool)",
        "R.resize_jpeg_chunk(data, rows, np.zeros((1, 8, 8, 3), np.uint8), None, None, "
        "False, True, ok)",
        "print(ok.tolist())",
    ])
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[True]"


def test_threads_decode_at_once_and_agree(blob):
    """The decode buffer is per thread: threads running chunks at once (the loader's)
    get the same pixels as one thread alone."""
    data, offsets, lengths, _ = blob
    rows = np.array([(offsets[k], lengths[k], *box, flip, i, scale)
                     for i, (k, box, flip, scale) in enumerate(CASES)], np.int64)  # fmt: skip
    alone = np.zeros((len(CASES), 32, 32, 3), np.float32)
    resample.resize_jpeg_chunk(data, rows, alone, ALPHA, BETA, False, True,
                               np.zeros(len(CASES), np.bool_))  # fmt: skip
    results = [np.zeros_like(alone) for _ in range(4)]

    def run(out: np.ndarray) -> None:
        for _ in range(5):
            resample.resize_jpeg_chunk(data, rows, out, ALPHA, BETA, False, True,
                                       np.zeros(len(CASES), np.bool_))  # fmt: skip

    threads = [threading.Thread(target=run, args=(r,)) for r in results]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in results:
        assert np.array_equal(r, alone)
