"""Packing on a Dask cluster (engine=): a local cluster of worker processes gives the
one-process sharded pack shard for shard; a worker killed mid-pack and a rerun still
give it; a bad address or an unreachable scheduler is one line, without a hang."""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import socket
import threading
import time

import numpy as np
import pytest

import pixpack
from pixpack import shard_format as sf
from pixpack.cli.main import main
from pixpack.errors import EngineError, UsageError
from pixpack.write.cluster import missing, plan_units
from pixpack.write.engines import parse_engine

SIZE = "3samples"  # 24 photos: 8 shards


def _assert_same_shards(a_dir, b_dir):
    """Same shard names; in each, the same samples, labels, index and metadata."""
    a_names = sorted(p.name for p in a_dir.glob("part-*.pixpack"))
    assert a_names == sorted(p.name for p in b_dir.glob("part-*.pixpack"))
    for name in a_names:
        with pixpack.Pack(a_dir / name) as a, pixpack.Pack(b_dir / name) as b:
            assert len(a) == len(b), name
            np.testing.assert_array_equal(a.targets, b.targets)
            for i in range(len(a)):
                assert bytes(a.sample_bytes(i)) == bytes(b.sample_bytes(i)), (name, i)
                assert a.sample_info(i) == b.sample_info(i), (name, i)
            ma, mb = dict(a.metadata), dict(b.metadata)
            ma.pop("created"), mb.pop("created")
            assert ma == mb, name
    with pixpack.open(a_dir) as a, pixpack.open(b_dir) as b:
        assert len(a) == len(b) and a.classes == b.classes


# -- pure parts: no Dask needed -------------------------------------------------------
@pytest.mark.parametrize(
    "text, fields",
    [
        ("dask://sched:8786", {"address": "tcp://sched:8786"}),
        ("dask://10.0.0.1:8786?timeout=2.5", {"address": "tcp://10.0.0.1:8786", "timeout": 2.5}),
        ("dask://local", {"address": None, "workers": None}),
        ("dask://local?workers=3", {"workers": 3}),
        ("dask:///shared/scheduler.json", {"scheduler_file": "/shared/scheduler.json"}),
    ],
)
def test_parse_engine(text, fields):
    spec = parse_engine(text)
    for name, value in fields.items():
        assert getattr(spec, name) == value


@pytest.mark.parametrize(
    "text, match",
    [
        ("ray://head:10001", "Ray is not supported"),
        ("sched:8786", "unknown scheme"),
        ("dask://sched", "expected dask://HOST:PORT"),
        ("dask://local?workers=0", "workers must be a positive number"),
        ("dask://local?threads=2", "unknown parameter"),
        ("dask://sched:8786?workers=2", "workers= is for dask://local"),
        ("", "must be a cluster address"),
    ],
)
def test_bad_engine_addresses(text, match):
    with pytest.raises(UsageError, match=match):
        pixpack.PackOptions(engine=text, shard_size=SIZE)


def test_engine_needs_whole_shards():
    with pytest.raises(UsageError, match="sample-count shard_size"):
        pixpack.PackOptions(engine="dask://local", shard_size="1GB")
    with pytest.raises(UsageError, match="sample-count shard_size"):
        pixpack.PackOptions(engine="dask://local")
    with pytest.raises(UsageError, match="without shard_index"):
        pixpack.PackOptions(engine="dask://local", shard_index=0, num_shards=2)
    pixpack.PackOptions(engine="dask://local", shard_size="1GB", num_shards=4)  # slices
    assert "engine" not in pixpack.PackOptions(engine="dask://local", shard_size=SIZE).content_key()


def test_plan_units():
    # 8 shards of 3 on 1 slot: 4 tasks of 2 shards; finished shards are not planned.
    assert plan_units(24, ("samples", 3), None, [(0, 24)], 1) == [
        (0, 6, 6), (6, 12, 6), (12, 18, 6), (18, 24, 6)]  # fmt: skip
    assert plan_units(24, ("samples", 3), None, [(3, 6), (21, 24)], 2) == [
        (3, 6, 3), (21, 24, 3)]  # fmt: skip
    assert plan_units(25, ("samples", 3), None, [(24, 25)], 2) == [(24, 25, 1)]
    # slices: one task per slice with something missing
    assert plan_units(24, ("bytes", 10), 3, [(9, 12)], 2) == [(8, 16, 3)]
    done = {0: (3, None), 6: (9, None)}
    assert missing(12, done) == [(3, 6), (9, 12)]
    assert missing(9, done) == [(3, 6)]


