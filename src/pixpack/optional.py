"""Optional back-ends (torch, TensorFlow, JAX, ml_dtypes ...), imported on first use.

The core (packing, opening, reading, the ops, NumPy batches, the CLI) needs none of
them; a feature that does calls :func:`require`, which imports the module or raises
:class:`~pixpack.errors.MissingDependencyError` with the one line that fixes it.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import MissingDependencyError

__all__ = ["require", "available", "EXTRAS"]

# import name -> the pip extra (or package) that provides it
EXTRAS = {
    "torch": "pip install 'pixpack[torch]'",
    "torchvision": "pip install 'pixpack[torch]' torchvision",
    "tensorflow": "pip install 'pixpack[tf]'",
    "jax": "pip install 'pixpack[jax]'",
    "ml_dtypes": "pip install ml_dtypes",
}


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
