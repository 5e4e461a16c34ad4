"""The read side: open packs, verify them, export them back to image folders."""

from .export import export
from .open_any import open_pack
from .pack import Pack
from .verify import VerifyReport, verify

__all__ = ["Pack", "open_pack", "verify", "VerifyReport", "export"]
