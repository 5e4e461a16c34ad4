"""Issue 17: the core works without torch, TensorFlow or JAX installed.

Each check runs in a subprocess whose ``sys.meta_path`` makes those imports fail as if
the packages were absent, so a stray ``import torch`` anywhere on the path fails the
test here (the fresh virtual environment test, :mod:`tests.test_fresh_venv`, checks
the real thing: ``pip install pixpack`` without torch).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pixpack

SRC = Path(pixpack.__file__).resolve().parents[1]
FRAMEWORKS = ("torch", "torchvision", "tensorflow", "jax", "jaxlib")

# Prepended to every child: the frameworks cannot be imported, and the child ends by
# printing which of them (none, if all is well) ended up in sys.modules anyway.
PRELUDE = f"""
import atexit, importlib.abc, json, sys

BLOCKED = {FRAMEWORKS!r}


class NoFrameworks(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None


sys.meta_path.insert(0, NoFrameworks())
atexit.register(lambda: print("LOADED", json.dumps(
    sorted(m for m in sys.modules if m.partition(".")[0] in BLOCKED))))

from pixpack.errors import MissingDependencyError


def torch_hint(fn):
    try:
        fn()
    except MissingDependencyError as exc:
        message = str(exc)
        assert "\\n" not in message and "pip install 'pixpack[torch]'" in message, message
        return message
    raise AssertionError(f"{{fn}} did not raise MissingDependencyError")
"""


def run_without_frameworks(code: str, *args: str) -> str:
    """Run ``code`` in a child that cannot import any framework; its stdout."""
    env = {**os.environ}
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, "-c", PRELUDE + code, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    loaded = json.loads(done.stdout.rsplit("LOADED", 1)[1])
    assert loaded == [], f"imported although absent: {loaded}"
    return done.stdout


CORE = """
from pathlib import Path

import numpy as np

import pixpack
from pixpack import ops
from pixpack.cli.main import main
from pixpack.optional import FRAMEWORKS, installed

folder, work = Path(sys.argv[1]), Path(sys.argv[2])

# the CLI, every command that does not iterate a Loader
cli = work / "cli.pixpack"
assert main(["pack", str(folder), str(cli), "--quiet"]) == 0
for argv in (
    ["info", str(cli), "--json"],
    ["verify", str(cli)],
    ["export", str(cli), str(work / "exported")],
    ["query", str(cli), "label = 1", "--count"],
    ["split", str(cli), "--by", "label", "--fractions", "0.5,0.5"],
):
    assert main(argv) == 0, argv
assert len(list((work / "exported").rglob("*.*"))) == len(pixpack.open(cli))

# the Python API: pack, open, read, the ops on NumPy
summary = pixpack.pack(folder, work / "api.pixpack", mode="jpeg", max_side=128)
pack = pixpack.open(work / "api.pixpack")
assert len(pack) == summary.num_samples > 0 and pack.classes
image, label = pack[len(pack) - 1]
assert image.ndim == 3 and image.dtype == np.uint8 and label == len(pack.classes) - 1
pipeline = ops.Pipeline([
    ops.RandomResizedCrop(48), ops.RandomHorizontalFlip(), ops.ColorJitter(0.4, 0.4, 0.4),
    ops.PythonOp(np.flipud, layout="HWC"),
    ops.Normalize(pack.metadata["mean"], pack.metadata["std"]),
])
chw = pipeline.run(image, np.random.default_rng(0))
assert chw.shape == (3, 48, 48) and chw.dtype == np.float32
assert (pipeline.run(image, np.random.default_rng(0)) == chw).all()
assert pack.query("label = 0").indices.size > 0

# torch-only features: one line naming the extra
torch_hint(lambda: pixpack.PackDataset)
torch_hint(lambda: exec("from pixpack import PackDataset"))
torch_hint(lambda: ops.PythonOp(np.flipud))  # layout='CHW' hands fn a torch tensor
assert {name: installed(name) for name in FRAMEWORKS} == dict.fromkeys(FRAMEWORKS)
print("CORE OK")
"""


def test_core_without_frameworks(photo_folder: Path, tmp_path: Path) -> None:
    """Pack, open, read, ops and the CLI's pack/info/verify/export/query/split with no
    framework installed; PackDataset and a CHW PythonOp say which extra they need."""
    assert "CORE OK" in run_without_frameworks(CORE, str(photo_folder), str(tmp_path))


LOADER = """
from pathlib import Path

import numpy as np

import pixpack
from pixpack import ops
from pixpack.cli.main import main

folder, work = Path(sys.argv[1]), Path(sys.argv[2])
path = work / "p.pixpack"
pixpack.pack(folder, path, mode="raw", max_side=96)
pack = pixpack.open(path)
pipeline = [ops.RandomResizedCrop(32), ops.RandomHorizontalFlip(), ops.Normalize(0.5, 0.25)]
loader = pixpack.Loader(pack, 5, pipeline=pipeline, seed=0, workers=2, output="numpy")
seen = []
for images, labels in loader:
    assert isinstance(images, np.ndarray) and images.dtype == np.float32
    assert images.shape[1:] == (3, 32, 32) and labels.dtype == np.int64
    seen += labels.tolist()
assert sorted(seen) == sorted(pack.targets.tolist())
assert sorted(loader.sampler) == list(range(len(pack)))
assert sorted(pixpack.ShardSampler(pack, rank=0, world_size=1)) == list(range(len(pack)))
balanced = pixpack.ClassBalancedSampler()
weighted = pixpack.Loader(pack, 4, pipeline=pipeline, sampler=balanced, output="numpy")
assert sum(len(labels) for _, labels in weighted) == len(pack)

assert main(["bench", str(path), "--batches", "2", "--batch-size", "4", "--pipeline", "eval"]) == 0
assert main(["doctor", str(path), "--samples", "8", "--seconds", "0.2", "--batch-size", "4"]) == 0
print("LOADER OK")
"""


def test_numpy_loader_without_frameworks(photo_folder: Path, tmp_path: Path) -> None:
    """Loader(output="numpy"), the samplers and ``pixpack bench``/``doctor`` without any
    framework."""
    out = run_without_frameworks(LOADER, str(photo_folder), str(tmp_path))
    assert "LOADER OK" in out
    assert "frameworks: torch not installed, tensorflow not installed, jax not installed" in out


def test_bench_on_cuda_without_torch_is_one_line(photo_folder: Path, tmp_path: Path) -> None:
    """The CLI prints a missing framework as ``error: ...`` naming the extra, no traceback."""
    code = """
import contextlib, io
from pathlib import Path
import pixpack
from pixpack.cli.main import main

path = Path(sys.argv[2]) / "p.pixpack"
pixpack.pack(Path(sys.argv[1]), path, mode="raw", max_side=64)
err = io.StringIO()
with contextlib.redirect_stderr(err):
    code = main(["bench", str(path), "--batches", "1", "--device", "cuda"])
lines = err.getvalue().splitlines()
assert code == 2 and len(lines) == 1, (code, lines)
assert lines[0].startswith("error: ") and "pip install 'pixpack[torch]'" in lines[0], lines
print("CLI OK")
"""
    assert "CLI OK" in run_without_frameworks(code, str(photo_folder), str(tmp_path))


def test_default_torch_output_names_the_extra(photo_folder: Path, tmp_path: Path) -> None:
    """The Loader's default output is torch tensors: without torch, one line naming
    ``pip install 'pixpack[torch]'``."""
    code = """
from pathlib import Path
import pixpack
from pixpack import ops

path = Path(sys.argv[2]) / "p.pixpack"
pixpack.pack(Path(sys.argv[1]), path, mode="raw", max_side=64)
pipeline = [ops.CenterCrop(32)]
print(torch_hint(lambda: pixpack.Loader(pixpack.open(path), 4, pipeline=pipeline)))
print("DEFAULT OK")
"""
    assert "DEFAULT OK" in run_without_frameworks(code, str(photo_folder), str(tmp_path))
