"""Markdown report of the out-of-core group (benchmarks/out_of_core.py)."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["render"]


def _fmt(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "—"
    return f"{value:,.{digits}f}"


def _row(name: str, runs: list[dict[str, Any]]) -> str:
    ok = [r for r in runs if r.get("status") == "ok"]
    statuses = sorted({str(r.get("status")) for r in runs if r.get("status") != "ok"})
    if not ok:
        return f"| {name} | {', '.join(statuses) or 'not run'} | | | | |"
    res = [r["result"] for r in ok]
    rates = [x["rate"] for x in res]
    reads = [x["bytes_per_image"] for x in res if x.get("bytes_per_image") is not None]
    anon = [r["peak_rss_anon"] for r in ok]
    cgroup = [r["peak_cgroup"] for r in ok]
    rate = f"{_fmt(float(np.median(rates)))} ({_fmt(min(rates))}–{_fmt(max(rates))})"  # noqa: RUF001
    note = f" ({len(ok)}/{len(runs)} ok; {', '.join(statuses)})" if statuses else ""
    read = _fmt(float(np.median(reads)) / 1e3) if reads else "—"
    first = _fmt(float(np.median([x["first_batch_s"] for x in res])), 2)
    return (
        f"| {name}{note} | {rate} | {read} | {_fmt(float(np.median(anon)) / 2**20)} "
        f"| {_fmt(float(np.median(cgroup)) / 2**20)} | {first} |"
    )


def render(doc: dict[str, Any], cfgs: list[dict[str, Any]]) -> str:
    m, v = doc["machine"], doc["versions"]
    rounds = doc["rounds"]
    sizes = ", ".join(f"{k} {s / 1e9:.2f} GB" for k, s in sorted(doc["file_sizes"].items()))
    lines = [
        "# Out-of-core: a pack 3x larger than the memory the process may use",
        "",
        f"Machine: {m['cpu']}, {m['cores_usable']} usable cores, {m['ram_gb']} GiB RAM, "
        f"{m['os']}; disk {m['disk']}. Python {m['python']}; "
        + ", ".join(f"{k} {val}" for k, val in sorted(v.items()))
        + f"; pixpack at git {doc['git']}.",
        "",
        f"Memory cgroup limit (process tree + its page cache): "
        f"{doc['memory_limit_bytes'] / 1e9:.2f} GB; page cache dropped before every run. "
        f"Files: {sizes}. Each run: 5 untimed batches, then {doc['samples_timed']:,} images "
        f"timed; batch 64, RandomResizedCrop(224) + flip + Normalize -> float32, 2 workers/"
        f"threads. {len(rounds)} interleaved rounds: img/s is the median (range), ratios "
        "are per round, then the median.",
        "",
        "| reader | img/s | kB read from disk / image | peak RssAnon MiB | peak cgroup MiB "
        "(incl. page cache) | first batch s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for cfg in cfgs:
        lines.append(_row(cfg["name"], [r[cfg["name"]] for r in rounds if cfg["name"] in r]))
    stored = [
        r["pixpack-raw256"]["result"].get("stored_bytes_per_image")
        for r in rounds
        if r.get("pixpack-raw256", {}).get("status") == "ok"
    ]
    if stored:
        lines += ["", f"Stored bytes per raw@256 sample: {stored[0] / 1e3:.0f} kB."]
    lines += ["", "| ratio | median | per round |", "|---|---:|---|"]
    for key, value in doc["ratios"].items():
        per = ", ".join(_fmt(x, 2) for x in doc["ratios_per_round"][key])
        lines.append(f"| {key} | {_fmt(value, 2)} | {per} |")
    lines.append("")
    return "\n".join(lines)
