"""Comparison: what differs between two images.

Two visits of one patient (the earlier first) give questions on which image
shows a finding, whether the findings are the same, and whether they are
improving, stable, worsening or mixed. Two unrelated images (the composed
branch) give questions on body region and modality.
"""

from __future__ import annotations

import random

from corpusforge.generators.med_mim import findings as fx
from corpusforge.generators.med_mim.drafts import (
    NO,
    YES,
    Draft,
    Task,
    closed_draft,
    open_draft,
)
from corpusforge.generators.med_mim.facts import ImageFacts, finding_phrase

ABILITY = "comparison"
WHICH_OPTIONS = ("only the first image", "only the second image", "both images", "neither image")
# Share of `which_shows` questions that ask about a finding neither image shows.
ABSENT_FINDING_SHARE = 0.2


def is_series(images: list[ImageFacts]) -> bool:
    """Return whether the images are visits of one patient in increasing follow-up order."""
    if any(image.follow_up is None for image in images):
        return False
    same_patient = len({image.patient for image in images}) == 1
    increasing = all(a.follow_up < b.follow_up for a, b in zip(images, images[1:], strict=False))
    return same_patient and increasing


def _ask(images: list[ImageFacts], question: str) -> str:
    if is_series(images):
        first, second = images
        return (
            f"These two images show one patient at follow-up visits {first.follow_up} and "
            f"{second.follow_up}, the earlier first. {question}"
        )
    return question


def which_shows(images: list[ImageFacts], rng: random.Random, closed: bool) -> Draft | None:
    if len(images) != 2 or not fx.has_findings(images):
        return None
    first, second = fx.findings_of(images[0]), fx.findings_of(images[1])
    absent = sorted(set(fx.finding_universe(images[0])) - first - second)
    present = sorted(first | second)
    if present and (not absent or rng.random() >= ABSENT_FINDING_SHARE):
        label = rng.choice(present)
    elif absent:
        label = rng.choice(absent)
    else:
        return None
    in_first, in_second = label in first, label in second
    if in_first and in_second:
        index = 2
    elif in_first:
        index = 0
    elif in_second:
        index = 1
    else:
        index = 3
    name = finding_phrase(label)
    if closed:
        question = _ask(images, f"Which of the two images shows {name}?")
        distractors = [option for option in WHICH_OPTIONS if option != WHICH_OPTIONS[index]]
        return closed_draft(
            ABILITY, "which_shows", question, WHICH_OPTIONS[index], distractors, rng, [1, 2]
        )
    answers = (
        f"Only the first image shows {name}.",
        f"Only the second image shows {name}.",
        f"Both images show {name}.",
        f"Neither image shows {name}.",
    )
    question = _ask(images, f"Which of the two images shows {name}, if any?")
    return open_draft(ABILITY, "which_shows", question, answers[index], [1, 2])


def same_findings(images: list[ImageFacts], rng: random.Random, closed: bool) -> Draft | None:
    if len(images) != 2 or not fx.has_findings(images):
        return None
    first, second = fx.findings_of(images[0]), fx.findings_of(images[1])
    same = first == second
    if closed:
        question = _ask(images, "Do the two images show the same findings?")
        correct, wrong = (YES, NO) if same else (NO, YES)
        return closed_draft(ABILITY, "same_findings", question, correct, [wrong], rng, [1, 2])
    question = _ask(images, "Do the two images show the same findings? Explain.")
    if same:
        answer = f"Yes: both images show {fx.describe_findings(first)}."
    else:
        answer = (
            f"No: the first image shows {fx.describe_findings(first)} and the second image "
            f"shows {fx.describe_findings(second)}."
        )
    return open_draft(ABILITY, "same_findings", question, answer, [1, 2])


def trend(images: list[ImageFacts], rng: random.Random, closed: bool) -> Draft | None:
    if len(images) != 2 or not fx.has_findings(images) or not is_series(images):
        return None
    verdict, reasons = fx.trend(images[0], images[1])
    if closed:
        question = _ask(
            images,
            "Between the earlier and the later image, are the findings improving, stable or "
            "worsening, or is the change mixed?",
        )
        distractors = [fx.TREND_OPTIONS[name] for name in fx.TRENDS if name != verdict]
        return closed_draft(
            ABILITY, "trend", question, fx.TREND_OPTIONS[verdict], distractors, rng, [1, 2]
        )
    question = _ask(images, "How do the findings change between the earlier and the later image?")
    if verdict == "stable":
        answer = (
            f"They are stable: both images show {fx.describe_findings(fx.findings_of(images[0]))}."
        )
    elif verdict == "mixed":
        answer = f"The change is mixed: {'; '.join(reasons)}."
    else:
        answer = f"The findings are {verdict}: {'; '.join(reasons)}."
    return open_draft(ABILITY, "trend", question, answer, [1, 2])


def lesion_count_compare(
    images: list[ImageFacts], rng: random.Random, closed: bool
) -> Draft | None:
    if len(images) != 2 or any(image.lesion_count is None for image in images):
        return None
    first, second = images[0].lesion_count, images[1].lesion_count
    options = ("the first image", "the second image", "both show the same number")
    if first > second:
        index = 0
    elif second > first:
        index = 1
    else:
        index = 2
    question = _ask(images, "Which image shows more lesions?")
    if closed:
        distractors = [option for option in options if option != options[index]]
        return closed_draft(
            ABILITY, "lesion_count_compare", question, options[index], distractors, rng, [1, 2]
        )
    counts = f"{first} lesion{'s' if first != 1 else ''} in the first and {second} in the second"
    verdicts = ("The first image", "The second image", "Neither: both show the same number")
    return open_draft(
        ABILITY, "lesion_count_compare", question, f"{verdicts[index]} ({counts}).", [1, 2]
    )


def _same_attribute(attribute: str, label: str) -> Task:
    """Return the yes/no task asking whether both images share `attribute` (region, modality)."""
    task_name = f"same_{attribute}"

    def task(images: list[ImageFacts], rng: random.Random, closed: bool) -> Draft | None:
        values = [getattr(image, attribute) for image in images]
        if len(images) != 2 or None in values:
            return None
        same = values[0] == values[1]
        question = f"Do the two images show the same {label}?"
        if closed:
            correct, wrong = (YES, NO) if same else (NO, YES)
            return closed_draft(ABILITY, task_name, question, correct, [wrong], rng, [1, 2])
        if same:
            answer = f"Yes: both images show the same {label}, {values[0]}."
        else:
            answer = f"No: the first image shows {values[0]} and the second shows {values[1]}."
        return open_draft(ABILITY, task_name, question, answer, [1, 2])

    return task


TASKS: dict[str, Task] = {
    "which_shows": which_shows,
    "same_findings": same_findings,
    "trend": trend,
    "lesion_count_compare": lesion_count_compare,
    "same_region": _same_attribute("region", "body region"),
    "same_modality": _same_attribute("modality", "imaging modality"),
}
