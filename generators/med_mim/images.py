"""Produce the pixels of every image in a release, the same way at plan time and in each shard.

An image is a source file (raster or DICOM), an embedded DICOM file, or a
phantom drawn from its spec. Every image is downscaled to at most
`max_image_side` pixels on its longer side and re-encoded as a PNG without
metadata, so its sha256 (the image id) and its perceptual hash depend only on
the pixels. Phantom patients are re-derived from (dataset, seed, source index,
patient index), so any shard can draw any patient.
"""

from __future__ import annotations

import functools
import random
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from corpusforge.generators.imaging.embedded import embedded_dicom_files
from corpusforge.generators.imaging.io import content_hash, encode_png, image_cell, load_image
from corpusforge.generators.imaging.io import phash as perceptual_hash
from corpusforge.generators.imaging.phantom import (
    PhantomSpec,
    clear_layers_cache,
    draw_phantom,
    progress_series,
    random_anatomy,
    random_spec,
)
from corpusforge.generators.med_mim.facts import ImageFacts
from corpusforge.generators.seeding import derive_seed

DEFAULT_MAX_IMAGE_SIDE = 512
# At 192 pixels the chest field of view (420 mm) gives 2.2 mm per pixel, so the
# smallest lesion (4 mm radius) is about 4 pixels wide.
DEFAULT_PHANTOM_SIZE = 192
# Encoded images a renderer keeps for reuse, in bytes of PNG data; the least
# recently used are dropped beyond it.
CACHE_BYTES = 256 * 1024 * 1024
# A phantom patient's first visit is at an age in this range, in years.
PHANTOM_START_AGE = (25, 85)
# Follow-up numbers advance by 1 to this many steps between two visits shown.
PHANTOM_MAX_FOLLOW_UP_STEP = 3
# The patient ages by 0 to this many years between two visits.
PHANTOM_MAX_AGE_STEP = 2


@dataclass(frozen=True)
class PhantomPatient:
    """A phantom patient's visits: one spec, follow-up number and age per visit."""

    specs: list[PhantomSpec]
    follow_ups: list[int]
    ages: list[int]
    sex: str


def phantom_patient(
    dataset: str, seed: int, source_index: int, patient: int, visits: tuple[int, int]
) -> PhantomPatient:
    """Return phantom patient `patient` of a source, the same in every process.

    The number of visits is drawn from the inclusive range `visits`.
    """
    rng = random.Random(derive_seed(dataset, seed, "phantom", source_index, patient))
    count = rng.randint(*visits)
    anatomy = random_anatomy(rng)
    base = random_spec(rng, anatomy)
    specs = progress_series(rng, base, count)
    follow_ups = [0]
    ages = [rng.randint(*PHANTOM_START_AGE)]
    for _ in range(count - 1):
        follow_ups.append(follow_ups[-1] + rng.randint(1, PHANTOM_MAX_FOLLOW_UP_STEP))
        ages.append(ages[-1] + rng.randint(0, PHANTOM_MAX_AGE_STEP))
    return PhantomPatient(specs, follow_ups, ages, rng.choice(("F", "M")))


def fit_side(image: Image.Image, max_side: int) -> Image.Image:
    """Downscale `image` so its longer side is at most `max_side`; never upscale."""
    width, height = image.size
    if max(width, height) <= max_side:
        return image
    scale = max_side / max(width, height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS)


@dataclass(frozen=True)
class PreparedImage:
    """An image ready to publish: PNG bytes, their sha256 (the image id) and the pHash."""

    png: bytes
    sha256: str
    phash: int
    width: int
    height: int

    @property
    def path(self) -> str:
        """Return the relative path of the image in a release or export: `images/<hash16>.png`."""
        return f"images/{self.sha256[:16]}.png"

    def cell(self) -> dict[str, Any]:
        return image_cell(self.png, self.path)


@functools.cache
def _embedded_paths() -> dict[str, Path]:
    return {entry.name: entry.path for entry in embedded_dicom_files()}


class ImageRenderer:
    """Render and encode images of one build, caching each image and phantom patient once.

    `phantom_options(source_index)` returns (visits range, size) of a phantom
    source. Raises ImageError for unreadable files.
    """

    def __init__(self, dataset: str, seed: int, max_side: int, phantom_options) -> None:
        self.dataset = dataset
        self.seed = seed
        self.max_side = max_side
        self.phantom_options = phantom_options
        self._patients: dict[tuple[int, int], PhantomPatient] = {}
        self._prepared: OrderedDict[str, PreparedImage] = OrderedDict()
        self._cached_bytes = 0

    def patient(self, source_index: int, patient: int) -> PhantomPatient:
        key = (source_index, patient)
        if key not in self._patients:
            visits, _ = self.phantom_options(source_index)
            self._patients[key] = phantom_patient(
                self.dataset, self.seed, source_index, patient, visits
            )
        return self._patients[key]

    def pixels(self, facts: ImageFacts) -> Image.Image:
        """Return the image of `facts`, downscaled to the maximum side."""
        locator = facts.locator
        kind = locator["kind"]
        if kind == "file":
            image = load_image(Path(locator["path"])).image
        elif kind == "dicom":
            image = load_image(_embedded_paths()[locator["name"]]).image
        elif kind == "phantom":
            _, size = self.phantom_options(facts.source)
            spec = self.patient(facts.source, locator["patient"]).specs[locator["visit"]]
            image = draw_phantom(spec, size)
        else:
            raise ValueError(f"unknown image locator kind {kind!r} for image {facts.key}")
        return fit_side(image, self.max_side)

    def prepare_phantoms(self, images: Iterable[ImageFacts]) -> int:
        """Prepare the phantom images among `images` patient by patient; return how many.

        A shard names its images in question order, which jumps between patients,
        and phantom.py's layer cache then draws a patient's layers again for most
        images of a co-reference shard. Drawing each patient's visits together
        draws the layers once, and the questions find the images prepared. It
        stops at half the cache budget, so prepared images are not evicted
        before their questions come. The pixels do not depend on the order.

        Each patient's layers are dropped once its images are prepared, so the
        layer cache holds one patient here, and a worker's memory does not grow
        with the number of patients in the release.
        """
        phantoms = sorted(
            (image for image in images if image.locator["kind"] == "phantom"),
            key=lambda image: (image.source, image.locator["patient"], image.locator["visit"]),
        )
        prepared = 0
        previous = None
        for image in phantoms:
            if self._cached_bytes > CACHE_BYTES // 2:
                break
            patient = (image.source, image.locator["patient"])
            if patient != previous:
                clear_layers_cache()
                previous = patient
            self.prepare(image)
            prepared += 1
        return prepared

    def prepare(self, facts: ImageFacts) -> PreparedImage:
        """Return the encoded image of `facts`, cached while the cache stays under its budget."""
        cached = self._prepared.get(facts.key)
        if cached is not None:
            self._prepared.move_to_end(facts.key)
            return cached
        image = self.pixels(facts)
        png = encode_png(image)
        prepared = PreparedImage(
            png=png,
            sha256=content_hash(png),
            phash=perceptual_hash(image),
            width=image.width,
            height=image.height,
        )
        self._prepared[facts.key] = prepared
        self._cached_bytes += len(png)
        while self._cached_bytes > CACHE_BYTES and len(self._prepared) > 1:
            _, evicted = self._prepared.popitem(last=False)
            self._cached_bytes -= len(evicted.png)
        return prepared
