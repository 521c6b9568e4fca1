"""Turn a planned record and its rendered images into rows of the `qa` and `images` tables."""

from __future__ import annotations

import json
from typing import Any

from corpusforge.generators.med_mim.conversation import build_conversation, closed_answer
from corpusforge.generators.med_mim.facts import ImageFacts
from corpusforge.generators.med_mim.images import PreparedImage
from corpusforge.generators.med_mim.letters import LETTERS


def phash_hex(value: int) -> str:
    """Return a 64-bit perceptual hash as 16 hex digits."""
    return f"{value:016x}"


def image_metadata(facts: ImageFacts, image: PreparedImage) -> dict[str, Any]:
    """Return the per-image metadata cell: patient, visit, view and what the image shows."""
    return {
        "patient": facts.patient,
        "visit": facts.visit,
        "follow_up": facts.follow_up,
        "age": facts.age,
        "sex": facts.sex,
        "view": facts.view,
        "modality": facts.modality,
        "region": facts.region,
        "plane": facts.plane,
        "source_image": facts.source_image,
        "phash": phash_hex(image.phash),
        "width": image.width,
        "height": image.height,
    }


def qa_row(
    unit: dict[str, Any],
    facts: list[ImageFacts],
    images: list[PreparedImage],
    source_format: str,
    source_file: str,
    embed_images: bool,
) -> dict[str, Any]:
    """Return one `qa` row; `images` is null unless `embed_images`."""
    closed = unit["closed"]
    options = unit["options"] if closed else []
    if closed:
        letter = unit["letter"]
        answer = closed_answer(letter, options[LETTERS.index(letter)])
    else:
        letter = None
        answer = unit["answer"]
    return {
        "id": unit["id"],
        "ability": unit["ability"],
        "question_type": "closed" if closed else "open",
        "task": unit["task"],
        "num_images": len(images),
        "image_ids": [image.sha256 for image in images],
        "images": [image.cell() for image in images] if embed_images else None,
        "image_metadata": [
            image_metadata(image_facts, image)
            for image_facts, image in zip(facts, images, strict=True)
        ],
        "question": unit["question"],
        "options": options,
        "answer": answer,
        "correct_option": letter,
        "referenced_images": unit["referenced"],
        "conversation": build_conversation(unit["question"], options, answer, len(images)),
        "source": source_format,
        "source_file": source_file,
        "generator": unit["generator"],
        "metadata": json.dumps(unit["metadata"], sort_keys=True, ensure_ascii=False),
    }


def image_row(facts: ImageFacts, image: PreparedImage, source_format: str) -> dict[str, Any]:
    """Return one row of the `images` table."""
    return {
        "image_id": image.sha256,
        "image": image.cell(),
        "width": image.width,
        "height": image.height,
        "patient": facts.patient,
        "source": source_format,
        "source_image": facts.source_image,
        "phash": phash_hex(image.phash),
    }
