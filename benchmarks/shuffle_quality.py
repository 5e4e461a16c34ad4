"""How much a block shuffle gives up against a full shuffle (pure arithmetic, no I/O).

Packs made from an ImageFolder tree store their samples class by class, so a block of
neighbouring samples is mostly one class: the price of a block shuffle is paid in the
label mix of each batch. For a pack laid out like that (``classes`` runs of equal
length), every ordering is scored per batch of 64 over ``epochs`` epochs:

- **classes per batch**: distinct labels in a batch (a full shuffle's is the reference);
- **label TV distance**: total variation distance between a batch's label histogram and
  the dataset's (0: the batch has exactly the global mix; 1: disjoint);
- **neighbour co-batching**: the fraction of pairs of pack-order neighbours (i, i+1)
  that land in the same batch (a full shuffle: ~ batch/n; a sequential read: ~1);
- **max same-class run**: the longest run of one label in the epoch's order.

The last table packs the same samples in a random order (a CSV or list source written
shuffled): then a block holds a random mix of classes and a block shuffle keeps the
label mix of a full shuffle, only neighbour co-batching stays.

    python benchmarks/shuffle_quality.py        # writes results/shuffle-quality.md
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

from pixpack.loader.ordering import block_order, epoch_order  # noqa: E402

BATCH = 64
DATASETS = {
    "20k photos, 10 classes": (20_000, 10, False),
    "ImageNet-1k layout": (1_281_167, 1000, False),
    "ImageNet-1k, samples packed in random order": (1_281_167, 1000, True),
}
ORDERS = [("full shuffle", 0, 0), *[
    (f"block_shuffle={b}, block_window={w}", b, w)
    for b, w in ((8, 8), (32, 8), (32, 32), (64, 8), (256, 8))
]]


def _scores(order: np.ndarray, labels: np.ndarray, classes: int) -> dict[str, float]:
    n = len(order) // BATCH * BATCH
    batches = labels[order[:n]].reshape(-1, BATCH)
    counts = np.zeros((len(batches), classes), np.int64)
    np.add.at(counts, (np.repeat(np.arange(len(batches)), BATCH), batches.ravel()), 1)
    share = np.bincount(labels, minlength=classes) / len(labels)
    tv = 0.5 * np.abs(counts / BATCH - share).sum(axis=1)
    batch_of = np.empty(len(order), np.int64)
    batch_of[order] = np.arange(len(order)) // BATCH
    same = labels[order]
    change = np.flatnonzero(np.diff(same) != 0)
    runs = np.diff(np.concatenate(([-1], change, [len(same) - 1])))
    return {
        "classes per batch": float((counts > 0).sum(axis=1).mean()),
        "label TV distance": float(tv.mean()),
        "neighbour co-batching": float((batch_of[:-1] == batch_of[1:]).mean()),
        "max same-class run": float(runs.max()),
    }


def main() -> int:
    lines = [
        "# Block shuffle: shuffle quality against a full shuffle",
        "",
        f"Batch {BATCH}; samples stored class by class (an ImageFolder pack); mean over 3 "
        "epochs (seeds 0, epochs 0-2). Made by `python benchmarks/shuffle_quality.py`.",
    ]
    for title, (n, classes, mixed) in DATASETS.items():
        labels = np.repeat(np.arange(classes), -(-n // classes))[:n]
        if mixed:  # a pack written from a shuffled source list
            labels = np.random.default_rng(1).permutation(labels)
        lines += ["", f"## {title} ({n:,} samples)", "",
                  "| order | classes per batch | label TV distance | neighbour co-batching "
                  "| max same-class run |", "|---|---:|---:|---:|---:|"]
        for name, block, window in ORDERS:
            rows = []
            for epoch in range(3):
                order = (block_order(n, 0, epoch, block, window) if block
                         else epoch_order(n, 0, epoch, True))
                rows.append(_scores(order, labels, classes))
            mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
            lines.append(
                f"| {name} | {mean['classes per batch']:.2f} | {mean['label TV distance']:.3f} "
                f"| {mean['neighbour co-batching']:.4f} | {mean['max same-class run']:.0f} |"
            )
            print(title, name, mean, flush=True)
    out = HERE / "results" / "shuffle-quality.md"
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
