"""Out-of-core reads (issue 11): what a pack that is not in the page cache costs.

Read amplification is measured with ``read_bytes`` of ``/proc/self/io`` (the whole
process, all threads) on a pack that was written, fsync'ed and dropped from the page
cache (``POSIX_FADV_DONTNEED``), so the disk really serves every byte. On a file system
that does not report reads (tmpfs) the measurements would pass vacuously: they skip.

Also here: batches do not depend on read-ahead, mid-epoch resume with read-ahead and
block shuffle, no read-ahead thread outlives an iteration, and a pack truncated after
it was opened fails with TruncatedPackError instead of killing the process (SIGBUS),
checked in a subprocess so that a crash fails the test instead of the test run.
"""

from __future__ import annotations

import gc
import itertools
import json
import mmap
import pickle
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from storage.page_cache import PAGE, evict, read_ahead_kb, read_bytes, skip_unless_reported

from pixpack import format as fmt
from pixpack.errors import LoaderError, ResumeError, UsageError
from pixpack.loader import Loader
from pixpack.loader.ordering import epoch_order, shard
from pixpack.ops import Normalize, RandomHorizontalFlip, RandomResizedCrop
from pixpack.read.open_any import open_pack
from pixpack.read.pack import Pack

from .helpers import photo_images, write_pack

pytestmark = pytest.mark.timeout(120)

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

# The cold pack: 1600 raw 96x128 RGB samples (36 kB each, ~59 MB): large against the
# read-around of a fault (read_ahead_kb, 128 kB to 8 MB), so any read-around shows.
COLD_N = 1600
COLD_HW = (96, 128)
WORLD = 8  # a loader shard of 1/8 of the pack: 200 random samples over the whole file
AMPLIFICATION = 1.2


def float_pipeline():
    return [RandomResizedCrop(32), RandomHorizontalFlip(), Normalize(MEAN, STD)]


PIPELINES = {"float32": float_pipeline, "uint8": list}


def stored_bytes(pack: Pack, indices) -> int:
    _, nbytes = pack.spans(np.unique(np.asarray(indices, np.int64)))
    return int(nbytes.sum())


