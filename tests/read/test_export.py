"""export(): lossless PNG for raw samples, stored bytes for JPEG samples, re-packable."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from read_helpers import build_pack

from pixpack.errors import UsageError
from pixpack.read import export, open_pack
from pixpack.read.export import class_dir_name


def _read_png(path) -> np.ndarray:
    image = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_UNCHANGED)
    if image.ndim == 2:
        return image[:, :, None]
    return image[:, :, [2, 1, 0, 3][: image.shape[2]]]


def test_export_tree_is_exact(tmp_path, mixed_pack, mixed_images, mixed_labels, mixed_modes):
    out = tmp_path / "out"
    assert export(mixed_pack, out, progress=False) == len(mixed_images)
    pack = open_pack(mixed_pack)
    assert sorted(p.name for p in out.iterdir()) == sorted(pack.classes)  # "ñandú" included
    for i, (image, label, mode) in enumerate(
        zip(mixed_images, mixed_labels, mixed_modes, strict=True)
    ):
        folder = out / pack.classes[label]
        if mode == "jpeg":
            assert (folder / f"{i:08d}.jpg").read_bytes() == bytes(pack.sample_bytes(i))
        else:
            back = _read_png(folder / f"{i:08d}.png")
            assert back.dtype == image.dtype  # 16-bit stays 16-bit
            np.testing.assert_array_equal(back, image)


def test_export_refuses_to_overwrite(tmp_path, mixed_pack):
    export(mixed_pack, tmp_path / "out", progress=False)
    with pytest.raises(UsageError, match="not empty"):
        export(open_pack(mixed_pack), tmp_path / "out", progress=False)


def test_unlabeled_and_odd_class_names(tmp_path, mixed_images):
    path = build_pack(tmp_path / "p.pixpack", mixed_images[:3], [0, -1, 1],
                      classes=["a/b", ".."])
    out = tmp_path / "out"
    export(path, out, progress=False)
    assert sorted(p.name for p in out.iterdir()) == ["_..", "_unlabeled", "a_b"]
    assert (out / "_unlabeled" / "00000001.png").exists()
    assert class_dir_name("ok name é") == "ok name é"


def test_classes_that_would_share_a_folder_stay_apart(tmp_path, mixed_images):
    """Two classes "x/y" and "x_y" both make "x_y" (a class may be "_unlabeled" too):
    merged, a re-pack would lose a class."""
    path = build_pack(tmp_path / "p.pixpack", mixed_images[:4], [0, 1, 2, -1],
                      classes=["x/y", "x_y", "_unlabeled"])  # fmt: skip
    out = tmp_path / "out"
    export(path, out, progress=False)
    folders = {p.name: sorted(f.name for f in p.iterdir()) for p in out.iterdir()}
    assert folders == {
        "x_y": ["00000000.png"],
        "x_y~1": ["00000001.png"],
        "_unlabeled~2": ["00000002.png"],
        "_unlabeled": ["00000003.png"],
    }


def test_export_then_repack_round_trip(tmp_path, mixed_pack, mixed_images, mixed_modes):
    """Raw samples come back bit-exact; JPEG samples come back as the same JPEG pixels."""
    packer = pytest.importorskip("pixpack.write.packer")
    out = tmp_path / "tree"
    export(mixed_pack, out, progress=False)
    repacked = open_pack(packer.pack(out, tmp_path / "again.pixpack", workers=1,
                                     quiet=True).path)
    original = open_pack(mixed_pack)
    assert repacked.classes == original.classes
    # ImageFolder order: by class, then by file name (= original sample index).
    order = sorted(range(len(original)), key=lambda i: (int(original.targets[i]), i))
    assert repacked.targets.tolist() == [int(original.targets[i]) for i in order]
    for new_i, old_i in enumerate(order):
        np.testing.assert_array_equal(repacked[new_i][0], original[old_i][0])
