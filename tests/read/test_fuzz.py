"""Adversarial property test: random truncations, bit flips and field edits (with
checksums made valid again) of a small pack. Whatever the damage, opening, reading every
sample, ``info``, ``verify`` and ``export`` give a result or a pixpack error, never
another exception; ``verify`` names every sample whose stored bytes were flipped.

The Loader takes damaged RGB packs (raw and JPEG) through both of its paths (the native
fast path and the general one) with ``on_error="skip"``: a damaged sample is skipped,
a damaged pack is a pixpack error, nothing else escapes.

Seeded and sized for CI (~200 cases, a few seconds).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from read_helpers import craft_index, craft_metadata

from pixpack import format as fmt
from pixpack.cli.inspect_cmd import _format_info, pack_info
from pixpack.errors import PixpackError
from pixpack.loader import Loader
from pixpack.ops import RandomHorizontalFlip, RandomResizedCrop
from pixpack.read.export import export
from pixpack.read.open_any import open_pack
from pixpack.read.verify import verify

CASES = 200
LOADER_CASES = 80
_VALUES = [0, 1, 2, 3, 4, 7, 200, 255, 65535, 2**31, 2**32 - 1, 2**40, 2**63 - 1]
_JSON = [None, 5, -1, 1.5, "x", "\ud800", [], [1, "a"], {}, {"a": [None]}, [[[[]]]], True]
_META_KEYS = ["classes", "mean", "std", "skipped", "source", "options", "created",
              "pixpack_version", "jpeg_kept_as_source", "num_samples"]  # fmt: skip


_LOADER_PIPELINES = [  # the native fast path, and the general path (nearest: not fused)
    [RandomResizedCrop(24), RandomHorizontalFlip()],
    [RandomResizedCrop(24, interpolation="nearest")],
]


def _damage(path: Path, rng: np.random.Generator, samples: list[tuple[int, int]]) -> set[int]:
    """Damage the pack in place; returns the samples whose stored bytes were flipped."""
    raw = bytearray(path.read_bytes())
    h = fmt.decode_header(bytes(raw[: fmt.HEADER_SIZE]))
    kind = rng.integers(5)
    if kind == 0:  # truncation
        path.write_bytes(bytes(raw[: int(rng.integers(len(raw)))]))
    elif kind == 1:  # bit flips anywhere
        for at in rng.integers(len(raw), size=int(rng.integers(1, 4))).tolist():
            raw[at] ^= 1 << int(rng.integers(8))
        path.write_bytes(bytes(raw))
    elif kind == 2:  # flips inside the stored samples only: verify must name them
        hit = set()
        for i in rng.choice(len(samples), size=int(rng.integers(1, 3)), replace=False).tolist():
            offset, nbytes = samples[i]
            raw[offset + int(rng.integers(nbytes))] ^= 1 << int(rng.integers(8))
            hit.add(i)
        path.write_bytes(bytes(raw))
        return hit
    elif kind == 3:  # an index field edited, index checksum made valid again
        count, at = int(h["num_samples"]), int(h["index_offset"])
        index = np.fromfile(path, fmt.INDEX_DTYPE, count, offset=at)
        name = str(rng.choice(list(fmt.INDEX_DTYPE.names)))
        limit = np.iinfo(fmt.INDEX_DTYPE[name]).max
        value = min(int(rng.choice(_VALUES)), int(limit))
        column = index[name].copy()
        column[int(rng.integers(count))] = value
        craft_index(path, **{name: column})
    else:  # a metadata value replaced, metadata checksum made valid again
        meta = json.loads(bytes(raw[int(h["meta_offset"]) :]).decode())
        meta[str(rng.choice(_META_KEYS))] = _JSON[int(rng.integers(len(_JSON)))]
        text = json.dumps(meta, ensure_ascii=True)  # lone surrogates as \\ud800 escapes
        craft_metadata(path, text.encode())
    return set()


def _exercise(path: Path, out: Path) -> None:
    """Every read-side entry point; pixpack errors are expected, nothing else."""
    try:
        with open_pack(path) as pack:
            for i in range(len(pack)):
                try:
                    pack.read_image(i, copy=True)
                except PixpackError:
                    pass
    except PixpackError:
        pass
    try:
        _format_info(pack_info(str(path)))
    except PixpackError:
        pass
    try:
        export(path, out)
    except PixpackError:
        pass


@pytest.fixture(scope="module")
def pristine(mixed_pack) -> tuple[bytes, list[tuple[int, int]]]:
    with open_pack(mixed_pack) as pack:
        spans = [(int(e["offset"]), int(e["nbytes"])) for e in pack.index]
    return mixed_pack.read_bytes(), spans


@pytest.mark.parametrize("block", range(10))
def test_damaged_packs_give_only_pixpack_errors(tmp_path, pristine, block):
    data, spans = pristine
    rng = np.random.default_rng(1000 + block)
    for case in range(CASES // 10):
        path = tmp_path / f"case{case}.pixpack"
        path.write_bytes(data)
        flipped = _damage(path, rng, spans)
        _exercise(path, tmp_path / f"out{case}")
        try:
            report = verify(path, progress=False)
        except PixpackError:
            assert not flipped  # sample bytes are not read on open
            continue
        assert flipped <= set(report.bad_samples), (case, flipped, report.bad_samples)
        if flipped:
            assert not report.ok


def _load_all(path: Path) -> int:
    """Iterate one epoch per pipeline; returns the batches seen (pixpack errors allowed)."""
    seen = 0
    for pipeline in _LOADER_PIPELINES:
        try:
            loader = Loader(path, 8, pipeline=pipeline, on_error="skip", dtype="uint8",
                            workers=2)  # fmt: skip
        except PixpackError:
            continue
        try:
            for _ in loader:
                seen += 1
        except PixpackError:
            pass
        finally:
            loader.close()
    return seen


@pytest.fixture(scope="module")
def rgb_packs(photo_folder, tmp_path_factory) -> list[tuple[bytes, list[tuple[int, int]]]]:
    """A raw and a JPEG pack of real photos (RGB, 8-bit): what the Loader can batch."""
    from pixpack import pack

    out = []
    for mode in ("raw", "jpeg"):
        path = tmp_path_factory.mktemp("fuzz_rgb") / f"{mode}.pixpack"
        pack(photo_folder, path, mode=mode, max_side=48, quiet=True)
        with open_pack(path) as p:
            spans = [(int(e["offset"]), int(e["nbytes"])) for e in p.index]
        out.append((path.read_bytes(), spans))
    return out


@pytest.mark.filterwarnings("ignore:.*skipped .* sample:UserWarning")  # skip's summary
@pytest.mark.parametrize("block", range(4))
def test_damaged_packs_never_break_the_loader(tmp_path, rgb_packs, block):
    rng = np.random.default_rng(2000 + block)
    loaded = 0
    for case in range(LOADER_CASES // 4):
        data, spans = rgb_packs[case % 2]
        path = tmp_path / f"case{case}.pixpack"
        path.write_bytes(data)
        _damage(path, rng, spans)
        loaded += _load_all(path)
    assert loaded > 0  # the damage left most packs loadable: the Loader really ran
