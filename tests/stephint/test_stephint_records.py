"""Tests of `make_row`: real samples end to end, hint invariants and rejections."""

from __future__ import annotations

import functools
import json
from collections import Counter

import pyarrow as pa
import pytest

from corpusforge.generators.base import Rejected
from corpusforge.generators.stephint.answers import extract_final_answer
from corpusforge.generators.stephint.partition import (
    DEFAULT_MAX_STEPS,
    DEFAULT_MIN_STEP_CHARS,
    HeuristicScorer,
)
from corpusforge.generators.stephint.records import answer_appears_in, build_hints, make_row
from corpusforge.generators.stephint.sources import (
    Example,
    iter_raw_records,
    style_of,
    to_example,
)
from corpusforge.schemas.stephint import CHAINS

REAL_FILES = [
    ("gsm8k", "gsm8k_test_200.jsonl"),
    ("math", "math500_200.jsonl"),
    ("longcot", "longcot_sky_t1_120.jsonl"),
]


class DecreasingScorer:
    """A scorer whose scores fall at every candidate, so every candidate is a boundary."""

    name = "decreasing"

    def score(self, chain: str, candidates: list[int]) -> list[float]:
        return [1.0 - (index + 1) / (len(candidates) + 1) for index in range(len(candidates))]


def build(example: Example, fmt: str = "math", style: str = "math", **overrides):
    arguments = {
        "fmt": fmt,
        "style": style,
        "source_file": "sample.jsonl",
        "source_split": "test",
        "record_id": f"id-{example.source_id}",
        "scorer": HeuristicScorer(),
        "min_step_chars": DEFAULT_MIN_STEP_CHARS,
        "max_steps": DEFAULT_MAX_STEPS,
    }
    arguments.update(overrides)
    return make_row(example, **arguments)


@functools.cache
def build_file(path: str, fmt: str) -> tuple[list[dict], list[Rejected]]:
    """Build every record of a real file once per test session; callers must not mutate."""
    rows = []
    rejected = []
    for raw in iter_raw_records(fmt, path, {}):
        example = to_example(fmt, raw, {})
        result = (
            example if isinstance(example, Rejected) else build(example, fmt, style_of(fmt, {}))
        )
        if isinstance(result, Rejected):
            rejected.append(result)
        else:
            rows.append(result)
    return rows, rejected


def assert_row_invariants(row: dict) -> None:
    chain = row["chain"]
    assert "".join(row["steps"]) == chain
    assert row["num_steps"] == len(row["steps"])
    offsets = row["step_offsets"]
    assert offsets[0]["start"] == 0
    assert offsets[-1]["end"] == len(chain)
    for previous, current in zip(offsets, offsets[1:], strict=False):
        assert previous["end"] == current["start"]
    for step, offset in zip(row["steps"], offsets, strict=True):
        assert chain[offset["start"] : offset["end"]] == step

    levels = [hint["level"] for hint in row["hints"]]
    assert levels == list(range(1, len(levels) + 1))
    assert len(levels) < max(row["num_steps"], 1)
    for hint in row["hints"]:
        assert chain.startswith(hint["text"])
        assert hint["text"] == "".join(row["steps"][: hint["level"]])
        assert hint["num_steps"] == hint["level"]
        # The step with the final-answer marker is never part of a hint.
        assert len(hint["text"]) <= extract_final_answer(chain).span[0]


@pytest.mark.parametrize(("fmt", "file_name"), REAL_FILES)
def test_real_file_rows_match_schema(reasoning_dir, fmt, file_name):
    rows, rejected = build_file(str(reasoning_dir / file_name), fmt)
    counts = Counter(item.reason for item in rejected)
    print(f"{file_name}: {len(rows)} rows, rejects {dict(counts)}")

    for row in rows:
        assert set(row) == set(CHAINS.names)
        assert_row_invariants(row)
        assert row["verified"] is True
        assert row["partition_method"] == "adaptive"
        assert row["scorer"] == "heuristic-v1"
        assert json.loads(row["metadata"]) is not None
    table = pa.Table.from_pylist(rows, schema=CHAINS)
    assert table.num_rows == len(rows)


