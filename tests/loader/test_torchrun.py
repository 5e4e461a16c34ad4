"""Issue 14 under real ``torchrun`` (CPU, gloo): DDP steps with a collective after every
batch, on ranks that shard by themselves.

Every rank trains a tiny DistributedDataParallel model and runs an ``all_reduce`` after
every batch, so a rank with one batch fewer than the others makes the job fail (gloo's
timeout) instead of passing; each launch is killed after ``_TIMEOUT`` seconds, so a hang
fails the test and never hangs CI. Labels are sample indices, so each rank reports
which samples it read (JSON per rank) and the test compares them with the epoch's global
order ``G``: the batches of a single-process Loader with the same seed, concatenated.

- 13 samples on 3 ranks (one ``torchrun --standalone``) and on two "nodes" of one rank
  each (two ``torchrun --nnodes 2`` on localhost): the shards cover the epoch, padded by
  wrapping around (``exact=True``: every sample once), every rank gets ``len(loader)``
  batches, and the ranks' k-th batches together are positions ``[k*B*W, (k+1)*B*W)``
  of ``G``.
- ``on_error="skip"`` where every sample of one rank's batch fails: that rank gets an
  empty batch (``(0, C, H, W)`` images), never one batch fewer.
- Elastic resume: the state rank 0 saves after k steps on 2 ranks is the job's
  (``position`` = k*B*2 samples of ``G``); jobs on 3 ranks and on 1 rank, with other
  batch sizes, read exactly the rest of ``G`` (plus wrap-around padding to a multiple
  of the world size, none with ``exact=True``).

Five launches in all: each costs seconds (torch's import, the process group).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

import pixpack
from pixpack.ops import Resize

_TIMEOUT = 120  # seconds per launch: a hang fails the test instead of hanging CI
_N = 13  # samples: divisible by neither 2 nor 3 ranks
_B = 2  # batch size of the launches (the resumed jobs use others)
_KW = dict(pipeline=[Resize((8, 8))], dtype="float32", seed=5)  # as in _RANK

_RANK = textwrap.dedent(
    """
    import itertools, json, os, sys
    from datetime import timedelta
    import torch
    import torch.distributed as dist
    import pixpack
    from pixpack.ops import Resize

    mode, out, pack_path, batch_size = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    # A rank left waiting in a collective fails after a minute instead of half an hour.
    dist.init_process_group("gloo", timeout=timedelta(seconds=60))
    rank = dist.get_rank()
    torch.manual_seed(0)
    model = torch.nn.parallel.DistributedDataParallel(
        torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 13))
    )
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    criterion = torch.nn.CrossEntropyLoss()
    kw = dict(pipeline=[Resize((8, 8))], dtype="float32", seed=5)


    def train(batches, steps=None):
        # DDP steps with an all_reduce after every batch; which samples each batch held.
        seen, shapes, total = [], [], 0
        for x, y in itertools.islice(batches, steps):
            opt.zero_grad()
            loss = criterion(model(x), y) if len(y) else model(x).sum() * 0
            loss.backward()
            opt.step()
            count = torch.tensor([len(y)])
            dist.all_reduce(count)
            total += int(count)
            seen.append(y.tolist())
            shapes.append([list(x.shape), list(y.shape)])
        return {"batches": seen, "shapes": shapes, "total": total}


    result = {"world_size": dist.get_world_size()}
    for exact in (False, True):
        if mode == "faults":
            loader = pixpack.Loader(pack_path, batch_size, exact=exact, on_error="skip", **kw)
        else:
            loader = pixpack.Loader(pack_path, batch_size, exact=exact, **kw)
        if mode == "resume":
            loader.load_state_dict(torch.load(f"{sys.argv[5]}.{exact}", weights_only=False))
        batches = iter(loader)  # held: a dropped iterator would end the epoch in the state
        r = train(batches, steps=2 if mode == "save" else None)
        if mode == "save":
            state = loader.state_dict()
            r["epoch"], r["position"] = state.get("epoch"), state.get("position")
            if rank == 0:  # the job's state
                torch.save(state, f"{out}.state.{exact}")
        r["len"] = len(loader)
        r["skipped"] = [i for i, _ in loader.skipped]
        print(f"RESULT rank {rank} {mode} exact={exact}: {len(r['batches'])} batches "
              f"(len {r['len']}): {r['batches']}", flush=True)
        result["exact" if exact else "padded"] = r
        loader.close()
    with open(f"{out}.{rank}", "w") as f:
        json.dump(result, f)
    dist.barrier()
    dist.destroy_process_group()
    # Skip C++ static destructors: under load, gloo's teardown at interpreter exit
    # sometimes hit "terminate called without an active exception" after every result
    # was written (a torch shutdown race, not the Loader's).
    sys.stdout.flush()
    os._exit(0)
    """
)


@pytest.fixture(scope="module")
def pack(photo_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """13 JPEG photos whose labels are their sample indices."""
    images = sorted(photo_folder.rglob("*.jpg"))[:_N]
    out = tmp_path_factory.mktemp("torchrun") / "p.pixpack"
    pixpack.pack([(str(p), i) for i, p in enumerate(images)], out, mode="jpeg", max_side=32,
                 quiet=True)  # fmt: skip
    return out


def _global_order(pack: Path, exact: bool) -> list[int]:
    """G: the epoch's samples in order, from one process."""
    with pixpack.Loader(pack, _B, rank=0, world_size=1, exact=exact, **_KW) as loader:
        return [int(i) for _, labels in loader for i in labels]


