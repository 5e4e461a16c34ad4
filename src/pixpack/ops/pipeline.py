"""Pipeline: a list of ops run in order, the reference the loader's fast path matches.

``Pipeline([...ops, Normalize(...), ToOutput(...)])``: augmentation ops first, then at
most one :class:`~pixpack.ops.output.Normalize` and one
:class:`~pixpack.ops.output.ToOutput`, which describe the final conversion (the loader
fuses both into its batch write). ``run`` executes everything for one sample, the way
the loader does: ``params = op.make_params(rng, shape); image = op.apply(image, params)``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import UsageError
from .base import Shape
from .geometry import VARIABLE
from .output import Normalize, ToOutput

__all__ = ["Pipeline", "Compose"]


@dataclass(frozen=True)
class Pipeline:
    """Augmentation ``ops`` plus the optional final ``normalize`` and ``output`` spec."""

    ops: tuple[Any, ...]
    normalize: Normalize | None = None
    output: ToOutput | None = None

    def __init__(self, ops: Iterable[Any]) -> None:
        steps, normalize, output = [], None, None
        for op in ops:
            if isinstance(op, ToOutput):
                if output is not None:
                    raise UsageError("Pipeline: ToOutput given twice; keep one, at the end.")
                output = op
            elif isinstance(op, Normalize):
                if normalize is not None:
                    raise UsageError(
                        "Pipeline: Normalize given twice; keep one, after the augmentations."
                    )
                normalize = op
            elif normalize is not None or output is not None:
                raise UsageError(
                    f"Pipeline: {type(op).__name__} comes after Normalize/ToOutput; "
                    "put augmentations first."
                )
            elif not all(hasattr(op, a) for a in ("make_params", "apply", "output_shape")):
                raise UsageError(
                    f"Pipeline: {op!r} is not an op; wrap plain callables or torchvision "
                    "transforms in ops.PythonOp."
                )
            else:
                steps.append(op)
        if output is None:
            output = ToOutput("float32" if normalize is not None else "uint8", "NCHW")
        if output.dtype == "uint8" and normalize is not None:
            raise UsageError("Pipeline: Normalize needs a float ToOutput dtype (got 'uint8').")
        object.__setattr__(self, "ops", tuple(steps))
        object.__setattr__(self, "normalize", normalize)
        object.__setattr__(self, "output", output)

    def output_shape(self, shape: Shape) -> Shape:
        """HWC shape after the augmentations; unknown input sizes are ``VARIABLE`` (-1)."""
        for op in self.ops:
            shape = op.output_shape(shape)
        return shape

    def check_fixed_size(self, channels: int) -> Shape:
        """The output shape for images of any size, or a UsageError if it varies."""
        shape = self.output_shape((VARIABLE, VARIABLE, channels))
        if VARIABLE in shape[:2]:
            raise UsageError(
                "Pipeline: the output size depends on the input image, so samples cannot be "
                "batched; add a crop or resize to a fixed size "
                "(e.g. ops.CenterCrop(224) or ops.Resize((224, 224)))."
            )
        return shape

    def augment(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The augmented HWC image (same dtype as ``image``)."""
        for op in self.ops:
            image = op.apply(image, op.make_params(rng, image.shape))
        return image

    def run(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One sample, as the loader produces it (layout and dtype of ``output``)."""
        image = self.augment(image, rng)
        output = self.output or ToOutput()
        dst = np.empty(output.sample_shape(image.shape), output.numpy_dtype(image.dtype))
        return output.write(image, dst, self.normalize)


Compose = Pipeline  # torchvision's name
