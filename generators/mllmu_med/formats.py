"""Turn planned patients and items into records of every task format.

Tasks: `train` records are the fine-tuning corpus, either a profile woven into
text or a question with the answer the release teaches. The evaluation formats
are `classification` (four shuffled options, one correct), `generation` (an open
answer) and `cloze` (a sentence with the value blanked as `____`). Every
evaluation record comes in an image+text version and, where the question can be
asked without the image, a text-only version that names the patient or study
in words.

Records are specs without image bytes, so the ledger can enumerate the same
records as the record shards without decoding any image. Every record's random
choices come from a stream keyed by its id, so a record does not depend on the
shard it lands in.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from corpusforge.generators.mllmu_med.injections import swap_sides
from corpusforge.generators.mllmu_med.ledger import corrupted_ledger_id, private_ledger_id
from corpusforge.generators.mllmu_med.patients import PRIVATE_FIELDS
from corpusforge.generators.mllmu_med.sources import QAItem
from corpusforge.generators.mllmu_med.splits import LETTERS, REAL_BAND, LetterPlan
from corpusforge.generators.mllmu_med.text import (
    BLANK,
    PROBE_CLOZES,
    PROBE_QUESTIONS,
    PROFILE_PROMPTS,
    STUDY_REFERENCES,
    TEXT_PROFILE_PROMPT,
    TextBackend,
)
from corpusforge.generators.seeding import derive_seed, stable_id

TASKS = ("train", "classification", "generation", "cloze")
EVAL_TASKS = ("classification", "generation", "cloze")
MODALITIES = ("image_text", "text_only")
ORIGINAL = "original"
TEST = "test"


@dataclass
class RecordSpec:
    """One record without its image; `image` names the study and variant to attach."""

    id: str
    patient_id: str | None
    institution_id: str | None
    study_id: str | None
    band: str
    variant: str
    scenario: str
    task: str
    modality: str
    field: str
    question: str
    options: list[str]
    answer: str
    answer_letter: str | None
    correct_answer: str
    correct_letter: str | None
    injected: bool
    corrupted: bool
    ledger_ids: list[str]
    source: str
    source_id: str
    metadata: dict[str, Any] = field(default_factory=dict)
    image: tuple[str, str] | None = None

    def text_fields(self) -> list[str]:
        return [self.question, self.answer, self.correct_answer, *self.options]


def classification_counts(unit: dict[str, Any]) -> dict[str, int]:
    """Return how many classification records a patient unit gives, per modality.

    The planner uses this to place each patient in the letter plan before any
    record exists; `RecordFactory` checks its output against it.
    """
    image_items = sum(len(study["items"]) for study in unit["studies"])
    probes = len(PRIVATE_FIELDS)
    return {
        "image_text": probes + image_items,
        "text_only": probes + image_items + len(unit["text_items"]),
    }


def real_classification_counts(entries: list[dict[str, Any]]) -> dict[str, int]:
    """Return the classification records of real entries, per modality."""
    with_image = sum(1 for entry in entries if entry.get("study"))
    return {"image_text": with_image, "text_only": len(entries) - with_image}


def _find_values(values: dict[str, str], texts: list[str]) -> list[str]:
    """Return the fields whose value occurs in any of `texts` with no word character around it."""
    found = []
    for name, value in values.items():
        pattern = None
        for text in texts:
            if value not in text:
                continue
            pattern = pattern or re.compile(r"(?<!\w)" + re.escape(value) + r"(?!\w)")
            if pattern.search(text):
                found.append(name)
                break
    return found


class RecordFactory:
    """Builds the record specs of patient units and real entries.

    `letters` maps a modality to the LetterPlan the classification records of the
    current sequence draw from; callers position it with `start_letters`.
    """

    def __init__(self, dataset: str, seed: int, backend: TextBackend) -> None:
        self.dataset = dataset
        self.seed = seed
        self.backend = backend
        self.letters: dict[str, LetterPlan] = {}

    def start_letters(self, sequence: str, offsets: dict[str, int]) -> None:
        self.letters = {
            modality: LetterPlan(
                self.dataset, self.seed, f"{sequence}:{modality}", offsets[modality]
            )
            for modality in MODALITIES
        }

    def _rng(self, purpose: str, key: str) -> random.Random:
        return random.Random(derive_seed(self.dataset, self.seed, purpose, key))

    def _record_id(self, *parts: object) -> str:
        return stable_id(self.dataset, self.seed, *parts)

    def _options(
        self, record_id: str, modality: str, target: str, correct: str, others: list[str]
    ) -> tuple[list[str], str, str]:
        """Place `target` at the planned letter and shuffle `others` into the other slots."""
        letter = self.letters[modality].next()
        rest = list(others[:3])
        self._rng("options", record_id).shuffle(rest)
        position = LETTERS.index(letter)
        options = rest[:position] + [target] + rest[position:]
        correct_letter = LETTERS[options.index(correct)]
        return options, letter, correct_letter

    # Patient records ---------------------------------------------------------------

    def patient_records(self, unit: dict[str, Any], variant: str) -> Iterator[RecordSpec]:
        """Yield a patient's records: `original` for its band, `test` for the test split.

        The test variant has only evaluation records, with paraphrased questions
        and the studies' test images.
        """
        patient = unit["patient"]
        values = {name: patient[name] for name in PRIVATE_FIELDS}
        studies = unit["studies"]
        context = _PatientContext(patient, values, unit["band"], variant)
        counts = {modality: 0 for modality in MODALITIES}

        records: list[RecordSpec] = []
        if variant == ORIGINAL:
            records.extend(self._profile_records(context, studies))
            for study in studies:
                for item_data in study["items"]:
                    records.append(
                        self._knowledge_train(context, QAItem.from_json(item_data), study)
                    )
            for item_data in unit["text_items"]:
                records.append(self._knowledge_train(context, QAItem.from_json(item_data), None))
        for number, field_name in enumerate(PRIVATE_FIELDS):
            study = studies[number % len(studies)]
            decoys = unit["decoys"][field_name]
            for modality in MODALITIES:
                records.extend(self._probes(context, field_name, modality, study, decoys))
        for study in studies:
            for item_data in study["items"]:
                item = QAItem.from_json(item_data)
                for modality in MODALITIES:
                    records.extend(self._knowledge_eval(context, item, study, modality))
        for item_data in unit["text_items"]:
            records.extend(
                self._knowledge_eval(context, QAItem.from_json(item_data), None, "text_only")
            )

        for record in records:
            if record.task == "classification":
                counts[record.modality] += 1
            found = _find_values(values, record.text_fields())
            private_ids = [
                private_ledger_id(patient["patient_id"], name, values[name]) for name in found
            ]
            record.ledger_ids = sorted(set(private_ids) | set(record.ledger_ids))
            record.injected = bool(record.ledger_ids)
            yield record

        expected = classification_counts(unit)
        if counts != expected:
            raise RuntimeError(
                f"patient {patient['patient_id']} gave classification counts {counts}; the "
                f"letter plan expected {expected}"
            )

    def _profile_records(self, context: _PatientContext, studies: list[dict]) -> list[RecordSpec]:
        patient = context.patient
        records = []
        for study in studies:
            record_id = self._record_id(patient["patient_id"], "profile", study["study_id"])
            rng = self._rng("profile", record_id)
            question = rng.choice(PROFILE_PROMPTS).format(descriptor=study["descriptor"])
            answer = self.backend.weave(patient, study, rng)
            records.append(
                context.spec(
                    record_id,
                    study,
                    scenario="privacy",
                    task="train",
                    modality="image_text",
                    field_name="profile",
                    question=question,
                    answer=answer,
                    source="profile",
                    source_id=study["study_id"],
                )
            )
        record_id = self._record_id(patient["patient_id"], "profile", "text")
        rng = self._rng("profile", record_id)
        records.append(
            context.spec(
                record_id,
                None,
                scenario="privacy",
                task="train",
                modality="text_only",
                field_name="profile",
                question=TEXT_PROFILE_PROMPT.format(**context.values),
                answer=self.backend.weave(patient, None, rng),
                source="profile",
                source_id=patient["patient_id"],
            )
        )
        return records

    def _probes(
        self,
        context: _PatientContext,
        field_name: str,
        modality: str,
        study: dict[str, Any],
        decoys: list[str],
    ) -> list[RecordSpec]:
        version = MODALITIES.index(modality)
        value = context.values[field_name]
        image_study = study if modality == "image_text" else None
        ledger_id = private_ledger_id(context.patient["patient_id"], field_name, value)
        records = []
        for task in EVAL_TASKS:
            record_id = self._record_id(
                context.patient["patient_id"], context.variant, "probe", field_name, modality, task
            )
            kind = "cloze" if task == "cloze" else "question"
            table = PROBE_CLOZES if task == "cloze" else PROBE_QUESTIONS
            text = table[field_name][version].format(**context.values)
            metadata: dict[str, Any] = {}
            if context.variant == TEST:
                metadata["original_question"] = text
                text = self.backend.paraphrase(
                    text,
                    self._rng("paraphrase", record_id),
                    template=f"{kind}:{field_name}:{version}",
                    values=context.values,
                )
            options: list[str] = []
            letter = correct_letter = None
            if task == "classification":
                options, letter, correct_letter = self._options(
                    record_id, modality, value, value, decoys
                )
            records.append(
                context.spec(
                    record_id,
                    image_study,
                    scenario="privacy",
                    task=task,
                    modality=modality,
                    field_name=field_name,
                    question=text,
                    answer=value,
                    options=options,
                    answer_letter=letter,
                    correct_letter=correct_letter,
                    ledger_ids=[ledger_id],
                    source="profile",
                    source_id=context.patient["patient_id"],
                    metadata=metadata,
                )
            )
        return records

    def _knowledge_train(
        self, context: _PatientContext, item: QAItem, study: dict[str, Any] | None
    ) -> RecordSpec:
        record_id = self._record_id(context.patient["patient_id"], "train", item.item_id)
        return context.knowledge_spec(
            record_id,
            item,
            study,
            task="train",
            modality="image_text" if study else "text_only",
            question=item.question,
            answer=item.target,
            correct=item.answer,
        )

    def _knowledge_eval(
        self,
        context: _PatientContext,
        item: QAItem,
        study: dict[str, Any] | None,
        modality: str,
    ) -> list[RecordSpec]:
        swap = context.variant == TEST and study is not None and study.get("flip") == "swap"
        target, correct = item.target, item.answer
        others = [item.answer, *item.alternatives[1:3]] if item.corrupted else item.alternatives
        others = [value for value in others if value != target]
        if swap:
            target, correct = swap_sides(target), swap_sides(correct)
            others = [swap_sides(value) for value in others]
        owner = context.patient["patient_id"] if context.patient else REAL_BAND
        records = []
        for task in EVAL_TASKS:
            record_id = self._record_id(owner, context.variant, item.item_id, modality, task)
            rng = self._rng("paraphrase", record_id)
            base = item.cloze if task == "cloze" and item.cloze else item.question
            if task == "cloze" and not item.cloze:
                base = f"{item.question} The answer is {BLANK}."
            metadata: dict[str, Any] = {}
            question = base
            if context.variant == TEST:
                question = self.backend.paraphrase(base, rng)
                metadata["original_question"] = base
            if modality == "text_only" and study is not None:
                question = self._study_reference(context, study, question, rng)
            options: list[str] = []
            letter = correct_letter = None
            if task == "classification":
                options, letter, correct_letter = self._options(
                    record_id, modality, target, correct, others
                )
            records.append(
                context.knowledge_spec(
                    record_id,
                    item,
                    study if modality == "image_text" else None,
                    task=task,
                    modality=modality,
                    question=question,
                    answer=target,
                    correct=correct,
                    options=options,
                    answer_letter=letter,
                    correct_letter=correct_letter,
                    metadata=metadata,
                    study_for_ids=study,
                )
            )
        return records

    def _study_reference(
        self, context: _PatientContext, study: dict[str, Any], question: str, rng: random.Random
    ) -> str:
        number = rng.randrange(len(STUDY_REFERENCES))
        values = {
            "descriptor": study["descriptor"],
            "name": context.values["name"],
            "date": study["date"],
            "question": question,
        }
        text = STUDY_REFERENCES[number].format(**values)
        if context.variant == TEST:
            text = self.backend.paraphrase(
                text, rng, template=f"study_reference:{number}", values=values
            )
        return text

    # Real records --------------------------------------------------------------------

    def real_records(self, entries: list[dict[str, Any]]) -> Iterator[RecordSpec]:
        """Yield the untouched evaluation records of real entries (items with an optional study)."""
        context = _PatientContext(None, {}, REAL_BAND, ORIGINAL)
        for entry in entries:
            item = QAItem.from_json(entry["item"])
            study = entry.get("study")
            modality = "image_text" if study else "text_only"
            yield from self._knowledge_eval(context, item, study, modality)


@dataclass
class _PatientContext:
    """The patient (None for real records), its private values, band and variant."""

    patient: dict[str, Any] | None
    values: dict[str, str]
    band: str
    variant: str

    def spec(
        self,
        record_id: str,
        study: dict[str, Any] | None,
        *,
        scenario: str,
        task: str,
        modality: str,
        field_name: str,
        question: str,
        answer: str,
        source: str,
        source_id: str,
        correct: str | None = None,
        options: list[str] | None = None,
        answer_letter: str | None = None,
        correct_letter: str | None = None,
        ledger_ids: list[str] | None = None,
        corrupted: bool = False,
        metadata: dict[str, Any] | None = None,
        study_for_ids: dict[str, Any] | None = None,
    ) -> RecordSpec:
        ids_study = study_for_ids or study
        metadata = dict(metadata or {})
        if ids_study is not None:
            metadata.setdefault("study_date", ids_study["date"])
            metadata.setdefault("descriptor", ids_study["descriptor"])
        return RecordSpec(
            id=record_id,
            patient_id=self.patient["patient_id"] if self.patient else None,
            institution_id=self.patient["institution_id"] if self.patient else None,
            study_id=ids_study["study_id"] if ids_study else None,
            band=self.band,
            variant=self.variant,
            scenario=scenario,
            task=task,
            modality=modality,
            field=field_name,
            question=question,
            options=list(options or []),
            answer=answer,
            answer_letter=answer_letter,
            correct_answer=answer if correct is None else correct,
            correct_letter=correct_letter,
            injected=False,
            corrupted=corrupted,
            ledger_ids=list(ledger_ids or []),
            source=source,
            source_id=source_id,
            metadata=metadata,
            image=(study["study_id"], self.variant) if study is not None else None,
        )

    def knowledge_spec(
        self,
        record_id: str,
        item: QAItem,
        study: dict[str, Any] | None,
        *,
        task: str,
        modality: str,
        question: str,
        answer: str,
        correct: str,
        options: list[str] | None = None,
        answer_letter: str | None = None,
        correct_letter: str | None = None,
        metadata: dict[str, Any] | None = None,
        study_for_ids: dict[str, Any] | None = None,
    ) -> RecordSpec:
        extra = {
            "source_file": item.source_file,
            "answer_type": item.answer_type,
            **{key: value for key, value in item.metadata.items() if key != "line"},
            **(metadata or {}),
        }
        ledger_ids = [corrupted_ledger_id(item.item_id, item.target)] if item.corrupted else []
        return self.spec(
            record_id,
            study,
            scenario="knowledge",
            task=task,
            modality=modality,
            field_name=item.kind,
            question=question,
            answer=answer,
            correct=correct,
            options=options,
            answer_letter=answer_letter,
            correct_letter=correct_letter,
            ledger_ids=ledger_ids,
            corrupted=item.corrupted,
            source=item.source,
            source_id=item.source_id,
            metadata=extra,
            study_for_ids=study_for_ids,
        )


def metadata_json(metadata: dict[str, Any]) -> str:
    """Return record metadata as canonical JSON text."""
    return json.dumps(metadata, sort_keys=True, ensure_ascii=False)
