"""Progress reporting for read-side commands, through pixpack.progress when present."""

from __future__ import annotations

from typing import Any

__all__ = ["progress_bar"]


class _Silent:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> _Silent:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress_bar(total: int, desc: str, enabled: bool | None, unit: str = "img") -> Any:
    """A bar with rate and ETA (only on a TTY unless ``enabled`` says otherwise)."""
    if enabled is False:
        return _Silent()
    try:
        from ..progress import Progress
    except ImportError:  # pragma: no cover - until pixpack.progress lands
        return _Silent()
    return Progress(total, desc, enabled, unit=unit)
