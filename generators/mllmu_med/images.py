"""Study images: phantom series, real files and DICOM, their questions, PNG cells and test views.

Every image written to a release is re-encoded by `imaging.io.encode_png`, which
keeps pixels only: EXIF, text chunks and DICOM headers from user files never
reach a release. Real images larger than `max_image_side` are scaled down first.
The same study gives the same bytes on every run, so record shards and the
`images` config agree on each content hash.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from corpusforge.generators.imaging import io as image_io
from corpusforge.generators.imaging import phantom
from corpusforge.generators.imaging.transforms import test_transform
from corpusforge.generators.mllmu_med.injections import mentions_side
from corpusforge.generators.mllmu_med.sources import QAItem
from corpusforge.generators.seeding import derive_seed, stable_id

PHANTOM_MODALITIES = {"xray": "X-ray", "ct": "CT", "mri": "MRI"}
DICOM_MODALITIES = {"CT": "CT", "MR": "MRI", "NM": "nuclear medicine", "CR": "X-ray", "DX": "X-ray"}
VQA_RAD_ORGANS = {"CHEST": "chest", "HEAD": "head", "ABD": "abdomen"}
# Flip policies of a study's test view. "swap" flips at random and then swaps left
# and right in the answers. "allowed" flips at random, because no question, answer
# or distractor names a side. "forbidden" never flips.
FLIP_POLICIES = ("swap", "allowed", "forbidden")


@dataclass
class EncodedImage:
    """A study image ready for a release: PNG bytes, content hash and perceptual hash."""

    png: bytes
    image_id: str
    phash: str
    width: int
    height: int

    def cell(self) -> dict[str, Any]:
        return image_io.image_cell(self.png, f"images/{self.image_id[:16]}.png")


def phash_hex(image: Image.Image) -> str:
    """Return the 64-bit perceptual hash as 16 hex digits."""
    return f"{image_io.phash(image):016x}"


def phantom_series(
    dataset: str, seed: int, source: int, number: int, attempt: int, visits: int
) -> list[phantom.PhantomSpec]:
    """Return the studies of one phantom patient, drawn from its own random stream.

    `attempt` is raised by the planner when a patient looked like another one.
    """
    rng = random.Random(derive_seed(dataset, seed, "phantom", source, number, attempt))
    anatomy = phantom.random_anatomy(rng)
    base = phantom.random_spec(rng, anatomy)
    return phantom.progress_series(rng, base, visits)


def downscale(image: Image.Image, max_side: int) -> Image.Image:
    """Return `image` scaled so its longer side is at most `max_side` (0 keeps the size)."""
    if max_side <= 0 or max(image.size) <= max_side:
        return image
    scale = max_side / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS)


def phantom_items(
    spec: phantom.PhantomSpec, study_key: str, count: int, rng: random.Random
) -> list[QAItem]:
    """Return `count` questions about a phantom, answered from its drawing parameters."""
    found = phantom.facts(spec)
    modality = PHANTOM_MODALITIES[str(found["modality"])]
    lesions = int(found["lesion_count"])

    candidates = [
        (
            "modality",
            "What imaging modality was used for this study?",
            modality,
            "modality",
            "This study was acquired with ____.",
        ),
        (
            "region",
            "Which body region does this image show?",
            str(found["region"]),
            "region",
            "This image shows the ____.",
        ),
        (
            "lesion_count",
            "How many lesions are visible in this image?",
            str(lesions),
            "count",
            "The number of lesions visible in this image is ____.",
        ),
        (
            "has_lesion",
            "Is there a lesion in this image?",
            "yes" if lesions else "no",
            "yes_no",
            "",
        ),
    ]

    if found["plane"] != "frontal":
        candidates.append(
            (
                "plane",
                "In which plane was this image acquired?",
                str(found["plane"]),
                "plane",
                "This image was acquired in the ____ plane.",
            )
        )
    if lesions and phantom.laterality_visible(spec):
        candidates.append(
            (
                "lesion_sides",
                "On which side of the patient are the lesions?",
                str(found["lesion_sides"]),
                "side",
                "The lesions lie on this side of the patient: ____.",
            )
        )
    if lesions:
        candidates.append(
            (
                "largest_lesion_mm",
                "What is the diameter of the largest lesion in millimetres?",
                f"{found['largest_lesion_mm']} mm",
                "size",
                "The largest lesion measures ____ across.",
            )
        )

    chosen = rng.sample(candidates, min(count, len(candidates)))
    chosen.sort(key=lambda entry: [c[0] for c in candidates].index(entry[0]))

    items = []
    for fact, question, answer, kind, cloze in chosen:
        source_id = f"{study_key}:{fact}"
        items.append(
            QAItem(
                item_id=stable_id("mllmu_med", "phantom", source_id),
                source="phantom",
                source_file="phantom",
                source_id=source_id,
                question=question,
                answer=answer,
                kind=kind,
                answer_type="closed" if kind in ("yes_no", "count") else "open",
                group=f"phantom:{fact}",
                cloze=cloze,
                metadata={"fact": fact},
            )
        )
    return items


def dicom_items(metadata: dict[str, Any], name: str) -> list[QAItem]:
    """Return questions answered by a DICOM file's own header: modality and plane."""
    items = []
    modality = DICOM_MODALITIES.get(str(metadata.get("modality") or "").upper())
    if modality:
        items.append(
            (
                "modality",
                "What imaging modality produced this image?",
                modality,
                "modality",
                "This image was produced by ____.",
            )
        )
    plane = metadata.get("plane")
    if plane in ("axial", "sagittal", "coronal"):
        items.append(
            (
                "plane",
                "In which plane was this image acquired?",
                str(plane),
                "plane",
                "This image was acquired in the ____ plane.",
            )
        )
    return [
        QAItem(
            item_id=stable_id("mllmu_med", "embedded_dicom", f"{name}:{fact}"),
            source="embedded_dicom",
            source_file=name,
            source_id=f"{name}:{fact}",
            question=question,
            answer=answer,
            kind=kind,
            answer_type="open",
            group=f"embedded_dicom:{fact}",
            cloze=cloze,
            metadata={"fact": fact},
        )
        for fact, question, answer, kind, cloze in items
    ]


