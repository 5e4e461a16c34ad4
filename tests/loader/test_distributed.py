"""Sharding by default: explicit arguments, the process group, torchrun's variables.

The resolution is tested in-process (a fake environment); the real thing runs under
``torchrun --nproc_per_node 2`` with gloo: two ranks that never pass rank/world_size
read disjoint halves that cover the epoch, a drawn seed (``seed=None``) is rank 0's on
every rank, and ``seed=base + rank`` is refused at the first iteration.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import pixpack
from pixpack.loader.distributed import resolve_shard


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        ((None, None), {}, (0, 1)),
        ((None, None), {"RANK": "1", "WORLD_SIZE": "3"}, (1, 3)),
        ((None, None), {"RANK": "3", "WORLD_SIZE": "3"}, (0, 1)),  # inconsistent: ignored
        ((None, None), {"RANK": "x", "WORLD_SIZE": "2"}, (0, 1)),
        ((0, 1), {"RANK": "1", "WORLD_SIZE": "2"}, (0, 1)),  # explicit wins
        ((None, 2), {"RANK": "1", "WORLD_SIZE": "2"}, (1, 2)),
        ((None, 4), {"RANK": "1", "WORLD_SIZE": "2"}, (0, 4)),
        ((2, None), {"RANK": "1", "WORLD_SIZE": "4"}, (2, 4)),
    ],
)
def test_resolution_without_a_process_group(args, env, expected) -> None:
    assert resolve_shard(*args, env=env) == expected


_RANK = textwrap.dedent(
    """
    import json, sys
    import torch.distributed as dist
    import pixpack
    from pixpack.ops import Resize
    pack_path, out = sys.argv[1], sys.argv[2]
    kw = dict(dtype="uint8", pipeline=[Resize((16, 16))], shuffle=True)
    built_before = pixpack.Loader(pack_path, 4, **kw)
    dist.init_process_group("gloo")
    loader = pixpack.Loader(pack_path, 4, **kw)
    seen = [int(x) for _, batch in loader for x in batch]
    early = [int(x) for _, batch in built_before for x in batch]
    rank = dist.get_rank()
    # seed=None: each rank draws its own, and the first iteration adopts rank 0's.
    drawn = pixpack.Loader(pack_path, 4, seed=None, **kw)
    drawn_seen = [int(x) for _, batch in drawn for x in batch]
    # exact=True: each sample once; an all_reduce after every batch never waits forever.
    import torch
    exact_seen, total = [], 0
    for _, batch in pixpack.Loader(pack_path, 4, exact=True, **kw):
        exact_seen += [int(x) for x in batch]
        count = torch.tensor([len(batch)])
        dist.all_reduce(count)
        total += int(count)
    # seed=base + rank: the classic mistake, refused at the first iteration.
    try:
        next(iter(pixpack.Loader(pack_path, 4, seed=10 + rank, **kw)))
        refused = ""
    except pixpack.UsageError as exc:
        refused = str(exc)
    with open(f"{out}.{rank}", "w") as f:
        json.dump({"seen": seen, "early": early, "batches": len(loader),
                   "options": [loader.options.rank, loader.options.world_size],
                   "drawn_seed": drawn.options.seed, "drawn_seen": drawn_seen,
                   "refused": refused, "exact_seen": exact_seen, "exact_total": total}, f)
    dist.barrier()
    dist.destroy_process_group()
    """
)


def test_torchrun_shards_without_being_told(tmp_path: Path, photo_folder: Path) -> None:
    # Labels encode the sample index, so each rank's batches say which samples it read.
    images = [p for p in sorted(photo_folder.rglob("*.jpg"))][:11]
    pack_path = tmp_path / "p.pixpack"
    pixpack.pack([(str(p), i) for i, p in enumerate(images)], pack_path, mode="raw",
                 max_side=32, quiet=True)  # fmt: skip
    script = tmp_path / "rank.py"
    script.write_text(_RANK)
    out = tmp_path / "seen"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
           "2", str(script), str(pack_path), str(out)]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads(Path(f"{out}.{r}").read_text()) for r in (0, 1)]
    assert [r["options"] for r in ranks] == [[0, 2], [1, 2]]
    assert ranks[0]["batches"] == ranks[1]["batches"]
    # 11 samples over 2 ranks: 6 each, one wrapped around (DistributedSampler's padding).
    seen = ranks[0]["seen"] + ranks[1]["seen"]
    assert len(ranks[0]["seen"]) == len(ranks[1]["seen"]) == 6
    assert set(seen) == set(range(11))
    # Built before init_process_group: torchrun's RANK/WORLD_SIZE already shard it.
    assert sorted(ranks[0]["early"] + ranks[1]["early"]) == sorted(seen)
    # seed=None: one seed for the job, so the shards still cover the epoch.
    assert ranks[0]["drawn_seed"] == ranks[1]["drawn_seed"]
    assert set(ranks[0]["drawn_seen"] + ranks[1]["drawn_seen"]) == set(range(11))
    # exact=True: every sample once across the ranks, and the collectives all matched.
    assert sorted(ranks[0]["exact_seen"] + ranks[1]["exact_seen"]) == list(range(11))
    assert ranks[0]["exact_total"] == ranks[1]["exact_total"] == 11
    # Different seeds per rank: one clear error on every rank, naming the fix.
    for r in ranks:
        assert "the ranks disagree on seed: rank 0 has 10, rank 1 has 11" in r["refused"]
        assert "not seed + rank" in r["refused"]


_ONE_RANK = textwrap.dedent(
    """
    import sys
    from datetime import timedelta
    import torch.distributed as dist
    import pixpack
    import pixpack.loader.distributed as agreement
    from pixpack.ops import Resize
    agreement._PATIENCE, agreement._LIMIT = timedelta(seconds=1), timedelta(seconds=4)
    dist.init_process_group("gloo")
    if dist.get_rank() == 0:  # a Loader built and iterated on rank 0 only
        try:
            next(iter(pixpack.Loader(sys.argv[1], 4, pipeline=[Resize((8, 8))])))
            print("NO ERROR")
        except pixpack.UsageError as exc:
            print("REFUSED:", exc)
        single = pixpack.Loader(sys.argv[1], 4, pipeline=[Resize((8, 8))], rank=0, world_size=1)
        print("SINGLE:", sum(len(y) for _, y in single))
    dist.barrier()
    dist.destroy_process_group()
    """
)


def test_a_loader_iterated_on_one_rank_only_is_refused_not_a_hang(tmp_path, photo_folder):
    pack_path = tmp_path / "p.pixpack"
    pixpack.pack(photo_folder, pack_path, mode="raw", max_side=32, quiet=True)
    script = tmp_path / "one.py"
    script.write_text(_ONE_RANK)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
           "2", str(script), str(pack_path)]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "REFUSED: rank 0: the other ranks did not iterate this Loader within 4 s" in done.stdout
    assert "rank=0, world_size=1" in done.stdout and "SINGLE: 24" in done.stdout
    assert "waiting for the other ranks to iterate this Loader" in done.stderr
