"""SQL over a pack's samples (issue 15 item 2) and subsets as views (item 3)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

import pixpack
from pixpack import format as fmt
from pixpack.errors import UsageError
from pixpack.metadata.encode import build_columns
from pixpack.metadata.store import column_sections
from pixpack.write.writer import PackWriter

from .test_columns import ROWS, meta_pack  # noqa: F401  (the fixture)


def test_where_clauses_with_or_without_the_keyword(meta_pack):  # noqa: F811
    q = meta_pack.query("patient = 'P-001'")
    assert q.indices.tolist() == [0, 2] and len(q) == 2 and q.name == "patient = 'P-001'"
    assert meta_pack.query("WHERE age > 40 AND site IS NOT NULL").indices.tolist() == [0, 4]
    assert meta_pack.query("site LIKE 'K%' OR contrast = 0").indices.tolist() == [1, 3]
    assert meta_pack.query("width = 50 AND class = 'a'").indices.tolist() == [0, 2, 4]
    assert meta_pack.query("path LIKE '%/003.png'").indices.tolist() == [3]


def test_select_statements_return_named_rows(meta_pack):  # noqa: F811
    names, rows = meta_pack.sql(
        "SELECT patient, count(*) AS n FROM samples WHERE patient IS NOT NULL "
        "GROUP BY patient ORDER BY patient"
    )
    assert names == ["patient", "n"] and rows == [("P-001", 2), ("P-002", 1), ("P-003", 1)]
    names, rows = meta_pack.sql("SELECT idx, mode, dtype, channels, nbytes FROM samples LIMIT 1")
    assert rows == [(0, "raw", "uint8", 3, 40 * 50 * 3)]


@pytest.mark.parametrize(
    ("query", "match"),
    [
        ("nope = 1", "no such column: nope.*has columns idx, label, class"),
        ("1); DROP TABLE samples; --", "one statement|failed"),
        ("", "empty"),
    ],
)
def test_bad_queries_fail_with_one_clear_line(meta_pack, query, match):  # noqa: F811
    with pytest.raises(UsageError, match=match):
        meta_pack.query(query)


@pytest.mark.parametrize(
    "statement",
    ["DELETE FROM samples", "ATTACH DATABASE '/tmp/x.db' AS x", "SELECT 1; SELECT 2",
     "PRAGMA writable_schema = 1"],
)  # fmt: skip
def test_only_reading_statements_run(meta_pack, statement):  # noqa: F811
    with pytest.raises(UsageError):
        meta_pack.sql(statement)
    assert meta_pack.sql("SELECT count(*) FROM samples")[1] == [(5,)]


def test_a_subset_is_what_the_loader_and_dataset_read(meta_pack):  # noqa: F811
    from pixpack.ops import CenterCrop

    subset = meta_pack.query("age IS NOT NULL")
    loader = pixpack.Loader(subset, 2, shuffle=False, pipeline=[CenterCrop(8)], workers=1)
    assert [i for _, y in loader for i in y.tolist()] == meta_pack.targets[[0, 2, 3, 4]].tolist()
    assert loader.indices.tolist() == [0, 2, 3, 4]
    dataset = pixpack.PackDataset(subset, output="numpy")
    assert len(dataset) == 4 and np.array_equal(dataset[1][0], meta_pack[2][0])
    assert np.asarray(subset).tolist() == [0, 2, 3, 4]
    with pytest.raises(UsageError, match=r"in \[0, 5\)"):
        meta_pack.subset([5])


def _million_pack(path: Path, n: int) -> dict[str, np.ndarray]:
    """A pack of ``n`` 1x1 samples with five metadata columns, written through the
    packer's own column and section code; returns the columns for a numpy reference."""
    rng = np.random.default_rng(0)
    ref = {
        "patient": rng.integers(0, 50_000, n),
        "site": rng.integers(0, 4, n),
        "age": rng.random(n) * 90,
        "flag": rng.random(n) < 0.5,
        "score": rng.integers(-1000, 1000, n),
    }
    sites = np.array(["A", "B", "C", "D"])

    class Source:
        classes: ClassVar[list[str]] = [str(c) for c in range(10)]

        def path_of(self, i: int) -> str:
            return f"img/{i}.png"

        def metadata(self, i: int) -> dict:
            return {"patient": f"P{ref['patient'][i]:05d}", "site": str(sites[ref["site"][i]]),
                    "age": float(ref["age"][i]), "flag": bool(ref["flag"][i]),
                    "score": int(ref["score"][i])}  # fmt: skip

    writer = PackWriter(path, {"t": 1}).start()
    for i in range(n):
        writer.append(b"\0\0\0", source_index=i, height=1, width=1 + i % 7, channels=3,
                      dtype_code=0, mode_code=fmt.MODE_RAW, label=i % 10)  # fmt: skip
    records = writer.records()
    columns = build_columns(Source(), records["source_index"])
    sections, described = column_sections(columns, records["entry"], Source.classes)
    writer.commit({"classes": Source.classes, "skipped": [], "columns": described}, sections)
    return ref


_QUERY = textwrap.dedent(
    """
    import json, resource, sys, time
    import pixpack
    t = time.perf_counter()
    pack = pixpack.open(sys.argv[1])
    opened = time.perf_counter() - t
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out = {}
    for name, where in json.loads(sys.argv[2]).items():
        out[name] = pack.query(where).indices.tolist()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"results": out, "growth_kb": peak - base}))
    """
)


@pytest.mark.slow
def test_queries_on_a_million_samples_match_numpy_in_bounded_memory(tmp_path):
    n = 1_000_000
    path = tmp_path / "million.pixpack"
    ref = _million_pack(path, n)
    queries = {
        "selective": "patient IN ('P00042', 'P12345') OR (site = 'C' AND score = 999)",
        "scan": "age > 45.5 AND flag = 1 AND width < 4",
        "label": "label = 3 AND score < 0",
    }
    done = subprocess.run([sys.executable, "-c", _QUERY, str(path), json.dumps(queries)],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads(done.stdout)
    idx = np.arange(n)
    expected = {
        "selective": np.flatnonzero(np.isin(ref["patient"], [42, 12345])
                                    | ((ref["site"] == 2) & (ref["score"] == 999))),
        "scan": np.flatnonzero((ref["age"] > 45.5) & ref["flag"] & (1 + idx % 7 < 4)),
        "label": np.flatnonzero((idx % 10 == 3) & (ref["score"] < 0)),
    }  # fmt: skip
    for name, want in expected.items():
        assert got["results"][name] == want.tolist(), name
    # The table is a copy of the stored SQLite image (~40 MB for a million rows of 14
    # columns), never a Python object per row: bounded well under 200 MB.
    assert got["growth_kb"] < 200_000


def test_a_stored_database_that_is_not_the_packers_is_ignored(meta_pack):  # noqa: F811
    """A crafted pack's `samples` could be a view over an endless recursive query (or
    carry triggers): such an image is not used; the table is rebuilt from the columns."""
    import sqlite3

    from pixpack.metadata.query import _as_written

    stored = sqlite3.connect(":memory:")
    stored.deserialize(meta_pack.section("sqlite"))
    assert _as_written(stored, meta_pack)
    crafted = sqlite3.connect(":memory:")
    crafted.execute(
        "CREATE VIEW samples AS WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c)"
        " SELECT x AS idx FROM c"
    )
    assert not _as_written(crafted, meta_pack)
    stored.execute("CREATE TRIGGER t AFTER INSERT ON samples BEGIN SELECT 1; END")
    assert not _as_written(stored, meta_pack)
