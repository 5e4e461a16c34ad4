"""NVIDIA DALI CPU pipeline over the ImageFolder (runs in benchmarks/envs/dali).

``fn.readers.file`` -> ``fn.decoders.image_random_crop(device="cpu")`` (decode only
the random crop window) -> ``fn.resize`` to 224x224 -> ``fn.crop_mirror_normalize``
(random mirror, float32, CHW), ``device_id=None`` so nothing touches a GPU, one thread
per core. Batches come out through DALI's PyTorch iterator as CPU tensors.
"""

from __future__ import annotations

from typing import Any

from .common import BATCH, CROP, MEAN, STD, Unavailable, time_loader

__all__ = ["load"]


def load(cfg: dict[str, Any]) -> dict[str, Any]:
    try:
        from nvidia.dali import fn, pipeline_def, types
        from nvidia.dali.plugin.pytorch import DALIGenericIterator, LastBatchPolicy
    except ImportError as exc:
        raise Unavailable(f"nvidia.dali does not import here: {exc}") from exc

    @pipeline_def(batch_size=BATCH, num_threads=cfg["workers"], device_id=None, seed=0)
    def pipeline() -> Any:
        jpegs, labels = fn.readers.file(file_root=cfg["data"], random_shuffle=True, name="Reader")
        images = fn.decoders.image_random_crop(jpegs, device="cpu", output_type=types.RGB)
        images = fn.resize(images, resize_x=CROP, resize_y=CROP)
        images = fn.crop_mirror_normalize(
            images,
            dtype=types.FLOAT,
            output_layout="CHW",
            mean=[m * 255 for m in MEAN],
            std=[s * 255 for s in STD],
            mirror=fn.random.coin_flip(),
        )
        return images, labels

    def make() -> Any:
        pipe = pipeline()
        pipe.build()
        return DALIGenericIterator(
            [pipe],
            ["images", "labels"],
            reader_name="Reader",
            last_batch_policy=LastBatchPolicy.PARTIAL,
            auto_reset=True,
        )

    return time_loader(
        make,
        passes=cfg["passes"],
        max_batches=cfg.get("max_batches"),
        images_of=lambda batch: batch[0]["images"],
    )
