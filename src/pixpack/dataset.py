"""PackDataset: a map-style torch Dataset over a pack, a drop-in for ImageFolder.

Replace ``torchvision.datasets.ImageFolder(root, transform=t)`` with
``PackDataset("train.pixpack", transform=t)`` and an unchanged torchvision pipeline
keeps working: items are ``(transform(PIL image), target_transform(label))`` and
``classes`` / ``class_to_idx`` / ``targets`` are there.

One deliberate difference: ``targets`` is a read-only numpy int64 array (a view of the
pack's index), not a Python list, so a million-sample dataset does not create a
million int objects in every worker. It supports ``len``, indexing, iteration,
``np.bincount`` and ``torch.as_tensor``; call ``.tolist()`` where a list is required.
``samples`` (file paths) does not exist: there are no files.

``indices=`` makes it a view of those samples (a split): ``len``, ``targets`` and item
``i`` are those of ``indices[i]``. Under torchrun, shard it with
:class:`pixpack.ShardSampler` (which also works before ``init_process_group``).

DataLoader workers: the dataset pickles as the pack's path, and each worker maps the
file lazily on first use, so ``num_workers > 0`` works with fork, spawn and forkserver.

Needs torch (``pip install 'pixpack[torch]'``); without it, ``pack[i]`` and
``pixpack.Loader(..., output="numpy")`` give the same images as NumPy arrays.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from PIL import Image

from .errors import UsageError
from .optional import require
from .read.open_any import open_pack
from .read.pack import Pack

if TYPE_CHECKING:
    import torch
else:  # a torch Dataset: without torch, importing it names the extra to install
    torch = require("torch", "pixpack.PackDataset (a torch Dataset)")

__all__ = ["PackDataset", "to_pil", "to_tensor_chw"]

Output = Literal["pil", "numpy", "tensor"]


def to_pil(image: np.ndarray) -> Image.Image:
    """HWC array to PIL: uint8 1/3/4 channels -> 'L'/'RGB'/'RGBA'; one channel of
    uint16 or int16 -> 'I' (32-bit: torchvision's ``ToTensor``/``pil_to_tensor`` give
    the exact values; 'I;16' would come back as int16 and wrap above 32767); float32 ->
    'F'. PIL has no mode for other pixel types and channel counts."""
    channels = image.shape[2]
    if image.dtype == np.uint8 and channels in (1, 3, 4):
        return Image.fromarray(image[:, :, 0] if channels == 1 else image)
    if channels == 1 and image.dtype in (np.uint16, np.int16):
        return Image.fromarray(image[:, :, 0].astype(np.int32), mode="I")
    if channels == 1 and image.dtype == np.float32:
        return Image.fromarray(np.ascontiguousarray(image[:, :, 0]), mode="F")
    raise UsageError(
        f"PIL has no mode for {channels}-channel {image.dtype} images; use PackDataset(..., "
        "output='numpy') or output='tensor' for this pack"
    )


def to_tensor_chw(image: np.ndarray) -> torch.Tensor:
    """HWC array to a contiguous CHW tensor of the same dtype, no scaling."""
    return torch.from_numpy(image.transpose(2, 0, 1).copy())  # a copy: views may be read-only


class PackDataset(torch.utils.data.Dataset):
    """Map-style dataset over a pack.

    path_or_pack: a pack path, or an open :class:`~pixpack.read.pack.Pack`.
    transform: applied to the image (PIL image, HWC array or CHW tensor, see ``output``).
    target_transform: applied to the integer label.
    output: ``"pil"`` (default, for unchanged torchvision pipelines), ``"numpy"``
        (HWC uint8/uint16, writable) or ``"tensor"`` (CHW uint8/uint16, not scaled).
    indices: only these samples, in this order (repeats allowed).
    """

    def __init__(
        self,
        path_or_pack: str | os.PathLike[str] | Pack,
        transform: Callable[[Any], Any] | None = None,
        target_transform: Callable[[int], Any] | None = None,
        output: Output = "pil",
        indices: Any = None,
    ) -> None:
        if output not in ("pil", "numpy", "tensor"):
            raise UsageError(f"output must be 'pil', 'numpy' or 'tensor' (got {output!r}).")
        if indices is None and hasattr(path_or_pack, "indices"):  # a Subset (query, split)
            path_or_pack, indices = path_or_pack.pack, path_or_pack.indices  # type: ignore[union-attr]
        self.pack = (
            open_pack(path_or_pack)
            if isinstance(path_or_pack, (str, os.PathLike))
            else path_or_pack  # a Pack or a ShardedPack
        )
        self.transform = transform
        self.target_transform = target_transform
        self.output = output
        self.indices: np.ndarray | None = None
        if indices is not None:
            from .loader.sampling import check_indices

            self.indices = check_indices(indices, len(self.pack), self.pack.path)

    @property
    def root(self) -> str:
        return str(self.pack.path)

    @property
    def classes(self) -> list[str]:
        return self.pack.classes

    @property
    def class_to_idx(self) -> dict[str, int]:
        return self.pack.class_to_idx

    @property
    def targets(self) -> np.ndarray:
        """Labels, a read-only int64 numpy view (not a list; see the module docstring)."""
        if self.indices is not None:
            return self.pack.targets[self.indices]
        return self.pack.targets

    def __len__(self) -> int:
        return len(self.pack) if self.indices is None else len(self.indices)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        if self.indices is not None:
            index = int(self.indices[index])
        if self.output == "numpy":
            image, label = self.pack[index]
            sample: Any = image
        else:
            view = self.pack.read_image(index)  # zero-copy for raw; converted once below
            label = self.pack.label(index)
            sample = to_pil(view) if self.output == "pil" else to_tensor_chw(view)
        if self.transform is not None:
            sample = self.transform(sample)
        target: Any = label
        if self.target_transform is not None:
            target = self.target_transform(label)
        return sample, target

    def __repr__(self) -> str:
        lines = [
            f"Dataset {type(self).__name__}",
            f"    Number of datapoints: {len(self)}",
            f"    Pack: {self.pack.path}",
            f"    Output: {self.output}",
        ]
        if self.transform is not None:
            lines.append(f"    Transform: {self.transform!r}")
        return "\n".join(lines)