def test_gsm8k_rows_and_rejects(reasoning_dir):
    rows, rejected = build_file(str(reasoning_dir / "gsm8k_test_200.jsonl"), "gsm8k")

    assert len(rows) == 200
    assert rejected == []
    first = rows[0]
    assert first["predicted_answer"] == "18"
    assert first["chain"].endswith("#### 18")
    assert first["steps"][-1] == "#### 18"
    assert all(row["num_steps"] >= 2 for row in rows)


def test_math500_rows_and_rejects(reasoning_dir):
    rows, rejected = build_file(str(reasoning_dir / "math500_200.jsonl"), "math")

    assert len(rows) == 200
    assert rejected == []
    assert Counter(row["verification"] for row in rows) == {"math_verify": 200}


def test_longcot_rows_and_rejects(reasoning_dir):
    rows, rejected = build_file(str(reasoning_dir / "longcot_sky_t1_120.jsonl"), "longcot")

    assert len(rows) == 118
    assert sorted((item.source_id, item.reason) for item in rejected) == [
        ("139", "no_final_answer"),
        ("45", "no_final_answer"),
    ]
    assert all(item.line is not None for item in rejected)
    by_id = {row["source_id"]: row for row in rows}
    assert all(row["chain"].startswith("<think>\n") for row in rows)

    # idx 25: the only box is in the thinking part, so hints stop before it.
    row = by_id["25"]
    box_at = row["chain"].rfind("\\boxed")
    assert box_at < row["chain"].index("</think>")
    assert all(len(hint["text"]) <= box_at for hint in row["hints"])

    # idx 35 lacks <|end_of_solution|> but still has a boxed answer in its solution.
    assert by_id["35"]["predicted_answer"]


def test_r1_fixture_row():
    example = Example(
        source_id="r1-1",
        problem="What is the sum of the first three primes?",
        reference_answer="10",
        source_text=(
            "Okay, the first three primes are 2, 3 and 5.\n\nTheir sum is 2 + 3 + 5 = 10.\n\n"
            "Let me double-check that 1 is not prime. Right, it is not.\n</think>\n\n"
            "The first three primes are 2, 3 and 5.\n\nSo the sum is $\\boxed{10}$."
        ),
    )

    row = build(example, fmt="jsonl", style="longcot")

    assert not isinstance(row, Rejected)
    assert row["chain"].startswith("<think>\nOkay")
    assert "\n</think>\n\n" in row["chain"]
    assert row["predicted_answer"] == "10"
    assert_row_invariants(row)
    assert row["steps"] == [
        "<think>\nOkay, the first three primes are 2, 3 and 5.\n\nTheir sum is 2 + 3 + 5 = 10.\n\n",
        "Let me double-check that 1 is not prime. Right, it is not.\n</think>\n\n",
        "The first three primes are 2, 3 and 5.\n\n",
        "So the sum is $\\boxed{10}$.",
    ]
    assert [hint["level"] for hint in row["hints"]] == [1, 2, 3]
    # The thinking already states the sum, so every hint contains the answer.
    assert [hint["answer_in_hint"] for hint in row["hints"]] == [True, True, True]


def test_single_step_chain_has_no_hints():
    example = Example("s1", "1+1?", "2", "$\\boxed{2}$")

    row = build(example)

    assert not isinstance(row, Rejected)
    assert row["num_steps"] == 1
    assert row["hints"] == []


