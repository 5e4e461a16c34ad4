"""Sharded packs: equal to the single-file pack sample for sample, resumable, sliced
into jobs and merged, and refusing what does not make one dataset."""

from __future__ import annotations

import itertools
import json
import os

import numpy as np
import pytest

import pixpack
from pixpack import shard_format as sf
from pixpack.cli.main import main
from pixpack.errors import UsageError
from pixpack.write.shard_plan import shard_end, slice_bounds


@pytest.fixture(scope="module")
def single(photo_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("single") / "one.pixpack"
    pixpack.pack(photo_folder, out, quiet=True, workers=2, mode="jpeg")
    return out


def _assert_same(a, b):
    assert len(a) == len(b)
    assert a.classes == b.classes
    np.testing.assert_array_equal(a.targets, b.targets)
    for i in range(len(a)):
        assert bytes(a.sample_bytes(i)) == bytes(b.sample_bytes(i)), i
        assert a.sample_info(i)["checksum"] == b.sample_info(i)["checksum"]
    assert list(a.columns) == list(b.columns)
    for name in a.columns:
        assert list(a.columns[name]) == list(b.columns[name])
    for key in ("class_counts", "mode_histogram", "bytes_stored", "stats_channels"):
        assert a.metadata[key] == b.metadata[key], key
    np.testing.assert_allclose(a.metadata["mean"], b.metadata["mean"], rtol=1e-12)
    np.testing.assert_allclose(a.metadata["std"], b.metadata["std"], rtol=1e-9)


@pytest.mark.parametrize("size", ["5samples", "100kB", "24samples", "1samples"])
def test_sharded_equals_single(photo_folder, single, tmp_path, size):
    out = tmp_path / "sharded"
    pixpack.pack(photo_folder, out, quiet=True, workers=2, mode="jpeg", shard_size=size)
    with pixpack.open(single) as a, pixpack.open(out) as b:
        assert isinstance(b, pixpack.ShardedPack)
        _assert_same(a, b)
        if size.endswith("kB"):  # no shard passes the size unless one sample does
            for path in b.shard_paths:
                with pixpack.Pack(path) as shard:
                    assert shard.metadata["bytes_stored"] <= 100_000 or len(shard) == 1
    with pixpack.open(out / sf.MANIFEST_NAME) as c:  # the manifest file itself
        assert len(c) == 24


def test_resume_redoes_only_missing_shards(photo_folder, single, tmp_path):
    out = tmp_path / "sharded"
    pixpack.pack(photo_folder, out, quiet=True, workers=2, mode="jpeg", shard_size="5samples")
    shards = sorted(out.glob("part-*.pixpack"))
    mtimes = {p.name: p.stat().st_mtime_ns for p in shards}
    shards[2].unlink()
    with pytest.raises(pixpack.CorruptPackError, match="missing"):
        pixpack.open(out)[12]
    pixpack.pack(photo_folder, out, quiet=True, workers=2, mode="jpeg", shard_size="5samples")
    for p in sorted(out.glob("part-*.pixpack")):
        if p.name != shards[2].name:
            assert p.stat().st_mtime_ns == mtimes[p.name], p.name
    assert shards[2].exists()
    with pixpack.open(single) as a, pixpack.open(out) as b:
        _assert_same(a, b)


@pytest.mark.parametrize("size", ["5samples", "100kB", None])
def test_slices_then_merge_equal_one_shot(photo_folder, single, tmp_path, size):
    out = tmp_path / "sliced"
    extra = {} if size is None else {"shard_size": size}
    for i in (2, 0):  # out of order; slice 1 missing: no manifest yet
        pixpack.pack(photo_folder, out, quiet=True, workers=2, mode="jpeg",
                     shard_index=i, num_shards=3, **extra)  # fmt: skip
    assert not (out / sf.MANIFEST_NAME).exists()
    with pytest.raises(UsageError, match="in no shard"):
        pixpack.merge(out)
    pixpack.pack(photo_folder, out, quiet=True, workers=2, mode="jpeg",
                 shard_index=1, num_shards=3, **extra)  # fmt: skip
    assert (out / sf.MANIFEST_NAME).exists()  # the last slice wrote it
    first = json.loads((out / sf.MANIFEST_NAME).read_text())
    pixpack.merge(out)
    again = json.loads((out / sf.MANIFEST_NAME).read_text())
    assert first["shards"] == again["shards"]
    with pixpack.open(single) as a, pixpack.open(out) as b:
        _assert_same(a, b)
    if size == "5samples":  # slices hold whole shards: the one-shot run's files
        one = tmp_path / "one"
        pixpack.pack(photo_folder, one, quiet=True, workers=2, mode="jpeg", shard_size=size)
        assert sorted(p.name for p in one.glob("*.pixpack")) == sorted(
            p.name for p in out.glob("*.pixpack")
        )


def test_merge_separate_packs_and_refusals(photo_folder, single, tmp_path):
    b = tmp_path / "b.pixpack"
    pixpack.pack(photo_folder, b, quiet=True, workers=2, mode="jpeg")
    merged = tmp_path / "merged"
    pixpack.merge(merged, [single, b])
    with pixpack.open(merged) as m, pixpack.open(single) as a:
        assert len(m) == 2 * len(a)
        assert bytes(m.sample_bytes(len(a) + 3)) == bytes(a.sample_bytes(3))
        np.testing.assert_array_equal(m.targets[len(a) :], a.targets)
    raw = tmp_path / "raw.pixpack"
    pixpack.pack(photo_folder, raw, quiet=True, workers=2, mode="raw")
    with pytest.raises(UsageError, match=r"raw.pixpack: packed with mode='raw'.*same options"):
        pixpack.merge(tmp_path / "bad", [single, raw])
    other = tmp_path / "other.pixpack"
    pixpack.pack(photo_folder, other, quiet=True, workers=2, mode="jpeg",
                 classes=("class_02", "class_01", "class_00"))  # fmt: skip
    with pytest.raises(UsageError, match="classes-from"):
        pixpack.merge(tmp_path / "bad", [single, other])
    assert not (tmp_path / "bad" / sf.MANIFEST_NAME).exists()
    # never over a file pixpack did not write
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / sf.MANIFEST_NAME).write_text('{"something": "else"}')
    with pytest.raises(pixpack.OutputExistsError, match="not a pixpack shard manifest"):
        pixpack.merge(mine, [single])
    assert (mine / sf.MANIFEST_NAME).read_text() == '{"something": "else"}'


