"""OUT is protected: never an input, never a file that is not a pack, one packer at a time."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pixpack import format as fmt
from pixpack.cli.main import main as cli_main
from pixpack.errors import NotAPackError, OutputBusyError, UsageError
from pixpack.read.open_any import open_pack
from pixpack.read.verify import verify
from pixpack.write import pack
from pixpack.write.outpath import OutLock, lock_path
from pixpack.write.writer import partial_paths


def _csv(tmp_path: Path, photo_folder: Path, name: str = "list.csv") -> Path:
    images = sorted(photo_folder.glob("*/*.jpg"))[:4]
    csv = tmp_path / name
    csv.write_text("".join(f"{p},{i % 2}\n" for i, p in enumerate(images)))
    return csv


def _leftovers(out: Path) -> list[Path]:
    return [p for p in (*partial_paths(out), lock_path(out)) if p.exists()]


def test_the_csv_itself_is_refused(tmp_path, photo_folder):
    csv = _csv(tmp_path, photo_folder)
    before = csv.read_bytes()
    with pytest.raises(UsageError, match="is the CSV file being packed"):
        pack(csv, csv, workers=1, quiet=True)
    assert csv.read_bytes() == before and not _leftovers(csv)


def test_a_file_inside_the_source_folder_is_refused(photo_folder):
    image = sorted(photo_folder.glob("*/*.jpg"))[0]
    before = image.read_bytes()
    with pytest.raises(UsageError, match="inside the source folder"):
        pack(photo_folder, image, workers=1, quiet=True)
    with pytest.raises(UsageError, match="inside the source folder"):
        pack(photo_folder, photo_folder / "new.pixpack", workers=1, quiet=True)
    assert image.read_bytes() == before and not _leftovers(image)


def test_the_source_folder_itself_is_refused(photo_folder):
    with pytest.raises(UsageError, match="source folder"):
        pack(photo_folder, photo_folder, workers=1, quiet=True)


def test_a_listed_source_file_is_refused(tmp_path, photo_folder):
    image = tmp_path / "outside.jpg"
    image.write_bytes(sorted(photo_folder.glob("*/*.jpg"))[0].read_bytes())
    csv = tmp_path / "list.csv"
    csv.write_text(f"{sorted(photo_folder.glob('*/*.jpg'))[1]},0\noutside.jpg,1\n")
    with pytest.raises(UsageError, match=r"input image of this pack \(item 1\)"):
        pack(csv, image, workers=1, quiet=True)
    with pytest.raises(UsageError, match=r"input image of this pack \(item 0\)"):
        pack([(str(image), 0)], tmp_path / "." / "outside.jpg", workers=1, quiet=True)
    assert image.read_bytes() == sorted(photo_folder.glob("*/*.jpg"))[0].read_bytes()


def test_an_existing_file_that_is_not_a_pack_is_never_overwritten(tmp_path, photo_folder):
    other = tmp_path / "notes.txt"
    other.write_text("my only copy\n")
    with pytest.raises(UsageError, match="exists and is not a pixpack pack"):
        pack(photo_folder, other, workers=1, quiet=True)
    assert other.read_text() == "my only copy\n" and not _leftovers(other)


def test_existing_packs_and_empty_files_are_replaced(tmp_path, photo_folder):
    out = tmp_path / "data.pixpack"
    out.touch()  # an empty file (e.g. from mktemp) holds nothing to lose
    pack(photo_folder, out, workers=1, quiet=True, max_side=32)
    first = out.read_bytes()
    assert first.startswith(fmt.MAGIC)
    pack(photo_folder, out, workers=1, quiet=True, max_side=48)  # a pack is replaced
    assert out.read_bytes() != first and len(open_pack(out)) == 24
    assert not _leftovers(out)


def test_cli_refuses_with_one_line(tmp_path, photo_folder, capsys):
    csv = _csv(tmp_path, photo_folder)
    assert cli_main(["pack", str(csv), str(csv), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and str(csv) in err


def test_not_a_pack_message_never_suggests_overwriting_the_file(tmp_path, photo_folder):
    csv = _csv(tmp_path, photo_folder, "extra.csv")
    with pytest.raises(NotAPackError) as caught:
        open_pack(csv)
    assert f"SRC {csv}" not in str(caught.value) and "extra.csv`" not in str(caught.value)


# -- one packer per OUT --------------------------------------------------------------------
def test_a_held_lock_refuses_at_once_and_touches_nothing(tmp_path, photo_folder):
    out = tmp_path / "data.pixpack"
    tmp = partial_paths(out)[0]
    theirs = b"\x00" * 4096 + b"another packer's samples"
    tmp.write_bytes(theirs)
    with OutLock(out):
        started = time.monotonic()
        busy = rf"another pixpack pack is writing it \(pid {os.getpid()}"
        with pytest.raises(OutputBusyError, match=busy):
            pack(photo_folder, out, workers=1, quiet=True)
        assert time.monotonic() - started < 5
        assert tmp.read_bytes() == theirs and not out.exists()
    tmp.unlink()
    pack(photo_folder, out, workers=1, quiet=True, max_side=32)  # released: packs
    assert not _leftovers(out)


def test_a_stale_lock_file_does_not_block(tmp_path, photo_folder):
    out = tmp_path / "data.pixpack"
    lock_path(out).write_text("999999\n")  # left by a packer killed with SIGKILL
    pack(photo_folder, out, workers=1, quiet=True, max_side=32)
    assert verify(out).ok and not _leftovers(out)


_SLOW_PACKER = textwrap.dedent(
    """
    import sys, time
    from pixpack.write import ImageFolderSource, pack

    class Slow(ImageFolderSource):
        def load(self, i):
            time.sleep(0.02)
            return super().load(i)

    pack(Slow(sys.argv[1]), sys.argv[2], workers=1, executor="thread", max_side=48, quiet=True)
    """
)


def _cli(*args: object) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "pixpack", *map(str, args)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def test_two_processes_packing_one_out_leave_one_valid_pack(tmp_path, photo_folder):
    """The first packer is frozen (SIGSTOP) while it holds the lock, so the second one
    always meets it: it must fail fast and leave the first to finish a valid pack."""
    out = tmp_path / "data.pixpack"
    first = subprocess.Popen(
        [sys.executable, "-c", _SLOW_PACKER, str(photo_folder), str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not (lock_path(out).exists() and lock_path(out).read_text().strip()):
            assert first.poll() is None and time.monotonic() < deadline, first.stderr
            time.sleep(0.005)
        os.kill(first.pid, signal.SIGSTOP)
        second = _cli("pack", photo_folder, out, "--workers", "1", "--quiet")
        _, err = second.communicate(timeout=60)
        assert second.returncode == 1, err
        assert err.strip() == (
            f"error: {out}: another pixpack pack is writing it (pid {first.pid}, lock "
            f"{lock_path(out).name}); wait for it to finish or choose another OUT."
        )
    finally:
        os.kill(first.pid, signal.SIGCONT)
        first.communicate(timeout=120)
    assert first.returncode == 0
    report = verify(out)
    assert report.ok and report.num_samples == 24 and not _leftovers(out)


def test_two_packers_started_together_end_in_one_valid_pack(tmp_path, photo_folder):
    out = tmp_path / "data.pixpack"
    runs = [_cli("pack", photo_folder, out, "--workers", "1", "--quiet") for _ in range(2)]
    results = [(p.wait(timeout=120), p.communicate()[1]) for p in runs]
    for code, err in results:  # both may succeed one after the other, never overlap
        assert code == 0 or (code == 1 and "another pixpack pack is writing it" in err), err
    assert any(code == 0 for code, _ in results)
    assert verify(out).ok and len(open_pack(out)) == 24 and not _leftovers(out)


def test_temp_file_names_that_hold_something_else_are_refused(tmp_path, photo_folder):
    """pack() writes OUT.partial and its sidecars: it must not write through a symlink
    there, nor over a file that no packer made."""
    out = tmp_path / "data.pixpack"
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me\n")
    tmp, journal, _ = partial_paths(out)
    journal.symlink_to(precious)
    with pytest.raises(UsageError, match="is a symlink where pack\\(\\) keeps its temp file"):
        pack(photo_folder, out, workers=1, quiet=True)
    journal.unlink()
    tmp.write_text("not a partial pack\n")
    with pytest.raises(UsageError, match="exists and is not a partial pack"):
        pack(photo_folder, out, workers=1, quiet=True)
    assert precious.read_text() == "keep me\n" and tmp.read_text() == "not a partial pack\n"
    tmp.write_bytes(b"\x00" * 4096)  # what an interrupted packer leaves: replaced
    pack(photo_folder, out, workers=1, quiet=True, max_side=32)
    assert verify(out).ok and not _leftovers(out)


def test_out_in_a_folder_that_does_not_exist_yet(tmp_path, photo_folder):
    out = tmp_path / "new" / "deeper" / "data.pixpack"  # created, as before the lock
    pack(photo_folder, out, workers=1, quiet=True, max_side=32)
    assert verify(out).ok and not _leftovers(out)
