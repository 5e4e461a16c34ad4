"""The ratios the project tracks, each taken within one round and reported over rounds.

A ratio's numerator and denominator always come from the same round (run minutes
apart at most), so slow drift of a shared machine cancels; the report gives the
median over the rounds where both succeeded, the lowest and highest round, and how
many rounds that is. Kinds:

  rate        loader img/s / loader img/s
  pack        packing img/s / packing img/s
  efficiency  packing img/s with N workers / (N x packing img/s of the 1-worker row)
  scaling     loader img/s with N workers / loader img/s of a 1-worker row
  ceiling     the machine ceiling row's own N-process / 1-process ratio
  overhead    (N / per-image primitive cost) / loader img/s with N workers; 1.0 means
              the loader is as fast as the bare primitives perfectly spread over N cores
  overhead1   (1 / per-image primitive cost) / loader img/s of a 1-worker row
  of_ceiling  loader img/s with N workers / the ceiling's N-process img/s
  open        median ms to open one file / median ms to open another
  ms          a median time in ms itself (no denominator), for an absolute target

``per_core`` targets are multiplied by N (0.9 per core: 1.8x on 2 cores);
``at_most`` targets are met at or below the value.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import median
from typing import Any

__all__ = ["RATIOS", "Ratio", "ratio_rows"]


@dataclass(frozen=True)
class Ratio:
    name: str
    num: str
    den: str | None
    kind: str
    target: float | None = None
    section: str = "peers"
    per_core: bool = False
    at_most: bool = False


def _peer(name: str, num: str, den: str, target: float | None, kind: str = "rate") -> Ratio:
    return Ratio(name, num, den, kind, target, "pack" if kind == "pack" else "peers")


RATIOS = [
    _peer("pixpack raw@256 / FFCV raw@256 (img/s)", "pixpack-loader-raw256", "ffcv-raw256", 1.5),
    _peer(
        "pixpack jpeg@256 / FFCV jpeg@256 (img/s)", "pixpack-loader-jpeg256", "ffcv-jpeg256", 1.4
    ),
    _peer("pixpack jpeg / FFCV jpeg, source size (img/s)", "pixpack-loader-jpeg", "ffcv-jpeg", 1.5),
    _peer(
        "pixpack jpeg / FFCV jpeg, large photos (img/s)",
        "large-pixpack-loader-jpeg",
        "large-ffcv-jpeg",
        1.5,
    ),
    _peer(
        "pixpack raw@256 / torchvision v1 (img/s)", "pixpack-loader-raw256", "torchvision-v1", 13.0
    ),
    _peer(
        "pixpack jpeg@256 / torchvision v1 (img/s)",
        "pixpack-loader-jpeg256",
        "torchvision-v1",
        None,
    ),
    _peer(
        "pixpack jpeg / torchvision v1, source size (img/s)",
        "pixpack-loader-jpeg",
        "torchvision-v1",
        None,
    ),
    _peer("pixpack jpeg@256 / DALI CPU (img/s)", "pixpack-loader-jpeg256", "dali-cpu", None),
    # -- packing (issue 2) ---------------------------------------------------------------
    _peer(
        "pixpack pack jpeg@256 / FFCV writer jpeg@256 (img/s)",
        "pixpack-pack-jpeg256",
        "ffcv-write-jpeg256",
        2.0,
        "pack",
    ),
    _peer(
        "pixpack pack raw@256 / FFCV writer raw@256 (img/s)",
        "pixpack-pack-raw256",
        "ffcv-write-raw256",
        2.0,
        "pack",
    ),
    _peer(
        "pixpack pack jpeg / FFCV writer jpeg, source size (img/s)",
        "pixpack-pack-jpeg-auto",
        "ffcv-write-jpeg",
        2.0,
        "pack",
    ),
    _peer(
        "pixpack pack jpeg --reencode always / FFCV writer jpeg, source size (img/s)",
        "pixpack-pack-jpeg",
        "ffcv-write-jpeg",
        None,
        "pack",
    ),
]
for _name, _label in (("jpeg256", "jpeg@256"), ("raw256", "raw@256")):
    RATIOS += [
        Ratio(
            f"packing parallel efficiency {_label}: N workers / (N x 1 worker, unpinned)",
            f"pixpack-pack-{_name}",
            f"pixpack-pack-{_name}-w1",
            "efficiency",
            0.85,
            "pack",
        ),
        Ratio(
            f"packing parallel efficiency {_label}: N workers on N cores / "
            "(N x 1 worker pinned to one core)",
            f"pixpack-pack-{_name}",
            f"pixpack-pack-{_name}-w1pin",
            "efficiency",
            0.85,
            "pack",
        ),
    ]
# -- loader scaling and overhead (issue 3) -----------------------------------------------
for _name, _label in (("jpeg256", "jpeg@256"), ("raw256", "raw@256")):
    loader, prim = f"pixpack-loader-{_name}", f"primitives-{_name}"
    RATIOS += [
        Ratio(
            f"{_label} threads scaling: Loader N workers / 1 worker (unpinned)",
            loader,
            f"scaling-{loader}-w1",
            "scaling",
            0.9,
            "scaling",
            per_core=True,
        ),
        Ratio(
            f"{_label} core scaling: Loader N workers on N cores / 1 worker pinned to one core",
            loader,
            f"scaling-{loader}-w1pin",
            "scaling",
            0.9,
            "scaling",
            per_core=True,
        ),
        Ratio(
            f"{_label} machine ceiling: primitives in N processes / in 1 process",
            f"ceiling-{_name}",
            None,
            "ceiling",
            section="scaling",
        ),
        Ratio(
            f"{_label} Loader N workers / machine ceiling (N processes of primitives)",
            loader,
            f"ceiling-{_name}",
            "of_ceiling",
            section="scaling",
        ),
        Ratio(
            f"{_label} pipeline overhead: (N / primitive cost) / Loader N workers",
            prim,
            loader,
            "overhead",
            1.3,
            "scaling",
            at_most=True,
        ),
        Ratio(
            f"{_label} pipeline overhead, one core: (1 / primitive cost) / Loader 1 worker pinned",
            prim,
            f"scaling-{loader}-w1pin",
            "overhead1",
            section="scaling",
        ),
    ]
RATIOS.append(
    Ratio(
        "jpeg (source size) pipeline overhead: (N / primitive cost) / Loader N workers",
        "primitives-jpeg",
        "pixpack-loader-jpeg",
        "overhead",
        1.3,
        "scaling",
        at_most=True,
    )
)
# -- opening a pack (issue 2) --------------------------------------------------------------
RATIOS += [
    Ratio(
        "pixpack.open of 1,000,000 samples (ms; a time, not a ratio)",
        "open-pixpack-1m",
        None,
        "ms",
        50.0,
        "open",
        at_most=True,
    ),
    Ratio(
        "pixpack.open: 1,000,000 samples / 1,000 samples (ms)",
        "open-pixpack-1m",
        "open-pixpack-1k",
        "open",
        1.5,
        "open",
        at_most=True,
    ),
    Ratio(
        "FFCV Reader / pixpack.open, 1,000,000 samples (ms)",
        "open-ffcv-1m",
        "open-pixpack-1m",
        "open",
        section="open",
    ),
    Ratio(
        "FFCV Reader: 1,000,000 samples / 1,000 samples (ms)",
        "open-ffcv-1m",
        "open-ffcv-1k",
        "open",
        section="open",
    ),
]


def _pack_rate(result: dict[str, Any]) -> float:
    return (result.get("images") or 0) / result["seconds"] if result.get("seconds") else 0.0


def _value(kind: str, a: dict[str, Any], b: dict[str, Any] | None, n: int) -> float | None:
    """One round's value of a ratio from the two results (``b`` None for "ceiling")."""
    if kind == "ceiling":
        return a.get("ceiling_ratio")
    if kind == "ms":
        return a.get("open_ms")
    assert b is not None
    if kind in ("rate", "scaling"):
        return a["rate_median"] / b["rate_median"] if b.get("rate_median") else None
    if kind == "of_ceiling":
        return a["rate_median"] / b["rate_n"] if b.get("rate_n") else None
    if kind in ("pack", "efficiency"):
        den = _pack_rate(b) * (n if kind == "efficiency" else 1)
        return _pack_rate(a) / den if den else None
    if kind == "open":
        return a["open_ms"] / b["open_ms"] if b.get("open_ms") else None
    if kind in ("overhead", "overhead1"):  # a: primitives, b: the loader
        cores = n if kind == "overhead" else 1
        return cores * 1e6 / a["cost_us"] / b["rate_median"] if b.get("rate_median") else None
    raise ValueError(f"unknown ratio kind {kind!r}")


