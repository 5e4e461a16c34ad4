"""Rendering bench and doctor results: an aligned terminal report, or JSON."""

from __future__ import annotations

import json
from typing import Any

from .bench import BenchResult
from .doctor import Diagnosis, _size

__all__ = ["format_bench", "format_diagnosis", "to_json"]


def _rate(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if value >= 10 else f"{value:.1f}"


def _ms(seconds: float) -> str:
    ms = seconds * 1e3
    return f"{ms:.1f}" if ms >= 10 else f"{ms:.2f}" if ms >= 0.01 else f"{ms:.4f}"


def format_bench(r: BenchResult) -> str:
    """The ``pixpack bench`` report."""
    return "\n".join(
        [
            f"pack:        {r.pack}",
            f"pipeline:    {r.pipeline}",
            f"loader:      batch {r.batch_size}, {r.workers} workers, device {r.device}",
            f"measured:    {r.batches} batches, {r.images} images in {r.seconds:.2f} s "
            f"(after {r.warmup_batches} warm-up batch(es); {r.total_seconds:.2f} s in all)",
            f"throughput:  {_rate(r.images_per_second)} images/s, "
            f"{r.batches_per_second:.2f} batches/s, {r.mb_per_second:,.1f} MB/s read",
            f"latency:     p50 {_ms(r.latency_p50)} ms, p99 {_ms(r.latency_p99)} ms "
            "between batches",
            f"first batch: {r.time_to_first_batch:.3f} s after the loader was created",
        ]
    )


def _table(rows: list[list[str]], right: set[int]) -> list[str]:
    widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
    out = []
    for row in rows:
        cells = [
            cell.rjust(widths[c]) if c in right else cell.ljust(widths[c])
            for c, cell in enumerate(row)
        ]
        out.append("  ".join(cells).rstrip())
    return out


def format_diagnosis(d: Diagnosis) -> str:
    """The ``pixpack doctor`` report: stage table, verdict, page cache, advice."""
    pc = d.page_cache
    lines = [
        f"pack:      {d.pack} ({_size(pc['pack_bytes'])})",
        f"pipeline:  {d.pipeline}",
        f"loader:    batch {d.batch_size}, {d.workers} workers, device {d.device}; "
        f"{d.cores} usable cores; stages timed on {d.samples} sampled images",
        "",
    ]
    rows = [["stage", "ms/img", "img/s 1 thread", f"img/s x{d.cores}", "MB/s", "share", "note"]]
    for s in d.stages:
        share = d.shares.get(s.name)
        rows.append(
            [
                s.name,
                _ms(s.per_image),
                _rate(s.rate),
                _rate(s.parallel_rate),
                _rate(s.mb_per_second),
                f"{share:.0%}" if share is not None else "",
                s.note,
            ]
        )
    if d.end_to_end is not None:
        e = d.end_to_end
        rows.append(
            [
                "end-to-end (Loader)",
                "",
                "",
                _rate(e.images_per_second),
                _rate(e.mb_per_second),
                "",
                f"{d.workers} workers, p99 {_ms(e.latency_p99)} ms/batch",
            ]
        )
    lines += _table(rows, right={1, 2, 3, 4, 5})
    lines += ["", f"verdict:   {d.verdict}"]
    if d.overhead:
        lines.append("           the end-to-end rate is far below the stages: overhead/threading")
    fit = "fits in" if pc["fits"] else "does NOT fit in"
    limit = pc.get("cgroup_limit")
    lines.append(
        f"page cache: the pack ({_size(pc['pack_bytes'])}) {fit} the memory this process "
        f"may use ({_size(pc.get('usable', pc['ram_available']))}: "
        f"{_size(pc['ram_available'])} of {_size(pc['ram_total'])} RAM available"
        + (f", cgroup limit {_size(limit)}" if limit else "")
        + ")"
        + (
            f"; cold reads read {pc['read_amplification']:.2f}x the stored bytes"
            if pc.get("read_amplification") is not None
            else ""
        )
        + (
            f"; {pc['resident_before']:.0%} of the sampled bytes were cached before the test"
            if pc["resident_before"] is not None
            else ""
        )
    )
    if d.step is not None:
        lines.append(f"step:      {d.step['message']}")
    if d.advice:
        lines += ["", "advice:"] + [f"  - {a}" for a in d.advice]
    if d.notes:
        lines += ["", "notes:"] + [f"  - {n}" for n in d.notes]
    if d.frameworks:
        found = [f"{name} {v}" if v else f"{name} not installed"
                 for name, v in d.frameworks.items()]
        lines += ["", f"frameworks: {', '.join(found)} (pixpack itself needs none)"]
    return "\n".join(lines)


def to_json(result: BenchResult | Diagnosis | Any) -> str:
    """Stable-key JSON of a :class:`BenchResult` or :class:`Diagnosis`."""
    return json.dumps(result.as_dict(), indent=2)
