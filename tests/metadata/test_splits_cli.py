"""Named splits beside the pack, and the CLI: query, split, info, export, bench."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import pixpack
from pixpack.cli.main import main
from pixpack.errors import OutputExistsError, UsageError

from .test_columns import DictSource


@pytest.fixture
def patients(photos, tmp_path) -> pixpack.Pack:
    """30 samples of 10 patients (3 each), labels alternating."""
    rows = [{"patient": f"p{i // 3}", "site": "AB"[i % 2]} for i in range(30)]
    images = [photos[i % len(photos)][:24, :32] for i in range(30)]
    out = tmp_path / "pt.pixpack"
    pixpack.pack(DictSource(images, rows), out, mode="raw", quiet=True, workers=1)
    return pixpack.open(out)


def test_splits_are_saved_beside_the_pack_and_reloaded(patients):
    made = pixpack.make_splits(patients, "patient", (0.6, 0.2, 0.2), seed=3, stratify="label")
    assert list(made) == ["train", "val", "test"]
    assert sum(len(s) for s in made.values()) == 30
    patient = patients.columns["patient"]
    owners = [{patient[i] for i in s.indices} for s in made.values()]
    assert not (owners[0] & owners[1] or owners[0] & owners[2] or owners[1] & owners[2])
    again = pixpack.open(patients.path).splits
    assert {k: v.indices.tolist() for k, v in again.items()} == {
        k: v.indices.tolist() for k, v in made.items()
    }
    # Another split of other names keeps these; a loader reads exactly a split.
    pixpack.make_splits(patients, "site", (0.5, 0.5), names=("a", "b"))
    assert set(pixpack.open(patients.path).splits) == {"train", "val", "test", "a", "b"}
    loader = pixpack.Loader(again["val"], 4, pipeline=[pixpack.ops.CenterCrop(8)], workers=1)
    assert sorted(loader.indices.tolist()) == made["val"].indices.tolist()


def test_a_file_pixpack_did_not_write_is_never_overwritten(patients):
    path = Path(f"{patients.path}.splits.json")
    path.write_text("my notes")
    with pytest.raises(OutputExistsError, match="not a pixpack splits file"):
        pixpack.make_splits(patients, "patient", (0.5, 0.5))
    assert path.read_text() == "my notes"


def test_splits_of_a_repacked_file_are_refused(patients, tmp_path):
    pixpack.make_splits(patients, "patient", (0.5, 0.5))
    doc = json.loads(Path(f"{patients.path}.splits.json").read_text())
    doc["pack"]["header_crc32"] += 1
    Path(f"{patients.path}.splits.json").write_text(json.dumps(doc))
    with pytest.raises(UsageError, match="another version"):
        _ = pixpack.open(patients.path).splits


def test_cli_split_info_query_export_and_bench(patients, tmp_path, capsys):
    p = str(patients.path)
    assert main(["split", p, "--by", "patient", "--fractions", "0.8,0.2", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert "train: 24 samples (80.0%)" in out and "10 groups by patient" in out
    assert main(["info", p]) == 0
    out = capsys.readouterr().out
    assert "columns:   path (string), patient (string), site (string)" in out
    assert "splits:    train 24, val 6" in out
    assert main(["query", p, "site = 'A' AND patient = 'p0'", "--format", "json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["idx"] for r in rows] == [0, 2]
    assert main(["query", p, "--sql", "SELECT site, count(*) FROM samples GROUP BY site",
                 "--format", "csv"]) == 0  # fmt: skip
    assert capsys.readouterr().out.splitlines() == ["site,count(*)", "A,15", "B,15"]
    assert main(["query", p, "patient = 'p1'", "--count"]) == 0
    assert capsys.readouterr().out.strip() == "3"
    assert main(["query", p, "nope = 1"]) == 2
    assert "no such column: nope" in capsys.readouterr().err
    assert main(["export", p, str(tmp_path / "ex"), "--split", "val"]) == 0
    assert len(list((tmp_path / "ex").rglob("*.png"))) == 6
    names = sorted(f.name for f in (tmp_path / "ex").rglob("*.png"))
    val = pixpack.open(p).splits["val"].indices
    assert names == sorted(f"{i:03d}.png" for i in val.tolist())  # the source names
    assert main(["bench", p, "--where", "site = 'B'", "--batches", "1", "--pipeline",
                 "CenterCrop(8)", "--json"]) == 0  # fmt: skip
    assert main(["bench", p, "--split", "nope", "--batches", "1"]) == 2
    assert "no split 'nope'; its splits: train, val" in capsys.readouterr().err


def test_unlabelled_and_python_packs_export_by_index(photos, tmp_path):
    items = [(np.ascontiguousarray(photos[0][:10, :10]), None)] * 2
    pixpack.pack(items, tmp_path / "u.pixpack", mode="raw", quiet=True, workers=1)
    assert pixpack.export(tmp_path / "u.pixpack", tmp_path / "out") == 2
    assert sorted(f.name for f in (tmp_path / "out" / "_unlabeled").iterdir()) == [
        "00000000.png",
        "00000001.png",
    ]
