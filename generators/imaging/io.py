"""Load medical images safely and encode them as deterministic PNG cells.

`load_image` reads raster files with Pillow and DICOM files with pydicom, and
turns every problem into an `ImageError` whose `reason` a builder can count as a
quarantine reason. `encode_png` and `image_cell` give the Hugging Face Image
layout `{"bytes", "path"}`. `phash` and `hamming` find near-duplicate pictures,
and `safe_join` keeps manifest paths inside their image root.
"""

from __future__ import annotations

import functools
import hashlib
import io
import logging
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

logger = logging.getLogger(__name__)

# Largest accepted width x height. Pillow's own guard raises only above twice its
# MAX_IMAGE_PIXELS (about 179 million pixels), so this lower limit is checked
# from the header before any pixel is decoded.
MAX_IMAGE_PIXELS = 50_000_000

# Two images whose `phash` values differ in at most this many of the 64 bits count
# as the same picture. tests/imaging/test_imaging_phash.py checks that resized JPEG
# copies stay within it (at most 2 bits measured) and that different phantom patients
# stay above it. Real radiographs of one view can come within it: two PA chest films
# of different VQA-RAD patients hash 10 bits apart.
PHASH_DUPLICATE_THRESHOLD = 10

# zlib level of `encode_png`. It is fixed because the level changes the bytes.
PNG_COMPRESS_LEVEL = 6

# Raster formats Pillow may decode. Other Pillow plugins (EPS runs Ghostscript,
# for example) are not offered untrusted files.
RASTER_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP")

REASONS = (
    "missing_image",
    "corrupt_image",
    "decompression_bomb",
    "unsupported_format",
    "path_escapes_root",
)

_FIXES = {
    "missing_image": "check the image path and that the file exists under the image root",
    "corrupt_image": "replace the file with a complete, readable copy",
    "decompression_bomb": (
        f"downscale the image below {MAX_IMAGE_PIXELS:,} pixels (width x height) or drop it"
    ),
    "unsupported_format": (
        f"convert the image to one of {', '.join(RASTER_FORMATS)} or an uncompressed DICOM file"
    ),
    "path_escapes_root": (
        "write the image path relative to the image root, without '..', and without "
        "symbolic links that leave the root"
    ),
}

_DICOM_PREAMBLE_BYTES = 132
# File signatures of RASTER_FORMATS: a file that starts with one but that Pillow
# cannot identify has a damaged header, which is `corrupt_image`.
_SIGNATURES = {
    b"\x89PNG\r\n\x1a\n": "PNG",
    b"\xff\xd8\xff": "JPEG",
    b"GIF87a": "GIF",
    b"GIF89a": "GIF",
    b"BM": "BMP",
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
}
_GRAY_MODES_16BIT = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")
_LOW_PERCENTILE = 1.0
_HIGH_PERCENTILE = 99.0


class ImageError(Exception):
    """An image that cannot be used, with a quarantine `reason` from `REASONS`.

    `path` is the file or manifest path concerned and `detail` describes what failed.
    Builders turn it into `Rejected(reason=error.reason, ...)`.
    """

    def __init__(self, reason: str, path: str | os.PathLike[str], detail: str):
        if reason not in REASONS:
            raise ValueError(f"invalid ImageError reason {reason!r}; valid: {', '.join(REASONS)}")
        self.reason = reason
        self.path = str(path)
        self.detail = detail
        super().__init__(f"{self.path}: {detail} ({reason}). Fix: {_FIXES[reason]}")

    def __reduce__(self):
        # Keep the attributes when the error crosses a process boundary.
        return (self.__class__, (self.reason, self.path, self.detail))


@dataclass
class LoadedImage:
    """A decoded image with its source format and non-identifying metadata.

    `image` is fully loaded, in mode "L" or "RGB". RGB files whose three channels
    are equal everywhere become "L". `metadata` always has `rows` and `columns`.
    DICOM adds `modality`, `body_part`, `plane` (axial, coronal, sagittal, oblique
    or None, from ImageOrientationPatient), `frames`, `frame` (the 0-based frame
    used) and `window` ("file", "percentile" or None for color). Patient tags
    are never copied.
    """

    image: Image.Image
    format: str
    metadata: dict[str, Any] = field(default_factory=dict)


def load_image(path: Path) -> LoadedImage:
    """Decode one raster or DICOM file into an 8-bit "L" or "RGB" image.

    DICOM is detected by the `DICM` marker at byte 128 or a `.dcm` suffix. Raster
    files follow their EXIF orientation. Raise `ImageError` with reason
    `missing_image`, `corrupt_image`, `decompression_bomb` or `unsupported_format`.
    """
    path = Path(path)
    if not path.exists():
        raise ImageError("missing_image", path, "image file not found")
    if not path.is_file():
        raise ImageError("missing_image", path, "is not a regular file")
    try:
        with path.open("rb") as handle:
            head = handle.read(_DICOM_PREAMBLE_BYTES)
    except OSError as error:
        raise ImageError("missing_image", path, f"cannot be opened: {error.strerror}") from error
    if not head:
        raise ImageError("corrupt_image", path, "file is empty")

    has_marker = head[128:132] == b"DICM"
    if has_marker or path.suffix.lower() == ".dcm":
        from corpusforge.generators.imaging import dicom

        return dicom.load_dicom(path, has_marker)
    return _load_raster(path, head)


