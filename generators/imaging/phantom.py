"""Seeded procedural phantoms: synthetic X-ray, CT and MRI images with known content.

A phantom is drawn from a `PhantomSpec`: the patient's `Anatomy` (size, position,
rotation, intensity and texture), the modality, region and plane, and a list of
round lesions. The side, position and size of every lesion are known, so
questions about the image have exact answers (`facts`). All randomness comes from the
`random.Random` passed to `random_anatomy`, `random_spec` and `progress_series`.
`draw_phantom` is a pure function of the spec and the size. Shapes and gray
levels live in `phantom_geometry.py`.
"""

from __future__ import annotations

import logging
import math
import random
from collections import OrderedDict
from dataclasses import astuple, dataclass, field, replace

import numpy as np
from PIL import Image

from corpusforge.generators.imaging.phantom_geometry import (
    FIELD_OF_VIEW_MM,
    GEOMETRIES,
    LESION_CONTRAST,
    LESION_RADIUS_MM,
    MODALITIES,
    PLANES,
    REGIONS,
    SIDES,
    TISSUE_LEVELS,
    Ellipse,
    Geometry,
)

logger = logging.getLogger(__name__)

# Planes each modality is drawn in by `random_spec`, with their weights.
MODALITY_PLANES: dict[str, tuple[tuple[str, float], ...]] = {
    "xray": (("frontal", 1.0),),
    "ct": (("axial", 0.7), ("coronal", 0.2), ("sagittal", 0.1)),
    "mri": (("axial", 0.4), ("sagittal", 0.3), ("coronal", 0.3)),
}
MODALITY_WEIGHTS = (("xray", 0.4), ("ct", 0.35), ("mri", 0.25))
REGION_WEIGHTS = {
    "xray": (("chest", 0.6), ("abdomen", 0.2), ("head", 0.2)),
    "ct": (("chest", 0.35), ("head", 0.35), ("abdomen", 0.3)),
    "mri": (("head", 0.5), ("abdomen", 0.3), ("chest", 0.2)),
}
# Probability of 0, 1, 2 and 3 lesions in `random_spec`.
LESION_COUNT_WEIGHTS = (0.3, 0.35, 0.2, 0.15)
MAX_LESIONS = 4
# Minimum gap between two lesion edges, in millimetres, so each stays countable.
LESION_GAP_MM = 4.0
# Lesion centers stay within this fraction of their organ field's radii.
FIELD_FILL = 0.65
PLACEMENT_ATTEMPTS = 50

# Per-visit lesion events in `progress_series`: cumulative probabilities of
# resolve, grow and shrink; the rest stay stable.
RESOLVE_PROBABILITY = 0.15
GROW_PROBABILITY = 0.30
SHRINK_PROBABILITY = 0.25
NEW_LESION_PROBABILITY = 0.3
GROW_FACTOR = (1.25, 1.6)
SHRINK_FACTOR = (0.55, 0.8)

# Texture: a smooth field of plane waves plus fine grain, both fixed by
# `Anatomy.texture_seed`. The smooth field makes different patients differ at the
# low frequencies that `phash` reads. Its amplitude, the wave count and the anatomy
# ranges in `random_anatomy` were tuned so that different patients stay above
# PHASH_DUPLICATE_THRESHOLD, which tests/imaging/test_imaging_phash.py measures.
TEXTURE_WAVES = 12
TEXTURE_AMPLITUDE = 0.15
# Highest wave frequency in cycles per field of view; faster waves make blobs
# the size of lesions.
TEXTURE_MAX_CYCLES = 3.0
GRAIN_AMPLITUDE = 0.015
MIN_SIZE = 32
MAX_SIZE = 4096
# Bytes of lesion-free layers `draw_phantom` keeps per process, least recently
# used first out. A patient's layers are two float64 arrays of size x size: 0.6 MB
# at 192 pixels, so the budget keeps about 100 patients, and 17 MB at 1,024. The
# newest entry stays even when it alone is larger. The MLLMU-Med builder calls
# `clear_layers_cache` at the start of each shard. Med-MIM draws a shard's
# phantoms patient by patient and clears the cache between patients
# (`ImageRenderer.prepare_phantoms`). So a worker's cache does not grow with the
# number of patients in a release.
LAYERS_CACHE_BYTES = 64 * 1024 * 1024
_LAYERS_CACHE: OrderedDict[tuple, tuple[np.ndarray, np.ndarray]] = OrderedDict()


