"""A disk that fills while packing: the error names the file and no temp file stays,
even though closing the buffered files fails again inside ``abort()``."""

from __future__ import annotations

import errno
import subprocess
import uuid
from pathlib import Path

import pytest

from pixpack.cli.main import main as cli_main
from pixpack.write import pack
from pixpack.write.writer import PackWriter


class _FillingFile:
    """A file whose writes fail with ENOSPC after ``budget`` bytes, and whose close()
    then fails too (its buffered bytes cannot be flushed) — yet closes the file."""

    def __init__(self, f, budget: int) -> None:
        self._f, self._budget = f, budget

    def write(self, data) -> int:
        self._budget -= len(data)
        if self._budget < 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        return self._f.write(data)

    def close(self) -> None:
        self._f.close()
        raise OSError(errno.ENOSPC, "No space left on device")

    def __getattr__(self, name: str):
        return getattr(self._f, name)


@pytest.fixture
def filling_disk(monkeypatch):
    start = PackWriter.start

    def start_on_a_filling_disk(self):
        start(self)
        self._data = _FillingFile(self._data, 2 << 20)
        self._journal = _FillingFile(self._journal, 1 << 30)
        self._skipped = _FillingFile(self._skipped, 1 << 30)
        return self

    monkeypatch.setattr(PackWriter, "start", start_on_a_filling_disk)


def test_abort_removes_every_temp_file_when_closing_fails(tmp_path, photo_folder, filling_disk):
    out = tmp_path / "data.pixpack"
    with pytest.raises(OSError, match="No space left on device") as caught:
        pack(photo_folder, out, workers=1, quiet=True)
    assert caught.value.filename == f"{out}.partial (removed)"
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_cli_names_the_file(tmp_path, photo_folder, filling_disk, capsys):
    out = tmp_path / "data.pixpack"
    assert cli_main(["pack", str(photo_folder), str(out), "--workers", "1", "--quiet"]) == 1
    assert capsys.readouterr().err == (f"error: No space left on device: {out}.partial (removed)\n")
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def tiny_tmpfs(tmp_path) -> Path:
    """A real 2 MB file system (root only; skipped where mounting is not permitted)."""
    mount = tmp_path / f"tmpfs-{uuid.uuid4().hex[:8]}"
    mount.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
        capture_output=True, text=True,
    )  # fmt: skip
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_a_really_full_disk_leaves_nothing(tiny_tmpfs, photo_folder):
    out = tiny_tmpfs / "data.pixpack"
    with pytest.raises(OSError) as caught:  # 24 raw photos: ~13 MB for 2 MB of space
        pack(photo_folder, out, workers=1, quiet=True)
    assert caught.value.errno == errno.ENOSPC
    assert str(out) in str(caught.value.filename)
    assert list(tiny_tmpfs.iterdir()) == []
