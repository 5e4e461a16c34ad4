"""FIFOs, devices and sockets among the sources: refused with a reason, never opened
blocking. Every run is a child process with a timeout, so a regression fails instead of
hanging the suite."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest


def pixpack(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pixpack", *map(str, args)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


@pytest.fixture
def hostile_folder(tmp_path, photo_folder) -> Path:
    """Two classes of real photos plus a FIFO, /dev/zero behind a symlink and a socket."""
    root = tmp_path / "src"
    for name in ("class_00", "class_01"):
        shutil.copytree(photo_folder / name, root / name)
    os.mkfifo(root / "class_00" / "img.jpg")
    (root / "class_01" / "zero.jpg").symlink_to("/dev/zero")
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(root / "class_01" / "sock.png"))
    server.close()  # the socket file stays
    return root


def _skipped(out: Path) -> dict[str, str]:
    info = json.loads(pixpack("info", out, "--json").stdout)
    return {Path(s["path"]).name: s["reason"] for s in info["skipped"]}


def test_special_files_in_a_class_folder_are_skipped_with_a_reason(hostile_folder, tmp_path):
    out = tmp_path / "data.pixpack"
    proc = pixpack("pack", hostile_folder, out, "--workers", "1", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("packed 16 images")
    assert _skipped(out) == {
        "img.jpg": "not a regular file (a FIFO (named pipe))",
        "zero.jpg": "not a regular file (a character device)",
        "sock.png": "not a regular file (a socket)",
    }


def test_special_files_in_csv_rows_are_skipped(hostile_folder, tmp_path, photo_folder):
    csv = tmp_path / "list.csv"
    good = sorted(photo_folder.glob("class_00/*.jpg"))[0]
    csv.write_text(
        f"{good},0\n{hostile_folder}/class_00/img.jpg,1\n{hostile_folder}/class_01/zero.jpg,1\n"
    )
    out = tmp_path / "data.pixpack"
    proc = pixpack("pack", csv, out, "--workers", "1", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert set(_skipped(out)) == {"img.jpg", "zero.jpg"}
    strict = pixpack("pack", csv, tmp_path / "strict.pixpack", "--workers", "1", "--strict")
    assert strict.returncode == 1 and strict.stderr.count("\n") == 1
    assert "img.jpg: not a regular file (a FIFO (named pipe))" in strict.stderr


def test_a_fifo_csv_or_out_is_refused(tmp_path, photo_folder):
    csv = tmp_path / "list.csv"
    os.mkfifo(csv)
    proc = pixpack("pack", csv, tmp_path / "a.pixpack", "--quiet")
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr == f"error: {csv}: not a regular file (a FIFO (named pipe))\n"
    fifo_out = tmp_path / "out.pixpack"
    os.mkfifo(fifo_out)
    proc = pixpack("pack", photo_folder, fifo_out, "--quiet")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "is a FIFO (named pipe), not a regular file" in proc.stderr
