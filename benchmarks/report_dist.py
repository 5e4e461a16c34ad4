"""Markdown report of ``benchmarks/multi_rank.py`` (one page-cache copy per machine).

``python benchmarks/report_dist.py benchmarks/results/<name>.json`` rewrites ``<name>.md``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from multi_rank import foreign_cores, memory_summary, node_rate, rank_rates

__all__ = ["render"]

GB, MIB = 1e9, 2**20


def _med(values: list[float]) -> float:
    return float(np.median(values))


def _span(values: list[float], scale: float, fmt: str) -> str:
    """Median (min-max) of ``values / scale``."""
    v = [x / scale for x in values]
    if len(v) == 1:
        return format(v[0], fmt)
    return f"{format(_med(v), fmt)} ({format(min(v), fmt)}-{format(max(v), fmt)})"


def _runs(doc: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Successful runs per configuration name, in round order."""
    out: dict[str, list[dict[str, Any]]] = {}
    for records in doc["rounds"]:
        for name, run in records.items():
            if run.get("status") == "ok":
                out.setdefault(name, []).append(run)
    return out


def _names(doc: dict[str, Any]) -> list[str]:
    return [f"{s}-{n}" for s in doc["packs"] for n in ("1rank", "2ranks")]


def _memory_tables(doc: dict[str, Any], runs: dict[str, list[dict[str, Any]]]) -> list[str]:
    lines = [
        "## Page cache per node",
        "",
        "The whole torchrun tree (agent + ranks) in one cgroup v1 memory cgroup, no limit, "
        "page cache dropped and the cgroup emptied before the launch. *Pack resident*: the "
        "pack's bytes in the page cache by `mincore` (rank 0, at a barrier), after epoch 0 "
        "(read from disk) and after the timed epochs; `fincore` after the run as a check. "
        "*Cache growth*: the cgroup's `total_cache` after epoch 0 minus before it (what "
        "the node's page cache grew by while the ranks read one epoch). *Cache at end*: "
        "`total_cache` after the timed epochs (also holds the torch/python files the "
        "processes loaded after the drop). GB = 10^9 bytes; median over rounds (min-max).",
        "",
        "| configuration | pack size | pack resident after epoch 0 | pack resident at end "
        "| fincore after exit | resident / pack size | cache growth in epoch 0 "
        "| cache at end | mapped_file at end |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in _names(doc):
        ms = [memory_summary(r) for r in runs.get(name, [])]
        if not ms:
            lines.append(f"| {name} | failed | | | | | | | |")
            continue
        fin = [m["fincore_after_exit"] for m in ms if m["fincore_after_exit"] is not None]
        lines.append(
            f"| {name} | {ms[0]['pack_bytes'] / GB:.3f} GB "
            f"| {_span([m['pack_resident_after_epoch0'] for m in ms], GB, '.3f')} "
            f"| {_span([m['pack_resident_end'] for m in ms], GB, '.3f')} "
            f"| {_span(fin, GB, '.3f') if fin else 'n/a'} "
            f"| {_span([m['pack_resident_end'] / m['pack_bytes'] for m in ms], 1, '.3f')} "
            f"| {_span([m['cache_growth_epoch0'] for m in ms], GB, '.3f')} "
            f"| {_span([m['cache_end'] for m in ms], GB, '.3f')} "
            f"| {_span([m['mapped_file_end'] for m in ms], GB, '.3f')} |"
        )
    lines += [
        "",
        "## Memory per rank",
        "",
        "Per rank (sampled every 20 ms in the rank from `/proc/self/status`): *RssAnon "
        "ready* after torch import, `init_process_group` and building the Loader; *peak "
        "RssAnon* over the whole run; *growth* = peak - ready (what the loader's reading "
        "adds). *RssFile* and *Pss_File* at the end: the mapped pack pages (and libraries) "
        "each rank has touched, counted whole per process (RssFile) and split between the "
        "processes that map them (Pss_File). *Node rss*: the cgroup's `total_rss` at the "
        "end (ranks + torchrun agent). MiB; for 2 ranks `rank 0 / rank 1`; median over "
        "rounds.",
        "",
        "| configuration | RssAnon ready | peak RssAnon | growth | RssFile at end "
        "| Pss_File at end | node rss (cgroup) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name in _names(doc):
        ms = [memory_summary(r) for r in runs.get(name, [])]
        if not ms:
            continue

        def per_rank(key: str, ms: list[dict[str, Any]] = ms) -> str:
            n = len(ms[0][key])
            return " / ".join(f"{_med([m[key][i] for m in ms]) / MIB:.0f}" for i in range(n))

        lines.append(
            f"| {name} | {per_rank('rank_anon_ready')} | {per_rank('rank_anon_peak')} "
            f"| {per_rank('rank_anon_growth')} | {per_rank('rank_rss_file_end')} "
            f"| {per_rank('rank_pss_file_end')} "
            f"| {_med([m['cgroup_rss_end'] for m in ms]) / MIB:.0f} |"
        )
    return lines


def _throughput_tables(doc: dict[str, Any], runs: dict[str, list[dict[str, Any]]]) -> list[str]:
    lines = [
        "",
        "## Throughput",
        "",
        "Warm (pack in the page cache after epoch 0). Per rank: median img/s over its "
        "timed windows, then median (min-max) over rounds; *cores*: CPU s / wall s of "
        "the rank's process; *node img/s*: all ranks' timed images over the span from the "
        "first window's start to the last one's end. *Epoch 0*: the cold epoch from disk "
        "(per rank; two ranks share the disk). *Agent* and *other work*: CPU of torchrun's "
        "agent process and of everything else on the machine (`/proc/stat` minus the ranks "
        "and the agent) over the timed phase, in cores; before each run the harness waits "
        "until other work uses at most "
        f"{doc['args']['quiet_cores']} cores.",
        "",
        "| configuration | img/s per rank | cores per rank | CPU us/img | node img/s "
        "| epoch 0 (disk) img/s per rank | agent cores | other work, cores |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in _names(doc):
        rs = runs.get(name, [])
        if not rs:
            lines.append(f"| {name} | failed | | | | | | |")
            continue
        per = [rank_rates(r) for r in rs]
        n = len(per[0])

        def col(key: str, fmt: str, per: list[list[dict[str, float]]] = per, n: int = n) -> str:
            return " / ".join(_span([p[i][key] for p in per], 1, fmt) for i in range(n))

        lines.append(
            f"| {name} | {col('rate', ',.0f')} | {col('cores', '.2f')} "
            f"| {col('cpu_us_per_image', '.0f')} | {_span([node_rate(r) for r in rs], 1, ',.0f')} "
            f"| {col('cold_rate', ',.0f')} "
            f"| {_span([foreign_cores(r)['agent'] for r in rs], 1, '.3f')} "
            f"| {_span([foreign_cores(r)['other'] for r in rs], 1, '.2f')} |"
        )
    lines += [
        "",
        "## Ratios (within each round, then the median)",
        "",
        "*Median*: over the rounds in which neither run of the pair had more than "
        f"{doc['args']['max_other']} cores of other work during its timed phase; values "
        "of the other rounds are in brackets and enter only *median, all rounds*.",
        "",
        "| ratio | median | median, all rounds | per round |",
        "|---|---:|---:|---|",
    ]

    def fmt(v: float | None) -> str:
        return "-" if v is None else f"{v:.3f}"

    for key, values in doc["ratios_per_round"].items():
        oks = doc["ratios_round_clean"][key]
        shown = ", ".join(
            fmt(v) if ok else f"[{fmt(v)}]" for v, ok in zip(values, oks, strict=True)
        )
        lines.append(
            f"| {key} | {fmt(doc['ratios'].get(key))} "
            f"| {fmt(doc['ratios_all_rounds'].get(key))} | {shown} |"
        )
    return lines


def render(doc: dict[str, Any]) -> str:
    """The report; ``doc["findings"]`` (markdown, if any) goes after the set-up."""
    findings = doc.get("findings", "")
    runs = _runs(doc)
    m, v, a = doc["machine"], doc["versions"], doc["args"]
    two = [r for name, rs in runs.items() if name.endswith("2ranks") for r in rs]
    any_run = two[0] if two else {}
    lines = [
        "# One page-cache copy per machine: 2 local ranks vs 1 process (issue 14, item 5)",
        "",
        f"Machine: {m['cpu']}, {m['cores_usable']} usable cores, {m['ram_gb']} GiB RAM, "
        f"{m['os']}, Python {m['python']}; load average at start {m['load_avg_at_start']}. "
        "No GPU. "
        "Versions: "
        + ", ".join(f"{k} {val}" for k, val in sorted(v.items()))
        + f"; pixpack as committed at {doc['git']} (the ranks import a snapshot of it).",
        "",
        "Command (root: cgroups, drop_caches):",
        "",
        "```",
        f"python benchmarks/multi_rank.py --rounds {a['rounds']} --passes {a['passes']} "
        f"--window-images {a['window_images']}"
        + (f" --run-name {a['run_name']}" if a.get("run_name") else ""),
        "```",
        "",
        "Each run (under `flock /tmp/pixpack-bench.lock`, caches dropped, its own cgroup):",
        "",
        "```",
        f"OMP_NUM_THREADS=1 {any_run.get('command', '')}",
        "```",
        "",
        "with `--nproc_per_node 1` for the single process. Every rank: "
        '`dist.init_process_group("gloo")`, `pixpack.Loader(pack, 64, '
        "pipeline=[RandomResizedCrop(224), RandomHorizontalFlip(), Normalize(mean, std)], "
        "workers=1, seed=0)` (sharded by the loader from the group), epoch 0 from disk, "
        f"then {a['passes']} timed windows of whole epochs of its shard, at least "
        f"{a['window_images']:,} images each, from the page cache. Packs: raw@256 (`mode="
        '"raw", max_side=256`), '
        + ", ".join(f"{k}: {p['bytes'] / GB:.3f} GB" for k, p in doc["packs"].items())
        + f". {len(doc['rounds'])} interleaved rounds (order alternating between rounds).",
        "",
    ]
    if findings:
        lines += [findings.strip(), ""]
    lines += _memory_tables(doc, runs)
    lines += _throughput_tables(doc, runs)
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    src = Path(sys.argv[1])
    src.with_suffix(".md").write_text(render(json.loads(src.read_text())))
