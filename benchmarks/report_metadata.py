"""Markdown report of ``metadata_query.py`` (its JSON document in, text out)."""

from __future__ import annotations

from statistics import median
from typing import Any

__all__ = ["render", "summary"]

ENGINES = {
    "pixpack": "pixpack `pack.query` (stored SQLite image, in memory)",
    "sqlite-blobs": "SQLite file, images as BLOBs, `NOT INDEXED` (the seed's approach)",
    "sqlite-blobs-indexed": "the same file with indexes on `(site, age)` and `patient_id`",
    "pandas": "pandas boolean mask over a DataFrame (read from parquet)",
}


def _med(values: list[float]) -> float:
    return float(median(values)) if values else float("nan")


def summary(doc: dict[str, Any]) -> dict[str, Any]:
    """Medians: per engine and query, the first query of a process and the later ones."""
    q = doc["query"]
    out: dict[str, Any] = {"engines": {}, "counts": {}}
    for engine, runs in q["warm"].items():
        e: dict[str, Any] = {"first_ms": {}, "later_ms": {}, "setup_ms": {}}
        for name in doc["queries"]:
            firsts = [r["first_ms"] for r in runs if r["first"] == name]
            e["first_ms"][name] = _med(firsts)
            e["later_ms"][name] = _med([t for r in runs for t in r["later_ms"][name]])
            for r in runs:
                got = r["results"][name]
                have = out["counts"].setdefault(name, got)
                if have != got:
                    raise ValueError(f"{engine} {name}: {got} != {have} (count, index sum)")
        e["setup_ms"] = _med([r["setup_ms"] for r in runs])
        e["rss_growth_mb"] = _med([r["rss_growth_mb"] for r in runs])
        out["engines"][engine] = e
    opens = q["opens"]
    out["open"] = {
        k: {"first_ms": _med([r["first_open_ms"] for r in v]),
            "later_ms": _med([t for r in v for t in r["open_ms"]])}
        for k, v in opens.items()
    }  # fmt: skip
    if q.get("cold"):
        out["cold"] = {
            e: {"setup_ms": _med([r["setup_ms"] for r in rs]),
                "first_ms": _med([r["first_ms"] for r in rs])}
            for e, rs in q["cold"].items()
        }  # fmt: skip
        out["cold_open_ms"] = _med([r["first_open_ms"] for r in q["cold_open"]])
    if "loader" in doc:
        rounds = doc["loader"]["rounds"]
        out["loader"] = {
            name: {"samples": rounds[0][name]["samples"],
                   "rate": _med([r[name]["rate_median"] for r in rounds]),
                   "per_round": [r[name]["rate_median"] for r in rounds],
                   "cores": [_med(r[name]["cores"]) for r in rounds],
                   "cpu_us": _med([x for r in rounds for x in r[name]["cpu_us_per_image"]])}
            for name in doc["loader"]["configs"]
        }  # fmt: skip
        for name in doc["loader"]["configs"]:
            if name == "full":
                continue
            per = [r[name]["rate_median"] / r["full"]["rate_median"] for r in rounds]
            out["loader"][name]["ratio"] = _med(per)
            out["loader"][name]["ratio_per_round"] = per
            out["loader"][name]["cpu_ratio"] = (
                out["loader"]["full"]["cpu_us"] / out["loader"][name]["cpu_us"]
            )
    return out


def _f(x: float, digits: int = 1) -> str:
    return f"{x:,.{digits}f}"


def render(doc: dict[str, Any]) -> str:
    s = summary(doc) if "query" in doc else {"engines": {}}
    m, v = doc["machine"], doc["versions"]
    lines = [
        "# Metadata queries on 1,000,000 samples (issue 15)",
        "",
        f"Command: `{doc['command']}` (git {doc['git']}).",
        "",
        f"Machine: {m['cpu']}, {m['cores_usable']} usable cores, {m['ram_gb']} GiB RAM, "
        f"{m['disk'].get('fstype', '?')} on {m['disk'].get('device', '?')}; {m['os']}; "
        f"Python {m['python']}, SQLite {doc['sqlite_version']}; "
        + ", ".join(f"{k} {x}" for k, x in sorted(v.items()))
        + ".",
        "",
        "File sizes: "
        + ", ".join(f"`{k}` {b / 1e6:,.0f} MB" for k, b in doc["file_sizes"].items())
        + ".",
        "",
    ]
    if "query" in doc:
        lines += _query_section(doc, s)
    if "loader" in s:
        lines += _loader_section(doc, s)
    return "\n".join(lines) + "\n"


