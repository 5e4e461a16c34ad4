"""The largest image pixpack decodes while packing, checked before decoding.

The limit is Pillow's ``PIL.Image.MAX_IMAGE_PIXELS`` (89,478,485 pixels by default,
about 9459 x 9459; set it to ``None`` or a larger value to pack larger images), read
at the time of the check. Pillow itself only warns between one and two times that
limit and then decodes (a 13000 x 13000 JPEG header costs a 507 MB buffer before the
file turns out to be a 1 kB fake); pixpack refuses every image over it, from the
size its header declares, before any buffer of that size exists. The image is then
skipped like any unreadable one (an error with ``strict=True``).
"""

from __future__ import annotations

from PIL import Image

from ..errors import ImageDecodeError

__all__ = ["check_pixels"]


def check_pixels(path: str, height: int, width: int) -> None:
    """Raise :class:`ImageDecodeError` when ``height x width`` is over the limit."""
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and height * width > limit:
        raise ImageDecodeError(
            path,
            f"image too large: {width}x{height} = {height * width} pixels, over the limit of "
            f"{int(limit)} (PIL.Image.MAX_IMAGE_PIXELS: raise it to pack larger images)",
        )
