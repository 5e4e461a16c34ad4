"""bench(): counts, warm-up, latencies, MB/s, a Loader passed in, progress on request."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pixpack import ops
from pixpack.diagnose import bench
from pixpack.errors import UsageError
from pixpack.loader import Loader
from pixpack.read.open_any import open_pack


def test_bench_counts_batches_across_epochs(small_pack: Path) -> None:
    # 24 samples in batches of 8: 3 batches per epoch, so 5 measured + 1 warm-up
    # batches cross an epoch boundary.
    r = bench(small_pack, "RandomResizedCrop(64),Normalize(imagenet)", batch_size=8,
              batches=5, warmup=1, workers=2, progress=False)
    assert (r.batches, r.images, r.warmup_batches) == (5, 40, 1)
    assert r.batch_size == 8 and r.workers == 2 and r.device == "cpu"
    assert r.pipeline == "RandomResizedCrop(64) > Normalize"
    assert 0 < r.latency_p50 <= r.latency_p99
    assert 0 < r.time_to_first_batch <= r.total_seconds
    assert r.seconds < r.total_seconds  # the warm-up batch is left out of the rate
    assert r.images_per_second == pytest.approx(r.images / r.seconds)
    with open_pack(small_pack) as pack:
        mean_bytes = float(np.asarray(pack.index["nbytes"]).mean())
    assert r.mb_per_second == pytest.approx(r.images_per_second * mean_bytes / 1e6)
    assert set(r.as_dict()) >= {"images_per_second", "mb_per_second", "latency_p50",
                                "latency_p99", "time_to_first_batch", "total_seconds"}


def test_bench_stops_on_seconds(small_pack: Path) -> None:
    r = bench(small_pack, "eval", batch_size=8, seconds=0.3, progress=False)
    assert r.batches >= 1 and r.seconds >= 0.3


def test_bench_a_loader_uses_its_settings(small_pack: Path) -> None:
    with Loader(small_pack, 6, pipeline=[ops.CenterCrop(32)], workers=1) as loader:
        r = bench(loader, batches=2, progress=False)
        assert (r.batch_size, r.workers, r.images) == (6, 1, 12)
        assert r.pipeline == "CenterCrop(32)"
        assert len(next(iter(loader))[1]) == 6  # still usable afterwards


def test_bench_progress_line(small_pack: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bench(small_pack, "CenterCrop(32)", batch_size=8, batches=3, progress=True)
    err = capsys.readouterr().err
    assert "bench" in err and "img/s" in err


def test_bench_rejects_bad_bounds(small_pack: Path) -> None:
    with pytest.raises(UsageError):
        bench(small_pack, batches=0)
    with pytest.raises(UsageError):
        bench(small_pack, seconds=-1)
