"""Reasoning: one conclusion that needs facts from several images of a case.

Over visits of one patient: how many images show a finding, which finding is
seen most often, whether a finding is present throughout, and for phantoms the
largest lesion and the sides with lesions over all images. Over composed sets:
how many images show a body region or modality, and whether all show the same
region.
"""

from __future__ import annotations

import random
from collections import Counter

from corpusforge.generators.med_mim import findings as fx
from corpusforge.generators.med_mim.comparison import is_series
from corpusforge.generators.med_mim.drafts import (
    NO,
    YES,
    Draft,
    Task,
    closed_draft,
    open_draft,
)
from corpusforge.generators.med_mim.facts import (
    ImageFacts,
    finding_name,
    finding_phrase,
    join_words,
    ordinal,
)
from corpusforge.generators.med_mim.temporal import series_context

ABILITY = "reasoning"
NUMBER_WORDS = ("none", "one", "two", "three", "four", "five", "six", "seven", "eight")
SIDE_OPTIONS = {
    frozenset(): "no lesion in any image",
    frozenset({fx.LEFT_LESION}): "the patient's left side only",
    frozenset({fx.RIGHT_LESION}): "the patient's right side only",
    frozenset(fx.PHANTOM_FINDINGS): "both sides",
}
# Largest-lesion options differ by at least this many millimetres, so that each
# is clearly right or wrong.
SIZE_OPTION_STEP_MM = 3


def _ask(images: list[ImageFacts], question: str) -> str:
    return f"{series_context(images)} {question}" if is_series(images) else question


def _count_options(count: int, total: int) -> tuple[str, list[str]]:
    """Return the correct count and every other count from 0 to `total` as options."""
    options = [str(n) for n in range(total + 1)]
    return str(count), [option for option in options if option != str(count)]


def _positions(indices: list[int]) -> str:
    return join_words([f"the {ordinal(index)}" for index in indices])


def count_with_findings(images: list[ImageFacts], rng: random.Random, closed: bool) -> Draft | None:
    if not fx.has_findings(images):
        return None
    showing = [i for i, image in enumerate(images, 1) if fx.findings_of(image)]
    question = _ask(images, "How many of these images show at least one finding?")
    if closed:
        correct, distractors = _count_options(len(showing), len(images))
        return closed_draft(
            ABILITY,
            "count_with_findings",
            question,
            correct,
            distractors,
            rng,
            max_options=len(images) + 1,
        )
    if showing:
        answer = f"{NUMBER_WORDS[len(showing)]} of the {len(images)}: {_positions(showing)}"
        answer = answer[0].upper() + answer[1:] + (" image." if len(showing) == 1 else " images.")
    else:
        answer = "None of them: every image is without findings."
    return open_draft(ABILITY, "count_with_findings", question, answer)


def most_frequent_finding(
    images: list[ImageFacts], rng: random.Random, closed: bool
) -> Draft | None:
    if not fx.has_findings(images):
        return None
    counts = Counter(label for image in images for label in fx.findings_of(image))
    if not counts:
        return None
    ranked = counts.most_common()
    if len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
        return None
    label, count = ranked[0]
    question = _ask(images, "Which finding is seen in the largest number of these images?")
    if closed:
        wrong = set(fx.finding_universe(images[0])) - {label}
        seen = sorted(wrong & set(counts))
        unseen = sorted(wrong - set(counts))
        rng.shuffle(unseen)
        distractors = [finding_name(other) for other in seen + unseen]
        return closed_draft(
            ABILITY, "most_frequent_finding", question, finding_name(label), distractors, rng
        )
    answer = f"{finding_name(label)}, seen in {count} of the {len(images)} images."
    return open_draft(ABILITY, "most_frequent_finding", question, answer[0].upper() + answer[1:])


def finding_throughout(images: list[ImageFacts], rng: random.Random, closed: bool) -> Draft | None:
    if not fx.has_findings(images):
        return None
    seen = sorted(set().union(*(fx.findings_of(image) for image in images)))
    if not seen:
        return None
    label = rng.choice(seen)
    missing = [i for i, image in enumerate(images, 1) if label not in fx.findings_of(image)]
    name = finding_phrase(label)
    question = _ask(images, f"Is {name} present in every one of these images?")
    if closed:
        correct, wrong = (NO, YES) if missing else (YES, NO)
        return closed_draft(ABILITY, "finding_throughout", question, correct, [wrong], rng)
    if missing:
        word = "image" if len(missing) == 1 else "images"
        answer = f"No: {name} is absent from {_positions(missing)} {word}."
    else:
        answer = f"Yes: every image shows {name}."
    return open_draft(ABILITY, "finding_throughout", question, answer)


