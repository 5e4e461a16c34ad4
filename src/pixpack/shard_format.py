"""The sharded-pack manifest: layout, version and checks only, no file I/O.

A sharded pack is a directory of ordinary packs (the shards) and one small JSON
manifest, ``shards.json``, written last and atomically (temp file, fsync, rename), so
the directory opens as a dataset only once every shard it lists was complete::

    train.pixpack/                      a directory
        part-000000000.pixpack          source items 0 .. 9999 (an ordinary pack)
        part-000010000.pixpack          source items 10000 .. 19999
        ...
        shards.json                     the manifest (MANIFEST_NAME), written last

    {
      "format": "pixpack-shards",       MANIFEST_FORMAT: what this JSON file is
      "major": 1, "minor": 0,           readers refuse a larger major
      "num_samples": 20000,             the sum of the shards' samples
      "classes": ["cat", "dog"],        one class list, the same in every shard
      "options": {"mode": "jpeg", ...}  the content options, the same in every shard
      "columns": [{"name": "path", "type": "string"}],   the same in every shard
      "shards": [
        {"path": "part-000000000.pixpack",   relative to the manifest's directory
         "samples": 9998,                     samples in the shard
         "first": 0,                          global index of its first sample
         "bytes": 1073741000,                 the shard file's size
         "header_crc32": 305419896,           its header CRC: covers the index and
                                              metadata CRCs and the size, so equal
                                              values mean the file pixpack listed
         "source": [0, 10000]},               source items it covers, when known
        ...
      ],
      "metadata": {...}                 the whole dataset's: mean/std, counts, skipped,
                                        source, pixpack_version, created
    }

Choices against the peers: like MosaicML Streaming's ``index.json`` (per shard a
``basename``, ``bytes``, ``samples`` and optional ``hashes``) and LitData's
(``chunks`` with ``filename``, ``chunk_bytes``, ``chunk_size``), a shard is named by
its file and counted in samples and bytes; unlike them, a shard is a self-describing
pack, so the manifest repeats only what a reader needs to open the dataset without
touching a shard (counts, classes, options, column schema) and what identifies each
file (size + header CRC; a sha256 of gigabytes would cost a full read on every
check, while the header CRC chains to the index CRC, which holds every sample's CRC,
so ``pixpack verify`` checks every byte against it). ``first`` is redundant with the
counts and checked on open: a reader can find a sample's shard by bisection without
summing. ``source`` lets a resumed or merged pack know which source items each shard
holds.

Compatibility: readers ignore unknown keys; ``minor`` grows when keys are added;
``major`` changes only when an old reader could misread the manifest.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

__all__ = [
    "MANIFEST_NAME",
    "MANIFEST_FORMAT",
    "MANIFEST_MAJOR",
    "MANIFEST_MINOR",
    "MAX_MANIFEST_BYTES",
    "SHARD_PREFIX",
    "shard_name",
    "encode_manifest",
    "decode_manifest",
    "cumulative_counts",
    "classes_agree",
    "index_named",
]

MANIFEST_NAME = "shards.json"
MANIFEST_FORMAT = "pixpack-shards"
MANIFEST_MAJOR = 1
MANIFEST_MINOR = 0
MAX_MANIFEST_BYTES = 256 << 20  # as a pack's metadata: checked before parsing
SHARD_PREFIX = "part-"


def shard_name(source_start: int) -> str:
    """A shard's file name: the position of its first source item, so shards written
    by separate jobs never share a name and sort in source order."""
    return f"{SHARD_PREFIX}{source_start:09d}.pixpack"


def encode_manifest(manifest: dict[str, Any]) -> bytes:
    """The manifest as UTF-8 JSON (ASCII escapes when a name is not valid UTF-8)."""
    text = json.dumps(manifest, ensure_ascii=False, indent=1, allow_nan=False)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(manifest, ensure_ascii=True, indent=1, allow_nan=False).encode()


def decode_manifest(raw: bytes) -> dict[str, Any]:
    """Parse and check a manifest. Raises ``LookupError`` when it is not a pixpack
    manifest at all, ``OverflowError`` (with the version) when its major version is
    newer than this reader's, and a one-line ``ValueError`` for anything malformed."""
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise LookupError(f"not JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != MANIFEST_FORMAT:
        raise LookupError(f'no "format": "{MANIFEST_FORMAT}" key')
    major, minor = doc.get("major"), doc.get("minor")
    if not isinstance(major, int) or not isinstance(minor, int):
        raise ValueError("'major' and 'minor' must be integers")
    if major > MANIFEST_MAJOR:
        raise OverflowError(f"{major}.{minor}")
    shards = doc.get("shards")
    if not isinstance(shards, list) or not all(isinstance(s, dict) for s in shards):
        raise ValueError("'shards' must be a list of objects")
    first = 0
    for k, shard in enumerate(shards):
        path = shard.get("path")
        if not isinstance(path, str) or not path or "\x00" in path:
            raise ValueError(f"shard {k} has no file path")
        for key in ("samples", "first", "bytes", "header_crc32"):
            value = shard.get(key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"shard {k} ({path}): {key!r} must be a non-negative integer")
        if shard["first"] != first:
            raise ValueError(f"shard {k} ({path}) starts at {shard['first']}, expected {first}")
        first += shard["samples"]
    if doc.get("num_samples") != first:
        raise ValueError(f"'num_samples' is {doc.get('num_samples')!r}, the shards hold {first}")
    classes = doc.get("classes", [])
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise ValueError("'classes' must be a list of strings")
    columns = doc.get("columns", [])
    if not isinstance(columns, list) or not all(
        isinstance(c, dict) and isinstance(c.get("name"), str) for c in columns
    ):
        raise ValueError("'columns' must be a list of {name, type} objects")
    if not isinstance(doc.get("metadata", {}), dict):
        raise ValueError("'metadata' must be an object")
    return doc


def cumulative_counts(manifest: dict[str, Any]) -> np.ndarray:
    """``starts`` with ``len(shards) + 1`` entries: shard k holds global samples
    ``starts[k] .. starts[k + 1] - 1``."""
    counts = [s["samples"] for s in manifest["shards"]]
    return np.concatenate(([0], np.cumsum(counts, dtype=np.int64))).astype(np.int64)


def index_named(classes: Any) -> bool:
    """Whether ``classes`` is ``["0", "1", ... "k"]``: name ``i`` at index ``i``, as a
    dataset without ``.classes`` is packed (``classes_from_labels`` in its metadata).
    Such lists mean the same labels whatever their length, so one that is a prefix of
    another agrees with it (an earlier shard saw fewer labels)."""
    names = list(classes or [])
    return names == [str(i) for i in range(len(names))]


def classes_agree(shard: dict[str, Any], classes: list[str]) -> bool:
    """Whether a pack's class list fits the dataset's ``classes``: equal, or, both
    :func:`index_named`, a prefix of them."""
    own = list(shard.get("classes") or [])
    if index_named(own) and index_named(classes):
        return own == classes[: len(own)]
    return own == list(classes)
