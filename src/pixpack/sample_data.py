"""Realistic image datasets made locally, with no downloads.

Flat colours and noise do not decode like photographs, so demos, tests and benchmarks
use crops of the real photographs that ship inside the scikit-image and matplotlib
wheels, resized to ImageNet-typical sizes (about 500x375) and saved as JPEG at quality
75-95. Larger images (``size=(1600, 1200)``) are mosaics of several photo crops, so
their entropy stays that of a photograph rather than of an upscaled one.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = ["photo_paths", "load_photos", "make_photo", "make_image_folder"]

# RGB photographs (not synthetic textures) bundled in the wheels.
_SKIMAGE_PHOTOS = (
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "rocket.jpg",
    "motorcycle_left.png",
    "motorcycle_right.png",
    "hubble_deep_field.jpg",
    "retina.jpg",
    "ihc.png",
)
_MPL_PHOTOS = ("grace_hopper.jpg",)


def photo_paths() -> list[Path]:
    """Paths of the bundled real photographs that are installed here."""
    found: list[Path] = []
    try:
        import skimage

        root = Path(skimage.__file__).parent / "data"
        found += [root / name for name in _SKIMAGE_PHOTOS if (root / name).exists()]
    except ImportError:
        pass
    try:
        import matplotlib

        root = Path(matplotlib.__file__).parent / "mpl-data" / "sample_data"
        found += [root / name for name in _MPL_PHOTOS if (root / name).exists()]
    except ImportError:
        pass
    if len(found) < 3:
        raise ImportError(
            "pixpack.sample_data needs the photographs bundled with scikit-image: "
            "pip install 'pixpack[demo]' (or pip install scikit-image matplotlib)"
        )
    return found


def load_photos() -> list[np.ndarray]:
    """The bundled photographs as RGB uint8 arrays."""
    return [np.asarray(Image.open(p).convert("RGB")) for p in photo_paths()]


def _random_crop(photo: np.ndarray, width: int, height: int, rng: np.random.Generator) -> Image.Image:
    """A random crop with the target aspect ratio, 35-100% of the largest such box, resized."""
    ph, pw = photo.shape[:2]
    aspect = width / height
    max_w = min(pw, int(ph * aspect))
    crop_w = max(8, int(max_w * np.sqrt(rng.uniform(0.35, 1.0))))
    crop_h = max(8, min(ph, int(round(crop_w / aspect))))
    x = int(rng.integers(0, pw - crop_w + 1))
    y = int(rng.integers(0, ph - crop_h + 1))
    crop = Image.fromarray(photo[y : y + crop_h, x : x + crop_w])
    if rng.random() < 0.5:
        crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return crop.resize((width, height), Image.Resampling.LANCZOS)


def make_photo(
    photos: Sequence[np.ndarray], size: tuple[int, int], rng: np.random.Generator
) -> Image.Image:
    """One photo-like RGB image of ``size=(width, height)``.

    Up to 640 px on the longer side it is one crop; larger sizes are a 2x2 (or more)
    mosaic of crops so no crop is upscaled much.
    """
    width, height = size
    tiles = max(1, int(np.ceil(max(width, height) / 640)))
    if tiles == 1:
        return _random_crop(photos[int(rng.integers(len(photos)))], width, height, rng)
    canvas = Image.new("RGB", (width, height))
    xs = np.linspace(0, width, tiles + 1).astype(int)
    ys = np.linspace(0, height, tiles + 1).astype(int)
    for row in range(tiles):
        for col in range(tiles):
            w, h = xs[col + 1] - xs[col], ys[row + 1] - ys[row]
            photo = photos[int(rng.integers(len(photos)))]
            canvas.paste(_random_crop(photo, int(w), int(h), rng), (int(xs[col]), int(ys[row])))
    return canvas


def make_image_folder(
    root: str | os.PathLike[str],
    *,
    num_classes: int = 10,
    per_class: int = 100,
    size: tuple[int, int] = (500, 375),
    quality: tuple[int, int] = (75, 95),
    seed: int = 0,
) -> Path:
    """Write an ImageFolder tree ``root/class_XX/img_XXXXX.jpg`` of photo crops.

    Sizes vary by up to +-10% around ``size`` and half the images are portrait, like
    ImageNet. Idempotent: an existing complete tree with the same layout is kept.
    """
    root = Path(root)
    marker = root / ".pixpack-sample-data"
    spec = f"{num_classes} {per_class} {size} {quality} {seed}"
    if marker.exists() and marker.read_text() == spec:
        return root
    photos = load_photos()
    rng = np.random.default_rng(seed)
    for c in range(num_classes):
        class_dir = root / f"class_{c:02d}"
        class_dir.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            w = int(size[0] * rng.uniform(0.9, 1.1))
            h = int(size[1] * rng.uniform(0.9, 1.1))
            if rng.random() < 0.5:
                w, h = h, w
            image = make_photo(photos, (w, h), rng)
            q = int(rng.integers(quality[0], quality[1] + 1))
            image.save(class_dir / f"img_{i:05d}.jpg", quality=q)
    marker.write_text(spec)
    return root