def _query_section(doc: dict[str, Any], s: dict[str, Any]) -> list[str]:
    n = 1_000_000
    q, a = doc["queries"], doc["args"]
    lines = [
        "## Open",
        "",
        f"`pixpack.open(path)`, `len`, `targets[-1]`; page cache warm; first open of a fresh "
        f"process (median of {a['runs']} processes) and the median of 20 later opens in each.",
        "",
        "| pack | first open in a process (ms) | later opens (ms) |",
        "|---|---:|---:|",
    ]
    for k, label in (
        ("plain", "1M samples, no columns"),
        ("meta", "1M samples, 5 columns + SQLite image"),
    ):
        o = s["open"][k]
        lines.append(f"| {label} | {_f(o['first_ms'], 3)} | {_f(o['later_ms'], 3)} |")
    lines += ["", "## Queries", "", "Queries (the same WHERE clause for pixpack and SQLite):", ""]
    for name, where in q.items():
        count = s["counts"][name][0]
        shown = where if len(where) < 90 else where[:80] + " ... )"
        lines.append(f"- **{name}**: `{shown}` -> {count:,} samples ({100 * count / n:.2f}%)")
    lines += ["", "Engines:", ""] + [f"- `{e}`: {t}" for e, t in ENGINES.items()]
    lines += [
        "",
        f"Milliseconds, page cache warm. *first*: the first query of a fresh process "
        f"(median of {a['runs']} processes; for pixpack it includes deserialising the pack's "
        f"SQLite image); *later*: median of the later queries in those processes "
        f"({a['repeats']} per process and query; {a['scan_repeats']} for SQLite, whose "
        "scans take seconds). "
        "Every engine returns the index array (`np.int64`).",
        "",
        "| query | " + " | ".join(f"{e} first | {e} later" for e in ENGINES) + " |",
        "|---|" + "---:|" * (2 * len(ENGINES)),
    ]
    for name in q:
        cells = []
        for e in ENGINES:
            x = s["engines"][e]
            cells += [_f(x["first_ms"][name]), _f(x["later_ms"][name])]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    px = s["engines"]["pixpack"]["later_ms"]
    lines += ["", "Later queries, times pixpack's:", "",
              "| query | " + " | ".join(e for e in ENGINES if e != "pixpack") + " |",
              "|---|" + "---:|" * (len(ENGINES) - 1)]  # fmt: skip
    for name in q:
        cells = [f"{s['engines'][e]['later_ms'][name] / px[name]:.2f}x" for e in ENGINES
                 if e != "pixpack"]  # fmt: skip
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Set-up before the first query (median): "
        + "; ".join(f"{e} {_f(s['engines'][e]['setup_ms'], 2)} ms" for e in ENGINES)
        + " (pixpack: `pixpack.open`; SQLite: `sqlite3.connect`; pandas: `pd.read_parquet`). "
        "Peak RSS growth over a process's queries: "
        + "; ".join(f"{e} {_f(s['engines'][e]['rss_growth_mb'], 0)} MB" for e in ENGINES)
        + ".",
        "",
    ]
    if "cold" in s:
        lines += [
            "### Cold page cache",
            "",
            f"`echo 3 > /proc/sys/vm/drop_caches` before each run (median of "
            f"{a['cold_runs']}); the set-up and the first query (**selective**).",
            "",
            "| engine | set-up (ms) | first query (ms) |",
            "|---|---:|---:|",
        ]
        for e, c in s["cold"].items():
            lines.append(f"| {e} | {_f(c['setup_ms'], 2)} | {_f(c['first_ms'])} |")
        lines += ["", f"Cold `pixpack.open` of the 1M pack with columns: "
                  f"{_f(s['cold_open_ms'], 2)} ms.", ""]  # fmt: skip
    plans = doc["query"]["warm"]["sqlite-blobs-indexed"][0].get("plans", {})
    if plans:
        lines += [
            "SQLite's plans with the indexes: "
            + "; ".join(f"{k}: `{' / '.join(v)}`" for k, v in plans.items())
            + ".",
            "",
        ]
    return lines


def _loader_section(doc: dict[str, Any], s: dict[str, Any]) -> list[str]:
    a, cfgs = doc["args"], doc["loader"]["configs"]
    lines = [
        "## Loader over a query's subset",
        "",
        "`pixpack.Loader(source, 64, pipeline=[RandomResizedCrop(224), RandomHorizontalFlip(), "
        "Normalize(ImageNet)], workers=2, shuffle=True, seed=0)` over `photos-meta.pixpack` "
        "(the 20,000 real photos of `data/ooc-20000`, raw, `max_side=256`, five metadata "
        "columns), `source` the pack or `pack.query(WHERE)`; page cache warm. Timed like "
        f"the main benchmark (`loaders/common.py` `time_loader`): one warm-up epoch, then "
        f"{a['passes']} windows of {a['window']:,} images from one loader streaming across "
        f"epochs; median window per round, median of {a['rounds']} interleaved rounds.",
        "",
        "| source | WHERE | samples | img/s (median) | per round | cores used per round "
        "| CPU us/image | subset / full img/s (median, per round) | subset / full per CPU |",
        "|---|---|---:|---:|---|---|---:|---|---:|",
    ]
    for name, where in cfgs.items():
        x = s["loader"][name]
        per = ", ".join(f"{r:,.0f}" for r in x["per_round"])
        cores = ", ".join(f"{c:.2f}" for c in x["cores"])
        ratio = cpu = ""
        if "ratio" in x:
            ratio = f"{x['ratio']:.2f} ({', '.join(f'{r:.2f}' for r in x['ratio_per_round'])})"
            cpu = f"{x['cpu_ratio']:.2f}"
        lines.append(f"| {name} | `{where or '(whole pack)'}` | {x['samples']:,} | "
                     f"{x['rate']:,.0f} | {per} | {cores} | {x['cpu_us']:.0f} | {ratio} | "
                     f"{cpu} |")  # fmt: skip
    lines += [
        "",
        "*Cores used*: CPU seconds of the process over wall seconds, median window of each "
        "round; a round near 1.0 ran while other work outside the benchmark lock held a "
        "core. *Per CPU*: the full pack's CPU microseconds per image over the subset's "
        "(medians over all windows), which other work on the VM does not move.",
    ]
    return [*lines, ""]