# -- on a real local cluster of worker processes ---------------------------------------
@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as c:  # fmt: skip
        yield c


@pytest.fixture(scope="module")
def one_process(photo_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("one") / "one"
    pixpack.pack(photo_folder, out, quiet=True, workers=1, mode="jpeg", shard_size=SIZE)
    return out


def _engine(cluster) -> str:
    return "dask://" + cluster.scheduler_address.removeprefix("tcp://")


def test_cluster_pack_equals_one_process(cluster, photo_folder, one_process, tmp_path):
    out = tmp_path / "cluster"
    summary = pixpack.pack(photo_folder, out, quiet=True, mode="jpeg", shard_size=SIZE,
                           engine=_engine(cluster))  # fmt: skip
    assert summary.num_samples == 24
    _assert_same_shards(one_process, out)
    # a lost shard: a rerun on the cluster packs that one alone
    shards = sorted(out.glob("part-*.pixpack"))
    mtimes = {p.name: p.stat().st_mtime_ns for p in shards}
    shards[3].unlink()
    pixpack.pack(photo_folder, out, quiet=True, mode="jpeg", shard_size=SIZE,
                 engine=_engine(cluster))  # fmt: skip
    for p in shards:
        assert p.exists()
        if p != shards[3]:
            assert p.stat().st_mtime_ns == mtimes[p.name], p.name
    _assert_same_shards(one_process, out)
    # a one-machine rerun finds the cluster's shards finished (the same run digest)
    summary = pixpack.pack(photo_folder, out, quiet=True, mode="jpeg", shard_size=SIZE)
    assert summary.images_per_second == float("inf") or summary.seconds < 5
    for p in shards:
        assert p.stat().st_mtime_ns == mtimes[p.name] or p == shards[3]


def test_cluster_slices_equal_array_jobs(cluster, photo_folder, tmp_path):
    jobs, out = tmp_path / "jobs", tmp_path / "cluster"
    opts = {"quiet": True, "mode": "jpeg", "shard_size": "100kB"}
    for i in range(3):
        pixpack.pack(photo_folder, jobs, workers=1, shard_index=i, num_shards=3, **opts)
    pixpack.pack(photo_folder, out, num_shards=3, engine=_engine(cluster), **opts)
    _assert_same_shards(jobs, out)


class SlowPhotos:
    """A map-style dataset that takes ``delay`` seconds per item (a kill lands mid-pack)."""

    classes = ("a", "b", "c")

    def __init__(self, folder, delay):
        self.items = [(str(p), i % 3) for i, p in enumerate(sorted(folder.rglob("*.jpg")))]
        self.delay = delay

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        time.sleep(self.delay)
        return self.items[i]


@pytest.fixture(scope="module")
def no_retry_cluster():
    """A cluster whose scheduler gives up on a task at the first death of its worker."""
    distributed = pytest.importorskip("distributed")
    import dask

    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                      dashboard_address=":0") as c:  # fmt: skip
            yield c


def _idle(out) -> None:
    """Wait until no task still writes a shard into ``out`` (a failed run's cancelled
    tasks finish the shard they hold: its lock file goes when they do)."""

    def held(lock) -> bool:  # a killed task's lock file stays, unlocked
        with open(lock, "rb") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            return False

    quiet, deadline = 0, time.monotonic() + 60
    while quiet < 5 and time.monotonic() < deadline:
        busy = any(held(p) for p in out.glob("*.partial.lock") if p.exists())
        quiet = 0 if busy else quiet + 1
        time.sleep(0.05)