@dataclass
class Lesion:
    """One round lesion. `side` is the patient's side ("left" or "right").

    `x` and `y` (0..1) place the center inside the organ field of that side,
    (0.5, 0.5) being its middle. `radius_mm` is the radius in millimetres.
    """

    side: str
    x: float
    y: float
    radius_mm: float


@dataclass
class Anatomy:
    """Patient-level traits, the same on every image of one patient.

    `body_width` and `body_height` scale the body (1.0 is nominal). `offset_x`
    and `offset_y` shift it by a fraction of the field of view; `rotation` turns
    it clockwise in degrees. `intensity` scales all gray levels. `texture_seed`
    fixes the smooth tissue texture and the grain.
    """

    body_width: float
    body_height: float
    offset_x: float
    offset_y: float
    rotation: float
    intensity: float
    texture_seed: int


@dataclass
class PhantomSpec:
    """Everything `draw_phantom` needs: patient, modality, region, plane and lesions."""

    anatomy: Anatomy
    modality: str
    region: str
    plane: str
    lesions: list[Lesion] = field(default_factory=list)


def random_anatomy(rng: random.Random) -> Anatomy:
    """Draw a patient: scale 0.8-1.2 per axis, offset up to 10% of the field, rotation ±15°."""
    return Anatomy(
        body_width=round(rng.uniform(0.8, 1.2), 4),
        body_height=round(rng.uniform(0.8, 1.2), 4),
        offset_x=round(rng.uniform(-0.1, 0.1), 4),
        offset_y=round(rng.uniform(-0.1, 0.1), 4),
        rotation=round(rng.uniform(-15.0, 15.0), 2),
        intensity=round(rng.uniform(0.85, 1.15), 4),
        texture_seed=rng.randrange(2**31),
    )


def random_spec(
    rng: random.Random,
    anatomy: Anatomy,
    modality: str | None = None,
    region: str | None = None,
) -> PhantomSpec:
    """Draw a study of `anatomy`: modality, region and plane (unless given) and 0-3 lesions.

    X-ray is always frontal; CT and MRI are axial, coronal or sagittal. In a
    sagittal plane all lesions are on one side, because the slice cuts one organ.
    """
    if modality is not None and modality not in MODALITIES:
        raise ValueError(f"invalid modality {modality!r}; valid: {', '.join(MODALITIES)}")
    if region is not None and region not in REGIONS:
        raise ValueError(f"invalid region {region!r}; valid: {', '.join(REGIONS)}")
    if modality is None:
        modality = _weighted_choice(rng, MODALITY_WEIGHTS)
    if region is None:
        region = _weighted_choice(rng, REGION_WEIGHTS[modality])
    plane = _weighted_choice(rng, MODALITY_PLANES[modality])

    spec = PhantomSpec(anatomy=anatomy, modality=modality, region=region, plane=plane)
    count = _weighted_choice(rng, tuple(enumerate(LESION_COUNT_WEIGHTS)))
    fixed_side = rng.choice(SIDES) if plane == "sagittal" else None
    for _ in range(count):
        lesion = _place_lesion(rng, spec, fixed_side)
        if lesion is not None:
            spec.lesions.append(lesion)
    return spec


