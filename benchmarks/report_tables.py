"""The markdown tables of a benchmark report, one function per kind of row.

Every function takes merged records (rounds.py) or ratio rows (ratios.py) and
returns markdown lines.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = [
    "ceiling_table",
    "convert_table",
    "loader_table",
    "open_table",
    "pack_rate",
    "primitives_table",
    "ratio_table",
]

MiB = 2**20
STAGE_LABELS = {
    "read": "read",
    "decode": "decode",
    "crop_resize": "crop+resize",
    "flip": "flip",
    "normalize": "normalize",
}


def pack_rate(result: dict[str, Any]) -> float:
    return (result.get("images") or 0) / result["seconds"] if result.get("seconds") else 0.0


def _mib(n: float | None) -> str:
    return "-" if not n else f"{n / MiB:,.0f}"


def _status_cell(r: dict[str, Any]) -> str:
    return f"**{r['status']}**: {r.get('error', '')}".replace("|", "\\|").replace("\n", " ")[:300]


def _name(r: dict[str, Any]) -> str:
    return f"{r['title']} (`{r['id']}`)"


def _rounds(r: dict[str, Any]) -> str:
    """Rounds that succeeded, and a note for those that did not."""
    ok = len(r.get("rounds_ok", [1]))
    failed = r.get("rounds_failed") or []
    return f"{ok}" + (f" ({len(failed)} failed)" if failed else "")


def ratio_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| ratio | median over rounds | per-round range | rounds | target | met |",
        "|---|---:|---:|---:|---:|:---:|",
    ]
    for row in rows:
        ms = row["kind"] == "ms"  # a time, not a ratio
        digits = 3 if ms else 2
        if row["value"] is None:
            value, spread = "n/a", ""
        else:
            value = f"**{row['value']:.{digits}f}{' ms' if ms else 'x'}**"
            spread = f"{row['low']:.{digits}f}-{row['high']:.{digits}f}"
        target = ""
        if row["target"] is not None:
            target = f"{'<=' if row['at_most'] else '>='} {row['target']:.2f}"
        met = {None: "", True: "yes", False: "**no**"}[row["met"]]
        n = len(row["per_round"])
        lines.append(f"| {row['name']} | {value} | {spread} | {n} | {target} | {met} |")
    return lines


def _table(
    header: list[str], records: list[dict[str, Any]], cells: Callable[[dict[str, Any]], list[str]]
) -> list[str]:
    """``header`` (title and alignment rows), then one row per record: ``cells(record)``
    for a run that succeeded, its status across the columns for one that did not."""
    columns = header[1].count("|") - 1
    rows = [
        f"| {_name(r)} | {_status_cell(r)} |" + " |" * (columns - 2)
        if r.get("status") != "ok"
        else "| " + " | ".join([_name(r), *cells(r)]) + " |"
        for r in records
    ]
    return [*header, *rows]


def loader_table(records: list[dict[str, Any]]) -> list[str]:
    def cells(r: dict[str, Any]) -> list[str]:
        x, m = r["result"], r["memory"]
        out = x.get("output") or {}
        shape = tuple(out.get("shape", []))[1:]
        return [
            f"**{x['rate_median']:,.0f}**",
            f"{x['rate_min']:,.0f}-{x['rate_max']:,.0f}",
            _rounds(r),
            f"{x['first_batch_s']:.2f}",
            f"{x['warmup_s']:.1f}",
            _cpu_cell(x),
            _mib(m["rss"]),
            _mib(m["anon"]),
            _mib(m["pss"]),
            str(m["processes"]),
            f"{r.get('load_avg_before', '-')}",
            f"{out.get('dtype')} {shape} mean {out.get('mean')} std {out.get('std')}",
        ]

    header = [
        "| configuration | img/s (median) | min-max | rounds | first batch (s) | "
        "warm-up pass (s) | cores used (CPU us/img) | peak RSS sum (MiB) | "
        "peak RssAnon sum (MiB) | peak PSS (MiB) | procs | load avg | output |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    return _table(header, records, cells)


def _cpu_cell(x: dict[str, Any]) -> str:
    """Median over timed windows of the cores the process tree used (its CPU seconds per
    wall second) and of its CPU microseconds per image; '-' for runs that predate them."""
    cores, cost = x.get("cores"), x.get("cpu_us_per_image")
    if not cores or not cost:
        return "-"
    return f"{float(np.median(cores)):.2f} ({float(np.median(cost)):,.0f})"


def convert_table(records: list[dict[str, Any]]) -> list[str]:
    def cells(r: dict[str, Any]) -> list[str]:
        x = r["result"]
        every = ", ".join(f"{s:.1f}" for s in x.get("seconds_all", [x["seconds"]]))
        return [
            f"{x['seconds']:.1f}",
            every,
            f"{pack_rate(x):,.0f}",
            f"{x['bytes'] / MiB:,.1f}",
            _mib(r["memory"]["pss"]),
        ]

    header = [
        "| conversion | time (s, median) | all rounds (s) | images/s | size on disk (MiB) | "
        "peak PSS (MiB) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    return _table(header, records, cells)


def open_table(records: list[dict[str, Any]]) -> list[str]:
    def cells(r: dict[str, Any]) -> list[str]:
        x = r["result"]
        return [
            f"{x['samples']:,}",
            f"**{x['open_ms']:.3f}**",
            f"{x['open_ms_min']:.3f}-{x['open_ms_max']:.3f}",
            str(len(x["open_ms_all"])),
            f"{x['bytes'] / MiB:,.1f}",
            f"{x['build_s']:.1f}",
        ]

    header = [
        "| file | samples | open (ms, median) | min-max (ms) | opens timed | size on disk (MiB) "
        "| written once in (s) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    return _table(header, records, cells)


def primitives_table(records: list[dict[str, Any]], workers: int) -> list[str]:
    stages = list(STAGE_LABELS)

    def cells(r: dict[str, Any]) -> list[str]:
        x = r["result"]
        per = x["stage_us_median"]
        return [
            *(f"{per[s]:.1f}" for s in stages),
            f"**{x['cost_us']:.1f}**",
            f"{x['primitive_rate']:,.0f}",
            f"{workers * x['primitive_rate']:,.0f}",
            f"{x['rate_median']:,.0f}",
            _rounds(r),
        ]

    header = [
        "| pack | "
        + " | ".join(f"{STAGE_LABELS[s]} (us)" for s in stages)
        + " | per-image cost (us) | 1 core (img/s) | "
        + f"{workers} cores, ideal (img/s) | whole loop (img/s) | rounds |",
        "|---|" + "---:|" * (len(stages) + 5),
    ]
    return _table(header, records, cells)


def ceiling_table(records: list[dict[str, Any]]) -> list[str]:
    def cells(r: dict[str, Any]) -> list[str]:
        x = r["result"]
        return [
            f"{x['rate_1']:,.0f}",
            f"{x['rate_n']:,.0f} ({x['processes']} processes)",
            f"**{x['ceiling_ratio']:.2f}x**",
            _rounds(r),
            f"{r.get('load_avg_before', '-')}",
        ]

    header = [
        "| machine ceiling | 1 process (img/s) | N processes at once, sum (img/s) | "
        "N / 1 (median of rounds) | rounds | load avg |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    return _table(header, records, cells)
