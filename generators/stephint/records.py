"""Build one row of the StepHint `chains` table from an `Example`.

A row contains the normalized chain, its steps from adaptive partitioning, and the
hint levels: level k is the text of the first k steps. The step that contains
the final-answer marker and every later step are never part of a hint, so a
chain whose answer sits in step j has hint levels 1 .. j - 1, and a chain with
one step has no hints.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from corpusforge.generators.base import Rejected
from corpusforge.generators.stephint.answers import (
    extract_final_answer,
    normalize_answer_text,
    verify,
)
from corpusforge.generators.stephint.chain import normalize_chain
from corpusforge.generators.stephint.partition import BoundaryScorer, partition
from corpusforge.generators.stephint.sources import MAX_REJECTED_STRING_CHARS, Example

PARTITION_METHOD = "adaptive"

_THOUSANDS_SEPARATOR_IN_NUMBER = re.compile(r"(?<=\d)(?:,|\{,\})(?=\d{3}(?!\d))")
_NUMBER = re.compile(r"^[-+]?\d+(?:\.\d+)?$")


def make_row(
    example: Example,
    *,
    fmt: str,
    style: str,
    source_file: str,
    source_split: str,
    record_id: str,
    scorer: BoundaryScorer,
    min_step_chars: int,
    max_steps: int,
) -> dict[str, Any] | Rejected:
    """Return the `chains` row of `example`, or a `Rejected` with the reason.

    Reject reasons: `empty_reference`, `no_final_answer`, `unbalanced_boxed`,
    `answer_mismatch` (the chain's final answer does not verify against the
    reference answer).
    """

    def reject(reason: str, detail: str) -> Rejected:
        return Rejected(reason, fmt, example.source_id, example.line, detail, _record_of(example))

    reference = example.reference_answer.strip()
    if not reference:
        return reject("empty_reference", "the reference answer is empty")

    chain = normalize_chain(style, example.source_text)
    extraction = extract_final_answer(chain)
    if extraction.answer is None:
        if extraction.reason == "unbalanced_boxed":
            detail = f"\\boxed at offset {extraction.span[0]} has no closing brace"
        else:
            detail = "the chain has no \\boxed{...} and no #### line"
        return reject(extraction.reason or "no_final_answer", detail)

    verification = verify(extraction.answer, reference)
    if not verification.verified:
        return reject(
            "answer_mismatch",
            f"final answer {extraction.answer!r} does not match reference {reference!r} "
            f"({verification.method}: {verification.detail})",
        )

    spans = partition(chain, scorer, min_chars=min_step_chars, max_steps=max_steps)
    steps = [chain[start:end] for start, end in spans]
    final_step = _step_containing(spans, extraction.span[0])
    hints = build_hints(steps, final_step, reference)

    return {
        "id": record_id,
        "source": fmt,
        "source_file": source_file,
        "source_id": example.source_id,
        "source_split": source_split,
        "problem": example.problem,
        "reference_answer": reference,
        "source_text": example.source_text,
        "chain": chain,
        "steps": steps,
        "step_offsets": [{"start": start, "end": end} for start, end in spans],
        "num_steps": len(steps),
        "hints": hints,
        "partition_method": PARTITION_METHOD,
        "scorer": scorer.name,
        "predicted_answer": extraction.answer,
        "verified": True,
        "verification": verification.method,
        "metadata": json.dumps(
            _json_safe(example.metadata), sort_keys=True, ensure_ascii=False, default=str
        ),
    }


def _step_containing(spans: list[tuple[int, int]], offset: int) -> int:
    """Return the 0-based index of the step whose range contains `offset`."""
    for index, (start, end) in enumerate(spans):
        if start <= offset < end:
            return index
    return len(spans) - 1


def build_hints(steps: list[str], final_step: int, reference: str) -> list[dict[str, Any]]:
    """Return hint levels 1 .. final_step, where level k is the text of the first k steps.

    `final_step` is the 0-based index of the step with the final answer, so that
    step is never inside a hint.
    """
    hints = []
    text = ""
    for level in range(1, final_step + 1):
        text += steps[level - 1]
        hints.append(
            {
                "level": level,
                "num_steps": level,
                "text": text,
                "answer_in_hint": answer_appears_in(text, reference),
            }
        )
    return hints


def answer_appears_in(text: str, reference: str) -> bool:
    """Return whether the normalized reference answer occurs in `text` as a whole token.

    A numeric reference must occur as a whole number: "18" is found in "$18 a day"
    and "18.", but not in "180", "2.18" or "18.5". Thousands separators in the text
    are ignored. Other references are compared after `normalize_answer_text` and
    must not be preceded or followed by a letter or digit.
    """
    answer = normalize_answer_text(reference)
    if not answer:
        return False

    if _NUMBER.match(answer):
        plain_text = _THOUSANDS_SEPARATOR_IN_NUMBER.sub("", text)
        number = re.escape(answer.lstrip("+"))
        pattern = rf"(?<![\d.]){number}(?!\d|\.\d)"
        return re.search(pattern, plain_text) is not None

    normalized_text = normalize_answer_text(text)
    start = normalized_text.find(answer)
    while start >= 0:
        end = start + len(answer)
        before_ok = start == 0 or not (answer[0].isalnum() and normalized_text[start - 1].isalnum())
        after_ok = end == len(normalized_text) or not (
            answer[-1].isalnum() and normalized_text[end].isalnum()
        )
        if before_ok and after_ok:
            return True
        start = normalized_text.find(answer, start + 1)
    return False


def _json_safe(value: Any) -> Any:
    """Return `value` with NaN and infinite floats replaced by None, for strict JSON."""
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, dict):
        return {str(key): _json_safe(child) for key, child in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(child) for child in value]
    return value


def _record_of(example: Example) -> dict[str, Any]:
    """Return the example's fields for a quarantine record, each string cut short."""
    limit = MAX_REJECTED_STRING_CHARS
    return {
        "problem": example.problem[:limit],
        "reference_answer": example.reference_answer[:limit],
        "source_text": example.source_text[:limit],
        "metadata": {
            key: value[:limit] if isinstance(value, str) else value
            for key, value in example.metadata.items()
        },
    }
