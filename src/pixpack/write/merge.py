"""Writing a sharded pack's manifest, and ``merge``: one dataset from packs made apart.

The manifest (:mod:`pixpack.shard_format`) is written like a pack's header: last, to a
temp file in the same directory, fsynced, renamed onto ``shards.json``, and the
directory fsynced; a ``shards.json`` that pixpack did not write is never replaced.
Packs are joined only when they agree on what a reader relies on: the class list,
the content options (mode, quality, sizes, channels), the metadata column schema and
a format version this pixpack reads; otherwise a :class:`UsageError` names the file,
what differs and the fix. Shards written by one sharded ``pack`` (they record the
source items they hold) must also cover their source once, without gaps or overlaps.
"""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .. import shard_format as sf
from ..errors import OutputExistsError, UsageError

__all__ = ["merge", "manifest_for", "write_manifest", "shard_entry", "merged_classes"]

_CONTENT = ("mode", "quality", "reencode", "max_side", "short_side", "channels")


def shard_entry(path: Path, pack: Any, base: Path) -> dict[str, Any]:
    """The manifest's line for one shard (an open :class:`Pack`)."""
    header = pack.header
    entry = {
        "path": os.path.relpath(path, base),
        "samples": len(pack),
        "first": 0,
        "bytes": int(header["file_size"]),
        "header_crc32": int(header["header_crc32"]),
    }
    source = (pack.metadata.get("shard") or {}).get("source")
    if source is not None:
        entry["source"] = list(source)
    return entry


def _content(meta: dict[str, Any]) -> dict[str, Any]:
    options = meta.get("options") or {}
    return {k: options.get(k) for k in _CONTENT}


def _columns(meta: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"name": c.get("name"), "type": c.get("type")} for c in meta.get("columns") or []]


def merged_classes(metas: list[dict[str, Any]]) -> list[str]:
    """The dataset's class list: the packs' common one; for packs whose classes are
    named after their labels (``"0"``, ``"1"`` ... up to each pack's largest label: a
    dataset without ``.classes``), the longest, which the others begin."""
    lists = [list(m.get("classes") or []) for m in metas]
    if lists and all(sf.index_named(c) for c in lists):
        return max(lists, key=len)
    return lists[0] if lists else []


def _check_same(paths: list[Path], metas: list[dict[str, Any]]) -> None:
    first, ref = paths[0], metas[0]
    classes = merged_classes(metas)
    for path, meta in zip(paths[1:], metas[1:], strict=True):
        if not (sf.classes_agree(meta, classes) and sf.classes_agree(ref, classes)):
            raise UsageError(
                f"{path}: its classes {_short(meta.get('classes'))} differ from {first}'s "
                f"{_short(ref.get('classes'))}; re-pack it with --classes-from {first}."
            )
        if _content(meta) != _content(ref):
            diff = {k: (v, _content(ref)[k]) for k, v in _content(meta).items()
                    if v != _content(ref)[k]}  # fmt: skip
            what = ", ".join(f"{k}={a!r} (not {b!r})" for k, (a, b) in diff.items())
            raise UsageError(
                f"{path}: packed with {what} unlike {first}; re-pack it with the same options."
            )
        if _columns(meta) != _columns(ref):
            raise UsageError(
                f"{path}: its metadata columns {_columns(meta)} differ from {first}'s "
                f"{_columns(ref)}; pack both from sources with the same columns."
            )


def _short(classes: Any) -> str:
    names = list(classes or [])
    return repr(names if len(names) <= 6 else [*names[:5], "..."]) + f" ({len(names)})"


def _check_coverage(paths: list[Path], metas: list[dict[str, Any]]) -> None:
    """Shards written by a sharded ``pack`` record their source items and the run that
    wrote them (``key``): each run of consecutive shards of one key must hold every
    item of its source once, in order (a missing slice or a stale shard fails here)."""
    runs: list[list[tuple[Path, dict[str, Any]]]] = []
    for path, meta in zip(paths, metas, strict=True):
        info = meta.get("shard")
        if not isinstance(info, dict) or "source" not in info:
            continue  # a pack made apart: nothing says what it should cover
        if runs and runs[-1][-1][1].get("key") == info.get("key"):
            runs[-1].append((path, info))
        else:
            runs.append([(path, info)])
    for run in runs:
        total, at = run[0][1].get("source_items"), 0
        for path, info in run:
            start, stop = info["source"]
            if start != at:
                what = "are in no shard" if start > at else "are in two shards"
                lo, hi = (at, start - 1) if start > at else (start, at - 1)
                raise UsageError(
                    f"{path}: source items {lo}..{hi} {what} (a slice not finished, or a "
                    "shard left from another run?); rerun that slice or remove the stale "
                    "shard, then merge."
                )
            at = stop
        if isinstance(total, int) and at != total:
            raise UsageError(
                f"{run[-1][0]}: source items {at}..{total - 1} are in no shard (a slice not "
                "finished?); rerun its `pixpack pack ... --shard-index`, then merge."
            )


