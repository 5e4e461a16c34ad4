"""Subsets, weighted and class-balanced draws, and the attributes training scripts use
(issue 14 item 4), composed with sharding and resume."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision

from pixpack import (
    ClassBalancedSampler,
    Loader,
    PackDataset,
    ResumeError,
    ShardSampler,
    UsageError,
    WeightedSampler,
)
from pixpack.loader.sampling import _draw
from pixpack.ops import CenterCrop

from .helpers import write_pack


@pytest.fixture(scope="module")
def id_pack(small_images, tmp_path_factory):
    """30 crops whose labels are their sample indices."""
    path = tmp_path_factory.mktemp("sampling") / "ids.pixpack"
    return write_pack(path, small_images[:30], list(range(30)))


def _ids(loader) -> list[int]:
    return [i for _, y in loader for i in y.tolist()]


def _loader(pack, batch=4, **kw):
    return Loader(pack, batch, pipeline=[CenterCrop(16)], dtype="uint8", workers=1, **kw)


# -- indices= ----------------------------------------------------------------------------
def test_indices_read_only_that_split_in_its_order_or_shuffled(id_pack):
    split = [29, 3, 3, 17, 8, 0]  # any order, repeats allowed
    assert _ids(_loader(id_pack, shuffle=False, indices=split)) == split
    shuffled = _loader(id_pack, indices=split, seed=1)
    first, second = _ids(shuffled), _ids(shuffled)
    assert sorted(first) == sorted(second) == sorted(split) and first != second
    assert len(shuffled) == 2 and len(shuffled.dataset) == 6


@pytest.mark.parametrize("world_size", [2, 3])
def test_indices_shard_and_resume(id_pack, world_size):
    split = np.arange(0, 30, 2)  # 15 samples
    ranks = [_loader(id_pack, 2, indices=split, rank=r, world_size=world_size, exact=True)
             for r in range(world_size)]  # fmt: skip
    assert sorted(i for r in ranks for i in _ids(r)) == split.tolist()
    one = _loader(id_pack, 2, indices=split, rank=0, world_size=world_size)
    it = iter(one)
    next(it)
    state = one.state_dict()
    whole = _ids(_loader(id_pack, 1, indices=split))
    resumed = _loader(id_pack, 3, indices=split)
    resumed.load_state_dict(state)
    assert _ids(resumed) == whole[2 * world_size :]
    with pytest.raises(ResumeError, match="sampling"):
        _loader(id_pack, 3, indices=split[::-1]).load_state_dict(state)


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ([], "non-empty"),
        ([[1, 2]], "1-D"),
        ([0.5], "integers"),
        (np.ones(30, bool), "boolean mask"),
        ([30], r"in \[0, 30\)"),
        ([-1], r"in \[0, 30\)"),
    ],
)
def test_bad_indices_are_refused_naming_the_fix(id_pack, bad, match):
    with pytest.raises(UsageError, match=match):
        _loader(id_pack, indices=bad)


# -- weighted and class-balanced draws ---------------------------------------------------
def test_weighted_draws_follow_the_weights_and_never_pick_zero_weights():
    w = np.array([0.0, 1.0, 2.0, 0.0, 5.0, 0.0])
    picks = _draw(w, 80_000, True, seed=3, epoch=0)
    freq = np.bincount(picks, minlength=6) / len(picks)
    np.testing.assert_allclose(freq, w / w.sum(), atol=0.01)
    unique = _draw(w, 3, False, seed=3, epoch=1)
    assert sorted(unique.tolist()) == [1, 2, 4]


def test_weighted_sampler_is_deterministic_sharded_and_resumable(id_pack):
    weights = np.r_[np.zeros(10), np.ones(10), 4 * np.ones(10)]
    sampler = WeightedSampler(weights, num_samples=24)
    whole = _ids(_loader(id_pack, 4, sampler=sampler, seed=2))
    assert len(whole) == 24 and min(whole) >= 10  # zero weights never drawn
    assert whole == _ids(_loader(id_pack, 4, sampler=sampler, seed=2))
    # Two ranks of 2 per batch: the same global batches as one rank of 4.
    ranks = [_ids(_loader(id_pack, 2, sampler=sampler, seed=2, rank=r, world_size=2))
             for r in (0, 1)]  # fmt: skip
    for step in range(6):
        got = ranks[0][2 * step : 2 * step + 2] + ranks[1][2 * step : 2 * step + 2]
        assert sorted(got) == sorted(whole[4 * step : 4 * step + 4])
    loader = _loader(id_pack, 4, sampler=sampler, seed=2)
    it = iter(loader)
    next(it)
    state = loader.state_dict()
    assert state["epoch_length"] == 24 and "WeightedSampler" in state["sampling"]
    resumed = _loader(id_pack, 4, sampler=sampler, seed=2)
    resumed.load_state_dict(state)
    assert _ids(resumed) == whole[4:]
    other = WeightedSampler(weights[::-1].copy(), num_samples=24)
    with pytest.raises(ResumeError, match="sampling"):
        _loader(id_pack, 4, sampler=other, seed=2).load_state_dict(state)


def test_class_balanced_sampler_evens_out_the_classes(small_images, tmp_path):
    labels = [0] * 24 + [1] * 4 + [2] * 2  # imbalanced 12:2:1
    pack = write_pack(tmp_path / "imb.pixpack", small_images[:30], labels)
    loader = _loader(pack, 30, sampler=ClassBalancedSampler(num_samples=3000), seed=1)
    counts = np.bincount(_ids(loader), minlength=3)
    np.testing.assert_allclose(counts / 3000, [1 / 3] * 3, atol=0.04)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: WeightedSampler([]), "non-empty"),
        (lambda: WeightedSampler([1, -1]), "non-negative"),
        (lambda: WeightedSampler([0, 0]), "positive sum"),
        (lambda: WeightedSampler([1, float("nan")]), "finite"),
        (lambda: WeightedSampler([1, 0, 1], replacement=False), "at most 2"),
        (lambda: WeightedSampler([1], num_samples=0), "positive integer"),
    ],
)
def test_bad_weights_are_refused(make, match):
    with pytest.raises(UsageError, match=match):
        make()


def test_sampler_mismatches_are_refused_at_construction(id_pack):
    with pytest.raises(UsageError, match="30 samples; give one weight per sample"):
        _loader(id_pack, sampler=WeightedSampler(np.ones(10)))
    with pytest.raises(UsageError, match="block_shuffle and shard_window do not apply"):
        _loader(id_pack, sampler=WeightedSampler(np.ones(30)), block_shuffle=4)
    with pytest.raises(UsageError, match="at most 30 samples"):
        _loader(id_pack, sampler=ClassBalancedSampler(num_samples=31, replacement=False))
    with pytest.raises(UsageError, match="pass indices= instead"):
        _loader(id_pack, sampler=[1, 2, 3])
    # Weights are per candidate when indices= is given too.
    both = _loader(id_pack, 2, indices=[5, 6, 7], sampler=WeightedSampler([0, 1, 0]))
    assert set(_ids(both)) == {6}


# -- the attributes a training script reaches for ----------------------------------------
def test_attributes_of_the_imagenet_example(id_pack):
    loader = _loader(id_pack, 4, rank=1, world_size=3, exact=True, seed=5)
    assert loader.batch_size == 4
    assert len(loader.dataset) == 30 and loader.dataset.classes == [str(i) for i in range(30)]
    image, label = loader.dataset[7]
    assert label == 7 and image.shape[0] == 3
    # The example's validate(): no auxiliary loader is needed with exact=True.
    assert not len(loader.sampler) * 3 < len(loader.dataset)
    loader.sampler.set_epoch(2)
    assert loader.epoch == 2
    assert list(loader.sampler) == _ids(loader)  # the indices this rank reads


def test_shard_sampler_shards_a_pack_dataset_for_a_dataloader(id_pack):
    crop = torchvision.transforms.CenterCrop(16)
    dataset = PackDataset(id_pack, crop, output="tensor", indices=range(1, 30))
    assert len(dataset) == 29 and dataset[0][1] == 1 and dataset.targets[-1] == 29
    samplers = [ShardSampler(dataset, seed=4, rank=r, world_size=3) for r in range(3)]
    shards = [list(s) for s in samplers]
    assert [len(s) for s in samplers] == [len(s) for s in shards] == [10, 10, 10]
    assert set().union(*shards) == set(range(29))  # positions into the dataset
    samplers[0].set_epoch(1)
    assert list(samplers[0]) != shards[0]
    loader = torch.utils.data.DataLoader(dataset, batch_size=5, sampler=samplers[1])
    got = [int(i) for _, y in loader for i in y]
    assert got == [int(dataset.targets[i]) for i in shards[1]]
    # Resume on 2 ranks after 4 samples per rank on 3: exactly the rest of the epoch.
    state = samplers[1].state_dict(samples_done=4)
    assert state == {"epoch": 0, "position": 12}
    whole = list(ShardSampler(dataset, seed=4, rank=0, world_size=1))
    rest = []
    for r in range(2):
        s = ShardSampler(dataset, seed=4, rank=r, world_size=2)
        s.load_state_dict(state)
        rest += list(s)
    assert sorted(rest) == sorted(whole[12:] + whole[:1])  # 17 left: one padded
    exact = [list(ShardSampler(dataset, exact=True, rank=r, world_size=3)) for r in range(3)]
    assert sorted(i for s in exact for i in s) == list(range(29))
