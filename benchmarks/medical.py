"""16-bit CT-like slices: pixpack raw (and lossless) against MONAI's cached datasets.

Issue 16, "Performance": size on disk and loader img/s for pixpack's raw mode, its
lossless mode (a row of its own once ``pixpack.pack(..., mode="lossless")`` exists;
until then the row says it is unavailable and why) and MONAI 1.6 ``PersistentDataset``
and ``CacheDataset`` pipelines doing the same work, on ``--samples`` 512x512 CT-like
DICOM slices made from real photographs (``medical_data.py``). Each system runs in its
own subprocess (``worker.py`` + ``loaders/medical_readers.py``), in ``--rounds``
interleaved rounds, under ``flock /tmp/pixpack-bench.lock``. Per run: the build (pack,
or MONAI's caching, from the DICOM files in the page cache), epoch 0, then
``--epochs`` - 1 steady epochs (warm page cache); with ``--cold`` also one epoch with
the page cache dropped before the process starts (needs root).

    python benchmarks/medical.py --rounds 3 --cold      # ~15 min on 2 cores
    python benchmarks/medical.py --rounds 1 --samples 300 --epochs 2   # smoke run
"""

from __future__ import annotations

import argparse
import datetime as dt
import fcntl
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from machine import git_revision, host_kind, machine_info, versions  # noqa: E402
from monitor import TreeMonitor  # noqa: E402
from out_of_core import _drop_caches, _median  # noqa: E402
from result_files import write_run  # noqa: E402

DATA = HERE / "data" / "medical"
LOCK = "/tmp/pixpack-bench.lock"
PACKAGES = ("pixpack", "torch", "numpy", "monai", "pydicom", "opencv-python-headless")


def configs(src: Path, work: Path, epochs: int) -> list[dict[str, Any]]:
    common = {"src": str(src), "epochs": epochs}
    rows = [
        ("pixpack-raw", "pixpack", {"mode": "raw", "artifact": str(work / "raw.pixpack")}),
        (
            "pixpack-lossless",
            "pixpack",
            {"mode": "lossless", "artifact": str(work / "lossless.pixpack")},
        ),
        (
            "monai-persistent",
            "monai",
            {"kind": "persistent", "cache_dir": str(work / "monai-persistent")},
        ),
        (
            "monai-persistent-int16",
            "monai",
            {
                "kind": "persistent",
                "cache_dtype": "int16",
                "cache_dir": str(work / "monai-persistent-int16"),
            },
        ),
        ("monai-cache", "monai", {"kind": "cache"}),
    ]
    return [{"name": n, "func": f, **common, **extra} for n, f, extra in rows]


def cold_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """One epoch from a dropped page cache, reusing the warm run's pack / cache folder
    (CacheDataset has nothing on disk: it caches again, from cold DICOM files)."""
    return {
        **cfg,
        "name": cfg["name"] + "-cold",
        "epochs": 1,
        "build": cfg["kind"] == "cache" if cfg["func"] == "monai" else False,
        "cold": True,
    }


# -- one run ----------------------------------------------------------------------------
def _warm(src: Path) -> None:
    for f in sorted(src.rglob("*.dcm")):
        f.read_bytes()


