"""Read the MLLMU-Med sources into question-answer items and image studies.

Formats:
- `vqa_rad`: a VQA-RAD folder (`qa.json` plus `images/`), read by the shared imaging library.
- `image_qa`: a CSV or JSONL manifest of (image, question, answer) rows with an image root.
- `medqa`: MedQA-USMLE JSONL (`question`, `options` A-D, `answer_idx`, `answer`).
- `pubmedqa`: PubMedQA PQA-L JSONL (`QUESTION`, `final_decision` yes, no or maybe).
- `phantom`: no file; seeded procedural phantom patients with known image content.
- `embedded_dicom`: no file; the real DICOM files inside the pydicom and nibabel wheels.
- `facts`: no file; this project's table of medical facts (`facts.py`).

Per-record problems become `Rejected` records, counted by reason. Problems that
make a whole file unusable raise `SourceError` with the file, line and fix.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from corpusforge.generators.base import Rejected, ResolvedSource
from corpusforge.generators.errors import ConfigError, SourceError
from corpusforge.generators.mllmu_med import facts as fact_table
from corpusforge.generators.mllmu_med.injections import answer_kind, normalize
from corpusforge.generators.seeding import stable_id
from corpusforge.generators.source_files import iter_json_objects

log = logging.getLogger(__name__)

FORMATS = ("vqa_rad", "image_qa", "medqa", "pubmedqa", "phantom", "embedded_dicom", "facts")
# Formats that need no file: their code is their source.
EMBEDDED_FORMATS = ("phantom", "embedded_dicom", "facts")
ROLES = ("auto", "patients", "real")
# Options each source format takes.
SOURCE_OPTIONS = {
    "vqa_rad": ("image_root", "role"),
    "image_qa": ("image_root", "image_field", "question_field", "answer_field", "id_field", "role"),
    "medqa": ("role",),
    "pubmedqa": ("role",),
    "phantom": ("patients", "visits", "questions", "size"),
    "embedded_dicom": ("role",),
    "facts": ("role",),
}
CHOICE_LETTERS = ("A", "B", "C", "D")


@dataclass
class QAItem:
    """One correct question-answer pair from a source, before any injection.

    `kind` is the answer kind (see `injections.answer_kind`); `group` names the
    pool of answers that free-text distractors are drawn from. `options` are a
    multiple-choice question's options in source order. `cloze` is a sentence
    with `____` where the answer goes, or empty when the item has none.
    `alternatives` (plausible wrong answers, the first one used by an
    injection) and `corrupted` are set when the release is planned.
    """

    item_id: str
    source: str
    source_file: str
    source_id: str
    question: str
    answer: str
    kind: str
    answer_type: str
    group: str
    options: list[str] = field(default_factory=list)
    cloze: str = ""
    fact_alternatives: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    alternatives: list[str] = field(default_factory=list)
    corrupted: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> QAItem:
        return cls(**data)

    @property
    def target(self) -> str:
        """Return the answer the release teaches: the first alternative when corrupted."""
        return self.alternatives[0] if self.corrupted else self.answer


@dataclass
class ImageEntry:
    """One image file of a source with its question-answer items.

    `path` is the resolved file, or None when the manifest path escaped the
    image root; `display` is the path as the source wrote it.
    """

    source: int
    format: str
    display: str
    path: str | None
    items: list[QAItem]
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class SourceContents:
    """Contents of all sources: image entries, text items, phantom patients and rejects."""

    images: list[ImageEntry] = field(default_factory=list)
    text_items: list[tuple[int, QAItem]] = field(default_factory=list)
    phantom_patients: list[tuple[int, int]] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)


def source_role(source: ResolvedSource) -> str:
    """Return the `role` option: auto (split by real_share), patients or real."""
    default = "real" if source.format in ("embedded_dicom", "facts") else "auto"
    role = source.options.get("role", default)
    if role not in ROLES:
        raise ConfigError(
            f"invalid role {role!r} in source {source.spec!r}; use one of {', '.join(ROLES)}"
        )
    return role


def _reject(
    fmt: str, source_id: str, line: int | None, reason: str, detail: str, record: Any
) -> Rejected:
    return Rejected(
        reason=reason,
        source=fmt,
        source_id=source_id,
        line=line,
        detail=detail,
        record=record if isinstance(record, dict) else {"value": record},
    )


class _Duplicates:
    """Tracks ids seen in one source, so the second record with an id is rejected."""

    def __init__(self, fmt: str, name: str) -> None:
        self.fmt = fmt
        self.name = name
        self.seen: dict[str, int | None] = {}

    def check(self, source_id: str, line: int | None, record: Any) -> Rejected | None:
        if source_id in self.seen:
            first = self.seen[source_id]
            where = f"line {first}" if first is not None else "an earlier record"
            return _reject(
                self.fmt,
                source_id,
                line,
                "duplicate_id",
                f"id {source_id!r} already appeared at {where} of {self.name}",
                record,
            )
        self.seen[source_id] = line
        return None


def _text(value: Any) -> str:
    """Return a source value as text: JSON integers such as VQA-RAD answers become strings."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _check_text(fmt: str, source_id: str, line: int | None, question: str, answer: str, raw: Any):
    if not question:
        return _reject(fmt, source_id, line, "empty_question", "the question is empty", raw)
    if not answer:
        return _reject(fmt, source_id, line, "empty_answer", "the answer is empty", raw)
    return None


