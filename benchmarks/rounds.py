"""Results per round on disk, and one record per configuration merged over the rounds.

run.py stores configuration ``id``'s result of round ``k`` as ``<id>.r<k>.json``
(older runs stored one ``<id>.json``; it reads as round 1). A merged record keeps
the shape of a single result, so the tables read both the same way:

- loaders: ``rate_median`` is the median of *every* timed pass of every round that
  succeeded, ``rate_min``/``rate_max`` the extremes over all of them; first-batch,
  set-up and warm-up times are medians over rounds;
- conversions: ``seconds`` is the median over rounds (``seconds_all`` lists them);
- primitives: each stage's median over every pass of every round, then their sum;
- the machine ceiling: the medians of all its 1-process and N-process passes, and
  ``ceiling_ratio`` as the median of the per-round ratios;
- opening a pack: ``open_ms`` is the median of every timed open of every round,
  ``open_ms_min``/``open_ms_max`` the extremes;
- memory: the highest peak of any round (a peak is a maximum);
- ``load_avg_before``: the highest over rounds (``load_avgs`` lists them).

Ratios are not computed from merged records but per round (ratios.py).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from statistics import median
from typing import Any

from loaders.primitives_bench import summarize_stages  # benchmarks/ is on sys.path

__all__ = ["merge_rounds", "read_rounds", "round_stem"]

_ROUND_FILE = re.compile(r"^(?P<id>.+)\.r(?P<round>[0-9]+)\.json$")


def round_stem(config_id: str, round_no: int) -> str:
    """File stem of a configuration's result in one round: ``<id>.r<k>``."""
    return f"{config_id}.r{round_no}"


def read_rounds(run_dir: Path) -> dict[str, dict[int, dict[str, Any]]]:
    """``{config id: {round: record}}`` of every result file in ``run_dir``."""
    out: dict[str, dict[int, dict[str, Any]]] = {}
    legacy: list[dict[str, Any]] = []
    for path in sorted(run_dir.glob("*.json")):
        name = path.name
        if name == "meta.json" or name.endswith((".cfg.json", ".out.json")):
            continue
        record = json.loads(path.read_text())
        match = _ROUND_FILE.match(name)
        if match:
            out.setdefault(record["id"], {})[int(match["round"])] = record
        else:
            legacy.append(record)
    for record in legacy:  # a run from before rounds: its only round
        out.setdefault(record["id"], {}).setdefault(1, record)
    return out


def merge_rounds(rounds: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """One record for a configuration, from its records per round (see module doc)."""
    ok = {k: r for k, r in sorted(rounds.items()) if r.get("status") == "ok"}
    failed = {k: r for k, r in sorted(rounds.items()) if r.get("status") != "ok"}
    last = rounds[max(rounds)]
    if not ok:
        return {**last, "rounds_ok": [], "rounds_failed": _failures(failed)}
    records = list(ok.values())
    merged = dict(records[-1])
    merged["rounds_ok"] = list(ok)
    merged["rounds_failed"] = _failures(failed)
    merged["result"] = _merge_results([r["result"] for r in records])
    merged["memory"] = {
        key: max(r["memory"].get(key, 0) for r in records) for key in records[-1]["memory"]
    }
    loads = [r["load_avg_before"] for r in records if "load_avg_before" in r]
    if loads:
        merged["load_avg_before"] = max(loads)
        merged["load_avgs"] = loads
    for key in ("wall_s", "cpu_s"):
        values = [r[key] for r in records if key in r]
        if values:
            merged[key] = median(values)
    return merged


def _failures(failed: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"round": k, "status": r.get("status"), "error": r.get("error")} for k, r in failed.items()
    ]


def _merge_results(results: list[dict[str, Any]]) -> dict[str, Any]:
    out = dict(results[-1])
    if len(results) == 1:
        return out
    if "stage_us" in out:  # primitives: per-pass stage times of every round
        out["stage_us"] = [p for r in results for p in r["stage_us"]]
        out.update(summarize_stages(out["stage_us"]))
    if "rates_1" in out:  # the machine ceiling
        out["rates_1"] = [x for r in results for x in r["rates_1"]]
        out["rates_n"] = [x for r in results for x in r["rates_n"]]
        out["rate_1"], out["rate_n"] = median(out["rates_1"]), median(out["rates_n"])
        out["ceiling_ratio"] = median(r["ceiling_ratio"] for r in results)
    if "rates" in out:  # every timed pass of every round
        rates = [x for r in results for x in r["rates"]]
        out.update(rates=rates, rate_median=median(rates), rate_min=min(rates), rate_max=max(rates))
    elif "rates_n" in out:
        out.update(
            rate_median=out["rate_n"], rate_min=min(out["rates_n"]), rate_max=max(out["rates_n"])
        )
    for key in ("first_batch_s", "setup_s", "warmup_s"):
        values = [r[key] for r in results if r.get(key) is not None]
        if values:
            out[key] = median(values)
    if "open_ms_all" in out:  # every timed open of every round
        times = [x for r in results for x in r["open_ms_all"]]
        out.update(
            open_ms_all=times, open_ms=median(times), open_ms_min=min(times),
            open_ms_max=max(times),
            build_s=max(r["build_s"] for r in results),  # the round that wrote the file
        )  # fmt: skip
    if "seconds" in out and "rates" not in out:  # a conversion
        out["seconds_all"] = [r["seconds"] for r in results]
        out["seconds"] = median(out["seconds_all"])
    return out
