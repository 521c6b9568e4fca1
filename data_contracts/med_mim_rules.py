"""Med-MIM contract rules: record layout per shard; uniqueness and disjoint splits per release.

Row rules are (columns, check, example) triples that rules.py wraps as RowRule;
release rules are classes with the ReleaseCheck interface of release_rules.py.
This module imports neither, so both can register these rules without an
import cycle.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa

from corpusforge.data_contracts.report import RuleResult, shorten
from corpusforge.generators.imaging.io import PHASH_DUPLICATE_THRESHOLD
from corpusforge.generators.med_mim.conversation import IMAGE_TOKEN, closed_answer, user_content
from corpusforge.generators.med_mim.letters import LETTERS


def _rows(table: pa.Table, columns: tuple[str, ...]) -> list[dict[str, Any]]:
    return table.select(list(columns)).to_pylist()


def _failing(table: pa.Table, columns: tuple[str, ...], problem: Callable) -> list[int]:
    return [index for index, row in enumerate(_rows(table, columns)) if problem(row)]


def _example(columns: tuple[str, ...], problem: Callable) -> Callable[[pa.Table, int], str]:
    def example(table: pa.Table, index: int) -> str:
        row = table.slice(index, 1).select(list(columns)).to_pylist()[0]
        return problem(row) or "passes"

    return example


def image_count_problem(row: dict[str, Any]) -> str | None:
    """Return why the image tokens, ids, metadata and embedded images disagree in number."""
    count = row["num_images"]
    turns = row["conversation"] or []
    content = (turns[0] or {}).get("content") or "" if turns else ""
    tokens = content.count(IMAGE_TOKEN)
    lengths = {
        "<image> tokens": tokens,
        "image_ids": len(row["image_ids"] or []),
        "image_metadata": len(row["image_metadata"] or []),
    }
    if row["images"] is not None:
        lengths["images"] = len(row["images"])
    if any(length != count for length in lengths.values()):
        return f"num_images {count} but {lengths}"
    if not content.startswith(IMAGE_TOKEN * count):
        return f"the user turn does not start with {count} image tokens: {shorten(content)!r}"
    return None


def conversation_problem(row: dict[str, Any]) -> str | None:
    """Return why the conversation is not (user: tokens + question + options, assistant: answer)."""
    turns = row["conversation"] or []
    if [turn and turn["role"] for turn in turns] != ["user", "assistant"]:
        return f"roles are {[turn and turn['role'] for turn in turns]}; expected user, assistant"
    expected = user_content(row["question"], row["options"] or [], row["num_images"])
    if turns[0]["content"] != expected:
        return f"user turn {shorten(turns[0]['content'])!r} differs from {shorten(expected)!r}"
    if turns[1]["content"] != row["answer"]:
        return f"assistant turn {shorten(turns[1]['content'])!r} is not the answer"
    return None


def answer_problem(row: dict[str, Any]) -> str | None:
    """Return why the answer, options and correct option of a record disagree."""
    options = row["options"] or []
    letter = row["correct_option"]
    if row["question_type"] == "open":
        if options or letter is not None:
            return f"open question with options {options} and correct option {letter!r}"
        return None if (row["answer"] or "").strip() else "open question without an answer"
    if not 2 <= len(options) <= 8 or len(set(options)) != len(options):
        return f"closed question needs 2 to 8 distinct options, has {options}"
    if letter is None or letter not in LETTERS[: len(options)]:
        return f"correct option {letter!r} is not one of the {len(options)} option letters"
    expected = closed_answer(letter, options[LETTERS.index(letter)])
    if row["answer"] != expected:
        return f"answer {row['answer']!r} does not match the correct option {expected!r}"
    return None


def position_problem(row: dict[str, Any]) -> str | None:
    """Return why referenced image positions are out of range or missing for co-reference."""
    positions = row["referenced_images"] or []
    outside = [p for p in positions if p is None or not 1 <= p <= row["num_images"]]
    if outside:
        return f"positions {outside} outside 1..{row['num_images']}"
    if row["ability"] == "coreference" and not positions:
        return "co-reference question without a referenced image position"
    return None


def _image_cell_problem(cell: dict[str, Any] | None, image_id: str) -> str | None:
    if cell is None or cell.get("bytes") is None:
        return f"image {image_id[:16]} has no bytes"
    actual = hashlib.sha256(cell["bytes"]).hexdigest()
    if actual != image_id:
        return f"image bytes hash to {actual[:16]}, id is {image_id[:16]}"
    if cell.get("path") != f"images/{image_id[:16]}.png":
        return f"image path {cell.get('path')!r}; expected 'images/{image_id[:16]}.png'"
    return None


def embedded_images_problem(row: dict[str, Any]) -> str | None:
    """Return why an embedded image's bytes or path do not match its id."""
    if row["images"] is None:
        return None
    for cell, image_id in zip(row["images"], row["image_ids"] or [], strict=False):
        problem = _image_cell_problem(cell, image_id)
        if problem:
            return problem
    return None


def image_table_problem(row: dict[str, Any]) -> str | None:
    return _image_cell_problem(row["image"], row["image_id"])


def _row_rule(columns: tuple[str, ...], problem: Callable) -> tuple:
    return (columns, lambda table: _failing(table, columns, problem), _example(columns, problem))