def progress_series(rng: random.Random, base: PhantomSpec, visits: int) -> list[PhantomSpec]:
    """Return `visits` studies of the patient in `base`, the first being a copy of `base`.

    Between visits each lesion resolves (15%), grows by 25-60% (30%), shrinks by
    20-45% (25%) or stays the same. A new lesion appears with probability 0.3
    while there are fewer than 4. Every visit differs from the one before in at
    least one lesion. Anatomy, modality, region and plane stay the same.
    """
    if visits < 1:
        raise ValueError(f"visits must be at least 1, got {visits}")
    series = [_copy_spec(base)]
    fixed_side = _series_side(rng, base)
    for _ in range(visits - 1):
        series.append(_next_visit(rng, series[-1], fixed_side))
    return series


def facts(spec: PhantomSpec) -> dict[str, object]:
    """Return what the image shows: modality, region, plane and lesion facts.

    `lesion_sides` is "none", "left", "right" or "both" (patient sides; see
    `laterality_visible` for sagittal images). `largest_lesion_mm` is the
    diameter of the largest lesion in millimetres, rounded to 0.1, and 0.0
    without lesions.
    """
    sides = {lesion.side for lesion in spec.lesions}
    if not sides:
        lesion_sides = "none"
    elif len(sides) == 2:
        lesion_sides = "both"
    else:
        lesion_sides = next(iter(sides))
    largest = max((lesion.radius_mm for lesion in spec.lesions), default=0.0)
    return {
        "modality": spec.modality,
        "region": spec.region,
        "plane": spec.plane,
        "lesion_count": len(spec.lesions),
        "lesion_sides": lesion_sides,
        "largest_lesion_mm": round(2.0 * largest, 1),
    }


def laterality_visible(spec: PhantomSpec) -> bool:
    """Return False for sagittal images, where the lesion side cannot be read from the picture."""
    return spec.plane != "sagittal"


def draw_phantom(spec: PhantomSpec, size: int = 256) -> Image.Image:
    """Render `spec` as a `size` x `size` grayscale image (mode "L")."""
    _check_spec(spec)
    if isinstance(size, bool) or not isinstance(size, int) or not MIN_SIZE <= size <= MAX_SIZE:
        raise ValueError(
            f"size must be an integer between {MIN_SIZE} and {MAX_SIZE} pixels, got {size!r}"
        )

    tissue, body_term = _patient_layers(spec, size)
    canvas = tissue.copy()
    frame = _Frame(size, FIELD_OF_VIEW_MM[spec.region], spec.anatomy)
    lesion_contrast = LESION_CONTRAST[(spec.modality, spec.region)]
    for lesion in spec.lesions:
        center = _lesion_center_image_mm(spec, lesion)
        box = frame.pixel_box(center, lesion.radius_mm)
        if box is None:
            continue
        image_x, image_y = frame.image_coordinates(box)
        distance = np.hypot(image_x - center[0], image_y - center[1])
        mask = np.clip((lesion.radius_mm - distance) / frame.pixel_mm + 0.5, 0.0, 1.0)
        canvas[box] += lesion_contrast * mask

    canvas += body_term
    canvas *= spec.anatomy.intensity
    pixels = np.rint(np.clip(canvas, 0.0, 1.0) * 255.0).astype(np.uint8)
    return Image.fromarray(pixels, mode="L")


def clear_layers_cache() -> None:
    """Drop every cached patient layer of `draw_phantom`, releasing its memory."""
    _LAYERS_CACHE.clear()


def layers_cache_bytes() -> int:
    """Return the bytes of the patient layers that `draw_phantom` keeps cached."""
    return sum(tissue.nbytes + term.nbytes for tissue, term in _LAYERS_CACHE.values())


def _layers_key(spec: PhantomSpec, size: int) -> tuple:
    return (astuple(spec.anatomy), spec.modality, spec.region, spec.plane, size)


