"""A progress line for long operations (pack, verify, export, bench).

On a terminal it shows ``count/total``, items per second and the time left, through
``tqdm`` when it is installed, else a plain ``\\r`` line on stderr; in a Jupyter kernel
(whose stderr is no terminal) through ``tqdm.auto``'s widget. Elsewhere (logs, CI,
tests) or with ``enabled=False`` it prints nothing, but a ``log`` callable (e.g.
``logger.info``) gets the same line every ``log_interval`` seconds: a job log shows
progress without a bar's carriage returns.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, TextIO

__all__ = ["Progress"]

_MIN_INTERVAL = 0.2  # seconds between redraws of the plain line


class Progress:
    """``with Progress(total, "packing") as bar: bar.update(n)``.

    ``enabled=None`` means: on when stderr is a terminal. ``initial`` counts work
    already done (a resumed pack), so the rate covers only this run.
    """

    def __init__(
        self,
        total: int | None,
        desc: str = "",
        enabled: bool | None = None,
        *,
        unit: str = "img",
        initial: int = 0,
        stream: TextIO | None = None,
        log: Callable[[str], None] | None = None,
        log_interval: float = 60.0,
    ) -> None:
        self.total = total
        self.desc = desc
        self.unit = unit
        self.count = initial
        self._initial = initial
        self._stream = stream if stream is not None else sys.stderr
        notebook = _in_notebook() and self._stream is sys.stderr
        if enabled is None:
            enabled = bool(getattr(self._stream, "isatty", lambda: False)()) or notebook
        self.enabled = enabled
        self._log = log if not enabled else None
        self._log_interval = log_interval
        self._bar: Any = None
        self._start = time.perf_counter()
        self._last_draw = 0.0
        self._last_log = self._start
        if enabled:
            try:
                if notebook:
                    from tqdm.auto import tqdm
                else:
                    from tqdm import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self._bar = tqdm(
                    total=total,
                    desc=desc,
                    unit=unit,
                    initial=initial,
                    file=self._stream,
                    dynamic_ncols=True,
                    smoothing=0.1,
                )

    def update(self, n: int = 1) -> None:
        self.count += n
        if not self.enabled:
            if self._log is not None:
                now = time.perf_counter()
                if now - self._last_log >= self._log_interval:
                    self._last_log = now
                    self._log(self._line(now))
            return
        if self._bar is not None:
            self._bar.update(n)
            return
        now = time.perf_counter()
        if now - self._last_draw >= _MIN_INTERVAL or self.count == self.total:
            self._last_draw = now
            self._stream.write("\r" + self._line(now))
            self._stream.flush()

    def _line(self, now: float) -> str:
        elapsed = max(now - self._start, 1e-9)
        rate = (self.count - self._initial) / elapsed
        head = f"{self.desc}: " if self.desc else ""
        if self.total is None:
            return f"{head}{self.count} {self.unit} {rate:.0f} {self.unit}/s"
        left = (self.total - self.count) / rate if rate > 0 else float("inf")
        eta = "?" if left == float("inf") else f"{int(left) // 60:d}:{int(left) % 60:02d}"
        return f"{head}{self.count}/{self.total} {self.unit} {rate:.0f} {self.unit}/s ETA {eta}"

    def close(self) -> None:
        self._log = None
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        else:
            self._stream.write("\r" + self._line(time.perf_counter()) + "\n")
            self._stream.flush()
        self.enabled = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _in_notebook() -> bool:
    """Whether this process is a Jupyter kernel (its stderr is shown, but is no TTY)."""
    kernel = sys.modules.get("ipykernel")
    return kernel is not None and "IPython" in sys.modules