def run_one(cfg: dict[str, Any], src: Path, timeout: float) -> dict[str, Any]:
    with open(LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # what `flock /tmp/pixpack-bench.lock` takes
        if cfg.get("cold"):
            _drop_caches()
        else:
            _warm(src)
        with tempfile.TemporaryDirectory() as tmp:
            cfg_path, out_path = Path(tmp) / "cfg.json", Path(tmp) / "out.json"
            cfg_path.write_text(json.dumps(cfg))
            cmd = [sys.executable, str(HERE / "worker.py"), "medical_readers", cfg["func"]]
            t0 = time.perf_counter()
            proc = subprocess.Popen([*cmd, str(cfg_path), str(out_path)])
            monitor = TreeMonitor(proc.pid, interval=0.2, pss_every=5)
            monitor.start()
            try:
                code = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
            peaks = monitor.stop()
            out = json.loads(out_path.read_text()) if out_path.exists() else {}
    out.setdefault("status", "failed" if code else "no result")
    out.update(exit_code=code, wall_s=time.perf_counter() - t0, peaks=peaks)
    return out


def metrics(out: dict[str, Any]) -> dict[str, Any]:
    """The published numbers of one run (None where it did not run)."""
    res = out.get("result") if out.get("status") == "ok" else None
    if not res:
        return {}
    ep, n = res["epoch_s"], res["epoch_images"]
    build = res.get("build_s")
    m = {
        "build_s": build,
        "epoch0_s": ep[0],
        "first_epoch_s": (build or 0.0) + ep[0],
        "epoch0_rate": n[0] / ep[0],
        "steady_rate": sum(n[1:]) / sum(ep[1:]) if len(ep) > 1 else None,
        "steady_epoch_rates": [a / b for a, b in zip(n[1:], ep[1:], strict=True)],
        "disk_bytes": res.get("artifact", {}).get("bytes"),
        "disk_allocated": res.get("artifact", {}).get("allocated"),
        "cache_tensor_bytes": res.get("cache_tensor_bytes"),
        "peak_pss": out["peaks"]["pss"],
        "peak_pss_anon": out["peaks"]["pss_anon"],
        "peak_rss_sum": out["peaks"]["rss"],
        "output": res.get("output"),
    }
    return m


def ratios(records: dict[str, dict[str, Any]]) -> dict[str, float | None]:
    """The tracked ratios of one round (None where an input is missing)."""

    def get(name: str, key: str) -> float | None:
        return metrics(records.get(name, {})).get(key)

    def div(a: float | None, b: float | None) -> float | None:
        return a / b if a is not None and b else None

    raw_rate, raw_size = get("pixpack-raw", "steady_rate"), get("pixpack-raw", "disk_bytes")
    ll_rate, ll_size = get("pixpack-lossless", "steady_rate"), get("pixpack-lossless", "disk_bytes")
    out = {
        "raw size / lossless size (>= 2)": div(raw_size, ll_size),
        "lossless img/s / raw img/s (>= 0.7)": div(ll_rate, raw_rate),
    }
    for px, label in (("pixpack-raw", "raw"), ("pixpack-lossless", "lossless")):
        rate, size = get(px, "steady_rate"), get(px, "disk_bytes")
        first = get(px, "first_epoch_s")
        for mo, mlabel in (
            ("monai-persistent", "PersistentDataset"),
            ("monai-persistent-int16", "PersistentDataset int16"),
            ("monai-cache", "CacheDataset"),
        ):
            out[f"{label} img/s / MONAI {mlabel} (> 1)"] = div(rate, get(mo, "steady_rate"))
            out[f"MONAI {mlabel} first epoch s / {label} pack + epoch 0 s"] = div(
                get(mo, "first_epoch_s"), first
            )
            mem = "cache_tensor_bytes" if mo == "monai-cache" else "disk_bytes"
            where = "RAM (cached tensors)" if mo == "monai-cache" else "disk"
            out[f"MONAI {mlabel} {where} / {label} pack size (> 1)"] = div(get(mo, mem), size)
    return out


# -- the run ----------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--samples", type=int, default=2000, help="DICOM slices")
    parser.add_argument("--epochs", type=int, default=4, help="epoch 0 + steady epochs")
    parser.add_argument("--cold", action="store_true", help="a cold-page-cache epoch (root)")
    parser.add_argument("--only", default="", help="regex of configuration names")
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--run-name", default=None)
    args = parser.parse_args()
    if args.cold and os.geteuid() != 0:
        print("--cold needs root (drop_caches)", file=sys.stderr)
        return 1
    from medical_data import make_slices

    root = DATA if args.samples == 2000 else DATA / f"n{args.samples}"
    src = make_slices(root, count=args.samples)
    work = root / "work"
    work.mkdir(parents=True, exist_ok=True)
    cfgs = [c for c in configs(src, work, args.epochs) if re.search(args.only, c["name"])]
    rounds: list[dict[str, dict[str, Any]]] = []
    for r in range(args.rounds):
        records: dict[str, dict[str, Any]] = {}
        todo = list(cfgs)
        if args.cold:
            todo += [cold_config(c) for c in cfgs]
        for cfg in todo:
            base = cfg["name"].removesuffix("-cold")
            if cfg.get("cold") and records.get(base, {}).get("status") != "ok":
                continue
            out = run_one(cfg, src, args.timeout)
            records[cfg["name"]] = out
            m = metrics(out)
            print(
                f"round {r + 1} {cfg['name']:30s} {out.get('status'):11s} "
                f"first {m.get('first_epoch_s') or 0:7.1f} s  "
                f"steady {m.get('steady_rate') or 0:7.0f} img/s  "
                f"epoch0 {m.get('epoch0_rate') or 0:6.0f} img/s  "
                f"disk {(m.get('disk_bytes') or 0) / 1e6:7.0f} MB  "
                f"PSS {out['peaks']['pss'] / 2**20:6.0f} MiB  ({out['wall_s']:.0f} s) "
                f"{out.get('error', '')}",
                flush=True,
            )
        rounds.append(records)
    write_results(args, src, todo, rounds)
    return 0


def _dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def write_results(args: Any, src: Path, cfgs: list[dict], rounds: list[dict]) -> None:
    info = machine_info(DATA)
    name = args.run_name or f"{dt.date.today()}-{host_kind(info)}-medical"
    per_round = [ratios(r) for r in rounds]
    summary = {key: _median([pr[key] for pr in per_round]) for key in per_round[0]}
    per_config: dict[str, Any] = {}
    for cfg in cfgs:
        runs = [metrics(r.get(cfg["name"], {})) for r in rounds]
        ok = [m for m in runs if m]
        status = [r.get(cfg["name"], {}).get("status") for r in rounds]
        errors = [r.get(cfg["name"], {}).get("error") for r in rounds]
        per_config[cfg["name"]] = {
            "status": status,
            "error": next((e for e in errors if e), None),
            "median": {
                k: _median([m[k] for m in ok])
                for k in ok[0]
                if ok and all(isinstance(m[k], (int, float)) or m[k] is None for m in ok)
            }
            if ok
            else {},
            "per_round": runs,
        }
    doc = {
        "machine": info,
        "versions": versions(sys.executable, PACKAGES),
        "git": git_revision(HERE.parent),
        "command": "python benchmarks/medical.py " + " ".join(sys.argv[1:]),
        "samples": args.samples,
        "epochs": args.epochs,
        "dicom_bytes": _dir_bytes(src),
        "configs": cfgs,
        "results": per_config,
        "ratios": summary,
        "ratios_per_round": {k: [pr[k] for pr in per_round] for k in per_round[0]},
        "rounds": rounds,
    }
    from report_medical import render

    write_run(name, doc, render(doc))


if __name__ == "__main__":
    sys.exit(main())
