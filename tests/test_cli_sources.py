"""``pixpack pack`` with manifests: --path-column, --label-column, --classes, --classes-from."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pixpack.read import open_pack


def pixpack(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pixpack", *map(str, args)], capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip


@pytest.fixture
def manifest(tmp_path: Path, photo_folder: Path) -> Path:
    images = sorted(photo_folder.glob("*/*.jpg"))[:3]
    lines = ["img,diagnosis,site"]
    for k, (image, label) in enumerate(zip(images, ["benign", "malignant", "benign"], strict=True)):
        shutil.copy(image, tmp_path / f"p{k}.jpg")
        lines.append(f"p{k}.jpg,{label},Zürich")
    path = tmp_path / "list.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_columns_and_classes_flags(manifest, tmp_path):
    out = tmp_path / "a.pixpack"
    proc = pixpack("pack", manifest, out, "--path-column", "img", "--label-column", "diagnosis",
                   "--classes", "normal,benign,malignant", "--workers", "1", "--quiet")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    with open_pack(out) as p:
        assert p.classes == ["normal", "benign", "malignant"] and p.targets.tolist() == [1, 2, 1]
    again = tmp_path / "b.pixpack"
    proc = pixpack("pack", manifest, again, "--path-column", "img", "--label-column",
                   "diagnosis", "--classes-from", out, "--quiet")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    with open_pack(again) as p:
        assert p.classes == ["normal", "benign", "malignant"] and p.targets.tolist() == [1, 2, 1]


def test_flag_errors_are_one_line(manifest, tmp_path):
    proc = pixpack("pack", manifest, tmp_path / "c.pixpack", "--path-column", "img",
                   "--label-column", "diagnosis", "--classes", "benign", "--quiet")  # fmt: skip
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr == (
        f"error: {manifest}:3: label 'malignant' is not in the class list (1 classes: "
        "benign) — add it to classes= (CLI --classes) or fix the row.\n"
    )
    proc = pixpack("pack", manifest, tmp_path / "d.pixpack", "--classes", "a",
                   "--classes-from", "x.pixpack")  # fmt: skip
    assert proc.returncode == 2 and proc.stderr.startswith("error: give classes or classes_from")
    proc = pixpack("pack", manifest, tmp_path / "e.pixpack", "--label-column", "nope")
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"error: {manifest}:1: no column 'nope' (columns: img, ")


def test_help_lists_the_flags():
    proc = pixpack("pack", "--help")
    for flag in ("--classes A,B,...", "--classes-from", "--path-column", "--label-column"):
        assert flag in proc.stdout