def manifest_for(out_dir: Path, paths: list[Path]) -> dict[str, Any]:
    """The manifest of the packs at ``paths`` (in sample order), for ``out_dir``;
    raises :class:`UsageError` when they do not make one dataset."""
    from ..read.pack import Pack

    entries, metas = [], []
    for path in paths:
        with Pack(path) as pack:
            entries.append(shard_entry(path, pack, out_dir))
            metas.append(pack.metadata)
    if not paths:
        raise UsageError(f"{out_dir}: no packs to merge; give pack files or directories.")
    _check_same(paths, metas)
    _check_coverage(paths, metas)
    first = 0
    for entry in entries:
        entry["first"] = first
        first += entry["samples"]
    return {
        "format": sf.MANIFEST_FORMAT,
        "major": sf.MANIFEST_MAJOR,
        "minor": sf.MANIFEST_MINOR,
        "num_samples": first,
        "classes": merged_classes(metas),
        "options": metas[0].get("options") or {},
        "columns": _columns(metas[0]),
        "shards": entries,
        "metadata": combined_metadata(metas),
    }


def combined_metadata(metas: list[dict[str, Any]]) -> dict[str, Any]:
    """The whole dataset's statistics from its shards': counts add up; mean/std are
    pixel-weighted (exact when every shard reports the same ``stats_channels``)."""
    from .. import __version__

    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    out: dict[str, Any] = {"pixpack_version": __version__, "created": created}
    for key in ("class_counts", "channels_histogram", "dtype_histogram", "mode_histogram"):
        total: Counter[str] = Counter()
        for meta in metas:
            total.update(meta.get(key) or {})
        out[key] = dict(total)
    out["bytes_stored"] = sum(int(m.get("bytes_stored") or 0) for m in metas)
    out["jpeg_kept_as_source"] = sum(int(m.get("jpeg_kept_as_source") or 0) for m in metas)
    out["skipped"] = [s for m in metas for s in m.get("skipped") or []]
    sources = [m.get("source") for m in metas]
    out["source"] = sources[0] if all(s == sources[0] for s in sources) else sources
    out["mean"], out["std"], out["stats_channels"] = _mean_std(metas)
    return out


def _mean_std(metas: list[dict[str, Any]]) -> tuple[list[float], list[float], int]:
    channels = Counter()  # type: Counter[int]
    for m in metas:
        channels[int(m.get("stats_channels") or 0)] += int(m.get("num_samples") or 0)
    target = max(channels, key=lambda c: (channels[c], c)) if channels else 0
    use = [m for m in metas if m.get("stats_channels") == target and m.get("mean")]
    weights = [int(m.get("stats_pixels") or 0) for m in use]
    total = sum(weights)
    if not use or total == 0:
        return [], [], target
    mean, std = [], []
    for c in range(len(use[0]["mean"])):
        mu = sum(w * m["mean"][c] for w, m in zip(weights, use, strict=True)) / total
        sq = sum(w * (m["std"][c] ** 2 + m["mean"][c] ** 2)
                 for w, m in zip(weights, use, strict=True)) / total  # fmt: skip
        mean.append(mu)
        std.append(max(sq - mu * mu, 0.0) ** 0.5)
    return mean, std, target


def write_manifest(out_dir: Path, manifest: dict[str, Any]) -> Path:
    """Atomically write ``out_dir/shards.json`` (never over a file pixpack did not write)."""
    from ..read.shard_parts import read_manifest

    target = out_dir / sf.MANIFEST_NAME
    if os.path.lexists(target):
        from ..errors import PackError

        if target.is_symlink() or not target.is_file():
            raise OutputExistsError(f"{target}: not a regular file; move it away to write one")
        try:
            read_manifest(target)
        except PackError as exc:
            if type(exc).__name__ == "NotAPackError":
                raise OutputExistsError(
                    f"{target} exists and is not a pixpack shard manifest; move it away"
                ) from None  # a damaged or newer manifest of ours is replaced
    data = sf.encode_manifest(manifest)
    fd, tmp = tempfile.mkstemp(prefix=f".{sf.MANIFEST_NAME}.", suffix=".partial", dir=out_dir)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(out_dir, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return target


def _expand(item: Path) -> list[Path]:
    """The packs an input names: a pack file, a sharded pack (its listed shards), or a
    directory of packs (its ``*.pixpack`` files, by name)."""
    from ..read.shard_parts import read_manifest

    manifest = item / sf.MANIFEST_NAME if item.is_dir() else item
    if manifest.suffix == ".json" and manifest.is_file():
        doc, _ = read_manifest(manifest)
        return [manifest.parent / s["path"] for s in doc["shards"]]
    if item.is_dir():
        return sorted(item.glob("*.pixpack"))
    if not item.exists():
        raise UsageError(f"{item}: no such pack or directory; check the path.")
    return [item]


def merge(out: str | os.PathLike[str], inputs: Any = ()) -> Path:
    """Join packs made apart (array jobs, slices, separately packed parts) into the
    sharded pack ``out`` (a directory): writes ``out/shards.json`` listing them, in
    the order given (a directory's packs by name). No input: ``out``'s own packs.
    Returns the manifest's path; ``pixpack.open(out)`` then reads them as one."""
    out_dir = Path(out)
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"{out_dir}: is a file; merge into a directory (new or a sharded pack).")
    items = [Path(p) for p in ([inputs] if isinstance(inputs, (str, os.PathLike)) else inputs)]
    if not items:
        if not out_dir.is_dir():
            raise UsageError(f"{out_dir}: no such directory, and no packs given to merge.")
        items = [out_dir]
    paths: list[Path] = []
    for item in items:
        for path in _expand(item):
            if path not in paths:
                paths.append(path)
    out_dir.mkdir(parents=True, exist_ok=True)
    return write_manifest(out_dir, manifest_for(out_dir, paths))
