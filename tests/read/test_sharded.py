"""Reading a sharded pack: the Pack API over all shards, O(1) in samples to open,
the same Loader batches as one file, and one-line errors for missing or foreign shards."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

import pixpack
from pixpack import ops
from pixpack import shard_format as sf


@pytest.fixture(scope="module")
def packs(photo_folder, tmp_path_factory):
    """(single raw pack, the same in 5-sample shards, the same in jpeg shards)."""
    root = tmp_path_factory.mktemp("sharded_read")
    one = root / "one.pixpack"
    pixpack.pack(photo_folder, one, quiet=True, workers=2)
    sharded = root / "sharded"
    pixpack.pack(photo_folder, sharded, quiet=True, workers=2, shard_size="5samples")
    return one, sharded


def _read_bytes() -> int:
    with open("/proc/self/io") as f:
        return int(next(line for line in f if line.startswith("rchar")).split()[1])


def test_open_reads_the_manifest_only(packs):
    _, sharded = packs
    manifest = (sharded / sf.MANIFEST_NAME).stat().st_size
    before = _read_bytes()
    pack = pixpack.open(sharded)
    n, classes, meta = len(pack), pack.classes, pack.metadata
    read = _read_bytes() - before
    assert n == 24 and len(classes) == 3 and meta["num_samples"] == 24
    assert all(p is None for p in pack._opened)  # no shard opened
    assert read < manifest + 64 * 1024  # the manifest (and stat/glob noise), no shard bytes
    pack[17]
    assert sum(p is not None for p in pack._opened) == 1  # only sample 17's shard


def test_api_equals_single(packs):
    one, sharded = packs
    with pixpack.open(one) as a, pixpack.open(sharded) as b:
        for i in (0, 4, 5, 23, -1):
            ia, la = a[i]
            ib, lb = b[i]
            np.testing.assert_array_equal(ia, ib)
            assert la == lb == b.label(i)
            assert a.sample_shape(i) == b.sample_shape(i)
            assert a.sample_mode(i) == b.sample_mode(i)
            np.testing.assert_array_equal(a.read_image(i), b.read_image(i))
        assert [lbl for _, lbl in a] == [lbl for _, lbl in b]
        for name in ("label", "height", "width", "nbytes", "checksum", "mode"):
            np.testing.assert_array_equal(a.index[name], b.index[name])
        assert b.sample_info(7)["index"] == 7 and "part-000000005" in b.sample_info(7)["shard"]
        np.testing.assert_array_equal(
            a.query("width > 400").indices, b.query("width > 400").indices
        )
        assert a.sql("SELECT count(*) FROM samples")[1] == b.sql("SELECT count(*) FROM samples")[1]
        with pytest.raises(IndexError):
            b[24]


def test_loader_batches_equal_single(packs):
    one, sharded = packs
    pipelines = [
        [
            ops.RandomResizedCrop(64),
            ops.RandomHorizontalFlip(),
            ops.Normalize([0.5] * 3, [0.25] * 3),
        ],
        [ops.Resize((40, 40)), ops.RandomVerticalFlip()],
        [ops.CenterCrop(32)],  # the general (not fused) path
    ]
    subset = np.array([3, 22, 9, 4, 17, 11, 0])
    with pixpack.open(one) as a, pixpack.open(sharded) as b:
        for pipe in pipelines:
            for indices in (None, subset):
                la = pixpack.Loader(a, 5, pipeline=pipe, seed=7, workers=2, output="numpy",
                                    indices=indices)  # fmt: skip
                lb = pixpack.Loader(b, 5, pipeline=pipe, seed=7, workers=2, output="numpy",
                                    indices=indices)  # fmt: skip
                for epoch in range(2):
                    got = list(zip(la, lb, strict=True))
                    assert len(got) == len(la), epoch
                    for (xa, ya), (xb, yb) in got:
                        np.testing.assert_array_equal(xa, xb)
                        np.testing.assert_array_equal(ya, yb)


def test_gathered_spans_hold_the_samples(packs):
    _, sharded = packs
    with pixpack.open(sharded) as b:
        indices = np.array([21, 2, 7, 7, 13])
        buffer, offsets, nbytes = b.sample_spans(indices)
        for j, i in enumerate(indices.tolist()):
            got = bytes(memoryview(buffer)[offsets[j] : offsets[j] + nbytes[j]])
            assert got == bytes(b.sample_bytes(i))
        offsets, nbytes = b.spans(indices)
        assert b.storage.will_need_many(offsets, nbytes) >= 1


def test_pickle_subset_and_dataset(packs):
    _, sharded = packs
    with pixpack.open(sharded) as b:
        c = pickle.loads(pickle.dumps(b))
        np.testing.assert_array_equal(c[12][0], b[12][0])
        sub = b.subset([1, 20, 6])
        np.testing.assert_array_equal(sub.targets, b.targets[[1, 20, 6]])
        torch = pytest.importorskip("torch")
        ds = pixpack.PackDataset(b, output="tensor")
        loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2)
        labels = [int(y) for _, y in loader]
        assert labels == b.targets.tolist()


def test_missing_and_replaced_shards(packs, tmp_path):
    one, sharded = packs
    copy = tmp_path / "copy"
    copy.mkdir()
    for p in sharded.iterdir():
        (copy / p.name).write_bytes(p.read_bytes())
    (copy / "part-000000010.pixpack").unlink()
    pack = pixpack.open(copy)
    assert len(pack) == 24  # the manifest alone
    with pytest.raises(
        pixpack.CorruptPackError, match=r"part-000000010.pixpack: shard 2 .* missing"
    ):
        pack[11]
    report = pixpack.verify(copy)
    assert not report.ok and "part-000000010.pixpack is missing" in report.summary()
    (copy / "part-000000010.pixpack").write_bytes(one.read_bytes())  # another pack
    with pytest.raises(pixpack.CorruptPackError, match=r"does not match .*shards.json"):
        pixpack.open(copy)[11]


def test_damaged_sample_named_by_global_index(packs, tmp_path):
    _, sharded = packs
    copy = tmp_path / "copy"
    copy.mkdir()
    for p in sharded.iterdir():
        (copy / p.name).write_bytes(p.read_bytes())
    with pixpack.open(copy) as b:
        offset = b.sample_info(12)["offset"]
    shard = copy / "part-000000010.pixpack"
    data = bytearray(shard.read_bytes())
    data[offset + 10] ^= 0xFF
    shard.write_bytes(bytes(data))
    report = pixpack.verify(copy)
    assert list(report.bad_samples) == [12]
    assert "part-000000010.pixpack, sample 2" in report.bad_samples[12]


def test_newer_and_foreign_manifests(packs, tmp_path):
    _, sharded = packs
    doc = json.loads((sharded / sf.MANIFEST_NAME).read_text())
    newer = tmp_path / "newer"
    newer.mkdir()
    (newer / sf.MANIFEST_NAME).write_text(json.dumps({**doc, "major": 2}))
    with pytest.raises(pixpack.UnsupportedVersionError, match=r"format 2.0, newer .* upgrade"):
        pixpack.open(newer)
    foreign = tmp_path / "foreign.json"
    foreign.write_text('{"shards": []}')
    with pytest.raises(pixpack.NotAPackError, match="not a pixpack shard manifest"):
        pixpack.open(foreign)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / sf.MANIFEST_NAME).write_text(json.dumps({**doc, "num_samples": 5}))
    with pytest.raises(pixpack.CorruptPackError, match="damaged shard manifest"):
        pixpack.open(bad)
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "part-000000000.pixpack").write_bytes(b"")
    with pytest.raises(pixpack.NotAPackError, match=r"no shards\.json"):
        pixpack.open(unfinished)
