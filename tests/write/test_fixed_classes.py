"""A fixed class list (classes=, classes_from=) so separately packed splits agree on
indices; per-sample metadata and source paths from every kind of source."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from pixpack.errors import SourceFormatError, UsageError
from pixpack.format import NO_LABEL
from pixpack.options import PackOptions
from pixpack.read import open_pack
from pixpack.write import pack
from pixpack.write.sources import (
    CsvSource,
    ImageFolderSource,
    JsonlSource,
    SequenceSource,
    Source,
    resolve_source,
)

CLASSES = ["normal", "benign", "malignant"]  # not sorted: positions are the labels


@pytest.fixture
def splits(tmp_path: Path, photo_folder: Path) -> dict[str, Path]:
    """train.csv names all three classes, val.csv only two (so sorting would disagree)."""
    images = sorted(photo_folder.glob("*/*.jpg"))
    rows = {"train": ["normal", "benign", "malignant", "normal"], "val": ["malignant", "benign"]}
    out = {}
    for split, labels in rows.items():
        lines = ["path,label"]
        for k, label in enumerate(labels):
            name = f"{split}_{k}.jpg"
            shutil.copy(images[k], tmp_path / name)
            lines.append(f"{name},{label}")
        out[split] = tmp_path / f"{split}.csv"
        out[split].write_text("\n".join(lines) + "\n")
    return out


def test_separately_packed_splits_agree_on_indices(splits, tmp_path):
    for split, path in splits.items():
        pack(path, tmp_path / f"{split}.pixpack", classes=CLASSES, workers=1, quiet=True)
    with open_pack(tmp_path / "train.pixpack") as train, open_pack(tmp_path / "val.pixpack") as val:
        assert train.classes == val.classes == CLASSES
        assert train.targets.tolist() == [0, 1, 2, 0] and val.targets.tolist() == [2, 1]
    # Without the list, val's classes are its own sorted names: "malignant" would be 1.
    assert CsvSource(splits["val"]).classes == ["benign", "malignant"]


def test_classes_from_another_pack(splits, tmp_path):
    pack(splits["train"], tmp_path / "train.pixpack", classes=CLASSES, workers=1, quiet=True)
    pack(splits["val"], tmp_path / "val.pixpack", workers=1, quiet=True,
         classes_from=str(tmp_path / "train.pixpack"))  # fmt: skip
    with open_pack(tmp_path / "val.pixpack") as val:
        assert val.classes == CLASSES and val.targets.tolist() == [2, 1]


def test_a_label_outside_the_list_is_one_error_naming_file_line(splits, tmp_path):
    with pytest.raises(SourceFormatError) as exc:
        pack(splits["train"], tmp_path / "t.pixpack", classes=["normal", "benign"], quiet=True)
    message = str(exc.value)
    assert message.startswith(f"{splits['train']}:4: label 'malignant' is not in the class list")
    assert "add it to classes=" in message and "\n" not in message
    assert not list(tmp_path.glob("t.pixpack*"))


def test_integer_labels_against_a_list(tmp_path):
    (tmp_path / "i.csv").write_text("a.jpg,0\nb.jpg,2\nc.jpg,3\n")
    src = CsvSource(tmp_path / "i.csv", classes=["w", "x", "y", "z"])
    assert src.classes == ["w", "x", "y", "z"] and [lab for _, lab in src.samples] == [0, 2, 3]
    with pytest.raises(SourceFormatError, match=r"i\.csv:2: label 2 is out of range for 2 classes"):
        CsvSource(tmp_path / "i.csv", classes=["w", "x"])


def test_jsonl_with_a_fixed_list(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"file": "a.jpg", "class": "dog"}\n{"file": "b.jpg", "class": "cow"}\n')
    src = JsonlSource(path, classes=["cat", "dog", "cow"])
    assert [lab for _, lab in src.samples] == [1, 2] and src.relpath_of(0) == "a.jpg"
    with pytest.raises(SourceFormatError, match=r"m\.jsonl:2: label 'cow' is not in the class"):
        JsonlSource(path, classes=["cat", "dog"])


def test_image_folder_with_a_fixed_list(photo_folder):
    listed = ["class_02", "extra", "class_00", "class_01"]
    src = ImageFolderSource(photo_folder, classes=listed)
    plain = ImageFolderSource(photo_folder)
    assert src.classes == listed
    assert [p for p, _ in src.samples] == [p for p, _ in plain.samples]  # same order
    to_new = {0: 2, 1: 3, 2: 0}
    assert [lab for _, lab in src.samples] == [to_new[lab] for _, lab in plain.samples]
    assert src.fingerprint() != plain.fingerprint()
    with pytest.raises(SourceFormatError, match="folder 'class_01' is not in the class list"):
        ImageFolderSource(photo_folder, classes=["class_00", "class_02"])


@pytest.mark.parametrize(
    ("classes", "what"),
    [("a,b", "must be a list"), ([], "is empty"), (["a", "a"], "names 'a' twice"),
     (["a", ""], "an empty name")],
)  # fmt: skip
def test_bad_class_lists(tmp_path, classes, what):
    (tmp_path / "l.csv").write_text("a.jpg,a\n")
    with pytest.raises(UsageError, match=what):
        CsvSource(tmp_path / "l.csv", classes=classes)


def test_options_validate_and_key_the_new_fields(tmp_path):
    options = PackOptions(classes=["a", "b"], path_column="img")
    assert options.classes == ("a", "b")
    key = options.content_key()
    assert key["classes"] == ["a", "b"] and key["path_column"] == "img"
    assert "classes" not in PackOptions().content_key()  # older keys stay valid
    for bad in ({"classes": "a,b"}, {"classes": ["a", "a"]}, {"classes": [1]},
                {"classes": ["a"], "classes_from": "x.pixpack"}, {"path_column": ""},
                {"path_column": "p", "label_column": "p"}):  # fmt: skip
        with pytest.raises(UsageError):
            PackOptions(**bad)


# -- metadata and source paths from every source ----------------------------------------
def test_python_items_with_a_dict_keep_it(photo_folder, tmp_path):
    images = sorted(str(p) for p in photo_folder.glob("*/*.jpg"))[:3]
    items = [
        (images[0], "cat", {"subject": "s1", "age": np.int64(3), "ok": np.bool_(True)}),
        (images[1], "dog", {"subject": "s2", "weight": 1.5}),
        (images[2], "cat"),
    ]
    src = SequenceSource(items)
    assert src.classes == ["cat", "dog"] and src.load(1) == (images[1], 1)
    assert src.metadata_columns() == ["subject", "age", "ok", "weight"]
    first = src.metadata(0)
    assert first == {"subject": "s1", "age": 3, "ok": True, "weight": None}
    assert type(first["age"]) is int and type(first["ok"]) is bool
    assert src.metadata(2) == {"subject": None, "age": None, "ok": None, "weight": None}
    pack(items, tmp_path / "s.pixpack", workers=2, quiet=True)
    with open_pack(tmp_path / "s.pixpack") as p:
        assert p.targets.tolist() == [0, 1, 0]
    with pytest.raises(SourceFormatError, match="item 1: key 'tags' holds a list"):
        SequenceSource([(images[0], 0, {}), (images[1], 0, {"tags": ["a"]})])
    with pytest.raises(SourceFormatError, match="item 0: the third element is a str"):
        SequenceSource([(images[0], 0, "note")])


def test_relpath_and_metadata_on_every_source(photo_folder, tmp_path, rng):
    folder = ImageFolderSource(str(photo_folder) + "/")  # a trailing slash changes nothing
    assert folder.relpath_of(0) == "class_00/img_00000.jpg"
    assert folder.metadata(0) is None and folder.metadata_columns() == []
    image = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    arrays = SequenceSource([(image, None), ("x/y.png", None)])
    assert arrays.relpath_of(0) == "" and arrays.relpath_of(1) == "x/y.png"
    assert arrays.metadata(0) is None and arrays.metadata_columns() == []
    assert arrays.load(0)[1] == NO_LABEL
    for src in (folder, arrays):
        assert isinstance(src, Source)


def test_torchvision_dataset_relpaths_are_relative_to_its_root(photo_folder):
    tv = pytest.importorskip("torchvision.datasets")
    src = resolve_source(tv.ImageFolder(str(photo_folder)))
    assert src.relpath_of(9) == ImageFolderSource(photo_folder).relpath_of(9)
    assert src.metadata(0) is None and src.metadata_columns() == []


class _OldStyleSource:
    """A user source written before relpath_of/metadata existed."""

    def __init__(self):
        self.classes = ["a"]

    def __len__(self):
        return 1

    def load(self, i):
        return np.zeros((4, 4, 3), np.uint8), 0

    def describe(self):
        return {"type": "old"}

    def fingerprint(self):
        return None

    def path_of(self, i):
        return f"old[{i}]"


def test_an_old_style_source_gets_the_new_methods(tmp_path):
    src = resolve_source(_OldStyleSource())
    assert isinstance(src, Source) and src.classes == ["a"] and len(src) == 1
    assert src.relpath_of(0) == "" and src.metadata(0) is None and src.metadata_columns() == []
    assert src.path_of(0) == "old[0]"
    summary = pack(_OldStyleSource(), tmp_path / "o.pixpack", workers=2, quiet=True)
    assert summary.num_samples == 1
    with pytest.raises(UsageError, match="ready-made _OldStyleSource"):
        resolve_source(_OldStyleSource(), classes=["a"])