def page_rounded(nbytes: int) -> int:
    return -(-nbytes // PAGE) * PAGE + PAGE  # plus one page: the span need not be aligned


def header_of(path: Path):
    with open(path, "rb") as f:
        return fmt.decode_header(f.read(fmt.HEADER_SIZE))


@pytest.fixture(scope="module")
def cold_path(photos, tmp_path_factory) -> Path:
    h, w = COLD_HW
    images = [
        np.ascontiguousarray(img[:h, :w])
        for img in photo_images(photos, COLD_N, size=COLD_HW, seed=3)
    ]
    path = tmp_path_factory.mktemp("cold") / "cold.pixpack"
    write_pack(path, images, [i % 10 for i in range(COLD_N)]).close()
    return path


def cold(measure, *args):
    """``measure(*args)`` on a cold pack. It runs twice: first warm, so that the modules,
    kernels and library pages its code path touches are loaded (their reads would count
    too), then again after the pack was dropped from the page cache."""
    path = args[0]
    measure(*args)
    evict(path)
    return measure(*args)


def getitem_reads(path: Path):
    """Bytes read by ``pack[i]`` of 250 random samples: ``(whole, samples, stored,
    chosen)``; ``whole`` counts from before the pack is opened (header, metadata, index),
    ``samples`` only the reads of the samples."""
    start = read_bytes()
    pack = open_pack(path)
    chosen = np.random.default_rng(1).choice(len(pack), 250, replace=False)
    stored = stored_bytes(pack, chosen)  # touches the whole index
    before = read_bytes()
    for i in chosen.tolist():
        image, label = pack[i]
        assert image.shape == (*COLD_HW, 3) and label == i % 10
    end = read_bytes()
    pack.close()
    return end - start, end - before, stored, chosen


def overhead_allowance(path: Path) -> int:
    """What opening a pack may read besides samples: the index and the metadata (page
    rounded), and the header's first read (the kernel reads a few pages ahead of a
    first small read: 16 pages allowed)."""
    h = header_of(path)
    index = int(h["num_samples"]) * int(h["entry_size"])
    return page_rounded(index) + page_rounded(int(h["meta_nbytes"])) + 16 * PAGE


def loader_epoch_reads(path: Path, kind: str, read_ahead: int):
    pipeline = PIPELINES[kind]()
    start = read_bytes()
    pack = open_pack(path)
    seed = 7
    loader = Loader(
        pack, 16, pipeline=pipeline, workers=2, seed=seed, world_size=WORLD, rank=0,
        read_ahead=read_ahead,
    )  # fmt: skip
    order = shard(epoch_order(len(pack), seed, 0, True), 0, WORLD, False)
    # The loader starts the next epoch's first batches (prefetch=2) before this one
    # ends; those bytes are read once too (and the next epoch will not read them).
    early = shard(epoch_order(len(pack), seed, 1, True), 0, WORLD, False)[: 2 * 16]
    stored = stored_bytes(pack, np.union1d(order, early))
    labels = []
    before = read_bytes()  # the Loader has read the index
    for x, y in loader:
        assert x.dtype == (torch.float32 if kind == "float32" else torch.uint8)
        labels.append(y.clone())
    loader.close()
    end = read_bytes()
    pack.close()
    # It read what we counted: this rank's shard of the epoch, in order.
    assert torch.cat(labels).tolist() == (order % 10).tolist()
    return end - start, end - before, stored


# -- read amplification ------------------------------------------------------------------
def test_getitem_reads_only_the_samples(cold_path):
    """``pack[i]`` on a cold pack reads each sample's bytes once: no read-around."""
    whole, read, stored, _ = cold(getitem_reads, cold_path)
    skip_unless_reported(read, stored)
    assert read <= AMPLIFICATION * stored, (read, stored)
    assert whole <= AMPLIFICATION * stored + overhead_allowance(cold_path), (whole, stored)


def test_plain_map_reads_around(cold_path):
    """The measurement can fail: the same reads through a plain map (the old read path,
    no MADV_RANDOM) read several times the samples' bytes where the disk reads around."""
    ra_kb = read_ahead_kb(cold_path)
    if ra_kb is None or ra_kb * 1024 < 2 * COLD_HW[0] * COLD_HW[1] * 3:
        pytest.skip(f"read_ahead_kb {ra_kb}: too small for read-around to show")
    *_, stored, chosen = getitem_reads(cold_path)
    pack = open_pack(cold_path)
    offsets, nbytes = pack.spans(chosen)
    pack.close()
    evict(cold_path)
    with open(cold_path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        before = read_bytes()
        for off, nb in zip(offsets.tolist(), nbytes.tolist(), strict=True):
            assert sum(m[off : off + nb : PAGE]) >= 0  # touch every page of the sample
        read = read_bytes() - before
    skip_unless_reported(read, stored)
    assert read > 2 * stored, (read, stored)


@pytest.mark.parametrize("read_ahead", [0, 8])
@pytest.mark.parametrize("kind", sorted(PIPELINES))
def test_loader_epoch_reads_only_its_samples(cold_path, kind, read_ahead):
    """A Loader epoch (this rank's shard) reads its samples' bytes once: through the
    read-ahead thread's exact requests, or (read_ahead=0) through faults on the map."""
    whole, read, stored = cold(loader_epoch_reads, cold_path, kind, read_ahead)
    skip_unless_reported(read, stored)
    assert read <= AMPLIFICATION * stored, (read, stored)
    assert whole <= AMPLIFICATION * stored + overhead_allowance(cold_path), (whole, stored)


def test_index_reads_only_the_index(cold_path):
    """Touching the whole index of a cold pack reads the index, not the samples before it."""
    header = header_of(cold_path)
    open_pack(cold_path).close()  # warm: the code path, not the pack
    evict(cold_path)
    index_bytes = int(header["num_samples"]) * int(header["entry_size"])
    pack = open_pack(cold_path)  # reads the header and the metadata (with read())
    before = read_bytes()
    pack.spans(np.arange(len(pack)))
    read = read_bytes() - before
    pack.close()
    skip_unless_reported(read, index_bytes)
    assert read <= page_rounded(index_bytes), (read, index_bytes)


# -- batches do not depend on read-ahead -------------------------------------------------
@pytest.fixture(scope="module")
def pack200(photos, tmp_path_factory) -> Pack:
    """200 raw 48x64 photo crops (one size, so ``pipeline=[]`` batches them), labels i % 7."""
    images = [np.ascontiguousarray(img[:48, :64]) for img in photo_images(photos, 200, seed=5)]
    path = tmp_path_factory.mktemp("ooc") / "p200.pixpack"
    return write_pack(path, images, [i % 7 for i in range(200)])


def epoch_batches(loader, epoch=1):
    loader.set_epoch(epoch)
    out = [(x.clone(), y.clone()) for x, y in loader]
    loader.close()
    return out


def same(a, b) -> bool:
    return len(a) == len(b) and all(
        torch.equal(x1, x2) and torch.equal(y1, y2) for (x1, y1), (x2, y2) in zip(a, b, strict=True)
    )


READ_AHEAD = {
    "off": {"read_ahead": 0},
    "default": {},
    "tiny": {"read_ahead": 1, "read_ahead_bytes": 1},
}
ORDERS = {"full": {}, "block": {"block_shuffle": 5, "block_window": 3}}


@pytest.mark.parametrize("order", sorted(ORDERS))
def test_batches_identical_whatever_read_ahead_and_workers(pack200, order):
    def run(workers, ahead):
        loader = Loader(
            pack200, 12, pipeline=float_pipeline(), seed=3, workers=workers,
            **ORDERS[order], **READ_AHEAD[ahead],
        )  # fmt: skip
        return epoch_batches(loader)

    reference = run(1, "off")
    assert sorted(torch.cat([y for _, y in reference]).tolist()) == sorted(
        i % 7 for i in range(200)
    )
    # An in-memory pack has no storage, so no read-ahead at all.
    in_memory = Pack(pack200.path, in_memory=True)
    assert same(
        epoch_batches(
            Loader(in_memory, 12, pipeline=float_pipeline(), seed=3, workers=2, **ORDERS[order])
        ),
        reference,
    )
    for workers in (1, 2, 4):
        for ahead in READ_AHEAD:
            assert same(run(workers, ahead), reference), (workers, ahead)


@pytest.mark.parametrize("order", sorted(ORDERS))
def test_resume_mid_epoch_with_read_ahead(pack200, order):
    def make():
        return Loader(pack200, 16, pipeline=float_pipeline(), seed=9, workers=2, **ORDERS[order])

    full = epoch_batches(make(), epoch=2)
    for k in (1, 5, len(full) - 1):
        loader = make()
        loader.set_epoch(2)
        it = iter(loader)
        for _ in range(k):
            next(it)
        state = loader.state_dict()
        loader.close()
        again = make()
        again.load_state_dict(pickle.loads(pickle.dumps(state)))
        rest = [(x.clone(), y.clone()) for x, y in again]
        again.close()
        assert same(rest, full[k:]), k


@pytest.mark.parametrize(
    "changed", [{"block_shuffle": 4}, {"block_shuffle": 0}, {"block_window": 2}]
)
def test_resume_with_another_block_shuffle_is_refused(pack200, changed):
    base = {"block_shuffle": 5, "block_window": 3}
    loader = Loader(pack200, 16, pipeline=float_pipeline(), seed=9, workers=1, **base)
    it = iter(loader)
    next(it)
    state = loader.state_dict()
    loader.close()
    other = Loader(pack200, 16, pipeline=float_pipeline(), seed=9, workers=1, **{**base, **changed})
    with pytest.raises(ResumeError):
        other.load_state_dict(state)
    other.close()


@pytest.mark.parametrize(
    "option", [{"read_ahead": -1}, {"read_ahead_bytes": -1}, {"read_ahead": 1.5}]
)
def test_bad_read_ahead_options_are_refused(pack200, option):
    with pytest.raises(UsageError, match=next(iter(option))):
        Loader(pack200, 8, pipeline=[], **option)


# -- no read-ahead thread outlives an iteration ------------------------------------------
def read_ahead_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == "pixpack-readahead"}


def left_alive(before: set[threading.Thread], grace_s: float = 2.0) -> set[threading.Thread]:
    """Read-ahead threads started since ``before`` still alive after a short grace."""
    deadline = time.monotonic() + grace_s
    while True:
        alive = read_ahead_threads() - before
        if not alive or time.monotonic() > deadline:
            return alive
        gc.collect()
        next(iter(alive)).join(0.05)


def failing_after(samples: int):
    calls = itertools.count()

    def boom(img):
        if next(calls) >= samples:
            raise RuntimeError("boom")
        return img

    return boom


@pytest.mark.parametrize("ending", ["break", "close", "error", "new-iter"])
def test_no_read_ahead_thread_outlives_the_iteration(pack200, ending):
    before = read_ahead_threads()
    # A pipeline error a few batches in, while the read-ahead thread runs.
    pipeline = [failing_after(40)] if ending == "error" else [RandomResizedCrop(16)]
    # read_ahead_bytes=1: the thread is blocked on a full window most of the time.
    loader = Loader(pack200, 8, pipeline=pipeline, workers=2, read_ahead_bytes=1)
    it = iter(loader)
    next(it)
    assert len(read_ahead_threads() - before) == 1
    if ending == "break":
        del it  # what leaving a for loop early does
    elif ending == "close":
        loader.close()
    elif ending == "error":
        with pytest.raises(LoaderError, match="boom"):
            for _ in it:
                pass
    else:
        again = iter(loader)  # replaces the unfinished iteration
        next(again)
        assert len(left_alive(before, grace_s=1.0)) == 1  # the new iteration's only
        del again
    assert left_alive(before) == set()
    loader.close()


# -- access="sequential" -----------------------------------------------------------------
def test_sequential_access_pickles_and_reads(pack200):
    seq = open_pack(pack200.path, access="sequential")
    assert seq.storage is not None and seq.storage.access == "sequential"
    again = pickle.loads(pickle.dumps(seq))
    for i in (0, 57, 199):
        a, la = again[i]
        b, lb = pack200[i]
        assert np.array_equal(a, b) and la == lb == i % 7
    assert again.storage.access == "sequential"
    assert pickle.loads(pickle.dumps(pack200)).storage.access == "random"
    seq.close()
    again.close()


def test_will_need_merges_neighbours(pack200):
    offsets, nbytes = pack200.spans(np.arange(10))
    assert np.array_equal(offsets[1:], offsets[:-1] + nbytes[:-1])  # written back to back
    assert pack200.will_need(np.arange(10)) == 1  # ten neighbours: one request
    assert pack200.will_need(np.array([9, 0, 5])) == 3
    assert pack200.will_need(np.zeros(0, np.int64)) == 0
    in_memory = Pack(pack200.path, in_memory=True)
    assert in_memory.storage is None and in_memory.will_need(np.arange(10)) == 0


@pytest.mark.parametrize("access", ["bogus", "RANDOM", None])
def test_unknown_access_is_refused(pack200, access):
    with pytest.raises(ValueError, match="access"):
        Pack(pack200.path, access=access)
    with pytest.raises(ValueError, match="access"):
        open_pack(pack200.path, access=access)


# -- a pack truncated after it was opened ------------------------------------------------
# Each scenario runs in a forked child of one subprocess (one import of torch for all):
# a scenario that dies of SIGBUS fails its own test, never the test run.
RUNNER = r"""
import json, os, shutil, signal, sys, time, traceback
from pixpack.errors import LoaderError, TruncatedPackError
from pixpack.loader import Loader
from pixpack.read.open_any import open_pack

source, workdir, scenarios = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
results = {}
for name, body in scenarios.items():
    path = os.path.join(workdir, name + ".pixpack")
    out = os.path.join(workdir, name + ".out")
    shutil.copyfile(source, path)
    sys.stdout.flush()
    pid = os.fork()
    if pid == 0:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        code = 0
        try:
            names = {"os": os, "path": path, "Loader": Loader, "LoaderError": LoaderError,
                     "TruncatedPackError": TruncatedPackError, "pack": open_pack(path)}
            exec(body, names)
        except BaseException:
            traceback.print_exc()
            code = 1
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    deadline = time.monotonic() + 30
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            done, status = os.waitpid(pid, 0)
            break
        time.sleep(0.005)
    with open(out) as f:
        results[name] = [os.waitstatus_to_exitcode(status), f.read()]
print(json.dumps(results))
"""

HALVE = "os.truncate(path, os.path.getsize(path) // 2)\n"


def getitem_after_truncation() -> str:
    return (
        "pack[3]  # read while the file is whole\n" + HALVE + "for i in (3, 150, 199):\n"
        "    for read in (pack.__getitem__, pack.read_image, pack.sample_bytes):\n"
        "        try:\n"
        "            read(i)\n"
        "        except TruncatedPackError as exc:\n"
        "            assert f'sample {i}' in str(exc), exc\n"
        "            print('raised', i)\n"
    )


def loader_after_truncation(read_ahead: int, policy: str, mid_epoch: bool) -> str:
    make = (
        "import warnings\nwarnings.simplefilter('ignore')\n"
        f"loader = Loader(pack, 16, pipeline=[], dtype='uint8', workers=2, prefetch=1, "
        f"read_ahead={read_ahead}, on_error='{policy}')\n"
        "it = iter(loader)\n"
    )
    if mid_epoch:
        make += "print('first', len(next(it)[1]))\n"
    return (
        make
        + HALVE
        + (
            "try:\n"
            "    sizes = [len(y) for _, y in it]\n"
            "    print('batches', len(sizes), 'samples', sum(sizes), 'skipped', "
            "len(loader.skipped))\n"
            "except LoaderError as exc:\n"
            "    assert isinstance(exc.__cause__, TruncatedPackError), repr(exc.__cause__)\n"
            "    assert exc.index is not None and f'sample {exc.index}' in str(exc), exc\n"
            "    print('raised', exc)\n"
        )
    )


SCENARIOS = {
    "getitem": getitem_after_truncation(),
    # Only the metadata cut off: every sample is still addressable, but it is not the
    # file that was opened.
    "metadata": "os.truncate(path, os.path.getsize(path) - 1)\n"
    "try:\n    pack[0]\nexcept TruncatedPackError as exc:\n    print('raised', exc)\n",
    **{
        f"loader-{policy}-{ahead}-{when}": loader_after_truncation(ahead, policy, when == "mid")
        for policy in ("raise", "skip", "warn")
        for ahead in (0, 8)
        for when in ("start", "mid")
    },
}


@pytest.fixture(scope="module")
def truncated(pack200, tmp_path_factory) -> dict[str, tuple[int, str]]:
    workdir = tmp_path_factory.mktemp("truncated")
    proc = subprocess.run(
        [sys.executable, "-c", RUNNER, str(pack200.path), str(workdir), json.dumps(SCENARIOS)],
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert proc.returncode == 0, proc.stderr
    return {k: (code, out) for k, (code, out) in json.loads(proc.stdout.splitlines()[-1]).items()}


def outcome(truncated, name: str) -> str:
    code, out = truncated[name]
    assert code == 0, f"{name}: exit {code} (negative: killed by that signal)\n{out}"
    return out


def test_truncated_pack_getitem_raises(truncated):
    out = outcome(truncated, "getitem")
    assert out.split().count("raised") == 9, out


def test_truncated_metadata_is_detected(truncated):
    out = outcome(truncated, "metadata")
    assert out.startswith("raised") and "sample 0" in out and "truncated" in out, out


LOADER_CASES = [
    pytest.param(ahead, when, marks=mark)
    for ahead, when, mark in [
        (0, "start", ()),
        (0, "mid", ()),
        (8, "start", ()),
        (8, "mid", ()),
    ]
]


@pytest.mark.parametrize("read_ahead, when", LOADER_CASES)
def test_truncated_pack_loader_raise(truncated, read_ahead, when):
    out = outcome(truncated, f"loader-raise-{read_ahead}-{when}")
    lines = out.splitlines()
    if when == "mid":
        assert lines.pop(0) == "first 16", out
    assert lines[0].startswith("raised") and "truncated" in lines[0], out


@pytest.mark.parametrize("read_ahead, when", LOADER_CASES)
@pytest.mark.parametrize("policy", ["skip", "warn"])
def test_truncated_pack_loader_skip(truncated, policy, read_ahead, when):
    out = outcome(truncated, f"loader-{policy}-{read_ahead}-{when}")
    # 200 samples, 16 of them delivered before the cut when "mid": every later one fails,
    # and no batch is yielded (issue 13: never an empty batch), but each is reported.
    lost = 184 if when == "mid" else 200
    expected = ["batches", "0", "samples", "0", "skipped", str(lost)]
    assert out.split()[-6:] == expected and ("first 16" in out) == (when == "mid"), out
