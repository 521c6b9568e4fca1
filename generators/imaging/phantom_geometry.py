"""Shapes and tissue intensities of the procedural phantoms in `phantom.py`.

Coordinates are millimetres in the body frame of a nominal patient, with the
origin at the body's center, x to the image's right and y downwards. Images
follow the radiological convention: the patient's left is on the image's right
(positive x) in frontal, coronal and axial images. Axial images put anterior at
the top; sagittal images put anterior on the left and superior at the top.
"""

from __future__ import annotations

from dataclasses import dataclass

MODALITIES = ("xray", "ct", "mri")
REGIONS = ("chest", "head", "abdomen")
PLANES = ("frontal", "axial", "sagittal", "coronal")
SIDES = ("left", "right")

# Square field of view of the whole image, in millimetres, per region.
FIELD_OF_VIEW_MM = {"chest": 420.0, "head": 230.0, "abdomen": 420.0}

# Lesion radius range in millimetres, per region.
LESION_RADIUS_MM = {"chest": (4.0, 15.0), "head": (4.0, 12.0), "abdomen": (5.0, 18.0)}


@dataclass(frozen=True)
class Ellipse:
    """One filled ellipse of a tissue; `angle` turns it clockwise on screen, in degrees."""

    tissue: str
    cx: float
    cy: float
    rx: float
    ry: float
    angle: float = 0.0


@dataclass(frozen=True)
class Geometry:
    """The shapes of one (region, plane), painted in order, and the lesion fields.

    `fields` maps a patient side to the ellipse that contains the lesions of that
    side. In sagittal geometries both sides map to the one organ the slice cuts.
    `body` is the outline that the texture is confined to.
    """

    body: Ellipse
    shapes: tuple[Ellipse, ...]
    fields: dict[str, Ellipse]


def _pair(tissue: str, x: float, y: float, rx: float, ry: float, angle: float = 0.0):
    """Return mirrored ellipses: the patient's right (image left) first, then the left."""
    return (Ellipse(tissue, -x, y, rx, ry, -angle), Ellipse(tissue, x, y, rx, ry, angle))


def _fields(right: Ellipse, left: Ellipse) -> dict[str, Ellipse]:
    return {"right": right, "left": left}


