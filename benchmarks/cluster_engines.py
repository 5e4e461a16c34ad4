"""What a cluster engine costs before it packs anything: Dask distributed against Ray.

Measures, for a local cluster of N worker processes with one slot each (what
``--engine dask://local?workers=N`` starts), the import time, the cluster's start-up
and shut-down, the round trip of many empty tasks (per-task overhead), and the
resident memory of the driver and every process the engine started.

    benchmarks/envs/dask/bin/python benchmarks/cluster_engines.py dask
    benchmarks/envs/ray/bin/python benchmarks/cluster_engines.py ray

Prints one JSON object per run; benchmarks/cluster_pack.py records them with its results.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, _HERE)

import psutil  # noqa: E402


def _noop(i: int) -> int:
    return i


def _tree_rss() -> tuple[int, int]:
    """(driver RSS, RSS of every descendant process), bytes."""
    me = psutil.Process(os.getpid())
    children = 0
    for child in me.children(recursive=True):
        try:
            children += child.memory_info().rss
        except psutil.Error:
            pass
    return me.memory_info().rss, children


def run_dask(workers: int, tasks: int) -> dict[str, float]:
    t0 = time.perf_counter()
    from dask.distributed import Client, LocalCluster

    imported = time.perf_counter()
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                           dashboard_address=":0")  # fmt: skip
    client = Client(cluster)
    client.wait_for_workers(workers)
    started = time.perf_counter()
    client.gather(client.map(_noop, range(workers)))  # warm
    t1 = time.perf_counter()
    client.gather(client.map(_noop, range(tasks), pure=False))
    t2 = time.perf_counter()
    driver, others = _tree_rss()
    client.close()
    cluster.close()
    return {"import_s": imported - t0, "start_s": started - imported,
            "task_ms": (t2 - t1) / tasks * 1000, "first_tasks_s": t1 - started,
            "driver_rss_mb": driver / 1e6, "workers_rss_mb": others / 1e6,
            "stop_s": time.perf_counter() - t2}  # fmt: skip


def run_ray(workers: int, tasks: int) -> dict[str, float]:
    t0 = time.perf_counter()
    import ray

    imported = time.perf_counter()
    ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    noop = ray.remote(num_cpus=1)(_noop)
    started = time.perf_counter()
    ray.get([noop.remote(i) for i in range(workers)])  # warm: starts the worker processes
    t1 = time.perf_counter()
    ray.get([noop.remote(i) for i in range(tasks)])
    t2 = time.perf_counter()
    driver, others = _tree_rss()
    ray.shutdown()
    return {"import_s": imported - t0, "start_s": started - imported,
            "task_ms": (t2 - t1) / tasks * 1000, "first_tasks_s": t1 - started,
            "driver_rss_mb": driver / 1e6, "workers_rss_mb": others / 1e6,
            "stop_s": time.perf_counter() - t2}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("engine", choices=["dask", "ray"])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--tasks", type=int, default=1000)
    args = parser.parse_args()
    run = run_dask if args.engine == "dask" else run_ray
    result = {"engine": args.engine, "workers": args.workers, **run(args.workers, args.tasks)}
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in result.items()}))


if __name__ == "__main__":
    main()