ROW_RULE_SPECS: dict[str, tuple] = {
    "image_tokens_match_images": _row_rule(
        ("num_images", "conversation", "image_ids", "image_metadata", "images"),
        image_count_problem,
    ),
    "conversation_layout": _row_rule(
        ("conversation", "question", "options", "answer", "num_images"), conversation_problem
    ),
    "answer_matches_correct_option": _row_rule(
        ("question_type", "options", "correct_option", "answer"), answer_problem
    ),
    "referenced_positions_in_range": _row_rule(
        ("ability", "referenced_images", "num_images"), position_problem
    ),
    "embedded_images_match_ids": _row_rule(("images", "image_ids"), embedded_images_problem),
    "image_bytes_match_id": _row_rule(("image_id", "image"), image_table_problem),
}


class UniqueQuestionImageSets:
    """Release rule: no two records ask the same question about the same ordered image set."""

    columns = ("id", "question", "image_ids")

    def __init__(self, result: RuleResult) -> None:
        self.result = result
        self.first: dict[tuple[str, tuple[str, ...]], str] = {}

    def add(self, batch: pa.RecordBatch, file: str, split: str) -> None:
        for record_id, question, image_ids in zip(
            batch.column("id").to_pylist(),
            batch.column("question").to_pylist(),
            batch.column("image_ids").to_pylist(),
            strict=True,
        ):
            key = (question, tuple(image_ids or ()))
            if key in self.first:
                self.result.record(
                    file, record_id, f"same question and images as {self.first[key]}"
                )
            else:
                self.first[key] = record_id


class _DisjointBy:
    """Release rule base: a value of each record's images belongs to one split only."""

    columns: tuple[str, ...] = ()
    label = ""

    def __init__(self, result: RuleResult) -> None:
        self.result = result
        self.split_of: dict[str, str] = {}

    def values(self, batch: pa.RecordBatch) -> list[list[str]]:
        raise NotImplementedError

    def add(self, batch: pa.RecordBatch, file: str, split: str) -> None:
        ids = batch.column("id").to_pylist()
        for record_id, values in zip(ids, self.values(batch), strict=True):
            for value in values:
                first = self.split_of.setdefault(value, split)
                if first != split:
                    self.result.record(
                        file, record_id, f"{self.label} {value!r} is in {split} and in {first}"
                    )


class DisjointPatients(_DisjointBy):
    """Release rule: every patient's images are in one split."""

    columns = ("id", "image_metadata")
    label = "patient"

    def values(self, batch: pa.RecordBatch) -> list[list[str]]:
        return [
            sorted({item["patient"] for item in metadata or []})
            for metadata in batch.column("image_metadata").to_pylist()
        ]


class DisjointImages(_DisjointBy):
    """Release rule: every image id (sha256 of its PNG) is in one split."""

    columns = ("id", "image_ids")
    label = "image"

    def values(self, batch: pa.RecordBatch) -> list[list[str]]:
        return [sorted(set(ids or [])) for ids in batch.column("image_ids").to_pylist()]


class DisjointPerceptualHashes:
    """Release rule: no image of a benchmark split is a near duplicate of a train image.

    Two images whose 64-bit pHashes differ in at most PHASH_DUPLICATE_THRESHOLD
    bits count as the same picture. The new hashes of each batch are compared
    with every hash seen so far on the other side (train against the benchmark
    splits), so the result does not depend on the order of the shards.
    """

    columns = ("id", "image_metadata")

    def __init__(self, result: RuleResult) -> None:
        self.result = result
        self.seen: dict[str, set[int]] = {"train": set(), "benchmark": set()}
        self.arrays: dict[str, list[np.ndarray]] = {"train": [], "benchmark": []}

    def add(self, batch: pa.RecordBatch, file: str, split: str) -> None:
        side = "train" if split == "train" else "benchmark"
        other = "benchmark" if side == "train" else "train"
        new: list[tuple[int, str, dict[str, Any]]] = []
        ids = batch.column("id").to_pylist()
        for record_id, metadata in zip(
            ids, batch.column("image_metadata").to_pylist(), strict=True
        ):
            for item in metadata or []:
                value = int(item["phash"], 16)
                if value not in self.seen[side]:
                    self.seen[side].add(value)
                    new.append((value, record_id, item))
        if not new:
            return
        values = np.array([value for value, _, _ in new], dtype=np.uint64)
        for known in self.arrays[other]:
            distances = np.bitwise_count(values[:, None] ^ known[None, :])
            for row in np.flatnonzero(distances.min(axis=1) <= PHASH_DUPLICATE_THRESHOLD):
                _, record_id, item = new[row]
                self.result.record(
                    file,
                    record_id,
                    f"image {item['source_image']!r} (pHash {item['phash']}) in {split} is within "
                    f"{PHASH_DUPLICATE_THRESHOLD} bits of an image in the {other} side",
                )
        self.arrays[side].append(values)


class UniqueImageIds:
    """Release rule of the `images` config: each image is stored once in the whole release."""

    columns = ("image_id",)

    def __init__(self, result: RuleResult) -> None:
        self.result = result
        self.first_file: dict[str, str] = {}

    def add(self, batch: pa.RecordBatch, file: str, split: str) -> None:
        for image_id in batch.column("image_id").to_pylist():
            if image_id in self.first_file:
                self.result.record(file, image_id, f"image also in {self.first_file[image_id]}")
            else:
                self.first_file[image_id] = file


RELEASE_RULE_CLASSES = {
    "image_ids_unique_across_shards": UniqueImageIds,
    "question_image_sets_unique": UniqueQuestionImageSets,
    "splits_disjoint_by_patient": DisjointPatients,
    "splits_disjoint_by_image": DisjointImages,
    "splits_disjoint_by_phash": DisjointPerceptualHashes,
}
