"""Exact evaluation: every sample once across the ranks, equal batch counts per rank.

The default shard pads by wrapping around (like DistributedSampler), so a distributed
accuracy counts a few samples twice; ``exact=True`` does not, and still gives every
rank the same number of batches (smaller or empty last ones), so a collective after
every batch never waits for a batch that does not come.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import pixpack
from pixpack.errors import ResumeError, UsageError
from pixpack.loader.ordering import exact_batch_slices
from pixpack.ops import Resize


@pytest.mark.parametrize("n", [0, 1, 7, 11, 64, 65])
@pytest.mark.parametrize("world", [1, 2, 3, 4, 8])
@pytest.mark.parametrize("batch", [1, 4, 64])
def test_exact_slices_cover_each_rank_and_have_equal_counts(n, world, batch) -> None:
    counts = set()
    for rank in range(world):
        slices = exact_batch_slices(n, rank, world, batch)
        counts.add(len(slices))
        length = len(range(rank, n, world))
        covered = [i for a, b in slices for i in range(a, b)]
        assert covered == list(range(length))  # in order, each position once
        assert all(b - a <= batch for a, b in slices)
    assert len(counts) == 1


@pytest.fixture(scope="module")
def indexed_pack(photo_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """11 photos whose labels are their sample indices."""
    images = sorted(photo_folder.rglob("*.jpg"))[:11]
    out = tmp_path_factory.mktemp("exact") / "p.pixpack"
    pixpack.pack([(str(p), i) for i, p in enumerate(images)], out, mode="raw", max_side=32,
                 quiet=True)  # fmt: skip
    return out


@pytest.mark.parametrize("world", [2, 3, 4])
def test_every_sample_once_and_equal_batch_counts(indexed_pack: Path, world: int) -> None:
    seen, counts = [], set()
    for rank in range(world):
        loader = pixpack.Loader(indexed_pack, 2, pipeline=[Resize((8, 8))], dtype="uint8",
                                rank=rank, world_size=world, exact=True, seed=3)  # fmt: skip
        batches = [labels.tolist() for _, labels in loader]
        counts.add(len(batches))
        assert len(batches) == len(loader)
        seen += [i for b in batches for i in b]
        loader.close()
    assert sorted(seen) == list(range(11))  # once each: no wrap-around padding
    assert len(counts) == 1


def test_padding_by_default_counts_some_twice(indexed_pack: Path) -> None:
    seen = []
    for rank in range(3):
        loader = pixpack.Loader(indexed_pack, 2, pipeline=[Resize((8, 8))], dtype="uint8",
                                rank=rank, world_size=3)  # fmt: skip
        seen += [i for _, labels in loader for i in labels.tolist()]
    assert len(seen) == 12 and set(seen) == set(range(11))


def test_exact_resumes_and_refuses_drop_last(indexed_pack: Path) -> None:
    kw = dict(pipeline=[Resize((8, 8))], dtype="uint8", rank=1, world_size=3, exact=True)
    full = [labels.tolist() for _, labels in pixpack.Loader(indexed_pack, 1, **kw)]
    loader = pixpack.Loader(indexed_pack, 1, **kw)
    it = iter(loader)
    first = [next(it)[1].tolist() for _ in range(2)]
    state = loader.state_dict()
    resumed = pixpack.Loader(indexed_pack, 1, **kw)
    resumed.load_state_dict(state)
    assert first + [labels.tolist() for _, labels in resumed] == full
    with pytest.raises(ResumeError, match="exact"):
        pixpack.Loader(indexed_pack, 1, **{**kw, "exact": False}).load_state_dict(state)
    with pytest.raises(UsageError, match="drop_last"):
        pixpack.Loader(indexed_pack, 1, **{**kw, "drop_last": True})