def _patient_layers(spec: PhantomSpec, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Return the tissue canvas without lesions and the texture term of `spec`, cached.

    Both depend only on the anatomy, modality, region, plane and size, which
    every visit of one patient shares (see `progress_series`), so a series
    computes them once. Callers must not modify the arrays.
    """
    key = _layers_key(spec, size)
    cached = _LAYERS_CACHE.get(key)
    if cached is not None:
        _LAYERS_CACHE.move_to_end(key)
        return cached

    geometry = GEOMETRIES[(spec.region, spec.plane)]
    levels = TISSUE_LEVELS[spec.modality]
    frame = _Frame(size, FIELD_OF_VIEW_MM[spec.region], spec.anatomy)
    anatomy = spec.anatomy
    edge_mm = frame.pixel_mm / min(anatomy.body_width, anatomy.body_height)
    largest_scale = max(anatomy.body_width, anatomy.body_height)

    tissue = np.full((size, size), levels["air"], dtype=np.float64)
    for shape in geometry.shapes:
        center = frame.to_image_mm(shape.cx, shape.cy)
        box = frame.pixel_box(center, max(shape.rx, shape.ry) * largest_scale)
        if box is None:
            continue
        body_x, body_y = frame.body_coordinates(box)
        mask = _ellipse_mask(body_x, body_y, shape, edge_mm)
        window = tissue[box]
        window += (levels[shape.tissue] - window) * mask

    everything = (slice(0, size), slice(0, size))
    body_mask = _ellipse_mask(*frame.body_coordinates(everything), geometry.body, edge_mm)
    body_term = _texture(frame) * body_mask
    for array in (tissue, body_term):
        array.flags.writeable = False

    _LAYERS_CACHE[key] = (tissue, body_term)
    cached_bytes = layers_cache_bytes()
    while cached_bytes > LAYERS_CACHE_BYTES and len(_LAYERS_CACHE) > 1:
        _, (old_tissue, old_term) = _LAYERS_CACHE.popitem(last=False)
        cached_bytes -= old_tissue.nbytes + old_term.nbytes
    return tissue, body_term


@dataclass(frozen=True)
class _Frame:
    """The pixel grid of one image and the patient's placement on it.

    Image millimetres have their origin at the image center, x to the right and
    y downwards. The body frame is the nominal patient's: image = rotation(scale
    * body) + offset.
    """

    size: int
    field_of_view: float
    anatomy: Anatomy

    @property
    def pixel_mm(self) -> float:
        return self.field_of_view / self.size

    @property
    def axis(self) -> np.ndarray:
        """Return the image millimetres of the pixel centers along one axis."""
        indices = np.arange(self.size, dtype=np.float64) + 0.5
        return indices * self.pixel_mm - self.field_of_view / 2.0

    @property
    def offset_mm(self) -> tuple[float, float]:
        return (
            self.anatomy.offset_x * self.field_of_view,
            self.anatomy.offset_y * self.field_of_view,
        )

    def to_image_mm(self, body_x: float, body_y: float) -> tuple[float, float]:
        theta = math.radians(self.anatomy.rotation)
        scaled_x = body_x * self.anatomy.body_width
        scaled_y = body_y * self.anatomy.body_height
        offset_x, offset_y = self.offset_mm
        return (
            math.cos(theta) * scaled_x - math.sin(theta) * scaled_y + offset_x,
            math.sin(theta) * scaled_x + math.cos(theta) * scaled_y + offset_y,
        )

    def pixel_box(
        self, center: tuple[float, float], radius_mm: float
    ) -> tuple[slice, slice] | None:
        """Return the (rows, columns) slices of the square of pixels within `radius_mm`.

        Two pixels of margin cover the antialiased edge. Return None when the
        square misses the image.
        """
        reach = radius_mm + 2.0 * self.pixel_mm
        half = self.field_of_view / 2.0

        def span(center_mm: float) -> slice | None:
            first = max(0, math.floor((center_mm - reach + half) / self.pixel_mm))
            last = min(self.size, math.ceil((center_mm + reach + half) / self.pixel_mm) + 1)
            return slice(first, last) if first < last else None

        columns = span(center[0])
        rows = span(center[1])
        if rows is None or columns is None:
            return None
        return rows, columns

    def image_coordinates(self, box: tuple[slice, slice]) -> tuple[np.ndarray, np.ndarray]:
        """Return broadcastable image-millimetre x (a row) and y (a column) of `box`."""
        rows, columns = box
        axis = self.axis
        return axis[columns][np.newaxis, :], axis[rows][:, np.newaxis]

    def body_coordinates(self, box: tuple[slice, slice]) -> tuple[np.ndarray, np.ndarray]:
        """Return the body-frame millimetres of every pixel of `box`."""
        image_x, image_y = self.image_coordinates(box)
        offset_x, offset_y = self.offset_mm
        shifted_x = image_x - offset_x
        shifted_y = image_y - offset_y
        theta = math.radians(self.anatomy.rotation)
        cos_t, sin_t = math.cos(theta), math.sin(theta)
        body_x = (cos_t * shifted_x + sin_t * shifted_y) / self.anatomy.body_width
        body_y = (-sin_t * shifted_x + cos_t * shifted_y) / self.anatomy.body_height
        return body_x, body_y


def _check_spec(spec: PhantomSpec) -> None:
    if spec.modality not in MODALITIES:
        raise ValueError(f"invalid modality {spec.modality!r}; valid: {', '.join(MODALITIES)}")
    if spec.region not in REGIONS:
        raise ValueError(f"invalid region {spec.region!r}; valid: {', '.join(REGIONS)}")
    if spec.plane not in PLANES:
        raise ValueError(f"invalid plane {spec.plane!r}; valid: {', '.join(PLANES)}")
    for lesion in spec.lesions:
        if lesion.side not in SIDES:
            raise ValueError(f"invalid lesion side {lesion.side!r}; valid: left, right")
        if not (0.0 <= lesion.x <= 1.0 and 0.0 <= lesion.y <= 1.0):
            raise ValueError(f"lesion position ({lesion.x}, {lesion.y}) must lie in 0..1")
        if not (math.isfinite(lesion.radius_mm) and lesion.radius_mm > 0):
            raise ValueError(f"lesion radius must be a positive number, got {lesion.radius_mm}")
    anatomy = spec.anatomy
    if anatomy.body_width <= 0 or anatomy.body_height <= 0:
        raise ValueError(
            f"body scale must be positive, got {anatomy.body_width} x {anatomy.body_height}"
        )


def _ellipse_mask(x: np.ndarray, y: np.ndarray, shape: Ellipse, edge_mm: float) -> np.ndarray:
    """Return the coverage (0..1) of each pixel by `shape`, antialiased over about one pixel."""
    dx = x - shape.cx
    dy = y - shape.cy
    if shape.angle:
        angle = math.radians(shape.angle)
        dx, dy = (
            math.cos(angle) * dx + math.sin(angle) * dy,
            -math.sin(angle) * dx + math.cos(angle) * dy,
        )
    # First-order signed distance to the edge in millimetres: the implicit
    # function (x/rx)^2 + (y/ry)^2 - 1 divided by the length of its gradient.
    implicit = (dx / shape.rx) ** 2 + (dy / shape.ry) ** 2 - 1.0
    gradient = 2.0 * np.hypot(dx / shape.rx**2, dy / shape.ry**2)
    with np.errstate(divide="ignore", invalid="ignore"):
        outside_mm = np.where(gradient > 0.0, implicit / gradient, -np.inf)
    return np.clip(0.5 - outside_mm / edge_mm, 0.0, 1.0)


def _texture(frame: _Frame) -> np.ndarray:
    """Return the smooth field plus grain of the patient's `texture_seed` on `frame`.

    Each wave is cos(2 pi (fx u + fy v) + phase), with (u, v) the body frame in
    fields of view, so the texture moves with the patient. The phase is linear in
    the image coordinates, a X + b Y + k, so each wave is computed from 1-D
    cosines and sines: cos(aX + k) cos(bY) - sin(aX + k) sin(bY).
    """
    generator = np.random.default_rng(frame.anatomy.texture_seed)
    frequencies = generator.uniform(-TEXTURE_MAX_CYCLES, TEXTURE_MAX_CYCLES, (TEXTURE_WAVES, 2))
    phases = generator.uniform(0.0, 2.0 * math.pi, size=TEXTURE_WAVES)
    weights = generator.normal(0.0, 1.0, size=TEXTURE_WAVES)
    weights *= TEXTURE_AMPLITUDE / max(float(np.sqrt(np.sum(weights**2) / 2.0)), 1e-9)

    anatomy = frame.anatomy
    theta = math.radians(anatomy.rotation)
    cos_t, sin_t = math.cos(theta), math.sin(theta)
    offset_x, offset_y = frame.offset_mm
    scale = 2.0 * math.pi / frame.field_of_view
    axis = frame.axis.tolist()
    smooth = np.zeros((frame.size, frame.size), dtype=np.float64)
    for (fx, fy), phase, weight in zip(frequencies, phases, weights, strict=True):
        a = scale * (fx * cos_t / anatomy.body_width - fy * sin_t / anatomy.body_height)
        b = scale * (fx * sin_t / anatomy.body_width + fy * cos_t / anatomy.body_height)
        k = float(phase) - a * offset_x - b * offset_y
        # math.cos and math.sin (the C library's) keep the values the same on every
        # machine with that library; NumPy may pick SIMD versions by CPU.
        cos_x = np.array([math.cos(a * x + k) for x in axis])
        sin_x = np.array([math.sin(a * x + k) for x in axis])
        cos_y = np.array([math.cos(b * y) for y in axis]) * weight
        sin_y = np.array([math.sin(b * y) for y in axis]) * weight
        smooth += np.multiply.outer(cos_y, cos_x)
        smooth -= np.multiply.outer(sin_y, sin_x)
    grain = generator.normal(0.0, GRAIN_AMPLITUDE, size=(frame.size, frame.size))
    return smooth + grain


def _weighted_choice(rng: random.Random, options):
    values = [value for value, _ in options]
    weights = [weight for _, weight in options]
    return rng.choices(values, weights=weights, k=1)[0]


def _field_point(geometry: Geometry, lesion: Lesion) -> tuple[float, float]:
    """Return the lesion center in nominal body-frame millimetres."""
    organ = geometry.fields[lesion.side]
    x = organ.cx + (2.0 * lesion.x - 1.0) * organ.rx * FIELD_FILL
    y = organ.cy + (2.0 * lesion.y - 1.0) * organ.ry * FIELD_FILL
    return x, y


def _lesion_center_image_mm(spec: PhantomSpec, lesion: Lesion) -> tuple[float, float]:
    geometry = GEOMETRIES[(spec.region, spec.plane)]
    frame = _Frame(MIN_SIZE, FIELD_OF_VIEW_MM[spec.region], spec.anatomy)
    return frame.to_image_mm(*_field_point(geometry, lesion))


def _fits(spec: PhantomSpec, candidate: Lesion, others: list[Lesion]) -> bool:
    """Return True when `candidate` lies inside the image and keeps its gap to `others`.

    The whole lesion plus LESION_GAP_MM must be inside the field of view, and its
    edge at least LESION_GAP_MM from the edge of every lesion in `others`.
    """
    center = _lesion_center_image_mm(spec, candidate)
    half_view = FIELD_OF_VIEW_MM[spec.region] / 2.0
    reach = candidate.radius_mm + LESION_GAP_MM
    if max(abs(center[0]), abs(center[1])) + reach > half_view:
        return False
    for other in others:
        other_center = _lesion_center_image_mm(spec, other)
        distance = math.dist(center, other_center)
        if distance < candidate.radius_mm + other.radius_mm + LESION_GAP_MM:
            return False
    return True


def _place_lesion(rng: random.Random, spec: PhantomSpec, fixed_side: str | None) -> Lesion | None:
    """Draw a lesion that fits beside the spec's lesions, or None after PLACEMENT_ATTEMPTS."""
    low, high = LESION_RADIUS_MM[spec.region]
    for _ in range(PLACEMENT_ATTEMPTS):
        candidate = Lesion(
            side=fixed_side or rng.choice(SIDES),
            x=round(rng.random(), 4),
            y=round(rng.random(), 4),
            radius_mm=round(rng.uniform(low, high), 1),
        )
        if _fits(spec, candidate, spec.lesions):
            return candidate
    logger.debug("no room for another lesion in a %s %s phantom", spec.region, spec.plane)
    return None


