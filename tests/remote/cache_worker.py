"""One of several processes reading a remote pack through one shared cache directory
(run by test_shard_cache.py): every sample it reads is compared with the local pack, and
what it saw is printed as one JSON line."""

from __future__ import annotations

import json
import sys

import numpy as np

import pixpack


def main(url: str, local_path: str, cache_dir: str, limit: int, seed: int) -> int:
    options = pixpack.RemoteOptions(cache_dir=cache_dir, cache_limit=limit, backoff_s=0.01,
                                    deadline_s=60)  # fmt: skip
    bad = checked = 0
    with pixpack.open(url, remote=options) as pack, pixpack.open(local_path) as local:
        order = np.random.default_rng(seed).permutation(np.tile(np.arange(len(local)), 3))
        for i in order.tolist():
            same = bytes(pack.sample_bytes(i)) == bytes(local.sample_bytes(i))
            image, label = pack[i]
            want, want_label = local[i]
            same = same and label == want_label and np.array_equal(image, want)
            bad += not same
            checked += 1
        cache = pack._source.cache
        print(json.dumps({"checked": checked, "bad": bad, "downloads": cache.downloads,
                          "evicted": cache.evicted}))  # fmt: skip
    return 0


if __name__ == "__main__":
    url, local_path, cache_dir, limit, seed = sys.argv[1:]
    sys.exit(main(url, local_path, cache_dir, int(limit), int(seed)))