def largest_lesion(images: list[ImageFacts], rng: random.Random, closed: bool) -> Draft | None:
    sizes = [image.largest_lesion_mm for image in images]
    if None in sizes or max(sizes) <= 0:
        return None
    largest = round(max(sizes))
    question = _ask(
        images,
        "What is the diameter of the largest lesion seen in any of these images, to the nearest "
        "millimetre?",
    )
    if closed:
        step = SIZE_OPTION_STEP_MM
        candidates = [largest + step * k for k in (-3, -2, -1, 1, 2, 3) if largest + step * k > 0]
        distractors = [f"{value} mm" for value in candidates]
        return closed_draft(ABILITY, "largest_lesion", question, f"{largest} mm", distractors, rng)
    where = [i for i, size in enumerate(sizes, 1) if round(size) == largest]
    word = "image" if len(where) == 1 else "images"
    answer = f"{largest} mm, in {_positions(where)} {word}."
    return open_draft(ABILITY, "largest_lesion", question, answer)


def lesion_sides(images: list[ImageFacts], rng: random.Random, closed: bool) -> Draft | None:
    if any(image.lesion_count is None or image.plane == "sagittal" for image in images):
        return None
    sides = set().union(*(fx.findings_of(image) for image in images))
    correct = SIDE_OPTIONS[frozenset(sides)]
    question = _ask(images, "Over all of these images, on which side are lesions seen?")
    if closed:
        distractors = [option for option in SIDE_OPTIONS.values() if option != correct]
        return closed_draft(ABILITY, "lesion_sides", question, correct, distractors, rng)
    return open_draft(ABILITY, "lesion_sides", question, correct[0].upper() + correct[1:] + ".")


def _count_attribute(attribute: str, describe: str) -> Task:
    """Return the task asking how many images have a value of `attribute` (region, modality)."""
    task_name = f"count_{attribute}"

    def task(images: list[ImageFacts], rng: random.Random, closed: bool) -> Draft | None:
        values = [getattr(image, attribute) for image in images]
        if None in values:
            return None
        value = rng.choice(sorted(set(values)))
        matching = [i for i, other in enumerate(values, 1) if other == value]
        question = f"How many of these images {describe.format(value=value)}?"
        if closed:
            correct, distractors = _count_options(len(matching), len(images))
            return closed_draft(
                ABILITY, task_name, question, correct, distractors, rng, max_options=len(images) + 1
            )
        word = "image" if len(matching) == 1 else "images"
        answer = f"{NUMBER_WORDS[len(matching)]}: {_positions(matching)} {word}."
        return open_draft(ABILITY, task_name, question, answer[0].upper() + answer[1:])

    return task


def same_region_all(images: list[ImageFacts], rng: random.Random, closed: bool) -> Draft | None:
    regions = [image.region for image in images]
    if None in regions or len(images) < 3:
        return None
    same = len(set(regions)) == 1
    question = "Do all of these images show the same body region?"
    if closed:
        correct, wrong = (YES, NO) if same else (NO, YES)
        return closed_draft(ABILITY, "same_region_all", question, correct, [wrong], rng)
    if same:
        answer = f"Yes: every image shows the {regions[0]}."
    else:
        parts = [f"the {ordinal(i)} the {region}" for i, region in enumerate(regions, 1)]
        parts[0] = f"the first image shows the {regions[0]}"
        answer = f"No: {join_words(parts)}."
    return open_draft(ABILITY, "same_region_all", question, answer)


TASKS: dict[str, Task] = {
    "count_with_findings": count_with_findings,
    "most_frequent_finding": most_frequent_finding,
    "finding_throughout": finding_throughout,
    "largest_lesion": largest_lesion,
    "lesion_sides": lesion_sides,
    "count_region": _count_attribute("region", "show the {value}"),
    "count_modality": _count_attribute("modality", "are {value} images"),
    "same_region_all": same_region_all,
}
