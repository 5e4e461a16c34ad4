"""Builds pixpack's two optional native extensions.

- ``pixpack._native._jpeg``: the region-of-interest JPEG decoder, against the system
  libjpeg-turbo. Without libjpeg headers the install still succeeds and pixpack falls
  back to a pure-Python decode path (slower on jpeg-mode packs).
- ``pixpack._native._store``: the loader's fused flip + normalize + layout store. It
  needs only a C compiler; without one, the loader uses an OpenCV path (slower).
- ``pixpack._native._resample``: torchvision's antialiased bilinear resize of a crop,
  fused with flips and the store (the loader's whole raw-pack sample). C compiler only;
  without it, resizes go through OpenCV with a Gaussian pre-blur (slower, within ~0.3
  level of torchvision instead of ~0.1).

- ``pixpack._native._lossless``: undoes the ``lossless`` mode's byte-plane and delta
  filters in one GIL-free pass. C compiler only; without it numpy does the same (slower).

- ``pixpack._native._readahead``: asynchronous read requests (``POSIX_FADV_WILLNEED``)
  for many spans in one GIL release (the loader's read-ahead). C compiler only; without
  it the same requests are made from Python.

Float code is built with ``-ffp-contract=off``: the fused resize + store must round
exactly like a resize followed by the store, which a contracted multiply-add would not.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "pixpack._native._jpeg",
            sources=["src/pixpack/_native/jpeg_roi.c"],
            depends=["src/pixpack/_native/jpeg_api.h"],
            libraries=["jpeg"],
            extra_compile_args=["-O3", "-std=c99"],
            optional=True,
        ),
        Extension(
            "pixpack._native._store",
            sources=["src/pixpack/_native/store.c"],
            depends=["src/pixpack/_native/glue.h"],
            extra_compile_args=["-O3", "-std=c99", "-ffp-contract=off"],
            optional=True,
        ),
        Extension(
            "pixpack._native._resample",
            sources=["src/pixpack/_native/resample.c", "src/pixpack/_native/draw.c"],
            depends=["src/pixpack/_native/glue.h", "src/pixpack/_native/draw.h",
                     "src/pixpack/_native/jpeg_api.h"],
            libraries=["m"],
            extra_compile_args=["-O3", "-std=c99", "-ffp-contract=off"],
            optional=True,
        ),
        Extension(
            "pixpack._native._readahead",
            sources=["src/pixpack/_native/readahead.c"],
            depends=["src/pixpack/_native/glue.h"],
            extra_compile_args=["-O3", "-std=c99"],
            optional=True,
        ),
        Extension(
            "pixpack._native._lossless",
            sources=["src/pixpack/_native/lossless.c"],
            depends=["src/pixpack/_native/glue.h"],
            extra_compile_args=["-O3", "-std=c99"],
            optional=True,
        ),
    ]
)