def _copy_spec(spec: PhantomSpec) -> PhantomSpec:
    return replace(spec, lesions=[replace(lesion) for lesion in spec.lesions])


def _series_side(rng: random.Random, base: PhantomSpec) -> str | None:
    """Return the one lesion side of a sagittal series, or None for other planes."""
    if base.plane != "sagittal":
        return None
    if base.lesions:
        return base.lesions[0].side
    return rng.choice(SIDES)


def _next_visit(rng: random.Random, previous: PhantomSpec, fixed_side: str | None) -> PhantomSpec:
    low, high = LESION_RADIUS_MM[previous.region]
    visit = replace(previous, lesions=[])
    changed = False
    for lesion in previous.lesions:
        draw = rng.random()
        if draw < RESOLVE_PROBABILITY:
            changed = True
            continue
        radius = lesion.radius_mm
        if draw < RESOLVE_PROBABILITY + GROW_PROBABILITY:
            radius = lesion.radius_mm * rng.uniform(*GROW_FACTOR)
        elif draw < RESOLVE_PROBABILITY + GROW_PROBABILITY + SHRINK_PROBABILITY:
            radius = lesion.radius_mm * rng.uniform(*SHRINK_FACTOR)
        updated, event = _resize(visit, previous, lesion, radius, low, high)
        changed = changed or event
        if updated is not None:
            visit.lesions.append(updated)

    if len(visit.lesions) < MAX_LESIONS and rng.random() < NEW_LESION_PROBABILITY:
        new = _place_lesion(rng, visit, fixed_side)
        if new is not None:
            visit.lesions.append(new)
            changed = True

    if not changed:
        _force_change(rng, visit, fixed_side, high)
    return visit


