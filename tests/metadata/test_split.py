"""Group-aware, optionally stratified splits (issue 15 item 3): pure, exhaustive."""

from __future__ import annotations

import numpy as np
import pytest

from pixpack.errors import UsageError
from pixpack.metadata.split import group_split


def _check(assign, groups, fractions):
    groups = np.asarray(groups, dtype=object)
    for g in set(groups.tolist()) - {None}:  # a group never spans two splits
        assert len(set(assign[groups == g].tolist())) == 1
    sizes = np.unique(groups.astype(str), return_counts=True)[1]
    biggest = sizes.max()
    counts = np.bincount(assign, minlength=len(fractions))
    assert np.all(np.abs(counts - np.asarray(fractions) * len(groups)) <= biggest + 1e-9)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("fractions", [(0.8, 0.1, 0.1), (0.5, 0.5), (0.7, 0.2, 0.05, 0.05)])
@pytest.mark.parametrize("stratified", [False, True])
def test_groups_stay_whole_and_sizes_are_within_one_group(seed, fractions, stratified):
    rng = np.random.default_rng(seed)
    n_groups = int(rng.integers(20, 200))
    sizes = rng.integers(1, 12, n_groups)
    groups = np.repeat([f"patient-{i}" for i in range(n_groups)], sizes)
    labels = rng.integers(0, 3, len(groups)) if stratified else None
    assign = group_split(groups, fractions, seed, labels)
    _check(assign, groups, fractions)
    assert np.array_equal(assign, group_split(groups, fractions, seed, labels))  # same seed
    assert not np.array_equal(assign, group_split(groups, fractions, seed + 100, labels))


def test_stratifying_keeps_the_class_mix_of_every_split():
    rng = np.random.default_rng(1)
    groups = np.repeat(np.arange(400), 5)
    labels = np.where(rng.random(2000) < 0.1, 1, 0)  # a rare class (10%)
    plain = group_split(groups, (0.8, 0.1, 0.1), 3)
    strat = group_split(groups, (0.8, 0.1, 0.1), 3, labels)

    def worst(assign):
        return max(abs(labels[assign == k].mean() - labels.mean()) for k in range(3))

    assert worst(strat) < worst(plain) and worst(strat) < 0.02


def test_missing_group_values_are_groups_of_their_own():
    groups = [None, None, "a", "a", None, 1, "1"]
    assign = group_split(groups, (0.5, 0.5), 0)
    assert assign[2] == assign[3] and len(assign) == 7


@pytest.mark.parametrize("bad", [(1.0,), (0.5, 0.6), (0.5, -0.5, 1.0), (float("nan"), 1)])
def test_bad_fractions_are_refused(bad):
    with pytest.raises(UsageError, match="fractions"):
        group_split(["a", "b"], bad, 0)
