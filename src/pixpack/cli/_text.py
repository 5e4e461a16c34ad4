"""Text the CLI prints: one line per message, printable in any locale.

A file or class name may hold a newline (``"bad\\nerror: x.jpg"``) or bytes that are
not UTF-8 (Linux names are bytes; Python holds them as lone surrogates). Printed as
is, the first splits one error into two lines that read like two errors, the second
kills the process with ``UnicodeEncodeError`` on a strict UTF-8 stdout
(``PYTHONIOENCODING=utf-8``, or any UTF-8 locale). :func:`one_line` escapes line
breaks and other control characters the way ``repr`` does; :func:`robust_streams`
makes stdout and stderr escape what their encoding cannot write (``\\udcff``)
instead of failing.
"""

from __future__ import annotations

import io
import sys

__all__ = ["one_line", "robust_streams"]

# Every character str.splitlines() breaks on, and the other C0 controls but tab.
_BREAKS = [*range(0, 9), *range(10, 32), 0x7F, 0x85, 0x2028, 0x2029]
_ESCAPES = {code: repr(chr(code))[1:-1] for code in _BREAKS}


def one_line(text: object) -> str:
    """``str(text)`` with line breaks and control characters escaped (``\\n``)."""
    return str(text).translate(_ESCAPES)


def robust_streams() -> None:
    """Let stdout/stderr write any string: unencodable characters are backslash-escaped."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper) and stream.errors == "strict":
            stream.reconfigure(errors="backslashreplace")
