"""Sources: ImageFolder equals torchvision's, CSV rules and errors, Python sequences."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixpack.errors import EmptySourceError, SourceFormatError, UsageError
from pixpack.write.sources import CsvSource, ImageFolderSource, SequenceSource, resolve_source


def _img(path, value=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((4, 5, 3), value, np.uint8)).save(path, format="PNG")


@pytest.fixture
def tricky_tree(tmp_path):
    root = tmp_path / "tree"
    for rel in [
        "dog/b.png",
        "dog/A.PNG",  # upper-case extension
        "dog/nested/deeper/c.JPG",
        "dog/nested/a.png",
        "Cat/z.jpeg",
        "Cat/ünï 写真.png",  # non-ASCII name
        "bird/1.webp",
        "bird/x.tiff",
        "zebra_10/a.bmp",
        "zebra_2/a.png",
    ]:
        _img(root / rel)
    (root / "dog" / "notes.txt").write_text("not an image")
    (root / "dog" / "weird.jpg.bak").write_bytes(b"x")
    (root / "README.md").write_text("top-level files are not classes")
    return root


def test_image_folder_equals_torchvision(tricky_tree):
    tv = pytest.importorskip("torchvision.datasets")
    ours = ImageFolderSource(tricky_tree)
    theirs = tv.ImageFolder(str(tricky_tree))
    assert ours.classes == theirs.classes
    assert ours.class_to_idx == theirs.class_to_idx
    assert ours.samples == theirs.samples
    assert [ours.load(i) for i in range(len(ours))] == theirs.samples
    assert not any(p.endswith((".txt", ".bak")) for p, _ in ours.samples)


def test_image_folder_equals_torchvision_on_photos(photo_folder):
    tv = pytest.importorskip("torchvision.datasets")
    assert ImageFolderSource(photo_folder).samples == tv.ImageFolder(str(photo_folder)).samples


def test_empty_class_folder_is_named(tricky_tree):
    (tricky_tree / "empty_class").mkdir()
    (tricky_tree / "empty_class" / "x.txt").write_text("")
    with pytest.raises(EmptySourceError, match="empty_class") as info:
        ImageFolderSource(tricky_tree)
    assert isinstance(info.value, FileNotFoundError)


def test_no_classes(tmp_path):
    with pytest.raises(EmptySourceError, match="no class folders"):
        ImageFolderSource(tmp_path)


def test_fingerprint_sees_changes_without_reading(tricky_tree):
    first = ImageFolderSource(tricky_tree).fingerprint()
    assert first == ImageFolderSource(tricky_tree).fingerprint()
    target = tricky_tree / "dog" / "b.png"
    st = target.stat()
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert ImageFolderSource(tricky_tree).fingerprint() != first
    shutil.rmtree(tricky_tree / "bird")
    assert ImageFolderSource(tricky_tree).fingerprint() != first


def test_fingerprint_does_not_depend_on_how_the_root_was_written(tricky_tree, monkeypatch):
    """Resume and cache keys: "data" from its parent and "/abs/data" are one source."""
    monkeypatch.chdir(tricky_tree.parent)
    relative = ImageFolderSource(tricky_tree.name).fingerprint()
    assert relative == ImageFolderSource(tricky_tree.resolve()).fingerprint()


def _csv(tmp_path, text, name="list.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_names_relative_paths_and_header(tmp_path):
    _img(tmp_path / "imgs" / "a.png")
    _img(tmp_path / "imgs" / "b.png")
    path = _csv(tmp_path, "path,label\nimgs/a.png,zebra\n\nimgs/b.png,ant\n")
    src = CsvSource(path)
    assert src.classes == ["ant", "zebra"]
    assert src.load(0) == (str(tmp_path / "imgs" / "a.png"), 1)
    assert src.load(1) == (str(tmp_path / "imgs" / "b.png"), 0)
    assert len(src) == 2 and src.fingerprint() is not None


def test_csv_int_labels_and_tsv(tmp_path):
    path = _csv(tmp_path, "a.png\t3\n/abs/b.png\t0\n", "list.tsv")
    src = CsvSource(path)
    assert src.classes == ["0", "1", "2", "3"]
    assert src.load(1) == ("/abs/b.png", 0)
    named = CsvSource(path, classes=["a", "b", "c", "d"])
    assert named.classes == ["a", "b", "c", "d"]
    with pytest.raises(SourceFormatError, match="out of range"):
        CsvSource(path, classes=["a"])


@pytest.mark.parametrize(
    ("text", "line", "what"),
    [
        ("a.png,1\nb.png\n", 2, "expected 2 fields"),
        ("a.png,1\nb.png,1,extra\n", 2, "expected 2 fields"),
        ("path,label\na.png,1\n,2\n", 3, "empty path"),
        ("a.png,cat\nb.png,3\n", 2, "mixes class names"),
        ("a.png,1\nb.png,\n", 2, "empty label"),
    ],
)
def test_csv_bad_rows_name_file_and_line(tmp_path, text, line, what):
    path = _csv(tmp_path, text)
    with pytest.raises(SourceFormatError) as info:
        CsvSource(path)
    message = str(info.value)
    assert message.startswith(f"{path}:{line}: ")
    assert what in message and "\n" not in message


@pytest.mark.parametrize(
    "data, line, what",
    [
        ("imgs/a.jpg,caf\u00e9\nimgs/b.jpg,th\u00e9\n".encode("cp1252"), 1, "not UTF-8 text"),
        (b"imgs/a.jpg,1\nimgs/b.jpg,0\nimgs/d\x00.jpg,0\n", 3, "NUL byte"),
        (
            b"path,label\n"
            + b"".join(
                (b'"' if i == 2 else b"") + b"imgs/a.jpg,%d\n" % (i % 2) for i in range(20000)
            ),
            None,
            "unbalanced quote",
        ),
    ],
)
def test_csv_undecodable_or_unparsable_files_name_the_line(tmp_path, data, line, what):
    """A spreadsheet's cp1252 export, a NUL byte, a stray quote that swallows the rest
    of the file into one field: one line naming file:line, no traceback."""
    path = tmp_path / "list.csv"
    path.write_bytes(data)
    with pytest.raises(SourceFormatError) as info:
        CsvSource(path)
    message = str(info.value)
    assert message.startswith(f"{path}:{line if line is not None else ''}")
    assert what in message and "\n" not in message


def test_csv_empty_and_missing(tmp_path):
    with pytest.raises(EmptySourceError):
        CsvSource(_csv(tmp_path, "path,label\n"))
    with pytest.raises(EmptySourceError):
        resolve_source(tmp_path / "missing.csv")


def test_sequence_source_variants(rng):
    arrays = [(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8), i % 2) for i in range(4)]
    src = SequenceSource(arrays)
    assert len(src) == 4 and src.classes == [] and src.fingerprint() is None
    assert src.load(3)[1] == 1
    named = SequenceSource([("a.png", "dog"), ("b.png", "cat")])
    assert named.classes == ["cat", "dog"] and named.load(0) == ("a.png", 1)
    assert named.path_of(1) == "b.png"
    unlabeled = SequenceSource([(arrays[0][0], None)])
    assert unlabeled.load(0)[1] == -1
    with pytest.raises(SourceFormatError, match="out of range"):
        SequenceSource(arrays, classes=["only"]).load(1)
    with pytest.raises(UsageError):
        SequenceSource(42)


def test_sequence_source_from_torchvision_dataset(photo_folder):
    tv = pytest.importorskip("torchvision.datasets")
    ds = tv.ImageFolder(str(photo_folder))
    src = resolve_source(ds)
    assert isinstance(src, SequenceSource)
    assert src.classes == ds.classes
    assert src.path_of(5) == ds.samples[5][0]
    item, label = src.load(5)
    assert isinstance(item, Image.Image) and label == ds.targets[5]
    assert src.describe()["root"] == str(photo_folder)


def test_resolve_source(tmp_path, photo_folder):
    assert isinstance(resolve_source(photo_folder), ImageFolderSource)
    assert isinstance(resolve_source(str(photo_folder)), ImageFolderSource)
    src = ImageFolderSource(photo_folder)
    assert resolve_source(src) is src
    missing = tmp_path / "nowhere"
    with pytest.raises(EmptySourceError, match="no such file") as info:
        resolve_source(missing)
    assert isinstance(info.value, FileNotFoundError)
    (tmp_path / "x.txt").write_text("")
    with pytest.raises(SourceFormatError, match=r"\.csv"):
        resolve_source(tmp_path / "x.txt")
    with pytest.raises(SourceFormatError, match="folder 'class_00' is not in the class list"):
        resolve_source(photo_folder, classes=["a"])
    with pytest.raises(UsageError, match="path_column= applies to CSV"):
        resolve_source(photo_folder, path_column="file")


def _symlinked_tree(root: Path) -> Path:
    """Symlinks without loops: a diamond (two links to one folder), a link to a folder
    outside the root, a linked file, a dangling link."""
    for rel in ("cat/1.jpg", "dog/2.png", "shared/3.jpg", "outside/deep/4.jpg"):
        _img(root / rel)
    (root / "cat" / "x").symlink_to(root / "shared")
    (root / "cat" / "y").symlink_to(root / "shared")
    (root / "dog" / "far").symlink_to(root / "outside")
    (root / "dog" / "linked.jpg").symlink_to(root / "cat" / "1.jpg")
    (root / "dog" / "dangling.jpg").symlink_to(root / "nowhere.jpg")
    return root


def test_image_folder_equals_torchvision_with_symlinks(tmp_path):
    tv = pytest.importorskip("torchvision.datasets")
    root = _symlinked_tree(tmp_path / "root")
    ours = ImageFolderSource(root)
    assert ours.samples == tv.ImageFolder(str(root), allow_empty=True).samples
    assert sum("/shared/" in p or "/x/" in p or "/y/" in p for p, _ in ours.samples) == 3


def test_symlink_loops_are_walked_once(tmp_path):
    """``a/up -> ..`` and ``b/up -> ..`` made the walk exponential: run it in a child
    process so a regression fails on the timeout instead of hanging the suite."""
    root = tmp_path / "root"
    for rel in ("c/a/1.jpg", "c/b/2.jpg", "c/3.jpg"):
        _img(root / rel)
    (root / "c" / "a" / "up").symlink_to("..")
    (root / "c" / "b" / "up").symlink_to("..")
    (root / "c" / "b" / "self").symlink_to(".")
    code = (
        "import json, sys; from pixpack.write.sources import ImageFolderSource; "
        "print(json.dumps([p for p, _ in ImageFolderSource(sys.argv[1]).samples]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(root)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    found = [Path(p).relative_to(root).as_posix() for p in json.loads(out.stdout)]
    assert found == ["c/3.jpg", "c/a/1.jpg", "c/b/2.jpg"]


@pytest.mark.parametrize(
    ("label", "what"),
    [
        ("99999999999", "label 99999999999 is too large"),
        ("2147483648", "label 2147483648 is too large"),
        ("9" * 5000, r"label 9{20}\.\.\. \(5000 digits\) is too large"),  # int() would fail
        ("5000000", "label 5000000 would make 5000001 classes"),
    ],
)
def test_csv_huge_integer_labels_fail_before_allocating(tmp_path, label, what):
    csv = tmp_path / "list.csv"
    csv.write_text(f"a.png,0\nb.png,{label}\nc.png,1\n")
    with pytest.raises(SourceFormatError, match=f"^{csv}:2: .*{what}"):
        CsvSource(csv)


def test_csv_large_label_with_a_class_list_is_checked_against_it(tmp_path):
    csv = tmp_path / "list.csv"
    csv.write_text("a.png,0\nb.png,5000000\n")
    with pytest.raises(SourceFormatError, match="label 5000000 is out of range for 2 classes"):
        CsvSource(csv, classes=["x", "y"])


def test_sequence_huge_label_without_classes(rng):
    image = rng.integers(0, 255, (4, 4, 3), dtype=np.uint8)
    src = SequenceSource(_Unnamed([(image, 99999999999)]))
    with pytest.raises(SourceFormatError, match="item 0: label 99999999999 would make"):
        src.load(0)


class _Unnamed:
    """A map-style dataset without ``classes``."""

    def __init__(self, items):
        self.items = items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]
