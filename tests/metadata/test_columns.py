"""Per-sample metadata columns (issue 15 item 1): typed, with missing values and
non-ASCII text, stored as sections of the pack, read as views, checked by verify, and
ignored by a reader that predates them."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

import pixpack
from pixpack import format as fmt
from pixpack.errors import CorruptPackError
from pixpack.metadata.view import StringColumn

ROWS: list[dict[str, Any]] = [
    {"patient": "P-001", "age": 41, "weight": 70.5, "site": "Zürich", "contrast": True},
    {"patient": "P-002", "age": None, "weight": 61, "site": "東京", "contrast": False},
    {"patient": "P-001", "age": 43, "weight": None, "site": None, "contrast": True},
    {"patient": None, "age": 7, "weight": float("nan"), "site": "Kraków", "contrast": None},
    {"patient": "P-003", "age": 2**40, "weight": -1.25, "site": "", "extra": 3},
]


class DictSource:
    """A minimal Source (the protocol) whose samples carry a dict of fields."""

    classes: ClassVar[list[str]] = ["a", "b"]

    def __init__(self, images: list[np.ndarray], rows: list[dict[str, Any]]) -> None:
        self.images, self.rows = images, rows

    def __len__(self) -> int:
        return len(self.images)

    def load(self, i: int) -> tuple[Any, int]:
        return self.images[i], i % 2

    def describe(self) -> dict[str, Any]:
        return {"type": "test"}

    def fingerprint(self) -> None:
        return None

    def path_of(self, i: int) -> str:
        return f"/data/scans/ü/{i:03d}.png"

    def relpath_of(self, i: int) -> str:
        return f"scans/ü/{i:03d}.png"

    def metadata(self, i: int) -> dict[str, Any]:
        return self.rows[i]


@pytest.fixture(scope="module")
def meta_pack(photos, tmp_path_factory) -> pixpack.Pack:
    images = [p[:40, :50] for p in photos[: len(ROWS)]]
    out = tmp_path_factory.mktemp("meta") / "m.pixpack"
    pixpack.pack(DictSource(images, ROWS), out, mode="raw", quiet=True, workers=1)
    return pixpack.open(out)


def test_columns_round_trip_with_their_types_and_missing_values(meta_pack):
    cols = meta_pack.columns
    assert cols.types == {
        "path": "string", "patient": "string", "age": "int", "weight": "float",
        "site": "string", "contrast": "bool", "extra": "int",
    }  # fmt: skip
    assert cols["path"].tolist() == [f"scans/ü/{i:03d}.png" for i in range(5)]
    assert cols["patient"].tolist() == ["P-001", "P-002", "P-001", None, "P-003"]
    assert cols["site"].tolist() == ["Zürich", "東京", None, "Kraków", ""]
    assert cols["age"].tolist()[:1] == [41] and cols["age"][4] == 2**40
    assert cols.missing("age").tolist() == [False, True, False, False, False]
    weight = cols["weight"]
    assert weight.dtype == np.float64 and weight[0] == 70.5 and weight[1] == 61.0
    assert math.isnan(weight[2]) and math.isnan(weight[3])
    assert cols.missing("weight").tolist() == [False, False, True, True, False]
    assert cols.missing("extra").tolist() == [True] * 4 + [False]
    assert cols["contrast"].tolist() == [1, 0, 1, 0, 0]
    assert cols.missing("contrast").tolist() == [False, False, False, True, True]
    assert not cols["age"].flags.writeable  # a view of the read-only map


def test_type_inference_per_column():
    from pixpack.metadata.encode import _encode

    assert _encode("b", [True, None, False]).type == "bool"
    assert _encode("i", [1, None, np.int32(3)]).type == "int"
    assert _encode("f", [1, 2.5, None]).type == "float"
    assert _encode("s", [1, "x"]).type == "string"
    assert _encode("mixed", [True, 1]).type == "string"
    assert _encode("huge", [2**70]).type == "string"
    assert _encode("none", [None, None]).type == "string"


def test_a_column_named_like_an_index_field_is_renamed(photos, tmp_path):
    rows = [{"width": 5, "label": "x"}] * 2
    with pytest.warns(UserWarning, match="'width' is stored as 'width_'"):
        pixpack.pack(DictSource([p[:20, :20] for p in photos[:2]], rows), tmp_path / "r.pixpack",
                     mode="raw", quiet=True, workers=1)  # fmt: skip
    pack = pixpack.open(tmp_path / "r.pixpack")
    assert list(pack.columns) == ["path", "width_", "label_"]
    assert pack.sql("SELECT width, width_ FROM samples")[1] == [(20, 5), (20, 5)]


def test_columns_and_sql_image_are_sections_checked_by_verify(meta_pack, tmp_path):
    meta = meta_pack.metadata
    assert meta_pack.header["minor"] == 1
    assert {"col/0/values", "col/0/offsets", "sqlite"} <= set(meta["sections"])
    assert pixpack.verify(meta_pack.path).ok
    copy = tmp_path / "bad.pixpack"
    data = bytearray(Path(meta_pack.path).read_bytes())
    offset = meta["sections"]["col/1/values"]["offset"]
    data[offset] ^= 0xFF
    copy.write_bytes(bytes(data))
    report = pixpack.verify(copy)
    assert not report.ok and "section 'col/1/values' is damaged" in " ".join(report.problems())


def test_a_reader_that_predates_sections_still_opens_the_pack(meta_pack, monkeypatch):
    """Minor 0 readers checked the header, the index/metadata layout and the metadata;
    a minor-1 pack passes those, and its samples and labels read as before."""
    monkeypatch.setattr(fmt, "check_sections", lambda meta, lo, hi: {})
    old = pixpack.open(meta_pack.path)
    for i in range(len(old)):
        image, label = old[i]
        ref, ref_label = meta_pack[i]
        assert np.array_equal(image, ref) and label == ref_label


def test_an_older_pack_without_columns_still_queries(photos, tmp_path):
    """A minor-0 pack (no sections): no columns, and queries build the table from the
    index on first use."""
    from pixpack.write.writer import PackWriter

    writer = PackWriter(tmp_path / "old.pixpack", {"t": 1}).start()
    for i, img in enumerate(photos[:3]):
        crop = np.ascontiguousarray(img[:8, :9])
        writer.append(crop.tobytes(), source_index=i, height=8, width=9, channels=3,
                      dtype_code=0, mode_code=fmt.MODE_RAW, label=i)  # fmt: skip
    writer.commit({"classes": ["x", "y", "z"], "skipped": []})
    pack = pixpack.open(tmp_path / "old.pixpack")
    assert len(pack.columns) == 0 and pack.section("sqlite") is None
    assert pack.query("class = 'y' OR label = 2").indices.tolist() == [1, 2]


@pytest.mark.parametrize(
    ("sections", "match"),
    [
        ({"x": {"offset": 1, "nbytes": 1, "crc32": 0}}, "outside|unaligned"),
        ({"x": {"offset": 64}}, "lacks an integer"),
        ([1], "must be an object"),
    ],
)
def test_crafted_sections_are_refused_at_open(sections, match):
    with pytest.raises(ValueError, match=match):
        fmt.check_sections({"sections": sections}, 64, 128)


def test_crafted_string_offsets_fail_as_corrupt(meta_pack):
    from pixpack.metadata.view import Columns

    meta = {**meta_pack.metadata}
    buffer = bytearray(Path(meta_pack.path).read_bytes())
    off = meta["sections"]["col/0/offsets"]["offset"]
    buffer[off + 8 : off + 16] = (10**12).to_bytes(8, "little")
    cols = Columns(bytes(buffer), meta, len(meta_pack), meta_pack.path)
    with pytest.raises(CorruptPackError, match="offsets outside its data"):
        cols["path"]


def test_string_column_indexing():
    col = StringColumn(np.frombuffer(b"abcde", np.uint8), np.array([0, 2, 2, 5], "<u8"),
                       np.array([1, 0, 1], np.uint8))  # fmt: skip
    assert col[0] == "ab" and col[1] is None and col[-1] == "cde" and col[1:] == [None, "cde"]
    assert col.to_numpy().tolist() == ["ab", None, "cde"]
    with pytest.raises(IndexError):
        col[3]
