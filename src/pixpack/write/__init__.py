"""The write side: sources -> decode/normalise -> encode -> PackWriter."""

from .encode import EncodedSample, encode_sample
from .imageio import LoadedImage, load_image, load_image_info
from .packer import PackSummary, pack
from .sources import (
    IMG_EXTENSIONS,
    CsvSource,
    ImageFolderSource,
    SequenceSource,
    Source,
    resolve_source,
)
from .writer import PackWriter

__all__ = [
    "pack",
    "PackSummary",
    "resolve_source",
    "Source",
    "ImageFolderSource",
    "CsvSource",
    "SequenceSource",
    "IMG_EXTENSIONS",
    "load_image",
    "load_image_info",
    "LoadedImage",
    "encode_sample",
    "EncodedSample",
    "PackWriter",
]
