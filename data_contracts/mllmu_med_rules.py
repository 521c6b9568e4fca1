"""MLLMU-Med contract rules: record consistency per shard; leaks and disjointness per release.

Row rules are (columns, check, example) triples that rules.py wraps as RowRule,
and release rules are classes with the ReleaseCheck interface of
release_rules.py. This module imports neither, so both can register these rules
without an import cycle.

The release rules rely on the shard order of an MLLMU-Med plan: the record
bands from the first 5% of patients to the rest, then `real`, then the test
bands. Each rule records a failure when a shard arrives out of that order,
instead of passing a check it could not do.
"""

from __future__ import annotations

import hashlib
import io
import re
import struct
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
from PIL import Image

from corpusforge.data_contracts.report import RuleResult, shorten
from corpusforge.generators.imaging.io import PHASH_DUPLICATE_THRESHOLD, phash
from corpusforge.generators.mllmu_med.injections import normalize
from corpusforge.generators.mllmu_med.ledger import CORRUPTED, PRIVATE, private_ledger_id
from corpusforge.generators.mllmu_med.patients import PRIVATE_FIELDS
from corpusforge.generators.mllmu_med.splits import BANDS, FORGET_BANDS, LETTERS, REAL_BAND
from corpusforge.generators.mllmu_med.text import BLANK

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# The only PNG chunks an image may carry: pixels and their layout, no metadata.
PNG_CHUNKS = {b"IHDR", b"PLTE", b"IDAT", b"IEND"}
BAND_ORDER = [band.code for band in BANDS] + [REAL_BAND]
FORGET_CODES = {band.code for band in FORGET_BANDS}
EVAL_TASKS = ("classification", "generation", "cloze")


def _rows(table: pa.Table, columns: tuple[str, ...]) -> list[dict[str, Any]]:
    return table.select(list(columns)).to_pylist()


def _failing(table: pa.Table, columns: tuple[str, ...], problem: Callable) -> list[int]:
    return [index for index, row in enumerate(_rows(table, columns)) if problem(row)]


def _example(columns: tuple[str, ...], problem: Callable) -> Callable[[pa.Table, int], str]:
    def example(table: pa.Table, index: int) -> str:
        row = table.slice(index, 1).select(list(columns)).to_pylist()[0]
        return problem(row) or "passes"

    return example


def _spec(columns: tuple[str, ...], problem: Callable) -> tuple:
    return (columns, lambda table: _failing(table, columns, problem), _example(columns, problem))


# Row rules of `records` --------------------------------------------------------------


def classification_problem(row: dict[str, Any]) -> str | None:
    """Return why a row's options and letters break the classification layout."""
    options = row["options"] or []
    if row["task"] != "classification":
        if options or row["answer_letter"] is not None or row["correct_letter"] is not None:
            return f"{row['task']} record has options {options} or letters"
        return None
    if len(options) != len(LETTERS):
        return f"{len(options)} options; expected {len(LETTERS)}"
    keys = [normalize(option) for option in options]
    if len(set(keys)) != len(keys):
        return f"options repeat: {options}"
    matches = [i for i, key in enumerate(keys) if key == normalize(row["answer"])]
    if len(matches) != 1:
        return f"answer {row['answer']!r} matches {len(matches)} options of {options}"
    if row["answer_letter"] != LETTERS[matches[0]]:
        return (
            f"answer_letter {row['answer_letter']!r} but the answer is option {LETTERS[matches[0]]}"
        )
    correct = [i for i, key in enumerate(keys) if key == normalize(row["correct_answer"])]
    if len(correct) != 1 or row["correct_letter"] != LETTERS[correct[0]]:
        return (
            f"correct_letter {row['correct_letter']!r} does not point at the one option equal to "
            f"correct_answer {row['correct_answer']!r}"
        )
    return None


def corruption_problem(row: dict[str, Any]) -> str | None:
    """Return why a row's corrupted flag, answers and ledger ids disagree."""
    same = normalize(row["answer"]) == normalize(row["correct_answer"])
    if row["corrupted"] and same:
        return f"corrupted answer {row['answer']!r} equals the correct answer"
    if not row["corrupted"] and row["answer"] != row["correct_answer"]:
        return f"answer {row['answer']!r} differs from correct_answer but corrupted is false"
    if row["corrupted"] and not row["ledger_ids"]:
        return "corrupted record lists no ledger id"
    if row["injected"] != bool(row["ledger_ids"]):
        return f"injected is {row['injected']} but the record lists {len(row['ledger_ids'])} ids"
    return None