_CHEST_TORSO = Ellipse("body", 0.0, 20.0, 165.0, 215.0)
_CHEST_LUNG_RIGHT = Ellipse("lung", -75.0, -10.0, 58.0, 120.0)
_CHEST_LUNG_LEFT = Ellipse("lung", 75.0, -5.0, 55.0, 115.0)
_CHEST_FRONTAL = Geometry(
    body=_CHEST_TORSO,
    shapes=(
        _CHEST_TORSO,
        _CHEST_LUNG_RIGHT,
        _CHEST_LUNG_LEFT,
        Ellipse("mediastinum", 0.0, -60.0, 26.0, 95.0),
        Ellipse("bone", 0.0, 0.0, 13.0, 205.0),
        Ellipse("heart", 25.0, 62.0, 62.0, 55.0),
        *_pair("bone", 65.0, -140.0, 52.0, 8.0, -6.0),
    ),
    fields=_fields(_CHEST_LUNG_RIGHT, _CHEST_LUNG_LEFT),
)
_CHEST_CORONAL = Geometry(
    body=_CHEST_TORSO,
    shapes=(
        _CHEST_TORSO,
        _CHEST_LUNG_RIGHT,
        _CHEST_LUNG_LEFT,
        Ellipse("mediastinum", 0.0, -60.0, 26.0, 95.0),
        Ellipse("heart", 25.0, 62.0, 62.0, 55.0),
        Ellipse("vessel", 8.0, -40.0, 11.0, 45.0),
    ),
    fields=_fields(_CHEST_LUNG_RIGHT, _CHEST_LUNG_LEFT),
)
_CHEST_AXIAL_BODY = Ellipse("fat", 0.0, 0.0, 165.0, 115.0)
_CHEST_AXIAL_LUNG_RIGHT = Ellipse("lung", -70.0, -5.0, 55.0, 75.0)
_CHEST_AXIAL_LUNG_LEFT = Ellipse("lung", 70.0, -5.0, 52.0, 72.0)
_CHEST_AXIAL = Geometry(
    body=_CHEST_AXIAL_BODY,
    shapes=(
        _CHEST_AXIAL_BODY,
        Ellipse("body", 0.0, 0.0, 153.0, 104.0),
        _CHEST_AXIAL_LUNG_RIGHT,
        _CHEST_AXIAL_LUNG_LEFT,
        Ellipse("heart", 20.0, -25.0, 50.0, 42.0),
        Ellipse("vessel", 18.0, 45.0, 12.0, 12.0),
        Ellipse("bone", 0.0, 70.0, 18.0, 18.0),
        Ellipse("csf", 0.0, 90.0, 7.0, 7.0),
        Ellipse("bone", 0.0, -96.0, 11.0, 6.0),
    ),
    fields=_fields(_CHEST_AXIAL_LUNG_RIGHT, _CHEST_AXIAL_LUNG_LEFT),
)
_CHEST_SAGITTAL_BODY = Ellipse("body", 0.0, 10.0, 115.0, 200.0)
_CHEST_SAGITTAL_LUNG = Ellipse("lung", 10.0, -10.0, 65.0, 120.0)
_CHEST_SAGITTAL = Geometry(
    body=_CHEST_SAGITTAL_BODY,
    shapes=(
        _CHEST_SAGITTAL_BODY,
        _CHEST_SAGITTAL_LUNG,
        Ellipse("heart", -30.0, 62.0, 45.0, 50.0),
        Ellipse("bone", 80.0, 0.0, 14.0, 150.0),
    ),
    fields=_fields(_CHEST_SAGITTAL_LUNG, _CHEST_SAGITTAL_LUNG),
)

_HEAD_AXIAL_HEMISPHERES = _pair("brain", 35.0, 0.0, 28.0, 65.0)
_HEAD_AXIAL = Geometry(
    body=Ellipse("fat", 0.0, 0.0, 80.0, 100.0),
    shapes=(
        Ellipse("fat", 0.0, 0.0, 80.0, 100.0),
        Ellipse("bone", 0.0, 0.0, 75.0, 95.0),
        Ellipse("brain", 0.0, 0.0, 68.0, 88.0),
        *_pair("csf", 10.0, -5.0, 6.0, 25.0, 8.0),
        Ellipse("csf", 0.0, 0.0, 1.5, 80.0),
    ),
    fields=_fields(*_HEAD_AXIAL_HEMISPHERES),
)
_HEAD_CORONAL_HEMISPHERES = _pair("brain", 35.0, -10.0, 28.0, 45.0)
_HEAD_CORONAL = Geometry(
    body=Ellipse("fat", 0.0, 0.0, 80.0, 85.0),
    shapes=(
        Ellipse("fat", 0.0, 0.0, 80.0, 85.0),
        Ellipse("bone", 0.0, 0.0, 75.0, 80.0),
        Ellipse("brain", 0.0, 0.0, 68.0, 72.0),
        *_pair("csf", 10.0, -10.0, 6.0, 18.0, -10.0),
        Ellipse("brain", 0.0, 60.0, 14.0, 22.0),
    ),
    fields=_fields(*_HEAD_CORONAL_HEMISPHERES),
)
_HEAD_FRONTAL_HEMISPHERES = _pair("brain", 35.0, -25.0, 28.0, 35.0)
_HEAD_FRONTAL = Geometry(
    body=Ellipse("fat", 0.0, 0.0, 82.0, 105.0),
    shapes=(
        Ellipse("fat", 0.0, 0.0, 82.0, 105.0),
        Ellipse("bone", 0.0, -10.0, 77.0, 85.0),
        Ellipse("brain", 0.0, -14.0, 68.0, 75.0),
        *_pair("orbit", 30.0, 22.0, 17.0, 13.0),
        Ellipse("gas", 0.0, 42.0, 9.0, 14.0),
        Ellipse("bone", 0.0, 82.0, 55.0, 20.0),
    ),
    fields=_fields(*_HEAD_FRONTAL_HEMISPHERES),
)
_HEAD_SAGITTAL_FIELD = Ellipse("brain", 0.0, -20.0, 55.0, 40.0)
_HEAD_SAGITTAL = Geometry(
    body=Ellipse("fat", 0.0, 0.0, 100.0, 82.0),
    shapes=(
        Ellipse("fat", 0.0, 0.0, 100.0, 82.0),
        Ellipse("bone", 0.0, 0.0, 95.0, 77.0),
        Ellipse("brain", 0.0, -5.0, 88.0, 68.0),
        Ellipse("brain", 50.0, 42.0, 28.0, 18.0),
        Ellipse("brain", 22.0, 55.0, 10.0, 26.0),
        Ellipse("csf", 0.0, -5.0, 35.0, 7.0),
    ),
    fields=_fields(_HEAD_SAGITTAL_FIELD, _HEAD_SAGITTAL_FIELD),
)

