"""Optional back-ends (torch, TensorFlow, JAX, ml_dtypes ...), imported on first use.

The core (packing, opening, reading, the ops, NumPy batches, the CLI) needs none of
them; a feature that does calls :func:`require`, which imports the module or raises
:class:`~pixpack.errors.MissingDependencyError` with the one line that fixes it.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
from types import ModuleType

from .errors import MissingDependencyError

__all__ = ["require", "available", "installed", "EXTRAS", "FRAMEWORKS"]

# import name -> the pip extra (or package) that provides it
EXTRAS = {
    "torch": "pip install 'pixpack[torch]'",
    "torchvision": "pip install 'pixpack[torch]' torchvision",
    "tensorflow": "pip install 'pixpack[tf]'",
    "jax": "pip install 'pixpack[jax]'",
    "ml_dtypes": "pip install ml_dtypes",
    "fsspec": "pip install 'pixpack[remote]'",
    "s3fs": "pip install 'pixpack[s3]'",
    "gcsfs": "pip install 'pixpack[gcs]'",
    "adlfs": "pip install 'pixpack[azure]'",
    "aiohttp": "pip install 'pixpack[remote]'",
    "dask": "pip install 'pixpack[dask]'",
    "distributed": "pip install 'pixpack[dask]'",
}

FRAMEWORKS = ("torch", "tensorflow", "jax")

# import name -> the distributions that provide it, where the names differ
_DISTRIBUTIONS = {"tensorflow": ("tensorflow", "tensorflow-cpu", "tensorflow-macos", "tf-nightly")}


def require(name: str, feature: str) -> ModuleType:
    """``import name``, or a one-line error saying ``feature`` needs it and how to get it."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        top = name.split(".")[0]
        hint = EXTRAS.get(top, f"pip install {top}")
        raise MissingDependencyError(
            f"{feature} needs {top}, which is not installed here ({exc}); {hint}", top
        ) from exc


def available(name: str) -> bool:
    """Whether ``name`` imports (without raising: a broken install counts as absent)."""
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True


def installed(name: str) -> str | None:
    """The version of top-level module ``name`` if it is installed, else None, without
    importing it (TensorFlow takes seconds to import): for reports, not for use."""
    try:
        if importlib.util.find_spec(name) is None:
            return None
    except (ImportError, ValueError):  # ValueError: a module without __spec__
        return None
    for dist in _DISTRIBUTIONS.get(name, (name,)):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "?"  # importable, but from an unknown distribution or a source tree