def cloze_problem(row: dict[str, Any]) -> str | None:
    """Return why a cloze record does not have exactly one blank."""
    blanks = row["question"].count(BLANK)
    if row["task"] == "cloze" and blanks != 1:
        return f"cloze question has {blanks} blanks: {shorten(row['question'])!r}"
    return None


def probe_problem(row: dict[str, Any]) -> str | None:
    """Return why a privacy probe's ground truth is not the ledger value it lists."""
    if row["scenario"] != "privacy" or row["task"] not in EVAL_TASKS:
        return None
    if row["field"] not in PRIVATE_FIELDS or not row["patient_id"]:
        return f"probe of field {row['field']!r} for patient {row['patient_id']!r}"
    expected = private_ledger_id(row["patient_id"], row["field"], row["answer"])
    if expected not in (row["ledger_ids"] or []):
        return f"ground truth {row['answer']!r} is not the ledger value {expected} of the probe"
    return None


def png_problem(data: bytes) -> str | None:
    """Return why PNG bytes are not a bare PNG: a wrong signature or a metadata chunk."""
    if not data.startswith(PNG_SIGNATURE):
        return "not a PNG file"
    position = len(PNG_SIGNATURE)
    while position + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[position : position + 8])
        if kind not in PNG_CHUNKS:
            return f"PNG chunk {kind.decode('latin-1')!r} may carry metadata"
        position += 12 + length
        if kind == b"IEND":
            return None if position == len(data) else "bytes after the IEND chunk"
    return "PNG ends without an IEND chunk"


class _ImageChecks:
    """Checker of image cells against their ids, with results cached by content hash."""

    def __init__(self) -> None:
        self.cache: dict[tuple[str, str | None, str | None], str | None] = {}

    def problem(self, cell: dict[str, Any] | None, image_id: str | None, phash_hex: str | None):
        if cell is None:
            return None
        data = cell.get("bytes")
        if not data:
            return "image cell without bytes"
        digest = hashlib.sha256(data).hexdigest()
        key = (digest, image_id, phash_hex)
        if key not in self.cache:
            self.cache[key] = self._check(data, digest, image_id, phash_hex, cell.get("path"))
        return self.cache[key]

    @staticmethod
    def _check(data: bytes, digest: str, image_id, phash_hex, path) -> str | None:
        if digest != image_id:
            return f"image bytes have sha256 {digest[:16]}…, image_id is {image_id!r}"
        if path != f"images/{digest[:16]}.png":
            return f"image path {path!r}; expected images/{digest[:16]}.png"
        problem = png_problem(data)
        if problem:
            return problem
        try:
            with Image.open(io.BytesIO(data)) as image:
                image.load()
                value = f"{phash(image):016x}"
        except (OSError, ValueError) as error:
            return f"PNG does not decode: {error}"
        if value != phash_hex:
            return f"perceptual hash of the pixels is {value}; image_phash is {phash_hex!r}"
        return None


def image_rule(columns: tuple[str, ...], modality_column: bool) -> tuple:
    """Return the row rule that checks image cells, ids and (for records) modalities."""

    def check(table: pa.Table) -> list[int]:
        checks = _ImageChecks()
        return [
            index
            for index, row in enumerate(_rows(table, columns))
            if _image_problem(row, checks, modality_column)
        ]

    def example(table: pa.Table, index: int) -> str:
        row = table.slice(index, 1).select(list(columns)).to_pylist()[0]
        return _image_problem(row, _ImageChecks(), modality_column) or "passes"

    return (columns, check, example)


def _image_problem(row: dict[str, Any], checks: _ImageChecks, modality_column: bool):
    if modality_column:
        if row["modality"] == "text_only" and (row["image"] or row["image_id"]):
            return "text-only record carries an image"
        if row["modality"] == "image_text" and not row["image_id"]:
            return "image+text record has no image_id"
        if (row["image_id"] is None) != (row["image_phash"] is None):
            return "image_id and image_phash must be both set or both null"
    return checks.problem(row["image"], row["image_id"], row["image_phash"])


