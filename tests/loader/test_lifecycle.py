"""Errors and lifecycle: policies, no hangs, threads and memory released."""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from pixpack.errors import LoaderError
from pixpack.loader import Loader
from pixpack.ops import RandomResizedCrop

from .helpers import photo_images, write_pack

pytestmark = pytest.mark.timeout(60)
BAD = 13


@pytest.fixture(scope="module")
def corrupt_pack(photos, tmp_path_factory):
    images = photo_images(photos, 40)
    path = tmp_path_factory.mktemp("corrupt") / "corrupt.pixpack"
    return write_pack(path, images, jpeg=True, garbage=BAD)


@pytest.mark.parametrize("workers", [1, 3])
def test_raise_policy_names_the_sample(corrupt_pack, workers):
    loader = Loader(
        corrupt_pack, 8, pipeline=[RandomResizedCrop(16)], workers=workers, shuffle=False
    )
    got = []
    with pytest.raises(LoaderError) as info:
        for _, y in loader:
            got.append(y.clone())
    assert info.value.index == BAD
    assert info.value.__cause__ is not None
    assert "sample 13" in str(info.value)
    assert len(got) == BAD // 8  # the batches before the bad one were delivered


def test_skip_policy_drops_only_the_bad_sample(corrupt_pack):
    loader = Loader(
        corrupt_pack, 8, pipeline=[RandomResizedCrop(16)], shuffle=False, on_error="skip"
    )
    batches = [(x.clone(), y.clone()) for x, y in loader]
    labels = torch.cat([y for _, y in batches]).tolist()
    assert labels == [i for i in range(40) if i != BAD]
    assert [len(y) for _, y in batches] == [8, 7, 8, 8, 8]
    x1 = batches[1][0]
    clean = Loader(
        corrupt_pack, 8, pipeline=[RandomResizedCrop(16)], shuffle=False, on_error="skip"
    )
    ref = [x.clone() for x, _ in clean][1]  # deterministic: same samples, same pixels
    assert torch.equal(x1, ref)


@pytest.mark.parametrize(
    "layout, contiguous",
    [("NCHW", torch.contiguous_format), ("channels_last", torch.channels_last)],
)
def test_skip_keeps_the_declared_layout(corrupt_pack, layout, contiguous):
    """The batch missing its bad sample is gathered anew; it must keep the memory format
    (index_select would return NCHW memory for channels_last)."""
    loader = Loader(
        corrupt_pack,
        8,
        pipeline=[RandomResizedCrop(16)],
        shuffle=False,
        on_error="skip",
        dtype="float32",
        layout=layout,
    )
    short = [x for x, y in loader if len(y) == 7]
    assert len(short) == 1 and short[0].is_contiguous(memory_format=contiguous)


def test_skip_never_yields_an_empty_batch_and_reports_what_it_skipped(corrupt_pack):
    """Issue 13: with one sample per batch the bad one left an empty (0, 3, 16, 16) batch
    and nothing said what was dropped."""
    loader = Loader(
        corrupt_pack, 1, pipeline=[RandomResizedCrop(16)], shuffle=False, on_error="skip"
    )
    with pytest.warns(UserWarning, match=r"epoch 0: skipped 1 sample\(s\) .*first: sample 13"):
        sizes = [len(y) for _, y in loader]
    assert sizes == [1] * 39
    assert [index for index, _ in loader.skipped] == [BAD]
    assert loader.state_dict()["epoch"] == 1  # the epoch ran to its end
    with pytest.warns(UserWarning, match="epoch 1: skipped 1"):
        assert sum(len(y) for _, y in loader) == 39
    assert len(loader.skipped) == 1  # per epoch, not accumulated


def test_warn_policy_warns_and_skips(corrupt_pack):
    loader = Loader(
        corrupt_pack, 8, pipeline=[RandomResizedCrop(16)], shuffle=False, on_error="warn"
    )
    with pytest.warns(UserWarning, match="sample 13"):
        total = sum(len(y) for _, y in loader)
    assert total == 39


def test_op_exception_in_thread_surfaces(photos, tmp_path):
    def boom(img):
        raise RuntimeError("kaboom")

    pack = write_pack(tmp_path / "p.pixpack", photo_images(photos, 16), [0] * 16)
    with pytest.raises(LoaderError, match="kaboom"):
        next(iter(Loader(pack, 4, pipeline=[boom], workers=2)))


