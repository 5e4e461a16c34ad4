"""One page-cache copy per machine: two local ranks reading one pack against one process.

Issue 14, item 5. Each configuration is a real launch, ``python -m torch.distributed.run
--standalone --nproc_per_node N benchmarks/loaders/dist_rank.py`` (gloo), with N = 2
(two local ranks, ``pixpack.Loader(workers=1)`` each, sharded by the loader itself) or
N = 1 (the single-process baseline, the same script), over a raw@256 pack of 5,000 and
of 20,000 samples. Per run:

- the whole torchrun process tree (agent and ranks) runs in one cgroup v1 memory
  cgroup without a limit, so its ``memory.stat`` counts the node's page cache
  (``cache``) and anonymous memory (``rss``); the cgroup is emptied and the page cache
  dropped before the launch;
- epoch 0 reads the pack from disk and warms it; then every rank streams ``--passes``
  timed windows (whole epochs of its shard, at least ``--window-images`` images) from
  the page cache;
- at the phase boundaries rank 0 reads the cgroup's ``memory.stat`` and the pack's
  resident bytes (``mincore``); each rank samples its own ``RssAnon``/``RssFile`` and
  reads ``Pss_File`` at the end; after the run ``fincore`` cross-checks the residency.

Targets: the pack's pages in the page cache once per node (2 ranks: about one pack's
bytes, as for 1 rank, not two); anonymous memory per rank flat in the data set size
(5,000 -> 20,000 samples); per-rank img/s >= 0.9x the single process's (both
``workers=1``; on 2 cores, one core each). Configurations are interleaved over
``--rounds`` rounds, ratios taken within each round, then the median. Every run holds
``/tmp/pixpack-bench.lock``. Needs root (cgroups, drop_caches).

    python benchmarks/multi_rank.py --rounds 3      # ~10 min on 2 cores
    python benchmarks/multi_rank.py --rounds 1 --passes 1 --window-images 1000   # smoke
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from loaders.dist_rank import machine_cpu, resident_bytes  # noqa: E402
from machine import git_revision, host_kind, machine_info, versions  # noqa: E402
from monitor import TreeMonitor  # noqa: E402
from out_of_core import _drop_caches, cgroups_available  # noqa: E402  (same controller)
from result_files import write_run  # noqa: E402

DATA = HERE / "data"
WORK = DATA / "dist"
SOURCE = DATA / "ooc-20000"  # the out-of-core benchmark's photos (out_of_core.py prepare)
BIG = DATA / "ooc" / "raw256.pixpack"  # its 20,000-sample raw@256 pack
CG_MEM = Path("/sys/fs/cgroup/memory/pixpack-bench-dist")
LOCK = "/tmp/pixpack-bench.lock"
RANK_SCRIPT = HERE / "loaders" / "dist_rank.py"
SMALL_N = 5000


# -- data -----------------------------------------------------------------------------
def prepare() -> dict[str, Path]:
    """The 20,000-sample raw@256 pack (out_of_core.py makes it) and a 5,000-sample one
    packed the same way from the first 5,000 of its photos (sorted, as ImageFolder)."""
    if not BIG.exists():
        sys.exit(f"{BIG} is missing: run `python benchmarks/out_of_core.py` once to make it")
    small = WORK / f"raw256-{SMALL_N}.pixpack"
    if not small.exists():
        sys.path.insert(0, str(HERE.parent / "src"))
        import pixpack

        WORK.mkdir(parents=True, exist_ok=True)
        photos = sorted(p for p in SOURCE.glob("*/*") if p.is_file())[:SMALL_N]
        listing = WORK / f"first-{SMALL_N}.csv"
        with listing.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["path", "label"])
            writer.writerows((str(p), p.parent.name) for p in photos)
        with _bench_lock():
            pixpack.pack(listing, small, mode="raw", max_side=256, quiet=True)
    return {f"{SMALL_N // 1000}k": small, "20k": BIG}


def snapshot_src() -> Path:
    """pixpack as committed at HEAD (``git archive``), plus the built native modules,
    under ``data/dist/src-<rev>``: the ranks import it (``PYTHONPATH``), so edits in
    progress in the working tree never reach a measurement. Refuses when the native
    sources differ from HEAD (the built modules would not be HEAD's)."""
    repo = HERE.parent
    native = repo / "src" / "pixpack" / "_native"
    changed = subprocess.run(
        ["git", "-C", str(repo), "status", "--porcelain", "--", str(native)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if changed:
        sys.exit(f"{native} differs from HEAD:\n{changed}\nbuild from a clean tree first")
    rev = git_revision(repo)
    dest = WORK / f"src-{rev}"
    if not (dest / "src" / "pixpack" / "__init__.py").exists():
        tmp = WORK / f"src-{rev}.partial"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        archive = subprocess.run(
            ["git", "-C", str(repo), "archive", "HEAD", "src/pixpack"],
            capture_output=True,
            check=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(tmp)], input=archive, check=True)
        for so in native.glob("*.so"):
            shutil.copy2(so, tmp / "src" / "pixpack" / "_native" / so.name)
        shutil.rmtree(dest, ignore_errors=True)
        tmp.rename(dest)
    return dest / "src"


# -- the machine ------------------------------------------------------------------------
class _bench_lock:
    """``flock /tmp/pixpack-bench.lock``: one benchmark on the machine at a time."""

    def __enter__(self) -> None:
        self.f = open(LOCK, "a")
        fcntl.flock(self.f, fcntl.LOCK_EX)

    def __exit__(self, *exc: Any) -> None:
        fcntl.flock(self.f, fcntl.LOCK_UN)
        self.f.close()


def _fresh_cgroup() -> None:
    """The cgroup, no limit, with nothing charged to it (it must hold no process)."""
    CG_MEM.mkdir(exist_ok=True)
    (CG_MEM / "memory.limit_in_bytes").write_text("-1")
    (CG_MEM / "memory.force_empty").write_text("0")
    (CG_MEM / "memory.max_usage_in_bytes").write_text("0")


def _join_cgroup() -> None:  # in the child, between fork and exec
    (CG_MEM / "cgroup.procs").write_text(str(os.getpid()))


def _stat() -> dict[str, int]:
    out = {}
    for line in (CG_MEM / "memory.stat").read_text().splitlines():
        key, value = line.split()
        out[key] = int(value)
    return out


def wait_quiet(max_cores: float, max_wait_s: float) -> dict[str, float]:
    """Wait (up to ``max_wait_s``) until the machine's other work uses at most
    ``max_cores`` over a 2-second sample; returns what the last sample saw."""
    t0 = time.perf_counter()
    while True:
        b0, a0 = machine_cpu()
        time.sleep(2.0)
        b1, a1 = machine_cpu()
        busy = (b1 - b0) / (a1 - a0) * (os.cpu_count() or 1)
        waited = time.perf_counter() - t0
        if busy <= max_cores or waited >= max_wait_s:
            return {"busy_cores_before": busy, "waited_s": waited}


def _fincore(path: Path) -> int | None:
    """Resident bytes by util-linux ``fincore`` (a cross-check of our mincore)."""
    exe = shutil.which("fincore")
    if exe is None:
        return None
    done = subprocess.run(
        [exe, "--bytes", "--noheadings", "--output", "RES", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        return int(done.stdout.split()[0])
    except (IndexError, ValueError):
        return None


# -- one run ----------------------------------------------------------------------------
def run_one(pack: Path, nproc: int, args: Any, src: Path) -> dict[str, Any]:
    # torchrun sets OMP_NUM_THREADS=1 for N > 1 only: set for both, alike.
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(src))
    with _bench_lock(), tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.json"
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            str(nproc),
            str(RANK_SCRIPT),
            "--pack",
            str(pack),
            "--out",
            str(out),
            "--cgroup",
            str(CG_MEM),
            "--passes",
            str(args.passes),
            "--window-images",
            str(args.window_images),
        ]
        quiet = wait_quiet(args.quiet_cores, args.quiet_wait)
        _fresh_cgroup()
        _drop_caches()
        before = {"cgroup": _stat(), "pack_resident_bytes": resident_bytes(pack)}
        t0 = time.perf_counter()
        log = (Path(tmp) / "log").open("w+")
        proc = subprocess.Popen(
            cmd, env=env, preexec_fn=_join_cgroup, stdout=log, stderr=subprocess.STDOUT
        )
        monitor = TreeMonitor(proc.pid, interval=0.2, pss_every=10**9)
        monitor.start()
        try:
            code = proc.wait(timeout=args.timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        tree = monitor.stop()
        doc: dict[str, Any] = json.loads(out.read_text()) if out.exists() else {}
        doc.update(
            exit_code=code,
            wall_s=time.perf_counter() - t0,
            command=" ".join(["python", *cmd[1:]]),
            before=before,
            after_exit={
                "cgroup": _stat(),
                "max_usage_in_bytes": int((CG_MEM / "memory.max_usage_in_bytes").read_text()),
                "pack_resident_bytes": resident_bytes(pack),
                "fincore_bytes": _fincore(pack),
            },
            tree_peaks=tree,
            quiet=quiet,
            pack_bytes=pack.stat().st_size,
        )
        doc["status"] = "ok" if code == 0 and doc.get("ranks") else "failed"
        log.seek(0)
        doc["log_tail"] = log.read()[-3000:]
        log.close()
    return doc


# -- summaries --------------------------------------------------------------------------
def rank_rates(run: dict[str, Any]) -> list[dict[str, float]]:
    """Per rank: median window img/s, cores used and CPU us/image; plus cold img/s."""
    rows = []
    for r in run["ranks"]:
        ws = r["windows"]
        secs = [w["t1"] - w["t0"] for w in ws]
        rows.append(
            {
                "rank": r["rank"],
                "rate": float(np.median([w["images"] / s for w, s in zip(ws, secs, strict=True)])),
                "rates": [w["images"] / s for w, s in zip(ws, secs, strict=True)],
                "cores": float(np.median([w["cpu_s"] / s for w, s in zip(ws, secs, strict=True)])),
                "cpu_us_per_image": float(np.median([w["cpu_s"] * 1e6 / w["images"] for w in ws])),
                "cold_rate": r["cold"]["images"] / r["cold"]["seconds"],
            }
        )
    return rows


def node_rate(run: dict[str, Any]) -> float:
    """All ranks' timed images over the span from the first window's start to the last
    window's end (the clock is the machine's monotonic clock, shared by the ranks)."""
    ws = [w for r in run["ranks"] for w in r["windows"]]
    return sum(w["images"] for w in ws) / (max(w["t1"] for w in ws) - min(w["t0"] for w in ws))


def foreign_cores(run: dict[str, Any]) -> dict[str, float]:
    """CPU of the timed phase (between the barriers after epoch 0 and after the timed
    windows), in cores: the whole machine's, the ranks', torchrun's agent's, and the
    rest (other work on the machine, which would slow the ranks down)."""
    a, b = run["node"]["after_epoch0"], run["node"]["after_timed"]
    wall = b["t"] - a["t"]
    ranks = sum(
        r["cpu_marks"]["after_timed"] - r["cpu_marks"]["after_epoch0"] for r in run["ranks"]
    )
    agent = b["agent_cpu_s"] - a["agent_cpu_s"]
    machine = b["machine_busy_s"] - a["machine_busy_s"]
    return {
        "machine": machine / wall,
        "ranks": ranks / wall,
        "agent": agent / wall,
        "other": max(0.0, machine - ranks - agent) / wall,
    }


def memory_summary(run: dict[str, Any]) -> dict[str, Any]:
    node = run["node"]
    ranks = run["ranks"]

    def cache(phase: str) -> int:
        return node[phase]["cgroup"]["total_cache"]

    return {
        "pack_bytes": run["pack_bytes"],
        "pack_resident_after_epoch0": node["after_epoch0"]["pack_resident_bytes"],
        "pack_resident_end": node["after_timed"]["pack_resident_bytes"],
        "pack_resident_before": run["before"]["pack_resident_bytes"],
        "fincore_after_exit": run["after_exit"]["fincore_bytes"],
        "cache_ready": cache("ready"),
        "cache_after_epoch0": cache("after_epoch0"),
        "cache_end": cache("after_timed"),
        "cache_growth_epoch0": cache("after_epoch0") - cache("ready"),
        "mapped_file_end": node["after_timed"]["cgroup"]["total_mapped_file"],
        "cgroup_rss_end": node["after_timed"]["cgroup"]["total_rss"],
        "cgroup_max_usage": run["after_exit"]["max_usage_in_bytes"],
        "tree_anon_peak": run["tree_peaks"]["anon"],
        "processes": run["tree_peaks"]["processes"],
        "rank_anon_ready": [r["memory"]["ready"]["now"]["RssAnon"] for r in ranks],
        "rank_anon_peak": [r["memory"]["after_timed"]["peak"]["RssAnon"] for r in ranks],
        "rank_anon_growth": [
            r["memory"]["after_timed"]["peak"]["RssAnon"] - r["memory"]["ready"]["now"]["RssAnon"]
            for r in ranks
        ],
        "rank_rss_file_end": [r["memory"]["after_timed"]["now"]["RssFile"] for r in ranks],
        "rank_pss_file_end": [r["smaps_rollup"]["Pss_File"] for r in ranks],
        "rank_vmhwm": [r["memory"]["after_timed"]["now"]["VmHWM"] for r in ranks],
    }


def round_ratios(runs: dict[str, dict[str, Any]], sizes: list[str]) -> dict[str, float]:
    """Within one round, per size: mean per-rank img/s of 2 ranks / 1 process img/s, the
    slower rank's, and the same per core used (img/s / cores of each process)."""
    out: dict[str, float] = {}
    for size in sizes:
        one, two = runs.get(f"{size}-1rank"), runs.get(f"{size}-2ranks")
        if not one or not two or one["status"] != "ok" or two["status"] != "ok":
            continue
        base = rank_rates(one)[0]
        pair = rank_rates(two)
        out[f"{size} per-rank / single (mean of ranks)"] = float(
            np.mean([p["rate"] for p in pair]) / base["rate"]
        )
        out[f"{size} per-rank / single (slower rank)"] = min(p["rate"] for p in pair) / base["rate"]
        out[f"{size} per-rank per core / single per core"] = float(
            np.mean([p["rate"] / p["cores"] for p in pair]) / (base["rate"] / base["cores"])
        )
        out[f"{size} node img/s, 2 ranks / 1 process"] = node_rate(two) / node_rate(one)
    return out


def clean(runs: dict[str, dict[str, Any]], size: str, max_other: float) -> bool:
    """Whether both runs of ``size`` in a round ran with at most ``max_other`` cores of
    other work on the machine during their timed phase."""
    pair = [runs.get(f"{size}-1rank"), runs.get(f"{size}-2ranks")]
    return all(
        r is not None and r["status"] == "ok" and foreign_cores(r)["other"] <= max_other
        for r in pair
    )


def _median(values: list[float]) -> float | None:
    return float(np.median(values)) if values else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--passes", type=int, default=3, help="timed windows per run")
    parser.add_argument("--window-images", type=int, default=5000, help="per rank, at least")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--run-name", default=None)
    parser.add_argument(
        "--quiet-cores", type=float, default=0.3, help="wait until other work uses at most this"
    )
    parser.add_argument("--quiet-wait", type=float, default=300, help="seconds, at most")
    parser.add_argument(
        "--max-other", type=float, default=0.15, help="rerun when other work took more (cores)"
    )
    parser.add_argument("--retries", type=int, default=2, help="reruns of a contended run")
    parser.add_argument(
        "--append", action="store_true", help="add --rounds rounds to the results of --run-name"
    )
    args = parser.parse_args()
    why = cgroups_available()
    if why:
        print(f"distributed benchmark cannot run here: {why}", file=sys.stderr)
        return 1
    packs = prepare()
    src = snapshot_src()
    sizes = list(packs)
    configs = [(size, n) for size in sizes for n in (1, 2)]
    rounds: list[dict[str, dict[str, Any]]] = []
    name = args.run_name or f"{dt.date.today()}-{host_kind(machine_info(DATA))}-distributed"
    earlier = HERE / "results" / f"{name}.json"
    if args.append and earlier.exists():
        rounds = json.loads(earlier.read_text())["rounds"]
    first = len(rounds)
    for r in range(first, first + args.rounds):
        records: dict[str, dict[str, Any]] = {}
        order = configs if r % 2 == 0 else configs[::-1]  # interleaved, alternating order
        for size, n in order:
            label = f"{size}-{n}rank" + ("s" if n > 1 else "")
            retries: list[dict[str, Any]] = []
            for attempt in range(1 + args.retries):
                run = run_one(packs[size], n, args, src)
                busy = foreign_cores(run)["other"] if run["status"] == "ok" else 0.0
                if busy <= args.max_other or attempt == args.retries:
                    break
                print(f"round {r + 1} {label}: other work took {busy:.2f} cores, again", flush=True)
                retries.append({"other_cores": busy, "rates": rank_rates(run)})
            run["contended_attempts"] = retries
            records[label] = run
            if run["status"] != "ok":
                print(f"round {r + 1} {label}: FAILED (exit {run['exit_code']})", flush=True)
                print(run["log_tail"], flush=True)
                continue
            m = memory_summary(run)
            rates = ", ".join(f"{x['rate']:.0f}" for x in rank_rates(run))
            other = foreign_cores(run)["other"]
            print(
                f"round {r + 1} {label:10s} img/s per rank [{rates}]  "
                f"pack resident {m['pack_resident_end'] / 1e9:.2f} "
                f"of {m['pack_bytes'] / 1e9:.2f} GB"
                f"  cgroup cache +{m['cache_growth_epoch0'] / 1e9:.2f} GB in epoch 0  "
                f"anon/rank {[round(a / 2**20) for a in m['rank_anon_peak']]} MiB"
                f"  other work {other:.2f} cores  ({run['wall_s']:.0f} s)",
                flush=True,
            )
        rounds.append(records)
        print(f"round {r + 1} ratios: {json.dumps(round_ratios(records, sizes))}", flush=True)
    write_results(args, packs, rounds, name, src)
    return 0


def summarize(doc: dict[str, Any]) -> None:
    """Add the ratios to ``doc``: per round, which rounds were clean (see :func:`clean`),
    the median over clean rounds (``ratios``) and over all (``ratios_all_rounds``)."""
    rounds, max_other = doc["rounds"], doc["args"]["max_other"]
    per_round = [round_ratios(r, list(doc["packs"])) for r in rounds]
    keys = list(per_round[0]) if per_round else []
    ok = [{k: clean(r, k.split()[0], max_other) for k in keys} for r in rounds]
    doc["ratios_per_round"] = {k: [pr.get(k) for pr in per_round] for k in keys}
    doc["ratios_round_clean"] = {k: [o[k] for o in ok] for k in keys}
    doc["ratios"] = {
        k: _median([pr[k] for pr, o in zip(per_round, ok, strict=True) if k in pr and o[k]])
        for k in keys
    }
    doc["ratios_all_rounds"] = {k: _median([pr[k] for pr in per_round if k in pr]) for k in keys}


def write_results(
    args: Any, packs: dict[str, Path], rounds: list[dict], name: str, src: Path
) -> None:
    info = machine_info(DATA)
    doc = {
        "machine": info,
        "versions": versions(sys.executable, ("pixpack", "torch", "torchvision", "numpy")),
        "git": src.parent.name.removeprefix("src-"),  # what the ranks imported
        "args": vars(args),
        "packs": {k: {"path": str(p), "bytes": p.stat().st_size} for k, p in packs.items()},
        "rounds": rounds,
    }
    summarize(doc)
    from report_dist import render

    write_run(name, doc, render(doc))


if __name__ == "__main__":
    sys.exit(main())
