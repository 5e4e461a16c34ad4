"""Progress: silent off a terminal, count/rate/ETA on one."""

from __future__ import annotations

import io
import sys

from pixpack.progress import Progress


def test_silent_when_not_a_tty():
    stream = io.StringIO()
    with Progress(10, "packing", stream=stream) as bar:
        bar.update(10)
    assert stream.getvalue() == "" and bar.count == 10


def test_tqdm_line_when_enabled():
    stream = io.StringIO()
    with Progress(10, "packing", enabled=True, stream=stream) as bar:
        for _ in range(10):
            bar.update()
    assert "10/10" in stream.getvalue() and "packing" in stream.getvalue()


def test_plain_line_without_tqdm(monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # import tqdm now raises ImportError
    stream = io.StringIO()
    with Progress(8, "export", enabled=True, stream=stream, initial=2) as bar:
        bar.update(6)
    out = stream.getvalue()
    assert out.startswith("\rexport: ") and "8/8 img" in out and "img/s" in out
    assert out.endswith("\n") and "ETA 0:00" in out
