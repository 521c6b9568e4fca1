"""Real DICOM images shipped inside the installed pydicom and nibabel wheels.

They give every machine a few real medical images without a download. The
list is fixed for pydicom 3.0.2 and nibabel 5.4.2 (the versions pinned in
pyproject.toml); each entry was opened and checked to decode with `load_image`.

Chosen from pydicom's `data/test_files` (see its README.txt for provenance):
distinct single-frame images that decode with Pillow alone. Left out are
re-encodings of the same picture (MR_small_*), test patterns (image_dfl),
ultrasound frames with burned-in hospital text (examples_rgb_color,
examples_palette), a heavily compressed head CT (693_J2KI), segmentations,
dose grids and files that need pylibjpeg or GDCM.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib import metadata, resources
from pathlib import Path

logger = logging.getLogger(__name__)

EXPECTED_VERSIONS = {"pydicom": "3.0.2", "nibabel": "5.4.2"}


@dataclass
class EmbeddedDicom:
    """One DICOM file inside an installed package.

    `name` is a stable snake_case id. `series` is shared by files of one
    SeriesInstanceUID. `placeholder_pixels` is True when the package replaced
    the original pixel data with a synthetic pattern, so the header is real but
    the picture shows no anatomy.
    """

    path: Path
    name: str
    series: str
    placeholder_pixels: bool = False


# (package, path inside the package, name, series, placeholder_pixels)
_FILES = (
    # Axial chest CT at the level of a thoracic vertebra, 128x128; no window tags.
    ("pydicom", "data/test_files/CT_small.dcm", "pydicom_ct_small", "pydicom_ct_small", False),
    # Axial MR crop, 64x64, with a window.
    ("pydicom", "data/test_files/MR_small.dcm", "pydicom_mr_small", "pydicom_mr_small", False),
    # Axial head CT, 512x512, JPEG 2000 lossless.
    (
        "pydicom",
        "data/test_files/J2K_pixelrep_mismatch.dcm",
        "pydicom_ct_head",
        "pydicom_ct_head",
        False,
    ),
    # Axial abdominal MR, 484x300, two windows (the first is used).
    (
        "pydicom",
        "data/test_files/examples_overlay.dcm",
        "pydicom_mr_abdomen",
        "pydicom_mr_abdomen",
        False,
    ),
    # Whole-body nuclear medicine image, 256x1024, JPEG 2000; no window tags.
    ("pydicom", "data/test_files/JPEG2000.dcm", "pydicom_nm_whole_body", "pydicom_nm", False),
    # Two instances of one Siemens diffusion MR series. nibabel replaced their pixel
    # data with the ramp (row * 256 + column) mod 4096, identical in both files.
    ("nibabel", "tests/data/0.dcm", "nibabel_mr_dti_0", "nibabel_mr_dti", True),
    ("nibabel", "tests/data/1.dcm", "nibabel_mr_dti_1", "nibabel_mr_dti", True),
)


def embedded_dicom_files() -> list[EmbeddedDicom]:
    """Return the embedded DICOM files in a fixed order, located in the installed packages.

    Raise FileNotFoundError when a file is missing, which happens with package
    versions other than those in EXPECTED_VERSIONS; a shorter list would change
    the published data silently.
    """
    _warn_on_other_versions()
    files = []
    for package, relative, name, series, placeholder in _FILES:
        path = Path(str(resources.files(package).joinpath(relative)))
        if not path.is_file():
            raise FileNotFoundError(
                f"embedded DICOM file {relative} not found in the installed {package} "
                f"{_installed_version(package)} at {path}; install {package}=="
                f"{EXPECTED_VERSIONS[package]} as pinned in pyproject.toml"
            )
        files.append(
            EmbeddedDicom(path=path, name=name, series=series, placeholder_pixels=placeholder)
        )
    return files


def _installed_version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "(not installed)"


def _warn_on_other_versions() -> None:
    for package, expected in EXPECTED_VERSIONS.items():
        installed = _installed_version(package)
        if installed != expected:
            logger.warning(
                "%s %s is installed, but the embedded DICOM list was checked against %s",
                package,
                installed,
                expected,
            )