# Row rules of `ledger` ---------------------------------------------------------------


def ledger_problem(row: dict[str, Any]) -> str | None:
    """Return why a ledger row's id, values or carriers are inconsistent."""
    if row["kind"] == PRIVATE:
        expected = private_ledger_id(row["patient_id"], row["field"], row["value"])
        if row["ledger_id"] != expected:
            return f"ledger_id {row['ledger_id']} does not hash its value; expected {expected}"
        if row["field"] not in PRIVATE_FIELDS:
            return f"private value of unknown field {row['field']!r}"
    elif row["kind"] == CORRUPTED:
        if row["correct_value"] is None:
            return "corrupted answer without its correct value"
        if normalize(row["value"]) == normalize(row["correct_value"]):
            return f"corrupted value {row['value']!r} equals the correct value"
    else:
        return f"unknown kind {row['kind']!r}"
    if not row["record_ids"]:
        return "no record carries this entry"
    return None


RECORD_IMAGE_COLUMNS = ("modality", "image", "image_id", "image_phash")
ROW_RULE_SPECS: dict[str, tuple] = {
    "classification_options_valid": _spec(
        ("task", "options", "answer", "answer_letter", "correct_answer", "correct_letter"),
        classification_problem,
    ),
    "corrupted_answers_differ": _spec(
        ("answer", "correct_answer", "corrupted", "injected", "ledger_ids"), corruption_problem
    ),
    "cloze_has_one_blank": _spec(("task", "question"), cloze_problem),
    "probe_answers_in_ledger_ids": _spec(
        ("scenario", "task", "field", "patient_id", "answer", "ledger_ids"), probe_problem
    ),
    "record_images_match_ids": image_rule(RECORD_IMAGE_COLUMNS, modality_column=True),
    "ledger_entries_consistent": _spec(
        (
            "ledger_id",
            "kind",
            "patient_id",
            "field",
            "value",
            "correct_value",
            "record_ids",
        ),
        ledger_problem,
    ),
    "stored_images_match_ids": image_rule(("image", "image_id", "image_phash"), False),
}


# Release rules -----------------------------------------------------------------------


class UniqueValues:
    """Release rule: each value of `column` appears once in the whole release."""

    column = ""

    def __init__(self, result: RuleResult) -> None:
        self.result = result
        self.columns = (self.column,)
        self.first_file: dict[str, str] = {}

    def add(self, batch: pa.RecordBatch, file: str, split: str) -> None:
        for value in batch.column(self.column).to_pylist():
            if value in self.first_file:
                self.result.record(file, value, f"{self.column} also in {self.first_file[value]}")
            else:
                self.first_file[value] = file


class UniqueRecordIds(UniqueValues):
    column = "id"


class UniqueLedgerIds(UniqueValues):
    column = "ledger_id"


class UniqueImageIds(UniqueValues):
    column = "image_id"


class _BandOrder:
    """Tracker of the band order of batches; it records a batch that arrives out of order."""

    def __init__(self, result: RuleResult) -> None:
        self.result = result
        self.position = 0
        self.in_tests = False

    def check(self, split: str, file: str) -> str | None:
        """Return the band code of a split, recording an out-of-order or unknown split."""
        if split == REAL_BAND:
            code = REAL_BAND
        elif split.startswith(("band_", "test_")) and split[5:] in BAND_ORDER:
            code = split[5:]
        else:
            self.result.record(file, None, f"unknown split {split!r}", rows=0)
            return None
        if split.startswith("test_"):
            self.in_tests = True
            return code
        position = BAND_ORDER.index(code)
        if self.in_tests or position < self.position:
            self.result.record(
                file, None, f"split {split} arrived after a later band; rule results are partial", 0
            )
        self.position = max(self.position, position)
        return code


