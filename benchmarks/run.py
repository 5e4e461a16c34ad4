"""Run the pixpack benchmark suite against its peers, one subprocess per configuration.

    python benchmarks/run.py            # full run: 3 interleaved rounds
    python benchmarks/run.py --quick    # smoke run on a small data set, 1 round
    python benchmarks/run.py --only 'ffcv|pixpack'   # a subset (regex over config ids)

Rounds: every configuration runs ``--rounds`` times, round-robin (round 1: A B C ...,
round 2: A B C ...), so slow drift of a shared machine hits every configuration alike;
ratios are then taken within each round and reported as the median over rounds.

Resumable: each configuration's result in round k is kept as
benchmarks/data/runs/<run-name>/<id>.r<k>.json and a rerun skips those that already
succeeded (``--redo`` reruns them). The report (markdown, JSON, PNG) goes to
benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import data as bench_data  # noqa: E402
from configs import Config, build_configs  # noqa: E402
from machine import SYSTEM_PACKAGES, git_revision, host_kind, machine_info, versions  # noqa: E402
from monitor import TreeMonitor  # noqa: E402
from rounds import round_stem  # noqa: E402

ENVS = HERE / "envs"
PEER_PACKAGES = {
    "ffcv": ("ffcv", "numba", "numpy", "opencv-python"),
    "dali": ("nvidia-dali-cuda130",),
}


def env_python(env: str) -> tuple[str | None, str]:
    """(interpreter, '') for an environment, or (None, why it is unavailable)."""
    if env == "system":
        return sys.executable, ""
    python = ENVS / env / "bin" / "python"
    status_file = ENVS / f"{env}.status"
    if status_file.exists():
        state, _, message = status_file.read_text().strip().partition("\t")
        if state != "ok":
            return None, f"{env} could not be installed: {message}"
    if not python.exists():
        return None, f"{env} is not installed (run: bash benchmarks/install_peers.sh)"
    return str(python), ""


def peer_packages() -> dict[str, tuple[str, ...]]:
    """Distributions to record per venv: FFCV, DALI and those of peer_configs.py."""
    try:
        from peer_configs import PEER_ENVS
    except ImportError:
        return dict(PEER_PACKAGES)
    return {**PEER_PACKAGES, **PEER_ENVS}


def run_one(cfg: Config, run_dir: Path, timeout: float, round_no: int = 1) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": cfg.id,
        "round": round_no,
        "group": cfg.group,
        "title": cfg.title,
        "env": cfg.env,
        "module": cfg.module,
        "func": cfg.func,
        "params": cfg.params,
    }
    python, why = env_python(cfg.env)
    if python is None:
        return {**record, "status": "unavailable", "error": why}
    stem = round_stem(cfg.id, round_no)
    cfg_path = run_dir / f"{stem}.cfg.json"
    out_path = run_dir / f"{stem}.out.json"
    log_path = run_dir / f"{stem}.log"
    cfg_path.write_text(json.dumps(cfg.params))
    out_path.unlink(missing_ok=True)
    cmd = [python, str(HERE / "worker.py"), cfg.module, cfg.func, str(cfg_path), str(out_path)]
    record["load_avg_before"] = round(os.getloadavg()[0], 2)
    cpu0 = _children_cpu()
    t0 = time.perf_counter()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=HERE.parent
        )
        monitor = TreeMonitor(proc.pid)
        monitor.start()
        try:
            proc.wait(timeout=timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # our own process group only
            proc.wait()
            timed_out = True
        peaks = monitor.stop()
    record["wall_s"] = time.perf_counter() - t0
    record["cpu_s"] = _children_cpu() - cpu0  # user+sys of the whole tree, imports included
    record["memory"] = peaks
    tail = log_path.read_text(errors="replace")[-2000:]
    if timed_out:
        return {
            **record,
            "status": "failed",
            "error": f"timed out after {timeout:.0f} s",
            "log_tail": tail,
        }
    if not out_path.exists():
        return {
            **record,
            "status": "failed",
            "error": f"process exited with code {proc.returncode} "
            f"(killed for memory?) without a result",
            "log_tail": tail,
        }
    outcome = json.loads(out_path.read_text())
    record.update(outcome)
    if record["status"] != "ok":
        record["log_tail"] = tail
    return record


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description="pixpack vs peers benchmark runner")
    parser.add_argument(
        "--quick", action="store_true", help="small data set, short passes: a smoke run"
    )
    parser.add_argument(
        "--only", default=None, help="regex: run only configuration ids matching it"
    )
    parser.add_argument(
        "--redo", action="store_true", help="rerun configurations that already succeeded"
    )
    parser.add_argument(
        "--run-name", default=None, help="results sub-directory (default: <date>-<host>[-quick])"
    )
    parser.add_argument(
        "--passes",
        type=int,
        default=3,
        help="timed windows (of two epochs' images each) per loader and round",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="interleaved rounds over all configurations (default 3, 1 with --quick)",
    )
    parser.add_argument("--timeout", type=float, default=None, help="seconds per configuration")
    parser.add_argument("--no-report", action="store_true", help="run only; do not write results/")
    args = parser.parse_args()

    spec = bench_data.QUICK if args.quick else bench_data.FULL
    print(
        f"preparing data ({spec.base_size} images, x{spec.scale_factor} set, large set)...",
        flush=True,
    )
    paths = bench_data.build(spec)
    info = machine_info(bench_data.DATA)
    workers = info["cores_usable"]
    run_name = args.run_name or f"{date.today().isoformat()}-{host_kind(info)}" + (
        "-quick" if args.quick else ""
    )
    run_dir = bench_data.DATA / "runs" / run_name
    run_dir.mkdir(parents=True, exist_ok=True)
    artifacts = bench_data.DATA / "artifacts" / paths["base"].name
    configs = build_configs(
        paths, artifacts, workers=workers, passes=args.passes, size_batches=6 if args.quick else 20
    )
    if args.only:
        configs = [c for c in configs if re.search(args.only, c.id)]
    timeout = args.timeout or (240.0 if args.quick else 600.0)

    rounds = args.rounds or (1 if args.quick else 3)
    if rounds < 1:
        parser.error("--rounds must be at least 1")
    schedule = [(k, cfg) for k in range(1, rounds + 1) for cfg in configs if k == 1 or not cfg.once]
    for n, (k, cfg) in enumerate(schedule, 1):
        tag = f"[{n}/{len(schedule)}] round {k}/{rounds} {cfg.id}"
        result_path = run_dir / f"{round_stem(cfg.id, k)}.json"
        if result_path.exists() and not args.redo:
            previous = json.loads(result_path.read_text())
            if previous.get("status") == "ok":
                print(f"{tag}: done earlier, skipped", flush=True)
                continue
        print(f"{tag} ...", end=" ", flush=True)
        record = run_one(cfg, run_dir, timeout, k)
        result_path.write_text(json.dumps(record, indent=1))
        print(_summary(record), flush=True)

    meta = {
        "run_name": run_name,
        "date": date.today().isoformat(),
        "command": "python "
        + " ".join(
            [
                str(Path(sys.argv[0]).relative_to(HERE.parent))
                if Path(sys.argv[0]).is_absolute()
                else sys.argv[0],
                *sys.argv[1:],
            ]
        ),
        "quick": args.quick,
        "machine": info,
        "data": {
            role: {
                "path": str(p.relative_to(HERE.parent)),
                "images": sum(1 for _ in p.rglob("*.jpg")),
            }
            for role, p in paths.items()
        },
        "versions": {
            "system": versions(sys.executable, SYSTEM_PACKAGES),
            **{
                env: versions(p, pkgs)
                for env, pkgs in peer_packages().items()
                if (p := env_python(env)[0])
            },
        },
        "pixpack_git": git_revision(HERE.parent),
        "workers": workers,
        "passes": args.passes,
        "timing": "windows",  # loaders/common.py time_loader: 2-epoch windows of one stream
        "batch_size": 64,
    }
    meta_path = run_dir / "meta.json"
    earlier_meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    # A resumed run with fewer --rounds does not forget the rounds already on disk.
    meta["rounds"] = max(rounds, earlier_meta.get("rounds", 1))
    # A resumed run lists every invocation; a full --redo replaces every result.
    full_redo = args.redo and not args.only
    earlier = [] if full_redo else earlier_meta.get("commands", [])
    meta["commands"] = [*earlier, meta["command"]]
    meta_path.write_text(json.dumps(meta, indent=1))
    if not args.no_report:
        import report

        written = report.write_report(run_dir, HERE / "results")
        for path in written:
            print(f"wrote {path.relative_to(HERE.parent)}")
    return 0


def _summary(record: dict[str, Any]) -> str:
    if record["status"] != "ok":
        return f"{record['status'].upper()}: {record.get('error', '')}"
    result = record["result"]
    mem = record["memory"]["pss"] / 2**20
    if "cost_us" in result:
        return (
            f"primitives {result['cost_us']:.0f} us/img ({result['primitive_rate']:.0f} img/s "
            f"on one core), loop {result['rate_median']:.0f} img/s"
        )
    if "ceiling_ratio" in result:
        return (
            f"1 process {result['rate_1']:.0f} img/s, {result['processes']} processes "
            f"{result['rate_n']:.0f} img/s ({result['ceiling_ratio']:.2f}x)"
        )
    if "open_ms" in result:
        return (
            f"open {result['open_ms']:.3f} ms (median of {len(result['open_ms_all'])}), "
            f"{result['samples']:,} samples"
        )
    if "rate_median" in result:
        return (
            f"{result['rate_median']:.0f} img/s "
            f"(min {result['rate_min']:.0f}, max {result['rate_max']:.0f}), "
            f"first batch {result['first_batch_s']:.2f} s, PSS {mem:.0f} MiB"
        )
    return f"{result['seconds']:.1f} s, {result['bytes'] / 2**20:.1f} MiB"


if __name__ == "__main__":
    sys.exit(main())
