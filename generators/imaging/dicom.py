"""Decode one DICOM image to 8 bits with its VOI window, for `io.load_image`.

Grayscale pixels go through the Modality LUT (RescaleSlope and RescaleIntercept)
and then the file's first WindowCenter/WindowWidth pair, using the linear VOI
function of DICOM PS3.3 C.11.2.1.2.1. Files without a usable window get the
1st-99th percentile window. MONOCHROME1 is inverted so that 255 is always white.
Multi-frame files give their middle frame, and only that frame is decoded.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from PIL import Image
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.pixels import apply_color_lut, apply_modality_lut, get_decoder, pixel_array

from corpusforge.generators.imaging.io import (
    ImageError,
    LoadedImage,
    check_pixel_count,
    collapse_gray,
    percentile_window,
)

logger = logging.getLogger(__name__)

# Pixel Data elements larger than this are read only when decoding starts, so a
# file rejected from its header costs no pixel reads.
_DEFER_SIZE = "256 KB"

# An image plane is axial, coronal or sagittal when the largest component of its
# unit normal is at least this. A smaller component (a tilt above about 37 degrees)
# makes the plane oblique.
_PLANE_MIN_COMPONENT = 0.8
_PLANES_BY_AXIS = ("sagittal", "coronal", "axial")


def load_dicom(path: Path, has_marker: bool) -> LoadedImage:
    """Decode a DICOM file. `has_marker` is True when the file has the `DICM` marker."""
    dataset = _read_dataset(path, has_marker)

    if "PixelData" not in dataset:
        sop_class = getattr(dataset.get("SOPClassUID"), "name", None) or "unknown SOP class"
        raise ImageError("unsupported_format", path, f"DICOM file has no pixel data ({sop_class})")

    rows, columns, frames = _image_shape(dataset, path)
    check_pixel_count(path, columns, rows)
    _check_decoder(dataset, path)

    frame = frames // 2
    try:
        pixels = pixel_array(dataset, index=frame if frames > 1 else None)
    except RuntimeError as error:
        raise ImageError(
            _decoder_failure_reason(str(error)),
            path,
            f"DICOM pixel data cannot be decoded: {error}",
        ) from error
    except (ValueError, AttributeError, KeyError, TypeError, EOFError) as error:
        raise ImageError(
            "corrupt_image", path, f"DICOM pixel data cannot be decoded: {error}"
        ) from error

    photometric = str(dataset.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    try:
        image, window = _to_image(pixels, dataset, photometric)
    except (ValueError, AttributeError, KeyError, TypeError, IndexError) as error:
        raise ImageError(
            "corrupt_image", path, f"DICOM pixel values cannot be converted: {error}"
        ) from error

    metadata: dict[str, Any] = {
        "rows": rows,
        "columns": columns,
        "modality": _text_tag(dataset, "Modality"),
        "body_part": _text_tag(dataset, "BodyPartExamined"),
        "plane": plane_from_orientation(dataset.get("ImageOrientationPatient")),
        "frames": frames,
        "frame": frame,
        "window": window,
    }
    return LoadedImage(image=image, format="DICOM", metadata=metadata)


def _read_dataset(path: Path, has_marker: bool) -> pydicom.Dataset:
    try:
        # Files named .dcm without the preamble (no File Meta Information) are
        # still DICOM data sets; `force` reads them, and garbage fails below.
        dataset = pydicom.dcmread(path, force=not has_marker, defer_size=_DEFER_SIZE)
    except InvalidDicomError as error:
        raise ImageError("unsupported_format", path, f"not a DICOM file: {error}") from error
    except (OSError, EOFError, ValueError, KeyError, TypeError, AttributeError) as error:
        reason = "corrupt_image" if has_marker else "unsupported_format"
        raise ImageError(reason, path, f"DICOM header cannot be read: {error}") from error
    _set_missing_transfer_syntax(dataset)
    return dataset


def _set_missing_transfer_syntax(dataset: pydicom.Dataset) -> None:
    """Give a data set without File Meta Information the syntax it was read with.

    Only the three uncompressed syntaxes can be inferred from the encoding, so
    compressed pixel data without a Transfer Syntax UID stays undecodable.
    """
    if "TransferSyntaxUID" in dataset.file_meta:
        return
    implicit, little_endian = dataset.original_encoding
    if implicit is None or little_endian is None:
        return
    if not little_endian:
        dataset.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRBigEndian
    elif implicit:
        dataset.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
    else:
        dataset.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian


def _image_shape(dataset: pydicom.Dataset, path: Path) -> tuple[int, int, int]:
    try:
        rows = int(dataset.Rows)
        columns = int(dataset.Columns)
        frames = int(dataset.get("NumberOfFrames") or 1)
    except (AttributeError, ValueError, TypeError) as error:
        raise ImageError(
            "corrupt_image", path, f"invalid Rows, Columns or NumberOfFrames: {error}"
        ) from error
    if frames < 1:
        raise ImageError("corrupt_image", path, f"invalid NumberOfFrames {frames}")
    return rows, columns, frames


def _check_decoder(dataset: pydicom.Dataset, path: Path) -> None:
    syntax = getattr(dataset.get("file_meta"), "TransferSyntaxUID", None)
    if syntax is None:
        return
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError as error:
        raise ImageError(
            "unsupported_format", path, f"no decoder for transfer syntax {syntax.name}"
        ) from error
    if not decoder.is_available:
        raise ImageError(
            "unsupported_format",
            path,
            f"transfer syntax {syntax.name} needs a decoder that is not installed "
            f"({'; '.join(decoder.missing_dependencies)})",
        )


def _decoder_failure_reason(message: str) -> str:
    """Classify pydicom's "all plugins failed" RuntimeError by the plugin's message.

    NOTE: this matches the wording of pydicom 3.0.2 and Pillow 13 (for example
    "Pillow does not support 'JPEG Extended' for samples with 12-bit precision");
    other wording falls back to `corrupt_image`.
    """
    lowered = message.lower()
    if "decompression bomb" in lowered:
        return "decompression_bomb"
    if "does not support" in lowered or "unsupported" in lowered:
        return "unsupported_format"
    return "corrupt_image"


def _to_image(
    pixels: np.ndarray, dataset: pydicom.Dataset, photometric: str
) -> tuple[Image.Image, str | None]:
    if photometric == "PALETTE COLOR":
        pixels = apply_color_lut(pixels, dataset)
        return _rgb_image(pixels, 16 if pixels.dtype.itemsize > 1 else 8), None
    if pixels.ndim == 3:
        bits = int(dataset.get("BitsStored") or pixels.dtype.itemsize * 8)
        return _rgb_image(pixels, bits), None

    values = np.asarray(apply_modality_lut(pixels, dataset), dtype=np.float64)
    window = _first_window(dataset)
    if window is None:
        gray = percentile_window(values)
        source = "percentile"
    else:
        gray = linear_window(values, *window)
        source = "file"
    if photometric == "MONOCHROME1":
        gray = 255 - gray
    return Image.fromarray(gray, mode="L"), source


def _rgb_image(pixels: np.ndarray, bits: int) -> Image.Image:
    if pixels.dtype != np.uint8:
        maximum = float(2**bits - 1)
        scaled = np.clip(pixels.astype(np.float64) / maximum, 0.0, 1.0) * 255.0
        pixels = np.rint(scaled).astype(np.uint8)
    return collapse_gray(Image.fromarray(np.ascontiguousarray(pixels), mode="RGB"))


def _first_window(dataset: pydicom.Dataset) -> tuple[float, float] | None:
    """Return the first (center, width) pair, or None when absent or width < 1."""
    center = dataset.get("WindowCenter")
    width = dataset.get("WindowWidth")
    if center is None or width is None:
        return None
    try:
        center_value = float(center[0] if isinstance(center, MultiValue) else center)
        width_value = float(width[0] if isinstance(width, MultiValue) else width)
    except (TypeError, ValueError, IndexError):
        return None
    if not np.isfinite(center_value) or not np.isfinite(width_value) or width_value < 1:
        return None
    return center_value, width_value


def linear_window(values: np.ndarray, center: float, width: float) -> np.ndarray:
    """Apply the DICOM LINEAR VOI function (PS3.3 C.11.2.1.2.1) with output 0..255."""
    if width <= 1:
        return np.where(values > center - 0.5, 255, 0).astype(np.uint8)
    scaled = (values - (center - 0.5)) / (width - 1) + 0.5
    return np.rint(np.clip(scaled, 0.0, 1.0) * 255.0).astype(np.uint8)


def plane_from_orientation(orientation: Any) -> str | None:
    """Name the patient plane of ImageOrientationPatient (row and column cosines).

    The normal's largest component picks sagittal (x), coronal (y) or axial (z);
    a tilt that leaves no component of at least 0.8 is "oblique". Return None
    when the tag is missing or invalid.
    """
    if orientation is None:
        return None
    try:
        cosines = np.asarray([float(value) for value in orientation], dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if cosines.shape != (6,) or not np.all(np.isfinite(cosines)):
        return None
    normal = np.cross(cosines[:3], cosines[3:])
    length = float(np.linalg.norm(normal))
    if length == 0.0:
        return None
    components = np.abs(normal) / length
    axis = int(np.argmax(components))
    if components[axis] < _PLANE_MIN_COMPONENT:
        return "oblique"
    return _PLANES_BY_AXIS[axis]


def _text_tag(dataset: pydicom.Dataset, keyword: str) -> str | None:
    value = dataset.get(keyword)
    if value is None:
        return None
    text = str(value).strip()
    return text or None
