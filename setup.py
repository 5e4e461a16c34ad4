"""Builds pixpack's two optional native extensions.

- ``pixpack._native._jpeg``: the region-of-interest JPEG decoder, against the system
  libjpeg-turbo. Without libjpeg headers the install still succeeds and pixpack falls
  back to a pure-Python decode path (slower on jpeg-mode packs).
- ``pixpack._native._store``: the loader's fused flip + normalize + layout store. It
  needs only a C compiler; without one, the loader uses an OpenCV path (slower).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "pixpack._native._jpeg",
            sources=["src/pixpack/_native/jpeg_roi.c"],
            libraries=["jpeg"],
            extra_compile_args=["-O3", "-std=c99"],
            optional=True,
        ),
        Extension(
            "pixpack._native._store",
            sources=["src/pixpack/_native/store.c"],
            extra_compile_args=["-O3", "-std=c99"],
            optional=True,
        ),
    ]
)
