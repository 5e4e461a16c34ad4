"""PackDataset: the ImageFolder contract, output kinds, DataLoader workers."""

from __future__ import annotations

import pickle
import subprocess
import sys
import zlib

import numpy as np
import pytest
import torch
from PIL import Image
from read_helpers import build_pack, crops
from torchvision import datasets
from torchvision import transforms as T

from pixpack.dataset import PackDataset
from pixpack.errors import UsageError


def test_pil_modes_match_channels_and_depth(mixed_pack, mixed_images):
    ds = PackDataset(mixed_pack)
    modes = [ds[i][0].mode for i in range(len(ds))]
    assert modes[:6] == ["RGB"] * 6
    assert modes[6:] == ["L", "RGBA", "I"]  # 32-bit: torchvision reads it back exactly
    np.testing.assert_array_equal(np.asarray(ds[0][0]), mixed_images[0])
    np.testing.assert_array_equal(np.asarray(ds[8][0]), mixed_images[8][:, :, 0])


def test_numpy_and_tensor_outputs(mixed_pack, mixed_images):
    arrays = PackDataset(mixed_pack, output="numpy")
    tensors = PackDataset(mixed_pack, output="tensor")
    for i in (0, 6, 7, 8):
        image, label = arrays[i]
        assert image.flags.writeable and image.shape == mixed_images[i].shape
        chw, label2 = tensors[i]
        assert label == label2 == arrays.targets[i]
        assert chw.shape == (image.shape[2], image.shape[0], image.shape[1])
        assert chw.is_contiguous()
        assert chw.dtype == (torch.uint16 if image.dtype == np.uint16 else torch.uint8)
        np.testing.assert_array_equal(chw.permute(1, 2, 0).numpy(), image)


def test_imagefolder_attributes(mixed_pack, mixed_labels):
    ds = PackDataset(mixed_pack, target_transform=lambda y: y * 10)
    assert ds.classes == ["cat", "dog", "ñandú"]
    assert ds.class_to_idx == {"cat": 0, "dog": 1, "ñandú": 2}
    assert isinstance(ds.targets, np.ndarray) and ds.targets.tolist() == mixed_labels
    assert len(ds) == len(mixed_labels)
    assert ds[2][1] == mixed_labels[2] * 10
    assert "Number of datapoints: 9" in repr(ds)
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_bad_output_and_16bit_rgb_in_pil(tmp_path, mixed_images):
    with pytest.raises(UsageError, match="output must be"):
        PackDataset(tmp_path / "nothing.pixpack", output="jpeg")  # checked before opening
    deep = (mixed_images[0].astype(np.uint16) * 257,)
    path = build_pack(tmp_path / "deep.pixpack", deep, [0])
    with pytest.raises(UsageError, match="output='numpy'"):
        PackDataset(path)[0]
    assert PackDataset(path, output="tensor")[0][0].dtype == torch.uint16


def test_drop_in_for_imagefolder(tmp_path, photos):
    """Same files, same transform: PackDataset and ImageFolder give identical tensors."""
    images = crops(photos, 6, seed=3)
    labels = [0, 0, 1, 1, 2, 2]
    folder = tmp_path / "folder"
    for k, (image, label) in enumerate(zip(images, labels, strict=True)):
        (folder / f"k{label}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"k{label}" / f"{k:03d}.png")
    path = build_pack(tmp_path / "p.pixpack", images, labels, classes=["k0", "k1", "k2"])
    transform = T.Compose([T.Resize(20), T.CenterCrop(16), T.ToTensor(),
                           T.Normalize([0.5] * 3, [0.25] * 3)])
    ours = PackDataset(path, transform=transform)
    theirs = datasets.ImageFolder(str(folder), transform=transform)
    assert ours.classes == theirs.classes and ours.class_to_idx == theirs.class_to_idx
    assert ours.targets.tolist() == theirs.targets
    for i in range(len(theirs)):
        a, b = ours[i], theirs[i]
        assert a[1] == b[1]
        torch.testing.assert_close(a[0], b[0], rtol=0, atol=0)


def test_pickles_small_and_reopens(mixed_pack):
    ds = PackDataset(mixed_pack, output="numpy")
    blob = pickle.dumps(ds)
    assert len(blob) < 2000
    clone = pickle.loads(blob)
    np.testing.assert_array_equal(clone[4][0], ds[4][0])


def _resize_chw(image: torch.Tensor) -> torch.Tensor:
    """Any depth and channel count -> one float channel, 12x12 (so batches collate)."""
    grey = image.float().mean(dim=0, keepdim=True)
    return torch.nn.functional.interpolate(grey[None], size=(12, 12))[0]


def test_dataloader_with_two_workers(mixed_pack, mixed_labels):
    ds = PackDataset(mixed_pack, transform=_resize_chw, output="tensor")
    loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2, shuffle=False)
    batches = list(loader)
    labels = torch.cat([b[1] for b in batches]).tolist()
    assert labels == mixed_labels
    images = torch.cat([b[0] for b in batches])
    assert images.shape == (9, 1, 12, 12)
    expected = torch.stack([ds[i][0] for i in range(len(ds))])
    torch.testing.assert_close(images, expected, rtol=0, atol=0)


def test_pickled_pack_reopens_in_a_fresh_process(mixed_pack, mixed_labels, tmp_path):
    """What a spawn/forkserver DataLoader worker does, without paying for torch's start-up."""
    ds = PackDataset(mixed_pack, output="numpy")
    ds[0]  # opened (mapped) in this process before pickling
    blob = tmp_path / "pack.pickle"
    blob.write_bytes(pickle.dumps(ds.pack))
    code = (
        "import pickle, sys, zlib; pack = pickle.load(open(sys.argv[1], 'rb')); "
        "print(len(pack), zlib.crc32(pack[8][0].tobytes()), pack.targets.tolist())"
    )
    out = subprocess.run([sys.executable, "-c", code, str(blob)], check=True,
                         capture_output=True, text=True, timeout=60).stdout.split(maxsplit=2)
    assert int(out[0]) == 9
    assert int(out[1]) == zlib.crc32(ds[8][0].tobytes())
    assert out[2].strip() == str(mixed_labels)
