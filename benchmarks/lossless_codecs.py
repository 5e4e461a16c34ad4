"""Micro-benchmark: lossless codecs for the ``lossless`` storage mode (issue 16 item 4).

Data sets (all from the bundled photographs, ``pixpack.sample_data.load_photos()``):

- ``ct-int16``: 512x512 CT-like slices in Hounsfield units. A 512x512 crop of a
  photo's luminance (float, so the 8-bit steps are interpolated away) scaled to 12 bits
  (``* 16``), Gaussian noise of sigma 2 (12-bit units: the low bits are not zero, as
  in a real scanner's), rounded, clipped to 0..4095, minus 1024; outside a circular
  field of view the scanner's padding value -1024, as in real CT slices;
- ``ct-uint16``: the same slices before the ``- 1024`` (0..4095, uint16);
- ``rgb-uint8``: 512x512 RGB crops of the photographs;
- ``multi-uint16``: 256x256 uint16 images of 5 channels (a microscopy-like stack:
  luminance of 5 different photo crops at 12 bits with noise).

Codecs: PNG (OpenCV, levels 1 and 6), zstd (``zstandard``, levels 1 and 3), LZ4 and
LZ4-HC level 9 (``lz4.block``), each on the plain bytes, with a byte-shuffle filter (the
bytes of each value split into planes), with a left-neighbour delta (same channel)
before the shuffle, and with pixpack's ``UP`` filter (delta to the row above,
zigzag-coded, then shuffled); pixpack's lossless mode itself (LZ4-HC + ``UP`` in 64 KiB
bands, decoded natively); JPEG-LS, JPEG 2000 (reversible) and JPEG XL (lossless,
effort 1 and 3) through ``imagecodecs`` where it is installed (int16 given to JPEG-LS,
JPEG XL and PNG as uint16 + 32768). Every codec is checked bit-exact.

Decode is single-threaded and timed as CPU time (``thread_time``) of decoding into a
numpy array of the sample's type and shape, filters undone included (by numpy for the
generic filter rows: the filter costs there are numpy's, ~0.5-1 ms, not a native
pass's ~0.04 ms); per image the best of ``ROUNDS`` rounds, then the mean over images.
MB/s are of decoded pixels. Encode is wall time per image, one thread.
Needs ``pip install zstandard`` (and ``imagecodecs`` for the image codecs; without it
their rows are left out). Usage:
``flock /tmp/pixpack-bench.lock python benchmarks/lossless_codecs.py``;
writes ``benchmarks/results/2026-12-05-intel-xeon-2c-lossless-codecs.md``.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from pixpack import sample_data

RESULTS = (
    Path(__file__).resolve().parent / "results" / "2026-12-05-intel-xeon-2c-lossless-codecs.md"
)
ROUNDS = 5
WHEELS = (  # pip download --no-deps, 2026-12-05
    "Wheels checked (manylinux x86_64, CPython 3.11, from PyPI): imagecodecs 2026.3.6 26.5 MB "
    "(JPEG-LS, JPEG 2000, JPEG XL all available), zstandard 0.25.0 5.6 MB, lz4 4.4.5 1.4 MB."
)

Codec = tuple[Callable[[np.ndarray], bytes], Callable[[bytes, np.ndarray], np.ndarray]]


# -- data ------------------------------------------------------------------------------------
def _luma_crop(photo: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    h, w = photo.shape[:2]
    side = int(min(h, w) * rng.uniform(0.6, 1.0))
    y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    crop = photo[y : y + side, x : x + side].astype(np.float32)
    luma = crop @ np.array([0.299, 0.587, 0.114], np.float32)
    return cv2.resize(luma, (size, size), interpolation=cv2.INTER_AREA)


def _twelve_bit(luma: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    values = luma * 16 + rng.normal(0, 2, luma.shape)
    return np.clip(np.rint(values), 0, 4095).astype(np.uint16)


def ct_slices(n: int, seed: int = 0) -> list[np.ndarray]:
    """512x512x1 uint16 CT-like slices (0..4095; HU = value - 1024)."""
    rng = np.random.default_rng(seed)
    photos = sample_data.load_photos()
    yy, xx = np.mgrid[:512, :512]
    outside = (yy - 255.5) ** 2 + (xx - 255.5) ** 2 > 250**2
    out = []
    for k in range(n):
        img = _twelve_bit(_luma_crop(photos[k % len(photos)], 512, rng), rng)
        img[outside] = 0  # -1024 HU once shifted
        out.append(img[:, :, None])
    return out


def rgb_photos(n: int, seed: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    photos = sample_data.load_photos()
    out = []
    for k in range(n):
        p = photos[k % len(photos)]
        side = int(min(p.shape[:2]) * rng.uniform(0.6, 1.0))
        y = int(rng.integers(0, p.shape[0] - side + 1))
        x = int(rng.integers(0, p.shape[1] - side + 1))
        crop = p[y : y + side, x : x + side]
        out.append(cv2.resize(crop, (512, 512), interpolation=cv2.INTER_AREA))
    return out


def multichannel(n: int, channels: int = 5, seed: int = 2) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    photos = sample_data.load_photos()
    out = []
    for k in range(n):
        planes = [_twelve_bit(_luma_crop(photos[(k + c) % len(photos)], 256, rng), rng)
                  for c in range(channels)]  # fmt: skip
        out.append(np.stack(planes, axis=2))
    return out


# -- filters ---------------------------------------------------------------------------------
def shuffle(a: np.ndarray) -> np.ndarray:
    """Bytes of each value as planes: all low bytes, then all high bytes (little-endian)."""
    return np.ascontiguousarray(a.reshape(-1).view(np.uint8).reshape(-1, a.itemsize).T)


def unshuffle(buf: bytes, out: np.ndarray) -> np.ndarray:
    planes = np.frombuffer(buf, np.uint8).reshape(out.itemsize, -1)
    out.reshape(-1).view(np.uint8).reshape(-1, out.itemsize)[:] = planes.T
    return out


def left_delta(a: np.ndarray) -> np.ndarray:
    """Each value minus its left neighbour of the same channel (modular, unsigned view)."""
    u = a.reshape(a.shape[0], -1).view(np.dtype(f"u{a.itemsize}"))
    d = u.copy()
    c = a.shape[2]
    d[:, c:] -= u[:, :-c]
    return d.reshape(a.shape)


def undo_left_delta(a: np.ndarray) -> np.ndarray:
    h, w, c = a.shape
    u = a.view(np.dtype(f"u{a.itemsize}")).reshape(h, w, c)
    np.cumsum(u, axis=1, dtype=u.dtype, out=u)
    return a


# -- codecs ----------------------------------------------------------------------------------
def codecs() -> dict[str, Codec]:
    import lz4.block
    import zstandard

    from pixpack.read.lossless import _unfilter_numpy
    from pixpack.write.lossless import filter_values

    dctx = zstandard.ZstdDecompressor()

    def zstd(level: int) -> Callable[[bytes], bytes]:
        return zstandard.ZstdCompressor(level=level).compress

    def zstd_dec(buf: bytes, out: np.ndarray) -> bytes:
        return dctx.decompress(buf, max_output_size=out.nbytes)

    def lz4_dec(buf: bytes, out: np.ndarray) -> bytes:
        return lz4.block.decompress(buf, uncompressed_size=out.nbytes)

    def lz4_enc(hc: bool) -> Callable[[bytes], bytes]:
        if hc:
            return lambda b: lz4.block.compress(b, mode="high_compression", compression=9,
                                                store_size=False)  # fmt: skip
        return lambda b: lz4.block.compress(b, store_size=False)

    def filtered(enc: Callable, dec: Callable, kind: str) -> Codec:
        def encode(a: np.ndarray) -> bytes:
            if kind == "up":
                return enc(filter_values(a)[1].tobytes())
            return enc(shuffle(left_delta(a) if kind == "left" else a).tobytes())

        def decode(buf: bytes, out: np.ndarray) -> np.ndarray:
            planes = dec(buf, out)
            if kind == "up":
                _unfilter_numpy(planes, out, out.dtype.kind != "f")
                return out
            unshuffle(planes, out)
            return undo_left_delta(out) if kind == "left" else out

        return encode, decode

    found: dict[str, Codec] = {}
    entropy = {"zstd-1": (zstd(1), zstd_dec), "zstd-3": (zstd(3), zstd_dec),
               "lz4": (lz4_enc(False), lz4_dec), "lz4hc-9": (lz4_enc(True), lz4_dec)}  # fmt: skip
    for name, (enc, dec) in entropy.items():
        found[name] = _plain(enc, dec)
        found[name + "+shuffle"] = filtered(enc, dec, "shuffle")
        found[name + "+left+shuffle"] = filtered(enc, dec, "left")
        found[name + "+up-zigzag+shuffle"] = filtered(enc, dec, "up")
    found["pixpack lossless (lz4hc-9+up-zigzag+shuffle, 64 KiB bands, native)"] = _pixpack()
    for level in (1, 6):
        found[f"png-{level}"] = _png(level)
    found.update(_imagecodecs())
    return found


def _pixpack() -> Codec:
    from pixpack.read.lossless import decode_lossless
    from pixpack.write.lossless import encode_lossless

    return encode_lossless, lambda buf, out: decode_lossless(buf, out.shape, out.dtype)


def _unsigned(a: np.ndarray) -> np.ndarray:
    """int16 as uint16 + 32768 (order kept) for codecs that take unsigned samples only."""
    return (a.view(np.uint16) ^ np.uint16(0x8000)) if a.dtype == np.int16 else a


def _signed(a: np.ndarray) -> np.ndarray:
    """The inverse of :func:`_unsigned`."""
    return (a.astype(np.uint16, copy=False) ^ np.uint16(0x8000)).view(np.int16)


def _imagecodecs() -> dict[str, Codec]:
    try:
        import imagecodecs
    except ImportError:
        return {}

    def wrap(enc: Callable, dec: Callable) -> Codec:
        def decode(buf: bytes, out: np.ndarray) -> np.ndarray:
            img = dec(buf)
            img = img.reshape(out.shape)
            return _signed(img) if out.dtype == np.int16 else img

        return (lambda a: enc(_unsigned(np.ascontiguousarray(a)).squeeze()), decode)

    found: dict[str, Codec] = {}
    if imagecodecs.JPEGLS.available:
        found["jpeg-ls"] = wrap(imagecodecs.jpegls_encode, imagecodecs.jpegls_decode)
    if imagecodecs.JPEG2K.available:
        found["jpeg2000-lossless"] = wrap(
            lambda a: imagecodecs.jpeg2k_encode(a, level=0, reversible=True),
            imagecodecs.jpeg2k_decode,
        )
    if imagecodecs.JPEGXL.available:
        for effort in (1, 3):
            found[f"jpegxl-lossless-e{effort}"] = wrap(
                lambda a, e=effort: imagecodecs.jpegxl_encode(a, lossless=True, effort=e),
                imagecodecs.jpegxl_decode,
            )
    return found


def _plain(enc: Callable, dec: Callable) -> Codec:
    def encode(a: np.ndarray) -> bytes:
        return enc(np.ascontiguousarray(a).tobytes())

    def decode(buf: bytes, out: np.ndarray) -> np.ndarray:
        out.reshape(-1).view(np.uint8)[:] = np.frombuffer(dec(buf, out), np.uint8)
        return out

    return encode, decode


def _png(level: int) -> Codec:
    def encode(a: np.ndarray) -> bytes:
        if a.shape[2] not in (1, 3, 4):
            raise ValueError("PNG holds 1, 3 or 4 channels")
        u = _unsigned(a)
        bgr = u[:, :, ::-1] if a.shape[2] >= 3 else u
        params = [cv2.IMWRITE_PNG_COMPRESSION, level]
        _, buf = cv2.imencode(".png", np.ascontiguousarray(bgr), params)
        return buf.tobytes()

    def decode(buf: bytes, out: np.ndarray) -> np.ndarray:
        img = cv2.imdecode(np.frombuffer(buf, np.uint8), cv2.IMREAD_UNCHANGED)
        if img.ndim == 2:
            img = img[:, :, None]
        elif img.shape[2] >= 3:
            cv2.cvtColor(img, cv2.COLOR_BGR2RGB if img.shape[2] == 3 else cv2.COLOR_BGRA2RGBA, img)
        return _signed(img) if out.dtype == np.int16 else img

    return encode, decode


# -- measurement -----------------------------------------------------------------------------
def measure(images: list[np.ndarray], codec: Codec) -> dict[str, float] | None:
    encode, decode = codec
    try:
        t0 = time.perf_counter()
        blobs = [encode(a) for a in images]
        encode_s = (time.perf_counter() - t0) / len(images)
    except Exception as exc:  # a codec that cannot hold this data: n/a
        return {"error": str(exc).splitlines()[0][:60]}
    raw = sum(a.nbytes for a in images)
    stored = sum(len(b) for b in blobs)
    per_image = []
    for a, blob in zip(images, blobs, strict=True):
        out = np.empty_like(a)
        got = np.asarray(decode(blob, out)).reshape(a.shape)
        if got.dtype != a.dtype or not np.array_equal(got, a):
            raise AssertionError("not bit-exact")
        best = float("inf")
        for _ in range(ROUNDS):
            t0 = time.thread_time()
            decode(blob, out)
            best = min(best, time.thread_time() - t0)
        per_image.append(best)
    mean_s = float(np.mean(per_image))
    return {
        "ratio": raw / stored,
        "mb_s": images[0].nbytes / mean_s / 1e6,
        "us": mean_s * 1e6,
        "encode_ms": encode_s * 1e3,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20, help="images per data set")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    ct = ct_slices(args.images)
    sets = {
        "ct-int16": [(a.astype(np.int32) - 1024).astype(np.int16) for a in ct],
        "ct-uint16": ct,
        "rgb-uint8": rgb_photos(args.images),
        "multi-uint16": multichannel(args.images),
    }
    table = {name: {} for name in codecs()}
    for set_name, images in sets.items():
        for name, codec in codecs().items():
            table[name][set_name] = measure(images, codec)
            print(set_name, name, table[name][set_name], flush=True)
    write_report(args.out, sets, table, args.images)


def _versions() -> str:
    import lz4
    import zstandard

    parts = [f"Python {platform.python_version()}", f"numpy {np.__version__}",
             f"OpenCV {cv2.__version__}", f"zstandard {zstandard.__version__} "
             f"(libzstd {'.'.join(map(str, zstandard.ZSTD_VERSION))})",
             f"lz4 {lz4.__version__}"]  # fmt: skip
    try:
        import imagecodecs

        parts.append(f"imagecodecs {imagecodecs.__version__}")
    except ImportError:
        parts.append("imagecodecs not installed")
    return "; ".join(parts)


def _cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def write_report(path: Path, sets: dict, table: dict, n: int) -> None:
    names = list(sets)
    shapes = {k: "x".join(map(str, v[0].shape)) + f" {v[0].dtype}" for k, v in sets.items()}
    lines = [
        "# Lossless codecs for the `lossless` storage mode",
        "",
        f"CPU: {_cpu()} (2 cores, shared VM); {_versions()}.",
        f"{n} images per set; single thread, CPU time (`thread_time`) of one decode into "
        f"a numpy array, filters undone included; per image the best of {ROUNDS} rounds, "
        "mean over images. Every codec checked bit-exact. Ratio = raw bytes / stored bytes.",
        "",
        "Sets: " + "; ".join(f"`{k}` {shapes[k]}" for k in names) + ". "
        "See the docstring of `benchmarks/lossless_codecs.py` for how they are made.",
        "",
        WHEELS,
        "",
        "Each cell: ratio / decode MB/s of decoded pixels / decode us per image / encode ms "
        "per image.",
        "",
        "| codec | " + " | ".join(names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    for codec, row in table.items():
        cells = []
        for k in names:
            r = row.get(k)
            if r is None or "error" in r:
                cells.append("n/a")
            else:
                cells.append(
                    f"{r['ratio']:.2f} / {r['mb_s']:.0f} / {r['us']:.0f} / {r['encode_ms']:.1f}"
                )
        lines.append(f"| {codec} | " + " | ".join(cells) + " |")
    lines += ["", f"Command: `flock /tmp/pixpack-bench.lock python {' '.join(sys.argv)}`", ""]
    path.write_text("\n".join(lines))


if __name__ == "__main__":
    main()
