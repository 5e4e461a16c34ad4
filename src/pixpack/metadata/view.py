"""A pack's metadata columns as zero-copy views of its memory map.

Opening costs nothing per sample: a numeric column is ``np.frombuffer`` over its
section, a string column is two views (UTF-8 bytes and offsets) that decode one value
when asked. Section bounds are checked when the pack opens
(:func:`pixpack.format.check_sections`); a column's layout (lengths, offsets that
only grow and stay inside the buffer) when it is first used, so a crafted pack fails
with :class:`~pixpack.errors.CorruptPackError`, never a crash.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from .. import format as fmt
from ..errors import CorruptPackError

__all__ = ["Columns", "StringColumn"]


class StringColumn:
    """Strings of one column: ``col[i]`` (``str``, or ``None`` when missing), slices and
    ``tolist()``; ``to_numpy()`` makes the object array (one Python str per sample)."""

    def __init__(self, data: np.ndarray, offsets: np.ndarray, valid: np.ndarray | None) -> None:
        self._data, self._offsets, self._valid = data, offsets, valid

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        i = int(i)
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"string column index {i} out of range for {len(self)} values")
        if self._valid is not None and not self._valid[i]:
            return None
        a, b = int(self._offsets[i]), int(self._offsets[i + 1])
        return self._data[a:b].tobytes().decode("utf-8", "surrogateescape")

    def __iter__(self) -> Iterator[str | None]:
        return (self[i] for i in range(len(self)))

    def tolist(self) -> list[str | None]:
        return list(self)

    def to_numpy(self) -> np.ndarray:
        out = np.empty(len(self), dtype=object)
        out[:] = self.tolist()
        return out

    def __repr__(self) -> str:
        return f"<StringColumn of {len(self)} values>"


class Columns(Mapping[str, Any]):
    """Column name -> values: a read-only numpy array (``int`` int64, ``float`` float64,
    ``bool``) or a :class:`StringColumn`. ``types`` gives each column's type and
    ``missing(name)`` a boolean mask (all False when nothing is missing)."""

    def __init__(
        self, buffer: Any, metadata: dict[str, Any], n: int, path: Any, base: int = 0
    ) -> None:
        # ``base``: the file offset ``buffer`` starts at (0: the whole file's map; a
        # remote shard's columns come from one range read of its sections instead).
        self._buffer, self._n, self._path, self._base = buffer, n, path, base
        self._sections = fmt.check_sections(metadata, base, base + len(memoryview(buffer)))
        described = metadata.get("columns") or []
        if not isinstance(described, list) or not all(isinstance(c, dict) for c in described):
            raise self._corrupt("'columns' is not a list of objects")
        self._desc = {str(c.get("name")): c for c in described}
        self.types = {name: str(c.get("type")) for name, c in self._desc.items()}
        self._cache: dict[str, Any] = {}

    def _corrupt(self, what: str) -> CorruptPackError:
        return CorruptPackError(f"{self._path}: metadata columns: {what}; re-pack it", self._path)

    def _section(self, name: str, dtype: np.dtype, count: int | None) -> np.ndarray:
        if name not in self._sections:
            raise self._corrupt(f"section {name!r} is missing")
        offset, nbytes, _ = self._sections[name]
        if nbytes % dtype.itemsize or (count is not None and nbytes != count * dtype.itemsize):
            raise self._corrupt(f"section {name!r} holds {nbytes} bytes, not {count} values")
        return np.frombuffer(self._buffer, dtype, nbytes // dtype.itemsize, offset - self._base)

    def _load(self, name: str) -> Any:
        desc = self._desc[name]
        kind = self.types[name]
        if kind not in fmt.COLUMN_TYPES:
            raise self._corrupt(f"column {name!r} has unknown type {kind!r}")
        sections = desc.get("sections") or {}
        if not isinstance(sections, dict):
            raise self._corrupt(f"column {name!r} has no sections mapping")
        valid = None
        if sections.get("valid") is not None:
            valid = self._section(sections["valid"], np.dtype("u1"), self._n)
        if kind != "string":
            return self._section(sections.get("values"), fmt.COLUMN_TYPES[kind], self._n)
        data = self._section(sections.get("values"), np.dtype("u1"), None)
        offsets = self._section(sections.get("offsets"), np.dtype("<u8"), self._n + 1)
        if self._n and (
            offsets[0] != 0 or offsets[-1] > len(data) or (np.diff(offsets) > 2**40).any()
        ):
            raise self._corrupt(f"string column {name!r} has offsets outside its data")
        return StringColumn(data, offsets, valid)

    def __getitem__(self, name: str) -> Any:
        if name not in self._desc:
            raise KeyError(f"no column {name!r}; this pack has {', '.join(self._desc) or 'none'}")
        if name not in self._cache:
            self._cache[name] = self._load(name)
        return self._cache[name]

    def missing(self, name: str) -> np.ndarray:
        sections = self._desc[name].get("sections") or {}
        ref = sections.get("valid") if isinstance(sections, dict) else None
        if ref is None:
            return np.zeros(self._n, dtype=bool)
        return self._section(ref, np.dtype("u1"), self._n) == 0

    def __iter__(self) -> Iterator[str]:
        return iter(self._desc)

    def __len__(self) -> int:
        return len(self._desc)

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}: {v}" for k, v in self.types.items())
        return f"<Columns {{{inner}}} of {self._n} samples>"
