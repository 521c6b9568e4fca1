"""Release rules see every shard: unique ids across shards and disjoint splits."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from corpusforge.data_contracts import validate_staging
from corpusforge.data_contracts.release_rules import DisjointSplits, UniqueIds
from corpusforge.data_contracts.report import RuleResult
from corpusforge.generators.errors import ValidationFailed


def _failed_rules(root) -> set[str]:
    summary = json.loads((root / "validation" / "summary.json").read_text(encoding="utf-8"))
    return {name for name, rule in summary["rules"].items() if not rule["passed"]}


def test_duplicate_id_across_shards_fails(stage, chain_row):
    root = stage(
        [
            [chain_row("r0"), chain_row("r1")],
            [chain_row("r1", source_id="gsm8k-other"), chain_row("r2")],
        ]
    )

    with pytest.raises(ValidationFailed) as raised:
        validate_staging(root)
    message = str(raised.value)

    assert _failed_rules(root) == {"ids_unique_across_shards"}
    assert "ids_unique_across_shards (release rule) failed on 1 row in parts/shard-00001" in message
    assert "id 'r1': id also in parts/shard-00000.parquet" in message


def test_source_record_in_two_splits_fails(stage, chain_row):
    root = stage(
        [[chain_row("r0", source_id="q-7")], [chain_row("r9", source_id="q-7")]],
        splits=["train", "test"],
    )

    with pytest.raises(ValidationFailed) as raised:
        validate_staging(root)
    message = str(raised.value)

    assert _failed_rules(root) == {"splits_disjoint"}
    assert "splits_disjoint (release rule) failed on 1 row in parts/shard-00001" in message
    assert "id 'r9': gsm8k record 'q-7' is in split test and in train" in message


def test_source_record_twice_in_one_split_passes(stage, chain_row):
    """Two chains of one source record may share a split, across shards too."""
    root = stage([[chain_row("r0", source_id="q-7")], [chain_row("r1", source_id="q-7")]])

    assert validate_staging(root).success


def test_same_source_id_from_other_source_passes(stage, chain_row):
    root = stage(
        [[chain_row("r0", source_id="q-7")], [chain_row("r1", source="math", source_id="q-7")]],
        splits=["train", "test"],
    )

    assert validate_staging(root).success


def _batch(**columns) -> pa.RecordBatch:
    return pa.record_batch(
        {name: pa.array(values, pa.string()) for name, values in columns.items()}
    )


def test_unique_ids_reports_release_order():
    result = RuleResult("ids_unique_across_shards", "release")
    check = UniqueIds(result)
    check.add(_batch(id=["a", None, "b"]), "f0", "train")
    check.add(_batch(id=[None, "b", "a"]), "f1", "test")
    check.add(_batch(id=["a"]), "f2", "test")

    assert result.passed
    check.finish()

    assert result.failed_rows == 4
    assert result.files["f1"].examples == [
        {"id": None, "value": "id also in f0"},
        {"id": "b", "value": "id also in f0"},
        {"id": "a", "value": "id also in f0"},
    ]
    assert result.files["f2"].examples == [{"id": "a", "value": "id also in f0"}]


def test_disjoint_splits_compares_first_split():
    result = RuleResult("splits_disjoint", "release")
    check = DisjointSplits(result)
    check.add(_batch(id=["r0"], source=["gsm8k"], source_id=["q-1"]), "f0", "train")
    check.add(
        _batch(id=["r1", "r2"], source=["gsm8k", "math"], source_id=["q-1", "q-1"]), "f1", "test"
    )
    check.add(_batch(id=["r3"], source=["gsm8k"], source_id=["q-1"]), "f2", "train")
    check.finish()

    assert result.failed_rows == 1
    assert list(result.files) == ["f1"]
    assert result.files["f1"].examples == [
        {"id": "r1", "value": "gsm8k record 'q-1' is in split test and in train"}
    ]


def test_release_rules_finish_without_batches():
    for rule in (UniqueIds, DisjointSplits):
        result = RuleResult("rule", "release")
        rule(result).finish()
        assert result.passed
