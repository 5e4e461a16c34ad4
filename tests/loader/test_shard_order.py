"""Shard-aware shuffle (``shard_order``, ``Loader(shard_window=K)``): a pure function of
(the candidates' shards, seed, epoch, window), checked over uneven shard sizes."""

from __future__ import annotations

import numpy as np
import pytest

from pixpack.errors import UsageError
from pixpack.loader.ordering import shard_order
from pixpack.options import LoaderOptions

SHARDS = [[], [5], [5, 5, 5], [1, 9, 3, 7, 2], [4] * 11, [100, 1, 1, 1, 50]]
WINDOWS = [1, 2, 3, 100]


def shard_of(counts: list[int]) -> np.ndarray:
    return np.repeat(np.arange(len(counts)), counts).astype(np.int64)


def groups_of(order: np.ndarray, owner: np.ndarray, shards: int, window: int) -> list[set]:
    """The sets of shards of consecutive groups, checking each group is whole shards."""
    want = [window] * max(1, shards // window) if shards else []
    if shards and shards % window and shards > window:
        want[-1] += shards % window  # the short last group joined the one before
    elif shards and shards < window:
        want = [shards]
    out, at = [], 0
    for k in want:
        members: set = set()
        while len(members) < k or (at < len(order) and owner[order[at]] in members):
            members.add(int(owner[order[at]]))
            at += 1
        assert len(members) == k
        out.append(members)
    assert at == len(order)
    return out


@pytest.mark.parametrize("counts", SHARDS)
@pytest.mark.parametrize("window", WINDOWS)
def test_a_permutation_in_groups_of_whole_shards(counts, window):
    owner = shard_of(counts)
    order = shard_order(owner, 7, 0, window)
    assert order.dtype == np.int64
    np.testing.assert_array_equal(np.sort(order), np.arange(len(owner)))
    groups = groups_of(order, owner, len(counts), window)
    assert sorted(s for g in groups for s in g) == list(range(len(counts)))


@pytest.mark.parametrize("counts", SHARDS[2:])
def test_deterministic_per_epoch_and_fresh_across_epochs(counts):
    owner = shard_of(counts)
    a = shard_order(owner, 3, 1, 2)
    np.testing.assert_array_equal(a, shard_order(owner, 3, 1, 2))
    assert not np.array_equal(a, shard_order(owner, 3, 2, 2))
    assert not np.array_equal(a, shard_order(owner, 4, 1, 2))


def test_a_window_of_every_shard_mixes_them_all():
    owner = shard_of([10] * 4)
    first_half = owner[shard_order(owner, 0, 0, 100)[:20]]
    assert len(set(first_half.tolist())) > 2  # not shard after shard


def test_window_one_reads_shard_after_shard():
    owner = shard_of([6, 6, 6])
    runs = owner[shard_order(owner, 0, 0, 1)]
    assert (np.diff(runs) != 0).sum() == 2  # three runs, one per shard


def test_subsets_keep_their_shards():
    owner = shard_of([5, 5, 5, 5])[[0, 1, 7, 8, 9, 16, 19]]
    order = shard_order(owner, 0, 0, 1)
    np.testing.assert_array_equal(np.sort(order), np.arange(7))
    assert (np.diff(owner[order]) != 0).sum() == 2


def test_options_are_checked():
    with pytest.raises(UsageError, match="shard_window"):
        LoaderOptions(shard_window=-1)
    with pytest.raises(UsageError, match="pick one"):
        LoaderOptions(shard_window=2, block_shuffle=16)
    with pytest.raises(ValueError, match="window"):
        shard_order(np.zeros(3, np.int64), 0, 0, 0)
