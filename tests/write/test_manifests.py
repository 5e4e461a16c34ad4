"""CSV/TSV and JSON-lines manifests: headers, typed metadata columns, errors with file:line."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pytest

from pixpack.errors import SourceFormatError, UsageError
from pixpack.format import NO_LABEL
from pixpack.read import open_pack
from pixpack.write import pack
from pixpack.write.sources import CsvSource, JsonlSource, resolve_source


@pytest.fixture
def photos_dir(tmp_path: Path, photo_folder: Path) -> Path:
    """Four real JPEG photos under awkward names: a comma, non-ASCII, a subfolder."""
    root = tmp_path / "ds"
    images = sorted(photo_folder.glob("*/*.jpg"))
    for name, source in zip(
        ["a,b.jpg", "ünï 写真.jpg", "sub/c.jpg", "d.jpg"], images, strict=False
    ):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, root / name)
    return root


def _write(root: Path, name: str, text: str) -> Path:
    path = root / name
    path.write_text(text, encoding="utf-8")
    return path


def _one_line(exc: pytest.ExceptionInfo, path: Path, line: int, *needles: str) -> None:
    message = str(exc.value)
    assert message.startswith(f"{path}:{line}: "), message
    assert "\n" not in message and " — " in message, message  # what, then the fix
    for needle in needles:
        assert needle in message, message


EXTRA = (
    "path,label,patient_id,age,weight,smoker,site\n"
    '"a,b.jpg",benign,00123,34,70.5,true,Zürich\n'
    "ünï 写真.jpg,malignant,00124,,71,FALSE,\n"
    "sub/c.jpg,benign,00125,51,-2e1,,São Paulo\n"
)


def test_extra_columns_are_typed_metadata(photos_dir):
    src = CsvSource(_write(photos_dir, "m.csv", EXTRA))
    assert src.classes == ["benign", "malignant"] and [lab for _, lab in src.samples] == [0, 1, 0]
    assert src.metadata_columns() == ["patient_id", "age", "weight", "smoker", "site"]
    rows = [src.metadata(i) for i in range(len(src))]
    assert rows[0] == {"patient_id": "00123", "age": 34, "weight": 70.5, "smoker": True,
                       "site": "Zürich"}  # fmt: skip
    assert rows[1] == {"patient_id": "00124", "age": None, "weight": 71.0, "smoker": False,
                       "site": None}  # fmt: skip
    assert rows[2]["weight"] == -20.0 and rows[2]["smoker"] is None
    for row in rows:  # Python scalars, never numpy ones
        assert all(type(v) in (int, float, bool, str, type(None)) for v in row.values())
    assert [src.relpath_of(i) for i in range(3)] == ["a,b.jpg", "ünï 写真.jpg", "sub/c.jpg"]
    assert src.load(2)[0] == str(photos_dir / "sub" / "c.jpg")


def test_a_manifest_with_extra_columns_packs(photos_dir, tmp_path):
    out = tmp_path / "m.pixpack"
    summary = pack(_write(photos_dir, "m.csv", EXTRA), out, workers=1, quiet=True)
    assert summary.num_samples == 3 and summary.num_skipped == 0
    with open_pack(out) as p:
        assert p.classes == ["benign", "malignant"] and p.targets.tolist() == [0, 1, 0]


def test_file_diagnosis_header_is_never_a_class(photos_dir):
    path = _write(photos_dir, "d.csv", "file,diagnosis\na,b.jpg,benign\n".replace("a,b", '"a,b"')
                  + "d.jpg,malignant\n")  # fmt: skip
    with pytest.warns(UserWarning, match=r"d\.csv:1: no label column .* --label-column"):
        unlabelled = CsvSource(path)
    assert unlabelled.classes == [] and {lab for _, lab in unlabelled.samples} == {NO_LABEL}
    assert unlabelled.metadata(1) == {"diagnosis": "malignant"}
    labelled = CsvSource(path, label_column="diagnosis")
    assert labelled.classes == ["benign", "malignant"] and labelled.metadata(0) is None
    assert labelled.relpath_of(0) == "a,b.jpg"


def test_path_only_manifests_are_unlabelled(photos_dir, tmp_path):
    for text in ("path\nd.jpg\nsub/c.jpg\n", "d.jpg\nsub/c.jpg\n"):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no "no label column" warning: nothing else
            src = CsvSource(_write(photos_dir, "p.csv", text))
        assert src.classes == [] and src.samples[1] == (str(photos_dir / "sub/c.jpg"), NO_LABEL)
    pack(photos_dir / "p.csv", tmp_path / "p.pixpack", workers=1, quiet=True)
    with open_pack(tmp_path / "p.pixpack") as p:
        assert p.targets.tolist() == [NO_LABEL, NO_LABEL] and p.classes == []


def test_headerless_two_columns_keep_working(photos_dir):
    src = CsvSource(_write(photos_dir, "h.csv", 'd.jpg,1\n"a,b.jpg",0\n'))
    assert src.classes == ["0", "1"] and src.samples[1] == (str(photos_dir / "a,b.jpg"), 0)
    assert src.metadata_columns() == [] and src.metadata(0) is None


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("t.tsv", "path\tlabel\tsite\na,b.jpg\tcat\tx\nd.jpg\tdog\ty\n"),
        ("t.csv", "path\tlabel\tsite\na,b.jpg\tcat\tx\nd.jpg\tdog\ty\n"),  # sniffed tab
        ("s.csv", "path;label;site\na,b.jpg;cat;x\nd.jpg;dog;y\n"),  # ; with a header
    ],
)
def test_tsv_and_sniffed_delimiters(photos_dir, name, text):
    src = CsvSource(_write(photos_dir, name, text))
    assert src.classes == ["cat", "dog"] and src.relpath_of(0) == "a,b.jpg"
    assert src.metadata(1) == {"site": "y"}


def test_named_columns_in_any_order(photos_dir):
    text = "id,img,y,note\n7,d.jpg,1,\n8,sub/c.jpg,0,é\n"
    src = CsvSource(_write(photos_dir, "n.csv", text), path_column="img", label_column="y")
    assert src.classes == ["0", "1"] and [lab for _, lab in src.samples] == [1, 0]
    assert src.metadata_columns() == ["id", "note"] and src.metadata(1) == {"id": 8, "note": "é"}
    assert resolve_source(photos_dir / "n.csv", path_column="img").metadata(0)["y"] == 1


@pytest.mark.parametrize(
    ("text", "line", "needles"),
    [
        ("path,label\na.jpg,1,extra\n", 2, ["expected 2 fields as in the header (path,label)"]),
        ("a.jpg,cat,1,2\n", 1, ["4 fields but no header row", "add a header"]),
        ("path_to_image,diagnosis\na.jpg,benign\n", 1, ["looks like a header",
                                                        "path_column='path_to_image'"]),
        ("path,label,path\na.jpg,1,b\n", 1, ["names path more than once"]),
        ("id,label\n1,a.jpg\n", 1, ["none of the columns (id, label) is a path column",
                                    "--path-column"]),
        ('a.jpg,1\n"b.jpg,0\nc.jpg,1\n', 3, ["runs across lines", "unbalanced quote"]),
    ],
)  # fmt: skip
def test_csv_errors_name_file_line_and_fix(tmp_path, text, line, needles):
    path = _write(tmp_path, "bad.csv", text)
    with pytest.raises(SourceFormatError) as exc:
        CsvSource(path)
    _one_line(exc, path, line, *needles)


def test_named_column_missing_lists_the_columns(tmp_path):
    path = _write(tmp_path, "c.csv", "path,label\na.jpg,1\n")
    with pytest.raises(SourceFormatError) as exc:
        CsvSource(path, label_column="diagnosis")
    _one_line(exc, path, 1, "no column 'diagnosis' (columns: path, label)", "--label-column")


JSONL = (
    '{"path": "a,b.jpg", "label": "cat", "age": 3, "score": 0.5, "ok": true}\n'
    "\n"
    '{"path": "ünï 写真.jpg", "label": "dog", "age": 4.5, "site": "Zürich"}\n'
    '{"path": "sub/c.jpg", "label": "cat", "age": null, "ok": false}\n'
)


def test_jsonl_manifest(photos_dir, tmp_path):
    src = resolve_source(_write(photos_dir, "m.jsonl", JSONL))
    assert isinstance(src, JsonlSource) and src.classes == ["cat", "dog"]
    assert [lab for _, lab in src.samples] == [0, 1, 0]
    assert src.metadata_columns() == ["age", "score", "ok", "site"]
    assert src.metadata(0) == {"age": 3.0, "score": 0.5, "ok": True, "site": None}  # int -> float
    assert src.metadata(1) == {"age": 4.5, "score": None, "ok": None, "site": "Zürich"}
    assert src.relpath_of(1) == "ünï 写真.jpg" and src.fingerprint() is not None
    pack(src, tmp_path / "j.pixpack", workers=2, quiet=True)
    with open_pack(tmp_path / "j.pixpack") as p:
        assert p.targets.tolist() == [0, 1, 0]


@pytest.mark.parametrize(
    ("bad", "needles"),
    [
        ('{"path": "b.jpg", "label": "cat"', ["not valid JSON", "one JSON object per line"]),
        ('["b.jpg", "cat"]', ["expected a JSON object", "got list"]),
        ('{"path": "b.jpg", "label": "cat", "box": {"x": 1}}', ["'box' holds a nested object",
                                                                 "flatten"]),
        ('{"path": "b.jpg", "label": "cat", "age": "old"}', ["'age' holds a str where earlier",
                                                              "one type per key"]),
        ('{"label": "cat"}', ["'path' must be the image's path"]),
        ('{"path": "b.jpg", "label": true}', ["'label' must be a class name"]),
        ('{"path": "b.jpg", "label": 1}', ["mixes class names and integer labels"]),
    ],
)  # fmt: skip
def test_jsonl_bad_lines_name_file_line_and_fix(tmp_path, bad, needles):
    path = _write(tmp_path, "bad.ndjson", '{"path": "a.jpg", "label": "dog", "age": 1}\n' + bad)
    with pytest.raises(SourceFormatError) as exc:
        resolve_source(path)
    _one_line(exc, path, 2, *needles)


def test_column_options_are_for_manifests_only(photo_folder):
    with pytest.raises(UsageError, match="label_column= applies to CSV/TSV/JSON-lines"):
        resolve_source([("a.jpg", 0)], label_column="y")
