"""Answer kinds, plausible wrong answers and classification distractors.

An incorrectness injection replaces a correct answer with a plausible wrong one
of the same kind: yes and no are swapped; an organ, plane, modality or side is
swapped within its category; a multiple-choice answer becomes another option;
a count or size is shifted; a free-text answer has left and right swapped or
becomes another answer to the same type of question. The first wrong answer
that `wrong_answers` returns is the one an injection uses, and the others fill
the classification options.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

# Categories whose answers are swapped within their own vocabulary. Keys are the
# answer kinds; values are the canonical spellings offered as wrong answers.
CATEGORIES: dict[str, tuple[str, ...]] = {
    "modality": ("X-ray", "CT", "MRI", "ultrasound", "PET", "nuclear medicine"),
    "plane": ("axial", "sagittal", "coronal", "oblique"),
    "projection": ("PA", "AP", "lateral", "oblique"),
    "region": ("chest", "head", "abdomen", "pelvis", "spine", "neck"),
    "organ": (
        "brain",
        "lung",
        "heart",
        "liver",
        "kidney",
        "spleen",
        "pancreas",
        "stomach",
        "gallbladder",
        "bladder",
    ),
    "side": ("left", "right", "both", "none"),
}
# Spellings in source answers that mean a canonical category value.
SYNONYMS: dict[str, tuple[str, str]] = {
    "xray": ("modality", "X-ray"),
    "x-ray": ("modality", "X-ray"),
    "x ray": ("modality", "X-ray"),
    "radiograph": ("modality", "X-ray"),
    "plain film": ("modality", "X-ray"),
    "ct": ("modality", "CT"),
    "ct scan": ("modality", "CT"),
    "mri": ("modality", "MRI"),
    "mr": ("modality", "MRI"),
    "ultrasound": ("modality", "ultrasound"),
    "us": ("modality", "ultrasound"),
    "pet": ("modality", "PET"),
    "nuclear medicine": ("modality", "nuclear medicine"),
    "nm": ("modality", "nuclear medicine"),
    "axial": ("plane", "axial"),
    "transverse": ("plane", "axial"),
    "sagittal": ("plane", "sagittal"),
    "coronal": ("plane", "coronal"),
    "pa": ("projection", "PA"),
    "ap": ("projection", "AP"),
    "lateral": ("projection", "lateral"),
}
# Question types of VQA-RAD (and of manifests that use its labels) that name a category.
QUESTION_TYPE_CATEGORIES = {"MODALITY": "modality", "PLANE": "plane", "ORGAN": "organ"}
YES_NO = ("yes", "no")
YES_NO_MAYBE = ("yes", "no", "maybe")
# Wrong options for yes/no questions beyond the swapped answer. They are false for
# every question the sources ask, because each question has a yes or no answer.
YES_NO_FILLERS = ("cannot be determined", "not applicable")
NUMBER_PATTERN = re.compile(r"^(\d+(?:\.\d+)?)\s*([a-z%]*)$")
SIZE_UNITS = ("mm", "cm", "m", "ml", "cc", "%")
SIDE_PATTERN = re.compile(r"\b(left|right|Left|Right|LEFT|RIGHT)\b")
_SIDE_SWAP = {
    "left": "right",
    "right": "left",
    "Left": "Right",
    "Right": "Left",
    "LEFT": "RIGHT",
    "RIGHT": "LEFT",
}
# Multipliers of a size answer; each changes the value by at least a third.
SIZE_FACTORS = (0.5, 0.6, 1.5, 2.0)
COUNT_SHIFTS = (-2, -1, 1, 2, 3)


def normalize(text: str) -> str:
    """Return `text` lower-cased with collapsed spaces and no trailing period, for comparisons."""
    return re.sub(r"\s+", " ", str(text)).strip().rstrip(".").strip().lower()


def mentions_side(text: str) -> bool:
    """Return whether `text` contains the word left or right."""
    return SIDE_PATTERN.search(text) is not None


def swap_sides(text: str) -> str:
    """Return `text` with the words left and right exchanged, keeping their case."""
    return SIDE_PATTERN.sub(lambda match: _SIDE_SWAP[match.group(1)], text)


def category_of(answer: str) -> tuple[str, str] | None:
    """Return (category, canonical value) when the whole answer is a category term."""
    key = normalize(answer)
    if key in SYNONYMS:
        return SYNONYMS[key]
    for category, values in CATEGORIES.items():
        for value in values:
            if key == value.lower():
                return category, value
    return None


def answer_kind(answer: str, question_type: str = "") -> str:
    """Classify an answer: yes_no, count, size, a category name, or open.

    `question_type` is a VQA-RAD style label. An organ name counts as the organ
    category only when the question asks for an organ, because organ words are
    also common in free-text findings.
    """
    key = normalize(answer)
    if key in YES_NO:
        return "yes_no"
    match = NUMBER_PATTERN.match(key)
    if match and not match.group(2):
        return "count"
    if match and match.group(2) in SIZE_UNITS:
        return "size"
    category = category_of(answer)
    labels = {label.strip().upper() for label in question_type.split(",") if label.strip()}
    if category is not None and (category[0] != "organ" or "ORGAN" in labels):
        return category[0]
    return "open"


def _format_number(value: float, template: str) -> str:
    decimals = len(template.split(".")[1]) if "." in template else 0
    return f"{value:.{decimals}f}" if decimals else str(round(value))


def shifted_counts(answer: str, rng: random.Random, count: int) -> list[str]:
    """Return `count` distinct non-negative integers that differ from the answer."""
    value = int(float(normalize(answer)))
    shifts = list(COUNT_SHIFTS)
    rng.shuffle(shifts)
    results = []
    for shift in shifts:
        candidate = value + shift
        if candidate >= 0 and str(candidate) not in results and candidate != value:
            results.append(str(candidate))
    extra = value + 4
    while len(results) < count:
        results.append(str(extra))
        extra += 1
    return results[:count]


def shifted_sizes(answer: str, rng: random.Random, count: int) -> list[str]:
    """Return `count` distinct sizes in the answer's unit, each scaled by a SIZE_FACTORS value."""
    match = NUMBER_PATTERN.match(normalize(answer))
    if match is None:
        raise ValueError(f"not a size: {answer!r}")
    number, unit = match.group(1), match.group(2)
    spacer = " " if re.search(r"\d\s+[a-z%]", answer.strip().lower()) else ""
    factors = list(SIZE_FACTORS)
    rng.shuffle(factors)
    results: list[str] = []
    for factor in factors:
        scaled = _format_number(float(number) * factor, number)
        text = f"{scaled}{spacer}{unit}"
        if normalize(text) != normalize(answer) and text not in results:
            results.append(text)
    return results[:count]


