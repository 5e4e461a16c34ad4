"""``info``, ``verify``, ``export`` and ``pixpack.open`` on a FIFO or a device: a one-line
error, never a blocking open (child processes with a timeout, so a regression fails)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.mark.parametrize("command", ["info", "verify", "export"])
@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_a_pack_path_that_is_not_a_regular_file(tmp_path, command, kind):
    path = tmp_path / "data.pixpack"
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to("/dev/zero")
    args = [str(path)] + ([str(tmp_path / "out")] if command == "export" else [])
    proc = subprocess.run(
        [sys.executable, "-m", "pixpack", command, *args],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    what = "a FIFO (named pipe)" if kind == "fifo" else "a character device"
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr == f"error: {path}: not a regular file ({what}); give the path of a pack\n"


def test_a_folder_given_as_a_pack_says_to_pack_it(photo_folder):
    """Issue 13: ``PackDataset("data/train")`` (forgot to pack) raised a bare error."""
    import pixpack
    from pixpack.errors import NotAPackError

    for opener in (pixpack.open, pixpack.PackDataset):
        with pytest.raises(NotAPackError) as info:
            opener(f"{photo_folder}/")
        assert str(info.value) == (
            f"{photo_folder} is a directory, not a pack; pack it first: pixpack pack "
            f"{photo_folder} {photo_folder}.pixpack (or pixpack.cached('{photo_folder}') "
            "from Python)"
        )
