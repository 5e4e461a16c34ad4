"""Augmentation ops: fast GIL-releasing kernels with torchvision v2 parameter semantics.

Ops (frozen, picklable dataclasses; same arguments and random distributions as the
torchvision.transforms.v2 classes of the same names, drawn from an injected
``np.random.Generator``):

- geometry: :class:`RandomResizedCrop`, :class:`Resize`, :class:`CenterCrop` (these
  three are ``RegionOp``s: the loader may decode only their box), :class:`RandomCrop`,
  :class:`RandomHorizontalFlip`, :class:`RandomVerticalFlip`, :class:`RandomRotation`,
  :class:`RandomAffine`;
- colour: :class:`ColorJitter`, :class:`RandomGrayscale`;
- intensity (deterministic, float32 output; MONAI semantics): :class:`WindowLevel`
  (CT windows, presets, several windows into channels), :class:`ScaleIntensityRange`,
  :class:`ScaleIntensityRangePercentiles`, :class:`ToFloat` (bit-depth aware);
- escape hatch: :class:`PythonOp` (any torchvision transform or callable; slow).

Every op has ``make_params(rng, shape)``, ``apply(image, params)`` and
``output_shape(shape)``; images are HWC uint8/uint16 numpy arrays with 1, 3 or 4
channels. Geometric ops and the region ops also take ``apply(image, params, out=arr)``
(``apply_region(crop, params, out=arr)``) and write into ``arr`` (e.g. the loader's
batch slot, HWC of the image dtype).

The final conversion, fused by the loader, is described by two spec objects at the
end of the op list:

- :class:`Normalize` ``(mean, std)`` in [0, 1] units (torchvision's convention);
- :class:`ToOutput` ``(dtype="float32"|"float16"|"bfloat16"|"uint8",
  layout="NCHW"|"NHWC"|"channels_last")``; ``ToOutput.write(src_hwc, dst, normalize)``
  writes one sample into its slice of the batch buffer via :func:`normalize_into`.

:class:`Pipeline` (alias ``Compose``) splits a list into ``ops``, ``normalize`` and
``output`` and is the reference implementation (``run(image, rng)``);
``check_fixed_size`` rejects pipelines whose output size varies. Kernels (pure
functions) live in :mod:`pixpack.ops.kernels`.
"""

from .affine import RandomAffine, RandomRotation
from .base import Op, Region, RegionOp, Shape, op_output_dtype, sample_rng
from .color import ColorJitter, RandomGrayscale
from .geometry import (
    VARIABLE,
    CenterCrop,
    RandomCrop,
    RandomHorizontalFlip,
    RandomResizedCrop,
    RandomVerticalFlip,
    Resize,
)
from .intensity import (
    WINDOW_PRESETS,
    ScaleIntensityRange,
    ScaleIntensityRangePercentiles,
    ToFloat,
    WindowLevel,
)
from .output import Normalize, ToOutput, normalize_into
from .pipeline import Compose, Pipeline
from .python_op import PythonOp

__all__ = [
    "Op",
    "RegionOp",
    "Region",
    "Shape",
    "sample_rng",
    "op_output_dtype",
    "VARIABLE",
    "RandomResizedCrop",
    "Resize",
    "CenterCrop",
    "RandomCrop",
    "RandomHorizontalFlip",
    "RandomVerticalFlip",
    "RandomRotation",
    "RandomAffine",
    "ColorJitter",
    "RandomGrayscale",
    "WindowLevel",
    "WINDOW_PRESETS",
    "ScaleIntensityRange",
    "ScaleIntensityRangePercentiles",
    "ToFloat",
    "Normalize",
    "ToOutput",
    "normalize_into",
    "PythonOp",
    "Pipeline",
    "Compose",
]
