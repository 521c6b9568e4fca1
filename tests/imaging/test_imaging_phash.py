"""Tests of the DCT perceptual hash and of PHASH_DUPLICATE_THRESHOLD.

The distribution tests print their measurements; run with `-s` to see them.
"""

from __future__ import annotations

import io
import itertools
import math
import random
import statistics

import numpy as np
import pytest
from PIL import Image
from testsupport import require_shared

from corpusforge.generators.imaging.io import (
    PHASH_DUPLICATE_THRESHOLD,
    hamming,
    load_image,
    phash,
)
from corpusforge.generators.imaging.phantom import (
    draw_phantom,
    progress_series,
    random_anatomy,
    random_spec,
)
from corpusforge.generators.imaging.phantom_geometry import MODALITIES, REGIONS
from corpusforge.generators.seeding import derive_seed

PATIENTS = 50
GROUP_PATIENTS = 24
# (scale, JPEG quality) of the re-encoded copies that must stay within the threshold.
RE_ENCODINGS = ((0.5, 60), (0.75, 75), (1.5, 90))


def re_encode(image: Image.Image, scale: float, quality: int) -> Image.Image:
    width, height = image.size
    resized = image.resize(
        (max(8, round(width * scale)), max(8, round(height * scale))), Image.Resampling.BILINEAR
    )
    buffer = io.BytesIO()
    resized.convert("RGB").save(buffer, format="JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue()))


def summary(distances: list[int]) -> str:
    ordered = sorted(distances)
    percentile_1 = ordered[len(ordered) // 100]
    at_or_below = sum(distance <= PHASH_DUPLICATE_THRESHOLD for distance in ordered)
    return (
        f"n={len(ordered)} min={ordered[0]} p1={percentile_1} "
        f"median={statistics.median(ordered)} max={ordered[-1]} "
        f"<={PHASH_DUPLICATE_THRESHOLD}: {at_or_below}"
    )


def pairwise(hashes: list[int]) -> list[int]:
    return [hamming(first, second) for first, second in itertools.combinations(hashes, 2)]


@pytest.fixture(scope="module")
def phantom_patients() -> list[Image.Image]:
    rng = random.Random(derive_seed("imaging-tests", "phash-patients"))
    return [draw_phantom(random_spec(rng, random_anatomy(rng))) for _ in range(PATIENTS)]


# The hash itself


def test_dct_matches_definition():
    from corpusforge.generators.imaging.io import _DCT_32

    pixels = np.random.default_rng(1).uniform(0, 255, (32, 32))
    transformed = _DCT_32 @ pixels @ _DCT_32.T

    def coefficient(u: int, v: int) -> float:
        total = 0.0
        for x in range(32):
            for y in range(32):
                total += (
                    pixels[x, y]
                    * math.cos(math.pi * (2 * x + 1) * u / 64)
                    * math.cos(math.pi * (2 * y + 1) * v / 64)
                )
        alpha_u = math.sqrt(1 / 32) if u == 0 else math.sqrt(2 / 32)
        alpha_v = math.sqrt(1 / 32) if v == 0 else math.sqrt(2 / 32)
        return alpha_u * alpha_v * total

    for u, v in ((0, 0), (1, 1), (1, 8), (8, 3), (5, 5)):
        assert transformed[u, v] == pytest.approx(coefficient(u, v), abs=1e-8)


def test_hash_is_64_bits_with_half_set(phantom_patients):
    for image in phantom_patients[:10]:
        value = phash(image)
        assert 0 <= value < 2**64
        assert value.bit_count() == 32


def test_constant_image_hash():
    assert phash(Image.new("L", (50, 40), 128)) == 0
    assert phash(Image.new("RGB", (1, 1), (0, 0, 0))) == 0


def test_hash_ignores_mode(phantom_patients):
    image = phantom_patients[0]
    assert phash(image) == phash(image.convert("RGB"))


def test_hamming():
    assert hamming(0, 0) == 0
    assert hamming(0, 2**64 - 1) == 64
    assert hamming(0b1011, 0b0110) == 3


def test_mirrored_image_differs(phantom_patients):
    image = phantom_patients[1]
    assert hamming(phash(image), phash(image.transpose(Image.Transpose.FLIP_LEFT_RIGHT))) > 0


# The threshold on phantoms


def test_re_encoded_phantoms_stay_within_threshold(phantom_patients):
    distances = []
    for image in phantom_patients:
        original = phash(image)
        for scale, quality in RE_ENCODINGS:
            distances.append(hamming(original, phash(re_encode(image, scale, quality))))

    print(f"\nphantom vs resized JPEG copy: {summary(distances)}")
    assert max(distances) <= PHASH_DUPLICATE_THRESHOLD


def test_different_phantom_patients_above_threshold(phantom_patients):
    distances = pairwise([phash(image) for image in phantom_patients])

    print(f"\n{PATIENTS} phantom patients, all pairs: {summary(distances)}")
    assert len(distances) == PATIENTS * (PATIENTS - 1) // 2
    assert min(distances) > PHASH_DUPLICATE_THRESHOLD


def test_same_group_patients_mostly_distinct():
    # Patients of one (modality, region) share their anatomy outline, so a few
    # pairs in ten thousand come within the threshold; the rest must stay above.
    below = 0
    total = 0
    for modality in MODALITIES:
        for region in REGIONS:
            rng = random.Random(derive_seed("imaging-tests", "phash-group", modality, region))
            hashes = [
                phash(draw_phantom(random_spec(rng, random_anatomy(rng), modality, region), 128))
                for _ in range(GROUP_PATIENTS)
            ]
            distances = pairwise(hashes)
            print(f"\n{modality} {region}, {GROUP_PATIENTS} patients: {summary(distances)}")
            below += sum(distance <= PHASH_DUPLICATE_THRESHOLD for distance in distances)
            total += len(distances)

    assert below / total < 0.005


def test_visits_of_one_patient_measured():
    # Lesions cover a few of the 32x32 pixels phash reads, so visits of one
    # patient usually hash as the same picture. Measured, not promised.
    rng = random.Random(derive_seed("imaging-tests", "phash-visits"))
    distances = []
    for _ in range(20):
        series = progress_series(rng, random_spec(rng, random_anatomy(rng)), 3)
        hashes = [phash(draw_phantom(visit, 128)) for visit in series]
        distances.extend(hamming(first, second) for first, second in itertools.pairwise(hashes))

    print(f"\nconsecutive visits of one phantom patient: {summary(distances)}")
    assert len(distances) == 40


# The threshold on real images


@pytest.fixture(scope="module")
def vqa_images() -> list[Image.Image]:
    """The 60 VQA-RAD radiographs, downscaled to at most 512 pixels a side."""
    images = []
    for path in sorted(require_shared("vqa_rad", "images").glob("*.jpg")):
        image = load_image(path).image
        image.thumbnail((512, 512))
        images.append(image)
    return images


def test_re_encoded_vqa_rad_images_within_threshold(vqa_images):
    distances = []
    for image in vqa_images:
        original = phash(image)
        for scale, quality in RE_ENCODINGS:
            distances.append(hamming(original, phash(re_encode(image, scale, quality))))

    print(f"\nVQA-RAD image vs resized JPEG copy: {summary(distances)}")
    assert max(distances) <= PHASH_DUPLICATE_THRESHOLD


def test_vqa_rad_images_pairwise_measured(vqa_images):
    # Different images can come within the threshold: two PA chest radiographs of
    # different patients (synpic18250, synpic32081) hash at distance 10.
    distances = pairwise([phash(image) for image in vqa_images])

    print(f"\n{len(vqa_images)} distinct VQA-RAD images, all pairs: {summary(distances)}")
    assert len(vqa_images) == 60
    assert statistics.median(distances) > 2 * PHASH_DUPLICATE_THRESHOLD


def test_cxr_thumbnail_matches_original():
    folder = require_shared("nih_cxr14_longitudinal")
    original = load_image(folder / "fullres" / "00000003_000.png").image
    thumbnail = load_image(folder / "images" / "00000003_000.png").image

    assert thumbnail.size == (64, 64)
    assert hamming(phash(original), phash(thumbnail)) <= PHASH_DUPLICATE_THRESHOLD


def test_cxr_follow_ups_measured():
    folder = require_shared("nih_cxr14_longitudinal")
    by_patient: dict[str, list[int]] = {}
    for path in sorted((folder / "images").glob("*.png")):
        by_patient.setdefault(path.name.split("_")[0], []).append(phash(load_image(path).image))

    same = [d for hashes in by_patient.values() for d in pairwise(hashes)]
    firsts = [hashes[0] for hashes in by_patient.values()]
    different = pairwise(firsts)
    print(f"\nNIH CXR thumbnails, visits of one patient: {summary(same)}")
    print(f"NIH CXR thumbnails, first visits of different patients: {summary(different)}")
    assert len(by_patient) == 14
