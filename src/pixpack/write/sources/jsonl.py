"""JSON-lines manifests (``.jsonl``/``.ndjson``): one JSON object per line.

The path and label keys are found as in a CSV header (:mod:`.manifest`), from the
first object's keys (``path_column=``/``label_column=`` name them). A label is a
JSON integer (a class index) or string (a class name). Every other key is metadata of
its JSON type (integer, number, boolean, string, null: missing); a key may be absent
from some lines (missing there). Nested objects and arrays, a line that is not an
object, or a key whose type changes between lines (other than integer to number) are
refused with ``file:line`` and the fix. Blank lines are skipped.
"""

from __future__ import annotations

import io
import json
from typing import Any

from ...errors import SourceFormatError
from .columns import ColumnBuilder, MetadataColumns
from .csv_source import first_undecodable_line
from .manifest import LabelReader, ManifestSource, pick_columns

__all__ = ["JSONL_SUFFIXES", "JsonlSource"]

JSONL_SUFFIXES = (".jsonl", ".ndjson")


class JsonlSource(ManifestSource):
    """A JSON-lines manifest; see the module docstring."""

    kind = "jsonl"
    _what = "JSON-lines"
    _hint = 'add lines like {"path": "a.jpg", "label": "cat"}'

    def _read(
        self, f: io.TextIOWrapper, labels: LabelReader, wanted: tuple[str | None, str | None]
    ) -> tuple[list[str], MetadataColumns]:
        builder = ColumnBuilder()
        relpaths: list[str] = []
        keys: tuple[str, str | None] | None = None
        try:
            for line, text in enumerate(f, start=1):
                if not text.strip():
                    continue
                where = f"{self.path}:{line}"
                obj = _object(text, where)
                if keys is None:
                    names = list(obj)
                    path_at, label_at = pick_columns(names, *wanted, where)
                    keys = (names[path_at], None if label_at is None else names[label_at])
                relpaths.append(_path(obj.pop(keys[0], None), keys[0], where))
                if keys[1] is not None:
                    labels.add(_label(obj.pop(keys[1], None), keys[1], where), line)
                builder.add(obj, where)
        except UnicodeDecodeError as e:
            raise SourceFormatError(
                f"{self.path}:{first_undecodable_line(self.path)}: not UTF-8 text (byte "
                f"0x{e.object[e.start]:02x}) — save the file as UTF-8."
            ) from None
        return relpaths, builder.build()


def _object(text: str, where: str) -> dict[str, Any]:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise SourceFormatError(
            f"{where}: not valid JSON ({e.msg}, column {e.colno}) — write one JSON object per line."
        ) from None
    except (ValueError, RecursionError) as e:  # an integer of over 4300 digits, deep nesting
        raise SourceFormatError(f"{where}: {e} — write flat objects of ordinary values.") from None
    if not isinstance(obj, dict):
        raise SourceFormatError(
            f"{where}: expected a JSON object ({{...}}), got {type(obj).__name__} — write "
            'one object per line, e.g. {"path": "a.jpg", "label": "cat"}.'
        )
    return obj


def _path(value: Any, key: str, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        got = "no such key" if value is None else f"{value!r}"
        raise SourceFormatError(
            f"{where}: {key!r} must be the image's path as a non-empty string ({got}) — fix "
            "the line."
        )
    if "\0" in value:
        raise SourceFormatError(f"{where}: the path contains a NUL byte — fix the line.")
    return value.strip()


def _label(value: Any, key: str, where: str) -> int | str:
    if isinstance(value, bool) or not isinstance(value, (int, str)) or value == "":
        got = "no such key or null" if value is None else f"{value!r}"
        raise SourceFormatError(
            f"{where}: {key!r} must be a class name (string) or class index (integer) "
            f"({got}) — fix the line, or pass label_column= naming another key."
        )
    return value
