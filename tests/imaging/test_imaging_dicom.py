"""Tests of DICOM loading on the real files inside the pydicom and nibabel wheels."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.pixels import apply_modality_lut, pixel_array

from corpusforge.generators.imaging.dicom import linear_window, plane_from_orientation
from corpusforge.generators.imaging.embedded import EmbeddedDicom, embedded_dicom_files
from corpusforge.generators.imaging.io import ImageError, load_image, percentile_window

PYDICOM_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
METADATA_KEYS = {"rows", "columns", "modality", "body_part", "plane", "frames", "frame", "window"}


@pytest.fixture(autouse=True)
def quiet_pydicom():
    # pydicom warns about the deliberately odd test files; the checks below cover them.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        yield


def write_variant(source: Path, target: Path, **changes) -> Path:
    """Copy a DICOM file with some elements set (None deletes an element)."""
    dataset = pydicom.dcmread(source)
    for keyword, value in changes.items():
        if value is None:
            if keyword in dataset:
                delattr(dataset, keyword)
        else:
            setattr(dataset, keyword, value)
    dataset.save_as(target)
    return target


def expected_percentile(path: Path, index: int | None = None) -> np.ndarray:
    dataset = pydicom.dcmread(path)
    pixels = pixel_array(dataset, index=index)
    return percentile_window(np.asarray(apply_modality_lut(pixels, dataset), dtype=np.float64))


# Real files


def test_ct_without_window_tags():
    path = PYDICOM_FILES / "CT_small.dcm"
    dataset = pydicom.dcmread(path)
    assert "WindowCenter" not in dataset
    assert "RescaleIntercept" in dataset

    loaded = load_image(path)

    assert loaded.format == "DICOM"
    assert loaded.image.mode == "L"
    assert loaded.image.size == (128, 128)
    assert loaded.metadata["window"] == "percentile"
    assert loaded.metadata["modality"] == "CT"
    assert loaded.metadata["plane"] == "axial"
    assert np.array_equal(np.asarray(loaded.image), expected_percentile(path))


def test_mr_uses_file_window():
    path = PYDICOM_FILES / "MR_small.dcm"
    dataset = pydicom.dcmread(path)
    center, width = float(dataset.WindowCenter), float(dataset.WindowWidth)

    loaded = load_image(path)

    values = np.asarray(apply_modality_lut(dataset.pixel_array, dataset), dtype=np.float64)
    assert loaded.metadata["window"] == "file"
    assert np.array_equal(np.asarray(loaded.image), linear_window(values, center, width))


def test_multi_valued_window_uses_first():
    path = PYDICOM_FILES / "examples_overlay.dcm"
    dataset = pydicom.dcmread(path)
    assert list(dataset.WindowCenter) == [450, 200]
    assert list(dataset.WindowWidth) == [790, 443]

    loaded = load_image(path)

    values = np.asarray(apply_modality_lut(dataset.pixel_array, dataset), dtype=np.float64)
    assert np.array_equal(np.asarray(loaded.image), linear_window(values, 450.0, 790.0))
    assert loaded.metadata["body_part"] == "ABDOMEN"


def test_rescale_applied_before_window(tmp_path):
    # A brain window in Hounsfield units only works after the -1024 intercept.
    path = write_variant(
        PYDICOM_FILES / "CT_small.dcm", tmp_path / "ct_window.dcm", WindowCenter=40, WindowWidth=80
    )
    dataset = pydicom.dcmread(path)
    hounsfield = dataset.pixel_array.astype(np.float64) * float(dataset.RescaleSlope) + float(
        dataset.RescaleIntercept
    )

    pixels = np.asarray(load_image(path).image)

    assert np.array_equal(pixels, linear_window(hounsfield, 40.0, 80.0))
    assert 0 < pixels.mean() < 255


def test_monochrome1_is_inverted(tmp_path):
    source = PYDICOM_FILES / "MR_small.dcm"
    inverted = write_variant(
        source, tmp_path / "mono1.dcm", PhotometricInterpretation="MONOCHROME1"
    )

    normal = np.asarray(load_image(source).image).astype(int)
    flipped = np.asarray(load_image(inverted).image).astype(int)

    assert np.array_equal(flipped, 255 - normal)


def test_invalid_window_falls_back_to_percentile(tmp_path):
    path = write_variant(PYDICOM_FILES / "MR_small.dcm", tmp_path / "zero_width.dcm", WindowWidth=0)
    assert load_image(path).metadata["window"] == "percentile"


def test_multi_frame_takes_middle_frame():
    path = PYDICOM_FILES / "rtdose.dcm"
    assert int(pydicom.dcmread(path).NumberOfFrames) == 15

    loaded = load_image(path)

    assert loaded.metadata["frames"] == 15
    assert loaded.metadata["frame"] == 7
    assert loaded.image.size == (10, 10)
    assert np.array_equal(np.asarray(loaded.image), expected_percentile(path, index=7))


def test_multi_frame_color_ultrasound():
    path = PYDICOM_FILES / "examples_ybr_color.dcm"

    loaded = load_image(path)

    assert loaded.metadata["frames"] == 30
    assert loaded.metadata["frame"] == 15
    assert loaded.metadata["window"] is None
    assert loaded.image.mode == "RGB"
    middle = pixel_array(pydicom.dcmread(path), index=15)
    assert np.array_equal(np.asarray(loaded.image), middle)


def test_palette_color_becomes_rgb():
    loaded = load_image(PYDICOM_FILES / "examples_palette.dcm")
    assert loaded.image.mode == "RGB"
    assert loaded.image.size == (800, 350)


def test_sixteen_bit_rgb_scaled_to_eight_bits():
    path = PYDICOM_FILES / "SC_rgb_rle_16bit.dcm"
    raw = pydicom.dcmread(path).pixel_array

    pixels = np.asarray(load_image(path).image)

    assert pixels.dtype == np.uint8
    assert np.array_equal(pixels, np.rint(raw / 65535.0 * 255.0).astype(np.uint8))


def test_metadata_has_no_patient_tags():
    for name in ("CT_small.dcm", "MR_small.dcm", "examples_overlay.dcm"):
        path = PYDICOM_FILES / name
        dataset = pydicom.dcmread(path)
        identifying = {
            str(dataset.get(keyword))
            for keyword in ("PatientName", "PatientID", "PatientBirthDate", "InstitutionName")
            if dataset.get(keyword)
        }

        metadata = load_image(path).metadata

        assert set(metadata) == METADATA_KEYS
        assert not identifying & {str(value) for value in metadata.values()}


def test_file_without_preamble_read_by_suffix(tmp_path):
    dataset = pydicom.dcmread(PYDICOM_FILES / "MR_small.dcm")
    del dataset.file_meta
    dataset.preamble = None
    path = tmp_path / "raw.dcm"
    pydicom.dcmwrite(path, dataset, implicit_vr=False, little_endian=True)
    assert path.read_bytes()[128:132] != b"DICM"

    loaded = load_image(path)

    reference = load_image(PYDICOM_FILES / "MR_small.dcm")
    assert np.array_equal(np.asarray(loaded.image), np.asarray(reference.image))


def test_marker_detected_without_suffix(tmp_path):
    path = tmp_path / "image.bin"
    path.write_bytes((PYDICOM_FILES / "CT_small.dcm").read_bytes())
    assert load_image(path).format == "DICOM"


# Broken and unsupported DICOM


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("MR_truncated.dcm", "corrupt_image"),
        ("badVR.dcm", "corrupt_image"),
        ("rtplan.dcm", "unsupported_format"),
        ("test-SR.dcm", "unsupported_format"),
        ("MR_small_jpeg_ls_lossless.dcm", "unsupported_format"),
        ("JPGExtended.dcm", "unsupported_format"),
        ("JPEG2000-embedded-sequence-delimiter.dcm", "decompression_bomb"),
    ],
)
def test_problem_files_rejected(name, reason):
    with pytest.raises(ImageError) as caught:
        load_image(PYDICOM_FILES / name)
    assert caught.value.reason == reason
    assert name in str(caught.value)


def test_truncated_copy_is_corrupt(tmp_path):
    data = (PYDICOM_FILES / "CT_small.dcm").read_bytes()
    path = tmp_path / "cut.dcm"
    path.write_bytes(data[: len(data) // 2])

    with pytest.raises(ImageError) as caught:
        load_image(path)
    assert caught.value.reason == "corrupt_image"


def test_text_renamed_dcm(tmp_path):
    path = tmp_path / "report.dcm"
    path.write_text("IMPRESSION: normal study.\n" * 20, encoding="utf-8")

    with pytest.raises(ImageError) as caught:
        load_image(path)
    assert caught.value.reason == "unsupported_format"


def test_dicom_bomb_rejected_before_decoding(tmp_path, monkeypatch):
    path = write_variant(
        PYDICOM_FILES / "CT_small.dcm", tmp_path / "bomb.dcm", Rows=10_000, Columns=10_000
    )

    def fail_decode(*args, **kwargs):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr("corpusforge.generators.imaging.dicom.pixel_array", fail_decode)
    with pytest.raises(ImageError) as caught:
        load_image(path)
    assert caught.value.reason == "decompression_bomb"


# Orientation


@pytest.mark.parametrize(
    ("orientation", "plane"),
    [
        ([1, 0, 0, 0, 1, 0], "axial"),
        ([1, 0, 0, 0, 0, -1], "coronal"),
        ([0, 1, 0, 0, 0, -1], "sagittal"),
        ([1, 0, 0, 0, 0.7071, -0.7071], "oblique"),
        ([1, 0, 0, 0, 0.9998, -0.0175], "axial"),
        (None, None),
        ([1, 0, 0], None),
        (["a", 0, 0, 0, 1, 0], None),
        ([1, 0, 0, 1, 0, 0], None),
    ],
)
def test_plane_from_orientation(orientation, plane):
    assert plane_from_orientation(orientation) == plane


# Embedded files


def test_embedded_files_listed_in_stable_order():
    files = embedded_dicom_files()

    assert [item.name for item in files] == [
        "pydicom_ct_small",
        "pydicom_mr_small",
        "pydicom_ct_head",
        "pydicom_mr_abdomen",
        "pydicom_nm_whole_body",
        "nibabel_mr_dti_0",
        "nibabel_mr_dti_1",
    ]
    assert all(isinstance(item, EmbeddedDicom) for item in files)
    assert files == embedded_dicom_files()
    assert files[0].path.name == "CT_small.dcm"
    assert files[1].path.name == "MR_small.dcm"
    assert [item.path.name for item in files[-2:]] == ["0.dcm", "1.dcm"]
    assert files[-1].path.parent.parts[-3:] == ("nibabel", "tests", "data")


def test_embedded_files_decode_as_single_frames():
    modalities = {}
    for item in embedded_dicom_files():
        loaded = load_image(item.path)
        modalities[item.name] = loaded.metadata["modality"]
        assert loaded.metadata["frames"] == 1
        assert loaded.image.mode == "L"

    assert modalities == {
        "pydicom_ct_small": "CT",
        "pydicom_mr_small": "MR",
        "pydicom_ct_head": "CT",
        "pydicom_mr_abdomen": "MR",
        "pydicom_nm_whole_body": "NM",
        "nibabel_mr_dti_0": "MR",
        "nibabel_mr_dti_1": "MR",
    }


def test_embedded_series_follow_series_uid():
    files = embedded_dicom_files()
    uids = {item.name: str(pydicom.dcmread(item.path).SeriesInstanceUID) for item in files}

    for first in files:
        for second in files:
            same_series = first.series == second.series
            assert same_series == (uids[first.name] == uids[second.name])


def test_nibabel_placeholder_pixels_flagged():
    for item in embedded_dicom_files():
        pixels = pydicom.dcmread(item.path).pixel_array.astype(np.int64)
        ramp = np.arange(pixels.size).reshape(pixels.shape) % 4096
        assert item.placeholder_pixels == bool(np.array_equal(pixels, ramp)), item.name
