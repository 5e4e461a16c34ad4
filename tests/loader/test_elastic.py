"""Elastic determinism (issue 14 item 2): a pure function of (seed, epoch, global position).

The ranks' k-th batches together are the same global batch for any world size with the
same global batch size, every sample's augmentation is the same whatever the world
size, and one state (rank 0's) resumes on any number of ranks with exactly the rest of
the epoch. Ranks run in-process here (explicit rank/world_size, no group); the same
under torchrun is in test_torchrun.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pixpack import Loader, ResumeError
from pixpack.loader.ordering import epoch_order, shard
from pixpack.ops import RandomHorizontalFlip, RandomResizedCrop

from .helpers import write_pack


@pytest.fixture(scope="module")
def id_pack(small_images, tmp_path_factory):
    """23 photo crops whose labels are their sample indices (23: prime, divides nothing)."""
    path = tmp_path_factory.mktemp("elastic") / "ids.pixpack"
    return write_pack(path, small_images[:23], list(range(23)))


def _ops():
    return [RandomResizedCrop(16), RandomHorizontalFlip()]


def _rank_batches(pack, batch_size, world_size, state=None, **kw):
    """Every rank's batches ``[(images, ids), ...]``, one list per rank."""
    out = []
    for rank in range(world_size):
        loader = Loader(pack, batch_size, rank=rank, world_size=world_size, workers=1,
                        pipeline=_ops(), dtype="uint8", seed=7, **kw)  # fmt: skip
        if state is not None:
            loader.load_state_dict(state)
        out.append([(x.clone(), y.tolist()) for x, y in loader])
    return out