def ratio_rows(
    by_round: dict[int, dict[str, dict[str, Any]]], workers: int, defs: list[Ratio] | None = None
) -> list[dict[str, Any]]:
    """Every ratio: median over rounds, the per-round range and values, target, met."""
    out = []
    for r in RATIOS if defs is None else defs:
        values = {}
        for k, records in sorted(by_round.items()):
            a = records.get(r.num)
            b = records.get(r.den) if r.den else None
            if not _ok(a) or (r.den and not _ok(b)):
                continue
            value = _value(r.kind, a["result"], b["result"] if b else None, workers)
            if value is not None:
                values[k] = value
        target = None if r.target is None else r.target * (workers if r.per_core else 1)
        mid = median(values.values()) if values else None
        met = None
        if mid is not None and target is not None:
            met = mid <= target if r.at_most else mid >= target
        out.append(
            {
                "name": r.name,
                "section": r.section,
                "kind": r.kind,
                "numerator": r.num,
                "denominator": r.den,
                "value": mid,
                "low": min(values.values()) if values else None,
                "high": max(values.values()) if values else None,
                "per_round": values,
                "target": target,
                "at_most": r.at_most,
                "met": met,
            }
        )
    return out


def _ok(record: dict[str, Any] | None) -> bool:
    return bool(record) and record.get("status") == "ok"  # type: ignore[union-attr]
