"""What ``on_error="skip"``/``"warn"`` dropped, where the user can see it.

A sample that fails to read or decode is dropped from its batch; the loader records it
here (``Loader.skipped``: ``(index, "ErrorType: message")`` pairs of the current or
last epoch), warns once per sample with ``"warn"`` and once per epoch with ``"skip"``
(a summary naming the first one). A pipeline that produces the wrong size is not a
sample's fault and is never skipped (see :mod:`.validate`).
"""

from __future__ import annotations

import warnings
from typing import Any

__all__ = ["SkipReport"]


class SkipReport:
    """The samples skipped in one epoch, and the warnings about them."""

    def __init__(self, policy: str, path: Any) -> None:
        self.policy = policy
        self.path = path
        self.epoch = -1
        self.samples: list[tuple[int, str]] = []

    def begin(self, epoch: int) -> None:
        self.epoch = epoch
        self.samples = []

    def record(self, failures: list[tuple[int, BaseException]]) -> None:
        for index, exc in failures:
            self.samples.append((index, f"{type(exc).__name__}: {exc}"))
            if self.policy == "warn":
                warnings.warn(f"{self.path}: skipped sample {index}: {exc}", stacklevel=3)

    def end(self) -> None:
        """The per-epoch summary of ``on_error="skip"``."""
        if self.policy == "skip" and self.samples:
            index, reason = self.samples[0]
            warnings.warn(
                f"{self.path}: epoch {self.epoch}: skipped {len(self.samples)} sample(s) that "
                f"could not be read or decoded (first: sample {index}, {reason}); "
                "loader.skipped lists them; pixpack verify finds damaged samples",
                stacklevel=3,
            )