class PatientsInOneBand:
    """Release rule: each patient's records are in one band, and rows match their split."""

    columns = ("id", "patient_id", "band", "variant")

    def __init__(self, result: RuleResult) -> None:
        self.result = result
        self.order = _BandOrder(result)
        self.band_of: dict[str, str] = {}

    def add(self, batch: pa.RecordBatch, file: str, split: str) -> None:
        code = self.order.check(split, file)
        variant = "test" if split.startswith("test_") else "original"
        rows = batch.select(list(self.columns)).to_pylist()
        for row in rows:
            if code is not None and (row["band"] != code or row["variant"] != variant):
                value = f"band {row['band']} and variant {row['variant']} in split {split}"
                self.result.record(file, row["id"], value)
                continue
            patient = row["patient_id"]
            if code == REAL_BAND:
                if patient is not None:
                    self.result.record(file, row["id"], f"real record of patient {patient}")
                continue
            if patient is None:
                self.result.record(file, row["id"], "patient record without patient_id")
                continue
            first = self.band_of.setdefault(patient, row["band"])
            if first != row["band"]:
                value = f"patient {patient} is in band {row['band']} and in band {first}"
                self.result.record(file, row["id"], value)


class TestSplitsPresent:
    """Release rule: each forget band with records has records in its test split.

    Without a band's test records, no forget config of that band can score
    generalisation, for example when every model-written paraphrase was
    quarantined.
    """

    columns = ("id",)

    def __init__(self, result: RuleResult) -> None:
        self.result = result
        self.band_files: dict[str, str] = {}
        self.tested: set[str] = set()

    def add(self, batch: pa.RecordBatch, file: str, split: str) -> None:
        if batch.num_rows == 0:
            return
        if split.startswith("band_") and split[5:] in FORGET_CODES:
            self.band_files.setdefault(split[5:], file)
        elif split.startswith("test_"):
            self.tested.add(split[5:])

    def finish(self) -> None:
        for code, file in sorted(self.band_files.items()):
            if code not in self.tested:
                problem = (
                    f"split band_{code} has records but split test_{code} has none; "
                    "check the quarantine reasons of the test records "
                    "(llm_* reasons with text_backend=model)"
                )
                self.result.record(file, None, problem, rows=0)


class ImagesDisjointAcrossBands:
    """Release rule: no picture is in two bands (or a band and real).

    Pictures compare by content hash and by perceptual hash: two images whose
    hashes differ in at most PHASH_DUPLICATE_THRESHOLD bits count as the same
    picture. Test records reuse their band's pictures on purpose and are skipped.
    """

    columns = ("id", "band", "variant", "image_id", "image_phash")

    def __init__(self, result: RuleResult) -> None:
        self.result = result
        self.band_of: dict[str, str] = {}
        self.hashes: dict[str, list[int]] = {}
        self.arrays: dict[str, np.ndarray] = {}

    def add(self, batch: pa.RecordBatch, file: str, split: str) -> None:
        for row in batch.select(list(self.columns)).to_pylist():
            image_id = row["image_id"]
            if row["variant"] == "test" or image_id is None:
                continue
            band = row["band"]
            first = self.band_of.get(image_id)
            if first is not None:
                if first != band:
                    value = f"image {image_id[:16]} is in band {band} and in band {first}"
                    self.result.record(file, row["id"], value)
                continue
            self.band_of[image_id] = band
            value = int(row["image_phash"], 16)
            for other, hashes in self.hashes.items():
                if other == band or not hashes:
                    continue
                if len(self.arrays.get(other, ())) != len(hashes):
                    self.arrays[other] = np.array(hashes, dtype=np.uint64)
                distance = np.bitwise_count(self.arrays[other] ^ np.uint64(value))
                closest = int(distance.min())
                if closest <= PHASH_DUPLICATE_THRESHOLD:
                    message = (
                        f"image {image_id[:16]} in band {band} is within {closest} bits of a "
                        f"picture in band {other} (threshold {PHASH_DUPLICATE_THRESHOLD})"
                    )
                    self.result.record(file, row["id"], message)
            self.hashes.setdefault(band, []).append(value)


_WORD = re.compile(r"\w+")


