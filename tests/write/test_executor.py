"""Thread vs process workers: the choice, identical bytes, bounded window, prompt stop,
and SIGKILL / SIGTERM / Ctrl-C + resume when packing runs in threads."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from pixpack import format as fmt
from pixpack import sample_data
from pixpack.errors import NotAPackError, UsageError
from pixpack.read.open_any import open_pack
from pixpack.write import CsvSource, ImageFolderSource, SequenceSource, pack
from pixpack.write.packer import _Job, _results, _worker_kind
from pixpack.write.writer import JOURNAL_DTYPE, partial_paths


class _Counting:
    """A synthetic source counting its loads (threads only); each load takes ``delay``."""

    def __init__(self, n: int, delay: float = 0.0) -> None:
        self.classes: list[str] = []
        self.n = n
        self.delay = delay
        self.loaded = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return self.n

    def load(self, i: int):
        with self._lock:
            self.loaded += 1
        if self.delay:
            time.sleep(self.delay)
        return np.full((8, 8, 3), i % 256, np.uint8), 0

    def describe(self):
        return {"type": "counting", "num_items": self.n}

    def fingerprint(self):
        return None

    def path_of(self, i: int) -> str:
        return f"item {i}"


def test_auto_picks_threads_for_file_sources_only(photo_folder, tmp_path):
    folder = ImageFolderSource(photo_folder)
    assert _worker_kind(folder, "auto") == "thread"
    (tmp_path / "l.csv").write_text("".join(f"{p},{lab}\n" for p, lab in folder.samples))
    assert _worker_kind(CsvSource(tmp_path / "l.csv"), "auto") == "thread"
    assert _worker_kind(SequenceSource(folder.samples), "auto") == "thread"

    class Custom(ImageFolderSource):  # may override load() with GIL-bound Python
        pass

    assert _worker_kind(Custom(photo_folder), "auto") == "process"
    assert _worker_kind(_Counting(3), "auto") == "process"

    class Dataset:  # a map-style dataset: __getitem__ may be pure Python
        def __len__(self):
            return 3

        def __getitem__(self, i):
            return np.zeros((4, 4, 3), np.uint8), 0

    assert _worker_kind(SequenceSource(Dataset()), "auto") == "process"
    assert _worker_kind(_Counting(3), "thread") == "thread"
    assert _worker_kind(folder, "process") == "process"
    with pytest.raises(UsageError, match="executor"):
        pack(photo_folder, tmp_path / "x.pixpack", executor="fibers", quiet=True)
    assert list(tmp_path.iterdir()) == [tmp_path / "l.csv"]


@pytest.mark.parametrize("mode", ["raw", "jpeg"])
def test_threads_and_processes_write_the_same_bytes(photo_folder, tmp_path, mode):
    kw = dict(mode=mode, max_side=96, quiet=True)
    a = pack(photo_folder, tmp_path / "t.pixpack", workers=2, executor="thread", **kw)
    b = pack(photo_folder, tmp_path / "p.pixpack", workers=2, executor="process", **kw)
    c = pack(photo_folder, tmp_path / "1.pixpack", workers=1, **kw)
    data = [s.path.read_bytes() for s in (a, b, c)]
    with open_pack(a.path) as pa:
        end = int(pa.index["offset"][-1] + pa.index["nbytes"][-1])
        index = np.array(pa.index)
        meta = pa.metadata
    for other, summary in zip(data[1:], (b, c), strict=True):
        assert other[fmt.DATA_ALIGN : end] == data[0][fmt.DATA_ALIGN : end]
        with open_pack(summary.path) as p:
            np.testing.assert_array_equal(np.array(p.index), index)
            assert (p.metadata["mean"], p.metadata["std"]) == (meta["mean"], meta["std"])


def test_thread_window_is_bounded_and_stops_promptly():
    src = _Counting(20_000, delay=0.002)
    chunks = _results(src, _Job("raw", 90, None, None), 0, len(src), 2, "thread")
    first = next(chunks)
    assert [r.source_index for r in first] == list(range(len(first)))
    time.sleep(0.5)  # the consumer stalls: the threads must not run ahead
    stalled = src.loaded
    assert 0 < stalled <= (2 * 3 + 2) * 16
    chunks.close()  # as on Ctrl-C: queued chunks are cancelled, busy threads stop
    closed = src.loaded
    time.sleep(0.3)
    assert src.loaded <= closed + 2  # at most the item each thread was starting
    deadline = time.monotonic() + 5
    while any(t.name.startswith("pixpack-pack") for t in threading.enumerate()):
        assert time.monotonic() < deadline, "worker threads did not exit"
        time.sleep(0.01)


# -- crashes while packing in threads ---------------------------------------------------------
_CHILD = textwrap.dedent(
    """
    import sys, time
    from pixpack.write import ImageFolderSource, pack

    class Slow(ImageFolderSource):
        def load(self, i):
            time.sleep(0.01)
            return super().load(i)

    pack(Slow(sys.argv[1]), sys.argv[2], workers=2, max_side=48, quiet=True, executor="thread")
    """
)


@pytest.fixture(scope="module")
def small_folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("small_threads")
    return sample_data.make_image_folder(root, num_classes=3, per_class=100, size=(64, 48))


@pytest.fixture(scope="module")
def reference(small_folder, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ref_threads") / "ref.pixpack"
    pack(small_folder, out, workers=1, max_side=48, quiet=True)
    return out


def _journal_records(out: Path) -> int:
    journal = partial_paths(out)[1]
    if not journal.exists():
        return 0
    return max(0, (journal.stat().st_size - 4096) // JOURNAL_DTYPE.itemsize)


def _assert_same_pack(a: Path, b: Path) -> None:
    with open_pack(a) as pa, open_pack(b) as pb:
        np.testing.assert_array_equal(np.array(pa.index), np.array(pb.index))
        for i in range(len(pa)):
            assert bytes(pa.sample_bytes(i)) == bytes(pb.sample_bytes(i))
        assert pa.metadata["mean"] == pytest.approx(pb.metadata["mean"], rel=1e-12)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT])
def test_signals_while_packing_in_threads(small_folder, reference, tmp_path, sig):
    out = tmp_path / "t.pixpack"
    log = out.with_name("child.log")
    with open(log, "w") as f:
        child = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(small_folder), str(out)], stdout=f, stderr=f
        )
    try:
        deadline = time.monotonic() + 60
        while _journal_records(out) < 64:
            assert child.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "no progress in the journal"
            time.sleep(0.01)
        assert not psutil.Process(child.pid).children(), "threads, not processes"
        os.kill(child.pid, sig)
        child.wait(timeout=20)  # threads stop after their current image
    finally:
        child.kill()
    assert child.returncode != 0
    if sig != signal.SIGKILL:
        assert "resume=True" in log.read_text() and "--resume" in log.read_text()
    tmp, journal, _ = partial_paths(out)
    assert not out.exists()
    assert tmp.read_bytes()[: fmt.HEADER_SIZE] == b"\x00" * fmt.HEADER_SIZE
    with pytest.raises(NotAPackError):
        open_pack(tmp)
    assert 0 < _journal_records(out) < 300
    summary = pack(small_folder, out, workers=2, max_side=48, quiet=True, resume=True)
    assert summary.num_samples == 300
    assert not tmp.exists() and not journal.exists()
    _assert_same_pack(out, reference)
