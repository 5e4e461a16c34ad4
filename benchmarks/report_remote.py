"""Summary and Markdown report of ``remote_read.py`` (from the JSON document it writes)."""

from __future__ import annotations

from statistics import median
from typing import Any

WHAT = {
    "pixpack-local": "pixpack Loader, sharded pack on local disk (page cache dropped)",
    "pixpack-s3": "pixpack Loader from S3, bounded cache, full shuffle (default)",
    "pixpack-s3-window2": "pixpack Loader from S3, bounded cache, `shard_window=2`",
    "streaming-s3": "MosaicML Streaming `StreamingDataset(remote=s3, cache_limit)`, default",
    "streaming-s3-block250": "Streaming, `shuffle_block_size=250` (2 shards)",
    "litdata-s3": "LitData `StreamingDataset(s3, max_cache_size)`",
}


def _med(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return median(vals) if vals else None


def metrics(out: dict[str, Any]) -> dict[str, Any]:
    res = out.get("result") if out.get("status") == "ok" else None
    if not res:
        return {}
    rates = [n / s for n, s in zip(res["epoch_images"], res["epoch_s"], strict=True)]
    m: dict[str, Any] = {f"epoch{i + 1}_rate": r for i, r in enumerate(rates)}
    return m | {
        "setup_s": res["setup_s"],
        "images": res["epoch_images"][0],
        "sent_mb": out["server_sent_bytes"] / 1e6,
        "gets": out["server_gets"],
        "peak_cache_mb": out["peak_cache_bytes"] / 1e6,
        "server_cpu_s": out["server_cpu_s"],
        "wall_s": out["wall_s"],
    }


def summarize(doc: dict[str, Any]) -> dict[str, Any]:
    """Per row: the median over rounds of each metric, the statuses and the first error;
    and the ratios, each the median of its per-round values."""
    rows: dict[str, Any] = {}
    for cfg in doc["configs"]:
        runs = [r.get(cfg["name"], {}) for r in doc["rounds"]]
        ms = [metrics(o) for o in runs]
        keys = next((m for m in ms if m), {})
        rows[cfg["name"]] = {
            "status": [o.get("status") for o in runs],
            "error": next((o.get("error") for o in runs if o.get("error")), None),
            "median": {k: _med([m.get(k) for m in ms]) for k in keys},
            "per_round": ms,
        }
    ratios: dict[str, float | None] = {}
    pairs = [
        ("pixpack-s3", "pixpack-local"),
        ("pixpack-s3-window2", "pixpack-local"),
        ("pixpack-s3", "streaming-s3"),
        ("pixpack-s3-window2", "streaming-s3-block250"),
        ("pixpack-s3-window2", "litdata-s3"),
        ("streaming-s3-block250", "pixpack-local"),
        ("litdata-s3", "pixpack-local"),
    ]
    for a, b in pairs:
        for ep in ("epoch1_rate", "epoch2_rate"):
            per = [metrics(r.get(a, {})).get(ep) for r in doc["rounds"]]
            den = [metrics(r.get(b, {})).get(ep) for r in doc["rounds"]]
            vals = [x / y for x, y in zip(per, den, strict=True) if x and y]
            ratios[f"{a} / {b} ({ep.split('_')[0]})"] = median(vals) if vals else None
    return {"rows": rows, "ratios": ratios}


def _f(v: float | None, fmt: str = "{:.0f}") -> str:
    return "—" if v is None else fmt.format(v)


def render(doc: dict[str, Any]) -> str:
    s, sizes, v = doc["summary"], doc["sizes"], doc["versions"]
    lim = doc["cache_limit"] / 1e6
    lines = [
        "# Remote read: pixpack from S3 (moto) vs local disk, MosaicML Streaming, LitData",
        "",
        f"`{doc['command']}` at pixpack `{doc['git']}`; {doc['machine']['cpu']}, "
        f"{doc['machine']['cores_usable']} cores, {doc['machine']['ram_gb']} GB RAM, "
        f"{doc['machine']['os']}, Python {doc['machine']['python']}.",
        "",
        "Versions: " + ", ".join(f"{k} {x}" for k, x in sorted(v.items()) if x) + ".",
        "",
        f'Data: 2,000 photos (`photos-2000`) packed `mode="jpeg", max_side=256`, '
        f"{doc['samples_per_shard']} samples per shard: pack {sizes['pack'] / 1e6:.1f} MB in "
        f"{sizes['shards']['pack']} shards; MDS {sizes['mds'] / 1e6:.1f} MB in "
        f"{sizes['shards']['mds']} shards; LitData {sizes['litdata'] / 1e6:.1f} MB in "
        f"{sizes['shards']['litdata']} chunks (the same JPEG bytes in all three). Cache limit "
        f"{lim:.1f} MB (a third of the pack) for every S3 row. Median of "
        f"{len(doc['rounds'])} interleaved rounds; each row a fresh process, its cache "
        "emptied and the page cache dropped first.",
        "",
        "| row | epoch 1 img/s (cold cache) | epoch 2 img/s | set-up s | sent by server MB "
        "| GETs | peak cache MB (limit) | server CPU s | status |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, row in s["rows"].items():
        m = row["median"]
        local = name == "pixpack-local"
        lines.append(
            f"| {name}: {WHAT.get(name, '')} | {_f(m.get('epoch1_rate'))} | "
            f"{_f(m.get('epoch2_rate'))} | {_f(m.get('setup_s'), '{:.2f}')} | "
            f"{'—' if local else _f(m.get('sent_mb'), '{:.1f}')} | "
            f"{'—' if local else _f(m.get('gets'))} | "
            f"{'—' if local else _f(m.get('peak_cache_mb'), '{:.1f}') + f' ({lim:.1f})'} | "
            f"{_f(m.get('server_cpu_s'), '{:.1f}')} | {', '.join(map(str, row['status']))} |"
        )
    lines += ["", "Ratios (median of per-round ratios):", ""]
    lines += [f"- {k}: {_f(x, '{:.2f}')}" for k, x in s["ratios"].items()]
    errors = [(n, r["error"]) for n, r in s["rows"].items() if r["error"]]
    if errors:
        lines += ["", "Errors:", ""] + [f"- {n}: `{e}`" for n, e in errors]
    lines += ["", "Per round (epoch 1 / epoch 2 img/s):", ""]
    for name, row in s["rows"].items():
        per = " · ".join(
            f"{_f(m.get('epoch1_rate'))} / {_f(m.get('epoch2_rate'))}" if m else "—"
            for m in row["per_round"]
        )
        lines.append(f"- {name}: {per}")
    lines += ["", doc.get("notes", NOTES)]
    return "\n".join(lines) + "\n"


NOTES = """## What the numbers mean

- **One server, same cores.** A single `moto_server` process (moto's Flask/werkzeug
  server, threaded, objects in memory) serves every S3 row on the same 2 cores as the
  reader, so every byte a reader downloads also costs server CPU (the "server CPU s"
  column: its user+system time during the row, from `/proc`). The S3 rows therefore
  measure a reader plus a slow, CPU-hungry server sharing two cores: a lower bound
  for all of them, and unfavourable to whichever downloads most.
- **Bytes sent**: the bytes of every response body, counted by a WSGI wrapper around
  moto's app (`remote_read.py --serve`, otherwise what `moto_server` runs), during the
  row; "GETs" counts GET requests (manifest, index and range reads included).
- **Peak cache**: the largest size of the row's cache directory, sampled every 50 ms
  from outside (short peaks between samples can be missed).
- **Epoch timing**: from asking for an epoch's first batch to its last batch; set-up
  (opening, building the loader; remote: reading the manifest/index) is separate.
  Epoch 1 starts with an empty cache, epoch 2 with what the cache kept.
- **Shard sizes**: 125 samples (~2.1 MB) per shard, MDS shard and LitData chunk, not
  250: Streaming refuses a `cache_limit` under four times its largest shard, and a
  third of the data must stay above that.
- **Transforms**: pixpack's own ops in its Loader (2 threads); Streaming: torchvision
  v1 on PIL in 2 DataLoader workers (as `loaders/streaming_bench.py`); LitData decodes
  to a uint8 tensor itself, then torchvision v2 (as `loaders/litdata_bench.py`).
- **LitData and obstore**: LitData 0.2.76 sends chunk GETs through obstore when it is
  installed, and obstore refuses the `http://` endpoint (`reqwest` `BadScheme`; the
  `AWS_ALLOW_HTTP=true` environment variable is not read by the store LitData builds).
  The row switches obstore off (`litdata.streaming.downloader._OBSTORE_AVAILABLE =
  False`, inherited by the forked workers), so LitData downloads with boto3, which
  takes the endpoint from `storage_options`.
"""
