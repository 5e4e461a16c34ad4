"""ImageFolder trees: ``root/<class>/**/<image>``, exactly torchvision's rules."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

from ...errors import EmptySourceError, SourceFormatError
from .base import IMG_EXTENSIONS, FileListSource, class_list

__all__ = ["ImageFolderSource"]


class ImageFolderSource(FileListSource):
    """``root/<class>/**/<image>`` with exactly torchvision ``ImageFolder``'s rules.

    Classes are the sorted names of ``root``'s sub-directories; files are found with
    ``sorted(os.walk(class_dir, followlinks=True))`` and kept when their lower-cased
    name ends with one of :data:`IMG_EXTENSIONS`, so labels and order equal
    ``torchvision.datasets.ImageFolder(root)``'s. One difference: a symlink back to a
    directory the walk is already inside (``a/up -> ..``) is not followed, where
    torchvision walks the loop until the OS refuses the path (exponentially long with
    two such loops).

    With ``classes=`` (a fixed list, e.g. from another split) every folder must be
    named in it and labels are positions in it; listed classes without a folder are
    fine (a split may lack some). Folders are still walked in sorted order, as
    torchvision does with a ``find_classes`` override.
    """

    def __init__(self, root: str | os.PathLike[str], classes: Sequence[str] | None = None) -> None:
        self.root = os.path.expanduser(os.fspath(root))
        with os.scandir(self.root) as entries:
            folders = sorted(entry.name for entry in entries if entry.is_dir())
        if not folders:
            raise EmptySourceError(
                f"{self.root}: no class folders found; an ImageFolder source needs one "
                "sub-directory per class (root/<class>/<image>)."
            )
        self.classes = folders if classes is None else class_list(classes)
        to_idx = self.class_to_idx
        unknown = [name for name in folders if name not in to_idx]
        if unknown:
            raise SourceFormatError(
                f"{os.path.join(self.root, unknown[0])}: folder {unknown[0]!r} is not in the "
                f"class list ({len(self.classes)} classes) — add it to classes= (CLI "
                "--classes), or move the folder out of the source."
            )
        samples: list[tuple[str, int]] = []
        for name in folders:
            label = to_idx[name]
            class_dir = os.path.join(self.root, name)
            found = 0
            for dirpath, _, fnames in sorted(_walk(class_dir)):
                for fname in sorted(fnames):
                    if self._is_sample(dirpath, fname):
                        samples.append((os.path.join(dirpath, fname), label))
                        found += 1
            if not found:
                raise EmptySourceError(
                    f"{class_dir}: class folder holds no {self._wanted}; add them or remove "
                    "the folder."
                )
        self._samples = samples
        self._prefix = len(os.path.join(self.root, ""))  # every path starts with root + "/"

    _wanted = f"images with extensions {', '.join(IMG_EXTENSIONS)}"  # for the error

    def _is_sample(self, dirpath: str, fname: str) -> bool:
        """Whether a file is packed (subclasses for other kinds of files override it)."""
        return fname.lower().endswith(IMG_EXTENSIONS)

    def relpath_of(self, i: int) -> str:
        return self._samples[i][0][self._prefix :]

    def describe(self) -> dict[str, Any]:
        return {"type": "image_folder", "root": os.path.abspath(self.root), "num_items": len(self)}

    def _extra_fingerprint(self) -> bytes:
        return "\0".join(self.classes).encode("utf-8", "surrogateescape")


def _walk(top: str) -> Iterator[tuple[str, list[str], list[str]]]:
    """``os.walk(top, followlinks=True)`` that does not enter a directory whose real
    path is the real path of one of its ancestors (a symlink loop). Two links to one
    directory that is not an ancestor (a diamond) are both walked, as os.walk does."""
    chains: dict[str, tuple[str, ...]] = {top: ()}
    for dirpath, dirnames, fnames in os.walk(top, followlinks=True):
        chain = (*chains.pop(dirpath, ()), os.path.realpath(dirpath))
        kept = []
        for name in dirnames:
            child = os.path.join(dirpath, name)
            if os.path.realpath(child) not in chain:
                chains[child] = chain
                kept.append(name)
        dirnames[:] = kept  # os.walk (top-down) descends only into these
        yield dirpath, dirnames, fnames