@pytest.mark.parametrize("n", [1, 2, 5, 12, 13, 24])
@pytest.mark.parametrize("world_size", [1, 2, 3, 4])
@pytest.mark.parametrize("drop_last", [False, True])
def test_shards_from_a_position_are_the_rest_of_the_order(n, world_size, drop_last):
    order = epoch_order(n, 3, 0, True)
    for start in range(n + 1):
        shards = [shard(order, r, world_size, drop_last, start) for r in range(world_size)]
        assert len({len(s) for s in shards}) == 1
        interleaved = np.stack(shards, axis=1).reshape(-1) if shards[0].size else order[:0]
        rest = order[start:]
        if drop_last:
            assert interleaved.tolist() == rest[: len(rest) // world_size * world_size].tolist()
        else:  # the rest, then padding wrapped from the epoch's start
            pad = -len(rest) % world_size
            assert interleaved.tolist() == [*rest, *np.tile(order, pad + 1)[:pad]]


@pytest.mark.parametrize("exact", [False, True])
def test_global_batch_at_each_step_is_the_same_for_any_world_size(id_pack, exact):
    """Global batch 12: 1x12, 2x6, 3x4, 4x3. Step k's batches together hold the same
    samples, each augmented identically, whatever the world size."""
    (single,) = _rank_batches(id_pack, 12, 1, exact=exact)
    for world_size in (2, 3, 4):
        ranks = _rank_batches(id_pack, 12 // world_size, world_size, exact=exact)
        assert len({len(r) for r in ranks}) == 1 and len(ranks[0]) == len(single)
        for step, (images, ids) in enumerate(single):
            got = {i: x for r in ranks for x, i in zip(r[step][0], r[step][1], strict=True)}
            if exact or step < len(single) - 1:  # the last padded step differs by padding
                assert sorted(got) == sorted(ids)
            for x, i in zip(images, ids, strict=True):
                if i in got:
                    assert torch.equal(got[i], x)  # augmentation ignores the world size


@pytest.mark.parametrize("mode", ["plain", "exact", "drop_last"])
@pytest.mark.parametrize(("steps", "batch", "to_world", "to_batch"), [
    (1, 3, 3, 2), (2, 3, 1, 5), (3, 2, 3, 3), (5, 2, 4, 1), (0, 4, 3, 4), (2, 2, 3, 2),
])  # fmt: skip
def test_state_of_rank_0_resumes_on_another_world_size(
    id_pack, mode, steps, batch, to_world, to_batch
):
    """Two ranks take ``steps`` steps; rank 0's state resumes on ``to_world`` ranks with
    another batch size: they read exactly the rest of the epoch's global order."""
    exact, drop_last = mode == "exact", mode == "drop_last"
    (whole,) = _rank_batches(id_pack, 1, 1)
    order = [i for _, ids in whole for i in ids]
    kw = dict(rank=0, world_size=2, workers=1, pipeline=_ops(), dtype="uint8", seed=7)
    first = Loader(id_pack, batch, exact=exact, drop_last=drop_last, **kw)
    it = iter(first)
    for _ in range(steps):
        next(it)
    state = first.state_dict()
    position = min(steps * batch * 2, len(order))
    assert (state["epoch"], state["position"]) == (0, position)
    ranks = _rank_batches(id_pack, to_batch, to_world, state=state, exact=exact,
                          drop_last=drop_last)  # fmt: skip
    assert len({len(r) for r in ranks}) == 1
    seen = sorted(i for r in ranks for _, ids in r for i in ids)
    rest = order[position:]
    if drop_last:  # whole batches of every rank's equal share
        expected = rest[: len(rest) // to_world // to_batch * to_batch * to_world]
    else:  # exact: the rest; otherwise padded from the epoch's start
        expected = rest + ([] if exact else order[: -len(rest) % to_world])
    assert seen == sorted(expected)
    # ... then every rank goes on with the next epoch, whole.
    after = Loader(id_pack, to_batch, exact=exact, drop_last=drop_last,
                   **{**kw, "world_size": to_world})  # fmt: skip
    after.load_state_dict(state)
    list(after)
    assert after.state_dict()["epoch"] == 1 and after.state_dict()["position"] == 0


def test_a_state_from_the_old_format_still_resumes(id_pack):
    kw = dict(workers=1, pipeline=_ops(), dtype="uint8", seed=7)
    loader = Loader(id_pack, 4, **kw)
    it = iter(loader)
    next(it), next(it)
    state = loader.state_dict()
    del state["position"], state["epoch_length"], state["sampling"]
    resumed = Loader(id_pack, 4, **kw)
    resumed.load_state_dict(state)
    assert resumed.state_dict()["position"] == 8
    assert [y.tolist() for _, y in resumed] == [y.tolist() for _, y in it]


def test_a_position_beyond_the_epoch_is_refused(id_pack):
    state = Loader(id_pack, 4, seed=7, pipeline=_ops()).state_dict()
    with pytest.raises(ResumeError, match="outside this loader's epoch of 23"):
        Loader(id_pack, 4, seed=7, pipeline=_ops()).load_state_dict({**state, "position": 24})
    with pytest.raises(ResumeError, match="not a pixpack loader state"):
        Loader(id_pack, 4, seed=7, pipeline=_ops()).load_state_dict({"epoch": 0})


def test_all_failed_batches_are_yielded_empty_when_sharded(small_images, tmp_path):
    """Sharded, a batch whose samples all failed is an empty batch, so every rank gets
    len(loader) batches (a collective after each never waits forever); one process
    alone still never sees an empty batch."""
    pack = write_pack(tmp_path / "bad.pixpack", small_images[:8], jpeg=True, garbage=3)
    kw = dict(shuffle=False, on_error="skip", workers=1, dtype="uint8", pipeline=_ops())
    with pytest.warns(UserWarning, match="skipped 1 sample"):
        ranks = [list(Loader(pack, 1, rank=r, world_size=2, **kw)) for r in (0, 1)]
    assert [len(r) for r in ranks] == [4, 4]
    assert [len(y) for _, y in ranks[1]] == [1, 0, 1, 1]  # sample 3 is rank 1's 2nd
    assert ranks[1][1][0].shape == (0, 3, 16, 16)
    with pytest.warns(UserWarning, match="skipped 1 sample"):
        alone = list(Loader(pack, 1, **kw))
    assert len(alone) == 7 and all(len(y) == 1 for _, y in alone)
