"""Moving batches to a CUDA device: uint8 over the bus, the float math on the GPU.

With ``device="cuda[:k]"`` workers fill *pinned* host buffers (uint8 NHWC staging for
8-bit packs; the final float batch for 16-bit ones); :class:`DeviceStage` then, on a
side CUDA stream,

1. copies the batch with ``tensor.to(device, non_blocking=True)`` (uint8: a quarter
   of the bytes of float32; the copy engine overlaps it with compute on other
   streams),
2. converts layout, dtype and Normalize there (``x * alpha + beta``) and drops failed
   samples,
3. records an event; the consumer's current stream waits on it (``wait_event``), so
   the batch is never read early, and ``record_stream`` tells the caching allocator
   the output is used on the consumer stream.

The same event guards the pinned buffer: before a worker rewrites it the loader calls
:meth:`DeviceStage.wait_reusable`, so an in-flight copy never reads half-new pixels
(``tests/loader/test_device.py`` replays this protocol with copies deferred as late as
CUDA allows). Everything CUDA is behind :func:`cuda_device`; without CUDA nothing here
runs.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..errors import UsageError
from .buffers import BatchBuffer
from .convert import OutputSpec
from .outputs import TorchOutput

__all__ = ["cuda_device", "pin_memory_available", "convert_batch", "DeviceStage"]

_TORCH_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def cuda_device(device: str | torch.device) -> torch.device | None:
    """The CUDA device for ``device``, None for the CPU; a usage error when CUDA is
    asked for and absent."""
    dev = torch.device(device)
    if dev.type == "cpu":
        return None
    if dev.type != "cuda":
        raise UsageError(f"device must be 'cpu' or 'cuda[:k]' (got {device!r}).")
    if not torch.cuda.is_available():
        raise UsageError(
            f"device={str(device)!r} but CUDA is not available here; use device='cpu' "
            "or install a CUDA build of torch."
        )
    if dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    return dev


def pin_memory_available() -> bool:
    """Pinned host memory only helps (and only works) with CUDA."""
    return torch.cuda.is_available()


def convert_batch(
    nhwc: torch.Tensor, spec: OutputSpec, alpha: torch.Tensor, beta: torch.Tensor
) -> torch.Tensor:
    """uint8 ``(N, H, W, C)`` -> the batch ``spec`` describes, with torch ops only, on
    whatever device ``nhwc`` lives (``alpha``/``beta``: ``(1, C, 1, 1)`` float32)."""
    x = nhwc.permute(0, 3, 1, 2)  # NCHW view of NHWC memory (channels_last)
    if spec.is_float:
        memory_format = torch.contiguous_format if spec.layout == "NCHW" else torch.channels_last
        out = torch.empty(
            x.shape, dtype=_TORCH_DTYPES[spec.dtype], device=x.device, memory_format=memory_format
        )
        if spec.dtype == "float32":
            out.copy_(x).mul_(alpha).add_(beta)
        else:  # normalise in float32, round once
            out.copy_(x.float().mul_(alpha).add_(beta))
    else:
        out = x
    if spec.layout == "NCHW":
        return out.contiguous()
    if spec.layout == "NHWC":
        return out.permute(0, 2, 3, 1)
    return out


class DeviceStage:
    """Turns a filled pinned host buffer into the final device tensors.

    ``host_spec`` is what the workers wrote: when it differs from ``spec`` (uint8
    staging) the conversion runs on the device, otherwise the batch is only moved.
    """

    pin = True  # page-locked host buffers: the only kind a copy can overlap with

    def __init__(self, device: torch.device, spec: OutputSpec, host_spec: OutputSpec) -> None:
        self.device = device
        self.spec = spec  # the final (device-side) spec
        self.convert = host_spec is not spec
        self.host = TorchOutput(host_spec)  # tensors over the pinned host buffers
        self.stream: Any = torch.cuda.Stream(device=device)
        shape = (1, spec.channels, 1, 1)
        self.alpha = torch.tensor(spec.alpha, dtype=torch.float32, device=device).view(shape)
        self.beta = torch.tensor(spec.beta, dtype=torch.float32, device=device).view(shape)

    def transfer(self, buf: BatchBuffer, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Issue copy + conversion of the first ``count`` samples of ``buf``, without the
        failed ones (``buf.ok``)."""
        consumer = torch.cuda.current_stream(self.device)
        ok = buf.ok[:count]
        with torch.cuda.stream(self.stream):
            # No wait_stream(consumer): the copy must overlap the consumer's queued
            # compute. Memory reuse across streams is handled by record_stream below.
            # The host tensors are temporaries over ``buf``'s memory, which ``buf`` keeps
            # alive; the event below keeps workers off it until the copies are done.
            if self.convert:
                nhwc = self.host.tensor(buf.storage[:count]).to(self.device, non_blocking=True)
                out = convert_batch(nhwc, self.spec, self.alpha, self.beta)
            else:  # converted on the host (16-bit packs); the layout is kept
                host = self.host.tensor(buf.storage[:count])
                if self.spec.layout == "channels_last":
                    host = host.permute(0, 3, 1, 2)
                out = host.to(self.device, non_blocking=True)
            y = torch.from_numpy(buf.labels_np[:count]).to(self.device, non_blocking=True)
            if not ok.all():
                keep = torch.from_numpy(np.flatnonzero(ok)).to(self.device)
                out, y = out[keep], y[keep]  # keeps channels_last (index_select does not)
            event = torch.cuda.Event()
            event.record(self.stream)
        consumer.wait_event(event)
        out.record_stream(consumer)
        y.record_stream(consumer)
        buf.event = event
        return out, y

    @staticmethod
    def wait_reusable(buf: BatchBuffer) -> None:
        """Block until the last copy out of ``buf`` has finished."""
        event, buf.event = buf.event, None
        if event is not None:
            event.synchronize()
