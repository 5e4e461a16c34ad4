"""Build the benchmark image folders locally (no downloads). Idempotent.

Layout under ``benchmarks/data/`` (gitignored)::

    photos-<N>/        ImageFolder of real-photo crops (~500x375, JPEG q75-95), 10 classes
    photos-<N*k>/      the same files hard-linked k times (memory vs dataset size)
    large-<M>/         ~1600x1200 photo mosaics (region-of-interest decode case)

Usage: ``python benchmarks/data.py [--quick]``.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"

__all__ = ["DataSpec", "FULL", "QUICK", "build", "main"]


@dataclass(frozen=True)
class DataSpec:
    """How many images each benchmark folder holds."""

    num_classes: int = 10
    per_class: int = 200  # base set: num_classes * per_class images
    scale_factor: int = 5  # the memory-vs-size set repeats the base set this many times
    large_per_class: int = 25  # large photographs per class

    @property
    def base_size(self) -> int:
        return self.num_classes * self.per_class

    @property
    def base(self) -> Path:
        return DATA / f"photos-{self.base_size}"

    @property
    def scaled(self) -> Path:
        return DATA / f"photos-{self.base_size * self.scale_factor}"

    @property
    def large(self) -> Path:
        return DATA / f"large-{self.num_classes * self.large_per_class}"


FULL = DataSpec()
QUICK = DataSpec(per_class=32, scale_factor=4, large_per_class=4)


def _link_tree(src: Path, dst: Path, repeat: int) -> Path:
    """``dst`` holds every file of ``src`` ``repeat`` times, as hard links (no extra disk)."""
    marker = dst / ".bench-linked"
    spec = f"{src} x{repeat}"
    if marker.exists() and marker.read_text() == spec:
        return dst
    for class_dir in sorted(p for p in src.iterdir() if p.is_dir()):
        files = sorted(class_dir.glob("*.jpg"))
        out = dst / class_dir.name
        out.mkdir(parents=True, exist_ok=True)
        for i in range(len(files) * repeat):
            target = out / f"img_{i:06d}.jpg"
            if not target.exists():
                try:
                    os.link(files[i % len(files)], target)
                except OSError:  # file systems without hard links: fall back to a symlink
                    target.symlink_to(files[i % len(files)])
    marker.write_text(spec)
    return dst


def build(spec: DataSpec = FULL) -> dict[str, Path]:
    """Create (or reuse) every folder of ``spec``; returns their paths by role."""
    sys.path.insert(0, str(HERE.parent / "src"))
    from pixpack.sample_data import make_image_folder

    make_image_folder(spec.base, num_classes=spec.num_classes, per_class=spec.per_class, seed=0)
    _link_tree(spec.base, spec.scaled, spec.scale_factor)
    make_image_folder(
        spec.large,
        num_classes=spec.num_classes,
        per_class=spec.large_per_class,
        size=(1600, 1200),
        seed=1,
    )
    return {"base": spec.base, "scaled": spec.scaled, "large": spec.large}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the small smoke-run data set")
    args = parser.parse_args()
    for role, path in build(QUICK if args.quick else FULL).items():
        count = sum(1 for _ in path.rglob("*.jpg"))
        print(f"{role:6s} {path}  ({count} images)")


if __name__ == "__main__":
    main()
