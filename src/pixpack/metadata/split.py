"""Deterministic group-aware (and optionally stratified) splits: pure functions.

``group_split(groups, fractions, seed, strata)`` assigns every sample to a split so
that all samples of a group (a patient, a subject, a site) land in the same split, and
each split's size is within one group's size of its target. Groups are visited in an
order drawn from ``seed``; each goes to the split that most lacks samples (with
``strata``: among the splits with room for the whole group, the one that most lacks
samples *of this group's strata*, relative to their targets). The same inputs and
seed always give the same splits, on any machine. A missing group value (None/NaN)
is a group of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import UsageError

__all__ = ["group_split", "check_fractions"]

_SPLIT_STREAM = 0x5B17


def check_fractions(fractions: Sequence[float]) -> np.ndarray:
    """Fractions as an array that sums to 1 (within rounding), or a UsageError."""
    f = np.asarray(list(fractions), dtype=np.float64)
    if f.ndim != 1 or len(f) < 2 or not np.all(np.isfinite(f)) or (f <= 0).any():
        raise UsageError(
            f"fractions must be two or more positive numbers, e.g. 0.8,0.1,0.1 (got {list(f)})."
        )
    if abs(f.sum() - 1.0) > 1e-6:
        raise UsageError(f"fractions must sum to 1 (got {f.sum():g}: {list(f)}).")
    return f / f.sum()


def _codes(values: Any) -> np.ndarray:
    """Integer codes for a column's values; each missing value gets a code of its own."""
    arr = np.asarray(values, dtype=object)
    missing = np.array([v is None or (isinstance(v, float) and v != v) for v in arr], bool)
    keys = np.array([repr(v) for v in arr], dtype=object)  # 1 and "1" stay apart
    _, codes = np.unique(keys, return_inverse=True)
    codes = codes.astype(np.int64)
    codes[missing] = codes.max(initial=-1) + 1 + np.arange(int(missing.sum()))
    return codes


def group_split(
    groups: Sequence[Any] | np.ndarray,
    fractions: Sequence[float],
    seed: int,
    strata: Sequence[Any] | np.ndarray | None = None,
) -> np.ndarray:
    """The split (0, 1, ...) of every sample: ``len(groups)`` small integers."""
    frac = check_fractions(fractions)
    n = len(groups)
    group = _codes(groups)
    n_groups = int(group.max(initial=-1)) + 1
    size = np.bincount(group, minlength=n_groups)
    target = frac * n
    count = np.zeros(len(frac))
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, _SPLIT_STREAM])))
    visit = rng.permutation(n_groups)
    assign = np.empty(n_groups, dtype=np.int64)
    if strata is None:
        for g in visit.tolist():
            k = int(np.argmax(target - count))
            assign[g] = k
            count[k] += size[g]
        return assign[group]
    stratum = _codes(strata)
    n_strata = int(stratum.max(initial=-1)) + 1
    # Per group: its strata and their counts (sorted by group, one pass).
    order = np.argsort(group, kind="stable")
    bounds = np.searchsorted(group[order], np.arange(n_groups + 1))
    s_target = np.outer(frac, np.bincount(stratum, minlength=n_strata))
    s_count = np.zeros_like(s_target)
    for g in visit.tolist():
        members = stratum[order[bounds[g] : bounds[g + 1]]]
        kinds, per = np.unique(members, return_counts=True)
        lack = (s_target[:, kinds] - s_count[:, kinds]) / np.maximum(s_target[:, kinds], 1)
        score = (lack * per).sum(axis=1) / per.sum()
        deficit = target - count
        # Only splits with room for the whole group compete on strata (else the one that
        # lacks most): no split overshoots or falls short by more than one group.
        room = deficit >= size[g]
        score = np.where(room, np.round(score, 12), -np.inf)
        if not room.any():
            score = np.where(deficit == deficit.max(), 0.0, -np.inf)
        k = int(np.lexsort((-deficit / np.maximum(target, 1), -score))[0])
        assign[g] = k
        count[k] += size[g]
        s_count[k, kinds] += per
    return assign[group]