class _ValueMatcher:
    """Index of known values, found in texts as whole token sequences by their first token."""

    def __init__(self) -> None:
        self.by_first: dict[str, list[tuple[str, int, str]]] = {}

    def add(self, value: str, band: str) -> None:
        first = _WORD.search(value)
        if first is None:
            return
        entry = (value, first.start(), band)
        self.by_first.setdefault(first.group(), []).append(entry)

    def find(self, text: str, skip_band: str) -> tuple[str, str] | None:
        for token in _WORD.finditer(text):
            for value, offset, band in self.by_first.get(token.group(), ()):
                if band == skip_band:
                    continue
                start = token.start() - offset
                if start < 0 or not text.startswith(value, start):
                    continue
                end = start + len(value)
                before_ok = start == 0 or not (text[start - 1].isalnum() or text[start - 1] == "_")
                after_ok = end == len(text) or not (text[end].isalnum() or text[end] == "_")
                if before_ok and after_ok:
                    return value, band
        return None


class PrivateValuesStayInBand:
    """Release rule (the leak audit): a private value appears only in its patient's band.

    No private value of a forget band is in a retain or real record, and no retain
    value is in a forget record, at any forget level. Values come from the
    privacy probes, whose answer is the private value. Texts of later bands are
    searched for the values seen so far; texts of the forget bands are kept and
    searched for each value that appears later.

    NOTE: the forget bands' texts stay in memory for the backward search, which
    is about 15% of the release's text.
    """

    columns = (
        "id",
        "band",
        "scenario",
        "task",
        "field",
        "question",
        "answer",
        "correct_answer",
        "options",
    )

    def __init__(self, result: RuleResult) -> None:
        self.result = result
        self.order = _BandOrder(result)
        self.band_of_value: dict[str, str] = {}
        self.matcher = _ValueMatcher()
        self.forget_texts: list[tuple[str, str, str, str]] = []
        self.postings: dict[str, set[int]] = {}

    def add(self, batch: pa.RecordBatch, file: str, split: str) -> None:
        self.order.check(split, file)
        rows = batch.select(list(self.columns)).to_pylist()
        for row in rows:
            if row["scenario"] == "privacy" and row["task"] in EVAL_TASKS:
                self._add_value(row["answer"], row["band"], file, row["id"])
        for row in rows:
            texts = [row["question"], row["answer"], row["correct_answer"], *(row["options"] or [])]
            text = "\n".join(text for text in texts if text)
            found = self.matcher.find(text, row["band"])
            if found is not None:
                value, band = found
                where = f"band {row['band']} record"
                message = f"private value {shorten(value)!r} of band {band} in a {where}"
                self.result.record(file, row["id"], message)
            if row["band"] in FORGET_CODES and not split.startswith("test_"):
                self._keep(text, row["band"], row["id"], file)

    def _add_value(self, value: str, band: str, file: str, record_id: str) -> None:
        first = self.band_of_value.get(value)
        if first is not None:
            if first != band:
                message = f"private value {shorten(value)!r} belongs to bands {first} and {band}"
                self.result.record(file, record_id, message)
            return
        self.band_of_value[value] = band
        self.matcher.add(value, band)
        tokens = _WORD.findall(value)
        if not tokens:
            return
        candidates = set.intersection(*(self.postings.get(token, set()) for token in tokens))
        for position in sorted(candidates):
            text, text_band, text_id, text_file = self.forget_texts[position]
            if text_band == band:
                continue
            pattern = r"(?<!\w)" + re.escape(value) + r"(?!\w)"
            if re.search(pattern, text):
                message = (
                    f"private value {shorten(value)!r} of band {band} in a band {text_band} record"
                )
                self.result.record(text_file, text_id, message)

    def _keep(self, text: str, band: str, record_id: str, file: str) -> None:
        position = len(self.forget_texts)
        self.forget_texts.append((text, band, record_id, file))
        for token in set(_WORD.findall(text)):
            self.postings.setdefault(token, set()).add(position)


RELEASE_RULE_CLASSES: dict[str, type] = {
    "record_ids_unique": UniqueRecordIds,
    "ledger_ids_unique": UniqueLedgerIds,
    "image_ids_unique": UniqueImageIds,
    "patients_in_one_band": PatientsInOneBand,
    "images_disjoint_across_bands": ImagesDisjointAcrossBands,
    "test_splits_present": TestSplitsPresent,
    "private_values_stay_in_band": PrivateValuesStayInBand,
}
