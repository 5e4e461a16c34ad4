"""Block shuffle (``block_order``, ``Loader(block_shuffle=...)``): a pure function of
(n, seed, epoch, block, window), checked over small and awkward sizes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import pixpack.loader.ordering as ordering
from pixpack.errors import UsageError
from pixpack.loader import Loader
from pixpack.loader.ordering import epoch_order, group_length

from .helpers import write_pack

pytestmark = pytest.mark.timeout(60)

SIZES = [0, 1, 7, 64, 1000]
BLOCKS = [1, 3, 64]
WINDOWS = [1, 4, 100]


def group_sizes(n: int, block: int, window: int) -> list[int]:
    """Blocks per group: ``window`` each, the remainder joining the last group."""
    blocks = -(-n // block)
    if blocks == 0:
        return []
    groups = max(1, blocks // window)
    return [window] * (groups - 1) + [blocks - window * (groups - 1)]


def split_groups(order: np.ndarray, n: int, block: int, window: int) -> list[np.ndarray]:
    """Cut ``order`` into its groups, checking that each is made of whole blocks (all
    the samples of its blocks, nothing else) and holds the expected number of blocks."""
    size = {b: min(block, n - b * block) for b in range(-(-n // block))}
    groups, at = [], 0
    for k in group_sizes(n, block, window):
        seen: dict[int, int] = {}
        stop = at
        while len(seen) < k or any(count < size[b] for b, count in seen.items()):
            assert stop < n, f"group at {at} ends before its {k} blocks are complete"
            b = int(order[stop]) // block
            assert b in seen or len(seen) < k, f"group at {at} reaches into block {k + 1}"
            seen[b] = seen.get(b, 0) + 1
            stop += 1
        groups.append(order[at:stop])
        at = stop
    assert at == n
    return groups


@pytest.mark.parametrize("window", WINDOWS)
@pytest.mark.parametrize("block", BLOCKS)
@pytest.mark.parametrize("n", SIZES)
def test_block_order(n, block, window):
    order = ordering.block_order(n, seed=5, epoch=2, block=block, window=window)
    assert order.dtype == np.int64
    assert np.array_equal(np.sort(order), np.arange(n))  # a permutation
    assert np.array_equal(
        order, ordering.block_order(n, seed=5, epoch=2, block=block, window=window)
    )
    groups = split_groups(order, n, block, window)
    if n % block == 0:  # all blocks whole: every group but the last is exactly this long
        assert all(len(g) == group_length(block, window) for g in groups[:-1])
    epochs = [
        ordering.block_order(n, seed=5, epoch=e, block=block, window=window) for e in range(4)
    ]
    if n >= 64:
        assert not np.array_equal(epochs[0], epochs[1])
        assert not np.array_equal(order, ordering.block_order(n, 6, 2, block, window))  # seed
    elif n >= 7:
        assert any(not np.array_equal(epochs[0], e) for e in epochs[1:])


def test_block_of_one_with_a_window_over_everything_is_a_full_shuffle():
    n = 1000
    order = ordering.block_order(n, seed=1, epoch=0, block=1, window=n)
    assert np.array_equal(np.sort(order), np.arange(n))
    assert len(split_groups(order, n, 1, n)) == 1
    # Neighbours in the file are not neighbours in the order (a full shuffle would put
    # about 2 of 1000 next to each other).
    assert np.sum(np.abs(np.diff(order)) == 1) < 20
    assert np.array_equal(np.sort(ordering.block_order(7, 1, 0, 1, 100)), np.arange(7))


def test_groups_read_contiguous_stretches():
    """What block shuffle is for: a group's samples are ``window`` runs of the file."""
    order = ordering.block_order(1024, seed=3, epoch=0, block=64, window=4)
    for g in split_groups(order, 1024, 64, 4):
        runs = np.sum(np.diff(np.sort(g)) != 1) + 1
        assert 1 <= runs <= 4 and len(g) == 256
        assert not np.array_equal(g, np.sort(g))  # mixed within the group


def test_short_last_group_joins_the_one_before():
    # 10 blocks, windows of 4: groups of 4 and 6 blocks, not 4, 4 and 2.
    assert group_sizes(10 * 64, 64, 4) == [4, 6]
    order = ordering.block_order(640, seed=2, epoch=0, block=64, window=4)
    groups = split_groups(order, 640, 64, 4)
    assert [len(g) for g in groups] == [256, 384]
    # Mixed as one group: its last 128 positions are not the two extra blocks alone.
    assert len(np.unique(groups[-1][-128:] // 64)) > 2


@pytest.mark.parametrize("n, block, window", [(-1, 1, 1), (10, 0, 1), (10, 1, 0), (10, -3, 2)])
def test_block_order_rejects_bad_arguments(n, block, window):
    with pytest.raises(ValueError):
        ordering.block_order(n, 0, 0, block, window)


# -- through the Loader --------------------------------------------------------------------
N = 300


@pytest.fixture(scope="module")
def indexed_pack(tmp_path_factory):
    """300 raw 8x8 samples whose pixels and label encode their index."""
    images = [np.full((8, 8, 3), i % 256, np.uint8) for i in range(N)]
    return write_pack(tmp_path_factory.mktemp("indexed") / "i.pixpack", images, list(range(N)))


def epoch_labels(loader, epoch: int) -> list[int]:
    loader.set_epoch(epoch)
    labels = []
    for x, y in loader:
        assert x.dtype == torch.uint8
        # Each image is the sample its label names.
        assert torch.equal(x.amax(dim=(1, 2, 3)), x.amin(dim=(1, 2, 3)))
        assert torch.equal(x[:, 0, 0, 0].long(), y % 256)
        labels += y.tolist()
    return labels


@pytest.mark.parametrize("block, window", [(16, 4), (7, 3), (1, 2), (64, 100)])
def test_loader_block_shuffle_yields_every_sample_once(indexed_pack, block, window):
    loader = Loader(
        indexed_pack, 32, pipeline=[], seed=4, workers=2, block_shuffle=block, block_window=window
    )
    for epoch in (0, 1):
        labels = epoch_labels(loader, epoch)
        assert sorted(labels) == list(range(N))
        assert labels == ordering.block_order(N, 4, epoch, block, window).tolist()
        assert labels != epoch_order(N, 4, epoch, True).tolist()
    loader.close()


def test_loader_block_shuffle_shards_cover_the_epoch(indexed_pack):
    seen = []
    for rank in range(3):
        loader = Loader(
            indexed_pack, 16, pipeline=[], seed=4, workers=1, rank=rank, world_size=3,
            block_shuffle=8, block_window=2,
        )  # fmt: skip
        seen += epoch_labels(loader, 0)
        loader.close()
    assert sorted(seen) == list(range(N))


def test_block_shuffle_without_shuffle_is_pack_order(indexed_pack):
    loader = Loader(indexed_pack, 32, pipeline=[], shuffle=False, workers=1, block_shuffle=16)
    assert epoch_labels(loader, 0) == list(range(N))
    assert loader.state_dict()["block_shuffle"] == 0  # not part of an unshuffled epoch
    loader.close()


@pytest.mark.parametrize(
    "option", [{"block_shuffle": -1}, {"block_window": 0}, {"block_shuffle": 2.5}]
)
def test_bad_block_options_are_refused(indexed_pack, option):
    with pytest.raises(UsageError):
        Loader(indexed_pack, 32, pipeline=[], **option)
