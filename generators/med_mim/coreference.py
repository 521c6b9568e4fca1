"""Co-reference: questions that point at one image of a set by its position.

The referenced image's own labels, metadata or single-image QA answer the
question; the other images are distractors. Position questions reuse a source
QA pair: "Is there pneumothorax?" becomes "In the third image, is there
pneumothorax?". Attribute questions ask what the n-th image shows, or which
image is the one with a given view, region or modality.
"""

from __future__ import annotations

import random
import re

from corpusforge.generators.med_mim import findings as fx
from corpusforge.generators.med_mim.drafts import (
    NO,
    YES,
    Draft,
    Task,
    closed_draft,
    open_draft,
    position_options,
    sentence,
)
from corpusforge.generators.med_mim.facts import (
    ImageFacts,
    QAPair,
    finding_name,
    finding_phrase,
    ordinal,
)

ABILITY = "coreference"

REGIONS = ("chest", "head", "abdomen")
MODALITIES = ("X-ray", "CT", "MRI")
PLANES = ("frontal", "axial", "coronal", "sagittal")
VIEWS = ("PA", "AP")

# Closed source answers whose alternatives are known, so that a closed question
# can offer them as options: each family lists every valid answer once.
ANSWER_FAMILIES = (
    (YES, NO),
    ("Left", "Right"),
    ("Male", "Female"),
    ("Axial", "Coronal", "Sagittal"),
    ("PA", "AP"),
)
_FAMILY_OF = {option.lower(): family for family in ANSWER_FAMILIES for option in family}
_CANONICAL = {option.lower(): option for family in ANSWER_FAMILIES for option in family}
_SPACES = re.compile(r"\s+")


def normalize_question(text: str) -> str:
    """Collapse whitespace and end the question with a question mark."""
    text = _SPACES.sub(" ", text).strip()
    return text if text.endswith("?") else text.rstrip(".") + "?"


def normalize_answer(text: str) -> str:
    """Return a source answer with collapsed whitespace and no final full stop."""
    return _SPACES.sub(" ", text).strip().rstrip(".").strip()


def answer_family(answer: str) -> tuple[str, tuple[str, ...]] | None:
    """Return (canonical answer, its family) when the answer has known alternatives."""
    key = normalize_answer(answer).lower()
    if key not in _FAMILY_OF:
        return None
    return _CANONICAL[key], _FAMILY_OF[key]


def position_question(question: str, position: int) -> str:
    """Return a single-image question asked about the image at `position`.

    The first letter is lower-cased unless the first word is an acronym, such as
    `MRI` or `CT`: `Is there pneumothorax?` becomes `In the second image, is
    there pneumothorax?`.
    """
    text = normalize_question(question)
    first_word = text.split(" ", 1)[0]
    if not (len(first_word) > 1 and first_word.isupper()):
        text = text[0].lower() + text[1:]
    return f"In the {ordinal(position)} image, {text}"


def _targets(images: list[ImageFacts], rng: random.Random, usable) -> list[int]:
    """Return the 1-based positions whose image passes `usable`, in random order."""
    positions = [i for i, image in enumerate(images, 1) if usable(image)]
    rng.shuffle(positions)
    return positions


def qa_at_position(images: list[ImageFacts], rng: random.Random, closed: bool) -> Draft | None:
    """Ask one image's source QA pair by its position; closed only when the answer has a family."""
    for position in _targets(images, rng, lambda image: bool(image.qa)):
        pairs = list(images[position - 1].qa)
        rng.shuffle(pairs)
        for pair in pairs:
            draft = _qa_draft(pair, position, rng, closed)
            if draft is not None:
                return draft
    return None


def _qa_draft(pair: QAPair, position: int, rng: random.Random, closed: bool) -> Draft | None:
    question = position_question(pair.question, position)
    metadata = {"source_qid": pair.qid, "source_question": pair.question}
    if closed:
        family = answer_family(pair.answer)
        if family is None:
            return None
        correct, options = family
        distractors = [option for option in options if option != correct]
        return closed_draft(
            ABILITY, "qa_at_position", question, correct, distractors, rng, [position], **metadata
        )
    answer = normalize_answer(pair.answer)
    if not answer:
        return None
    return open_draft(ABILITY, "qa_at_position", question, sentence(answer), [position], **metadata)


def findings_at_position(
    images: list[ImageFacts], rng: random.Random, closed: bool
) -> Draft | None:
    if not fx.has_findings(images):
        return None
    for position in _targets(images, rng, lambda image: bool(image.findings) or not closed):
        target = fx.findings_of(images[position - 1])
        prefix = f"In the {ordinal(position)} image,"
        if not closed:
            question = f"{prefix} which findings are present?"
            answer = sentence(fx.describe_findings(target))
            return open_draft(ABILITY, "findings_at_position", question, answer, [position])
        correct = rng.choice(sorted(target))
        others = set().union(*(fx.findings_of(image) for image in images)) - target
        absent = set(fx.finding_universe(images[0])) - target - others
        preferred, rest = sorted(others), sorted(absent)
        rng.shuffle(preferred)
        rng.shuffle(rest)
        distractors = [finding_name(label) for label in preferred + rest]
        question = f"{prefix} which of these findings is present?"
        return closed_draft(
            ABILITY,
            "findings_at_position",
            question,
            finding_name(correct),
            distractors,
            rng,
            [position],
        )
    return None


