"""SIGKILL, SIGTERM and Ctrl-C while packing: nothing half-written opens, resume completes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from pixpack import format as fmt
from pixpack import sample_data
from pixpack.errors import NotAPackError
from pixpack.read.open_any import open_pack
from pixpack.write import pack
from pixpack.write.writer import JOURNAL_DTYPE, partial_paths

# A child process packing with 2 workers through a source that is slowed down a little,
# so the kill lands mid-pack; describe()/fingerprint() are the plain folder's, so a
# resume from this process (with the plain folder) continues the same pack.
_CHILD = textwrap.dedent(
    """
    import sys, time
    from pixpack.write import ImageFolderSource, pack

    class Slow(ImageFolderSource):
        def load(self, i):
            time.sleep(0.01)
            return super().load(i)

    pack(Slow(sys.argv[1]), sys.argv[2], workers=2, max_side=48, quiet=True)
    """
)


@pytest.fixture(scope="module")
def small_folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("small")
    return sample_data.make_image_folder(root, num_classes=3, per_class=100, size=(64, 48))


def _journal_records(out: Path) -> int:
    journal = partial_paths(out)[1]
    if not journal.exists():
        return 0
    return max(0, (journal.stat().st_size - 4096) // JOURNAL_DTYPE.itemsize)


def _start_child(folder: Path, out: Path, own_group: bool = False) -> subprocess.Popen:
    # Output goes to a file, not a pipe: orphaned workers would hold a pipe open.
    with open(out.with_name("child.log"), "w") as log:
        return subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(folder), str(out)], stdout=log, stderr=log,
            start_new_session=own_group,
        )  # fmt: skip


def _child_output(out: Path) -> str:
    return out.with_name("child.log").read_text()


def _kill_all(processes: list[psutil.Process]) -> list[psutil.Process]:
    """Wait for processes to end; kill (and return) those still alive after 10 s."""
    _, alive = psutil.wait_procs(processes, timeout=10)
    for p in alive:
        p.kill()
    return alive


def _wait_for_progress(child: subprocess.Popen, out: Path, records: int) -> None:
    deadline = time.monotonic() + 60
    while _journal_records(out) < records:
        assert child.poll() is None, _child_output(out)
        assert time.monotonic() < deadline, "no progress in the journal"
        time.sleep(0.01)


def _assert_same_pack(a: Path, b: Path) -> None:
    with open_pack(a) as pa, open_pack(b) as pb:
        np.testing.assert_array_equal(np.array(pa.index), np.array(pb.index))
        for i in range(len(pa)):
            assert bytes(pa.sample_bytes(i)) == bytes(pb.sample_bytes(i))
        assert pa.metadata["mean"] == pytest.approx(pb.metadata["mean"], rel=1e-12)
        assert pa.metadata["class_counts"] == pb.metadata["class_counts"]


@pytest.fixture(scope="module")
def reference(small_folder, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ref") / "ref.pixpack"
    pack(small_folder, out, workers=1, max_side=48, quiet=True)
    return out


def test_sigkill_leaves_no_pack_and_resume_completes(small_folder, reference, tmp_path):
    out = tmp_path / "k.pixpack"
    child = _start_child(small_folder, out)
    _wait_for_progress(child, out, 64)
    workers = psutil.Process(child.pid).children()
    assert workers, "packing should run in worker processes"
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    # The workers die with their parent instead of blocking forever.
    assert not _kill_all(workers)
    tmp, journal, _ = partial_paths(out)
    assert not out.exists()
    assert tmp.read_bytes()[: fmt.HEADER_SIZE] == b"\x00" * fmt.HEADER_SIZE
    with pytest.raises(NotAPackError):
        open_pack(tmp)
    done_before = _journal_records(out)
    assert 0 < done_before < 300
    summary = pack(small_folder, out, workers=2, max_side=48, quiet=True, resume=True)
    assert summary.num_samples == 300
    assert not tmp.exists() and not journal.exists()
    _assert_same_pack(out, reference)


def _signal_mid_pack(folder: Path, out: Path, send, own_group: bool = False):
    """Start a packing child, call ``send(pid)`` once it has written 64 records and wait
    for it to exit; returns its worker processes (gone by then) and its output."""
    child = _start_child(folder, out, own_group)
    _wait_for_progress(child, out, 64)
    workers = psutil.Process(child.pid).children()
    send(child.pid)
    try:
        child.wait(timeout=20)
    finally:
        child.kill()
        _kill_all(workers)
    assert child.returncode != 0
    return workers, _child_output(out)


def _resume_completes(folder: Path, out: Path, reference: Path) -> None:
    assert not out.exists() and partial_paths(out)[0].exists()
    summary = pack(folder, out, workers=1, max_side=48, quiet=True, resume=True)
    assert summary.num_samples == 300
    _assert_same_pack(out, reference)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_ctrl_c_keep_the_partial_pack(small_folder, reference, tmp_path, sig):
    out = tmp_path / "t.pixpack"
    workers, stderr = _signal_mid_pack(small_folder, out, lambda pid: os.kill(pid, sig))
    assert "resume=True" in stderr and "--resume" in stderr
    assert not _kill_all(workers)
    _resume_completes(small_folder, out, reference)


def test_sigterm_to_the_whole_process_group_keeps_the_partial_pack(
    small_folder, reference, tmp_path
):
    """A batch scheduler (SLURM's scancel, a closed terminal) signals the parent and its
    worker processes at once: the partial pack is still kept, the message says how to
    resume, and the resume gives the same bytes."""
    out = tmp_path / "g.pixpack"
    workers, stderr = _signal_mid_pack(
        small_folder, out, lambda pid: os.killpg(pid, signal.SIGTERM), own_group=True
    )
    assert workers, "process workers expected"
    assert "resume=True" in stderr and "BrokenProcessPool" not in stderr, stderr[-2000:]
    _resume_completes(small_folder, out, reference)


def test_resume_without_partial_starts_fresh(small_folder, reference, tmp_path):
    out = tmp_path / "f.pixpack"
    pack(small_folder, out, workers=2, max_side=48, quiet=True, resume=True)
    _assert_same_pack(out, reference)