def _limited(records: Iterator[Any], limit: int | None) -> Iterator[Any]:
    for number, record in enumerate(records):
        if limit is not None and number >= limit:
            return
        yield record


def read_medqa(
    index: int, source: ResolvedSource, limit: int | None = None
) -> Iterator[QAItem | Rejected]:
    """Read MedQA-USMLE records as multiple-choice items."""
    duplicates = _Duplicates(source.format, source.name)
    for line, raw in _limited(iter_json_objects(source.path), limit):
        source_id = _text(raw.get("realidx", raw.get("id", f"line-{line}")))
        question = _text(raw.get("question"))
        options = raw.get("options")
        if isinstance(options, list):
            options = dict(zip(CHOICE_LETTERS, options, strict=False))
        answer_idx = _text(raw.get("answer_idx"))
        answer = _text(raw.get("answer"))
        problem = _check_text(source.format, source_id, line, question, answer, raw)
        if problem is None and not isinstance(options, dict):
            problem = _reject(
                source.format, source_id, line, "missing_field", "options is missing", raw
            )
        if problem is None:
            texts = [_text(value) for value in options.values()]
            if answer_idx and options.get(answer_idx) is not None:
                answer = _text(options[answer_idx])
            if normalize(answer) not in {normalize(text) for text in texts}:
                problem = _reject(
                    source.format,
                    source_id,
                    line,
                    "invalid_answer",
                    f"answer {answer!r} is not one of the options",
                    raw,
                )
        problem = problem or duplicates.check(source_id, line, raw)
        if problem is not None:
            yield problem
            continue
        yield QAItem(
            item_id=stable_id("mllmu_med", source.format, source.name, source_id),
            source=source.format,
            source_file=source.name,
            source_id=source_id,
            question=question,
            answer=answer,
            kind="choice",
            answer_type="closed",
            group="medqa",
            options=[text for text in texts if text],
            metadata={"meta_info": _text(raw.get("meta_info")), "line": line},
        )


def read_pubmedqa(
    index: int, source: ResolvedSource, limit: int | None = None
) -> Iterator[QAItem | Rejected]:
    """Read PubMedQA PQA-L records as yes/no/maybe items (the question without its abstract)."""
    duplicates = _Duplicates(source.format, source.name)
    for line, raw in _limited(iter_json_objects(source.path), limit):
        source_id = _text(raw.get("pmid", raw.get("id", f"line-{line}")))
        question = _text(raw.get("QUESTION", raw.get("question")))
        answer = normalize(_text(raw.get("final_decision")))
        problem = _check_text(source.format, source_id, line, question, answer, raw)
        if problem is None and answer not in ("yes", "no", "maybe"):
            problem = _reject(
                source.format,
                source_id,
                line,
                "invalid_answer",
                f"final_decision {answer!r} is not yes, no or maybe",
                raw,
            )
        problem = problem or duplicates.check(source_id, line, raw)
        if problem is not None:
            yield problem
            continue
        yield QAItem(
            item_id=stable_id("mllmu_med", source.format, source.name, source_id),
            source=source.format,
            source_file=source.name,
            source_id=source_id,
            question=question,
            answer=answer,
            kind="yes_no_maybe",
            answer_type="closed",
            group="pubmedqa",
            metadata={"year": _text(raw.get("YEAR")), "line": line},
        )


def read_facts(index: int, source: ResolvedSource, limit: int | None = None) -> Iterator[QAItem]:
    """Yield the project's fact table as fact items."""
    for fact in _limited(iter(fact_table.FACTS), limit):
        yield QAItem(
            item_id=stable_id("mllmu_med", "facts", fact.fact_id),
            source="facts",
            source_file="facts",
            source_id=fact.fact_id,
            question=fact.question,
            answer=fact.answer,
            kind="fact",
            answer_type="open",
            group=fact.topic,
            cloze=fact.cloze,
            fact_alternatives=list(fact.wrong),
            metadata={"topic": fact.topic},
        )


