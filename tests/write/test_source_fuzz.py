"""Hostile sources, generated: random CSV files and random symlink trees.

CSV: whatever the bytes, ``CsvSource`` succeeds with labels inside its class list (at
most ``MAX_IMPLICIT_CLASSES`` classes; all ``NO_LABEL`` for a path-only file) or raises
a pixpack error naming the file.
Trees: the walk finishes on every tree (symlink loops included), and on every tree
without a loop it equals torchvision's ``ImageFolder``. Seeded; a few seconds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pixpack.errors import PixpackError
from pixpack.format import NO_LABEL
from pixpack.write.sources import MAX_IMPLICIT_CLASSES, CsvSource

_GOOD_PATHS = ["a.png", "sub/../x.jpg", "ñ 写.jpg", "/abs/i.png", '"q,uote.png"']
_GOOD_LABELS = [["0", "1", "7", "\u0663", "1048575"], ["cat", "dog", '"b,ird"', "ñandú"]]
_HOSTILE_PATHS = ["x\x00y.png", '""', "p" * 5000, '"unbalanced.png', " ", "a.png,extra"]
_HOSTILE_LABELS = ["-1", "99999999999", "9" * 5000, "", " ", "1.5", "0x10", "2147483648",
                   "1048576", "cat", "0"]  # fmt: skip
_ENDINGS = ["\n", "\r\n", "\r", ""]


def _pick(rng: np.random.Generator, good: list[str], hostile: list[str]) -> str:
    return str(rng.choice(good if rng.random() < 0.85 else hostile))


def _random_csv(rng: np.random.Generator) -> bytes:
    sep = str(rng.choice([",", ",", "\t", ";"]))
    labels = _GOOD_LABELS[int(rng.integers(2))]
    lines = []
    if rng.random() < 0.3:
        lines.append(f"path{sep}label")
    for _ in range(int(rng.integers(0, 6))):
        row = _pick(rng, _GOOD_PATHS, _HOSTILE_PATHS) + sep + _pick(rng, labels, _HOSTILE_LABELS)
        lines.append(row if rng.random() < 0.95 else row.split(sep)[0])
    text = "".join(line + str(rng.choice(_ENDINGS)) for line in lines)
    data = text.encode("utf-8")
    if rng.random() < 0.2:
        data = b"\xef\xbb\xbf" + data  # BOM
    if rng.random() < 0.1 and data:
        at = int(rng.integers(len(data)))
        data = data[:at] + bytes([int(rng.integers(128, 256))]) + data[at:]  # not UTF-8
    return data


def test_random_csv_files_give_a_source_or_a_pixpack_error(tmp_path):
    rng = np.random.default_rng(12)
    outcomes = {"ok": 0, "error": 0}
    for case in range(300):
        path = tmp_path / f"case{case}.{'tsv' if case % 4 == 0 else 'csv'}"
        path.write_bytes(_random_csv(rng))
        try:
            src = CsvSource(path)
        except PixpackError as exc:
            assert str(path) in str(exc) and "\n" not in str(exc).strip("\n"), exc
            outcomes["error"] += 1
            continue
        outcomes["ok"] += 1
        assert len(src.classes) <= MAX_IMPLICIT_CLASSES
        labels = {label for _, label in src.samples}
        if not src.classes:  # a path-only file: unlabelled
            assert labels == {NO_LABEL}
        assert all(0 <= label < len(src.classes) for label in labels - {NO_LABEL})
    assert outcomes["ok"] > 20 and outcomes["error"] > 20, outcomes


# -- random symlink trees ---------------------------------------------------------------
def _random_tree(root: Path, rng: np.random.Generator) -> None:
    dirs = []
    for cls in ("c0", "c1"):
        base = root / cls
        base.mkdir(parents=True)
        (base / "top.png").write_bytes(b"x")
        dirs.append(base)
        for _ in range(int(rng.integers(0, 4))):
            parent = dirs[int(rng.integers(len(dirs)))]
            child = parent / f"d{len(dirs)}"
            child.mkdir()
            (child / f"f{len(dirs)}.jpg").write_bytes(b"x")
            dirs.append(child)
    for k in range(int(rng.integers(0, 4))):
        where = dirs[int(rng.integers(len(dirs)))]
        target = dirs[int(rng.integers(len(dirs)))]
        link = where / f"link{k}"
        if rng.random() < 0.5:
            link.symlink_to(os.path.relpath(target, where), target_is_directory=True)
        else:
            link.symlink_to(target, target_is_directory=True)
    if rng.random() < 0.3:
        (dirs[0] / "dangling.jpg").symlink_to(root / "nowhere.jpg")


def _has_loop(root: Path, cap: int = 10) -> bool:
    """Whether following links leads deeper than ``cap`` folders (only a loop can, in
    these small trees); walks at most branching**cap folders."""
    for cls in ("c0", "c1"):
        top = root / cls
        for dirpath, _, _ in os.walk(top, followlinks=True):
            if len(Path(dirpath).relative_to(top).parts) >= cap:
                return True
    return False


_CHILD = (
    "import json, sys; from pixpack.write.sources import ImageFolderSource; "
    "print(json.dumps([ImageFolderSource(r).samples for r in sys.argv[1:]]))"
)


def test_random_symlink_trees_walk_like_torchvision_or_stop_at_loops(tmp_path):
    tv = pytest.importorskip("torchvision.datasets")
    rng = np.random.default_rng(7)
    roots = []
    for case in range(40):
        root = tmp_path / f"t{case}"
        _random_tree(root, rng)
        roots.append(root)
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, *map(str, roots)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    loops = 0
    for root, ours in zip(roots, json.loads(out.stdout), strict=True):
        ours = [tuple(s) for s in ours]
        assert all(os.path.lexists(p) for p, _ in ours)
        if _has_loop(root):
            loops += 1
            continue
        assert ours == tv.ImageFolder(str(root), allow_empty=True).samples, root
    assert 5 <= loops <= 35, loops  # both kinds of tree were tried
