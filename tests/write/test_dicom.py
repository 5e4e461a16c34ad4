"""DICOM sources: decoded values equal pydicom's own modality LUT, tags become columns,
undecodable files are skipped with a reason (issue 16, item 1)."""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom", minversion="3.0")

from pydicom.data import get_testdata_file  # noqa: E402
from pydicom.dataset import Dataset, FileMetaDataset  # noqa: E402
from pydicom.pixels import apply_modality_lut, get_decoder  # noqa: E402
from pydicom.uid import (  # noqa: E402
    ExplicitVRLittleEndian,
    JPEGLossless,
    RLELossless,
    generate_uid,
)

import pixpack  # noqa: E402
from pixpack import format as fmt  # noqa: E402
from pixpack.errors import ImageDecodeError, UsageError  # noqa: E402
from pixpack.write.dicomio import decode_dicom  # noqa: E402
from pixpack.write.imageio import load_image  # noqa: E402
from pixpack.write.sources import DicomSource, resolve_source  # noqa: E402

# Files inside pydicom's wheel (never the ones pydicom downloads on demand).
_SHIPPED = ["CT_small.dcm", "MR_small.dcm", "MR_small_RLE.dcm", "JPEG2000.dcm", "SC_rgb_rle.dcm"]
_WIDE_DTYPES = all(np.dtype(t).newbyteorder("<") in fmt.DTYPE_CODES for t in ("i2", "f4"))
needs_wide_dtypes = pytest.mark.xfail(
    not _WIDE_DTYPES, reason="int16/float32 samples in the pack format (issue 16 item 2)"
)


def _shipped(name: str) -> str:
    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"{name} is not in the installed pydicom wheel")
    return path


def _reference(ds: Dataset) -> np.ndarray:
    """pydicom's own decode + modality LUT, HWC."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        values = ds.pixel_array
        if ds.SamplesPerPixel == 1:
            values = apply_modality_lut(values, ds)
    return values[:, :, None] if values.ndim == 2 else values


def _write(
    path: Path,
    pixels: np.ndarray,
    *,
    photometric: str = "MONOCHROME2",
    bits_stored: int | None = None,
    compress: str | None = None,
    **attrs: object,
) -> Path:
    """A small valid DICOM file holding ``pixels`` ((F,) H, W), written by pydicom."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"  # Secondary Capture
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.PatientID = "P-1"
    ds.Modality = "CT"
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PixelSpacing = [0.5, 0.75]
    ds.SliceThickness = 2.5
    ds.InstanceNumber = 7
    if pixels.ndim == 3:
        ds.NumberOfFrames = pixels.shape[0]
    ds.Rows, ds.Columns = pixels.shape[-2:]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = pixels.dtype.itemsize * 8
    ds.BitsStored = bits_stored or ds.BitsAllocated
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = int(pixels.dtype.kind == "i")
    for key, value in attrs.items():
        setattr(ds, key, value)
    ds.PixelData = np.ascontiguousarray(pixels).astype(pixels.dtype.newbyteorder("<")).tobytes()
    if compress == "rle":
        ds.compress(RLELossless)
    ds.save_as(path, enforce_file_format=True)
    return path


def _decode(path: Path | str, **kw: object) -> np.ndarray:
    return decode_dicom(Path(path).read_bytes(), str(path), **kw)


# -- values: pydicom's own modality LUT, exactly ------------------------------------------
@pytest.mark.parametrize("name", _SHIPPED)
def test_shipped_files_decode_to_pydicoms_values(name: str) -> None:
    path = _shipped(name)
    ds = pydicom.dcmread(path)
    syntax = ds.file_meta.TransferSyntaxUID
    if not get_decoder(syntax).is_available:
        pytest.skip(f"no decoder installed for {syntax.name}")
    ours = _decode(path)
    expected = _reference(ds)
    assert ours.shape == expected.shape
    np.testing.assert_array_equal(ours, expected)
    if name == "CT_small.dcm":  # slope 1, intercept -1024: Hounsfield units as int16
        assert ours.dtype == np.int16 and ours.min() < 0


def test_integer_rescale_is_int16_hu(tmp_path: Path) -> None:
    stored = np.arange(0, 4096, 16, dtype=np.uint16).reshape(16, 16)
    path = _write(
        tmp_path / "ct.dcm", stored, bits_stored=12, RescaleSlope=1, RescaleIntercept=-1024
    )
    ours = _decode(path)
    assert ours.dtype == np.int16
    np.testing.assert_array_equal(ours, _reference(pydicom.dcmread(path)))
    assert ours.min() == -1024 and ours.max() == 4080 - 1024