def test_answer_in_middle_step_truncates_hints():
    source = (
        "We compute the sum step by step here.\n\nThe result is $\\boxed{7}$.\n\n"
        "As a check we add the numbers again and get 7 once more.\n\n"
        "Everything is consistent with the computation above."
    )
    example = Example("mid", "p", "7", source)

    row = build(example, min_step_chars=5, scorer=DecreasingScorer())

    assert not isinstance(row, Rejected)
    assert row["num_steps"] == 4
    assert row["steps"][1] == "The result is $\\boxed{7}$.\n\n"
    assert [hint["level"] for hint in row["hints"]] == [1]
    assert row["scorer"] == "decreasing"


def test_megabyte_chain_row():
    filler = "We add 2 and 3 to get 5, and the running total is 5.\n\n" * 20_000
    example = Example("big", "p", "5", filler + "So the answer is $\\boxed{5}$.")
    assert len(example.source_text) > 1_000_000

    row = build(example)

    assert not isinstance(row, Rejected)
    assert_row_invariants(row)
    assert row["num_steps"] == DEFAULT_MAX_STEPS
    assert pa.Table.from_pylist([row], schema=CHAINS).num_rows == 1


def test_unbalanced_boxed_is_rejected():
    example = Example("ub", "p", "5", "So the answer is $\\boxed{\\frac{5}{1}$.", line=4)

    rejected = build(example)

    assert isinstance(rejected, Rejected)
    assert rejected.reason == "unbalanced_boxed"
    assert rejected.line == 4
    assert rejected.source == "math"
    assert "no closing brace" in rejected.detail


def test_no_final_answer_is_rejected():
    rejected = build(Example("nf", "p", "5", "The answer is five."))

    assert isinstance(rejected, Rejected)
    assert rejected.reason == "no_final_answer"


def test_answer_mismatch_is_rejected():
    rejected = build(Example("mm", "p", "6", "So $\\boxed{5}$."))

    assert isinstance(rejected, Rejected)
    assert rejected.reason == "answer_mismatch"
    assert "'5'" in rejected.detail
    assert "'6'" in rejected.detail


def test_empty_reference_is_rejected():
    rejected = build(Example("er", "p", "  ", "So $\\boxed{5}$."), fmt="gsm8k", style="gsm8k")

    assert isinstance(rejected, Rejected)
    assert rejected.reason == "empty_reference"
    assert rejected.source == "gsm8k"


def test_rejected_record_is_truncated():
    rejected = build(Example("long", "p", "6", "x" * 5000 + " $\\boxed{5}$"))

    assert isinstance(rejected, Rejected)
    assert len(rejected.record["source_text"]) == 2000


def test_metadata_is_sorted_strict_json():
    example = Example("m", "p", "2", "$\\boxed{2}$", metadata={"z": 1, "a": float("nan"), "é": "ü"})

    row = build(example)

    assert row["metadata"] == '{"a": null, "z": 1, "é": "ü"}'


def test_build_hints_stops_before_final_step():
    hints = build_hints(["a ", "b ", "c ", "d"], final_step=2, reference="c")

    assert [hint["text"] for hint in hints] == ["a ", "a b "]
    assert [hint["answer_in_hint"] for hint in hints] == [False, False]


@pytest.mark.parametrize(
    ("text", "reference", "expected"),
    [
        ("She makes $18 a day.", "18", True),
        ("The total is 180 dollars.", "18", False),
        ("The ratio is 2.18 here.", "18", False),
        ("It is 18.5 meters.", "18", False),
        ("It is 18.", "18", True),
        ("He made 70,000 dollars.", "70000", True),
        ("He made 70,0000 dollars.", "70000", False),
        ("So x = \\dfrac{243}{625} here.", "\\frac{243}{625}", True),
        ("So x = \\frac{243}{6250}.", "\\frac{243}{625}", False),
        ("The point is $\\left(3, \\frac{\\pi}{2}\\right)$.", "(3,\\frac{\\pi}{2})", True),
        ("Take x = 2 here.", "x", True),
        ("Take max here.", "x", False),
        ("Anything.", "", False),
    ],
)
def test_answer_appears_in(text, reference, expected):
    assert answer_appears_in(text, reference) is expected
