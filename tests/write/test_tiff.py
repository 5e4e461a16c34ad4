"""TIFF stacks, many channels, signed and float pixels (issue 16 item 2): never the
first page silently; pages as channels or samples by an explicit option."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import pixpack
from pixpack.cli.main import main

tifffile = pytest.importorskip("tifffile")


@pytest.fixture
def tiffs(photos, tmp_path) -> tuple[Path, dict[str, np.ndarray]]:
    """Real photo crops as a 5-page 12-bit z-stack, a 5-channel 16-bit image, int16 and
    float32 slices, a 32-bit file of 16-bit values and a float64 one."""
    gray = [p[:40, :48].mean(axis=2) for p in photos[:5]]
    arrays = {
        "a/stack.tif": np.stack([(g * 16).astype(np.uint16) for g in gray]),  # (5, H, W)
        "a/multi.tif": np.stack([(g * 257).astype(np.uint16) for g in gray], axis=2),
        "b/ct.tif": (gray[0] * 16 - 1024).astype(np.int16),
        "b/float.tif": (gray[1] / 255.0 - 0.25).astype(np.float32),
        "b/wide.tif": (gray[2] * 200).astype(np.int32),
        "b/double.tif": gray[3].astype(np.float64),
    }
    for name, array in arrays.items():
        (tmp_path / "src" / name).parent.mkdir(parents=True, exist_ok=True)
        planar = {"planarconfig": "contig"} if name == "a/multi.tif" else {}
        tifffile.imwrite(tmp_path / "src" / name, array, photometric="minisblack", **planar)
    return tmp_path / "src", arrays


def _pack(src: Path, out: Path, **kw) -> tuple[pixpack.Pack, dict[str, str]]:
    with pytest.warns(UserWarning, match="skipped"):
        pixpack.pack(src, out, mode="raw", quiet=True, workers=1, **kw)
    pack = pixpack.open(out)
    return pack, {Path(s["path"]).name: s["reason"] for s in pack.metadata["skipped"]}


def _by_path(pack: pixpack.Pack) -> dict[str, np.ndarray]:
    return {path: pack[i][0] for i, path in enumerate(pack.columns["path"].tolist())}


def test_a_stack_is_refused_by_default_and_other_tiffs_kept_exactly(tiffs, tmp_path):
    src, arrays = tiffs
    pack, skipped = _pack(src, tmp_path / "p.pixpack")
    assert (
        "a TIFF of 5 pages" in skipped["stack.tif"] and "pages='channels'" in skipped["stack.tif"]
    )
    assert "float64 pixels are not stored" in skipped["double.tif"]
    got = _by_path(pack)
    assert np.array_equal(got["a/multi.tif"], arrays["a/multi.tif"])  # 5 channels, 16-bit
    assert got["b/ct.tif"].dtype == np.int16
    assert np.array_equal(got["b/ct.tif"][:, :, 0], arrays["b/ct.tif"])
    assert np.array_equal(got["b/float.tif"][:, :, 0], arrays["b/float.tif"])
    wide = got["b/wide.tif"]  # 32-bit integers that fit in 16 bits: kept exactly
    assert wide.dtype == np.uint16 and np.array_equal(wide[:, :, 0], arrays["b/wide.tif"])


def test_pages_as_channels(tiffs, tmp_path):
    src, arrays = tiffs
    pack, _ = _pack(src, tmp_path / "c.pixpack", pages="channels")
    stack = _by_path(pack)["a/stack.tif"]
    assert stack.shape == (40, 48, 5) and np.array_equal(
        stack, np.moveaxis(arrays["a/stack.tif"], 0, -1)
    )


def test_pages_as_samples_with_a_page_column(tiffs, tmp_path):
    src, arrays = tiffs
    pack, _ = _pack(src, tmp_path / "s.pixpack", pages="samples")
    got = _by_path(pack)
    for page in range(5):
        assert np.array_equal(got[f"a/stack.tif#{page}"][:, :, 0], arrays["a/stack.tif"][page])
    assert pack.query("page = 3").indices.tolist() == [
        pack.columns["path"].tolist().index("a/stack.tif#3")
    ]
    assert len(pack.query("page IS NULL")) == len(pack) - 5


def test_cli_pages_flag(tiffs, tmp_path):
    src, _ = tiffs
    assert main(["pack", str(src), str(tmp_path / "cli.pixpack"), "--mode", "raw",
                 "--pages", "samples", "--quiet"]) == 0  # fmt: skip
    assert len(pixpack.open(tmp_path / "cli.pixpack")) == 5 + 4


def test_limits_are_checked_before_any_page_is_decoded(tmp_path, monkeypatch):
    from PIL import Image

    from pixpack.errors import ImageDecodeError
    from pixpack.write.imageio import load_image

    tifffile.imwrite(tmp_path / "deep.tif", np.zeros((300, 2, 2), np.uint8))  # 300 pages
    with pytest.raises(ImageDecodeError, match="300 pages of 300 channels in all"):
        load_image(tmp_path / "deep.tif", pages="channels")
    tifffile.imwrite(tmp_path / "wide.tif", np.zeros((3, 20, 2000), np.uint16),
                     photometric="minisblack", planarconfig="separate")  # fmt: skip
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)
    with pytest.raises(ImageDecodeError, match="pixels"):
        load_image(tmp_path / "wide.tif")
