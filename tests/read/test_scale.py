"""Opening cost and memory do not grow with the number of samples."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from read_helpers import build_tiny_pack

from pixpack.read import open_pack

_CHILD = textwrap.dedent(
    """
    import json, sys, time
    import numpy as np
    from pixpack.read import open_pack

    def anon_kb():
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1])

    open_pack(sys.argv[2]).close()  # warm imports and lazy caches on a tiny pack
    before = anon_kb()
    start = time.perf_counter()
    pack = open_pack(sys.argv[1])
    opened = time.perf_counter() - start
    targets = pack.targets
    total = int(targets.sum())  # reads every label through the map
    top = int(targets.max())
    first, last = pack[0], pack[-1]
    shapes = [pack.sample_shape(i) for i in (0, len(pack) // 2, len(pack) - 1)]
    after = anon_kb()
    print(json.dumps({"n": len(pack), "anon_kb": after - before, "open_s": opened,
                      "sum": total, "max": top}))
    """
)


def _measure(path, warm) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path), str(warm)],
        check=True, capture_output=True, text=True, timeout=120,
    )
    return json.loads(out.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_open_and_all_labels_use_constant_anonymous_memory(tmp_path):
    warm = build_tiny_pack(tmp_path / "warm.pixpack", 10)
    small = build_tiny_pack(tmp_path / "small.pixpack", 10_000)
    large = build_tiny_pack(tmp_path / "large.pixpack", 1_000_000)
    a, b = _measure(small, warm), _measure(large, warm)
    assert (a["n"], b["n"]) == (10_000, 1_000_000)
    assert b["sum"] == sum(i % 10 for i in range(10)) * 100_000 and b["max"] == 9
    # Copying the labels alone would cost 8 MB, the index 40 MB; the view costs nothing.
    assert b["anon_kb"] - a["anon_kb"] < 4 * 1024, (a, b)
    print(f"open 10k: {a['open_s'] * 1e3:.2f} ms, 1M: {b['open_s'] * 1e3:.2f} ms; "
          f"anon +{a['anon_kb']} kB vs +{b['anon_kb']} kB")


def test_large_tiny_pack_reads_correctly(tmp_path):
    pack = open_pack(build_tiny_pack(tmp_path / "t.pixpack", 100_000, num_classes=7))
    assert len(pack) == 100_000
    assert pack.classes == [f"c{i}" for i in range(7)]
    image, label = pack[99_999]
    assert image.shape == (1, 1, 1) and label == 99_999 % 7
    assert pack.targets[12_345] == 12_345 % 7


def test_vectorised_builder_matches_pack_writer(tmp_path):
    """The fast builder used above writes exactly what PackWriter writes."""
    from pixpack import format as fmt
    from pixpack.write.writer import PackWriter

    n = 37
    fast = build_tiny_pack(tmp_path / "fast.pixpack", n, num_classes=4)
    writer = PackWriter(tmp_path / "slow.pixpack", {"k": 0}).start()
    for i in range(n):
        writer.append(b"\x00", source_index=i, height=1, width=1, channels=1,
                      dtype_code=0, mode_code=fmt.MODE_RAW, label=i % 4)
    slow = writer.commit({"classes": [f"c{i}" for i in range(4)]})
    assert fast.read_bytes() == slow.read_bytes()


_VERIFY_CHILD = textwrap.dedent(
    """
    import importlib, json, resource, sys

    verify_module = importlib.import_module("pixpack.read.verify")  # the module

    verify_module._CHUNK = 1 << 20  # a small read window: what remains is per-sample memory
    verify_module.verify(sys.argv[2], progress=False)  # warm imports on a tiny pack
    report = verify_module.verify(sys.argv[1], progress=False)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"ok": report.ok, "n": report.num_samples, "peak_kb": peak}))
    """
)


@pytest.fixture(scope="module")
def scaled(tmp_path_factory) -> dict:
    """Tiny packs of 10, 150k and 1M samples (the index alone: 6 MB and 40 MB)."""
    root = tmp_path_factory.mktemp("scaled")
    return {n: build_tiny_pack(root / f"{n}.pixpack", n) for n in (10, 150_000, 1_000_000)}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ru_maxrss in kB")
def test_verify_memory_is_flat_in_the_sample_count(scaled):
    """verify streams the index: 150k and 1M samples peak within a few MB of each other
    (it held ~130 bytes per sample before: +113 MB from 150k to 1M)."""
    warm = scaled[10]
    runs = []
    for n in (150_000, 1_000_000):
        path = scaled[n]
        out = subprocess.run(
            [sys.executable, "-c", _VERIFY_CHILD, str(path), str(warm)],
            check=True, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        runs.append(json.loads(out.stdout))
    small, large = runs
    assert small["ok"] and large["ok"] and large["n"] == 1_000_000
    assert large["peak_kb"] - small["peak_kb"] < 8 * 1024, runs


def test_info_memory_is_flat_in_the_sample_count(scaled):
    """pack_info counts the index in slices: its allocations do not grow with it (the
    whole-column numpy version allocated +14 MB from 150k to 1M samples)."""
    import tracemalloc

    from pixpack.cli.inspect_cmd import _format_info, pack_info

    pack_info(str(scaled[10]))  # warm imports and caches
    peaks = {}
    for n in (150_000, 1_000_000):
        tracemalloc.start()
        try:
            info = pack_info(str(scaled[n]))
            _format_info(info)
            peaks[n] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert info["samples"] == n and info["height"] == {"min": 1, "median": 1, "max": 1}
    assert peaks[1_000_000] - peaks[150_000] < 1 << 20, peaks
