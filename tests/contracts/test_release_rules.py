"""Release rules see every shard: unique ids across shards and disjoint splits."""

from __future__ import annotations

import json

import pytest

from corpusforge.data_contracts import validate_staging
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
