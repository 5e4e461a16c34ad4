"""The loader's native fast path (loader/fused.py) against its general path.

Every batch must be bit-identical with the fast path on and off, for every kind of
pack and output it takes, and whatever it hands back to the general path (corrupt
samples, checksum-checking packs) must be handled exactly as before.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import pixpack.loader.batching as batching
from pixpack import ops
from pixpack.loader import Loader
from pixpack.read.open_any import open_pack

from .helpers import photo_images, write_pack

pytest.importorskip("pixpack._native._resample")

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def batches(pack, pipeline, fused: bool, monkeypatch, **kw) -> list[tuple]:
    with monkeypatch.context() as m:
        if not fused:
            m.setattr(batching, "fused_plan", lambda *a: None)
        loader = Loader(pack, 8, pipeline=pipeline, seed=3, workers=2, **kw)
    assert (loader.pipeline.fused is not None) == fused  # the path under test is the one run
    try:
        return [(x.clone(), y.clone()) for x, y in loader]
    finally:
        loader.close()


def assert_same(a, b) -> None:
    assert len(a) == len(b)
    for (xa, ya), (xb, yb) in zip(a, b, strict=True):
        assert torch.equal(ya, yb)
        assert torch.equal(xa, xb)


@pytest.fixture(scope="module")
def packs(photos, tmp_path_factory):
    images = photo_images(photos, 24)
    root = tmp_path_factory.mktemp("fused")
    # gray and colour samples mixed: gray ones are replicated into 3 output channels
    gray = [np.ascontiguousarray(img[:, :, :1]) if i % 2 else img for i, img in enumerate(images)]
    wide = [(img.astype(np.uint16) * 257) for img in images]
    return {
        "raw": write_pack(root / "raw.pixpack", images),
        "jpeg": write_pack(root / "jpeg.pixpack", images, jpeg=True),
        "mixed": write_pack(root / "mixed.pixpack", images, jpeg=[i % 3 == 0 for i in range(24)]),
        "gray": write_pack(root / "gray.pixpack", gray),
        "uint16": write_pack(root / "u16.pixpack", wide),
        # 8-bit raw and JPEG samples among 16-bit ones: a 16-bit output range
        "depths": write_pack(
            root / "depths.pixpack",
            [w if i % 3 == 0 else img for i, (img, w) in enumerate(zip(images, wide, strict=True))],
            jpeg=[i % 3 == 1 for i in range(24)],
        ),
    }


PIPELINES = {
    "rrc-flips-normalize": lambda: [
        ops.RandomResizedCrop(32),
        ops.RandomHorizontalFlip(),
        ops.RandomVerticalFlip(),
        ops.Normalize(MEAN, STD),
    ],
    "rrc-down-no-antialias": lambda: [
        ops.RandomResizedCrop(20, scale=(0.6, 1.0), antialias=False),
        ops.RandomHorizontalFlip(0.7),
    ],
    "resize-fixed-channels-last": lambda: [
        ops.Resize((24, 40)),
        ops.RandomHorizontalFlip(),
        ops.Normalize(MEAN, STD),
        ops.ToOutput("float32", "channels_last"),
    ],
    "rrc-uint8-nhwc": lambda: [
        ops.RandomResizedCrop(28, scale=(0.2, 1.0)),
        ops.RandomHorizontalFlip(),
        ops.ToOutput("uint8", "NHWC"),
    ],
    "rrc-bfloat16": lambda: [ops.RandomResizedCrop(16), ops.ToOutput("bfloat16")],
}


@pytest.mark.parametrize("kind", ["raw", "jpeg", "mixed", "gray", "uint16", "depths"])
@pytest.mark.parametrize("name", list(PIPELINES))
def test_fast_path_is_bit_identical(packs, kind, name, monkeypatch):
    pack = packs[kind]
    fast = batches(pack, PIPELINES[name](), True, monkeypatch)
    slow = batches(pack, PIPELINES[name](), False, monkeypatch)
    assert_same(fast, slow)


def test_fast_path_only_for_what_it_computes(packs):
    def plan(pipeline):
        loader = Loader(packs["raw"], 8, pipeline=pipeline)
        loader.close()
        return loader.pipeline.fused

    assert plan([ops.RandomResizedCrop(16), ops.RandomHorizontalFlip()]) is not None
    assert plan([ops.RandomResizedCrop(16, interpolation="bicubic")]) is None
    assert plan([ops.RandomResizedCrop(16), ops.ColorJitter(0.4)]) is None
    assert plan([ops.RandomHorizontalFlip(), ops.RandomResizedCrop(16)]) is None
    assert plan([ops.Resize(16), ops.CenterCrop(16)]) is None  # size follows the image
    # draw_boxes draws at most 8 flips per sample: more go to the general path
    assert plan([ops.RandomResizedCrop(16), *[ops.RandomHorizontalFlip()] * 8]) is not None
    assert plan([ops.RandomResizedCrop(16), *[ops.RandomHorizontalFlip()] * 9]) is None


@pytest.mark.parametrize("jpeg", [False, True])
def test_gray_samples_of_an_rgba_batch_get_an_opaque_alpha(photos, tmp_path, jpeg, monkeypatch):
    """channels=4 widens a gray sample to gray, gray, gray, opaque (not gray alpha), on
    both paths, raw or JPEG."""
    images = photo_images(photos, 12)
    mixed = [
        np.ascontiguousarray(img[:, :, :1]) if i % 2 else np.dstack([img, img[:, :, :1]])
        for i, img in enumerate(images)
    ]
    pack = write_pack(
        tmp_path / "rgba.pixpack", mixed, jpeg=[jpeg and i % 2 == 1 for i in range(12)]
    )
    for output in (ops.ToOutput("uint8"), ops.Normalize(0.5, 0.5)):
        pipeline = [ops.RandomResizedCrop(16), ops.RandomHorizontalFlip(), output]
        fast = batches(pack, pipeline, True, monkeypatch, channels=4, shuffle=False)
        slow = batches(pack, pipeline, False, monkeypatch, channels=4, shuffle=False)
        assert_same(fast, slow)
        x = torch.cat([b for b, _ in fast])
        top = 255 if output.__class__ is ops.ToOutput else 1.0  # (1 - 0.5) / 0.5
        assert (x[1::2, 3] == top).all()  # gray samples: opaque
        assert torch.equal(x[1::2, 0], x[1::2, 1]) and torch.equal(x[1::2, 0], x[1::2, 2])
        assert not (x[0::2, 3] == top).all()  # RGBA samples keep their own alpha


def test_checksum_checking_pack_takes_the_general_path(packs, monkeypatch):
    """sample_spans marks every entry of a checking pack as not inside, so each one is
    read (and its CRC checked) by sample_bytes; the output does not change."""
    checking = open_pack(packs["raw"].path, check_checksums=True)
    pipeline = PIPELINES["rrc-flips-normalize"]
    assert_same(
        batches(checking, pipeline(), True, monkeypatch),
        batches(packs["raw"], pipeline(), False, monkeypatch),
    )


@pytest.mark.parametrize("kind", ["jpeg", "raw"])
def test_corrupt_sample_is_skipped_exactly_as_before(photos, tmp_path, kind, monkeypatch):
    images = photo_images(photos, 16)
    pack = write_pack(tmp_path / "bad.pixpack", images, jpeg=kind == "jpeg", garbage=5)
    pipeline = PIPELINES["rrc-flips-normalize"]
    fast = batches(pack, pipeline(), True, monkeypatch, on_error="skip")
    slow = batches(pack, pipeline(), False, monkeypatch, on_error="skip")
    assert_same(fast, slow)
    # a raw sample whose stored length does not match its shape is refused by both
    # paths (the fast path must not read past it into the next sample)
    assert sum(len(y) for _, y in fast) == 15


_DAMAGED_INDEX = """
import sys
import numpy as np
from pixpack import format as fmt
from pixpack.loader import Loader
from pixpack import ops
path, fast = sys.argv[1], sys.argv[2] == "1"
with open(path, "r+b") as f:
    header = np.frombuffer(f.read(fmt.HEADER_DTYPE.itemsize), fmt.HEADER_DTYPE)[0]
    at = int(header["index_offset"])
    f.seek(at)
    entry = np.frombuffer(f.read(fmt.INDEX_DTYPE.itemsize), fmt.INDEX_DTYPE).copy()
    # 2**31 * 2**31 * 4 channels * 1 byte wraps around to 0 == the stored length
    entry["height"], entry["width"], entry["channels"], entry["nbytes"] = 2**31, 2**31, 4, 0
    f.seek(at)
    f.write(entry.tobytes())
