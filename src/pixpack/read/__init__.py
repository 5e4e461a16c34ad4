"""The read side: open packs, verify them, export them back to image folders."""

from .export import export
from .pack import Pack, open_pack
from .verify import VerifyReport, verify

__all__ = ["Pack", "open_pack", "verify", "VerifyReport", "export"]