def _padded(order: list[int], world: int, exact: bool, start: int = 0) -> list[int]:
    """What ``world`` ranks read of ``order`` from position ``start`` on: padded to a
    multiple of ``world`` by wrapping around to the epoch's start (like
    DistributedSampler), or exactly the rest with ``exact``."""
    rest = order[start:]
    return rest if exact else rest + order[: (-len(rest)) % world]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _launch(tmp_path: Path, nodes: list[list[str]], world: int, mode: str, *args: str) -> list:
    """Run ``_RANK mode args`` under the torchrun commands ``nodes`` (torchrun options
    each) side by side on ``world`` ranks in all; fail if one fails or they take over
    ``_TIMEOUT`` s. Each rank's results (JSON)."""
    script = tmp_path / "rank.py"
    script.write_text(_RANK)
    out = tmp_path / mode
    procs, logs, hung = [], [], False
    try:
        for i, node in enumerate(nodes):
            log = (tmp_path / f"{mode}.node{i}.log").open("w")
            logs.append(log)
            cmd = [sys.executable, "-m", "torch.distributed.run", *node, str(script), mode,
                   str(out), *args]  # fmt: skip
            # Logs in files, not pipes: a worker left behind cannot block reading them.
            procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT))
        deadline = time.monotonic() + _TIMEOUT
        for p in procs:
            try:
                p.wait(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                hung = True
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()  # torchrun stops its workers on SIGTERM
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(timeout=20)
        for log in logs:
            log.close()
    text = ""
    for i, p in enumerate(procs):
        log_text = (tmp_path / f"{mode}.node{i}.log").read_text()
        lines = [line for line in log_text.splitlines() if "RESULT" in line or "Error" in line]
        text += f"--- node {i} (exit {p.returncode}):\n" + "\n".join(lines[-20:])
        text += f"\n--- its log's end:\n{log_text[-3000:]}\n"
    assert not hung, f"{mode}: still running after {_TIMEOUT} s (a rank waits forever)\n{text}"
    assert all(p.returncode == 0 for p in procs), f"{mode} failed\n{text}"
    results = [json.loads(Path(f"{out}.{rank}").read_text()) for rank in range(world)]
    assert {r["world_size"] for r in results} == {world}
    return results


def _standalone(tmp_path: Path, ranks: int, mode: str, *args: str) -> list:
    """``_RANK mode args`` on ``ranks`` ranks of one ``torchrun --standalone``."""
    return _launch(tmp_path, [["--standalone", "--nproc_per_node", str(ranks)]], ranks, mode,
                   *args)  # fmt: skip


def _check_epoch(ranks: list[dict], pack: Path) -> None:
    """A full epoch on ``len(ranks)`` ranks: covered, equal batch counts, global batches."""
    world = len(ranks)
    for key, exact in (("padded", False), ("exact", True)):
        runs = [r[key] for r in ranks]
        expected = _padded(_global_order(pack, exact), world, exact)
        # Every rank len(loader) batches, the same everywhere; the all_reduce saw them all.
        assert len({r["len"] for r in runs}) == 1, key
        assert [len(r["batches"]) for r in runs] == [runs[0]["len"]] * world, key
        assert {r["total"] for r in runs} == {len(expected)}, key
        # Disjoint shards covering the epoch: G (padded by wrapping around, or exact).
        seen = [i for r in runs for b in r["batches"] for i in b]
        assert sorted(seen) == sorted(expected), key
        assert set(seen) == set(range(_N)), key
        if exact:
            assert len(seen) == _N, key
        # The ranks' k-th batches together: positions [k*B*W, (k+1)*B*W) of G.
        stride = _B * world
        for k, step in enumerate(zip(*(r["batches"] for r in runs), strict=True)):
            together = sorted(i for batch in step for i in batch)
            assert together == sorted(expected[k * stride : (k + 1) * stride]), (key, k)


def test_three_ranks(tmp_path: Path, pack: Path) -> None:
    _check_epoch(_standalone(tmp_path, 3, "train", str(pack), str(_B)), pack)


def test_two_nodes_on_localhost(tmp_path: Path, pack: Path) -> None:
    # Two agents, one rank each, meeting at 127.0.0.1 (the static rendezvous).
    port = str(_free_port())
    nodes = [["--nnodes", "2", "--node_rank", str(i), "--nproc_per_node", "1",
              "--master_addr", "127.0.0.1", "--master_port", port] for i in (0, 1)]  # fmt: skip
    _check_epoch(_launch(tmp_path, nodes, 2, "train", str(pack), str(_B)), pack)


def _shards(pack: Path, world: int, exact: bool) -> list[list[list[int]]]:
    """Each rank's batches (sample ids), from explicit rank/world_size in this process."""
    out = []
    for rank in range(world):
        with pixpack.Loader(pack, _B, rank=rank, world_size=world, exact=exact, **_KW) as loader:
            out.append([[int(i) for i in labels] for _, labels in loader])
    return out


def _damaged(pack: Path, dst: Path, samples: set[int]) -> Path:
    """A copy of ``pack`` whose JPEG bytes of ``samples`` are zeros (they fail to decode)."""
    with pixpack.open(pack) as p:
        spans = [(int(p.index["offset"][i]), int(p.index["nbytes"][i])) for i in samples]
    data = bytearray(pack.read_bytes())
    for offset, size in spans:
        data[offset : offset + size] = bytes(size)
    dst.write_bytes(bytes(data))
    return dst


def test_all_failed_batch_is_yielded_empty(tmp_path: Path, pack: Path) -> None:
    # Fail all of rank 1's second batch, and one sample of rank 2's first.
    shards = _shards(pack, 3, exact=False)
    failing = set(shards[1][1]) | {shards[2][0][0]}
    damaged = _damaged(pack, tmp_path / "damaged.pixpack", failing)
    ranks = _standalone(tmp_path, 3, "faults", str(damaged), str(_B))
    for key, exact in (("padded", False), ("exact", True)):
        runs = [r[key] for r in ranks]
        intact = _shards(pack, 3, exact)
        expected = [[[i for i in b if i not in failing] for b in rank] for rank in intact]
        # The scenario: one batch of rank 1 fails entirely, no batch of the others does.
        emptied = [
            [k for k, (b, i) in enumerate(zip(e, r, strict=True)) if i and not b]
            for e, r in zip(expected, intact, strict=True)
        ]
        assert emptied == [[], [1], []], key
        # Every rank len(loader) batches, an all-failed one empty; partial ones smaller.
        assert [r["batches"] for r in runs] == expected, key
        assert [len(r["batches"]) for r in runs] == [r["len"] for r in runs], key
        assert runs[1]["shapes"][1] == [[0, 3, 8, 8], [0]], key
        assert {r["total"] for r in runs} == {sum(len(b) for e in expected for b in e)}, key
        for run, rank in zip(runs, intact, strict=True):
            assert set(run["skipped"]) == failing & {i for b in rank for i in b}, key


def test_elastic_resume(tmp_path: Path, pack: Path) -> None:
    # 2 ranks, batch 2: rank 0 saves the job's state after 2 steps.
    steps, saved_world = 2, 2
    saved = _standalone(tmp_path, saved_world, "save", str(pack), str(_B))
    position = steps * _B * saved_world
    state_path = f"{tmp_path / 'save'}.state"
    orders = {key: _global_order(pack, exact) for key, exact in (("padded", False),
                                                                 ("exact", True))}  # fmt: skip
    for key, order in orders.items():
        runs = [r[key] for r in saved]
        assert runs[0]["epoch"] == 0, key
        assert runs[0]["position"] == position, key  # k * B * N samples of G
        # The ranks' k-th batches together: positions [k*B*N, (k+1)*B*N) of G.
        for k, step in enumerate(zip(*(r["batches"] for r in runs), strict=True)):
            together = sorted(i for batch in step for i in batch)
            stride = _B * saved_world
            assert together == sorted(order[k * stride : (k + 1) * stride]), (key, k)
    # 3 ranks, batch 3: together, exactly the rest of G (padded to a multiple of 3).
    resumed = _standalone(tmp_path, 3, "resume", str(pack), "3", state_path)
    for key, exact in (("padded", False), ("exact", True)):
        runs = [r[key] for r in resumed]
        rest = _padded(orders[key], 3, exact, start=position)
        seen = [i for r in runs for b in r["batches"] for i in b]
        assert sorted(seen) == sorted(rest), key
        assert len({len(r["batches"]) for r in runs}) == 1, key  # the same on every rank
        assert {r["total"] for r in runs} == {len(rest)}, key
    # 1 rank, batch 4, in this process: exactly the rest of G.
    for key, exact in (("padded", False), ("exact", True)):
        with pixpack.Loader(pack, 4, rank=0, world_size=1, exact=exact, **_KW) as loader:
            loader.load_state_dict(torch.load(f"{state_path}.{exact}", weights_only=False))
            seen = [int(i) for _, labels in loader for i in labels]
        assert sorted(seen) == sorted(orders[key][position:]), key
