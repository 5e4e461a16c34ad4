"""A server that fails: 500s, connections cut half-way through a download, slow
answers. Retries recover what they can; what they cannot fails with a RemoteError
naming the URL, within the deadline (pytest-timeout turns a hang into a failure), and
a failed download never leaves a file in the cache that is used."""

from __future__ import annotations

import numpy as np
import pytest

import pixpack
from pixpack import RemoteOptions

pytestmark = pytest.mark.timeout(60)


def _options(cache, **kw) -> RemoteOptions:
    kw.setdefault("backoff_s", 0.01)
    return RemoteOptions(cache_dir=str(cache), piece_bytes=1 << 20, **kw)


def _check_all(pack, local) -> None:
    for i in range(len(local)):
        assert bytes(pack.sample_bytes(i)) == bytes(local.sample_bytes(i))


def test_500s_then_success_are_retried(http_server, faults, remote_packs, fresh_cache):
    base, _ = http_server
    faults.fail_500 = 3
    with pixpack.open(f"{base}/sharded", remote=_options(fresh_cache)) as pack:
        with pixpack.open(remote_packs[0]) as local:
            _check_all(pack, local)
        assert pack._source.files.retried >= 3
    assert faults.fail_500 == 0


def test_download_cut_mid_way_resumes_by_piece(http_server, faults, remote_packs, fresh_cache):
    base, _ = http_server
    with pixpack.open(f"{base}/sharded", remote=_options(fresh_cache)) as pack:
        _ = pack.targets  # indexes first: the cuts below hit shard downloads
        faults.cut = 4
        with pixpack.open(remote_packs[0]) as local:
            _check_all(pack, local)
        assert pack._source.files.retried >= 4
    assert not list(fresh_cache.glob("*.tmp")) and not list(fresh_cache.glob("*.lock"))


def test_download_that_keeps_failing_leaves_nothing_used(
    http_server, faults, remote_packs, fresh_cache
):
    base, _ = http_server
    options = _options(fresh_cache, retries=2)
    with pixpack.open(f"{base}/sharded", remote=options) as pack:
        _ = pack.targets
        faults.cut = 1000
        with pytest.raises(pixpack.RemoteError, match=r"part-000000000\.pixpack") as info:
            pack[0]
        assert "failed 3 times" in str(info.value) and info.value.attempts == 3
        # neither a published shard nor a temp file nor a lock is left behind
        assert list(fresh_cache.iterdir()) == []
        faults.cut = 0
        with pixpack.open(remote_packs[0]) as local:
            np.testing.assert_array_equal(pack[0][0], local[0][0])  # recovers


def test_slow_server_times_out_with_a_clear_error(http_server, faults, fresh_cache):
    base, _ = http_server
    faults.slow_s, faults.slow_paths = 3.0, "shards.json"
    options = _options(fresh_cache, timeout_s=0.3, retries=50, deadline_s=1.5)
    with pytest.raises(pixpack.RemoteError, match=r"deadline of 1\.5 s") as info:
        pixpack.open(f"{base}/sharded", remote=options)
    assert info.value.path.endswith("shards.json")
    assert "shards.json" in str(info.value)


def test_slow_but_within_timeout_succeeds(http_server, faults, remote_packs, fresh_cache):
    base, _ = http_server
    faults.slow_s = 0.05
    with pixpack.open(f"{base}/one.pixpack", remote=_options(fresh_cache)) as pack:
        with pixpack.open(remote_packs[0]) as local:
            _check_all(pack, local)


def test_unreachable_server_fails_fast_and_clearly(fresh_cache):
    options = _options(fresh_cache, retries=2, timeout_s=1.0, deadline_s=5)
    with pytest.raises(pixpack.RemoteError, match=r"127\.0\.0\.1:9/") as info:
        pixpack.open("http://127.0.0.1:9/sharded", remote=options)
    assert info.value.attempts == 3