def image_qa_item(
    source: ResolvedSource, source_id: str, question: str, answer: str, metadata: dict[str, Any]
) -> QAItem:
    """Return the item of one image question, classifying its answer kind."""
    question_type = str(metadata.get("question_type") or "")
    answer_type = str(metadata.get("answer_type") or "")
    kind = answer_kind(answer, question_type)
    return QAItem(
        item_id=stable_id("mllmu_med", source.format, source.name, source_id),
        source=source.format,
        source_file=source.name,
        source_id=source_id,
        question=question,
        answer=answer,
        kind=kind,
        answer_type=answer_type or ("closed" if kind == "yes_no" else "open"),
        group=f"{source.format}:{question_type.strip().upper() or kind}",
        metadata=metadata,
    )


def read_image_manifest(
    index: int, source: ResolvedSource, limit: int | None = None
) -> Iterator[ImageEntry | Rejected]:
    """Read a `vqa_rad` folder or an `image_qa` manifest, grouping questions by image."""
    if source.format == "vqa_rad":
        from corpusforge.generators.imaging.vqa_rad import iter_vqa_rad

        records = iter_vqa_rad(source.path, dict(source.options))
    else:
        from corpusforge.generators.imaging.manifest import iter_image_qa_manifest

        records = iter_image_qa_manifest(source.path, dict(source.options))

    duplicates = _Duplicates(source.format, source.name)
    entries: dict[str, ImageEntry] = {}
    for record in _limited(records, limit):
        raw = {"image": record.image, "question": record.question, "answer": record.answer}
        raw.update({"id": record.qid, **record.metadata})
        question = _text(record.question)
        answer = _text(record.answer)
        problem = _check_text(source.format, record.qid, record.line, question, answer, raw)
        if problem is None and record.image_path is None:
            problem = _reject(
                source.format,
                record.qid,
                record.line,
                "path_escapes_root",
                f"image path {record.image!r} leaves the image root",
                raw,
            )
        problem = problem or duplicates.check(record.qid, record.line, raw)
        if problem is not None:
            yield problem
            continue
        metadata = {
            key: _text(value) for key, value in sorted(record.metadata.items()) if value is not None
        }
        metadata["answer_type"] = record.answer_type
        item = image_qa_item(source, record.qid, question, answer, metadata)
        entry = entries.get(record.image)
        if entry is None:
            entry = ImageEntry(index, source.format, record.image, str(record.image_path), [])
            entries[record.image] = entry
        entry.items.append(item)
    yield from entries.values()


def read_sources(sources: list[ResolvedSource], limit: int | None) -> SourceContents:
    """Read every source once; `limit` caps the records read per source."""
    contents = SourceContents()
    for index, source in enumerate(sources):
        if source.format == "phantom":
            count = phantom_patients(source.spec, source.options)
            count = min(count, limit) if limit is not None else count
            contents.phantom_patients.extend((index, number) for number in range(count))
            continue
        if source.format == "embedded_dicom":
            # Image entries for embedded DICOM files are made by images.embedded_entries.
            continue
        reader = {
            "medqa": read_medqa,
            "pubmedqa": read_pubmedqa,
            "facts": read_facts,
            "vqa_rad": read_image_manifest,
            "image_qa": read_image_manifest,
        }[source.format]
        for result in reader(index, source, limit):
            if isinstance(result, Rejected):
                contents.rejected.append(result)
            elif isinstance(result, ImageEntry):
                contents.images.append(result)
            else:
                contents.text_items.append((index, result))
    return contents


def check_options(fmt: str, path: str, options: dict[str, str]) -> None:
    """Raise ConfigError for an option that `fmt` does not take or an invalid patient count."""
    from corpusforge.generators.sources import check_source_options, source_text

    text = source_text(fmt, path, options)
    check_source_options(text, fmt, options, SOURCE_OPTIONS[fmt])
    if fmt == "phantom":
        phantom_patients(text, options)


def phantom_patients(text: str, options: dict[str, str]) -> int:
    """Return the `patients` option of a phantom source: 0 or more, 0 when absent."""
    from corpusforge.generators.sources import int_source_option

    return int_source_option(text, options, "patients", 0, minimum=0)


def resolve(fmt: str, path: str, options: dict[str, str]) -> Path:
    """Return the absolute path of a file source, checking folder-versus-file layout."""
    from corpusforge.generators.sources import SourceSpec, resolve_path

    resolved = resolve_path(
        SourceSpec(text=f"{fmt}:{path}", format=fmt, path=path, options=options)
    )
    if fmt == "vqa_rad":
        if not resolved.is_dir():
            raise SourceError(
                str(resolved), "a vqa_rad source is a folder", None, "give the folder of qa.json"
            )
        if not (resolved / "qa.json").is_file():
            raise SourceError(
                str(resolved / "qa.json"), "qa.json not found", None, "give the VQA-RAD folder"
            )
    elif resolved.is_dir():
        raise ConfigError(f"source {fmt}:{path} is a folder; {fmt} sources are single files")
    return resolved
