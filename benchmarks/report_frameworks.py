"""Markdown report of ``frameworks.py`` (its JSON document in, text out)."""

from __future__ import annotations

from pathlib import Path
from statistics import median
from typing import Any

__all__ = ["render", "row_summary"]

WHAT = {
    "pixpack-torch": "`pixpack.Loader`, torch float32 NCHW (the reference)",
    "pixpack-numpy": '`pixpack.Loader(output="numpy", layout="NHWC")`',
    "pixpack-tf": '`pixpack.tf.dataset(pack, 64, layout="NHWC")`, eager iteration',
    "pixpack-jax": "`pixpack.jax.loader(pack, 64, sharding=None)`, `block_until_ready()`",
    "keras-crop": "Keras `image_dataset_from_directory` (256x256) + `RandomCrop(224)`, "
    "`RandomFlip`, `Rescaling`, `Normalization` mapped on batches, AUTOTUNE",
    "keras-zoom": "Keras `image_dataset_from_directory` (224x224) + `RandomZoom((-0.5, 0))`, "
    "`RandomFlip`, `Rescaling`, `Normalization` mapped on batches, AUTOTUNE",
    "tfdata": "`tf.data`: `read_file`, `sample_distorted_bounding_box` + `decode_and_crop_jpeg`, "
    "`resize(antialias=True)`, `random_flip_left_right`, normalise; AUTOTUNE",
    "tfdata-noaa": "the same `tf.data` pipeline, `resize(antialias=False)` (TF's default)",
    "tfdata-256": "the same `tf.data` pipeline on the pack's own JPEGs (`pixpack.export`: "
    "256 px, q90)",
    "grain-threads": "Grain `MapDataset` + OpenCV decode/crop/resize/flip, "
    "`ReadOptions(num_threads=2)`, NumPy batches",
    "grain-processes": "the same, `mp_prefetch(MultiprocessingOptions(num_workers=2))`",
    "grain-jax": "Grain (mode in the JSON) + `jax.device_put` + `block_until_ready()`",
}

NOTES = ""


def _f(v: Any, fmt: str = "{:,.0f}", none: str = "-") -> str:
    return none if v is None else fmt.format(v)


def _med(values: list[float]) -> float | None:
    vals = [v for v in values if v is not None]
    return float(median(vals)) if vals else None


def row_summary(doc: dict[str, Any], name: str) -> dict[str, Any]:
    """Medians over rounds of one row (rate: median of the rounds' medians)."""
    runs = [r.get(name) for r in doc["rounds"]]
    ok = [r for r in runs if r and r.get("status") == "ok"]
    if not ok:
        bad = next((r for r in runs if r), {})
        return {"status": bad.get("status", "not run"), "error": bad.get("error")}
    res = [r["result"] for r in ok]
    return {
        "status": "ok",
        "rounds": len(ok),
        "rate": _med([x["rate_median"] for x in res]),
        "rates": [x["rate_median"] for x in res],
        "cores": _med([c for x in res for c in x["cores"]]),
        "other": _med([c for x in res for c in x.get("other_cores", [])]),
        "cpu_us": _med([c for x in res for c in x["cpu_us_per_image"]]),
        "import_s": _med([x.get("import_s") for x in res]),
        "first_batch_s": _med([x.get("first_batch_s") for x in res]),
        "to_first_s": _med([x.get("process_to_first_batch_s") for x in res]),
        "pss": max(r["peaks"]["pss"] for r in ok),
        "tries": sum(len(r.get("attempts", [1])) for r in ok),
        "output": res[0].get("output"),
        "kept": [x.get("kept_batch_intact") for x in res],
        "batch_type": res[0].get("batch_type"),
    }


