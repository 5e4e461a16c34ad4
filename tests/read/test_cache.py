"""cached(): build once, reuse across processes, rebuild on change, one build under a race."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import pixpack
from pixpack import sample_data
from pixpack.cache import cache_key, cached, clear_cache, default_cache_dir, list_cache
from pixpack.cli.main import main
from pixpack.errors import UsageError
from pixpack.options import PackOptions

pytest.importorskip("pixpack.write.packer")  # cached() builds with pack()

# Runs cached() in a fresh process. pack() is wrapped to log each build (and to wait
# a little, so a concurrent caller really meets the lock); NO_BUILD makes a build fail.
_CHILD = textwrap.dedent(
    """
    import json, os, sys, time
    from pathlib import Path
    import pixpack.write.packer as packer
    from pixpack.cache import cached

    source, cache_dir, log, go = sys.argv[1:5]
    real_pack = packer.pack

    def logged_pack(*args, **kwargs):
        if os.environ.get("NO_BUILD"):
            raise SystemExit("cached() tried to rebuild")
        with open(log, "a") as f:
            f.write(f"{os.getpid()}\\n")
        time.sleep(0.5)
        return real_pack(*args, **kwargs)

    packer.pack = logged_pack
    while go != "-" and not Path(go).exists():
        time.sleep(0.005)
    pack = cached(source, cache_dir, workers=1, quiet=True)
    st = os.stat(pack.path)
    print(json.dumps({"path": str(pack.path), "n": len(pack), "inode": st.st_ino,
                      "mtime": st.st_mtime_ns, "created": pack.metadata["created"],
                      "pixel": int(pack[0][0].sum())}))
    """
)


def run_child(source, cache_dir, log, go="-", no_build=False) -> subprocess.Popen:
    env = dict(os.environ)
    if no_build:
        env["NO_BUILD"] = "1"
    return subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(source), str(cache_dir), str(log), str(go)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )


def result(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return json.loads(out)


@pytest.fixture
def folder(tmp_path) -> Path:
    return sample_data.make_image_folder(
        tmp_path / "src", num_classes=2, per_class=3, size=(64, 48), seed=5
    )


def builds(log: Path) -> int:
    return len(log.read_text().split()) if log.exists() else 0


def test_builds_once_then_reuses_in_a_new_process(folder, tmp_path):
    cache, log = tmp_path / "cache", tmp_path / "log"
    first = cached(folder, cache, workers=1, quiet=True)
    assert first.path.parent == cache and first.path.suffix == ".pixpack"
    assert len(first) == 6 and first.classes == ["class_00", "class_01"]
    st = os.stat(first.path)
    again = result(run_child(folder, cache, log, no_build=True))  # a rebuild would fail
    assert again["path"] == str(first.path)
    assert (again["inode"], again["mtime"]) == (st.st_ino, st.st_mtime_ns)
    assert again["created"] == first.metadata["created"]
    assert builds(log) == 0
    assert not list(cache.glob("*.partial*"))


def test_rebuilds_when_a_source_file_changes(folder, tmp_path):
    cache = tmp_path / "cache"
    old = cached(folder, cache, workers=1, quiet=True)
    image_path = sorted((folder / "class_00").glob("*.jpg"))[0]
    Image.fromarray(np.full((48, 64, 3), 255, np.uint8)).save(image_path)  # new content
    future = time.time() + 10
    os.utime(image_path, (future, future))  # and a new mtime, whatever the clock's grain
    new = cached(folder, cache, workers=1, quiet=True)
    assert new.path != old.path
    assert int(new[0][0].min()) >= 250  # the white image, not the old photo crop
    assert int(old[0][0].min()) < 250


def test_touching_a_file_changes_the_key(folder):
    options = PackOptions(workers=1)
    before = cache_key(folder, options)
    path = next((folder / "class_01").glob("*.jpg"))
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert cache_key(folder, options) != before


def test_options_that_change_bytes_change_the_key(folder):
    raw = cache_key(folder, PackOptions(workers=1))
    assert cache_key(folder, PackOptions(workers=2, quiet=True)) == raw  # same bytes
    assert cache_key(folder, PackOptions(mode="jpeg")) != raw
    assert cache_key(folder, PackOptions(max_side=32)) != raw


def test_two_processes_at_once_build_exactly_once(folder, tmp_path):
    cache, log, go = tmp_path / "cache", tmp_path / "log", tmp_path / "go"
    procs = [run_child(folder, cache, log, go) for _ in range(2)]
    time.sleep(1.0)  # both are imported and spinning on the start signal
    go.touch()
    a, b = (result(p) for p in procs)
    assert builds(log) == 1
    assert a["path"] == b["path"] and a["n"] == b["n"] == 6
    assert a["inode"] == b["inode"] and a["pixel"] == b["pixel"]


def test_in_memory_sources_need_a_key(tmp_path, photos):
    data = [(photos[0][:40, :50], 0), (photos[1][:30, :20], 1)]
    with pytest.raises(UsageError, match="key="):
        cached(data, tmp_path / "cache", workers=1)
    first = cached(data, tmp_path / "cache", key="two-photos-v1", workers=1, quiet=True)
    second = cached(data, tmp_path / "cache", key="two-photos-v1", workers=1, quiet=True)
    assert first.path == second.path and len(second) == 2
    np.testing.assert_array_equal(second[1][0], photos[1][:30, :20])
    other = cached(data, tmp_path / "cache", key="two-photos-v2", workers=1, quiet=True)
    assert other.path != first.path


def test_damaged_cached_pack_is_rebuilt(folder, tmp_path):
    cache = tmp_path / "cache"
    path = cached(folder, cache, workers=1, quiet=True).path
    with open(path, "r+b") as f:
        f.truncate(1000)
    with pytest.warns(UserWarning, match="damaged cached pack"):
        again = cached(folder, cache, workers=1, quiet=True)
    assert len(again) == 6


def test_bad_options(folder, tmp_path):
    with pytest.raises(UsageError, match="unknown pack option"):
        cached(folder, tmp_path, colour="red")
    with pytest.raises(UsageError, match="resume"):
        cached(folder, tmp_path, resume=True)


def test_default_cache_dir_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "pixpack"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "pixpack"


# -- issue 13 item 2: cached() says what it does, keeps one pack per source ----------------
def change_one_image(folder: Path, value: int) -> None:
    image_path = sorted((folder / "class_00").glob("*.jpg"))[0]
    Image.fromarray(np.full((48, 64, 3), value, np.uint8)).save(image_path)
    future = time.time() + 10 + value
    os.utime(image_path, (future, future))


def test_a_rebuild_leaves_one_pack_and_one_lock_per_source(folder, tmp_path):
    cache = tmp_path / "cache"
    cached(folder, cache, workers=1, quiet=True)
    jpeg = cached(folder, cache, mode="jpeg", workers=1, quiet=True)  # other options: kept
    mine = cache / "mine.pixpack"  # a pack of the same folder that cached() did not build
    pixpack.pack(folder, mine, workers=1, quiet=True)
    for value in (255, 128, 0):
        new = cached(folder, cache, workers=1, quiet=True)
        change_one_image(folder, value)
    newest = cached(folder, cache, workers=1, quiet=True)
    assert newest.path != new.path
    assert sorted(cache.glob("*.pixpack")) == sorted([newest.path, jpeg.path, mine])
    assert sorted(p.stem for p in cache.glob("*.lock")) == sorted(
        [newest.path.stem, jpeg.path.stem]
    )
    assert not new.path.exists()  # removed, yet still open it keeps reading
    assert int(new[0][0].min()) == 128 and int(newest[0][0].max()) <= 5


def test_keep_old_keeps_superseded_packs(folder, tmp_path):
    cache = tmp_path / "cache"
    old = cached(folder, cache, workers=1, quiet=True)
    change_one_image(folder, 255)
    new = cached(folder, cache, workers=1, quiet=True, keep_old=True)
    assert sorted(cache.glob("*.pixpack")) == sorted([old.path, new.path])


def test_cached_logs_a_build_and_a_reuse(folder, tmp_path, caplog):
    cache = tmp_path / "cache"
    with caplog.at_level(logging.INFO, logger="pixpack.cache"):
        built = cached(folder, cache, workers=1, quiet=True)
        cached(folder, cache, workers=1, quiet=True)
        change_one_image(folder, 255)
        cached(folder, cache, workers=1, quiet=True)
    messages = [(r.levelname, r.getMessage()) for r in caplog.records]
    building = f"pixpack.cached: building a pack of {folder} into {built.path}"
    assert messages[0] == ("WARNING", building)
    assert messages[1][0] == "WARNING"
    assert messages[1][1].startswith(f"pixpack.cached: built {built.path} (6 images")
    assert messages[2] == ("INFO", f"pixpack.cached: reusing {built.path} (6 images)")
    assert "removed 1 older pack(s) of the same source" in messages[-1][1]
    assert built.path.name in messages[-1][1]


def test_list_and_clear(folder, tmp_path):
    cache = tmp_path / "cache"
    raw = cached(folder, cache, workers=1, quiet=True)
    jpeg = cached(folder, cache, mode="jpeg", workers=1, quiet=True)
    (cache / "notes.txt").write_text("mine")
    entries = list_cache(cache)
    assert {e.path for e in entries} == {raw.path, jpeg.path}
    assert all(e.source == str(folder) and e.nbytes == e.path.stat().st_size for e in entries)
    assert {e.options["mode"] for e in entries} == {"raw", "jpeg"}
    removed, freed, busy = clear_cache(cache)
    assert (removed, busy) == (2, 0) and freed == sum(e.nbytes for e in entries)
    assert sorted(p.name for p in cache.iterdir()) == ["notes.txt"]
    assert list_cache(cache) == [] and clear_cache(tmp_path / "absent") == (0, 0, 0)


def test_clear_leaves_a_key_being_built(folder, tmp_path):
    from filelock import FileLock

    cache = tmp_path / "cache"
    path = cached(folder, cache, workers=1, quiet=True).path
    with FileLock(str(cache / f"{path.stem}.lock")):
        assert clear_cache(cache) == (0, 0, 1)
        assert path.exists()


def test_cache_cli(folder, tmp_path, capsys, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert main(["cache", "path"]) == 0
    assert capsys.readouterr().out == f"{tmp_path / 'xdg' / 'pixpack'}\n"
    path = cached(folder, cache, workers=1, quiet=True).path
    assert main(["cache", "list", "--dir", str(cache)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and str(folder) in lines[0] and path.name in lines[0]
    assert "mode=raw" in lines[0] and lines[1].startswith("1 pack(s), ")
    assert main(["cache", "clear", "--dir", str(cache)]) == 0
    assert capsys.readouterr().out.startswith("removed 1 pack(s), ")
    assert list(cache.iterdir()) == []
