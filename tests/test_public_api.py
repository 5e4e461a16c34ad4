"""The public surface: every name in ``__all__`` resolves, and nothing heavy loads on import."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import pixpack

PUBLIC_MODULES = [
    "pixpack",
    "pixpack.errors",
    "pixpack.format",
    "pixpack.options",
    "pixpack.ops",
    "pixpack.read",
    "pixpack.write",
    "pixpack.loader",
    "pixpack.diagnose",
    "pixpack.storage",
    "pixpack.tf",
    "pixpack.jax",
]


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_every_exported_name_exists(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert hasattr(module, "__all__"), f"{module_name} has no __all__"
    for name in module.__all__:
        assert getattr(module, name) is not None, f"{module_name}.{name}"


def test_top_level_api_objects() -> None:
    assert callable(pixpack.open) and callable(pixpack.pack) and callable(pixpack.cached)
    assert pixpack.Loader.__name__ == "Loader"
    assert issubclass(pixpack.TruncatedPackError, pixpack.CorruptPackError)
    assert issubclass(pixpack.PackError, pixpack.PixpackError)
    with pytest.raises(AttributeError):
        pixpack.no_such_name  # noqa: B018


def test_import_is_light() -> None:
    """``import pixpack`` must not import torch or OpenCV (CLI start-up time)."""
    code = "import sys, pixpack; print('torch' in sys.modules, 'cv2' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


FRAMEWORK_FREE = [
    "pixpack",
    "pixpack.read",
    "pixpack.ops",
    "pixpack.write",
    "pixpack.metadata.query",
    "pixpack.storage",
    "pixpack.cli.main",
    "pixpack.optional",
    "pixpack.loader",
    "pixpack.diagnose",
]


@pytest.mark.parametrize("module_name", FRAMEWORK_FREE)
def test_core_never_imports_a_framework(module_name: str) -> None:
    """Issue 17: the core imports no framework even where all are installed (torch alone
    costs seconds and hundreds of MB per process); only the adapters do."""
    code = (
        f"import sys, {module_name}; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'tensorflow', 'jax'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_version_matches_package_metadata() -> None:
    from importlib.metadata import version

    assert pixpack.__version__ == version("pixpack")