loader = Loader(path, 4, pipeline=[ops.RandomResizedCrop(8)], shuffle=False, workers=1,
                on_error="skip", channels=4)
if not fast:
    loader.pipeline.fused = None
print(sum(len(y) for _, y in loader))
"""


def test_damaged_index_sizes_that_wrap_around_are_refused(photos, tmp_path):
    """A flipped index entry whose h * w * c * itemsize overflows to its stored length
    must not reach the kernel (it read gigabytes past the map: SIGSEGV); both paths
    skip that sample. Run in a child process: a regression would kill the test run."""
    import shutil
    import subprocess
    import sys

    images = [np.ascontiguousarray(np.dstack([img, img[:, :, :1]])) for img in
              photo_images(photos, 6)]  # fmt: skip
    good = write_pack(tmp_path / "good.pixpack", images).path
    for fast in ("1", "0"):
        bad = tmp_path / f"bad{fast}.pixpack"
        shutil.copy(good, bad)
        run = subprocess.run(
            [sys.executable, "-c", _DAMAGED_INDEX, str(bad), fast],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr[-2000:]
        assert run.stdout.split()[-1] == "5"


def test_native_draws_equal_the_python_ops():
    """draw_boxes reproduces sample_rng + RandomResizedCrop.make_params + the flips'
    draws exactly: normal draws, the central fallback (impossible scales, extreme
    ratios), 0-3 flips, large seeds and indices."""
    from pixpack._native._resample import draw_boxes

    from pixpack.ops.base import sample_rng

    pick = np.random.default_rng(1)
    fallbacks = 0
    for trial in range(32):
        scale = [(0.08, 1.0), (0.9, 1.0), (0.01, 0.02), (1.5, 3.0)][trial % 4]
        ratio = [(3 / 4, 4 / 3), (0.2, 0.25), (5.0, 6.0), (1.0, 1.0)][(trial // 4) % 4]
        rrc = ops.RandomResizedCrop(32, scale=scale, ratio=ratio)
        flips = [
            ops.RandomHorizontalFlip(0.5),
            ops.RandomVerticalFlip(0.3),
            ops.RandomHorizontalFlip(0.9),
        ][: trial % 4]
        seed = int(pick.integers(0, 2**63)) if trial % 2 else trial
        epoch = int(pick.integers(0, 1000))
        n = 150
        idx = pick.integers(0, 2**40, n).astype(np.int64)
        hs = pick.integers(1, 600, n).astype(np.int64)
        ws = pick.integers(1, 600, n).astype(np.int64)
        got = np.empty((n, 5), np.int64)
        bits = [(f.p, 1 if f.horizontal else 2) for f in flips]
        draw_boxes(seed, epoch, idx, hs, ws, (*rrc._draw, *rrc.ratio), bits, got)
        rng = sample_rng(0, 0, 0)
        for i in range(n):
            rng = sample_rng(seed, epoch, int(idx[i]), rng)
            box = rrc.make_params(rng, (int(hs[i]), int(ws[i]), 3))
            flip = 0
            for f, (_, bit) in zip(flips, bits, strict=True):
                flip ^= bit if f.make_params(rng, (32, 32, 3)) else 0
            assert tuple(got[i]) == (box.top, box.left, box.height, box.width, flip), (trial, i)
            fallbacks += scale[0] > 1.0
    assert fallbacks > 0


def test_jpeg_samples_decode_into_the_threads_scratch(jpeg_pack, monkeypatch):
    """No array per JPEG sample: one read per sample (a checksum-checking pack's) is
    decoded into its thread's reused buffer (a fresh one per sample cost page faults
    and unmaps once TensorFlow had fixed glibc's mmap threshold: ~1,100 faults per
    loader thread per 2,000-image epoch)."""
    from pixpack.read import jpeg

    jpeg_pack = open_pack(jpeg_pack.path, check_checksums=True)

    seen = []
    real = jpeg.decode_jpeg

    def spy(*args, **kwargs):
        seen.append(kwargs.get("scratch") is not None)
        return real(*args, **kwargs)

    monkeypatch.setattr(jpeg, "decode_jpeg", spy)
    loader = Loader(jpeg_pack, 8, pipeline=[ops.RandomResizedCrop(24)], output="numpy", seed=1)
    assert loader.pipeline.fused is not None
    for _ in loader:
        pass
    loader.close()
    assert len(seen) >= len(jpeg_pack) and all(seen)  # (and the next epoch's first batches)
