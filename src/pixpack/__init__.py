"""pixpack: pack an image dataset once, train on it at hardware speed from any framework.

::

    import pixpack
    pixpack.pack("data/train", "train.pixpack", mode="jpeg", max_side=256)
    pack = pixpack.open("train.pixpack")           # milliseconds, any size
    loader = pixpack.Loader(pack, 64, pipeline=[...])

Heavy modules (OpenCV, torch) load on first use of the names that need them, so
``import pixpack`` and the CLI start quickly. The frameworks are extras: packing,
reading, the ops, NumPy batches and the CLI need none; torch-only names
(:class:`PackDataset`, the Loader's default torch tensors) raise
:class:`MissingDependencyError` naming ``pip install 'pixpack[torch]'`` without it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import (
    CorruptPackError,
    EmptySourceError,
    EngineError,
    ImageDecodeError,
    LoaderError,
    MissingDependencyError,
    NotAPackError,
    OutputBusyError,
    OutputExistsError,
    PackError,
    PipelineError,
    PixpackError,
    RemoteError,
    ResumeError,
    SourceError,
    SourceFormatError,
    TruncatedPackError,
    UnsupportedModeError,
    UnsupportedVersionError,
    UsageError,
)
from .options import LoaderOptions, PackOptions

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "open",
    "pack",
    "cached",
    "verify",
    "export",
    "merge",
    "Pack",
    "ShardedPack",
    "PackSummary",
    "DicomSource",
    "PackDataset",
    "Loader",
    "ShardSampler",
    "WeightedSampler",
    "ClassBalancedSampler",
    "Subset",
    "make_splits",
    "PackOptions",
    "LoaderOptions",
    "ops",
    "tf",
    "jax",
    "PixpackError",
    "UsageError",
    "SourceError",
    "EmptySourceError",
    "SourceFormatError",
    "ImageDecodeError",
    "PackError",
    "NotAPackError",
    "OutputBusyError",
    "EngineError",
    "OutputExistsError",
    "PipelineError",
    "UnsupportedVersionError",
    "CorruptPackError",
    "TruncatedPackError",
    "UnsupportedModeError",
    "RemoteError",
    "RemoteOptions",
    "ResumeError",
    "LoaderError",
    "MissingDependencyError",
]

# public name -> (module, attribute); resolved on first access
_LAZY = {
    "open": ("pixpack.read.open_any", "open_pack"),
    "Pack": ("pixpack.read.pack", "Pack"),
    "ShardedPack": ("pixpack.read.sharded", "ShardedPack"),
    "RemoteOptions": ("pixpack.storage.remote", "RemoteOptions"),
    "merge": ("pixpack.write.merge", "merge"),
    "verify": ("pixpack.read.verify", "verify"),
    "export": ("pixpack.read.export", "export"),
    "pack": ("pixpack.write.packer", "pack"),
    "DicomSource": ("pixpack.write.sources.dicom", "DicomSource"),
    "PackSummary": ("pixpack.write.packer", "PackSummary"),
    "cached": ("pixpack.cache", "cached"),
    "PackDataset": ("pixpack.dataset", "PackDataset"),
    "Loader": ("pixpack.loader.loader", "Loader"),
    "ShardSampler": ("pixpack.loader.shard_sampler", "ShardSampler"),
    "WeightedSampler": ("pixpack.loader.sampling", "WeightedSampler"),
    "ClassBalancedSampler": ("pixpack.loader.sampling", "ClassBalancedSampler"),
    "Subset": ("pixpack.metadata.subset", "Subset"),
    "make_splits": ("pixpack.metadata.splits_file", "make_splits"),
    "ops": ("pixpack.ops", None),
    "tf": ("pixpack.tf", None),
    "jax": ("pixpack.jax", None),
}

if TYPE_CHECKING:
    from . import jax, ops, tf
    from .cache import cached
    from .dataset import PackDataset
    from .loader.loader import Loader
    from .loader.sampling import ClassBalancedSampler, WeightedSampler
    from .loader.shard_sampler import ShardSampler
    from .metadata.splits_file import make_splits
    from .metadata.subset import Subset
    from .read.export import export
    from .read.open_any import open_pack as open
    from .read.pack import Pack
    from .read.sharded import ShardedPack
    from .read.verify import verify
    from .storage.remote import RemoteOptions
    from .write.merge import merge
    from .write.packer import PackSummary, pack
    from .write.sources.dicom import DicomSource


def __getattr__(name: str) -> Any:
    try:
        module_name, attribute = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'pixpack' has no attribute {name!r}") from None
    module = importlib.import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