def _resize(
    visit: PhantomSpec,
    previous: PhantomSpec,
    lesion: Lesion,
    radius: float,
    low: float,
    high: float,
) -> tuple[Lesion | None, bool]:
    """Return the lesion at its new radius (None when it shrank below `low`) and if it changed.

    Growth is capped at `high` and kept only when the lesion still keeps its gap
    to the other lesions of both visits.
    """
    radius = round(min(radius, high), 1)
    if radius < low:
        return None, True
    if radius == lesion.radius_mm:
        return replace(lesion), False
    resized = replace(lesion, radius_mm=radius)
    others = [other for other in previous.lesions if other is not lesion] + visit.lesions
    if radius > lesion.radius_mm and not _fits(visit, resized, others):
        return replace(lesion), False
    return resized, True


def _force_change(
    rng: random.Random, visit: PhantomSpec, fixed_side: str | None, high: float
) -> None:
    """Change one lesion of a visit that came out identical to the previous one."""
    for index, lesion in enumerate(visit.lesions):
        others = visit.lesions[:index] + visit.lesions[index + 1 :]
        grown = replace(lesion, radius_mm=round(min(lesion.radius_mm * 1.4, high), 1))
        if grown.radius_mm > lesion.radius_mm and _fits(visit, grown, others):
            visit.lesions[index] = grown
            return
    if len(visit.lesions) < MAX_LESIONS:
        new = _place_lesion(rng, visit, fixed_side)
        if new is not None:
            visit.lesions.append(new)
            return
    if visit.lesions:
        # No room to grow or add: the first lesion resolves instead.
        visit.lesions.pop(0)
