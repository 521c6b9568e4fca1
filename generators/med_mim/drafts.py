"""A question before its options are placed, and the checks every composed question passes.

Question templates (temporal.py, reasoning.py, comparison.py, coreference.py)
return a `Draft`: the question, the correct option and its distractors for a
closed question, the reference answer for an open one, and the 1-based image
positions the question refers to. The planner later places the options by the
release-wide letter plan.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from corpusforge.generators.med_mim.facts import ImageFacts, ordinal
from corpusforge.generators.med_mim.letters import MAX_OPTIONS

# Closed questions offer at most this many options unless the answer space is
# fixed, such as the image positions of a four-image set plus "none".
DEFAULT_OPTIONS = 4

YES = "Yes"
NO = "No"


@dataclass
class Draft:
    """One question about an ordered image set.

    For a closed question `correct` is the correct option and `distractors` the
    wrong ones; `answer` is the reference answer of the open form. `referenced`
    lists the 1-based positions of the images the question names.
    """

    ability: str
    task: str
    question: str
    closed: bool
    correct: str = ""
    distractors: list[str] = field(default_factory=list)
    answer: str = ""
    referenced: list[int] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)


# A task turns an image set into a Draft, or returns None when the set's facts
# cannot support the task (for example no new finding between two visits).
Task = Callable[[list[ImageFacts], random.Random, bool], "Draft | None"]


def closed_draft(
    ability: str,
    task: str,
    question: str,
    correct: str,
    distractors: Sequence[str],
    rng: random.Random,
    referenced: Sequence[int] = (),
    max_options: int = DEFAULT_OPTIONS,
    **metadata: Any,
) -> Draft | None:
    """Return a closed Draft with up to `max_options - 1` distractors, or None without any.

    Distractors equal to the correct option or to each other are dropped, so
    exactly one option is correct.
    """
    unique = []
    for option in distractors:
        if option != correct and option not in unique:
            unique.append(option)
    if not unique:
        return None
    chosen = rng.sample(unique, min(len(unique), max_options - 1))
    return Draft(
        ability=ability,
        task=task,
        question=question,
        closed=True,
        correct=correct,
        distractors=chosen,
        referenced=list(referenced),
        metadata=metadata,
    )


def open_draft(
    ability: str,
    task: str,
    question: str,
    answer: str,
    referenced: Sequence[int] = (),
    **metadata: Any,
) -> Draft:
    return Draft(
        ability=ability,
        task=task,
        question=question,
        closed=False,
        answer=answer,
        referenced=list(referenced),
        metadata=metadata,
    )


def position_options(count: int) -> list[str]:
    """Return `the first image`, `the second image`, ... for `count` images."""
    return [f"the {ordinal(position)} image" for position in range(1, count + 1)]


def number_distractors(value: int, rng: random.Random, low: int = 0, spread: int = 3) -> list[str]:
    """Return distinct whole numbers near `value`, at least `low`, as text."""
    candidates = [n for n in range(max(low, value - spread), value + spread + 1) if n != value]
    rng.shuffle(candidates)
    return [str(n) for n in candidates]


def sentence(text: str) -> str:
    """Capitalize the first letter and end with a full stop."""
    text = text.strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "?", "!")) else text + "."


def verify_draft(draft: Draft, num_images: int) -> str | None:
    """Return why a Draft is unusable, or None when it passes.

    Every composer's output must pass these checks. The question is not empty.
    A closed question has 2 to 8 distinct, non-empty options, so exactly one is
    correct; an open one has a non-empty reference answer. Referenced image
    positions lie within 1..num_images.
    """
    if not draft.question.strip():
        return "empty question"
    if draft.closed:
        options = [draft.correct, *draft.distractors]
        if any(not option.strip() for option in options):
            return "empty option"
        if len(set(options)) != len(options):
            return "options repeat, so more than one may be correct"
        if not 2 <= len(options) <= MAX_OPTIONS:
            return f"{len(options)} options; expected 2 to {MAX_OPTIONS}"
    elif not draft.answer.strip():
        return "empty reference answer"
    if any(not 1 <= position <= num_images for position in draft.referenced):
        return f"referenced positions {draft.referenced} outside 1..{num_images}"
    return None