def wrong_answers(
    answer: str,
    kind: str,
    rng: random.Random,
    *,
    count: int = 3,
    options: Sequence[str] = (),
    alternatives: Sequence[str] = (),
    pool: Sequence[str] = (),
) -> list[str]:
    """Return up to `count` distinct plausible wrong answers of the answer's kind.

    The first is the plausible injection (the swapped yes or no, for example).
    `options` are a multiple-choice question's options, `alternatives` are wrong
    answers written for a fact, and `pool` contains other answers to questions of
    the same type, used for free-text answers. Fewer than `count` results mean
    the kind has no more plausible wrong answers; callers reject such items.
    """
    correct = normalize(answer)
    candidates: list[str] = []
    if kind == "yes_no":
        candidates = ["no" if correct == "yes" else "yes", *YES_NO_FILLERS]
    elif kind == "yes_no_maybe":
        others = [value for value in YES_NO_MAYBE if value != correct]
        rng.shuffle(others)
        candidates = [*others, YES_NO_FILLERS[0]]
    elif kind == "choice":
        candidates = list(options)
        rng.shuffle(candidates)
    elif kind == "fact":
        candidates = list(alternatives)
        first, rest = candidates[:1], candidates[1:]
        rng.shuffle(rest)
        candidates = first + rest
    elif kind == "count":
        candidates = shifted_counts(answer, rng, count)
    elif kind == "size":
        candidates = shifted_sizes(answer, rng, count)
    elif kind in CATEGORIES:
        found = category_of(answer)
        canonical = found[1] if found else answer
        candidates = [value for value in CATEGORIES[kind] if value != canonical]
        if kind == "side" and canonical in ("left", "right"):
            # The opposite side is the most plausible mistake, so it comes first.
            opposite = "right" if canonical == "left" else "left"
            candidates.remove(opposite)
            rng.shuffle(candidates)
            candidates.insert(0, opposite)
        else:
            rng.shuffle(candidates)
    else:
        if mentions_side(answer):
            candidates.append(swap_sides(answer))
        others = sorted({value for value in pool if normalize(value) != correct})
        rng.shuffle(others)
        candidates.extend(others)

    results: list[str] = []
    seen = {correct}
    for candidate in candidates:
        key = normalize(candidate)
        if key and key not in seen:
            seen.add(key)
            results.append(candidate)
        if len(results) == count:
            break
    return results
