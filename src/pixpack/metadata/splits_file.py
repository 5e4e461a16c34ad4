"""Named splits of a pack, kept beside it in ``PACK.splits.json``.

Beside the pack, not inside: adding a split must not rewrite a pack of many GB, and a
pack that is open (memory-mapped by a training job) must not change under its reader.
The file is written like a pack: to a temporary name, fsynced, renamed into place, so
a crash leaves the old file or the new one. It records the pack's header checksum, so
splits of an older version of a re-packed file are refused, not silently misapplied;
and a file of that name that pixpack did not write is never overwritten.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import OutputExistsError, UsageError
from .split import check_fractions, group_split
from .subset import Subset

__all__ = ["make_splits", "load_splits", "splits_path"]

_MARK = "pixpack_splits"


def splits_path(pack: Any) -> Path:
    return Path(f"{pack.path}.splits.json")


def _identity(pack: Any) -> dict[str, int]:
    return {"header_crc32": int(pack.header["header_crc32"]), "num_samples": len(pack)}


def _read(path: Path) -> dict[str, Any] | None:
    """The splits file's content, None when absent; a UsageError when it is not ours."""
    if not os.path.lexists(path):
        return None
    if path.is_symlink() or not path.is_file():
        raise OutputExistsError(f"{path} is not a regular file; move it away to keep splits")
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError) as exc:
        raise OutputExistsError(
            f"{path} exists but is not a pixpack splits file ({exc}); move it away"
        ) from None
    if not isinstance(doc, dict) or doc.get(_MARK) != 1 or not isinstance(doc.get("splits"), dict):
        raise OutputExistsError(f"{path} exists but is not a pixpack splits file; move it away")
    return doc


def load_splits(pack: Any) -> dict[str, Subset]:
    """The pack's named splits (empty when none were made)."""
    path = splits_path(pack)
    doc = _read(path)
    if doc is None:
        return {}
    if doc.get("pack") != _identity(pack):
        raise UsageError(
            f"{path} was made for another version of {pack.path} (re-packed since); "
            "run pixpack split again"
        )
    out = {}
    for name, split in doc["splits"].items():
        try:
            indices = np.asarray(split["indices"], dtype=np.int64)
        except (KeyError, TypeError, ValueError):
            raise UsageError(f"{path}: split {name!r} has no valid indices; split again") from None
        out[name] = Subset(pack, indices, name)
    return out


def make_splits(
    pack: Any,
    by: str,
    fractions: Any,
    *,
    seed: int = 0,
    stratify: str | None = None,
    names: Any = None,
    save: bool = True,
) -> dict[str, Subset]:
    """Split the pack's samples so that no value of ``by`` (an SQL column or expression
    of the ``samples`` table, e.g. ``patient_id``) is in two splits, with ``fractions``
    of the samples each (within one group), optionally keeping each split's mix of
    ``stratify`` (e.g. ``label``). ``names`` default to train/val/test (or split0...).
    Saved beside the pack (``PACK.splits.json``) unless ``save=False``; splits of other
    names already there are kept."""
    frac = check_fractions(fractions)
    if names is None:
        names = ["train", "val", "test"] if len(frac) == 3 else ["train", "val"]
        names = names if len(names) == len(frac) else [f"split{i}" for i in range(len(frac))]
    names = [str(n) for n in names]
    if len(names) != len(frac) or len(set(names)) != len(names) or not all(names):
        raise UsageError(f"give one distinct name per fraction (got {names} for {list(frac)}).")
    groups = _column(pack, by)
    strata = None if stratify is None else _column(pack, stratify)
    assign = group_split(groups, frac, seed, strata)
    meta = {"by": by, "stratify": stratify, "seed": seed}
    splits = {name: np.flatnonzero(assign == k) for k, name in enumerate(names)}
    if save:
        _save(pack, {name: {**meta, "fraction": float(frac[k]), "indices": splits[name]}
                     for k, name in enumerate(names)})  # fmt: skip
    return {name: Subset(pack, idx, name) for name, idx in splits.items()}


def _column(pack: Any, expression: str) -> list[Any]:
    _, rows = pack.sql(f"SELECT {expression} FROM samples ORDER BY idx")
    return [r[0] for r in rows]


def _save(pack: Any, new: dict[str, dict[str, Any]]) -> None:
    path = splits_path(pack)
    doc = _read(path)
    kept = doc["splits"] if doc is not None and doc.get("pack") == _identity(pack) else {}
    splits = {**kept, **{n: {**s, "indices": s["indices"].tolist()} for n, s in new.items()}}
    text = json.dumps({_MARK: 1, "pack": _identity(pack), "splits": splits})
    # A fresh name of our own (mkstemp): never one another process could have made.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