_ABDOMEN_AXIAL_BODY = Ellipse("fat", 0.0, 0.0, 160.0, 115.0)
_ABDOMEN_AXIAL_LIVER = Ellipse("liver", -70.0, -10.0, 65.0, 60.0)
_ABDOMEN_AXIAL_SPLEEN = Ellipse("spleen", 92.0, 20.0, 28.0, 40.0, -20.0)
_ABDOMEN_AXIAL = Geometry(
    body=_ABDOMEN_AXIAL_BODY,
    shapes=(
        _ABDOMEN_AXIAL_BODY,
        Ellipse("body", 0.0, 0.0, 148.0, 104.0),
        _ABDOMEN_AXIAL_LIVER,
        _ABDOMEN_AXIAL_SPLEEN,
        *_pair("kidney", 55.0, 55.0, 22.0, 30.0, -25.0),
        Ellipse("bone", 0.0, 72.0, 18.0, 18.0),
        Ellipse("vessel", 10.0, 45.0, 10.0, 10.0),
        Ellipse("gas", 25.0, -45.0, 16.0, 10.0),
    ),
    fields=_fields(_ABDOMEN_AXIAL_LIVER, _ABDOMEN_AXIAL_SPLEEN),
)
_ABDOMEN_CORONAL_BODY = Ellipse("body", 0.0, 0.0, 160.0, 205.0)
_ABDOMEN_CORONAL_LIVER = Ellipse("liver", -65.0, -110.0, 80.0, 55.0, 10.0)
_ABDOMEN_CORONAL_SPLEEN = Ellipse("spleen", 90.0, -105.0, 30.0, 45.0)
_ABDOMEN_CORONAL = Geometry(
    body=_ABDOMEN_CORONAL_BODY,
    shapes=(
        _ABDOMEN_CORONAL_BODY,
        _ABDOMEN_CORONAL_LIVER,
        _ABDOMEN_CORONAL_SPLEEN,
        *_pair("kidney", 60.0, -15.0, 25.0, 45.0, -10.0),
        Ellipse("bone", 0.0, 0.0, 14.0, 190.0),
        *_pair("bone", 85.0, 155.0, 55.0, 28.0, -20.0),
        Ellipse("gas", -30.0, 60.0, 18.0, 12.0),
        Ellipse("gas", 40.0, 85.0, 14.0, 10.0),
    ),
    fields=_fields(_ABDOMEN_CORONAL_LIVER, _ABDOMEN_CORONAL_SPLEEN),
)
_ABDOMEN_SAGITTAL_BODY = Ellipse("body", 0.0, 0.0, 110.0, 205.0)
_ABDOMEN_SAGITTAL_LIVER = Ellipse("liver", -20.0, -120.0, 70.0, 55.0)
_ABDOMEN_SAGITTAL = Geometry(
    body=_ABDOMEN_SAGITTAL_BODY,
    shapes=(
        _ABDOMEN_SAGITTAL_BODY,
        _ABDOMEN_SAGITTAL_LIVER,
        Ellipse("kidney", 45.0, -20.0, 25.0, 45.0),
        Ellipse("bone", 78.0, 0.0, 14.0, 150.0),
        Ellipse("gas", -40.0, 50.0, 18.0, 12.0),
    ),
    fields=_fields(_ABDOMEN_SAGITTAL_LIVER, _ABDOMEN_SAGITTAL_LIVER),
)

