"""Packing on a local Dask cluster of N worker processes against one process, and
against LitData ``optimize`` doing the same work (issue 18, item 3).

Every row packs the same ImageFolder of real-photo JPEGs (``benchmarks/data/
photos-<N>``, made by ``pixpack.sample_data.make_image_folder``) into 500-sample
shards, decoding, resizing to a longer side of 256 and encoding JPEG q90:

- ``one-process``: ``pixpack.pack(..., shard_size="500samples", workers=1)``;
- ``dask-local``: ``engine="dask://local?workers=N"``: the cluster's start and
  shut-down are inside the time, as a user sees them;
- ``dask-running``: ``engine="dask://HOST:PORT"`` of a cluster of N processes started
  before the clock (the steady state on a cluster users already run);
- ``litdata-pil``: ``litdata.optimize(fn, inputs, chunk_size=500, num_workers=N)`` with
  ``fn`` = PIL open, ``draft`` + ``thumbnail((256, 256))``, JPEG q90 bytes: what a
  LitData user writes;
- ``litdata-pixpack-kernel``: the same ``optimize`` with pixpack's own per-image
  kernel as ``fn`` (``load_image_info`` + ``encode_sample``): the orchestration alone.

Each row runs in a fresh interpreter (LitData's in its venv, benchmarks/envs/litdata,
from ``bash benchmarks/install_peers.sh litdata``), under ``flock
/tmp/pixpack-bench.lock``; rows are interleaved over rounds, order reversed every other
round. Recorded per run: wall seconds, CPU seconds of the row's process tree, and the
whole machine's busy CPU seconds over the run (what other work on the machine took).

    python benchmarks/cluster_pack.py --images 4000 --workers 2 --rounds 3
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

ROWS = ("one-process", "dask-local", "dask-running", "litdata-pil", "litdata-pixpack-kernel")
SHARD = 500
LOCK = "/tmp/pixpack-bench.lock"


# -- one row, in its own interpreter ---------------------------------------------------
def _pil_fn(item: tuple[str, int]) -> dict[str, Any]:
    import io

    from PIL import Image

    path, label = item
    with Image.open(path) as im:
        im.draft("RGB", (256, 256))  # libjpeg's reduced-size decode, as a user would
        im = im.convert("RGB")
        im.thumbnail((256, 256), Image.Resampling.BILINEAR, reducing_gap=2.0)
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=90)
    return {"image": buf.getvalue(), "label": label}


def _kernel_fn(item: tuple[str, int]) -> dict[str, Any]:
    from pixpack.write import encode_sample, load_image_info

    path, label = item
    loaded = load_image_info(path, max_side=256)
    return {"image": bytes(encode_sample(loaded.array, mode="jpeg", quality=90).data),
            "label": label}  # fmt: skip


def _items(src: Path) -> list[tuple[str, int]]:
    classes = sorted(p.name for p in src.iterdir() if p.is_dir())
    return [(str(f), i) for i, c in enumerate(classes) for f in sorted((src / c).glob("*.jpg"))]


def run_row(row: str, src: Path, out: Path, workers: int) -> dict[str, Any]:
    opts = {"mode": "jpeg", "quality": 90, "max_side": 256, "shard_size": f"{SHARD}samples",
            "quiet": True, "reencode": "always"}  # fmt: skip
    if row.startswith("litdata"):
        import litdata

        scratch = Path(f"{out}.cache")
        os.environ["DATA_OPTIMIZER_CACHE_FOLDER"] = str(scratch / "chunks")
        os.environ["DATA_OPTIMIZER_DATA_CACHE_FOLDER"] = str(scratch / "data")
        fn = _pil_fn if row == "litdata-pil" else _kernel_fn
        items = _items(src)
        t0 = time.perf_counter()
        litdata.optimize(fn=fn, inputs=items, output_dir=str(out), chunk_size=SHARD,
                         num_workers=workers, verbose=False)  # fmt: skip
        seconds = time.perf_counter() - t0
        shutil.rmtree(scratch, ignore_errors=True)
        return {"seconds": seconds, "images": len(items)}
    import pixpack

    if row == "dask-running":
        from distributed import LocalCluster

        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                          dashboard_address=":0") as cluster:  # fmt: skip
            engine = "dask://" + cluster.scheduler_address.removeprefix("tcp://")
            t0 = time.perf_counter()
            summary = pixpack.pack(src, out, engine=engine, **opts)
            seconds = time.perf_counter() - t0
    else:
        extra = {"workers": 1} if row == "one-process" else {
            "engine": f"dask://local?workers={workers}"}  # fmt: skip
        t0 = time.perf_counter()
        summary = pixpack.pack(src, out, **extra, **opts)
        seconds = time.perf_counter() - t0
    return {"seconds": seconds, "images": summary.num_samples}


# -- the driver ------------------------------------------------------------------------
def _busy_cpu_seconds() -> float:
    """The whole machine's non-idle CPU seconds so far (/proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _python_for(row: str) -> str:
    if row.startswith("litdata"):
        venv = HERE / "envs" / "litdata" / "bin" / "python"
        if not venv.exists():
            raise SystemExit("no LitData venv: run `bash benchmarks/install_peers.sh litdata`")
        return str(venv)
    return sys.executable