def test_fractional_slope_is_float32(tmp_path: Path) -> None:
    stored = np.arange(256, dtype=np.uint16).reshape(16, 16)
    path = _write(tmp_path / "pt.dcm", stored, RescaleSlope="0.25", RescaleIntercept="-3.5")
    ours = _decode(path)
    assert ours.dtype == np.float32
    expected = _reference(pydicom.dcmread(path)).astype(np.float32)
    np.testing.assert_array_equal(ours, expected)


def test_rescale_beyond_int16_is_float32(tmp_path: Path) -> None:
    stored = np.array([[0, 65535]], dtype=np.uint16)
    path = _write(tmp_path / "wide.dcm", stored, RescaleSlope=1, RescaleIntercept=-1024)
    ours = _decode(path)
    assert ours.dtype == np.float32 and ours.ravel().tolist() == [-1024.0, 64511.0]


@pytest.mark.parametrize(
    ("dtype", "expected"),
    [(np.uint8, np.uint8), (np.uint16, np.uint16), (np.int16, np.int16)],
)
def test_no_rescale_keeps_the_stored_type(tmp_path: Path, dtype: type, expected: type) -> None:
    info = np.iinfo(dtype)
    stored = np.linspace(info.min, info.max, 64).astype(dtype).reshape(8, 8)
    path = _write(tmp_path / "x.dcm", stored)
    ours = _decode(path)
    assert ours.dtype == expected
    np.testing.assert_array_equal(ours[:, :, 0], stored)


def test_identity_rescale_counts_as_none(tmp_path: Path) -> None:
    stored = np.arange(64, dtype=np.uint16).reshape(8, 8)
    path = _write(tmp_path / "mr.dcm", stored, RescaleSlope=1, RescaleIntercept=0)
    assert _decode(path).dtype == np.uint16


# -- MONOCHROME1: inverted over the stored range ------------------------------------------
def test_monochrome1_unsigned_inverts_over_bits_stored(tmp_path: Path) -> None:
    stored = np.array([[0, 1, 100, 4095]], dtype=np.uint16)
    path = _write(tmp_path / "cr.dcm", stored, photometric="MONOCHROME1", bits_stored=12)
    ours = _decode(path)
    assert ours.dtype == np.uint16
    assert ours.ravel().tolist() == [4095, 4094, 3995, 0]  # (0 + 4095) - x


def test_monochrome1_signed_and_rescaled(tmp_path: Path) -> None:
    stored = np.array([[-2048, -1, 0, 2047]], dtype=np.int16)
    path = _write(
        tmp_path / "dx.dcm",
        stored,
        photometric="MONOCHROME1",
        bits_stored=12,
        RescaleSlope=2,
        RescaleIntercept=10,
    )
    ds = pydicom.dcmread(path)
    rescaled = _reference(ds)
    low, high = 2 * -2048 + 10, 2 * 2047 + 10  # the stored range through the rescale
    ours = _decode(path)
    assert ours.dtype == np.int16
    np.testing.assert_array_equal(ours, (low + high) - rescaled)
    # the same as inverting the stored values first: (-2048 + 2047) - x, then rescaling
    np.testing.assert_array_equal(ours[:, :, 0], 2 * (-1 - stored.astype(np.int64)) + 10)


# -- multi-frame ---------------------------------------------------------------------------
def test_multi_frame_is_an_error_by_default(tmp_path: Path) -> None:
    frames = np.arange(3 * 4 * 5, dtype=np.uint16).reshape(3, 4, 5)
    path = _write(tmp_path / "mf.dcm", frames)
    with pytest.raises(ImageDecodeError, match=r"multi-frame DICOM \(3 frames\).*frames="):
        _decode(path)
    with pytest.raises(ImageDecodeError, match="multi-frame"):  # through a manifest too
        load_image(str(path))


def test_multi_frame_as_channels_and_as_samples(tmp_path: Path) -> None:
    frames = np.arange(3 * 4 * 5, dtype=np.uint16).reshape(3, 4, 5)
    folder = tmp_path / "src" / "a"
    folder.mkdir(parents=True)
    path = _write(folder / "mf.dcm", frames)
    channels = _decode(path, frames="channels")
    np.testing.assert_array_equal(channels, np.moveaxis(frames, 0, -1))
    src = DicomSource(tmp_path / "src", frames="samples")
    assert len(src) == 3 and src.files == [str(path)]
    for k in range(3):
        image, label = src.load(k)
        np.testing.assert_array_equal(image[:, :, 0], frames[k])
        assert label == 0 and src.metadata(k)["frame"] == k and src.relpath_of(k) == "a/mf.dcm"


def test_shipped_multi_frame_rtdose() -> None:
    path = _shipped("rtdose.dcm")
    ds = pydicom.dcmread(path)
    expected = np.moveaxis(
        _reference(ds)[..., 0] if ds.pixel_array.ndim == 4 else ds.pixel_array, 0, -1
    )
    ours = _decode(path, frames="channels")
    assert ours.shape == (10, 10, 15)
    np.testing.assert_array_equal(ours, expected)  # 32-bit values above 65535: float32, exact
    assert ours.dtype == np.float32


