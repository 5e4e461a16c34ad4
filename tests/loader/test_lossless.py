"""The loader on lossless packs: the same batches as from the raw pack of the same
images (fast path and general path), and damaged samples handled by ``on_error``."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import pixpack
from pixpack import format as fmt
from pixpack import ops
from pixpack.errors import CorruptPackError, LoaderError


def _pack(path, images, mode):
    pixpack.pack([(img, i % 3) for i, img in enumerate(images)], path, mode=mode, quiet=True,
                 workers=1)  # fmt: skip
    return pixpack.open(path)


def _batches(pack, pipeline, **kwargs):
    loader = pixpack.Loader(pack, 4, seed=7, workers=2, pipeline=pipeline, **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [(x.clone(), y.clone()) for x, y in loader]


def _images(photos, kind):
    rng = np.random.default_rng(3)
    crops = [p[:160, :200] for p in photos[:10]]
    if kind == "uint8":
        return [np.ascontiguousarray(c) for c in crops]
    if kind == "uint16":
        return [np.ascontiguousarray(c[:, :, :1].astype(np.uint16) * 16) for c in crops]
    if kind == "int16":
        return [np.ascontiguousarray(c[:, :, :1].astype(np.int16) * 16 - 1024) for c in crops]
    if kind == "float32":
        return [rng.normal(0, 1, (160, 200, 1)).astype(np.float32) for _ in crops]
    return [rng.integers(0, 4096, (160, 200, 7), dtype=np.uint16) for _ in crops]  # 7 channels


PIPELINES = {
    "fused": lambda: [ops.RandomResizedCrop(64), ops.RandomHorizontalFlip()],
    "general": lambda: [ops.RandomResizedCrop(64), ops.RandomVerticalFlip(), ops.CenterCrop(48)],
    "no region op": lambda: [ops.RandomHorizontalFlip(), ops.CenterCrop(64)],
}


@pytest.mark.parametrize("kind", ["uint8", "uint16", "int16", "float32", "7ch"])
@pytest.mark.parametrize("pipeline", list(PIPELINES))
def test_batches_equal_the_raw_packs(tmp_path, photos, kind, pipeline):
    images = _images(photos, kind)
    raw = _pack(tmp_path / "raw.pixpack", images, "raw")
    packed = _pack(tmp_path / "lossless.pixpack", images, "lossless")
    assert set(packed.index["mode"].tolist()) == {fmt.MODE_LOSSLESS}
    want = _batches(raw, PIPELINES[pipeline]())
    got = _batches(packed, PIPELINES[pipeline]())
    assert len(got) == len(want)
    for (x, y), (xw, yw) in zip(got, want, strict=True):
        assert torch.equal(y, yw) and x.dtype == xw.dtype and torch.equal(x, xw)


def _damage(pack_path, i):
    with pixpack.open(pack_path) as pack:
        offset, nbytes = int(pack.index["offset"][i]), int(pack.index["nbytes"][i])
    with open(pack_path, "r+b") as f:  # every LZ4 block byte: no band decodes
        f.seek(offset + 12)
        f.write(b"\xff" * (nbytes - 12))


@pytest.mark.parametrize("pipeline", list(PIPELINES))
def test_damaged_sample_is_skipped_or_raises(tmp_path, photos, pipeline):
    images = _images(photos, "uint16")
    path = tmp_path / "bad.pixpack"
    _pack(path, images, "lossless").close()
    _damage(path, 5)
    pack = pixpack.open(path)
    with pytest.raises(CorruptPackError):
        pack[5]
    loader = pixpack.Loader(pack, 4, seed=0, workers=2, on_error="skip", shuffle=False,
                            pipeline=PIPELINES[pipeline]())  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        labels = torch.cat([y for _, y in loader])
    assert len(labels) == len(images) - 1
    assert [s[0] for s in loader.skipped] == [5]
    loader = pixpack.Loader(pack, 4, seed=0, workers=2, shuffle=False,
                            pipeline=PIPELINES[pipeline]())  # fmt: skip
    with pytest.raises((LoaderError, CorruptPackError), match="sample 5"):
        for _ in loader:
            pass
