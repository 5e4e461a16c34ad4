"""Where a pack's bytes come from, decided in one place.

Readers ask for ``(offset, nbytes)`` spans; this layer answers them and decides how
the bytes get there:

- :mod:`.local`: a local file, one read-only memory map advised for its access pattern
  (random: each sample's exact bytes, no read-around; sequential: large read-ahead);
- :mod:`.readahead`: a background thread that starts the reads of a known order ahead
  of the consumer, so many requests are in flight and decode threads never wait on I/O
  the disk could already have done.
"""

from .local import Access, LocalFile
from .readahead import ReadAhead

__all__ = ["Access", "LocalFile", "ReadAhead"]
