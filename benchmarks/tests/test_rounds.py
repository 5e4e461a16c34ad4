"""The benchmark harness's arithmetic: merging rounds, per-round ratios, the primitive loop.

Run: python -m pytest benchmarks/tests -q
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.append(str(Path(__file__).resolve().parents[1]))

from ratios import Ratio, ratio_rows
from rounds import merge_rounds, read_rounds, round_stem

MEMORY = {"rss": 10, "anon": 5, "pss": 8, "pss_anon": 4, "processes": 1}


def _loader(config_id: str, rates: list[float], pss: int = 8, status: str = "ok") -> dict:
    record = {
        "id": config_id,
        "group": "load",
        "title": config_id,
        "status": status,
        "memory": {**MEMORY, "pss": pss},
        "load_avg_before": 1.0,
    }
    if status == "ok":
        record["result"] = {
            "rates": rates,
            "rate_median": float(np.median(rates)),
            "rate_min": min(rates),
            "rate_max": max(rates),
            "first_batch_s": 0.1,
            "setup_s": 0.01,
            "warmup_s": 1.0,
        }
    else:
        record["error"] = "boom"
    return record


def _pack(config_id: str, seconds: float, images: int = 100) -> dict:
    result = {"seconds": seconds, "images": images, "bytes": 1}
    return {"id": config_id, "status": "ok", "memory": MEMORY, "result": result}


def test_loader_rate_is_the_median_of_every_pass_of_every_round() -> None:
    merged = merge_rounds({1: _loader("a", [10, 11, 12]), 2: _loader("a", [20, 30, 40], pss=99)})
    x = merged["result"]
    assert x["rates"] == [10, 11, 12, 20, 30, 40]
    assert x["rate_median"] == 16.0  # not the median of the two rounds' medians (21.0)
    assert (x["rate_min"], x["rate_max"]) == (10, 40)
    assert merged["memory"]["pss"] == 99  # the highest peak of any round
    assert merged["rounds_ok"] == [1, 2]


def test_conversion_time_is_the_median_over_rounds() -> None:
    merged = merge_rounds({k: _pack("p", s) for k, s in ((1, 4.0), (2, 1.0), (3, 2.0))})
    assert merged["result"]["seconds"] == 2.0
    assert merged["result"]["seconds_all"] == [4.0, 1.0, 2.0]


def test_failed_rounds_are_listed_and_left_out() -> None:
    merged = merge_rounds({1: _loader("a", [5.0]), 2: _loader("a", [], status="failed")})
    assert merged["status"] == "ok"
    assert merged["result"]["rates"] == [5.0]
    assert merged["rounds_failed"] == [{"round": 2, "status": "failed", "error": "boom"}]
    none_ok = merge_rounds({1: _loader("a", [], status="failed")})
    assert none_ok["status"] == "failed" and none_ok["rounds_ok"] == []


def test_read_rounds_reads_round_files_and_legacy_results(tmp_path: Path) -> None:
    for k in (1, 2):
        (tmp_path / f"{round_stem('a', k)}.json").write_text(json.dumps(_loader("a", [k])))
    (tmp_path / "b.json").write_text(json.dumps(_loader("b", [7.0])))  # before rounds existed
    (tmp_path / "a.r1.cfg.json").write_text("{}")
    (tmp_path / "meta.json").write_text("{}")
    found = read_rounds(tmp_path)
    assert sorted(found) == ["a", "b"]
    assert sorted(found["a"]) == [1, 2] and list(found["b"]) == [1]


def test_ratios_pair_numerator_and_denominator_within_each_round() -> None:
    by_round = {
        1: {"n": _loader("n", [100.0]), "d": _loader("d", [50.0])},  # 2.0
        2: {"n": _loader("n", [300.0]), "d": _loader("d", [100.0])},  # 3.0
        3: {"n": _loader("n", [900.0]), "d": _loader("d", [], status="failed")},  # unpaired
        4: {"n": _loader("n", [400.0]), "d": _loader("d", [100.0])},  # 4.0
    }
    (row,) = ratio_rows(by_round, 2, [Ratio("r", "n", "d", "scaling", 0.9, per_core=True)])
    assert row["per_round"] == {1: 2.0, 2: 3.0, 4: 4.0}
    assert (row["value"], row["low"], row["high"]) == (3.0, 2.0, 4.0)
    assert row["target"] == pytest.approx(1.8) and row["met"] is True


def test_overhead_and_efficiency_formulas() -> None:
    prim = {"id": "p", "status": "ok", "memory": MEMORY, "result": {"cost_us": 500.0}}
    by_round = {
        1: {
            "p": prim,
            "l": _loader("l", [3000.0]),  # ideal 2 cores / 500 us = 4000 img/s
            "pack": _pack("pack", 1.0, 180),
            "pack1": _pack("pack1", 1.0, 100),
        }
    }
    defs = [
        Ratio("o", "p", "l", "overhead", 1.3, at_most=True),
        Ratio("e", "pack", "pack1", "efficiency", 0.85),
    ]
    overhead, efficiency = ratio_rows(by_round, 2, defs)
    assert overhead["value"] == pytest.approx(4000 / 3000)
    assert overhead["met"] is False  # 1.33 > 1.3
    assert efficiency["value"] == pytest.approx(0.9) and efficiency["met"] is True


def _open(config_id: str, times: list[float]) -> dict:
    result = {
        "open_ms": float(np.median(times)), "open_ms_min": min(times),
        "open_ms_max": max(times), "open_ms_all": times, "samples": 10, "bytes": 1,
        "build_s": 0.0,
    }  # fmt: skip
    return {"id": config_id, "group": "open", "status": "ok", "memory": MEMORY, "result": result}


def test_open_times_merge_over_every_open_and_give_time_and_ratio_rows() -> None:
    merged = merge_rounds({1: _open("big", [0.1, 0.2, 0.9]), 2: _open("big", [0.3, 0.4])})
    x = merged["result"]
    assert x["open_ms"] == 0.3 and (x["open_ms_min"], x["open_ms_max"]) == (0.1, 0.9)
    by_round = {
        1: {"big": _open("big", [0.2]), "small": _open("small", [0.1])},
        2: {"big": _open("big", [60.0]), "small": _open("small", [20.0])},
        3: {"big": _open("big", [0.4]), "small": _open("small", [0.2])},
    }
    defs = [
        Ratio("t", "big", None, "ms", 50.0, at_most=True),
        Ratio("r", "big", "small", "open", 1.5, at_most=True),
    ]
    time_row, ratio_row = ratio_rows(by_round, 2, defs)
    assert time_row["per_round"] == {1: 0.2, 2: 60.0, 3: 0.4} and time_row["value"] == 0.4
    assert time_row["met"] is True  # the median round, not the slowest, is compared
    assert ratio_row["per_round"] == {1: 2.0, 2: 3.0, 3: 2.0} and ratio_row["met"] is False


def test_primitive_loop_writes_exactly_the_loaders_batch(tmp_path: Path) -> None:
    """Same samples, same random parameters, same kernels: the floor is the loader's work."""
    from loaders.common import BATCH, CROP, MEAN, STD
    from loaders.primitives_bench import STAGES, PrimitiveLoop

    from pixpack import sample_data
    from pixpack.loader import Loader
    from pixpack.ops import Normalize, RandomHorizontalFlip, RandomResizedCrop
    from pixpack.write.packer import pack

    folder = sample_data.make_image_folder(tmp_path / "src", num_classes=2, per_class=6, seed=3)
    for mode in ("jpeg", "raw"):
        path = tmp_path / f"{mode}.pixpack"
        pack(folder, path, mode=mode, max_side=256, workers=1, quiet=True)
        loop = PrimitiveLoop(str(path))
        n, seconds, stages = loop.run(epoch=2)
        assert n == 12 <= BATCH and seconds > 0
        assert stages.shape == (len(STAGES),) and (stages[STAGES.index("read")] > 0)
        assert (stages[STAGES.index("decode")] > 0) == (mode == "jpeg")
        pipeline = [RandomResizedCrop(CROP), RandomHorizontalFlip(), Normalize(MEAN, STD)]
        with Loader(path, BATCH, pipeline=pipeline, workers=1, shuffle=True, seed=0) as loader:
            loader.set_epoch(2)
            images, _ = next(iter(loader))
            np.testing.assert_array_equal(loop.work[:n], images.numpy())
