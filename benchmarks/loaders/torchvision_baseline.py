"""torchvision ImageFolder + DataLoader, with transforms v1 (PIL) or v2 (tensors)."""

from __future__ import annotations

from typing import Any

from .common import BATCH, CROP, MEAN, STD, time_loader

__all__ = ["import_torch_stack", "make_transform", "make_dataloader", "load"]


def import_torch_stack() -> None:
    """Import torch, torchvision and PIL before the clock starts, so set-up excludes imports."""
    import PIL.Image  # noqa: F401
    import torch.utils.data  # noqa: F401
    import torchvision.datasets
    import torchvision.transforms
    import torchvision.transforms.v2  # noqa: F401


def make_transform(version: str) -> Any:
    """RandomResizedCrop(224) + RandomHorizontalFlip + Normalize -> float32 CHW."""
    import torch

    if version == "v1":
        from torchvision import transforms as T

        return T.Compose(
            [
                T.RandomResizedCrop(CROP),
                T.RandomHorizontalFlip(),
                T.ToTensor(),
                T.Normalize(MEAN, STD),
            ]
        )
    from torchvision.transforms import v2

    return v2.Compose(
        [
            v2.ToImage(),  # uint8 tensor: crop and flip before converting to float
            v2.RandomResizedCrop(CROP, antialias=True),
            v2.RandomHorizontalFlip(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(MEAN, STD),
        ]
    )


def make_dataloader(dataset: Any, workers: int) -> Any:
    """The DataLoader every map-style baseline uses: shuffled, batch 64, persistent workers."""
    from torch.utils.data import DataLoader

    return DataLoader(
        dataset,
        batch_size=BATCH,
        shuffle=True,
        num_workers=workers,
        persistent_workers=workers > 0,
    )


def load(cfg: dict[str, Any]) -> dict[str, Any]:
    from torchvision.datasets import ImageFolder

    import_torch_stack()

    def make() -> Any:
        dataset = ImageFolder(cfg["data"], transform=make_transform(cfg.get("transforms", "v1")))
        return make_dataloader(dataset, cfg["workers"])

    return time_loader(make, passes=cfg["passes"], max_batches=cfg.get("max_batches"))