def test_out_must_be_a_directory(photo_folder, single):
    before = single.read_bytes()
    with pytest.raises(UsageError, match="not a directory"):
        pixpack.pack(photo_folder, single, quiet=True, shard_size="5samples")
    assert single.read_bytes() == before


@pytest.mark.parametrize("text", ["10000", "1 parsec", "0samples", "-5MB", ""])
def test_bad_shard_sizes(text):
    with pytest.raises(UsageError, match="shard_size"):
        pixpack.PackOptions(shard_size=text)


def test_shard_index_needs_num_shards():
    with pytest.raises(UsageError, match="together"):
        pixpack.PackOptions(shard_index=1)
    with pytest.raises(UsageError, match="shard_index"):
        pixpack.PackOptions(shard_index=3, num_shards=3)


@pytest.mark.parametrize("total", [0, 1, 7, 24, 100])
@pytest.mark.parametrize("count", [1, 2, 3, 7])
@pytest.mark.parametrize("limit", [None, ("samples", 5), ("samples", 1), ("bytes", 10)])
def test_slices_cover_the_source_once(total, count, limit):
    bounds = [slice_bounds(total, limit, i, count) for i in range(count)]
    assert bounds[0][0] == 0 and bounds[-1][1] == total
    for (_, stop), (start, _) in itertools.pairwise(bounds):
        assert stop == start
    if limit is not None and limit[0] == "samples":  # slices hold whole shards
        for start, stop in bounds:
            assert start % limit[1] == 0
            if start < stop:
                assert shard_end(start, stop, limit) == min(start + limit[1], stop)


