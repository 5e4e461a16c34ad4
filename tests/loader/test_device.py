"""The device path on CPU: selection, pinning, the on-device conversion math, and the
buffer-reuse protocol with copies deferred as late as CUDA allows."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pixpack.errors import UsageError
from pixpack.loader import Loader
from pixpack.loader import device as device_module
from pixpack.loader.device import convert_batch, cuda_device, pin_memory_available
from pixpack.loader.outputs import TorchOutput
from pixpack.ops import Normalize, RandomResizedCrop, ToOutput

from .helpers import write_pack

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def test_cpu_device_selects_host_path_without_pinning(raw_pack):
    loader = Loader(raw_pack, 8, pipeline=[RandomResizedCrop(16)], device="cpu")
    assert cuda_device("cpu") is None and loader._stage is None
    next(iter(loader))
    assert all(not torch.from_numpy(buf.storage).is_pinned() for buf in loader._ring)
    assert pin_memory_available() == torch.cuda.is_available()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without CUDA")
@pytest.mark.parametrize("device", ["cuda", "cuda:0"])
def test_cuda_without_cuda_is_a_usage_error(raw_pack, device):
    with pytest.raises(UsageError, match="CUDA is not available"):
        Loader(raw_pack, 8, device=device)


def test_unknown_device_rejected(raw_pack):
    with pytest.raises(UsageError):
        Loader(raw_pack, 8, device="meta")


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16", "uint8"])
@pytest.mark.parametrize("layout", ["NCHW", "channels_last", "NHWC"])
def test_device_conversion_matches_host_conversion(raw_pack, dtype, layout):
    """The GPU path moves uint8 NHWC and converts with torch ops; on CPU tensors the
    same function must give what the host path gives."""
    norm = [Normalize(MEAN, STD)] if dtype != "uint8" else []
    ops = [RandomResizedCrop(20), *norm, ToOutput(dtype, layout)]
    host, _ = next(iter(Loader(raw_pack, 8, pipeline=ops, seed=3)))
    raw_ops = [RandomResizedCrop(20), ToOutput("uint8", "NHWC")]
    nhwc, _ = next(iter(Loader(raw_pack, 8, pipeline=raw_ops, seed=3)))
    spec = Loader(raw_pack, 8, pipeline=ops).spec
    alpha = torch.tensor(spec.alpha).view(1, -1, 1, 1)
    beta = torch.tensor(spec.beta).view(1, -1, 1, 1)
    out = convert_batch(nhwc.clone(), spec, alpha, beta)
    assert out.shape == host.shape and out.dtype == host.dtype and out.stride() == host.stride()
    tol = {"float32": 1e-5, "float16": 2e-3, "bfloat16": 2e-2, "uint8": 0}[dtype]
    torch.testing.assert_close(out.float(), host.float(), atol=tol, rtol=tol)


class _DeferredCopy:
    """A stand-in for a CUDA event whose copy has not run yet."""

    def __init__(self, copy):
        self._copy = copy

    def synchronize(self) -> None:
        if self._copy is not None:
            self._copy, copy = None, self._copy
            copy()


class DeferredCopyStage:
    """DeviceStage's protocol without CUDA, with the worst timing CUDA allows: the copy
    out of a host buffer runs only when the loader waits for that buffer to be
    reusable (or at the end). A loader that rewrote a buffer before waiting would hand
    out the pixels of a later batch."""

    pin = False

    def __init__(self, device, spec, host_spec) -> None:
        self.spec, self.convert = spec, host_spec is not spec
        self.host = TorchOutput(host_spec)
        shape = (1, spec.channels, 1, 1)
        self.alpha = torch.tensor(spec.alpha, dtype=torch.float32).view(shape)
        self.beta = torch.tensor(spec.beta, dtype=torch.float32).view(shape)
        self.events: list[_DeferredCopy] = []
        self.waits = 0

    def _final(self, buf, count):
        host = self.host.tensor(buf.storage[:count]).clone()
        if self.convert:
            return convert_batch(host, self.spec, self.alpha, self.beta)
        return host.permute(0, 3, 1, 2) if self.spec.layout == "channels_last" else host

    def transfer(self, buf, count):
        keep = torch.from_numpy(np.flatnonzero(buf.ok[:count]))
        template = self._final(buf, count)[keep]
        out = torch.full_like(template, 77)  # what a batch read before its copy would hold
        y = torch.full((len(keep),), -1, dtype=torch.int64)

        def copy() -> None:
            out.copy_(self._final(buf, count)[keep])
            y.copy_(torch.from_numpy(buf.labels_np[:count])[keep])

        buf.event = _DeferredCopy(copy)
        self.events.append(buf.event)
        return out, y

    def wait_reusable(self, buf) -> None:
        self.waits += 1
        event, buf.event = buf.event, None
        if event is not None:
            event.synchronize()

    def finish(self) -> None:
        for event in self.events:
            event.synchronize()


@pytest.fixture
def fake_cuda(monkeypatch):
    """``device="cuda"`` selects a DeferredCopyStage; returns the stages created."""
    stages: list[DeferredCopyStage] = []

    def make_stage(*args):
        stages.append(DeferredCopyStage(*args))
        return stages[-1]

    monkeypatch.setattr(
        device_module, "cuda_device", lambda d: None if d == "cpu" else torch.device("cuda", 0)
    )
    monkeypatch.setattr(device_module, "DeviceStage", make_stage)
    return stages


def _uint16_pack(photos, tmp_path):
    images = [(img[:40, :50].astype(np.uint16) * 257) for img in photos[:20]]
    return write_pack(tmp_path / "deep.pixpack", images, [i % 3 for i in range(20)])


@pytest.mark.parametrize("workers, prefetch", [(1, 1), (2, 2), (3, 4)])
@pytest.mark.parametrize("dtype, layout", [("float32", "NCHW"), ("bfloat16", "channels_last")])
@pytest.mark.parametrize("kind", ["raw", "jpeg", "uint16"])
def test_device_path_rewrites_a_buffer_only_after_its_copy(
    fake_cuda, raw_pack, jpeg_pack, photos, tmp_path, kind, dtype, layout, workers, prefetch
):
    """Every batch reaching the 'device' equals the host path's, although each copy out
    of a pinned buffer is deferred until the loader must reuse that buffer."""
    pack = {"raw": raw_pack, "jpeg": jpeg_pack}.get(kind) or _uint16_pack(photos, tmp_path)
    ops = [RandomResizedCrop(20), Normalize(MEAN, STD), ToOutput(dtype, layout)]
    args = dict(pipeline=ops, seed=5, workers=workers, prefetch=prefetch)
    expected = [(x.clone(), y.clone()) for x, y in Loader(pack, 6, **args)]
    loader = Loader(pack, 6, device="cuda", **args)
    got = [(x, y) for x, y in loader]
    (stage,) = fake_cuda
    assert stage.convert == (kind != "uint16")  # 8-bit: uint8 staging, converted there
    assert all(not torch.from_numpy(buf.storage).is_pinned() for buf in loader._ring)
    assert stage.waits >= len(got) - 1  # every reused buffer was waited for
    stage.finish()
    assert len(got) == len(expected)
    for (x, y), (ex, ey) in zip(got, expected, strict=True):
        assert x.dtype == ex.dtype and x.shape == ex.shape and x.stride() == ex.stride()
        torch.testing.assert_close(x.float(), ex.float(), atol=2e-2, rtol=2e-2)
        assert torch.equal(y, ey)


def test_device_path_drops_failed_samples(fake_cuda, small_images, tmp_path):
    pack = write_pack(tmp_path / "bad.pixpack", small_images[:12], jpeg=True, garbage=4)
    ops = [RandomResizedCrop(16), Normalize(MEAN, STD)]
    args = dict(pipeline=ops, seed=1, on_error="skip", shuffle=False)
    expected = [(x.clone(), y.clone()) for x, y in Loader(pack, 6, **args)]
    got = list(Loader(pack, 6, device="cuda", **args))
    fake_cuda[0].finish()
    assert [len(y) for _, y in got] == [5, 6]
    for (x, y), (ex, ey) in zip(got, expected, strict=True):
        torch.testing.assert_close(x, ex, atol=1e-5, rtol=1e-5)
        assert torch.equal(y, ey)
