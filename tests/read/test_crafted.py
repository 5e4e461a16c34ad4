"""Crafted packs whose checksums all match: every command and API gives a pixpack error
(one line from the CLI), never a traceback, a RecursionError or an unbounded allocation."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from read_helpers import craft_index, craft_metadata

from pixpack import format as fmt
from pixpack.errors import CorruptPackError
from pixpack.read.export import export
from pixpack.read.open_any import open_pack
from pixpack.read.verify import verify


@pytest.fixture
def copy(tmp_path, mixed_pack) -> Path:
    return Path(shutil.copy(mixed_pack, tmp_path / "crafted.pixpack"))


def pixpack(*args: object, **env: str) -> subprocess.CompletedProcess:
    import os

    return subprocess.run(
        [sys.executable, "-m", "pixpack", *map(str, args)],
        capture_output=True, timeout=60, env={**os.environ, **env},
    )  # fmt: skip


def assert_one_line(proc: subprocess.CompletedProcess, *needles: str) -> None:
    err = proc.stderr.decode("utf-8", "replace")
    assert proc.returncode == 1, err
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err


def _meta(copy: Path) -> dict:
    return dict(open_pack(copy).metadata)


BAD_METADATA = {
    "nested 5000 deep": b'{"x": ' + b"[" * 5000 + b"]" * 5000 + b"}",
    "nested 100 deep": b'{"x": ' + b'{"y": ' * 100 + b"1" + b"}" * 101,
    "classes an int": {"classes": 5},
    "a class a lone surrogate": {"classes": ["\ud800x"]},
    "mean a string": {"classes": ["a"], "mean": "0.5"},
    "std of strings": {"classes": ["a"], "std": ["a", "b"]},
    "skipped an object": {"classes": ["a"], "skipped": {"path": "x"}},
    "skipped of ints": {"classes": ["a"], "skipped": [1, 2]},
}


@pytest.mark.parametrize("case", sorted(BAD_METADATA))
def test_bad_metadata_is_a_corrupt_pack_everywhere(copy, tmp_path, case):
    meta = BAD_METADATA[case]
    if isinstance(meta, dict):
        meta = fmt.encode_metadata({**_meta(copy), **meta})
    craft_metadata(copy, meta)
    with pytest.raises(CorruptPackError, match="unreadable metadata"):
        open_pack(copy)
    with pytest.raises(CorruptPackError):
        verify(copy)
    for args in (("info", copy), ("info", "--json", copy), ("verify", copy)):
        assert_one_line(pixpack(*args), str(copy), "unreadable metadata")
    assert_one_line(pixpack("export", copy, tmp_path / "out"), "unreadable metadata")


def test_metadata_size_is_bounded_before_reading(copy, monkeypatch):
    """A header may claim gigabytes of metadata: refused from the header, unread."""
    craft_metadata(copy, b" " * 1000 + fmt.encode_metadata(_meta(copy)))
    monkeypatch.setattr(fmt, "MAX_METADATA_BYTES", 1000)
    with pytest.raises(CorruptPackError, match="bytes of metadata \\(a pack holds at most 1000\\)"):
        open_pack(copy)


# -- index entries that checksum but describe impossible samples -------------------------
@pytest.mark.parametrize(
    ("columns", "shape"),
    [
        ({"height": 0, "width": 0, "nbytes": 0}, "0x0x"),
        ({"channels": 0, "nbytes": 0}, "x0"),
    ],
)
def test_impossible_shapes_are_pixpack_errors(copy, tmp_path, columns, shape):
    h = fmt.decode_header(copy.read_bytes()[: fmt.HEADER_SIZE])
    count, at = int(h["num_samples"]), int(h["index_offset"])
    index = np.fromfile(copy, fmt.INDEX_DTYPE, count, offset=at)
    for sample in (0, 1):  # a raw sample, then a jpeg one
        hit = np.arange(len(index)) == sample
        craft_index(copy, **{k: np.where(hit, v, index[k]) for k, v in columns.items()})
        why = verify(copy).bad_samples[sample]
        assert "impossible shape" in why and shape in why
        out = tmp_path / f"out{sample}"
        with pytest.raises(CorruptPackError, match=f"sample {sample} records an impossible shape"):
            export(copy, out)
        assert_one_line(pixpack("export", copy, tmp_path / f"cli{sample}"), "impossible shape")
        craft_index(copy, **{k: index[k] for k in columns})  # restore


def test_200_channels_are_impossible_for_jpeg_and_the_wrong_size_for_raw(copy, tmp_path):
    """Raw samples may have up to 255 channels (multispectral); JPEG holds 1 or 3."""
    h = fmt.decode_header(copy.read_bytes()[: fmt.HEADER_SIZE])
    index = np.fromfile(copy, fmt.INDEX_DTYPE, int(h["num_samples"]), offset=int(h["index_offset"]))
    craft_index(copy, channels=np.where(np.arange(len(index)) < 2, 200, index["channels"]))
    found = verify(copy).bad_samples
    assert "raw size" in found[0] and "impossible shape" in found[1] and "x200" in found[1]
    with pytest.raises(CorruptPackError):
        export(copy, tmp_path / "out")


def test_unknown_pixel_type_code(copy, tmp_path):
    craft_index(copy, dtype=7)
    info = pixpack("info", copy)
    assert info.returncode == 0 and b"unknown(7)" in info.stdout
    assert_one_line(pixpack("export", copy, tmp_path / "out"), "pixel type code 7")
    assert "unknown storage mode or pixel type" in verify(copy).bad_samples[0]


# -- output that survives any locale ------------------------------------------------------
def test_info_prints_names_that_are_not_utf8_under_a_strict_utf8_stdout(copy):
    meta = {**_meta(copy), "classes": ["\udcffcat", "dog\nerror: x", "ñandú"]}
    meta["skipped"] = [{"path": "/data/\udce9t\u00e9.jpg", "reason": "bad\nline"}]
    craft_metadata(copy, meta)
    for args in (("info", copy), ("info", "--json", copy)):
        proc = pixpack(*args, PYTHONIOENCODING="utf-8")
        assert proc.returncode == 0, proc.stderr
        out = proc.stdout.decode("utf-8")
        assert "\\udcffcat" in out and "ñandú" in out
    text = pixpack("info", copy, PYTHONIOENCODING="utf-8").stdout.decode()
    assert "dog\\nerror: x" in text and "\\udce9t" in text and "bad\\nline" in text
    assert not any(line.startswith("error") for line in text.splitlines())


def test_verify_names_at_most_max_reported_damaged_samples(copy, monkeypatch):
    """Every sample damaged: a bounded report (names + a count), not one entry each."""
    verify_module = sys.modules["pixpack.read.verify"]  # pixpack.read.verify: the function
    monkeypatch.setattr(verify_module, "MAX_REPORTED", 3)
    craft_index(copy, checksum=12345)  # no sample matches its checksum any more
    report = verify(copy)
    assert len(report.bad_samples) == 3 and report.unlisted == 6 and not report.ok
    assert "9 damaged sample(s): 0, 1, 2" in report.summary()
    assert report.problems()[-1] == "... and 6 more damaged samples"


def test_a_stored_jpeg_whose_header_claims_a_huge_size_is_not_decoded(tmp_path):
    """Checksums valid, index 16x16, JPEG header 13000x13000: pack[i] used to allocate
    the 507 MB the header asks for before finding the data short."""
    import io
    import tracemalloc

    from PIL import Image

    from pixpack.write.writer import PackWriter

    buf = io.BytesIO()
    Image.fromarray(np.full((16, 16, 3), 90, np.uint8)).save(buf, "JPEG")
    data = bytearray(buf.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = (13000).to_bytes(2, "big") * 2
    writer = PackWriter(tmp_path / "bomb.pixpack", {"test": 1}).start()
    writer.append(
        bytes(data), source_index=0, height=16, width=16, channels=3,
        dtype_code=0, mode_code=fmt.MODE_JPEG, label=0,
    )  # fmt: skip
    path = writer.commit({"classes": ["a"]})
    tracemalloc.start()
    try:
        with pytest.raises(CorruptPackError, match="its header says 13000x13000, the index 16x16"):
            open_pack(path)[0]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 << 20
    assert verify(path).ok  # the bytes are what was stored: only decoding refuses them
