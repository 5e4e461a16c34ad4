"""The Pillow-free JPEG path gives what Pillow's path gives: size, mode, orientation."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageOps

from pixpack.write import jpeg, load_image_info


def _jpeg(image: Image.Image, **kwargs) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=92, **kwargs)
    return buf.getvalue()


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillow(photo_image, tmp_path, orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "camera maker"  # another tag before it
    path = tmp_path / "o.jpg"
    path.write_bytes(_jpeg(photo_image, exif=exif))
    header = jpeg.read_header(path.read_bytes())
    assert header == (120, 160, "RGB", orientation)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(path)))
    info = load_image_info(path)
    np.testing.assert_array_equal(info.array, expected)
    assert info.orientation == orientation and info.conversion is None


def test_header_modes_and_fallbacks(photo_image):
    assert jpeg.read_header(_jpeg(photo_image)) == (120, 160, "RGB", 1)
    assert jpeg.read_header(_jpeg(photo_image.convert("L"))) == (120, 160, "L", 1)
    exif = Image.Exif()
    exif[0x010F] = "no orientation here"
    assert jpeg.read_header(_jpeg(photo_image, exif=exif)) == (120, 160, "RGB", 1)
    # Pillow decides: CMYK conversion, XMP (may hold the orientation), damaged files.
    assert jpeg.read_header(_jpeg(photo_image.convert("CMYK"))) is None
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><tiff:Orientation>6</tiff:Orientation></x:xmpmeta>'
    assert jpeg.read_header(_jpeg(photo_image, xmp=xmp)) is None
    assert jpeg.read_header(b"\xff\xd8\xff" + b"\x00" * 50) is None


def test_xmp_orientation_is_still_applied(photo_image, tmp_path):
    xmp = (
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/'
        b'02/22-rdf-syntax-ns#"><rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/"'
        b' tiff:Orientation="6"/></rdf:RDF></x:xmpmeta>'
    )
    path = tmp_path / "x.jpg"
    path.write_bytes(_jpeg(photo_image, xmp=xmp))
    pil = Image.open(path)
    expected = np.asarray(ImageOps.exif_transpose(pil))
    np.testing.assert_array_equal(load_image_info(path).array, expected)
