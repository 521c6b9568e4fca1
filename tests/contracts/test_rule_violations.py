"""Each contract rule, broken on purpose in one row, fails validation with a readable message."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from corpusforge.data_contracts import validate_staging
from corpusforge.generators.errors import ValidationFailed

PART_FILE = "parts/shard-00000.parquet"


def _failed_rules(root) -> set[str]:
    summary = json.loads((root / "validation" / "summary.json").read_text(encoding="utf-8"))
    return {name for name, rule in summary["rules"].items() if not rule["passed"]}


def _replace_step(row):
    row["steps"][1] = "Multiply 5 by 4 to get 21. "  # same length, so only the text differs


def _gap_in_offsets(row):
    row["step_offsets"][1] = {"start": 23, "end": 49}


def _hint(level: int, num_steps: int | None = None, steps: int | None = None):
    def text(row):
        return "".join(row["steps"][: steps or level])

    return lambda row: {
        "level": level,
        "num_steps": level if num_steps is None else num_steps,
        "text": text(row),
        "answer_in_hint": False,
    }


def _set_hints(*hints):
    def mutate(row):
        row["hints"] = [hint(row) for hint in hints]

    return mutate


def _set(column, value):
    def mutate(row):
        row[column] = value

    return mutate


def _change_first_hint_text(row):
    row["hints"][0]["text"] = "Add 3 and 2"


VIOLATIONS = {
    "steps_concatenate_to_chain": (_replace_step, {"steps_concatenate_to_chain"}),
    "step_counts_agree": (_set("num_steps", 4), {"step_counts_agree"}),
    "step_offsets_contiguous": (_gap_in_offsets, {"step_offsets_contiguous"}),
    "hints_are_chain_prefixes": (_change_first_hint_text, {"hints_are_chain_prefixes"}),
    "hint_levels_increase_from_one": (
        _set_hints(_hint(2), _hint(3)),
        {"hint_levels_increase_from_one"},
    ),
    "hint_levels_repeat": (_set_hints(_hint(1), _hint(1)), {"hint_levels_increase_from_one"}),
    "hint_num_steps_equal_level": (
        _set_hints(_hint(1), _hint(2, num_steps=3)),
        {"hint_num_steps_equal_level"},
    ),
    "hint_levels_within_chain": (
        _set_hints(_hint(1), _hint(4, steps=3)),
        {"hint_levels_within_chain"},
    ),
    "reference_answer_blank": (_set("reference_answer", "  "), {"reference_answer.pattern"}),
    "reference_answer_empty": (_set("reference_answer", ""), {"reference_answer.pattern"}),
    "problem_blank": (_set("problem", "\n\t"), {"problem.pattern"}),
    "id_empty": (_set("id", ""), {"id.length"}),
    "partition_method": (_set("partition_method", "fixed"), {"partition_method.validValues"}),
    "verified": (_set("verified", False), {"verified.validValues"}),
    "source_split": (_set("source_split", "Train-A"), {"source_split.pattern"}),
    "null_step": (
        lambda row: row["steps"].__setitem__(1, None),
        {"steps_concatenate_to_chain", "step_offsets_contiguous"},
    ),
    "null_hint": (
        lambda row: row["hints"].__setitem__(0, None),
        {
            "hints_are_chain_prefixes",
            "hint_levels_increase_from_one",
            "hint_num_steps_equal_level",
            "hint_levels_within_chain",
        },
    ),
    "num_steps_zero": (
        _set("num_steps", 0),
        {"num_steps.range", "step_counts_agree", "hint_levels_within_chain"},
    ),
}


@pytest.fixture(scope="module")
def violations(tmp_path_factory, chain_row, write_staging):
    """Validate one shard with a valid row and one broken row per case of VIOLATIONS.

    Returns the summary, the ValidationFailed message and each case's record id.
    """
    rows = [chain_row("valid-0")]
    record_ids = {}
    for case, (mutate, _) in VIOLATIONS.items():
        row = chain_row(f"bad-{case}")
        mutate(row)
        rows.append(row)
        record_ids[case] = row["id"]
    root = write_staging(tmp_path_factory.mktemp("violations") / "staging", [rows])

    with pytest.raises(ValidationFailed) as raised:
        validate_staging(root)
    summary = json.loads((root / "validation" / "summary.json").read_text(encoding="utf-8"))
    return summary, str(raised.value), record_ids


def _rules_failed_by(summary: dict, record_id: str) -> set[str]:
    return {
        name
        for name, rule in summary["rules"].items()
        for failures in rule["files"].values()
        if any(example["id"] == record_id for example in failures["examples"])
    }


@pytest.mark.parametrize("case", VIOLATIONS)
def test_rule_violation_fails_validation(violations, case):
    summary, message, record_ids = violations
    expected = VIOLATIONS[case][1]

    assert _rules_failed_by(summary, record_ids[case]) == expected
    for rule in expected:
        assert f"- {rule} (" in message
    assert f"id {record_ids[case]!r}" in message


def test_rule_violations_count_rows(violations):
    summary, message, _ = violations
    expected_counts = Counter(rule for _, rules in VIOLATIONS.values() for rule in rules)
    failed = {name: rule for name, rule in summary["rules"].items() if not rule["passed"]}

    assert {name: rule["failed_rows"] for name, rule in failed.items()} == expected_counts
    for name, count in expected_counts.items():
        noun = "row" if count == 1 else "rows"
        assert f"- {name} " in message
        assert f"failed on {count} {noun} in {PART_FILE}" in message
    assert "valid-0" not in message


def test_duplicate_id_in_one_shard_fails(stage, chain_row):
    root = stage([[chain_row("r0"), chain_row("dup"), chain_row("dup", source_id="other")]])

    with pytest.raises(
        ValidationFailed, match=r"id\.unique \(gx rule\) failed on 2 rows"
    ) as raised:
        validate_staging(root)

    assert _failed_rules(root) == {"id.unique", "ids_unique_across_shards"}
    assert "id 'dup'" in str(raised.value)


def test_failure_message_shows_five_examples(stage, chain_row):
    rows = [chain_row(f"r{i}", num_steps=4) for i in range(7)]
    root = stage([rows])

    with pytest.raises(ValidationFailed, match=r"step_counts_agree .* on 7 rows") as raised:
        validate_staging(root)
    summary = json.loads((root / "validation" / "summary.json").read_text(encoding="utf-8"))
    rule = summary["rules"]["step_counts_agree"]

    assert rule["failed_rows"] == 7
    assert [example["id"] for example in rule["examples"]] == ["r0", "r1", "r2", "r3", "r4"]
    assert "r5" not in str(raised.value)


def test_failure_message_keeps_unicode_record_id(stage, chain_row):
    root = stage([[chain_row("行-①", partition_method="固定")]])

    with pytest.raises(ValidationFailed, match="id '行-①': value '固定'"):
        validate_staging(root)
    summary_text = (root / "validation" / "summary.json").read_text(encoding="utf-8")

    assert "行-①" in summary_text
    assert "固定" in summary_text