def flip_policy(kind: str, items: list[QAItem]) -> str:
    """Return the flip policy of a study from its image kind and questions."""
    if kind == "phantom":
        return "swap"
    texts = [text for item in items for text in (item.question, item.answer, *item.alternatives)]
    return "forbidden" if any(mentions_side(text) for text in texts) else "allowed"


def test_rng(dataset: str, seed: int, study_id: str) -> random.Random:
    return random.Random(derive_seed(dataset, seed, "test_transform", study_id))


def planned_transform(dataset: str, seed: int, study_id: str, policy: str) -> dict[str, Any]:
    """Return the test transform a study will get, without its image.

    `test_transform` draws the same numbers whatever the image, so a small
    blank image gives the exact description the real one gets later.
    """
    blank = Image.new("L", (8, 8))
    _, description = test_transform(blank, test_rng(dataset, seed, study_id), policy != "forbidden")
    return description


class StudyImages:
    """Renders, encodes and caches the images of one shard's studies.

    `seconds` accumulates the time spent on image work, for the benchmark.
    """

    def __init__(self, dataset: str, seed: int, max_side: int, phantom_size: int) -> None:
        self.dataset = dataset
        self.seed = seed
        self.max_side = max_side
        self.phantom_size = phantom_size
        self.seconds = 0.0
        self._cache: dict[tuple[str, str], EncodedImage] = {}
        self._series: dict[tuple[int, int, int, int], list[phantom.PhantomSpec]] = {}

    def source_image(self, image: dict[str, Any]) -> Image.Image:
        """Return a study's picture as published, before any test transform."""
        if image["kind"] == "phantom":
            key = (image["source"], image["number"], image["attempt"], image["visits"])
            if key not in self._series:
                self._series[key] = phantom_series(self.dataset, self.seed, *key)
            spec = self._series[key][image["visit"]]
            return phantom.draw_phantom(spec, image.get("size", self.phantom_size))
        loaded = image_io.load_image(Path(image["path"]))
        return downscale(loaded.image, self.max_side)

    def get(self, study: dict[str, Any], variant: str) -> EncodedImage:
        """Return the encoded image of a study, or of its test view when `variant` is test."""
        key = (study["study_id"], variant)
        if key in self._cache:
            return self._cache[key]

        started = time.perf_counter()
        picture = self.source_image(study["image"])
        if variant == "test":
            rng = test_rng(self.dataset, self.seed, study["study_id"])
            picture, description = test_transform(picture, rng, study["flip"] != "forbidden")
            if description != study["test_transform"]:
                raise RuntimeError(
                    f"study {study['study_id']}: test transform {description} differs from the "
                    f"planned {study['test_transform']}"
                )

        png = image_io.encode_png(picture)
        encoded = EncodedImage(
            png=png,
            image_id=image_io.content_hash(png),
            phash=phash_hex(picture),
            width=picture.width,
            height=picture.height,
        )
        if variant != "test" and encoded.phash != study["phash"]:
            raise RuntimeError(
                f"study {study['study_id']}: perceptual hash {encoded.phash} differs from the "
                f"planned {study['phash']}; the image changed after planning"
            )
        self._cache[key] = encoded
        self.seconds += time.perf_counter() - started
        return encoded
