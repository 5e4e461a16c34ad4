"""The Loader over a remote pack: the same batches as over the local copy, the shards
fetched ahead by read-ahead, only the shards a rank reads downloaded."""

from __future__ import annotations

import numpy as np
import pytest

import pixpack
from pixpack import RemoteOptions

pytestmark = pytest.mark.timeout(60)


def _batches(pack, **kw) -> list[tuple[np.ndarray, np.ndarray]]:
    loader = pixpack.Loader(pack, 4, pipeline=[pixpack.ops.RandomResizedCrop(24)], workers=2,
                            output="numpy", seed=5, **kw)  # fmt: skip
    try:
        return [(x.copy(), y.copy()) for x, y in loader]
    finally:
        loader.close()


def _same(a, b) -> None:
    assert len(a) == len(b)
    for (xa, ya), (xb, yb) in zip(a, b, strict=True):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)


def test_shard_window_batches_equal_local_and_prefetch(http_server, remote_packs, fresh_cache):
    base, _ = http_server
    _, sharded = remote_packs
    shard = max(p.stat().st_size for p in sharded.glob("part-*.pixpack"))
    options = RemoteOptions(cache_dir=str(fresh_cache), cache_limit=4 * shard)
    with pixpack.open(f"{base}/sharded", remote=options) as pack, pixpack.open(sharded) as local:
        remote = _batches(pack, shard_window=2)
        _same(remote, _batches(local, shard_window=2))
        assert pack._fetching, "read-ahead started downloads ahead of the batches"
        assert pack._source.cache.downloads == 5  # each shard once for the epoch
        # the order: groups of two shards, a fresh shard order per epoch
        labels = np.concatenate([y for _, y in remote])
        assert len(labels) == 24


def test_a_rank_downloads_only_the_shards_it_reads(http_server, remote_packs, fresh_cache):
    base, _ = http_server
    options = RemoteOptions(cache_dir=str(fresh_cache))
    with pixpack.open(f"{base}/sharded", remote=options) as pack:
        subset = np.arange(5, 15)  # shards 1 and 2 only
        for rank in (0, 1):
            _batches(pack, indices=subset, rank=rank, world_size=2, shard_window=1)
        assert pack._source.cache.downloads == 2
        assert sorted(k for k, p in enumerate(pack._opened) if p is not None) == [1, 2]
