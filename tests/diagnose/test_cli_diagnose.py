"""`pixpack bench` / `pixpack doctor`: exit codes, text reports, stable JSON keys."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pixpack.cli.main import main

BENCH_KEYS = {
    "pack", "pipeline", "batch_size", "workers", "device", "batches", "images",
    "warmup_batches", "seconds", "total_seconds", "images_per_second",
    "batches_per_second", "mb_per_second", "latency_p50", "latency_p99",
    "time_to_first_batch",
}
DOCTOR_KEYS = {
    "pack", "pipeline", "samples", "cores", "workers", "batch_size", "device", "stages",
    "end_to_end", "bound_images_per_second", "bottleneck", "bottleneck_kind", "overhead",
    "verdict", "page_cache", "step", "advice", "notes", "frameworks",
}
STAGE_KEYS = {
    "name", "kind", "samples", "ms_per_image", "images_per_second_1_thread",
    "images_per_second_parallel", "parallel", "mb_per_second", "note", "share",
}


def test_bench_json(small_pack: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["bench", str(small_pack), "--batches", "3", "--batch-size", "8", "--json"])
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data) == BENCH_KEYS
    assert data["batches"] == 3 and data["images"] == 24 and data["images_per_second"] > 0


def test_bench_text(small_pack: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["bench", str(small_pack), "--pipeline", "eval", "--seconds", "0.2",
                 "--batch-size", "8", "--workers", "1"])
    assert code == 0
    out = capsys.readouterr().out
    for label in ("throughput:", "latency:", "first batch:", "Resize(256) > CenterCrop(224)"):
        assert label in out


def test_doctor_json(small_pack: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["doctor", str(small_pack), "--samples", "8", "--seconds", "0.2",
                 "--batch-size", "8", "--step-time", "0.5", "--json"])
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data) == DOCTOR_KEYS
    assert all(set(stage) == STAGE_KEYS for stage in data["stages"])
    assert set(data["end_to_end"]) == BENCH_KEYS
    assert data["bottleneck"] and data["verdict"]
    assert data["step"]["step_time"] == 0.5
    assert set(data["frameworks"]) == {"torch", "tensorflow", "jax"}  # information only
    assert data["frameworks"]["torch"]  # the test extra installs torch
    assert set(data["page_cache"]) >= {"pack_bytes", "ram_total", "ram_available", "fits",
                                       "drop_effective"}


def test_doctor_text(small_pack: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["doctor", str(small_pack), "--samples", "8", "--seconds", "0.2",
                 "--batch-size", "8"])
    assert code == 0
    out = capsys.readouterr().out
    for label in ("stage", "ms/img", "storage (cold)", "decode (ROI+DCT)", "convert (collate)",
                  "end-to-end (Loader)", "verdict:", "page cache:"):
        assert label in out


def test_bad_pipeline_is_a_usage_error(
    small_pack: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["bench", str(small_pack), "--pipeline", "os.system('x')", "--batches", "1"])
    assert code == 2
    assert capsys.readouterr().err.startswith("error: --pipeline")


def test_missing_pack_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["doctor", str(tmp_path / "nope.pixpack")])
    assert code == 1
    assert capsys.readouterr().err.startswith("error:")
