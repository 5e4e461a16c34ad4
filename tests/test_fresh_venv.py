"""Issue 17: ``pip install pixpack`` in a fresh virtual environment, without torch.

The real install, not a simulation: a new venv (no system site-packages), pip builds
the wheel from this checkout (native extensions with gcc) and installs only the core
dependencies from the package index; then the venv packs, opens and iterates NumPy
batches, and ``import torch`` fails there. It needs the package index (pip's cache
makes a rerun fast); without it the test fails with pip's own message, on purpose:
a skipped install test would hide exactly the regression it exists for.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

CHECK = """
import subprocess, sys
from pathlib import Path

import numpy as np

import pixpack
from pixpack import ops
from pixpack.errors import MissingDependencyError

folder, work = Path(sys.argv[1]), Path(sys.argv[2])
for name in ("torch", "torchvision", "tensorflow", "jax"):
    try:
        __import__(name)
    except ImportError:
        continue
    raise AssertionError(f"{name} is installed in the fresh venv")

import pixpack.ops.kernels, pixpack.read.lossless
assert pixpack.ops.kernels.native_resize_available(), "native resize not built"
assert pixpack.read.lossless._decode_rows is not None, "native lossless not built"

summary = pixpack.pack(folder, work / "p.pixpack", mode="jpeg", max_side=96)
pack = pixpack.open(work / "p.pixpack")
image, label = pack[0]
assert len(pack) == summary.num_samples > 0 and image.dtype == np.uint8

try:
    pixpack.PackDataset
except MissingDependencyError as exc:
    assert "\\n" not in str(exc) and "pip install 'pixpack[torch]'" in str(exc), exc
else:
    raise AssertionError("PackDataset imported without torch")

import pixpack.loader.convert
assert pixpack.loader.convert.native_store_available(), "native store not built"
pipeline = [ops.RandomResizedCrop(32), ops.RandomHorizontalFlip(), ops.Normalize(0.5, 0.25)]
loader = pixpack.Loader(pack, 4, pipeline=pipeline, seed=0, workers=2, output="numpy")
labels = []
for images, batch in loader:
    assert isinstance(images, np.ndarray) and images.shape[1:] == (3, 32, 32)
    labels += batch.tolist()
assert sorted(labels) == sorted(pack.targets.tolist())

# the console script the wheel installed
cli = Path(sys.executable).with_name("pixpack")
done = subprocess.run([cli, "info", work / "p.pixpack"], capture_output=True, text=True)
assert done.returncode == 0 and "samples:" in done.stdout, done.stdout + done.stderr
print("VENV OK")
"""


def _run(cmd: list[str], what: str, timeout: float, cwd: Path) -> subprocess.CompletedProcess:
    # The venv must see only itself: no PYTHONPATH pointing at this checkout's src/.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env)
    assert done.returncode == 0, f"{what} failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_pip_install_without_torch(photo_folder: Path, tmp_path: Path) -> None:
    started = time.perf_counter()
    # Build from a copy: pip builds in the source tree (build/, *.egg-info), and tests
    # running beside this one must not see a half-written build there.
    source = tmp_path / "source"
    for name in ("pyproject.toml", "setup.py", "README.md"):
        source.mkdir(exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.so", "*.egg-info", "*.pyc")
    shutil.copytree(ROOT / "src", source / "src", ignore=ignore)

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], "python -m venv", 120, tmp_path)
    python = str(venv / "bin" / "python")
    pip = [python, "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    _run([*pip, str(source)], "pip install pixpack (no extras)", 480, tmp_path)
    installed = time.perf_counter() - started

    work = tmp_path / "work"
    work.mkdir()
    check = [python, "-c", CHECK, str(photo_folder), str(work)]
    done = _run(check, "the venv check", 240, tmp_path)
    assert "VENV OK" in done.stdout
    print(
        f"fresh venv: installed in {installed:.0f} s, "
        f"checked in {time.perf_counter() - started - installed:.1f} s"
    )
