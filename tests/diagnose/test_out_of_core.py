"""doctor's out-of-core pieces: the memory budget, cold reads through the loader's
read-ahead, and the advice for a pack that does not fit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pixpack.diagnose.out_of_core import memory_budget, out_of_core_advice, time_cold_reads
from pixpack.diagnose.stages import StageTiming
from pixpack.read import open_pack

_CGROUP = Path("/sys/fs/cgroup/memory")


def test_budget_without_a_limit_is_available_ram() -> None:
    budget = memory_budget()
    assert budget["ram_total"] and budget["ram_available"]
    assert budget["usable"] <= budget["ram_available"]
    if budget["cgroup_limit"] is None:
        assert budget["usable"] == budget["ram_available"]


@pytest.mark.skipif(
    os.geteuid() != 0 or not _CGROUP.is_dir(),
    reason="needs root and the cgroup v1 memory controller",
)
def test_budget_counts_the_cgroup_limit(tmp_path: Path) -> None:
    group = _CGROUP / f"pixpack-test-{os.getpid()}"
    group.mkdir()
    try:
        (group / "memory.limit_in_bytes").write_text(str(3 << 30))
        code = (
            "import json, os, sys; "
            f"open('{group}/cgroup.procs', 'w').write(str(os.getpid())); "
            "from pixpack.diagnose.out_of_core import memory_budget; "
            "print(json.dumps(memory_budget()))"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True, timeout=60)  # fmt: skip
        budget = json.loads(out.stdout)
    finally:
        group.rmdir()
    assert budget["cgroup_limit"] == 3 << 30
    assert budget["usable"] == min(3 << 30, budget["ram_available"])


def _cold(rate: float) -> StageTiming:
    return StageTiming("storage (cold)", "storage", 100, 100 / rate, 10**7, 0)


def test_advice_for_a_raw_pack_that_does_not_fit(big_raw_pack: Path) -> None:
    size = big_raw_pack.stat().st_size
    budget = {"usable": size // 2, "cgroup_limit": size // 2, "ram_available": 10**12}
    with open_pack(big_raw_pack) as pack:
        slow = out_of_core_advice(pack, budget, _cold(100.0), 1000.0, 256)
        fast = out_of_core_advice(pack, budget, _cold(5000.0), 1000.0, 256)
    assert any("--mode jpeg" in a and "--max-side 256" in a and "10x smaller" in a for a in slow)
    assert any("read_ahead" in a and "block_shuffle" in a for a in slow)
    assert not any(a.startswith("larger than memory") for a in slow)  # the verdict says it
    assert any(a.startswith("larger than memory") and "cgroup limit" in a for a in fast)
    assert not any("block_shuffle" in a for a in fast)


def test_no_jpeg_advice_when_even_a_jpeg_pack_would_not_fit(big_raw_pack: Path) -> None:
    size = big_raw_pack.stat().st_size
    budget = {"usable": size // 20, "cgroup_limit": None, "ram_available": size // 20}
    with open_pack(big_raw_pack) as pack:
        advice = out_of_core_advice(pack, budget, _cold(100.0), 1000.0, 256)
    assert not any("--mode jpeg" in a for a in advice)


def test_cold_reads_count_only_the_samples(big_raw_pack: Path) -> None:
    with open_pack(big_raw_pack) as pack:
        indices = np.arange(len(pack))[::-1].copy()
        timing, info = time_cold_reads(pack, indices, 64 << 20)
    assert timing.samples == len(indices) and timing.nbytes == info["bytes_stored"]
    if info["resident_after_drop"] is None or info["resident_after_drop"] > 0.1:
        pytest.skip("the page-cache drop did not take effect on this file system")
    if not info["bytes_read"] or info["bytes_read"] < 0.5 * info["bytes_stored"]:
        pytest.skip("this file system does not report reads in /proc/self/io")
    assert info["read_amplification"] <= 1.2, info
    assert info["requests"] >= 1
