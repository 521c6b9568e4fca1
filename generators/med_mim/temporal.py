"""Temporal understanding: visits of one patient, shown in follow-up order.

The question names the follow-up numbers and ages of the visits, because the
images carry no dates (ChestX-ray14 records only the follow-up number and the
age in years). Tasks ask which findings are new, resolved or persistent, which
visit first shows a finding, how the findings changed from the first to the last
visit, and the interval between the visits in follow-up steps and in years.
"""

from __future__ import annotations

import random

from corpusforge.generators.med_mim import findings as fx
from corpusforge.generators.med_mim.drafts import (
    Draft,
    Task,
    closed_draft,
    number_distractors,
    open_draft,
    position_options,
    sentence,
)
from corpusforge.generators.med_mim.facts import (
    ImageFacts,
    finding_name,
    finding_phrase,
    join_words,
    ordinal,
)

ABILITY = "temporal"


def series_context(images: list[ImageFacts]) -> str:
    """Return the sentence that places the images in time, from their follow-up numbers and ages."""
    follow_ups = join_words([str(image.follow_up) for image in images])
    text = f"These {len(images)} images show one patient at follow-up visits {follow_ups}"
    if all(image.age is not None for image in images):
        text += f" (ages {join_words([str(image.age) for image in images])})"
    return text + ", in that order."


def _ask(images: list[ImageFacts], question: str) -> str:
    return f"{series_context(images)} {question}"


def _finding_distractors(images: list[ImageFacts], wrong: set[str], rng: random.Random) -> list:
    """Return wrong findings as words, those seen in the images first, then others."""
    seen = set().union(*(fx.findings_of(image) for image in images))
    preferred = sorted(wrong & seen)
    others = sorted(wrong - seen)
    rng.shuffle(preferred)
    rng.shuffle(others)
    return [finding_name(label) for label in preferred + others]


def _change_task(kind: str) -> Task:
    """Return the task that asks which findings are `new` or `resolved` at the last visit."""

    def task(images: list[ImageFacts], rng: random.Random, closed: bool) -> Draft | None:
        if not fx.has_findings(images):
            return None
        first, last = fx.findings_of(images[0]), fx.findings_of(images[-1])
        changed = last - first if kind == "new" else first - last
        if not changed:
            return None
        where = (
            "present in the last image but not in the first"
            if kind == "new"
            else "present in the first image but no longer in the last"
        )
        name = f"{kind}_finding"
        if closed:
            correct = rng.choice(sorted(changed))
            universe = set(fx.finding_universe(images[0]))
            distractors = _finding_distractors(images, universe - changed, rng)
            question = _ask(images, f"Which of these findings is {where}?")
            return closed_draft(ABILITY, name, question, finding_name(correct), distractors, rng)
        verb = "is" if len(changed) == 1 else "are"
        answer = f"{fx.describe_findings(changed)} {verb} {where}"
        return open_draft(
            ABILITY, name, _ask(images, f"Which findings are {where}?"), sentence(answer)
        )

    return task


def persistent_finding(images: list[ImageFacts], rng: random.Random, closed: bool) -> Draft | None:
    if not fx.has_findings(images):
        return None
    persistent = set.intersection(*(fx.findings_of(image) for image in images))
    if not persistent:
        return None
    if closed:
        correct = rng.choice(sorted(persistent))
        universe = set(fx.finding_universe(images[0]))
        distractors = _finding_distractors(images, universe - persistent, rng)
        question = _ask(images, "Which of these findings is present in every image?")
        return closed_draft(
            ABILITY, "persistent_finding", question, finding_name(correct), distractors, rng
        )
    verb = "is" if len(persistent) == 1 else "are"
    answer = sentence(f"{fx.describe_findings(persistent)} {verb} present in every image")
    question = _ask(images, "Which findings are present in every image?")
    return open_draft(ABILITY, "persistent_finding", question, answer)


