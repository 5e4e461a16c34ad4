"""Metadata queries on 1,000,000 samples (issue 15): pixpack against the seed's
approach (the metadata and the images as BLOBs in one SQLite table) and pandas, and
``Loader`` over a query's subset against the whole pack.

    python benchmarks/metadata_query.py [--runs 5] [--rounds 5] [--no-cold]

Data (built once by ``metadata_data.py`` under ``benchmarks/data/meta/``, gitignored):
a 1M-sample pack with five metadata columns, the same pack without columns, the same
rows in SQLite with a JPEG BLOB each, the columns as parquet for pandas, and the
20,000 photos of ``data/ooc-20000`` packed raw at 256 px with five columns.

Every measurement runs in a fresh process (``--child``) while this process holds
``flock /tmp/pixpack-bench.lock``; page cache warm (the files are read first), and,
unless ``--no-cold``, once more per engine after ``echo 3 > /proc/sys/vm/drop_caches``
(root). Per engine and query: the *first* query of a process (pixpack: includes
deserialising the pack's SQLite image) over ``--runs`` processes, and the median of
``--repeats`` later ones in each. pandas runs in ``benchmarks/envs/pandas`` (a venv
with ``--system-site-packages`` and ``pip install pandas pyarrow``) when it exists.
Results: ``benchmarks/results/<date>-<host>-metadata.{md,json}``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import fcntl
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from statistics import median
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from machine import git_revision, host_kind, machine_info, versions  # noqa: E402
from metadata_data import build_all, paths  # noqa: E402
from result_files import write_run  # noqa: E402

LOCK = "/tmp/pixpack-bench.lock"
PANDAS_PY = HERE / "envs" / "pandas" / "bin" / "python"
_IDS = [f"P{i:05d}" for i in range(0, 50_000, 100)]  # 500 of 50,000 patients: ~1%
QUERIES = {
    "selective": "site = 'B' AND age >= 86.4",
    "patients": f"patient_id IN ({', '.join(repr(p) for p in _IDS)})",
    "scan-7%": "score % 7 = 0 AND flag = 1",
    "scan-50%": "age > 45",
}
LOADER_QUERIES = {
    "subset-1%": "site = 'B' AND age >= 86.4",
    "subset-10%": "site = 'B' AND age >= 54",
}


# -- children: one measurement each, JSON on stdout --------------------------------------
def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1e3


def _summary(idx: np.ndarray) -> list[int]:
    return [len(idx), int(idx.sum())]


def child_open(path: str, repeats: int) -> dict[str, Any]:
    import pixpack

    t0 = time.perf_counter()
    pack = pixpack.open(path)
    n, last = len(pack), int(pack.targets[-1])
    first = _ms(t0)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        pack = pixpack.open(path)
        n, last = len(pack), int(pack.targets[-1])
        times.append(_ms(t0))
    return {"first_open_ms": first, "open_ms": times, "n": n, "last_label": last}


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _query_child(run: Any, first: str, repeats: int, setup_ms: float) -> dict[str, Any]:
    rss0 = _rss_mb()
    t0 = time.perf_counter()
    results = {first: _summary(run(QUERIES[first]))}
    out: dict[str, Any] = {"setup_ms": setup_ms, "first": first, "first_ms": _ms(t0)}
    out["later_ms"] = {}
    for name, where in QUERIES.items():
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            idx = run(where)
            times.append(_ms(t0))
        results[name] = _summary(idx)
        out["later_ms"][name] = times
    out["results"], out["rss_growth_mb"] = results, _rss_mb() - rss0
    return out


def child_pixpack(path: str, first: str, repeats: int) -> dict[str, Any]:
    import pixpack

    t0 = time.perf_counter()
    pack = pixpack.open(path)
    opened = _ms(t0)
    return _query_child(lambda w: pack.query(w).indices, first, repeats, opened)


def child_sqlite(path: str, first: str, repeats: int, indexed: bool) -> dict[str, Any]:
    import sqlite3

    t0 = time.perf_counter()
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    hint = "" if indexed else " NOT INDEXED"
    opened = _ms(t0)

    def run(where: str) -> np.ndarray:
        cur = con.execute(f"SELECT rowid FROM samples{hint} WHERE {where}")
        return np.fromiter((r[0] for r in cur), dtype=np.int64)

    out = _query_child(run, first, repeats, opened)
    explain = f"EXPLAIN QUERY PLAN SELECT rowid FROM samples{hint} WHERE "
    out["plans"] = {k: [r[-1] for r in con.execute(explain + w)] for k, w in QUERIES.items()}
    return out


def child_pandas(path: str, first: str, repeats: int) -> dict[str, Any]:
    import pandas as pd

    t0 = time.perf_counter()
    df = pd.read_parquet(path)
    loaded = _ms(t0)
    ids = set(_IDS)
    masks = {
        "selective": lambda: (df["site"] == "B") & (df["age"] >= 86.4),
        "patients": lambda: df["patient_id"].isin(ids),
        "scan-7%": lambda: (df["score"] % 7 == 0) & df["flag"],
        "scan-50%": lambda: df["age"] > 45,
    }
    out = _query_child(lambda w: np.flatnonzero(masks[_name(w)]().to_numpy()), first, repeats,
                       loaded)  # fmt: skip
    out["dtypes"] = {k: str(v) for k, v in df.dtypes.items()}
    return out


def _name(where: str) -> str:
    return next(k for k, v in QUERIES.items() if v == where)


def child_loader(path: str, where: str, seconds_images: int, passes: int) -> dict[str, Any]:
    from loaders.common import BATCH, CROP, MEAN, STD, time_loader

    import pixpack
    from pixpack.ops import Normalize, RandomHorizontalFlip, RandomResizedCrop

    pack = pixpack.open(path)
    source = pack.query(where) if where else pack

    def make() -> Any:
        pipeline = [RandomResizedCrop(CROP), RandomHorizontalFlip(), Normalize(MEAN, STD)]
        return pixpack.Loader(source, BATCH, pipeline=pipeline, workers=2, shuffle=True, seed=0)

    def epochs(loader: Any, epoch: int) -> Any:
        loader.set_epoch(epoch)
        return loader

    out = time_loader(make, passes=passes, pass_images=seconds_images, epoch_iter=epochs)
    out["samples"] = len(source)
    return out


# -- the parent ----------------------------------------------------------------------------
class BenchLock:
    """``flock /tmp/pixpack-bench.lock`` around one timed run."""

    def __enter__(self) -> BenchLock:
        self.f = open(LOCK, "a")
        fcntl.flock(self.f, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: Any) -> None:
        fcntl.flock(self.f, fcntl.LOCK_UN)
        self.f.close()


def drop_caches() -> None:
    os.sync()
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


def warm(*files: Path) -> None:
    """Read ``files`` into the page cache (again: another benchmark may have dropped it)."""
    buf = bytearray(1 << 26)
    for f in files:
        with open(f, "rb", buffering=0) as fh:
            while fh.readinto(buf):
                pass


def child(kind: str, *args: Any, python: str | None = None, cold: bool = False,
          files: tuple[Path, ...] = ()) -> dict[str, Any]:  # fmt: skip
    cmd = [python or sys.executable, str(Path(__file__)), "--child", kind, *map(str, args)]
    with BenchLock():
        if cold:
            drop_caches()
        else:
            warm(*files)
        load = os.getloadavg()[0]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"{kind} {args}: {done.stderr[-3000:]}")
    return {**json.loads(done.stdout.splitlines()[-1]), "load_1min": load}


def run_queries(args: Any, p: dict[str, Path]) -> dict[str, Any]:
    pandas_py = str(PANDAS_PY) if PANDAS_PY.exists() else sys.executable
    engines = {  # (child arguments, interpreter); the first argument is the file to warm
        "pixpack": (("pixpack", p["meta"]), None),
        "sqlite-blobs": (("sqlite", p["sqlite"], 0), None),
        "sqlite-blobs-indexed": (("sqlite", p["sqlite"], 1), None),
        "pandas": (("pandas", p["parquet"]), pandas_py),
    }
    out: dict[str, Any] = {"opens": {}, "warm": {e: [] for e in engines}, "cold": {}}
    for key in ("plain", "meta"):
        out["opens"][key] = [child("open", p[key], 20, files=(p[key],)) for _ in range(args.runs)]
        runs = out["opens"][key]
        print(f"open {key}: {median(r['first_open_ms'] for r in runs):.2f} ms first, "
              f"{median(x for r in runs for x in r['open_ms']):.3f} ms later")  # fmt: skip
    for first in QUERIES:  # every query is the first of a process in --runs processes
        for _ in range(args.runs):
            for engine, (cargs, py) in engines.items():
                kind, *rest = cargs
                reps = args.scan_repeats if engine.startswith("sqlite") else args.repeats
                r = child(kind, rest[0], first, reps, *rest[1:], python=py, files=(rest[0],))
                out["warm"][engine].append(r)
                print(f"{engine:22s} first {first:10s} {r['first_ms']:9.1f} ms", flush=True)
    if args.cold:
        for engine, (cargs, py) in engines.items():
            kind, *rest = cargs
            out["cold"][engine] = []
            for _ in range(args.cold_runs):
                r = child(kind, rest[0], "selective", 1, *rest[1:], python=py, cold=True)
                out["cold"][engine].append(r)
                print(f"{engine:22s} cold first {r['first_ms']:9.1f} ms (setup "
                      f"{r['setup_ms']:.1f} ms)", flush=True)  # fmt: skip
        out["cold_open"] = [child("open", p["meta"], 20, cold=True) for _ in range(args.cold_runs)]
    return out


def run_loader(args: Any, p: dict[str, Path]) -> dict[str, Any]:
    configs = {"full": "", **LOADER_QUERIES}
    rounds = []
    for r in range(args.rounds):
        rec = {}
        for name, where in configs.items():
            rec[name] = child("loader", p["photos"], where, args.window, args.passes,
                              files=(p["photos"],))  # fmt: skip
            print(f"round {r + 1} loader {name:10s} {rec[name]['samples']:6d} samples "
                  f"{rec[name]['rate_median']:8.0f} img/s", flush=True)  # fmt: skip
        rounds.append(rec)
    return {"configs": configs, "rounds": rounds}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="fresh processes per measurement")
    parser.add_argument("--repeats", type=int, default=7, help="later queries per process")
    parser.add_argument(
        "--scan-repeats",
        type=int,
        default=2,
        help="later queries per process on SQLite without index (seconds each)",
    )
    parser.add_argument("--cold-runs", type=int, default=3)
    parser.add_argument("--no-cold", dest="cold", action="store_false")
    parser.add_argument("--rounds", type=int, default=5, help="loader rounds")
    parser.add_argument("--passes", type=int, default=3, help="loader windows per round")
    parser.add_argument("--window", type=int, default=4096, help="images per loader window")
    parser.add_argument("--skip", default="", help="'queries' or 'loader'")
    parser.add_argument("--run-name", default=None)
    parser.add_argument("--child", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        fn = {"open": child_open, "pixpack": child_pixpack, "sqlite": child_sqlite,
              "pandas": child_pandas, "loader": child_loader}[kind]  # fmt: skip
        conv = [int(x) if x.lstrip("-").isdigit() else x for x in rest]
        if kind == "sqlite":
            conv[-1] = bool(conv[-1])
        print(json.dumps(fn(*conv)))
        return 0
    with BenchLock():
        built = build_all(str(PANDAS_PY) if PANDAS_PY.exists() else None)
    p = paths()
    info = machine_info(HERE / "data")
    doc: dict[str, Any] = {
        "command": " ".join(["python", "benchmarks/metadata_query.py", *sys.argv[1:]]),
        "machine": info,
        "versions": versions(sys.executable, ("pixpack", "numpy", "torch")),
        "git": git_revision(HERE.parent),
        "sqlite_version": __import__("sqlite3").sqlite_version,
        "file_sizes": {k: v.stat().st_size for k, v in p.items()},
        "build_s": built,
        "queries": QUERIES,
        "args": {k: v for k, v in vars(args).items() if k != "child"},
    }
    if PANDAS_PY.exists():
        doc["versions"].update(versions(str(PANDAS_PY), ("pandas", "pyarrow")))
    if args.skip != "queries":
        doc["query"] = run_queries(args, p)
    if args.skip != "loader":
        doc["loader"] = run_loader(args, p)
    name = args.run_name or f"{dt.date.today()}-{host_kind(info)}-metadata"
    from report_metadata import render

    write_run(name, doc, render(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
