"""``Loader(output="numpy")``: the framework-neutral batches, and who owns their memory."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from pixpack.errors import MissingDependencyError, UsageError
from pixpack.loader import Loader
from pixpack.ops import Normalize, RandomHorizontalFlip, RandomResizedCrop, ToOutput

from .helpers import photo_images, write_pack

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
AUGMENT = [RandomResizedCrop(24, scale=(0.3, 1.0)), RandomHorizontalFlip()]


def _as_numpy(x: torch.Tensor) -> np.ndarray:
    if x.dtype == torch.bfloat16:
        return x.float().numpy()
    return x.numpy()


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16", "uint8", "int32"])
@pytest.mark.parametrize("layout", ["NCHW", "NHWC", "channels_last"])
def test_numpy_batches_equal_torch_batches(jpeg_pack, dtype, layout):
    norm = [Normalize(MEAN, STD)] if dtype not in ("uint8", "int32") else []
    ops = [*AUGMENT, *norm, ToOutput(dtype, layout)]
    args = dict(pipeline=ops, seed=4, workers=2)
    got = list(Loader(jpeg_pack, 16, output="numpy", **args))
    want = list(Loader(jpeg_pack, 16, **args))
    assert len(got) == len(want) == 4
    for (x, y), (tx, ty) in zip(got, want, strict=True):
        assert isinstance(x, np.ndarray) and isinstance(y, np.ndarray)
        assert x.shape == tuple(tx.shape) and y.dtype == np.int64
        assert str(x.dtype) == str(tx.dtype).removeprefix("torch.")
        assert np.array_equal(x.astype(np.float32), _as_numpy(tx).astype(np.float32))
        assert np.array_equal(y, ty.numpy())
    if layout == "channels_last":  # NCHW shape over NHWC memory, as in torch
        assert got[0][0].transpose(0, 2, 3, 1).flags.c_contiguous


def test_kept_batches_never_change_and_aliases_count_as_references(jpeg_pack):
    """Every way of keeping a batch (the array, a view, np.asarray, DLPack, a slice of
    the labels) keeps its memory away from the loader."""
    ops = [*AUGMENT, Normalize(MEAN, STD)]
    loader = Loader(jpeg_pack, 8, pipeline=ops, seed=2, output="numpy", prefetch=1)
    kept = []
    for i, (x, y) in enumerate(loader):
        alias = [x, x[1:], np.asarray(x), np.from_dlpack(x), x.reshape(len(x), -1)][i % 5]
        kept.append((alias, y[:]))
    for _ in loader:  # another epoch through the same loader
        pass
    fresh = Loader(jpeg_pack, 8, pipeline=ops, seed=2, output="numpy")
    for i, ((alias, y), (x, fy)) in enumerate(zip(kept, fresh, strict=True)):
        expect = [x, x[1:], x, x, x.reshape(len(x), -1)][i % 5]
        assert np.array_equal(alias, expect) and np.array_equal(y, fy)


def test_a_loop_that_drops_batches_allocates_nothing(jpeg_pack):
    loader = Loader(jpeg_pack, 4, pipeline=AUGMENT, seed=1, output="numpy", prefetch=2)
    bases = set()
    for _ in range(3):
        for x, _ in loader:
            bases.add(x.base.__array_interface__["data"][0] if x.base is not None else id(x))
    assert len(bases) <= 2 + 2  # prefetch + 2 buffers, reused for 3 epochs of 13 batches
    # The four: idle, or holding the next epoch's first batches (started early).
    early = loader._next.pending if loader._next is not None else ()
    assert len(loader._ring) + len(early) == 4
    assert {id(b) for b in loader._ring}.isdisjoint(id(b) for b, _ in early)


def test_skipped_samples_are_dropped(photos, tmp_path):
    images = photo_images(photos, 12)
    pack = write_pack(tmp_path / "bad.pixpack", images, jpeg=True, garbage=5)
    with pytest.warns(UserWarning, match="skipped 1 sample"):
        batches = list(
            Loader(pack, 4, pipeline=AUGMENT, output="numpy", on_error="skip", shuffle=False)
        )
    sizes = [len(y) for _, y in batches]
    assert sizes == [4, 3, 4] and 5 not in np.concatenate([y for _, y in batches])


def test_int32_batches_hold_the_pixels(jpeg_pack):
    """int32 NCHW once went through the float path's OpenCV conversion (garbage)."""
    for layout in ("NCHW", "NHWC"):
        args = dict(seed=3, output="numpy", workers=1)
        ints = Loader(jpeg_pack, 8, pipeline=[*AUGMENT, ToOutput("int32", layout)], **args)
        pixels = Loader(jpeg_pack, 8, pipeline=[*AUGMENT, ToOutput("uint8", layout)], **args)
        for (x, _), (u, _) in zip(ints, pixels, strict=True):
            assert x.dtype == np.int32 and np.array_equal(x, u.astype(np.int32))


def test_usage_errors(jpeg_pack, monkeypatch):
    with pytest.raises(UsageError, match="output must be one of"):
        Loader(jpeg_pack, 4, pipeline=AUGMENT, output="tensorflow")
    with pytest.raises(UsageError, match="needs output='torch'"):
        Loader(jpeg_pack, 4, pipeline=AUGMENT, output="numpy", device="cuda")
    monkeypatch.setitem(sys.modules, "ml_dtypes", None)  # as if not installed
    with pytest.raises(MissingDependencyError, match=r"pip install ml_dtypes"):
        Loader(jpeg_pack, 4, output="numpy", pipeline=[*AUGMENT, ToOutput("bfloat16")])


def test_numpy_output_does_not_import_torch(jpeg_pack):
    """torch is installed here, yet the NumPy path never imports it (nor TF or JAX)."""
    code = textwrap.dedent(
        f"""
        import sys
        import pixpack
        from pixpack.ops import RandomResizedCrop, Normalize
        loader = pixpack.Loader({str(jpeg_pack.path)!r}, 8, output="numpy",
                                pipeline=[RandomResizedCrop(16), Normalize((0.5,), (0.2,))])
        n = sum(len(y) for _, y in loader)
        print(n, sorted(m for m in ("torch", "tensorflow", "jax") if m in sys.modules))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.split(maxsplit=1) == ["50", "[]\n"]