def render(doc: dict[str, Any]) -> str:
    m, v = doc["machine"], doc["versions"]
    n_rounds = len(doc["rounds"])
    lines = [
        f"# pixpack into TensorFlow and JAX vs Keras, tf.data and Grain ({n_rounds} rounds)",
        "",
        f"- Machine: {m['cpu']}, {m['cores_usable']} usable cores, {m['ram_gb']} GiB RAM, "
        f"{m['os']}, Python {m['python']}; load average at start {m['load_avg_at_start']}.",
        "- Versions: "
        + ", ".join(f"{k} {val}" for k, val in sorted(v.items()))
        + f"; pixpack git {doc['git']}.",
        f"- Command: `{doc['command']}`.",
        f"- Data: {doc['images']:,} real-photo crops (~500x375 JPEG q75-95, 10 classes, "
        f"`{Path(doc['data']['folder']).name}`); pixpack reads them packed once "
        f'(`mode="jpeg"`, `max_side=256`, quality 90: {doc["pack_bytes"] / 1e6:.1f} MB). '
        "Page cache warm for every row.",
        "- Work, every row: random resized crop to 224x224, horizontal flip, float32 "
        "normalised with the ImageNet mean/std, batches of 64 (NHWC outside torch), "
        "2 workers/threads/AUTOTUNE on 2 cores.",
        f"- Per run: a fresh process; one warm-up epoch, then {doc['args']['passes']} "
        "timed windows of two epochs' images from one long-lived loader; img/s is the "
        "run's median window, and the table's figure the median over rounds (each "
        "round's in the next column). Import time and time to the first batch are apart "
        "from it. *other*: "
        "cores the rest of the machine used during the windows; a run where it exceeded "
        f"{doc['args']['max_other']} was rerun (up to {doc['args']['retries']} times, "
        "the quietest attempt counts).",
        "",
        "## Results",
        "",
        "| row | what | img/s | per round | cores used | other | CPU µs/img | import s "
        "| first batch s (set-up + 1st) | process start to 1st batch s | peak PSS MiB | runs |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, what in WHAT.items():
        s = row_summary(doc, name)
        if s["status"] != "ok":
            if any(name in r for r in doc["rounds"]):
                lines.append(f"| {name} | {what} | not run: {s.get('error') or s['status']} "
                             "| | | | | | | | | |")  # fmt: skip
            continue
        lines.append(
            f"| {name} | {what} | **{_f(s['rate'])}** | "
            + ", ".join(_f(x) for x in s["rates"])
            + f" | {_f(s['cores'], '{:.2f}')} | {_f(s['other'], '{:.2f}')} "
            f"| {_f(s['cpu_us'])} | {_f(s['import_s'], '{:.1f}')} "
            f"| {_f(s['first_batch_s'], '{:.2f}')} | {_f(s['to_first_s'], '{:.1f}')} "
            f"| {_f(s['pss'] / 2**20)} | {s['tries']} |"
        )
    lines += [
        "",
        "## Ratios (per round, then the median)",
        "",
        "| ratio | median | per round | target | met |",
        "|---|---:|---|---:|:---:|",
    ]
    for label, r in doc["ratios"].items():
        med, target = r["median"], r["target"]
        met = "" if med is None or target is None else ("yes" if med >= target else "**no**")
        lines.append(
            f"| {label} | {_f(med, '**{:.2f}x**', 'pending')} | "
            + ", ".join(_f(p, "{:.2f}") for p in r["per_round"])
            + f" | {_f(target, '>= {:.1f}', '')} | {met} |"
        )
    lines += ["", "## Output of each row (first batch)", "",
              "| row | dtype | shape | mean | std | kept batch intact |",
              "|---|---|---|---:|---:|---|"]  # fmt: skip
    for name in WHAT:
        s = row_summary(doc, name)
        if s["status"] == "ok" and s["output"]:
            o = s["output"]
            kept = "" if all(k is None for k in s["kept"]) else ", ".join(map(str, s["kept"]))
            lines.append(f"| {name} | {o['dtype']} | {o['shape']} | {o['mean']} | {o['std']} "
                         f"| {kept} |")  # fmt: skip
    if NOTES:
        lines += ["", NOTES.rstrip()]
    return "\n".join(lines) + "\n"
