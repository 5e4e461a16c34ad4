"""The shard cache: bounded in bytes, crash-safe, shared by processes.

No timed assertions: sizes are sampled while processes run, and the bound is checked
on every sample."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import pixpack
from pixpack import RemoteOptions
from pixpack.storage.shard_cache import ShardCache

pytestmark = pytest.mark.timeout(90)

SRC = str(Path(pixpack.__file__).resolve().parents[1])
WORKER = str(Path(__file__).with_name("cache_worker.py"))


def _shard_bytes(sharded: Path) -> int:
    return max(p.stat().st_size for p in sharded.glob("part-*.pixpack"))


def _usage(cache: Path) -> int:
    """What the bound covers: published shards and reserved downloads."""
    total = 0
    for entry in os.scandir(cache) if cache.exists() else ():
        if not entry.name.startswith(".") and not entry.name.endswith(".lock"):
            try:
                total += entry.stat().st_size
            except FileNotFoundError:
                pass
    return total


def test_cache_limit_smaller_than_the_dataset(http_server, remote_packs, fresh_cache):
    base, _ = http_server
    one, sharded = remote_packs
    limit = 2 * _shard_bytes(sharded)  # 2 of 5 shards
    options = RemoteOptions(cache_dir=str(fresh_cache), cache_limit=limit)
    most = 0
    with pixpack.open(f"{base}/sharded", remote=options) as pack, pixpack.open(one) as local:
        for i in [*range(len(local)), *range(len(local))[::-1]]:
            assert bytes(pack.sample_bytes(i)) == bytes(local.sample_bytes(i))
            most = max(most, _usage(fresh_cache))
        assert pack._source.cache.evicted >= 3
        assert sum(p is not None for p in pack._opened) <= 2  # max_open_shards follows
    assert 0 < most <= limit


def test_a_shard_larger_than_the_cache_is_refused(http_server, remote_packs, fresh_cache):
    base, _ = http_server
    options = RemoteOptions(cache_dir=str(fresh_cache), cache_limit=4096)
    with pixpack.open(f"{base}/sharded", remote=options) as pack:
        with pytest.raises(pixpack.UsageError, match=r"raise RemoteOptions\(cache_limit="):
            pack[0]


def test_evicting_a_mapped_shard_is_safe(http_server, remote_packs, fresh_cache):
    """Another process may unlink a shard this one has mapped: the map keeps the bytes."""
    base, _ = http_server
    one, _ = remote_packs
    options = RemoteOptions(cache_dir=str(fresh_cache))
    with pixpack.open(f"{base}/sharded", remote=options) as pack, pixpack.open(one) as local:
        view = pack.sample_bytes(0)
        before = bytes(view)
        files = list(fresh_cache.glob("*part-000000000.pixpack"))
        assert len(files) == 1
        assert ShardCache(fresh_cache, 1)._make_room(1, keep="")  # evicts all
        assert not files[0].exists()  # evicted under the map
        assert bytes(view) == before == bytes(local.sample_bytes(0))
        np.testing.assert_array_equal(pack[1][0], local[1][0])  # same shard, still mapped


def test_a_killed_download_leaves_nothing_that_is_used(
    http_server, faults, remote_packs, fresh_cache
):
    base, _ = http_server
    one, _ = remote_packs
    faults.slow_s, faults.slow_paths = 0.2, "part-000000000"
    code = (
        "import sys, pixpack\n"
        f"o = pixpack.RemoteOptions(cache_dir={str(fresh_cache)!r}, piece_bytes=65536)\n"
        f"pixpack.open({base + '/sharded'!r}, remote=o)[0]\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": SRC})
    try:
        while not list(fresh_cache.glob("*.tmp")):  # the download has begun
            assert child.poll() is None, "the child finished before it could be killed"
            time.sleep(0.02)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(30)
    left = sorted(p.name for p in fresh_cache.iterdir())
    assert any(n.endswith(".tmp") for n in left) and any(n.endswith(".lock") for n in left)
    assert not any(n.endswith(".pixpack") for n in left)  # nothing published
    faults.reset()
    options = RemoteOptions(cache_dir=str(fresh_cache), cache_limit=_usage(fresh_cache) + 1)
    with pixpack.open(f"{base}/sharded", remote=options) as pack, pixpack.open(one) as local:
        assert bytes(pack.sample_bytes(0)) == bytes(local.sample_bytes(0))
    names = [p.name for p in fresh_cache.iterdir()]
    assert not any(n.endswith((".tmp", ".lock")) for n in names if not n.startswith("."))


def test_four_processes_share_one_cache_at_its_limit(http_server, remote_packs, fresh_cache):
    """Each process reads every sample three times in its own random order through one
    cache directory that holds 2 of the 5 shards: no corrupt sample, no hang, and the
    directory (sampled all along) never over its bound plus one shard."""
    base, _ = http_server
    one, sharded = remote_packs
    shard = _shard_bytes(sharded)
    limit = 2 * shard
    fresh_cache.mkdir()
    env = {**os.environ, "PYTHONPATH": SRC}
    args = [f"{base}/sharded", str(one), str(fresh_cache), str(limit)]
    command = [sys.executable, WORKER, *args]
    procs = [
        subprocess.Popen([*command, str(seed)], env=env, stdout=subprocess.PIPE, text=True)
        for seed in range(4)
    ]
    sizes: list[int] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            sizes.append(_usage(fresh_cache))
            time.sleep(0.002)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        outputs = [p.communicate(timeout=75)[0] for p in procs]
    finally:
        stop.set()
        watcher.join()
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert [p.returncode for p in procs] == [0, 0, 0, 0], outputs
    reports = [json.loads(out.strip().splitlines()[-1]) for out in outputs]
    assert all(r["bad"] == 0 and r["checked"] == 72 for r in reports), reports
    assert sum(r["evicted"] for r in reports) > 0  # the cache really was at its limit
    assert len(sizes) > 10 and max(sizes) <= limit + shard, (max(sizes), limit, shard)
    assert not list(fresh_cache.glob("*.tmp"))
