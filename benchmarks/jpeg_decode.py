"""Micro-benchmark: JPEG decode cost per image, full vs DCT-scaled vs region-of-interest.

For ~500x375 (ImageNet-like) and ~1600x1200 photo JPEGs it times, single-threaded:

- Pillow full decode, simplejpeg full decode, native full decode;
- native full decode at the DCT scale a RandomResizedCrop box to 224 allows;
- native ROI + scale: only that box, at that scale (what the loader does);
- the simplejpeg fallback (whole image at the scale, then slice).

The boxes are torchvision RandomResizedCrop draws (area 8-100%, ratio 3/4-4/3), one
per image, fixed by a seed. Usage: ``python benchmarks/jpeg_decode.py [--quick]``;
prints a table and writes ``benchmarks/results/jpeg_decode.md``. Runs in < 1 minute.
"""

from __future__ import annotations

import argparse
import io
import math
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import PIL
import simplejpeg
from PIL import Image, features

from pixpack import sample_data
from pixpack.read import jpeg

RESULTS = Path(__file__).resolve().parent / "results" / "jpeg_decode.md"
OUT_SIZE = 224


def rrc_box(h: int, w: int, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """torchvision RandomResizedCrop.get_params with an injected generator."""
    area = h * w
    for _ in range(10):
        target = area * rng.uniform(0.08, 1.0)
        ratio = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
        bw = round(math.sqrt(target * ratio))
        bh = round(math.sqrt(target / ratio))
        if 0 < bw <= w and 0 < bh <= h:
            return int(rng.integers(0, h - bh + 1)), int(rng.integers(0, w - bw + 1)), bh, bw
    return 0, 0, h, w


def per_call(fns: dict[str, Callable[[], object]], budget: float, rounds: int = 7) -> dict:
    """CPU seconds per call of each fn: the best of ``rounds`` rounds.

    Thread CPU time, not wall time: the decoders are single-threaded and this machine
    is shared, so waiting for a core must not count. Methods are interleaved within
    each round so cache and frequency effects hit all of them alike.
    """
    counts = {}
    for name, fn in fns.items():
        t0 = time.perf_counter()
        fn()
        once = max(time.perf_counter() - t0, 1e-6)
        counts[name] = max(1, int(budget / len(fns) / rounds / once))
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(rounds):
        for name, fn in fns.items():
            t0 = time.thread_time()
            for _ in range(counts[name]):
                fn()
            best[name] = min(best[name], (time.thread_time() - t0) / counts[name])
    return best


def bench_size(size: tuple[int, int], count: int, budget: float) -> dict[str, float]:
    photos = sample_data.load_photos()
    rng = np.random.default_rng(size[0])
    cases = []
    outs: dict[bytes, np.ndarray] = {}  # the loader reuses its decode buffers
    for _ in range(count):
        buf = io.BytesIO()
        sample_data.make_photo(photos, size, rng).save(buf, "JPEG", quality=90)
        data = buf.getvalue()
        h, w, _ = jpeg.jpeg_shape(data)
        box = rrc_box(h, w, rng)
        scale = jpeg.choose_scale(box[2], box[3], OUT_SIZE, OUT_SIZE)
        cases.append((data, box, scale))
        outs[data] = np.empty(jpeg.output_shape((h, w, 3), region=box, scale=scale), np.uint8)
    methods: dict[str, Callable[[bytes, tuple, int], object]] = {
        "Pillow full": lambda d, b, s: np.asarray(Image.open(io.BytesIO(d)).convert("RGB")),
        "simplejpeg full": lambda d, b, s: simplejpeg.decode_jpeg(d),
        "native full": lambda d, b, s: jpeg.decode_jpeg(d),
        "native full @ DCT scale": lambda d, b, s: jpeg.decode_jpeg(d, scale=s),
        "native ROI + DCT scale": lambda d, b, s: jpeg.decode_jpeg(d, region=b, scale=s),
        "native ROI + DCT scale, out=": lambda d, b, s: jpeg.decode_jpeg(
            d, region=b, scale=s, out=outs[d]
        ),
        "simplejpeg fallback ROI": lambda d, b, s: jpeg.decode_jpeg(
            d, region=b, scale=s, backend="simplejpeg"
        ),
    }
    timings = [
        per_call({name: (lambda c=c, fn=fn: fn(*c)) for name, fn in methods.items()}, budget)
        for c in cases
    ]
    result = {name: float(np.mean([t[name] for t in timings])) for name in methods}
    result["scales"] = float(np.mean([c[2] for c in cases]))
    result["area"] = float(np.mean([c[1][2] * c[1][3] for c in cases]) / (size[0] * size[1]))
    return result


def environment() -> str:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    native = "not built"
    if jpeg.native_available():
        from pixpack._native import _jpeg

        v = _jpeg.LIBJPEG_TURBO_VERSION_NUMBER
        native = f"libjpeg-turbo {v // 1000000}.{v // 1000 % 1000}.{v % 1000} (system)"
    return (
        f"CPU: {cpu}; Python {platform.python_version()}; numpy {np.__version__}; "
        f"Pillow {PIL.__version__} (libjpeg-turbo {features.version('libjpeg_turbo')}); "
        f"simplejpeg {simplejpeg.__version__}; native decoder: {native}. "
        "Single thread, CPU time (thread_time); per image the best of 7 interleaved "
        "rounds, mean over images; "
        "JPEG quality 90 4:2:0. "
        f"Load average at the end: {os.getloadavg()[0]:.1f} (a shared machine adds noise)."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer images, shorter rounds")
    args = parser.parse_args(argv)
    count, budget = (3, 1.0) if args.quick else (8, 1.5)
    sizes = {"500x375": (500, 375), "1600x1200": (1600, 1200)}
    results = {label: bench_size(size, count, budget) for label, size in sizes.items()}
    names = [k for k in next(iter(results.values())) if k not in ("scales", "area")]
    lines = [
        "# JPEG decode micro-benchmark",
        "",
        environment(),
        "",
        f"RandomResizedCrop box to {OUT_SIZE}x{OUT_SIZE}; CPU ms per image (speed-up vs Pillow).",
        "",
        "| method | " + " | ".join(results) + " |",
        "|---|" + "---:|" * len(results),
    ]
    for name in names:
        cells = []
        for r in results.values():
            cells.append(f"{r[name] * 1e3:.2f} ({r['Pillow full'] / r[name]:.1f}x)")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "mean box area / image: "
        + ", ".join(f"{k} {r['area']:.0%}" for k, r in results.items())
        + "; mean DCT denominator: "
        + ", ".join(f"{k} {r['scales']:.2f}" for k, r in results.items()),
        "",
        f"Command: `python benchmarks/jpeg_decode.py{' --quick' if args.quick else ''}`",
    ]
    text = "\n".join(lines) + "\n"
    sys.stdout.write(text)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