def _signature_format(head: bytes) -> str | None:
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    for signature, name in _SIGNATURES.items():
        if head.startswith(signature):
            return name
    return None


def _load_raster(path: Path, head: bytes) -> LoadedImage:
    try:
        source = Image.open(path, formats=RASTER_FORMATS)
    except UnidentifiedImageError as error:
        claimed = _signature_format(head)
        if claimed is not None:
            raise ImageError(
                "corrupt_image", path, f"starts like a {claimed} file but its header is invalid"
            ) from error
        raise ImageError(
            "unsupported_format", path, "not an image in a supported raster format"
        ) from error
    except Image.DecompressionBombError as error:
        raise ImageError("decompression_bomb", path, str(error)) from error
    except (OSError, SyntaxError, ValueError, struct.error) as error:
        raise ImageError("corrupt_image", path, f"invalid image header: {error}") from error

    with source:
        image_format = source.format or "unknown"
        width, height = source.size
        check_pixel_count(path, width, height)
        try:
            # NOTE: libjpeg conceals damaged JPEG scan data (flipped bytes inside the
            # file) and Pillow raises nothing, so only truncation is caught for JPEG.
            source.load()
        except Image.DecompressionBombError as error:
            raise ImageError("decompression_bomb", path, str(error)) from error
        except (OSError, SyntaxError, ValueError, EOFError, struct.error) as error:
            raise ImageError(
                "corrupt_image", path, f"pixel data cannot be decoded: {error}"
            ) from error
        image = _apply_exif_orientation(source, path)
        image = to_gray_or_rgb(image)
    # Drop EXIF, ICC and text metadata, so no caller can write them out by accident.
    image.info.clear()

    metadata = {"rows": image.height, "columns": image.width}
    return LoadedImage(image=image, format=image_format, metadata=metadata)


def check_pixel_count(path: str | os.PathLike[str], width: int, height: int) -> None:
    """Raise ImageError `decompression_bomb` when width x height exceeds MAX_IMAGE_PIXELS.

    A zero or negative side raises `corrupt_image`.
    """
    if width <= 0 or height <= 0:
        raise ImageError("corrupt_image", path, f"invalid image size {width}x{height}")
    if width * height > MAX_IMAGE_PIXELS:
        raise ImageError(
            "decompression_bomb",
            path,
            f"image size {width}x{height} is {width * height:,} pixels, above the limit of "
            f"{MAX_IMAGE_PIXELS:,}",
        )


def _apply_exif_orientation(image: Image.Image, path: Path) -> Image.Image:
    try:
        rotated = ImageOps.exif_transpose(image)
    except (OSError, SyntaxError, ValueError, KeyError, TypeError, struct.error) as error:
        # Broken EXIF blocks do not affect the pixels, so the image is kept as stored.
        logger.debug("ignoring unreadable EXIF orientation of %s: %s", path, error)
        return image
    return rotated if rotated is not None else image


