"""Write a pack back out as an ImageFolder tree (``pixpack export``).

Raw samples become lossless PNG (8- or 16-bit, 1/3/4 channels); JPEG samples are
written as their stored bytes, never re-encoded, so export then re-pack loses
nothing. Files are named after their source files, ``OUT/<class>/<source name>.png|.jpg``
(the ``path`` column; the stored format's suffix replaces the source's), or by sample
index, ``<index:08d>``, when the pack has no source paths; two samples of a class with
the same source name keep apart with ``~<index>``. Unlabelled samples go to
``OUT/_unlabeled``. Class names become one path component
each (``/`` and ``\\`` replaced by ``_``); two classes that would share a folder keep
apart with ``~<class index>`` appended to the later one.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CorruptPackError, OutputExistsError, UsageError
from ..progress import Progress
from .open_any import open_pack
from .pack import Pack

__all__ = ["export", "class_dir_name", "class_dir_names"]

UNLABELED = "_unlabeled"


def class_dir_name(name: str) -> str:
    """A class name as one safe path component (non-ASCII kept as is)."""
    safe = name.replace("/", "_").replace("\\", "_").replace("\x00", "_")
    return "_" + safe if safe in ("", ".", "..") else safe


def class_dir_names(classes: list[str]) -> list[str]:
    """One distinct folder per class: ``x/y`` and ``x_y`` (or a class named like the
    unlabelled folder) must not share a folder, or a re-pack would merge them. A later
    clash gets ``~<class index>`` appended."""
    taken = {UNLABELED}
    names = []
    for i, name in enumerate(classes):
        folder = class_dir_name(name)
        while folder in taken:
            folder = f"{folder}~{i}"
        taken.add(folder)
        names.append(folder)
    return names


def _png(image: np.ndarray) -> bytes:
    import cv2  # lazy: only exporting needs OpenCV's PNG encoder (16-bit, RGBA)

    c = image.shape[2]
    if c == 3:
        image = image[:, :, ::-1]  # OpenCV writes BGR
    elif c == 4:
        image = image[:, :, [2, 1, 0, 3]]
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(image))
    if not ok:  # pragma: no cover - cv2 encodes every uint8/uint16 1/3/4-channel array
        raise RuntimeError("PNG encoding failed")
    return encoded.tobytes()


def _check_shape(pack: Pack, i: int) -> None:
    """A damaged index entry must not reach the PNG encoder (OpenCV raises its own
    errors for 0x0 or 200-channel images)."""
    h, w, c = pack.sample_shape(i)
    if h < 1 or w < 1 or c < 1:
        raise CorruptPackError(
            f"{pack.path}: sample {i} records an impossible shape {h}x{w}x{c} (at least "
            f"1x1x1); run `pixpack verify {pack.path}` and re-pack",
            pack.path,
        )


def _tiff(image: np.ndarray) -> bytes:
    """int16, float32 or multichannel pixels, exact, as a TIFF (PNG holds none of them)."""
    try:
        import tifffile
    except ImportError:
        raise UsageError(
            "exporting int16, float32 or multichannel samples writes TIFF files, which "
            "needs tifffile: pip install 'pixpack[tiff]'"
        ) from None
    out = io.BytesIO()
    if image.shape[2] == 1:
        tifffile.imwrite(out, image[:, :, 0], photometric="minisblack")
    else:
        tifffile.imwrite(out, image, photometric="minisblack", planarconfig="contig")
    return out.getvalue()


def _stems(pack: Pack, indices: np.ndarray) -> list[str]:
    """One file name stem per exported sample: its source file's, or its index."""
    columns = pack.columns
    paths = columns["path"] if "path" in columns else None
    stems = []
    for i in indices.tolist():
        source = paths[i] if paths is not None else None
        name = os.path.splitext(os.path.basename(source.replace("\\", "/")))[0] if source else ""
        stems.append(class_dir_name(name) if name else f"{i:08d}")
    return stems


def export(
    pack_or_path: Any,
    out_dir: str | os.PathLike[str],
    *,
    progress: bool | None = None,
) -> int:
    """Write every sample of a pack (or of a :class:`~pixpack.Subset`: a query or a
    split) into ``out_dir`` as an ImageFolder tree.

    Returns the number of files written. ``out_dir`` may exist but must not already
    hold files for these classes (nothing is overwritten).
    """
    indices = None
    if hasattr(pack_or_path, "indices") and hasattr(pack_or_path, "pack"):
        pack_or_path, indices = pack_or_path.pack, np.asarray(pack_or_path.indices)
    pack = (
        open_pack(pack_or_path, access="sequential")  # a front-to-back scan
        if isinstance(pack_or_path, (str, os.PathLike))
        else pack_or_path  # a Pack or a ShardedPack
    )
    out = Path(out_dir)
    classes = pack.classes
    names = class_dir_names(classes)
    labels = pack.targets
    indices = np.arange(len(pack)) if indices is None else indices
    used = np.unique(labels[indices]).tolist()
    for label in used:
        folder = out / (names[label] if 0 <= label < len(names) else UNLABELED)
        if folder.exists() and any(folder.iterdir()):
            raise OutputExistsError(
                f"{folder} already exists and is not empty; export into a new directory"
            )
        folder.mkdir(parents=True, exist_ok=True)
    taken: set[tuple[int, str]] = set()
    with Progress(len(indices), f"export {pack.path.name}", progress) as bar:
        for i, stem in zip(indices.tolist(), _stems(pack, indices), strict=True):
            label = int(labels[i])
            folder = out / (names[label] if 0 <= label < len(names) else UNLABELED)
            base, n = stem, 0
            while (label, stem) in taken:  # the same source name twice in one class
                n += 1
                stem = f"{base}~{i}" if n == 1 else f"{base}~{i}.{n}"
            taken.add((label, stem))
            _check_shape(pack, i)
            if pack.sample_mode(i) == "jpeg":
                data: bytes | memoryview = pack.sample_bytes(i)
                suffix = ".jpg"
            else:
                image = pack.read_image(i)
                if image.dtype.kind == "u" and image.shape[2] in (1, 3, 4):
                    data, suffix = _png(image), ".png"
                else:
                    data, suffix = _tiff(image), ".tiff"
            with open(folder / f"{stem}{suffix}", "xb") as f:
                f.write(data)
            bar.update(1)
    return len(indices)