_ATTRIBUTES = {
    # attribute: (all values, question about one image, question for the one image with a value)
    "view": (VIEWS, "which view is used, PA or AP", "Which image is the {value} view?"),
    "region": (REGIONS, "which body region is shown", "Which image shows the {value}?"),
    "modality": (MODALITIES, "which imaging modality is used", "Which image is the {value}?"),
    "plane": (PLANES, "which image plane is shown", "Which image shows the {value} plane?"),
    # A study is the plane and modality together, such as `axial CT`.
    "study": ((), "", "Which image is the {value}?"),
}


def _value(image: ImageFacts, attribute: str) -> str | None:
    """Return an image's value of `attribute`; a study needs both plane and modality."""
    if attribute != "study":
        return getattr(image, attribute)
    if image.plane is None or image.modality is None:
        return None
    return f"{image.plane} {image.modality}"


def article(word: str) -> str:
    """Return `a` or `an` for a word as it is spoken: `an MRI`, `an X-ray`, `a CT`."""
    if word[:2] in ("X-", "x-") or (word.isupper() and word[0] in "AEFHILMNORSX"):
        return "an"
    return "an" if word[0].lower() in "aeiou" else "a"


def _describe(attribute: str, value: str) -> str:
    if attribute == "study":
        return f"is the {value}"
    if attribute == "region":
        return f"shows the {value}"
    if attribute == "view":
        return f"is {article(value)} {value} view"
    return f"is {article(value)} {value} image"


def _attribute_at_position(attribute: str) -> Task:
    """Return the task asking for `attribute` of the image at one position of a mixed set."""
    values, question_text, _ = _ATTRIBUTES[attribute]
    task_name = f"{attribute}_at_position"

    def task(images: list[ImageFacts], rng: random.Random, closed: bool) -> Draft | None:
        # The other images are distractors only when they differ from the referenced one.
        if len({getattr(image, attribute) for image in images} - {None}) < 2:
            return None
        positions = _targets(images, rng, lambda image: getattr(image, attribute) is not None)
        position = positions[0]
        value = getattr(images[position - 1], attribute)
        if attribute == "view" and value not in VIEWS:
            return None
        question = f"In the {ordinal(position)} image, {question_text}?"
        if closed:
            distractors = [other for other in values if other != value]
            return closed_draft(ABILITY, task_name, question, value, distractors, rng, [position])
        answer = f"The {ordinal(position)} image {_describe(attribute, value)}."
        return open_draft(ABILITY, task_name, question, answer, [position])

    return task


def _which_image(attribute: str) -> Task:
    """Return the task asking which image has a value of `attribute` that no other image has."""
    phrase = _ATTRIBUTES[attribute][2]
    task_name = f"which_image_{attribute}"

    def task(images: list[ImageFacts], rng: random.Random, closed: bool) -> Draft | None:
        values = [_value(image, attribute) for image in images]
        unique = [value for value in set(values) if value is not None and values.count(value) == 1]
        if not unique:
            return None
        value = rng.choice(sorted(unique))
        position = values.index(value) + 1
        question = phrase.format(value=value)
        if closed:
            options = position_options(len(images))
            correct = options[position - 1]
            distractors = [option for option in options if option != correct]
            return closed_draft(
                ABILITY,
                task_name,
                question,
                correct,
                distractors,
                rng,
                [position],
                max_options=len(options),
            )
        answer = f"The {ordinal(position)} image {_describe(attribute, value)}."
        return open_draft(ABILITY, task_name, question, answer, [position])

    return task


def finding_yes_no(images: list[ImageFacts], rng: random.Random, closed: bool) -> Draft | None:
    """Ask whether the image at one position shows a finding, chosen from the whole set."""
    if not fx.has_findings(images):
        return None
    seen = sorted(set().union(*(fx.findings_of(image) for image in images)))
    if not seen:
        return None
    label = rng.choice(seen)
    position = rng.randrange(1, len(images) + 1)
    present = label in fx.findings_of(images[position - 1])
    name = finding_phrase(label)
    question = f"In the {ordinal(position)} image, is {name} present?"
    if closed:
        correct, wrong = (YES, NO) if present else (NO, YES)
        return closed_draft(ABILITY, "finding_yes_no", question, correct, [wrong], rng, [position])
    verdict = "Yes" if present else "No"
    answer = f"{verdict}: the {ordinal(position)} image {'shows' if present else 'does not show'}"
    return open_draft(ABILITY, "finding_yes_no", question, f"{answer} {name}.", [position])


TASKS: dict[str, Task] = {
    "qa_at_position": qa_at_position,
    "findings_at_position": findings_at_position,
    "finding_yes_no": finding_yes_no,
    "view_at_position": _attribute_at_position("view"),
    "region_at_position": _attribute_at_position("region"),
    "modality_at_position": _attribute_at_position("modality"),
    "plane_at_position": _attribute_at_position("plane"),
    "which_image_view": _which_image("view"),
    "which_image_region": _which_image("region"),
    "which_image_modality": _which_image("modality"),
    "which_image_plane": _which_image("plane"),
    "which_image_study": _which_image("study"),
}
