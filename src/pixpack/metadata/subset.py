"""``Subset``: some of a pack's samples, as an index array with a name.

What ``pack.query(...)``, ``pack.split(...)`` and ``pack.subset(indices)`` return, and
what ``Loader``, ``PackDataset`` and ``export`` accept in place of a pack. It is the
loader's ``indices=`` (one mechanism): an epoch shuffles, shards and resumes over the
subset's positions, deterministically (docs/distributed.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from ..errors import UsageError

__all__ = ["Subset"]


class Subset:
    """``pack``'s samples ``indices`` (ascending for queries and splits), named ``name``."""

    def __init__(self, pack: Any, indices: Any, name: str) -> None:
        arr = np.asarray(indices)
        if arr.ndim != 1 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
            raise UsageError(
                f"a subset needs a 1-D integer index array (got {arr.dtype}, {arr.shape})"
            )
        arr = arr.astype(np.int64, copy=True)
        if arr.size and (arr.min() < 0 or arr.max() >= len(pack)):
            raise UsageError(f"{pack.path}: subset indices must be in [0, {len(pack)}).")
        arr.flags.writeable = False
        self.pack, self.indices, self.name = pack, arr, name

    def __len__(self) -> int:
        return len(self.indices)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return self.indices if dtype is None else self.indices.astype(dtype)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        return self.pack[int(self.indices[i])]

    def __iter__(self) -> Iterator[tuple[np.ndarray, int]]:
        return (self.pack[int(i)] for i in self.indices)

    @property
    def targets(self) -> np.ndarray:
        return self.pack.targets[self.indices]

    @property
    def classes(self) -> list[str]:
        return self.pack.classes

    def __repr__(self) -> str:
        where = f"{len(self)} of {len(self.pack)} samples of {self.pack.path}"
        return f"<pixpack.Subset {self.name!r}: {where}>"
