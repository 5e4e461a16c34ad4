"""Background writeback: syncs the growing partial pack, stops cleanly."""

from __future__ import annotations

import os
import threading
import time

from pixpack.write import flusher
from pixpack.write.flusher import Flusher


def test_syncs_each_time_the_file_grew_enough(tmp_path, monkeypatch):
    synced: list[int] = []
    monkeypatch.setattr(flusher.os, "fdatasync", lambda fd: synced.append(os.fstat(fd).st_size))
    path = tmp_path / "p.partial"
    with open(path, "wb") as f, Flusher(path, every=1000, poll=0.005):
        f.write(b"x" * 500)
        f.flush()
        time.sleep(0.1)
        assert synced == []  # not grown enough yet
        f.write(b"x" * 600)
        f.flush()
        deadline = time.monotonic() + 5
        while not synced and time.monotonic() < deadline:
            time.sleep(0.005)
    assert synced == [1100]
    assert not any(t.name == "pixpack-flush" for t in threading.enumerate())


def test_missing_file_is_harmless(tmp_path):
    with Flusher(tmp_path / "absent"):
        pass
