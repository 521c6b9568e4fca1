"""What the question templates know about each image: labels, metadata and source QA.

Every answer in a Med-MIM record is computed from these facts, never from the
pixels, so an answer is exactly as correct as the source labels (or, for
phantoms, exact by construction).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ABILITIES = ("temporal", "reasoning", "comparison", "coreference")
QUESTION_TYPES = ("closed", "open")

# The 14 ChestX-ray14 finding classes, spelled as in the upstream `Finding Labels`
# column, which writes `No Finding` for an image without any of them.
NIH_FINDINGS = (
    "Atelectasis",
    "Cardiomegaly",
    "Consolidation",
    "Edema",
    "Effusion",
    "Emphysema",
    "Fibrosis",
    "Hernia",
    "Infiltration",
    "Mass",
    "Nodule",
    "Pleural_Thickening",
    "Pneumonia",
    "Pneumothorax",
)
NO_FINDING = "No Finding"

ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth")


@dataclass(frozen=True)
class QAPair:
    """One question-answer pair of a single-image VQA source about one image."""

    qid: str
    question: str
    answer: str
    answer_type: str
    question_type: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "qid": self.qid,
            "question": self.question,
            "answer": self.answer,
            "answer_type": self.answer_type,
            "question_type": self.question_type,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> QAPair:
        return cls(**data)


@dataclass(frozen=True)
class ImageFacts:
    """One source image: where it comes from and everything the templates may ask about.

    `key` is unique in a release and stable across runs. `locator` is what the
    image renderer needs to produce the pixels; its `kind` is `file`, `phantom`
    or `dicom`. `findings` is the sorted set of finding names, empty for a normal
    image, or None when the source has no labels. Lesion fields are set for
    phantoms only; sizes are in millimetres.
    """

    key: str
    source: int
    source_format: str
    locator: dict[str, Any]
    patient: str
    source_image: str
    visit: int | None = None
    follow_up: int | None = None
    age: int | None = None
    sex: str | None = None
    view: str | None = None
    modality: str | None = None
    region: str | None = None
    plane: str | None = None
    findings: tuple[str, ...] | None = None
    lesion_count: int | None = None
    largest_lesion_mm: float | None = None
    qa: tuple[QAPair, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in self.__dataclass_fields__}
        data["findings"] = list(self.findings) if self.findings is not None else None
        data["qa"] = [pair.to_json() for pair in self.qa]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ImageFacts:
        values = dict(data)
        if values.get("findings") is not None:
            values["findings"] = tuple(values["findings"])
        values["qa"] = tuple(QAPair.from_json(pair) for pair in values.get("qa") or [])
        return cls(**values)


def finding_name(label: str) -> str:
    """Return a label as it reads in a sentence: `Pleural_Thickening` gives `pleural thickening`."""
    return label.replace("_", " ").lower()


def finding_phrase(label: str) -> str:
    """Return a label as a noun phrase: `effusion`, but `a left-sided lesion` (countable)."""
    name = finding_name(label)
    return f"a {name}" if name.endswith("lesion") else name


def ordinal(position: int) -> str:
    """Return the word for a 1-based image position, such as `third` for 3."""
    return ORDINALS[position - 1]


def join_words(words: list[str]) -> str:
    """Join words as English does: `a`, `a and b`, `a, b and c`."""
    if not words:
        return ""
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " and " + words[-1]