@pytest.mark.parametrize("retries", [True, False], ids=["retried", "failed-then-rerun"])
def test_killed_worker_then_rerun(cluster, no_retry_cluster, photo_folder, tmp_path, retries):
    from distributed import Client

    engine = _engine(cluster if retries else no_retry_cluster)
    one, out = tmp_path / "one", tmp_path / "cluster"
    pixpack.pack(SlowPhotos(photo_folder, 0), one, quiet=True, workers=1, shard_size="2samples")
    slow = SlowPhotos(photo_folder, 0.1)  # 12 shards of 2: 2.4 s of work
    failed: list[BaseException] = []

    def run() -> None:
        try:
            pixpack.pack(slow, out, quiet=True, shard_size="2samples", engine=engine)
        except EngineError as exc:  # killed more often than the scheduler retries
            failed.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 60
    while not list(out.glob("part-*.pixpack")) and time.monotonic() < deadline:
        time.sleep(0.02)
    with Client(engine.replace("dask://", "tcp://")) as client:
        pids = client.run(os.getpid)
    assert thread.is_alive()  # the kill lands mid-pack, a shard or more done
    os.kill(next(iter(pids.values())), signal.SIGKILL)
    thread.join(120)
    assert not thread.is_alive()
    assert bool(failed) != retries, failed  # retried elsewhere, or failed in one line
    if failed:
        assert "KilledWorker" in str(failed[0]) and "rerun the same command" in str(failed[0])
        assert "\n" not in str(failed[0])
        assert not (out / sf.MANIFEST_NAME).exists()
        _idle(out)
        kept = {p.name: p.stat().st_mtime_ns for p in out.glob("part-*.pixpack")}
        assert 0 < len(kept) < 12
        pixpack.pack(slow, out, quiet=True, shard_size="2samples", engine=engine)
        for name, mtime in kept.items():  # the rerun packed only the missing shards
            assert (out / name).stat().st_mtime_ns == mtime, name
    assert (out / sf.MANIFEST_NAME).exists()
    assert not list(out.glob("*.partial"))  # a killed task's temp file was packed again
    _assert_same_shards(one, out)


def test_failed_task_is_one_line(cluster, photo_folder, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(photo_folder, src)
    bad = sorted(src.rglob("*.jpg"))[13]
    bad.write_bytes(b"not a jpeg")
    out = tmp_path / "cluster"
    with pytest.raises(pixpack.ImageDecodeError, match=bad.name):
        pixpack.pack(src, out, quiet=True, mode="jpeg", shard_size=SIZE, strict=True,
                     engine=_engine(cluster))  # fmt: skip
    assert not (out / sf.MANIFEST_NAME).exists()
    with pixpack.open(out / "part-000000000.pixpack") as shard:  # another task's: kept
        assert len(shard) == 3


def test_unreachable_scheduler_fails_fast(photo_folder, tmp_path):
    pytest.importorskip("distributed")
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(EngineError, match=f"cannot reach the Dask scheduler.*:{port}"):
        pixpack.pack(photo_folder, tmp_path / "out", quiet=True, shard_size=SIZE,
                     engine=f"dask://127.0.0.1:{port}?timeout=1")  # fmt: skip
    assert time.monotonic() - started < 20
    assert not (tmp_path / "out" / sf.MANIFEST_NAME).exists()


def test_cli_local_cluster(photo_folder, one_process, tmp_path, capsys):
    pytest.importorskip("distributed")
    out = tmp_path / "cli"
    args = ["pack", str(photo_folder), str(out), "--mode", "jpeg", "--quiet",
            "--shard-size", SIZE, "--engine", "dask://local?workers=2"]  # fmt: skip
    assert main(args) == 0
    assert "packed 24 images" in capsys.readouterr().out
    _assert_same_shards(one_process, out)
    assert main([*args[:-1], "dask://nowhere"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "expected dask://HOST:PORT" in err


def test_local_cluster_workers_run_without_dasks_profiler():
    """The workers of a cluster pixpack starts (dask://local) run with Dask's sampling
    profiler off: it takes the GIL from the packing task every 10 ms."""
    pytest.importorskip("distributed")
    import dask

    from pixpack.write.engines import DaskEngine

    with DaskEngine(parse_engine("dask://local?workers=1")) as engine:
        flags = engine._client.run(lambda: dask.config.get("distributed.worker.profile.enabled"))
    assert list(flags.values()) == [False]
    assert dask.config.get("distributed.worker.profile.enabled") is True  # ours is unchanged
