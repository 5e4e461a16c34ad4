"""The data of the metadata-query benchmark (``metadata_query.py``), built once under
``benchmarks/data/meta/`` (gitignored).

- ``million-meta.pixpack``: 1,000,000 samples of 1x1x3 uint8 with five metadata
  columns (``patient_id`` string, 50,000 distinct; ``site`` string, 4 values; ``age``
  float 0-90; ``flag`` bool; ``score`` int -1000..999), written by ``PackWriter`` and
  the packer's own column and SQLite-image code (``build_columns``,
  ``column_sections``), so the pack is what ``pixpack pack`` writes for such a source.
- ``million-plain.pixpack``: the same samples without columns (as packed before they
  existed), for the open time.
- ``seed-blobs.sqlite``: the seed's approach, the same rows in one SQLite table with
  every sample's image as a JPEG BLOB (1,000 distinct real-photo crops of 160x120,
  reused, so the table has its real size); indexes on ``(site, age)`` and
  ``patient_id``, which the unindexed rows bypass with ``NOT INDEXED``.
- ``columns.parquet``: the same five columns (plus ``label``) for pandas.
- ``photos-meta.pixpack``: the 20,000 real photos of ``data/ooc-20000`` packed raw at
  ``max_side=256`` with the same five columns (drawn with another seed), for the loader.
"""

from __future__ import annotations

import io
import sqlite3
import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

HERE = Path(__file__).resolve().parent
META = HERE / "data" / "meta"
SITES = np.array(["A", "B", "C", "D"])
N = 1_000_000
PATIENTS = 50_000
BLOBS = 1000
BLOB_SIZE = (160, 120)

__all__ = ["META", "N", "build_all", "columns", "paths"]


def paths() -> dict[str, Path]:
    return {
        "meta": META / "million-meta.pixpack",
        "plain": META / "million-plain.pixpack",
        "sqlite": META / "seed-blobs.sqlite",
        "parquet": META / "columns.parquet",
        "photos": META / "photos-meta.pixpack",
    }


def columns(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """The five metadata columns (strings as numpy unicode arrays) and the labels."""
    rng = np.random.default_rng(seed)
    pid = rng.integers(0, PATIENTS, n)
    return {
        "patient_id": np.char.add("P", np.char.zfill(pid.astype(str), 5)),
        "site": SITES[rng.integers(0, 4, n)],
        "age": rng.random(n) * 90,
        "flag": rng.random(n) < 0.5,
        "score": rng.integers(-1000, 1000, n),
        "label": np.arange(n) % 10,
    }


def _write_tiny_pack(path: Path, cols: dict[str, np.ndarray] | None) -> None:
    from pixpack import format as fmt
    from pixpack.metadata.encode import build_columns
    from pixpack.metadata.store import column_sections
    from pixpack.write.writer import PackWriter

    classes = [str(c) for c in range(10)]
    n = N
    tmp = path.with_suffix(".tmp")
    writer = PackWriter(tmp, {"t": 1}).start()
    for i in range(n):
        writer.append(b"\0\0\0", source_index=i, height=1, width=1, channels=3,
                      dtype_code=0, mode_code=fmt.MODE_RAW, label=i % 10)  # fmt: skip
    meta: dict[str, Any] = {"classes": classes, "skipped": []}
    sections: dict[str, Any] = {}
    if cols is not None:
        lists = {k: cols[k].tolist() for k in ("patient_id", "site", "age", "flag", "score")}

        class Source:
            classes: ClassVar[list[str]] = []

            def path_of(self, i: int) -> str:
                return f"img/{i:07d}.jpg"

            def metadata(self, i: int) -> dict[str, Any]:
                return {k: v[i] for k, v in lists.items()}

        records = writer.records()
        built = build_columns(Source(), records["source_index"])
        sections, meta["columns"] = column_sections(built, records["entry"], classes)
    writer.commit(meta, sections)
    tmp.rename(path)


def _jpeg_blobs() -> list[bytes]:
    from pixpack.sample_data import load_photos, make_photo

    photos, rng, out = load_photos(), np.random.default_rng(7), []
    for _ in range(BLOBS):
        buf = io.BytesIO()
        make_photo(photos, BLOB_SIZE, rng).save(buf, "JPEG", quality=int(rng.integers(75, 96)))
        out.append(buf.getvalue())
    return out


def _write_sqlite(path: Path, cols: dict[str, np.ndarray]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    con = sqlite3.connect(tmp)
    con.execute("PRAGMA journal_mode = OFF")
    con.execute("PRAGMA synchronous = OFF")
    con.execute(
        "CREATE TABLE samples (idx INTEGER PRIMARY KEY, path TEXT, label INTEGER, "
        "patient_id TEXT, site TEXT, age REAL, flag INTEGER, score INTEGER, image BLOB)"
    )
    blobs = _jpeg_blobs()
    step = 50_000
    for a in range(0, N, step):
        b = min(a + step, N)
        rows = zip(
            range(a, b), (f"img/{i:07d}.jpg" for i in range(a, b)),
            cols["label"][a:b].tolist(), cols["patient_id"][a:b].tolist(),
            cols["site"][a:b].tolist(), cols["age"][a:b].tolist(),
            cols["flag"][a:b].astype(int).tolist(), cols["score"][a:b].tolist(),
            (blobs[i % BLOBS] for i in range(a, b)), strict=True,
        )  # fmt: skip
        con.executemany("INSERT INTO samples VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    con.execute("CREATE INDEX samples_site_age ON samples (site, age)")
    con.execute("CREATE INDEX samples_patient ON samples (patient_id)")
    con.commit()
    con.close()
    tmp.rename(path)


def _write_parquet(path: Path, cols: dict[str, np.ndarray]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({k: cols[k] for k in ("label", "patient_id", "site", "age", "flag", "score")})
    pq.write_table(table, path.with_suffix(".tmp"))
    path.with_suffix(".tmp").rename(path)


def _write_photos(path: Path, src: Path) -> None:
    import pixpack

    files = sorted(src.glob("class_*/*.jpg"))
    cols = columns(len(files), seed=1)
    items = [
        (str(f), f.parent.name, {k: cols[k][i].item() for k in
                                 ("patient_id", "site", "age", "flag", "score")})
        for i, f in enumerate(files)
    ]  # fmt: skip
    pixpack.pack(items, path, mode="raw", max_side=256)


def build_all(parquet_python: str | None = None) -> dict[str, float]:
    """Build what is missing; returns the seconds each build took."""
    META.mkdir(parents=True, exist_ok=True)
    p, took = paths(), {}
    cols = None
    for key in ("meta", "plain", "sqlite", "photos"):
        if p[key].exists():
            continue
        t0 = time.perf_counter()
        cols = cols if cols is not None else columns(N)
        if key == "meta":
            _write_tiny_pack(p[key], cols)
        elif key == "plain":
            _write_tiny_pack(p[key], None)
        elif key == "sqlite":
            _write_sqlite(p[key], cols)
        else:
            _write_photos(p[key], HERE / "data" / "ooc-20000")
        took[key] = time.perf_counter() - t0
        print(f"built {p[key].name} in {took[key]:.1f} s", flush=True)
    if not p["parquet"].exists():
        import subprocess
        import sys

        code = ("import sys; sys.path.insert(0, sys.argv[1]); import metadata_data as m; "
                "m._write_parquet(m.paths()['parquet'], m.columns(m.N))")  # fmt: skip
        subprocess.run([parquet_python or sys.executable, "-c", code, str(HERE)], check=True)
    return took