def test_cli_pack_merge_info_verify(photo_folder, single, tmp_path, capsys):
    out = tmp_path / "cli"
    for i in range(2):
        flags = ["--shard-size", "7samples", "--shard-index", str(i), "--num-shards", "2"]
        code = main(["pack", str(photo_folder), str(out), "--mode", "jpeg", "--quiet", *flags])
        assert code == 0
    os.unlink(out / sf.MANIFEST_NAME)
    assert main(["merge", str(out)]) == 0
    assert "merged 4 packs, 24 samples" in capsys.readouterr().out
    assert main(["info", str(out)]) == 0
    assert "shards:    4" in capsys.readouterr().out
    assert main(["verify", str(out)]) == 0
    assert main(["pack", str(photo_folder), str(out), "--shard-size", "12"]) == 2
    assert "10000samples" not in capsys.readouterr().err  # the hint uses the given number


class _LabelsOnly:
    """A Python dataset with int labels and no ``.classes``: its first samples have
    labels 0-1, the later ones 0-3, so early shards see fewer classes."""

    def __len__(self):
        return 12

    def __getitem__(self, i):
        return np.full((6, 5, 3), i * 20, np.uint8), (i % 2 if i < 6 else i % 4)


@pytest.mark.parametrize("how", ["one-shot", "slices"])
def test_dataset_without_classes_shards_into_one_class_list(tmp_path, how):
    """Each shard names classes after the labels it saw ("0", "1" in the first, up to
    "3" later); the manifest holds the longest list, which every shard's begins, and
    the sharded pack equals the single-file pack."""
    single = tmp_path / "one.pixpack"
    pixpack.pack(_LabelsOnly(), single, quiet=True, workers=1)
    out = tmp_path / "sharded"
    if how == "one-shot":
        pixpack.pack(_LabelsOnly(), out, quiet=True, workers=1, shard_size="3samples")
    else:
        for i in range(2):
            pixpack.pack(_LabelsOnly(), out, quiet=True, workers=1, shard_index=i, num_shards=2)
        pixpack.merge(out)
    with pixpack.Pack(sorted(out.glob("part-*.pixpack"))[0]) as first:
        assert first.classes == ["0", "1"]
    with pixpack.open(single) as a, pixpack.open(out) as b:
        assert b.classes == a.classes == ["0", "1", "2", "3"]
        np.testing.assert_array_equal(b.targets, a.targets)
        assert b.metadata["class_counts"] == a.metadata["class_counts"]
    assert pixpack.verify(out).ok


def test_label_named_classes_do_not_mix_with_real_ones(photo_folder, tmp_path):
    """Prefix lists are accepted only when every pack named its classes after labels:
    a folder's real class list and a dataset's label names still refuse to merge."""
    pixpack.pack(photo_folder, tmp_path / "a.pixpack", quiet=True, workers=1)
    pixpack.pack(_LabelsOnly(), tmp_path / "b.pixpack", quiet=True, workers=1)
    with pytest.raises(UsageError, match="classes"):
        pixpack.merge(tmp_path / "m", [tmp_path / "a.pixpack", tmp_path / "b.pixpack"])


def test_index_named_class_lists_agree_without_the_flag():
    """Shards written before ``classes_from_labels`` existed hold no flag: lists that
    are exactly "0".."k" still merge by prefix (a rerun keeps those shards), and no
    other list does."""
    from pixpack.shard_format import classes_agree, index_named
    from pixpack.write.merge import merged_classes

    old, new = {"classes": ["0", "1"]}, {"classes": ["0", "1", "2"], "classes_from_labels": True}
    assert index_named(["0", "1", "2"]) and index_named([])
    assert not index_named(["0", "2"]) and not index_named(["1"]) and not index_named(["a"])
    assert merged_classes([old, new]) == ["0", "1", "2"]
    assert classes_agree(old, ["0", "1", "2"]) and classes_agree(new, ["0", "1", "2"])
    assert not classes_agree({"classes": ["0", "2"]}, ["0", "1", "2"])
    assert not classes_agree({"classes": ["cat"]}, ["cat", "dog"])  # real names: equal only
    assert merged_classes([{"classes": ["cat"]}, {"classes": ["cat", "dog"]}]) == ["cat"]
