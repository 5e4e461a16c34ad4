"""A damaged index entry costs its own sample, never the epoch or the Loader itself.

The index is not checksummed on open (``verify`` checks it), so a flipped field reaches
the Loader: an unknown pixel type, or an empty image. Each fails only its own sample,
through ``on_error``, on the fast path and on the general path alike.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

import pixpack
from pixpack import format as fmt
from pixpack.errors import LoaderError
from pixpack.loader import Loader
from pixpack.ops import RandomHorizontalFlip, RandomResizedCrop

FAST = [RandomResizedCrop(32), RandomHorizontalFlip()]
GENERAL = [RandomResizedCrop(32, interpolation="nearest")]


@pytest.fixture(scope="module")
def raw_pack(photo_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("damaged") / "ok.pixpack"
    pixpack.pack(photo_folder, out, mode="raw", max_side=64, quiet=True)
    return out


def _damage(src: Path, dst: Path, sample: int, **fields: int) -> Path:
    """A copy of ``src`` whose index entry ``sample`` has ``fields`` overwritten."""
    shutil.copyfile(src, dst)
    with pixpack.open(src) as pack:
        offset, entry = pack.header["index_offset"], pack.header["entry_size"]
    data = bytearray(dst.read_bytes())
    row = np.frombuffer(data, fmt.INDEX_DTYPE, 1, offset + sample * entry).copy()
    for name, value in fields.items():
        row[name] = value
    data[offset + sample * entry : offset + sample * entry + fmt.INDEX_DTYPE.itemsize] = (
        row.tobytes()
    )
    dst.write_bytes(bytes(data))
    return dst


def _epoch(path: Path, pipeline: list, on_error: str) -> list[int]:
    loader = Loader(path, 4, pipeline=pipeline, on_error=on_error, shuffle=False, workers=2,
                    dtype="uint8")  # fmt: skip
    labels = [int(x) for _, batch in loader for x in batch]
    loader.close()
    return labels


@pytest.mark.parametrize("pipeline", [FAST, GENERAL], ids=["fast", "general"])
@pytest.mark.parametrize(
    "fields", [{"height": 0}, {"width": 0}, {"dtype": 77}], ids=["h0", "w0", "dtype77"]
)
def test_a_damaged_entry_fails_only_its_sample(raw_pack, tmp_path, pipeline, fields):
    bad = _damage(raw_pack, tmp_path / "bad.pixpack", 5, **fields)
    with pixpack.open(raw_pack) as pack:
        expected = [int(x) for i, x in enumerate(pack.targets) if i != 5]
    with pytest.warns(UserWarning, match="skipped sample 5"):
        assert _epoch(bad, pipeline, "warn") == expected
    with pytest.raises(LoaderError, match="sample 5 failed") as info:
        _epoch(bad, pipeline, "raise")
    assert info.value.index == 5


def test_batch_buffers_never_exceed_one_epoch(raw_pack):
    with pixpack.open(raw_pack) as pack:
        n = len(pack)
    loader = Loader(raw_pack, 60_000, pipeline=FAST, dtype="uint8")
    _, labels = next(iter(loader))
    assert len(labels) == n
    assert all(buf.work.shape[0] == n for buf in loader._ring)
    loader.close()


@pytest.fixture(scope="module")
def jpeg_pack(photo_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("damaged") / "ok-jpeg.pixpack"
    pixpack.pack(photo_folder, out, mode="jpeg", max_side=64, quiet=True)
    return out


@pytest.mark.parametrize("pipeline", [FAST, GENERAL], ids=["fast", "general"])
def test_a_jpeg_entry_taller_than_its_image_fails_only_its_sample(jpeg_pack, tmp_path, pipeline):
    """The region decode refuses a box outside the real image (a UsageError from
    decode_jpeg): that is the sample's fault, so "skip" skips it; only a pipeline output
    the batch cannot hold (PipelineError) is raised whatever on_error says."""
    bad = _damage(jpeg_pack, tmp_path / "bad.pixpack", 5, height=5000)
    with pixpack.open(jpeg_pack) as pack:
        expected = [int(x) for i, x in enumerate(pack.targets) if i != 5]
    with pytest.warns(UserWarning, match="skipped sample 5"):
        assert _epoch(bad, pipeline, "warn") == expected
    with pytest.raises(LoaderError, match=r"sample 5 failed .* it cannot be read: pixpack verify"):
        _epoch(bad, pipeline, "raise")
