"""CT-like DICOM slices made from real photographs, for ``medical.py`` (made once, gitignored).

Each slice is a 512x512 view of one of the photographs bundled with pixpack
(``pixpack.sample_data.load_photos()``: scikit-image's and matplotlib's, no downloads):

- a random square crop (side 256 px to the photo's shorter side), randomly flipped or
  rotated by 90 degrees, its luminance (``0.299 R + 0.587 G + 0.114 B``, in float)
  resized to 512x512 (area for downscaling, bilinear for upscaling);
- scaled from 0..255 to the 12-bit range 0..4095 in float, with Gaussian noise of
  sigma 5 stored units (5 HU, the quantum noise of a standard-dose CT in soft tissue)
  and rounded, so all 12 bits carry content: not ``v * 16``, whose 4 always-zero low
  bits would flatter any lossless codec;
- outside the scanner's circular field of view (radius 256) the stored value is 0,
  the constant padding real CT slices have there.

Written as uncompressed DICOM (Explicit VR Little Endian, CT Image Storage):
``BitsAllocated 16, BitsStored 12, PixelRepresentation 0, RescaleSlope 1,
RescaleIntercept -1024``, so the Hounsfield units are ``stored - 1024`` (-1024..3071)
and pixpack stores them as int16. 20 "patients", slices numbered within each.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DEFAULT_DIR = HERE / "data" / "medical"
SIDE = 512
NOISE = 5.0
PATIENTS = 20


def make_slices(out: Path = DEFAULT_DIR, count: int = 2000, seed: int = 16) -> Path:
    """``out/ct/<patient>/slice-NNNNN.dcm`` (one class folder, ``ct``); returns ``out/ct``."""
    import cv2
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    from pixpack.sample_data import load_photos

    root = out / "ct"
    done = root / ".complete"
    if done.exists() and int(done.read_text() or 0) == count:
        return root
    photos = [p.astype(np.float32) @ np.float32([0.299, 0.587, 0.114]) for p in load_photos()]
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:SIDE, :SIDE]
    outside = (yy - (SIDE - 1) / 2) ** 2 + (xx - (SIDE - 1) / 2) ** 2 > (SIDE / 2) ** 2
    studies = [generate_uid() for _ in range(PATIENTS)]
    series = [generate_uid() for _ in range(PATIENTS)]
    for i in range(count):
        lum = photos[i % len(photos)]
        h, w = lum.shape
        side = int(rng.integers(256, min(h, w) + 1))
        y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        crop = np.rot90(lum[y : y + side, x : x + side], int(rng.integers(0, 4)))
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        interp = cv2.INTER_AREA if side > SIDE else cv2.INTER_LINEAR
        img = cv2.resize(np.ascontiguousarray(crop), (SIDE, SIDE), interpolation=interp)
        img = img * np.float32(4095 / 255) + rng.normal(0, NOISE, img.shape).astype(np.float32)
        stored = np.clip(np.rint(img), 0, 4095).astype(np.uint16)
        stored[outside] = 0
        patient = i % PATIENTS
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
        ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
        ds.PatientID = f"P-{patient:03d}"
        ds.Modality = "CT"
        ds.StudyInstanceUID = studies[patient]
        ds.SeriesInstanceUID = series[patient]
        ds.InstanceNumber = i // PATIENTS + 1
        ds.PixelSpacing = [0.7, 0.7]
        ds.SliceThickness = 1.0
        ds.Rows = ds.Columns = SIDE
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = 16
        ds.BitsStored = 12
        ds.HighBit = 11
        ds.PixelRepresentation = 0
        ds.RescaleSlope = 1
        ds.RescaleIntercept = -1024
        ds.RescaleType = "HU"
        ds.PixelData = stored.astype("<u2").tobytes()
        folder = root / ds.PatientID
        folder.mkdir(parents=True, exist_ok=True)
        ds.save_as(folder / f"slice-{i:05d}.dcm", enforce_file_format=True)
    done.write_text(str(count))
    return root


if __name__ == "__main__":
    print(make_slices(count=int(sys.argv[1]) if len(sys.argv) > 1 else 2000))