# -- compressed and unsupported syntaxes ---------------------------------------------------
def test_rle_written_by_pydicom_round_trips(tmp_path: Path) -> None:
    stored = (np.arange(32 * 32, dtype=np.int32).reshape(32, 32) * 7 % 3000 - 1000).astype(np.int16)
    path = _write(
        tmp_path / "rle.dcm", stored, compress="rle", RescaleSlope=1, RescaleIntercept=-1024
    )
    assert pydicom.dcmread(path).file_meta.TransferSyntaxUID == RLELossless
    ours = _decode(path)
    assert ours.dtype == np.int16
    np.testing.assert_array_equal(ours[:, :, 0], stored.astype(np.int64) - 1024)


def _unsupported(path: Path) -> Path:
    """A file claiming JPEG Lossless (no permissively licensed decoder in pixpack[dicom])."""
    _write(path, np.zeros((4, 4), dtype=np.uint16))
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = JPEGLossless
    ds.PixelData = pydicom.encaps.encapsulate([b"\xff\xd8\xff\xc3 not really a jpeg \xff\xd9"])
    ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=True)
    return path


def test_unsupported_syntax_is_an_image_decode_error_naming_it(tmp_path: Path) -> None:
    path = _unsupported(tmp_path / "ll.dcm")
    with pytest.raises(ImageDecodeError, match="JPEG Lossless"):
        _decode(path)


def test_not_dicom_or_no_pixels(tmp_path: Path) -> None:
    bad = tmp_path / "junk.dcm"
    bad.write_bytes(b"\0" * 200)
    with pytest.raises(ImageDecodeError):
        _decode(bad)
    with pytest.raises(ImageDecodeError, match="no pixel data"):
        _decode(_shipped("rtplan.dcm"))


# -- the source: files, tags, packing -----------------------------------------------------
def _tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True)
    _write(root / "a" / "one.dcm", np.full((6, 8), 100, np.uint16), InstanceNumber=1)
    _write(root / "a" / "IM0002", np.full((6, 8), 200, np.uint16), InstanceNumber=2)  # no suffix
    (root / "a" / "notes.txt").write_text("not DICOM")
    (root / "a" / "DICOMDIR").write_bytes(b"\0" * 128 + b"DICM")
    _unsupported(root / "b" / "lossless.dcm")
    _write(root / "b" / "ok.DCM", np.full((6, 8), 300, np.uint16), InstanceNumber=3)
    return root


