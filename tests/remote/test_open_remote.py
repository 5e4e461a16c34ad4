"""Opening and reading remote packs through real servers on localhost: S3 (moto's
server, through s3fs) and plain HTTP with range requests; every sample is checked
against the local single-file pack."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import pixpack
from pixpack import RemoteOptions

pytestmark = pytest.mark.timeout(60)


def _same_samples(remote, local) -> None:
    assert len(remote) == len(local)
    np.testing.assert_array_equal(remote.targets, local.targets)
    for i in range(len(local)):
        assert bytes(remote.sample_bytes(i)) == bytes(local.sample_bytes(i))
        image, label = remote[i]
        expected, expected_label = local[i]
        np.testing.assert_array_equal(image, expected)
        assert label == expected_label


def _loader_batches(pack) -> list[tuple[np.ndarray, np.ndarray]]:
    loader = pixpack.Loader(pack, 7, pipeline=[pixpack.ops.Resize((32, 32))], workers=2,
                            output="numpy", seed=3)  # fmt: skip
    try:
        return [(x.copy(), y.copy()) for x, y in loader]
    finally:
        loader.close()


def test_s3_sharded_open_iterate_verify(s3_server, s3_options, remote_packs, fresh_cache):
    one, _ = remote_packs
    _, bucket = s3_server
    options = RemoteOptions(cache_dir=str(fresh_cache), cache_limit=1 << 30)
    with pixpack.open(f"s3://{bucket}/sharded", storage_options=s3_options, remote=options) as pack:
        assert pack.remote and pack.num_shards == 5
        assert all(p is None for p in pack._opened)  # opening fetched the manifest only
        with pixpack.open(one) as local:
            np.testing.assert_array_equal(pack.targets, local.targets)
            assert all(p is None for p in pack._opened)  # labels by range reads
            _same_samples(pack, local)
            got, want = _loader_batches(pack), _loader_batches(local)
    assert len(got) == len(want)
    for (xa, ya), (xb, yb) in zip(got, want, strict=True):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)


def test_s3_single_file_is_one_shard(s3_server, s3_options, remote_packs, fresh_cache):
    one, _ = remote_packs
    _, bucket = s3_server
    options = RemoteOptions(cache_dir=str(fresh_cache))
    with pixpack.open(f"s3://{bucket}/one.pixpack", storage_options=s3_options,
                      remote=options) as pack, pixpack.open(one) as local:  # fmt: skip
        assert pack.num_shards == 1
        assert pack.classes == local.classes
        _same_samples(pack, local)


def test_http_sharded_and_manifest_url(http_server, faults, remote_packs, fresh_cache):
    base, _ = http_server
    one, _ = remote_packs
    options = RemoteOptions(cache_dir=str(fresh_cache))
    for url in (f"{base}/sharded", f"{base}/sharded/shards.json", f"{base}/one.pixpack"):
        with pixpack.open(url, remote=options) as pack, pixpack.open(one) as local:
            _same_samples(pack, local)
    ranged = [r for _, r in faults.requests if r]
    assert ranged, "headers and indexes come by range requests"


def test_pickles_and_reopens_from_the_cache(http_server, remote_packs, fresh_cache):
    base, _ = http_server
    one, _ = remote_packs
    options = RemoteOptions(cache_dir=str(fresh_cache))
    with pixpack.open(f"{base}/sharded", remote=options) as pack:
        pack[0]
        copy = pickle.loads(pickle.dumps(pack))
        with copy, pixpack.open(one) as local:
            _same_samples(copy, local)
        assert copy._source.cache.downloads == 4  # shard 0 came from the cache


def test_missing_url_is_a_clear_error(http_server, fresh_cache):
    base, _ = http_server
    with pytest.raises(pixpack.NotAPackError, match=r"no shards\.json"):
        pixpack.open(f"{base}/nothing-here", remote=RemoteOptions(cache_dir=str(fresh_cache)))


def test_options_are_checked():
    with pytest.raises(pixpack.UsageError, match="cache_limit"):
        RemoteOptions(cache_limit=0)
    with pytest.raises(pixpack.UsageError, match="cache_limit"):
        RemoteOptions(cache_limit="10samples")
    assert RemoteOptions(cache_limit="2MiB").cache_limit == 2 << 20
    with pytest.raises(pixpack.UsageError, match="apply to URLs"):
        pixpack.open("x.pixpack", storage_options={})


def _cached_files(cache) -> list[str]:
    return [p.name for p in cache.rglob("*.pixpack")] if cache.exists() else []


def test_columns_and_sql_by_range_reads(s3_server, s3_options, remote_packs, fresh_cache):
    """Metadata columns and SQL of a remote sharded pack come from one range read of
    each shard's sections: no shard is downloaded into the cache, and the answers are
    the local pack's."""
    one, _ = remote_packs
    _, bucket = s3_server
    options = RemoteOptions(cache_dir=str(fresh_cache), cache_limit=1 << 30)
    url = f"s3://{bucket}/sharded"
    with pixpack.open(url, storage_options=s3_options, remote=options) as pack, \
            pixpack.open(one) as local:  # fmt: skip
        assert list(pack.columns) == list(local.columns)
        for name in local.columns:
            assert list(pack.columns[name]) == list(local.columns[name])
        first = str(local.columns["path"][3])
        where = f"path = '{first}' OR label = 1"
        np.testing.assert_array_equal(pack.query(where).indices, local.query(where).indices)
        assert pack.sql("SELECT count(*) FROM samples") == local.sql("SELECT count(*) FROM samples")
        assert all(p is None for p in pack._opened)
    assert _cached_files(fresh_cache) == []


def test_damaged_remote_section_is_a_clear_error(http_server, faults, remote_packs, tmp_path):
    """A section whose bytes do not match its CRC (damaged in storage) fails in one line
    naming the shard, instead of giving wrong column values."""
    import shutil

    base, _ = http_server
    _, sharded = remote_packs
    copy = sharded.parent / "sharded-damaged"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(sharded, copy)
    shard = sorted(copy.glob("part-*.pixpack"))[1]
    with pixpack.Pack(shard) as p:
        offset = next(iter(p.metadata["sections"].values()))["offset"]
    with open(shard, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0xFF]))
    options = RemoteOptions(cache_dir=str(tmp_path / "cache"))
    with pixpack.open(f"{base}/sharded-damaged", remote=options) as pack:
        with pytest.raises(pixpack.CorruptPackError, match=shard.name):
            pack.columns["path"][0]
