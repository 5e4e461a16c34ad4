"""Larger than RAM: every reader with a pack 3x larger than the memory it may use.

A cgroup v1 memory controller limits each reader's process tree *and its page cache*
(``--limit-mb``), and the page cache is dropped before every run, so nothing is read
from memory that a real out-of-core job would have to read from disk. In one run,
interleaved over ``--rounds`` rounds:

- pixpack raw@256 and jpeg at source size, full shuffle and block shuffle;
- FFCV 1.0.2 ``os_cache=True`` and ``os_cache=False`` + ``QUASI_RANDOM`` (its
  out-of-core mode), on the same photos written raw at 256 by its own writer;
- torchvision ``ImageFolder`` + ``DataLoader`` on the source JPEGs;
- the disk's limit: ``os.pread`` of the samples' exact spans in the loader's order at
  queue depth 2 and 16 (no decoding);
- pixpack raw@256 with the pack in the page cache and no limit (its in-RAM speed);
- pixpack raw@256 and FFCV ``QUASI_RANDOM`` again at 2.5 GB, a limit FFCV's
  out-of-core mode survives (it is killed for memory at the default 1 GB).

Ratios are taken within each round, then the median over rounds. Needs root (cgroups,
drop_caches); where the cgroup v1 memory controller is missing it says so and stops.

    python benchmarks/out_of_core.py --rounds 3            # ~15 min on 2 cores
    python benchmarks/out_of_core.py --rounds 1 --samples 2000   # smoke run
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from machine import git_revision, host_kind, machine_info, versions  # noqa: E402
from monitor import TreeMonitor  # noqa: E402
from result_files import write_run  # noqa: E402

DATA = HERE / "data"
WORK = DATA / "ooc"
CG_MEM = Path("/sys/fs/cgroup/memory/pixpack-bench-ooc")
FFCV_PY = HERE / "envs" / "ffcv" / "bin" / "python"
IMAGES = 20_000
FFCV_CACHED = {"os_cache": True, "quasi_random": False}
FFCV_QUASI = {"os_cache": False, "quasi_random": True}


def configs(samples: int) -> list[dict[str, Any]]:
    raw, jpeg = str(WORK / "raw256.pixpack"), str(WORK / "jpeg.pixpack")
    beton, src = str(WORK / "ffcv-raw256.beton"), str(DATA / f"ooc-{IMAGES}")
    common = {"samples": samples, "workers": 2, "warmup_batches": 5}
    block = {"block_shuffle": 32, "block_window": 8}
    rows = [
        ("pixpack-raw256", "pixpack", {"artifact": raw}),
        ("pixpack-raw256-block", "pixpack", {"artifact": raw, **block}),
        ("pixpack-jpeg", "pixpack", {"artifact": jpeg}),
        ("pixpack-jpeg-block", "pixpack", {"artifact": jpeg, **block}),
        ("ffcv-raw256-os-cache", "ffcv", {"artifact": beton, **FFCV_CACHED}),
        ("ffcv-raw256-quasi-random", "ffcv", {"artifact": beton, **FFCV_QUASI}),
        ("torchvision", "torchvision", {"data": src}),
        ("disk-pread-qd2", "pread", {"artifact": raw, "queue_depth": 2}),
        ("disk-pread-qd16", "pread", {"artifact": raw, "queue_depth": 16}),
        ("pixpack-raw256-in-ram", "pixpack", {"artifact": raw, "warm": True}),
        # FFCV's out-of-core mode needs more than --limit-mb: both again at a limit it fits.
        ("pixpack-raw256@2.5GB", "pixpack", {"artifact": raw, "limit_mb": 2500}),
        (
            "ffcv-raw256-quasi-random@2.5GB",
            "ffcv",
            {"artifact": beton, **FFCV_QUASI, "limit_mb": 2500},
        ),
    ]
    return [{"name": n, "func": f, **common, **extra} for n, f, extra in rows]


# -- data -----------------------------------------------------------------------------
def prepare() -> None:
    """Source photos, the two pixpack packs and FFCV's .beton (each made once)."""
    sys.path.insert(0, str(HERE.parent / "src"))
    import pixpack
    from pixpack.sample_data import make_image_folder

    src = make_image_folder(DATA / f"ooc-{IMAGES}", num_classes=10, per_class=IMAGES // 10, seed=2)
    WORK.mkdir(parents=True, exist_ok=True)
    for name, opts in (("raw256", {"mode": "raw", "max_side": 256}), ("jpeg", {"mode": "jpeg"})):
        out = WORK / f"{name}.pixpack"
        if not out.exists():
            pixpack.pack(src, out, quiet=True, **opts)
    beton = WORK / "ffcv-raw256.beton"
    if not beton.exists() and FFCV_PY.exists():
        cfg = {"data": str(src), "out": str(beton), "write_mode": "raw", "max_side": 256}
        cfg["workers"] = 2
        _worker(FFCV_PY, "ffcv_bench", "convert", cfg, cgroup=False, timeout=3600)


# -- cgroups ----------------------------------------------------------------------------
def cgroups_available() -> str | None:
    """None when the v1 memory controller can be used, else why not."""
    if os.geteuid() != 0:
        return "needs root (cgroups, drop_caches)"
    if not CG_MEM.parent.is_dir():
        return f"{CG_MEM.parent} is missing: no cgroup v1 memory controller to limit memory"
    return None


def _write(path: Path, value: str) -> None:
    path.write_text(value)


def _setup_cgroups(limit: int | None) -> None:
    CG_MEM.mkdir(exist_ok=True)
    _write(CG_MEM / "memory.limit_in_bytes", str(limit if limit else -1))
    _write(CG_MEM / "memory.max_usage_in_bytes", "0")


def _oom_kills() -> int:
    text = (CG_MEM / "memory.oom_control").read_text()
    found = re.search(r"oom_kill (\d+)", text)
    return int(found.group(1)) if found else 0


def _join_cgroups() -> None:  # runs in the child between fork and exec
    (CG_MEM / "cgroup.procs").write_text(str(os.getpid()))


def _drop_caches() -> None:
    os.sync()
    Path("/proc/sys/vm/drop_caches").write_text("3")


def _warm(path: str) -> None:
    with open(path, "rb") as f:
        while f.read(16 << 20):
            pass


# -- one run ----------------------------------------------------------------------------
def _worker(
    python: Path | str, module: str, func: str, cfg: dict, *, cgroup: bool, timeout: float
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        cfg_path, out_path = Path(tmp) / "cfg.json", Path(tmp) / "out.json"
        cfg_path.write_text(json.dumps(cfg))
        cmd = [str(python), str(HERE / "worker.py"), module, func, str(cfg_path), str(out_path)]
        proc = subprocess.Popen(cmd, preexec_fn=_join_cgroups if cgroup else None)
        monitor = TreeMonitor(proc.pid, interval=0.2, pss_every=1000)
        monitor.start()
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        peaks = monitor.stop()
        out = json.loads(out_path.read_text()) if out_path.exists() else {}
    out["exit_code"] = code
    out["peak_rss_anon"] = peaks["anon"]
    return out


def run_one(cfg: dict[str, Any], limit: int) -> dict[str, Any]:
    python = FFCV_PY if cfg["func"] == "ffcv" else sys.executable
    if cfg["func"] == "ffcv" and not FFCV_PY.exists():
        return {"status": "unavailable", "error": "bash benchmarks/install_peers.sh ffcv"}
    warm = cfg.get("warm", False)
    _setup_cgroups(None if warm else cfg.get("limit_mb", limit // 1_000_000) * 1_000_000)
    _drop_caches()
    if warm:
        _warm(cfg["artifact"])
    kills = _oom_kills()
    out = _worker(python, "ooc_readers", cfg["func"], cfg, cgroup=True, timeout=900)
    out["peak_cgroup"] = int((CG_MEM / "memory.max_usage_in_bytes").read_text())
    if _oom_kills() > kills or out["exit_code"] == -9:
        out["status"] = "killed for memory"
    return out


# -- the run ----------------------------------------------------------------------------
def ratios(records: dict[str, dict[str, Any]]) -> dict[str, float | None]:
    """The tracked ratios of one round (None where an input is missing)."""

    def rate(name: str) -> float | None:
        r = records.get(name, {})
        return r.get("result", {}).get("rate") if r.get("status") == "ok" else None

    def amp(name: str) -> float | None:
        res = records.get(name, {}).get("result", {})
        got, stored = res.get("bytes_per_image"), res.get("stored_bytes_per_image")
        return got / stored if got is not None and stored else None

    def div(a: float | None, b: float | None) -> float | None:
        return a / b if a is not None and b else None

    full, warm = rate("pixpack-raw256"), rate("pixpack-raw256-in-ram")
    disk = rate("disk-pread-qd16")
    bound = min(x for x in (disk, warm) if x) if (disk or warm) else None
    return {
        "read amplification, raw@256 full shuffle (<= 1.2)": amp("pixpack-raw256"),
        "read amplification, raw@256 block shuffle": amp("pixpack-raw256-block"),
        "read amplification, jpeg full shuffle": amp("pixpack-jpeg"),
        "raw@256 full shuffle / min(disk qd16, in-RAM) (>= 0.8)": div(full, bound),
        "raw@256 full shuffle / disk qd2": div(full, rate("disk-pread-qd2")),
        "raw@256 full shuffle / FFCV QUASI_RANDOM (>= 3)": div(
            full, rate("ffcv-raw256-quasi-random")
        ),
        "raw@256 / FFCV QUASI_RANDOM, both at 2.5 GB (>= 3)": div(
            rate("pixpack-raw256@2.5GB"), rate("ffcv-raw256-quasi-random@2.5GB")
        ),
        "raw@256 full shuffle / FFCV os_cache": div(full, rate("ffcv-raw256-os-cache")),
        "raw@256 full shuffle / torchvision": div(full, rate("torchvision")),
        "raw@256 block / full shuffle": div(rate("pixpack-raw256-block"), full),
        "jpeg block / full shuffle": div(rate("pixpack-jpeg-block"), rate("pixpack-jpeg")),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--samples", type=int, default=8000, help="timed images per run")
    parser.add_argument("--limit-mb", type=int, default=1000, help="memory + page cache limit")
    parser.add_argument("--only", default="", help="regex of configuration names")
    parser.add_argument("--run-name", default=None)
    args = parser.parse_args()
    why = cgroups_available()
    if why:
        print(f"out-of-core benchmark cannot run here: {why}", file=sys.stderr)
        return 1
    prepare()
    limit = args.limit_mb * 1_000_000
    cfgs = [c for c in configs(args.samples) if re.search(args.only, c["name"])]
    rounds: list[dict[str, dict[str, Any]]] = []
    for r in range(args.rounds):
        records = {}
        for cfg in cfgs:
            t0 = time.perf_counter()
            out = run_one(cfg, limit)
            records[cfg["name"]] = out
            res = out.get("result", {})
            print(
                f"round {r + 1} {cfg['name']:28s} {out.get('status')} "
                f"{res.get('rate', 0):8.0f} img/s  "
                f"{(res.get('bytes_per_image') or 0) / 1e3:8.0f} kB read/img  "
                f"anon {out['peak_rss_anon'] / 2**20:6.0f} MiB  ({time.perf_counter() - t0:.0f} s)",
                flush=True,
            )
        rounds.append(records)
    write_results(args, cfgs, rounds, limit)
    return 0


def _median(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.median(vals)) if vals else None


def write_results(args: Any, cfgs: list[dict], rounds: list[dict], limit: int) -> None:
    info = machine_info(DATA)
    sizes = {p.name: p.stat().st_size for p in WORK.glob("*") if p.is_file()}
    vers = versions(sys.executable, ("pixpack", "torch", "torchvision", "numpy"))
    if FFCV_PY.exists():
        vers.update(versions(str(FFCV_PY), ("ffcv", "numba")))
    name = args.run_name or f"{dt.date.today()}-{host_kind(info)}-out-of-core"
    per_round = [ratios(r) for r in rounds]
    summary = {key: _median([pr[key] for pr in per_round]) for key in per_round[0]}
    ranges = {key: [pr[key] for pr in per_round] for key in per_round[0]}
    doc = {
        "machine": info,
        "versions": vers,
        "git": git_revision(HERE.parent),
        "memory_limit_bytes": limit,
        "file_sizes": sizes,
        "samples_timed": args.samples,
        "rounds": rounds,
        "ratios": summary,
        "ratios_per_round": ranges,
    }
    write_run(name, doc, report(doc, cfgs))


def report(doc: dict[str, Any], cfgs: list[dict]) -> str:
    from report_ooc import render

    return render(doc, cfgs)


if __name__ == "__main__":
    sys.exit(main())
