"""Turn a run directory of per-configuration results into markdown, JSON and a PNG chart.

python benchmarks/report.py benchmarks/data/runs/<run-name>   # rewrite the report
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["load_run", "write_report"]

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from ratios import ratio_rows as ratio_rows_of  # noqa: E402
from report_tables import (  # noqa: E402
    ceiling_table,
    convert_table,
    loader_table,
    open_table,
    primitives_table,
    ratio_table,
)
from rounds import merge_rounds, read_rounds  # noqa: E402

MiB = 2**20
GROUPS = ("convert", "load", "large", "scaling", "primitives", "workers", "size", "open")
RATIO_SECTIONS = (
    ("peers", "pixpack against its peers (loading)"),
    ("pack", "Packing (issue 2: parallel efficiency >= 0.85)"),
    (
        "scaling",
        "Loader scaling and pipeline overhead (issue 3: 1 -> 2 threads >= 1.8x, overhead <= 1.3x)",
    ),
    ("open", "Opening a pack (issue 2: 1,000,000 samples in under 50 ms, independent of size)"),
)


def load_run(
    run_dir: Path,
) -> tuple[dict[str, Any], list[dict[str, Any]], dict[int, dict[str, dict[str, Any]]]]:
    """``(meta, one merged record per configuration, {round: {id: record}})``."""
    meta = json.loads((run_dir / "meta.json").read_text())
    per_config = read_rounds(run_dir)
    by_round: dict[int, dict[str, dict[str, Any]]] = {}
    for config_id, rounds in per_config.items():
        for k, record in rounds.items():
            by_round.setdefault(k, {})[config_id] = record
    records = [merge_rounds(rounds) for rounds in per_config.values()]
    for record in records:  # per-window CPU use of every round (loaders timed since 2026-12)
        ok = [
            r["result"]
            for _, r in sorted(per_config[record["id"]].items())
            if r.get("status") == "ok" and "cores" in r.get("result", {})
        ]
        if ok and "result" in record:
            for key in ("cores", "cpu_us_per_image", "window_images"):
                record["result"][key] = [x for r in ok for x in r.get(key, [])]
    order = {c.id: i for i, c in enumerate(_all_configs(meta.get("workers", 2)))}
    records.sort(key=lambda r: order.get(r["id"], 10**6))  # the order of configs.py
    return meta, records, by_round


def _all_configs(workers: int) -> list[Any]:
    """Every configuration of a complete run ([] if configs.py cannot be read)."""
    try:
        from configs import build_configs

        paths = {"base": Path("b"), "large": Path("l"), "scaled": Path("s")}
        return build_configs(paths, Path("a"), workers, 1, 1)
    except Exception:  # ordering and the "partial" label are informative only
        return []


def _markdown(
    meta: dict[str, Any],
    records: list[dict[str, Any]],
    ratio_rows: list[dict[str, Any]],
    chart: str,
) -> str:
    m = meta["machine"]
    groups = {g: [r for r in records if r["group"] == g] for g in GROUPS}
    rounds = meta.get("rounds", 1)
    done = sum(r.get("status") == "ok" for r in records)
    label = (
        "QUICK SMOKE RUN (small data set; numbers are indicative only)"
        if meta["quick"]
        else "full-size data set"
    )
    total = len(_all_configs(meta["workers"]))
    subset = bool(total) and len(records) < total
    if subset:  # ratios between configurations this run did not include say nothing
        ran = {r["id"] for r in records}
        ratio_rows = [row for row in ratio_rows if row["numerator"] in ran]
    if subset:
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
        f"{meta['workers']} workers/threads, " + _timing(meta) + f" per round, **{rounds} "
        "interleaved round(s)**: img/s is the median of every timed pass "
        "of every round (min-max over all of them); conversion times are medians over rounds.",
        "",
        f"![chart]({chart})",
        "",
        "## Ratios the project tracks",
        "",
        "Each ratio is computed within each round (numerator and denominator from the same "
        "round) and reported as the median over rounds, with the lowest and highest round. "
        f"N = {meta['workers']} (the usable cores). Definitions: "
        "[docs/benchmarks.md](../../docs/benchmarks.md#ratios-tracked).",
    ]
    for section, title in RATIO_SECTIONS:
        rows = [row for row in ratio_rows if row["section"] == section]
        if rows:
            lines += ["", f"### {title}", "", *ratio_table(rows)]
    sections = [
        ("Loading: ~500x375 photographs", "load", loader_table),
        ("Loading: ~1600x1200 photographs", "large", loader_table),
        (
            "Scaling: pixpack.Loader with 1 worker (the N-worker rows are in the main table)",
            "scaling",
            lambda rows: loader_table([r for r in rows if not r["id"].startswith("ceiling-")]),
        ),
        (
            "Machine ceiling: the primitive loop in 1 process vs N independent processes at once",
            "scaling",
            lambda rows: ceiling_table([r for r in rows if r["id"].startswith("ceiling-")]),
        ),
        (
            "Primitives alone: microseconds per image on one thread (OpenCV single-threaded)",
            "primitives",
            lambda rows: primitives_table(rows, meta["workers"]),
        ),
        (
            "torchvision with 1 worker (the all-core rows are in the tables above)",
            "workers",
            loader_table,
        ),
        (
            "Memory vs dataset size (same batches on the base set and a k-times larger set; "
            "first round only)",
            "size",
            loader_table,
        ),
        ("Conversion", "convert", convert_table),
        (
            "Opening a file of tiny samples (open, length, last label; page cache warm)",
            "open",
            open_table,
        ),
    ]
    for title, group, table in sections:
        if groups[group]:
            body = table(groups[group])
            if len(body) > 2:
                lines += ["", f"## {title}", "", *body]
    problems = [r for r in records if r.get("status") != "ok"]
    lines += ["", "## Configurations that did not run", ""]
    lines += [f"- `{r['id']}`: {r['status']}: {r.get('error', '')}" for r in problems] or ["- none"]
    flaky = [r for r in records if r.get("status") == "ok" and r.get("rounds_failed")]
    if flaky:
        lines += ["", "Configurations that failed in some rounds (their other rounds count):", ""]
        lines += [
            f"- `{r['id']}`: round {f['round']}: {f['status']}: {f['error']}"
            for r in flaky
            for f in r["rounds_failed"]
        ]
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


def _timing(meta: dict[str, Any]) -> str:
    """How a loader's timed passes were taken (runs before 2026-12 timed single epochs)."""
    if meta.get("timing") == "windows":
        return (
            f"1 warm-up epoch then {meta['passes']} timed windows of 2 epochs' images each "
            "(one long-lived loader streaming across epochs; a window ends at the batch that "
            "completes it)"
        )
    return f"1 warm-up pass then {meta['passes']} timed passes (one epoch each)"


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
    ax.set_xlabel("images/s (median of timed windows; bars: min-max)")
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
    for name, one, many, style in (
        (
            "pixpack.Loader jpeg@256",
            "scaling-pixpack-loader-jpeg256-w1",
            "pixpack-loader-jpeg256",
            "-",
        ),
        (
            "pixpack.Loader raw@256",
            "scaling-pixpack-loader-raw256-w1",
            "pixpack-loader-raw256",
            "--",
        ),
        ("torchvision v1", "workers1-torchvision-v1", "torchvision-v1", "-"),
    ):
        if one in by_id and many in by_id:
            xs = [by_id[one]["params"]["workers"], by_id[many]["params"]["workers"]]
            ys = [by_id[one]["result"]["rate_median"], by_id[many]["result"]["rate_median"]]
            ax.plot(xs, ys, style, marker="o", label=name, color=_color(many))
            pinned = by_id.get(f"{one}pin")
            if pinned:  # 1 worker on one CPU: the start of "1 core -> N cores"
                rate = pinned["result"]["rate_median"]
                ax.plot([1], [rate], marker="o", mfc="none", ls="", color=_color(many))
    ax.plot([], [], marker="o", mfc="none", ls="", color="k", label="1 worker pinned to one CPU")
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
    meta, records, by_round = load_run(run_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    stem = results_dir / meta["run_name"]
    ratio_rows = ratio_rows_of(by_round, meta["workers"])
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
