"""Builds the optional native JPEG region decoder against the system libjpeg-turbo.

The extension is optional: without libjpeg headers the install still succeeds and
pixpack falls back to a pure-Python decode path (slower on jpeg-mode packs).
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
        )
    ]
)
