"""Ordering and sharding are pure functions: checked exhaustively over small sizes."""

from __future__ import annotations

import numpy as np
import pytest

from pixpack.loader.ordering import batch_slices, epoch_order, num_batches, shard, shard_length


@pytest.mark.parametrize("n", [0, 1, 2, 7, 64, 1001])
@pytest.mark.parametrize("shuffle", [False, True])
def test_epoch_order_is_a_permutation(n, shuffle):
    order = epoch_order(n, seed=3, epoch=1, shuffle=shuffle)
    assert order.dtype == np.int64
    assert np.array_equal(np.sort(order), np.arange(n))
    if not shuffle:
        assert np.array_equal(order, np.arange(n))


def test_epoch_order_deterministic_and_reshuffled_each_epoch():
    a = epoch_order(500, seed=7, epoch=0, shuffle=True)
    assert np.array_equal(a, epoch_order(500, seed=7, epoch=0, shuffle=True))
    assert not np.array_equal(a, epoch_order(500, seed=7, epoch=1, shuffle=True))
    assert not np.array_equal(a, epoch_order(500, seed=8, epoch=0, shuffle=True))
    assert not np.array_equal(a, np.arange(500))


@pytest.mark.parametrize("n", [*list(range(0, 23)), 97, 100])
@pytest.mark.parametrize("world_size", [1, 2, 3, 4, 7, 8])
@pytest.mark.parametrize("drop_last", [False, True])
def test_shards_disjoint_equal_and_covering(n, world_size, drop_last):
    order = epoch_order(n, seed=1, epoch=2, shuffle=True)
    shards = [shard(order, r, world_size, drop_last) for r in range(world_size)]
    lengths = {len(s) for s in shards}
    assert lengths == {shard_length(n, world_size, drop_last)}  # equal: no rank hangs
    flat = np.concatenate(shards) if shards else np.zeros(0, np.int64)
    if drop_last:
        # Disjoint, and only the remainder is dropped.
        assert len(np.unique(flat)) == len(flat) == n - n % world_size
    else:
        # Covering; duplicates only from wrapping, fewer than world_size of them.
        assert set(flat.tolist()) == set(range(n))
        assert len(flat) - n == (-n) % world_size if n else len(flat) == 0
        if n >= world_size:
            assert len(np.unique(flat)) == n


def test_shard_rejects_bad_rank():
    with pytest.raises(ValueError):
        shard(np.arange(4), 2, 2, False)


@pytest.mark.parametrize("length", list(range(0, 40)))
@pytest.mark.parametrize("batch_size", [1, 3, 8, 16])
@pytest.mark.parametrize("drop_last", [False, True])
def test_batch_slices_tile_the_shard(length, batch_size, drop_last):
    slices = batch_slices(length, batch_size, drop_last)
    assert len(slices) == num_batches(length, batch_size, drop_last)
    covered = [i for a, b in slices for i in range(a, b)]
    assert covered == list(range(len(covered)))  # contiguous, in order, no overlap
    assert all(b - a == batch_size for a, b in slices[:-1])
    if drop_last:
        assert all(b - a == batch_size for a, b in slices)
        assert len(covered) == length - length % batch_size
    else:
        assert len(covered) == length
