"""max_side downscaling: close to a float Lanczos of the full-resolution decode."""

from __future__ import annotations

import io

import cv2
import numpy as np
import simplejpeg
from PIL import Image

from pixpack import sample_data
from pixpack.write import load_image
from pixpack.write.imageio import target_size

_LANCZOS = Image.Resampling.LANCZOS


def _float_lanczos(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    planes = [
        np.asarray(
            Image.fromarray(rgb[:, :, c].astype(np.float32), "F").resize(size, Image.LANCZOS)
        )
        for c in range(rgb.shape[2])
    ]
    return np.clip(np.stack(planes, axis=2), 0, 255)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255.0**2 / np.mean((a.astype(np.float64) - b) ** 2)))


def test_downscale_quality_against_float_lanczos(photos, tmp_path):
    rng = np.random.default_rng(5)
    scores = []
    for i, size in enumerate([(500, 375), (375, 500), (640, 480), (1600, 1200), (1200, 1600)]):
        buf = io.BytesIO()
        sample_data.make_photo(photos, size, rng).save(buf, "JPEG", quality=90)
        path = tmp_path / f"{i}.jpg"
        path.write_bytes(buf.getvalue())
        full = simplejpeg.decode_jpeg(buf.getvalue())
        th, tw = target_size(*full.shape[:2], 256)
        got = load_image(path, max_side=256)
        assert got.shape == (th, tw, 3) and got.dtype == np.uint8
        scores.append(_psnr(got, _float_lanczos(full, (tw, th))))
    # Pillow's uint8 Lanczos with reducing_gap=2 scores 45-57 dB, INTER_AREA 37-42 dB,
    # bilinear without antialiasing ~31 dB on the large photos.
    assert min(scores) > 34, scores
    assert float(np.median(scores)) > 36, scores


def test_downscale_uint16_and_alpha_match_uint8_geometry(photos):
    rgb = np.asarray(sample_data.make_photo(photos, (500, 375), np.random.default_rng(6)))
    rgba = np.concatenate([rgb, np.full((*rgb.shape[:2], 1), 255, np.uint8)], axis=2)
    small8 = load_image(rgba, max_side=100)
    small16 = load_image(rgb.astype(np.uint16) * 257, max_side=100)
    assert small8.shape == (75, 100, 4) and small16.shape == (75, 100, 3)
    assert (small8[:, :, 3] == 255).all()
    # The same filter whatever the depth: the 16-bit result / 257 ~= the 8-bit one.
    assert np.abs(small16 / 257.0 - small8[:, :, :3]).max() <= 1.5  # two uint8 roundings


def test_packing_leaves_opencv_threads_as_they_were(photo_folder, tmp_path):
    from pixpack.write import pack

    before = cv2.getNumThreads()
    cv2.setNumThreads(2)
    try:
        pack(photo_folder, tmp_path / "a.pixpack", workers=2, max_side=64, quiet=True)
        pack(photo_folder, tmp_path / "b.pixpack", workers=1, max_side=64, quiet=True)
        assert cv2.getNumThreads() == 2
    finally:
        cv2.setNumThreads(before)


def test_size_after_dct_reduced_decode_is_computed_from_the_full_size(photos, tmp_path):
    """(512, 1175) -> (112, 256); recomputed from a 1/2-scale decode it would be 111."""
    rng = np.random.default_rng(9)
    for i, (w, h) in enumerate([(1175, 512), (1056, 513), (512, 1175)]):
        buf = io.BytesIO()
        sample_data.make_photo(photos, (w, h), rng).save(buf, "JPEG", quality=90)
        path = tmp_path / f"wide{i}.jpg"
        path.write_bytes(buf.getvalue())
        expected = target_size(h, w, 256)
        assert load_image(path, max_side=256).shape[:2] == expected
        pil = Image.open(io.BytesIO(buf.getvalue()))
        assert load_image(pil, max_side=256).shape[:2] == expected


def test_native_folded_filter_equals_opencv_two_step(photos, monkeypatch):
    """The native Gaussian-then-bilinear taps reproduce OpenCV's GaussianBlur +
    INTER_LINEAR (the fallback without the extension) within one level: OpenCV rounds
    its blurred intermediate to integers, the folded filter does not."""
    from pixpack.write import resize as R

    if R._native_resize is None:
        return  # nothing to compare: the fallback is what runs
    rng = np.random.default_rng(8)
    for size, side in [((500, 375), 256), ((1600, 1200), 256), ((375, 500), 100), ((300, 40), 64)]:
        rgb = np.asarray(sample_data.make_photo(photos, size, rng))
        for img in (rgb, rgb[:, :, :1].copy(), rgb.astype(np.uint16) * 257 + 3):
            target = target_size(*img.shape[:2], side)
            native = R.downscale(img, target)
            with monkeypatch.context() as m:
                m.setattr(R, "_native_resize", None)
                opencv = R.downscale(img, target)
            assert native.shape == opencv.shape and native.dtype == opencv.dtype
            diff = np.abs(native.astype(np.int64) - opencv)
            peak_level = 1 if img.dtype == np.uint8 else 257
            assert diff.max() <= peak_level, (size, img.shape, diff.max())
            assert diff.mean() < 0.35 * peak_level, (size, img.shape, diff.mean())


def test_short_side_target_sizes():
    """Issue 13: no shorter-side resize at pack time, so --max-side 256 then Resize(256)
    + CenterCrop(224) upsampled 4:3 validation images by 1.33x."""
    from pixpack.write.resize import SizeLimit

    assert target_size(375, 500, SizeLimit(short_side=256)) == (256, 341)
    assert target_size(500, 375, SizeLimit(short_side=256)) == (341, 256)
    assert target_size(200, 300, SizeLimit(short_side=256)) == (200, 300)  # never upscales
    assert target_size(375, 1500, SizeLimit(400, 256)) == (100, 400)  # both limits hold
    assert target_size(375, 500, SizeLimit(400, 256)) == (256, 341)
    for h, w in [(375, 500), (500, 375), (256, 256), (10, 3000)]:  # an int is max_side
        assert target_size(h, w, SizeLimit(300)) == target_size(h, w, 300)


def test_pack_with_short_side(tmp_path, photos):
    import pixpack
    from pixpack.options import PackOptions

    images = [(np.ascontiguousarray(p[:300, :400]), 0) for p in photos[:2]]
    images += [(np.ascontiguousarray(p[:400, :300]), 1) for p in photos[2:4]]
    images += [(np.ascontiguousarray(photos[4][:60, :90]), 1)]
    pixpack.pack(images, tmp_path / "s.pixpack", short_side=96, workers=1, quiet=True)
    with pixpack.open(tmp_path / "s.pixpack") as pack:
        shapes = [pack.sample_shape(i)[:2] for i in range(len(pack))]
        assert pack.metadata["options"]["short_side"] == 96
    assert shapes == [(96, 128)] * 2 + [(128, 96)] * 2 + [(60, 90)]
    assert PackOptions(short_side=96).content_key() != PackOptions().content_key()
    assert "short_side" not in PackOptions(max_side=96).content_key()  # old keys stay