def _loader_threads() -> int:
    return sum(t.name.startswith("pixpack-loader") for t in threading.enumerate())


def _wait_loader_threads_gone() -> int:
    """Loader threads alive after up to ~5 s (GC'd loaders end theirs without joining)."""
    for _ in range(100):
        gc.collect()
        if _loader_threads() == 0:
            break
        time.sleep(0.05)
    return _loader_threads()


def test_break_and_del_release_threads(photos, tmp_path):
    pack = write_pack(tmp_path / "p.pixpack", photo_images(photos, 64), [0] * 64)
    assert _wait_loader_threads_gone() == 0  # earlier tests' loaders are gone
    loader = Loader(pack, 4, pipeline=[RandomResizedCrop(16)], workers=3, prefetch=3)
    for i, _ in enumerate(loader):
        if i == 2:
            break
    assert _loader_threads() > 0  # the pool is kept for the next epoch
    del loader
    assert _wait_loader_threads_gone() == 0


def test_close_and_context_manager(photos, tmp_path):
    pack = write_pack(tmp_path / "p.pixpack", photo_images(photos, 32), [0] * 32)
    assert _wait_loader_threads_gone() == 0
    with Loader(pack, 4, pipeline=[RandomResizedCrop(16)], workers=2) as loader:
        it = iter(loader)
        next(it)
    assert _loader_threads() == 0  # close() joins its threads before returning
    with pytest.raises(LoaderError):
        iter(loader)


def test_new_iter_replaces_unfinished_one(photos, tmp_path):
    pack = write_pack(tmp_path / "p.pixpack", photo_images(photos, 32), list(range(32)))
    loader = Loader(pack, 4, pipeline=[RandomResizedCrop(16)], workers=2, dtype="uint8")
    first = iter(loader)
    next(first)
    loader.set_epoch(0)
    labels = torch.cat([y.clone() for _, y in loader])
    assert sorted(labels.tolist()) == list(range(32))
    with pytest.raises(StopIteration):
        next(first)  # the abandoned iteration was closed


_MEMORY_SCRIPT = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    import numpy as np
    from pixpack.loader import Loader
    from pixpack.ops import Normalize, RandomHorizontalFlip, RandomResizedCrop
    from loader.helpers import write_pack

    def rss_anon_kb():
        for line in open("/proc/self/status"):
            if line.startswith("RssAnon:"):
                return int(line.split()[1])

    def run(n, epochs):
        rng = np.random.default_rng(n)
        distinct = [rng.integers(0, 255, (96, 128, 3), dtype=np.uint8) for _ in range(16)]
        pack = write_pack({tmp!r} + f"/{{n}}.pixpack", [distinct[i % 16] for i in range(n)])
        ops = [RandomResizedCrop(48), RandomHorizontalFlip(), Normalize((0.5,), (0.5,))]
        loader = Loader(pack, 32, pipeline=ops, workers=2)
        for x, y in loader:  # warm-up: buffers, threads, allocator pools
            pass
        start = rss_anon_kb()
        for _ in range(epochs):
            for x, y in loader:
                pass
        return start, rss_anon_kb()

    small = run(128, 25)  # many epochs of a small pack
    large = run(1536, 1)  # a 12x larger pack (57 MB)
    print(*small, *large)
    """
)


def test_anonymous_memory_flat_over_epochs_and_pack_size(tmp_path):
    tests = str(Path(__file__).resolve().parents[1])
    script = _MEMORY_SCRIPT.format(tests=tests, tmp=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=55)
    assert out.returncode == 0, out.stderr
    small_start, small_end, large_start, large_end = map(int, out.stdout.split())
    # 25 epochs: a per-sample or per-epoch leak would show as MBs.
    assert small_end - small_start < 4 * 1024, (small_start, small_end)
    # The 57 MB pack is memory-mapped: iterating it adds no anonymous memory.
    assert large_end - large_start < 4 * 1024, (large_start, large_end)
    assert large_end - small_end < 16 * 1024, (small_end, large_end)


def test_no_extra_threads_warning_free(photos, tmp_path):
    pack = write_pack(tmp_path / "p.pixpack", photo_images(photos, 8), [0] * 8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in Loader(pack, 4, pipeline=[RandomResizedCrop(16)], workers=1):
            pass
    assert np.all(pack.index["label"] == 0)