def first_appearance(images: list[ImageFacts], rng: random.Random, closed: bool) -> Draft | None:
    """Ask which image first shows a finding that the first image does not show."""
    if not fx.has_findings(images):
        return None
    first = fx.findings_of(images[0])
    later = set().union(*(fx.findings_of(image) for image in images[1:])) - first
    if not later:
        return None
    label = rng.choice(sorted(later))
    position = next(i for i, image in enumerate(images, 1) if label in fx.findings_of(image))
    question = _ask(images, f"In which image does {finding_phrase(label)} first appear?")
    if closed:
        options = position_options(len(images))
        correct = options[position - 1]
        distractors = [option for option in options if option != correct]
        return closed_draft(
            ABILITY,
            "first_appearance",
            question,
            correct,
            distractors,
            rng,
            max_options=len(options),
        )
    follow_up = images[position - 1].follow_up
    answer = f"It first appears in the {ordinal(position)} image, at follow-up {follow_up}."
    return open_draft(ABILITY, "first_appearance", question, answer)


def change_first_last(images: list[ImageFacts], rng: random.Random, closed: bool) -> Draft | None:
    if not fx.has_findings(images):
        return None
    verdict, reasons = fx.trend(images[0], images[-1])
    if closed:
        question = _ask(
            images,
            "How did the findings change from the first to the last image: are they improving, "
            "stable or worsening, or is the change mixed?",
        )
        distractors = [fx.TREND_OPTIONS[name] for name in fx.TRENDS if name != verdict]
        return closed_draft(
            ABILITY, "change_first_last", question, fx.TREND_OPTIONS[verdict], distractors, rng
        )
    question = _ask(images, "How did the findings change from the first to the last image?")
    if verdict == "stable":
        same = fx.describe_findings(fx.findings_of(images[0]))
        answer = f"They are stable: both the first and the last image show {same}."
    elif verdict == "mixed":
        answer = f"The change is mixed: {'; '.join(reasons)}."
    else:
        answer = f"The findings are {verdict}: {'; '.join(reasons)}."
    return open_draft(ABILITY, "change_first_last", question, answer)


def interval_follow_up(images: list[ImageFacts], rng: random.Random, closed: bool) -> Draft | None:
    steps = images[-1].follow_up - images[0].follow_up
    question = _ask(images, "How many follow-up steps separate the first and the last image?")
    if closed:
        distractors = number_distractors(steps, rng, low=1)
        return closed_draft(ABILITY, "interval_follow_up", question, str(steps), distractors, rng)
    answer = (
        f"{steps} follow-up step{'s' if steps != 1 else ''}: the first image is follow-up "
        f"{images[0].follow_up} and the last is follow-up {images[-1].follow_up}."
    )
    return open_draft(ABILITY, "interval_follow_up", question, answer)


def interval_age(images: list[ImageFacts], rng: random.Random, closed: bool) -> Draft | None:
    if images[0].age is None or images[-1].age is None:
        return None
    years = images[-1].age - images[0].age
    if years < 0:
        return None
    question = _ask(
        images, "How many years older is the patient in the last image than in the first?"
    )
    if closed:
        distractors = number_distractors(years, rng, low=0)
        return closed_draft(ABILITY, "interval_age", question, str(years), distractors, rng)
    answer = (
        f"{years} year{'s' if years != 1 else ''}: the patient is {images[0].age} in the first "
        f"image and {images[-1].age} in the last."
    )
    return open_draft(ABILITY, "interval_age", question, answer)


def lesion_count_change(images: list[ImageFacts], rng: random.Random, closed: bool) -> Draft | None:
    first, last = images[0].lesion_count, images[-1].lesion_count
    if first is None or last is None:
        return None
    if last > first:
        change = "increases"
    elif last < first:
        change = "decreases"
    else:
        change = "stays the same"
    question = _ask(
        images, "How does the number of lesions change from the first to the last image?"
    )
    if closed:
        distractors = [c for c in ("increases", "decreases", "stays the same") if c != change]
        return closed_draft(ABILITY, "lesion_count_change", question, change, distractors, rng)
    answer = f"It {change}: {first} lesion{'s' if first != 1 else ''} in the first image"
    answer += f" and {last} in the last."
    return open_draft(ABILITY, "lesion_count_change", question, answer)


TASKS: dict[str, Task] = {
    "new_finding": _change_task("new"),
    "resolved_finding": _change_task("resolved"),
    "persistent_finding": persistent_finding,
    "first_appearance": first_appearance,
    "change_first_last": change_first_last,
    "interval_follow_up": interval_follow_up,
    "interval_age": interval_age,
    "lesion_count_change": lesion_count_change,
}
