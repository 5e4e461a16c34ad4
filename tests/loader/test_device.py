"""The device path: selection, pinning and the on-device conversion math (run on CPU)."""

from __future__ import annotations

import pytest
import torch

from pixpack.errors import UsageError
from pixpack.loader import Loader
from pixpack.loader.device import convert_batch, cuda_device, pin_memory_available
from pixpack.ops import Normalize, RandomResizedCrop, ToOutput

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def test_cpu_device_selects_host_path_without_pinning(raw_pack):
    loader = Loader(raw_pack, 8, pipeline=[RandomResizedCrop(16)], device="cpu")
    assert cuda_device("cpu") is None and loader._stage is None
    next(iter(loader))
    assert all(not buf.storage.is_pinned() for buf in loader._ring)
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
