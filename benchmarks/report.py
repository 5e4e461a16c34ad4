"""Turn a run directory of per-configuration results into markdown, JSON and a PNG chart.

python benchmarks/report.py benchmarks/data/runs/<run-name>   # rewrite the report
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["load_run", "ratios", "write_report"]

MiB = 2**20

# (name, numerator id, denominator id, kind, target): kind "rate" compares loader img/s,
# "pack" packing img/s, "efficiency" is parallel efficiency of packing.
RATIOS = [
    ("pixpack raw@256 / FFCV raw@256 (img/s)", "pixpack-loader-raw256", "ffcv-raw256", "rate", 1.5),
    (
        "pixpack jpeg@256 / FFCV jpeg@256 (img/s)",
        "pixpack-loader-jpeg256",
        "ffcv-jpeg256",
        "rate",
        1.4,
    ),
    (
        "pixpack jpeg / FFCV jpeg, source size (img/s)",
        "pixpack-loader-jpeg",
        "ffcv-jpeg",
        "rate",
        1.5,
    ),
    (
        "pixpack jpeg / FFCV jpeg, large photos (img/s)",
        "large-pixpack-loader-jpeg",
        "large-ffcv-jpeg",
        "rate",
        1.5,
    ),
    (
        "pixpack raw@256 / torchvision v1 (img/s)",
        "pixpack-loader-raw256",
        "torchvision-v1",
        "rate",
        13.0,
    ),
    (
        "pixpack jpeg@256 / torchvision v1 (img/s)",
        "pixpack-loader-jpeg256",
        "torchvision-v1",
        "rate",
        None,
    ),
    (
        "pixpack jpeg / torchvision v1, source size (img/s)",
        "pixpack-loader-jpeg",
        "torchvision-v1",
        "rate",
        None,
    ),
    ("pixpack jpeg@256 / DALI CPU (img/s)", "pixpack-loader-jpeg256", "dali-cpu", "rate", None),
    (
        "pixpack pack jpeg@256 / FFCV writer jpeg@256 (img/s)",
        "pixpack-pack-jpeg256",
        "ffcv-write-jpeg256",
        "pack",
        2.0,
    ),
    (
        "pixpack pack raw@256 / FFCV writer raw@256 (img/s)",
        "pixpack-pack-raw256",
        "ffcv-write-raw256",
        "pack",
        2.0,
    ),
    (
        "pixpack pack jpeg / FFCV writer jpeg, source size (img/s)",
        "pixpack-pack-jpeg",
        "ffcv-write-jpeg",
        "pack",
        2.0,
    ),
    (
        "pixpack packing parallel efficiency, jpeg@256",
        "pixpack-pack-jpeg256",
        "pixpack-pack-jpeg256-w1",
        "efficiency",
        0.85,
    ),
]


def load_run(run_dir: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    meta = json.loads((run_dir / "meta.json").read_text())
    records = []
    for path in sorted(run_dir.glob("*.json")):
        if path.name == "meta.json" or path.name.endswith((".cfg.json", ".out.json")):
            continue
        records.append(json.loads(path.read_text()))
    # keep the configuration order of configs.py where possible
    try:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from configs import build_configs

        order = {
            c.id: i
            for i, c in enumerate(
                build_configs(
                    {"base": Path("b"), "large": Path("l"), "scaled": Path("s")}, Path("a"), 2, 1, 1
                )
            )
        }
        records.sort(key=lambda r: order.get(r["id"], 10**6))
    except Exception:  # ordering is cosmetic
        pass
    return meta, records


def _ok(by_id: dict[str, Any], key: str) -> dict[str, Any] | None:
    record = by_id.get(key)
    return record["result"] if record and record.get("status") == "ok" else None


def _pack_rate(result: dict[str, Any]) -> float:
    return (result.get("images") or 0) / result["seconds"] if result["seconds"] else 0.0


def ratios(records: list[dict[str, Any]], workers: int) -> list[dict[str, Any]]:
    by_id = {r["id"]: r for r in records}
    out = []
    for name, num, den, kind, target in RATIOS:
        a, b = _ok(by_id, num), _ok(by_id, den)
        value = None
        if a and b:
            if kind == "rate":
                value = a["rate_median"] / b["rate_median"]
            elif kind == "pack" and _pack_rate(b):
                value = _pack_rate(a) / _pack_rate(b)
            elif kind == "efficiency" and _pack_rate(b):
                value = _pack_rate(a) / (workers * _pack_rate(b))
        out.append(
            {
                "name": name,
                "numerator": num,
                "denominator": den,
                "value": value,
                "target": target,
                "met": None if value is None or target is None else value >= target,
            }
        )
    return out


def _fmt_mib(n: float | None) -> str:
    return "-" if not n else f"{n / MiB:,.0f}"


def _status_cell(r: dict[str, Any]) -> str:
    return f"**{r['status']}**: {r.get('error', '')}".replace("|", "\\|").replace("\n", " ")[:300]


def _loader_table(records: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| configuration | img/s (median) | min-max | first batch (s) | warm-up pass (s) | "
        "peak RSS sum (MiB) | peak RssAnon sum (MiB) | peak PSS (MiB) | procs | load avg "
        "| output |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in records:
        if r.get("status") != "ok":
            lines.append(f"| {r['title']} (`{r['id']}`) | {_status_cell(r)} | | | | | | | | | |")
            continue
        x, m = r["result"], r["memory"]
        out = x.get("output") or {}
        shape = tuple(out.get("shape", []))[1:]
        cells = [
            f"{r['title']} (`{r['id']}`)",
            f"**{x['rate_median']:,.0f}**",
            f"{x['rate_min']:,.0f}-{x['rate_max']:,.0f}",
            f"{x['first_batch_s']:.2f}",
            f"{x['warmup_s']:.1f}",
            _fmt_mib(m["rss"]),
            _fmt_mib(m["anon"]),
            _fmt_mib(m["pss"]),
            str(m["processes"]),
            f"{r.get('load_avg_before', '-')}",
            f"{out.get('dtype')} {shape} mean {out.get('mean')} std {out.get('std')}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _convert_table(records: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| conversion | time (s) | images/s | size on disk (MiB) | peak PSS (MiB) |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in records:
        if r.get("status") != "ok":
            lines.append(f"| {r['title']} (`{r['id']}`) | {_status_cell(r)} | | | |")
            continue
        x = r["result"]
        lines.append(
            f"| {r['title']} (`{r['id']}`) | {x['seconds']:.1f} | {_pack_rate(x):,.0f} "
            f"| {x['bytes'] / MiB:,.1f} | {_fmt_mib(r['memory']['pss'])} |"
        )
    return lines


def _markdown(
    meta: dict[str, Any],
    records: list[dict[str, Any]],
    ratio_rows: list[dict[str, Any]],
    chart: str,
) -> str:
    m = meta["machine"]
    groups = {
        g: [r for r in records if r["group"] == g]
        for g in ("convert", "load", "large", "workers", "size")
    }
    done = sum(r.get("status") == "ok" for r in records)
    label = (
        "QUICK SMOKE RUN (small data set; numbers are indicative only)"
        if meta["quick"]
        else "full-size data set"
    )
    total = _total_configs(meta["workers"])
    if total and len(records) < total:
        label += f"; PARTIAL: a subset of {len(records)} of the {total} configurations"
    if done < len(records):
        missing = len(records) - done
        label += f"; PARTIAL: {missing} of {len(records)} configurations did not produce a result"
    disk = m["disk"]
    lines = [
        f"# pixpack benchmark: {meta['run_name']}",
        "",
        f"**{label}.** Date {meta['date']}, pixpack git `{meta['pixpack_git']}`.",
        "",
        "Command: "
        + ", then ".join(f"`{c}`" for c in meta.get("commands", [meta["command"]]))
        + " (after `bash benchmarks/install_peers.sh`). "
        "Methodology: [docs/benchmarks.md](../../docs/benchmarks.md).",
        "",
        "## Machine",
        "",
        f"- CPU: {m['cpu']}, {m['cores_usable']} usable cores ({m['cpus_online']} online); "
        f"RAM {m['ram_gb']} GiB; load average at start {m['load_avg_at_start']}",
        f"- Disk: {disk.get('device')} ({disk.get('fstype')}, {disk.get('size_gb')} GB"
        + (", kernel reports rotational" if disk.get("rotational") else "")
        + "); data read from the warm page cache",
        f"- {m['os']}, Python {m['python']}",
        "- Versions: "
        + "; ".join(
            f"{env}: " + ", ".join(f"{k} {v}" for k, v in vs.items())
            for env, vs in meta["versions"].items()
        ),
        "- Data: "
        + ", ".join(f"{k} `{v['path']}` ({v['images']} images)" for k, v in meta["data"].items()),
        "- Every loader: RandomResizedCrop(224) + RandomHorizontalFlip + Normalize(ImageNet "
        f"mean/std) -> float32 N x 3 x 224 x 224, batch {meta['batch_size']}, "
        f"{meta['workers']} workers/threads, 1 warm-up pass then {meta['passes']} timed passes "
        "(median, min-max).",
        "",
        f"![chart]({chart})",
        "",
        "## Ratios the project tracks",
        "",
        "| ratio | value | target | met |",
        "|---|---:|---:|:---:|",
    ]
    for row in ratio_rows:
        value = "n/a" if row["value"] is None else f"{row['value']:.2f}x"
        target = "" if row["target"] is None else f">= {row['target']}"
        met = {None: "", True: "yes", False: "**no**"}[row["met"]]
        lines.append(f"| {row['name']} | {value} | {target} | {met} |")
    sections = [
        ("Loading: ~500x375 photographs", "load", _loader_table),
        ("Loading: ~1600x1200 photographs", "large", _loader_table),
        (
            "Throughput vs workers (1 worker; the all-core rows are in the tables above)",
            "workers",
            _loader_table,
        ),
        (
            "Memory vs dataset size (same batches on the base set and a k-times larger set)",
            "size",
            _loader_table,
        ),
        ("Conversion", "convert", _convert_table),
    ]
    for title, group, table in sections:
        if groups[group]:
            lines += ["", f"## {title}", "", *table(groups[group])]
    problems = [r for r in records if r.get("status") != "ok"]
    lines += ["", "## Configurations that did not run", ""]
    lines += [f"- `{r['id']}`: {r['status']}: {r.get('error', '')}" for r in problems] or ["- none"]
    lines += [
        "",
        "## How to read the memory columns",
        "",
        "RSS and RssAnon are summed over the process tree (the benchmark process plus "
        "DataLoader workers), as `top` would add them up: pages shared copy-on-write with forked "
        "workers, or mapped from the page cache, count once per process. PSS splits shared pages "
        "between the processes that map them, so the PSS sum is what the tree really occupies. "
        "File-backed pages of a memory-mapped pack appear in RSS/PSS but are reclaimable page "
        "cache, not anonymous memory.",
        "",
        "*load avg* is the 1-minute load average just before the configuration started: above "
        "the core count, other work was competing for the CPU and that row's numbers are low.",
        "",
    ]
    return "\n".join(lines)


def _total_configs(workers: int) -> int | None:
    """How many configurations a complete run has (None if configs.py cannot be read)."""
    try:
        from configs import build_configs

        paths = {"base": Path("b"), "large": Path("l"), "scaled": Path("s")}
        return len(build_configs(paths, Path("a"), workers, 1, 1))
    except Exception:  # the label is informative only
        return None


def _chart(records: list[dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in records if r.get("status") == "ok" and "rate_median" in r.get("result", {})]
    main = [r for r in ok if r["group"] in ("load", "large")]
    fig, axes = plt.subplots(2, 2, figsize=(16, 11), gridspec_kw={"width_ratios": [3, 2]})
    ax = axes[0][0]
    labels = [r["id"] for r in main]
    rates = [r["result"]["rate_median"] for r in main]
    err = [
        [r["result"]["rate_median"] - r["result"]["rate_min"] for r in main],
        [r["result"]["rate_max"] - r["result"]["rate_median"] for r in main],
    ]
    colors = [_color(r["id"]) for r in main]
    ax.barh(labels, rates, xerr=err, color=colors, capsize=3)
    for y, (v, hi) in enumerate(zip(rates, err[1], strict=True)):
        ax.text(v + hi, y, f"  {v:,.0f}", va="center", fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("images/s (median of timed passes; bars: min-max)")
    ax.set_title("Throughput, float32 NCHW 224x224 batches")

    ax = axes[1][0]
    pss = [r["memory"]["pss"] / MiB for r in main]
    rss = [r["memory"]["rss"] / MiB for r in main]
    y = range(len(main))
    ax.barh(
        [i - 0.2 for i in y], rss, height=0.4, label="RSS summed over processes", color="#bbbbbb"
    )
    ax.barh([i + 0.2 for i in y], pss, height=0.4, label="PSS (real)", color=colors)
    ax.set_yticks(list(y), labels)
    ax.invert_yaxis()
    ax.set_xlabel("peak memory of the process tree (MiB)")
    ax.legend(loc="lower right")
    ax.set_title("Memory")

    ax = axes[0][1]
    by_id = {r["id"]: r for r in ok}
    for name, one, many in (
        ("pixpack.Loader jpeg@256", "workers1-pixpack-loader-jpeg256", "pixpack-loader-jpeg256"),
        ("torchvision v1", "workers1-torchvision-v1", "torchvision-v1"),
    ):
        if one in by_id and many in by_id:
            xs = [by_id[one]["params"]["workers"], by_id[many]["params"]["workers"]]
            ys = [by_id[one]["result"]["rate_median"], by_id[many]["result"]["rate_median"]]
            ax.plot(xs, ys, marker="o", label=name, color=_color(many))
    ax.set_xticks([1, 2, 4, 8, 16, 32])
    ax.set_xlim(0.5, max(2, max((r["params"].get("workers", 1) for r in ok), default=2)) + 0.5)
    ax.set_xlabel("workers / threads")
    ax.set_ylabel("images/s")
    ax.set_title("Throughput vs workers")
    if ax.get_legend_handles_labels()[0]:
        ax.legend()
    ax.grid(alpha=0.3)

    ax = axes[1][1]
    for name, key in (
        ("pixpack.Loader jpeg@256", "pixpack-loader-jpeg256"),
        ("torchvision v1", "torchvision-v1"),
        ("preload list", "naive-preload"),
    ):
        pts = [
            (len_of(by_id[f"size-{tag}-{key}"]), by_id[f"size-{tag}-{key}"]["memory"]["pss"] / MiB)
            for tag in ("base", "scaled")
            if f"size-{tag}-{key}" in by_id
        ]
        if pts:
            ax.plot(*zip(*pts, strict=True), marker="o", label=name, color=_color(key))
    ax.set_xlabel("dataset size (images)")
    ax.set_ylabel("peak PSS (MiB)")
    ax.set_title("Memory vs dataset size")
    if ax.get_legend_handles_labels()[0]:
        ax.legend()
    ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def len_of(record: dict[str, Any]) -> int:
    """Images in the data set a record ran on (from its directory name, e.g. photos-10000)."""
    name = Path(record["params"]["data"]).name
    return int(name.rsplit("-", 1)[-1])


def _color(config_id: str) -> str:
    for key, color in (
        ("pixpack", "#d62728"),
        ("ffcv", "#1f77b4"),
        ("dali", "#76b900"),
        ("torchvision", "#7f7f7f"),
        ("naive", "#ff7f0e"),
    ):
        if key in config_id:
            return color
    return "#9467bd"


def write_report(run_dir: Path, results_dir: Path) -> list[Path]:
    meta, records = load_run(run_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    stem = results_dir / meta["run_name"]
    ratio_rows = ratios(records, meta["workers"])
    png = stem.with_suffix(".png")
    _chart(
        records,
        png,
        f"pixpack vs peers - {meta['run_name']} ({meta['machine']['cpu']}, "
        f"{meta['machine']['cores_usable']} cores)",
    )
    md = stem.with_suffix(".md")
    md.write_text(_markdown(meta, records, ratio_rows, png.name))
    js = stem.with_suffix(".json")
    slim = [{k: v for k, v in r.items() if k != "log_tail"} for r in records]
    js.write_text(json.dumps({"meta": meta, "ratios": ratio_rows, "results": slim}, indent=1))
    return [md, js, png]


if __name__ == "__main__":
    run = Path(sys.argv[1])
    for written in write_report(run, Path(__file__).resolve().parent / "results"):
        print(f"wrote {written}")
