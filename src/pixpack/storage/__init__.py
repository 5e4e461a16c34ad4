"""Where a pack's bytes come from, decided in one place.

Readers ask for ``(offset, nbytes)`` spans; this layer answers them and decides how
the bytes get there:

- :mod:`.local`: a local file, one read-only memory map advised for its access pattern
  (random: each sample's exact bytes, no read-around; sequential: large read-ahead);
- :mod:`.readahead`: a background thread that starts the reads of a known order ahead
  of the consumer, so many requests are in flight and decode threads never wait on I/O
  the disk could already have done;
- :mod:`.remote`: range reads and downloads of remote objects (S3, GCS, Azure, HTTP)
  through fsspec, with timeouts, retries and a deadline;
- :mod:`.shard_cache`: whole shards downloaded into a local directory bounded in
  bytes, crash-safe and shared by processes, then mapped as local files. A remote
  shard not fetched yet answers read-ahead by starting its download: prefetch is the
  same ``will_need_many`` call at a longer distance.
"""

from .local import Access, LocalFile
from .readahead import ReadAhead

__all__ = ["Access", "LocalFile", "ReadAhead"]