def test_source_finds_files_and_reads_tags(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    src = DicomSource(root)
    assert src.classes == ["a", "b"]
    assert [src.relpath_of(i) for i in range(len(src))] == [
        "a/IM0002",
        "a/one.dcm",
        "b/lossless.dcm",
        "b/ok.DCM",
    ]
    columns = src.metadata_columns()
    assert "PatientID" in columns and "PixelSpacing_0" in columns and "frame" not in columns
    row = src.metadata(1)
    assert row["PatientID"] == "P-1" and row["Modality"] == "CT" and row["InstanceNumber"] == 1
    assert row["PixelSpacing_0"] == 0.5 and row["PixelSpacing_1"] == 0.75
    assert row["SliceThickness"] == 2.5 and row["RescaleSlope"] is None
    assert isinstance(row["BitsStored"], int)
    chosen = DicomSource(root, dicom_tags=["InstanceNumber"])
    assert chosen.metadata_columns() == ["InstanceNumber"]
    assert [chosen.metadata(i)["InstanceNumber"] for i in range(4)] == [2, 1, 7, 3]
    assert type(resolve_source(root)) is DicomSource  # a plain directory of .dcm classes


def test_source_options_are_checked(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    with pytest.raises(UsageError, match="not a DICOM keyword"):
        DicomSource(root, dicom_tags=["PatientsFavouriteColour"])
    with pytest.raises(UsageError, match="frames must be"):
        DicomSource(root, frames="first")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="list of keywords"):
        DicomSource(root, dicom_tags="PatientID")


def test_pack_skips_unsupported_with_reason_and_keeps_tags(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    out = tmp_path / "tree.pixpack"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        summary = pixpack.pack(DicomSource(root), out, workers=1)
    assert summary.num_samples == 3 and summary.num_skipped == 1
    skipped = summary.skipped[0]
    assert skipped["path"].endswith("lossless.dcm") and "JPEG Lossless" in skipped["reason"]
    with pytest.raises(ImageDecodeError, match="JPEG Lossless"):
        pixpack.pack(DicomSource(root), tmp_path / "strict.pixpack", workers=1, strict=True)
    with pixpack.open(out) as pack:
        assert [int(pack[i][0][0, 0, 0]) for i in range(3)] == [200, 100, 300]
        _, rows = pack.sql("SELECT InstanceNumber, PatientID FROM samples ORDER BY idx")
        assert rows == [(2, "P-1"), (1, "P-1"), (3, "P-1")]


def test_csv_manifest_of_dcm_paths_packs(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    manifest = tmp_path / "list.csv"
    manifest.write_text(f"path,label\n{root}/a/one.dcm,x\n{root}/b/ok.DCM,y\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pixpack.pack(manifest, tmp_path / "plain.pixpack", workers=1)
        src = DicomSource(manifest, dicom_tags=["InstanceNumber"])
    with pixpack.open(tmp_path / "plain.pixpack") as pack:
        assert [int(pack[i][0][0, 0, 0]) for i in range(2)] == [100, 300]
    assert src.classes == ["x", "y"] and src.metadata_columns() == ["InstanceNumber"]
    assert [src.metadata(i)["InstanceNumber"] for i in range(2)] == [1, 3]


@needs_wide_dtypes
def test_ct_in_hu_packs_exactly(tmp_path: Path) -> None:
    """CT (int16 HU) and a fractional rescale (float32) end to end through the pack."""
    root = tmp_path / "ct"
    (root / "scan").mkdir(parents=True)
    shutil.copy(_shipped("CT_small.dcm"), root / "scan" / "ct.dcm")
    stored = np.arange(64, dtype=np.uint16).reshape(8, 8)
    _write(root / "scan" / "pt.dcm", stored, RescaleSlope="0.5", RescaleIntercept="0")
    out = tmp_path / "ct.pixpack"
    summary = pixpack.pack(DicomSource(root), out, workers=1)
    assert summary.num_skipped == 0
    with pixpack.open(out) as pack:
        hu = pack[0][0]
        assert hu.dtype == np.int16
        np.testing.assert_array_equal(hu, _reference(pydicom.dcmread(root / "scan" / "ct.dcm")))
        pt = pack[1][0]
        assert pt.dtype == np.float32
        np.testing.assert_array_equal(pt[:, :, 0], stored.astype(np.float32) * 0.5)


def test_dicom_source_is_lazy_about_pydicom() -> None:
    """``import pixpack.write.sources`` does not import pydicom."""
    import subprocess
    import sys

    code = "import sys, pixpack.write.sources; print('pydicom' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.stdout.strip() == "False", out.stderr


def test_the_pack_option_pages_says_what_dicom_frames_are_too(tmp_path: Path) -> None:
    """``pixpack.pack(dir, pages=...)`` (CLI --pages) reaches a DICOM folder's frames."""
    frames = np.arange(3 * 4 * 5, dtype=np.uint16).reshape(3, 4, 5)
    (tmp_path / "src" / "a").mkdir(parents=True)
    _write(tmp_path / "src" / "a" / "mf.dcm", frames)
    pixpack.pack(tmp_path / "src", tmp_path / "s.pixpack", mode="raw", quiet=True,
                 workers=1, pages="samples")  # fmt: skip
    pack = pixpack.open(tmp_path / "s.pixpack")
    assert len(pack) == 3 and pack.columns["frame"].tolist() == [0, 1, 2]
    pixpack.pack(tmp_path / "src", tmp_path / "c.pixpack", mode="raw", quiet=True,
                 workers=1, pages="channels")  # fmt: skip
    np.testing.assert_array_equal(pixpack.open(tmp_path / "c.pixpack")[0][0],
                                  np.moveaxis(frames, 0, -1))  # fmt: skip


def test_declared_sizes_are_checked_before_decoding(tmp_path: Path, monkeypatch) -> None:
    """The pixel limit holds for DICOM too, and a header claiming millions of frames in
    a small file is a damaged header (its file skipped), not millions of samples."""
    from PIL import Image

    path = _write(tmp_path / "big.dcm", np.zeros((100, 120), np.uint16))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 5_000)
    with pytest.raises(ImageDecodeError, match="pixels"):
        _decode(path)
    monkeypatch.undo()
    (tmp_path / "src" / "a").mkdir(parents=True)
    _write(tmp_path / "src" / "a" / "liar.dcm", np.zeros((4, 5), np.uint16),
           NumberOfFrames=20_000_000)  # fmt: skip
    _write(tmp_path / "src" / "a" / "ok.dcm", np.zeros((4, 5), np.uint16))
    src = DicomSource(tmp_path / "src", frames="samples")
    assert len(src) == 2
    with pytest.raises(ImageDecodeError, match="exceeds the file's size"):
        src.load([src.path_of(i) for i in range(2)].index(str(tmp_path / "src" / "a" / "liar.dcm")))