def timed(row: str, src: Path, workers: int, tmp: Path) -> dict[str, Any]:
    out = tmp / f"{row}-out"
    shutil.rmtree(out, ignore_errors=True)
    cmd = [_python_for(row), __file__, "--row", row, "--src", str(src), "--out", str(out),
           "--workers", str(workers)]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(HERE.parent / "src")}
    with open(LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        load = os.getloadavg()[0]
        busy0, t0 = _busy_cpu_seconds(), time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        wall, busy = time.perf_counter() - t0, _busy_cpu_seconds() - busy0
        stdout = proc.stdout.read() if proc.stdout else ""
    if status != 0:
        raise SystemExit(f"{row} failed (status {status}): {stdout[-2000:]}")
    result = json.loads(stdout.strip().splitlines()[-1])
    cpu = usage.ru_utime + usage.ru_stime
    shutil.rmtree(out, ignore_errors=True)
    return {"row": row, **result, "process_wall_s": round(wall, 3), "cpu_s": round(cpu, 2),
            "machine_busy_cpu_s": round(busy, 2), "other_cpu_s": round(max(0, busy - cpu), 2),
            "load_avg_1m": round(load, 2)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rows", default=",".join(ROWS))
    parser.add_argument("--json", type=Path, help="write the runs and medians here")
    parser.add_argument("--row", help=argparse.SUPPRESS)
    parser.add_argument("--src", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.row:  # a child: one run, its result as the last line of stdout
        print(json.dumps(run_row(args.row, args.src, args.out, args.workers)))
        return
    sys.path.insert(0, str(HERE.parent / "src"))
    from pixpack.sample_data import make_image_folder

    src = HERE / "data" / f"photos-{args.images}"
    with open(LOCK, "w") as lock:  # making the images is CPU work too: not under others' runs
        fcntl.flock(lock, fcntl.LOCK_EX)
        make_image_folder(src, num_classes=10, per_class=args.images // 10, seed=0)
    rows = args.rows.split(",")
    runs = []
    with tempfile.TemporaryDirectory(dir=HERE / "data") as tmp:
        for row in rows:  # warm the page cache and imports (not recorded)
            timed(row, src, args.workers, Path(tmp))
        for r in range(args.rounds):
            for row in rows if r % 2 == 0 else rows[::-1]:
                run = {"round": r, **timed(row, src, args.workers, Path(tmp))}
                print(json.dumps(run), flush=True)
                runs.append(run)
    report = summarise(runs, rows, args.workers)
    print(json.dumps(report, indent=1))
    if args.json:
        args.json.write_text(json.dumps({"runs": runs, "summary": report}, indent=1) + "\n")


def summarise(runs: list[dict[str, Any]], rows: list[str], workers: int) -> dict[str, Any]:
    by = {(r["round"], r["row"]): r for r in runs}
    rounds = sorted({r["round"] for r in runs})
    out: dict[str, Any] = {}
    for row in rows:
        secs = statistics.median(by[k, row]["seconds"] for k in rounds)
        images = by[rounds[0], row]["images"]
        out[row] = {"median_s": round(secs, 3), "images_per_s": round(images / secs)}
        if row != "one-process" and "one-process" in rows:
            ratios = [by[k, "one-process"]["seconds"] / by[k, row]["seconds"] for k in rounds]
            out[row]["speedup"] = [round(x, 3) for x in ratios]
            out[row]["efficiency_median"] = round(statistics.median(ratios) / workers, 3)
    return out


if __name__ == "__main__":
    main()
