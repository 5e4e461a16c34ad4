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


def test_off_a_tty_a_log_gets_a_line_per_interval():
    """Issue 13: a first build in a batch job was silent."""
    lines: list[str] = []
    stream = io.StringIO()
    with Progress(10, "packing", stream=stream, log=lines.append, log_interval=0.0) as bar:
        bar.update(4)
        bar.update(6)
    assert stream.getvalue() == ""
    assert len(lines) == 2 and lines[-1].startswith("packing: 10/10 img")
    quiet: list[str] = []
    with Progress(10, "packing", stream=stream, log=quiet.append, log_interval=3600) as bar:
        bar.update(10)
    assert quiet == []  # not before the interval


def test_a_jupyter_kernel_gets_a_bar(monkeypatch):
    """Issue 13: a notebook's stderr is no TTY, so a first build there was silent."""
    import types

    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    monkeypatch.setitem(sys.modules, "IPython", types.ModuleType("IPython"))
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    with Progress(10, "packing") as bar:
        assert bar.enabled
        bar.update(10)
    assert "10/10" in stream.getvalue()