def to_gray_or_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit "L" or "RGB", dropping alpha.

    RGB images whose channels are equal everywhere become "L", which loses
    nothing. 16-bit, 32-bit and float grayscale use the 1st-99th percentile window.
    """
    mode = image.mode
    if mode == "L":
        return image.copy()
    if mode in ("1", "LA", "La"):
        return image.convert("L")
    if mode in _GRAY_MODES_16BIT:
        values = np.asarray(image, dtype=np.float64)
        return Image.fromarray(percentile_window(values), mode="L")
    if mode in ("P", "PA"):
        image = image.convert("RGBA")
    rgb = image.convert("RGB")
    return collapse_gray(rgb)


def collapse_gray(image: Image.Image) -> Image.Image:
    """Return an RGB image as "L" when its three channels are equal everywhere."""
    if image.mode != "RGB":
        return image
    pixels = np.asarray(image)
    red, green, blue = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    if np.array_equal(red, green) and np.array_equal(green, blue):
        return Image.fromarray(np.ascontiguousarray(red), mode="L")
    return image


def percentile_window(values: np.ndarray) -> np.ndarray:
    """Map values linearly to uint8 so the 1st percentile is 0 and the 99th is 255.

    When those percentiles are equal the minimum and maximum are used; a constant
    image becomes all zeros.
    """
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return np.zeros(values.shape, dtype=np.uint8)
    low, high = np.percentile(finite, [_LOW_PERCENTILE, _HIGH_PERCENTILE])
    if high <= low:
        low, high = float(finite.min()), float(finite.max())
    if high <= low:
        return np.zeros(values.shape, dtype=np.uint8)
    scaled = (np.nan_to_num(values, nan=low, posinf=high, neginf=low) - low) / (high - low)
    return np.rint(np.clip(scaled, 0.0, 1.0) * 255.0).astype(np.uint8)


def encode_png(image: Image.Image) -> bytes:
    """Encode pixels as PNG without metadata, so the same pixels give the same bytes.

    The image is rebuilt from its raw pixels, which drops EXIF, text chunks, ICC
    profiles, DPI and transparency. Modes other than "L" and "RGB" are converted
    first, as `load_image` does.
    """
    normalized = to_gray_or_rgb(image) if image.mode not in ("L", "RGB") else image
    bare = Image.frombytes(normalized.mode, normalized.size, normalized.tobytes())
    buffer = io.BytesIO()
    # NOTE: identical bytes need the same zlib build. Pillow wheels bundle their own
    # (zlib-ng in Pillow 13), so the Pillow version is part of the determinism guarantee.
    bare.save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL, optimize=False)
    return buffer.getvalue()


def content_hash(data: bytes) -> str:
    """Return the sha256 hex digest of `data`."""
    return hashlib.sha256(data).hexdigest()


def image_cell(png: bytes, path: str) -> dict[str, Any]:
    """Return the Hugging Face Image cell `{"bytes": png, "path": path}`.

    `path` must be relative and free of `..`, for example `images/<hash16>.png`.
    """
    if not _is_relative_cell_path(path):
        raise ValueError(
            f"image cell path {path!r} must be a relative path without '..', "
            "for example 'images/0123456789abcdef.png'"
        )
    return {"bytes": png, "path": path}


# A release names each image in many rows (a Med-MIM shard makes about 100,000
# cells from under 2,000 paths), and parsing a path costs more than the cell.
@functools.lru_cache(maxsize=4096)
def _is_relative_cell_path(path: str) -> bool:
    pure = PurePosixPath(path)
    return bool(path) and not (
        pure.is_absolute() or PureWindowsPath(path).is_absolute() or ".." in pure.parts
    )


def _dct_matrix(size: int) -> np.ndarray:
    """Return the orthonormal DCT-II matrix, so `M @ x` transforms the columns of x."""
    k = np.arange(size, dtype=np.float64)[:, None]
    n = np.arange(size, dtype=np.float64)[None, :]
    matrix = np.cos(np.pi * (2.0 * n + 1.0) * k / (2.0 * size)) * np.sqrt(2.0 / size)
    matrix[0, :] = np.sqrt(1.0 / size)
    return matrix


_PHASH_SIZE = 32
_PHASH_BLOCK = 8
_DCT_32 = _dct_matrix(_PHASH_SIZE)


def phash(image: Image.Image) -> int:
    """Return the 64-bit DCT perceptual hash of an image.

    The image is converted to grayscale and resized to 32x32 (Lanczos), then a
    2-D DCT-II is taken. The 8x8 lowest frequencies after the DC row and column
    (coefficients 1..8 on both axes, as in the pHash library) give one bit each:
    1 when the coefficient is above their median, so a flat image hashes to 0.
    The first coefficient is the most significant bit.
    """
    gray = image.convert("L").resize((_PHASH_SIZE, _PHASH_SIZE), Image.Resampling.LANCZOS)
    pixels = np.asarray(gray, dtype=np.float64)
    coefficients = _DCT_32 @ pixels @ _DCT_32.T
    block = coefficients[1 : _PHASH_BLOCK + 1, 1 : _PHASH_BLOCK + 1].ravel()
    # Rounding removes floating-point noise, which would otherwise decide the bits
    # of a flat image (all coefficients 0) and of exact ties.
    block = np.round(block, 6)
    median = np.median(block)
    value = 0
    for bit in block > median:
        value = (value << 1) | int(bit)
    return value


def hamming(a: int, b: int) -> int:
    """Return the number of differing bits between two hashes."""
    return (a ^ b).bit_count()


def safe_join(root: Path, relative: str) -> Path:
    """Resolve a manifest image path inside `root` and return the real path.

    Symbolic links are followed; `a/../b.png` is accepted while it stays inside.
    Raise ImageError `path_escapes_root` for absolute paths (POSIX or Windows),
    `..` escapes and links that leave `root`, and `missing_image` for an empty
    path or one containing a NUL character. The file itself need not exist.
    """
    text = str(relative)
    if not text.strip():
        raise ImageError("missing_image", text, "the image path is empty")
    if "\x00" in text:
        raise ImageError("missing_image", repr(text), "the image path contains a NUL character")
    windows = PureWindowsPath(text)
    if PurePosixPath(text).is_absolute() or windows.is_absolute() or windows.drive:
        raise ImageError("path_escapes_root", text, "the image path is absolute")

    real_root = Path(root).resolve()
    candidate = (real_root / text).resolve()
    if not candidate.is_relative_to(real_root):
        raise ImageError(
            "path_escapes_root", text, f"the image path resolves outside the image root {real_root}"
        )
    return candidate
