"""``verify`` of a sharded pack: the manifest against its shards, then every shard.

Each shard must exist and be the file the manifest lists (size, header CRC, sample
count, class list); then :func:`~.verify.verify` recomputes its index and sample
CRCs. Problems are reported in one :class:`~.verify.VerifyReport` for the whole
dataset: damaged samples by their global index, each naming its shard.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import PackError
from ..shard_format import classes_agree
from .pack import Pack
from .shard_parts import check_shard, read_manifest
from .verify import VerifyReport, verify

__all__ = ["verify_sharded"]


def verify_sharded(manifest: Path, *, progress: bool | None = None) -> VerifyReport:
    doc, _ = read_manifest(manifest)
    report = VerifyReport(manifest.parent, int(doc["num_samples"]))
    for entry in doc["shards"]:
        path = manifest.parent / entry["path"]
        name = entry["path"]
        if not path.exists():
            report.structure_errors.append(
                f"shard {name} is missing (rerun the same `pixpack pack`: it redoes only "
                "missing shards)"
            )
            continue
        try:
            with Pack(path) as pack:
                check_shard(path, entry, pack.header, manifest)
                shard_meta = pack.metadata
            if not classes_agree(shard_meta, list(doc.get("classes") or [])):
                report.structure_errors.append(
                    f"shard {name}: its classes differ from the manifest's"
                )
            shard = verify(path, progress=progress)
        except PackError as exc:
            report.structure_errors.append(f"shard {name}: {exc}")
            continue
        report.bytes_checked += shard.bytes_checked
        if not shard.index_ok:
            report.structure_errors.append(f"shard {name}: the index does not match its checksum")
        report.structure_errors += [f"shard {name}: {e}" for e in shard.structure_errors]
        first = int(entry["first"])
        report._add({first + i: f"{why} (shard {name}, sample {i})"
                     for i, why in shard.bad_samples.items()})  # fmt: skip
        report.unlisted += shard.unlisted
    return report