GEOMETRIES: dict[tuple[str, str], Geometry] = {
    ("chest", "frontal"): _CHEST_FRONTAL,
    ("chest", "coronal"): _CHEST_CORONAL,
    ("chest", "axial"): _CHEST_AXIAL,
    ("chest", "sagittal"): _CHEST_SAGITTAL,
    ("head", "frontal"): _HEAD_FRONTAL,
    ("head", "coronal"): _HEAD_CORONAL,
    ("head", "axial"): _HEAD_AXIAL,
    ("head", "sagittal"): _HEAD_SAGITTAL,
    ("abdomen", "frontal"): _ABDOMEN_CORONAL,
    ("abdomen", "coronal"): _ABDOMEN_CORONAL,
    ("abdomen", "axial"): _ABDOMEN_AXIAL,
    ("abdomen", "sagittal"): _ABDOMEN_SAGITTAL,
}

# Gray level of each tissue (0 black, 1 white) before texture and intensity scale.
# X-ray is a projection (dense is bright), CT follows attenuation in a soft-tissue
# window, and MRI is T2-weighted (fluid and fat bright, cortical bone dark).
TISSUE_LEVELS: dict[str, dict[str, float]] = {
    "xray": {
        "air": 0.02, "fat": 0.36, "body": 0.42, "lung": 0.16, "mediastinum": 0.55,
        "heart": 0.62, "vessel": 0.5, "bone": 0.85, "brain": 0.5, "csf": 0.5, "orbit": 0.3,
        "gas": 0.2, "liver": 0.5, "spleen": 0.5, "kidney": 0.47,
    },
    "ct": {
        "air": 0.0, "fat": 0.3, "body": 0.45, "lung": 0.05, "mediastinum": 0.42,
        "heart": 0.5, "vessel": 0.62, "bone": 0.95, "brain": 0.48, "csf": 0.2, "orbit": 0.3,
        "gas": 0.0, "liver": 0.55, "spleen": 0.5, "kidney": 0.6,
    },
    "mri": {
        "air": 0.0, "fat": 0.75, "body": 0.4, "lung": 0.05, "mediastinum": 0.6,
        "heart": 0.3, "vessel": 0.05, "bone": 0.1, "brain": 0.45, "csf": 0.9, "orbit": 0.6,
        "gas": 0.0, "liver": 0.3, "spleen": 0.55, "kidney": 0.6,
    },
}  # fmt: skip

# Gray level added inside a lesion per (modality, region), so a lesion keeps its
# contrast over whatever tissue lies under it: nodules are bright, liver and
# spleen lesions are hypodense on CT, MRI lesions are T2-bright.
LESION_CONTRAST: dict[tuple[str, str], float] = {
    ("xray", "chest"): 0.35, ("xray", "head"): 0.3, ("xray", "abdomen"): 0.3,
    ("ct", "chest"): 0.4, ("ct", "head"): 0.25, ("ct", "abdomen"): -0.22,
    ("mri", "chest"): 0.4, ("mri", "head"): 0.4, ("mri", "abdomen"): 0.4,
}  # fmt: skip
