"""GX runs on batches of shards, and reports still name the shard file of each failure."""

from __future__ import annotations

import dataclasses
import json

import pytest

from corpusforge.data_contracts import load_contract, validate_staging
from corpusforge.data_contracts.gx_batches import GxBatcher
from corpusforge.data_contracts.staging import Shard
from corpusforge.generators.errors import ValidationFailed


def _summary(root) -> dict:
    return json.loads((root / "validation" / "summary.json").read_text(encoding="utf-8"))


def _shards(chain_row, count: int, rows: int = 2) -> list[list[dict]]:
    return [[chain_row(f"s{shard}-r{row}") for row in range(rows)] for shard in range(count)]


def _gx_result(root, name: str) -> dict[str, bool]:
    """Return rule name -> success from one GX result file under validation/."""
    results = json.loads((root / "validation" / name).read_text(encoding="utf-8"))
    return {
        item["expectation_config"]["meta"]["rule"]: item["success"] for item in results["results"]
    }


def test_third_shard_violation_names_shard(stage, chain_row):
    shards = _shards(chain_row, 4)
    shards[2][1]["partition_method"] = "fixed"
    root = stage(shards)

    with pytest.raises(ValidationFailed) as raised:
        validate_staging(root)
    summary = _summary(root)
    rule = summary["rules"]["partition_method.validValues"]

    assert [shard["gx_results"][0] for shard in summary["shards"]] == [
        "validation/gx-batch-00000-00003.json"
    ] * 4
    assert list(rule["files"]) == ["parts/shard-00002.parquet"]
    assert rule["failed_rows"] == 1
    assert rule["files"]["parts/shard-00002.parquet"]["examples"] == [
        {"id": "s2-r1", "value": "value 'fixed'"}
    ]
    assert "failed on 1 row in parts/shard-00002.parquet" in str(raised.value)
    assert "id 's2-r1': value 'fixed'" in str(raised.value)


def test_failed_expectation_reruns_per_shard(stage, chain_row):
    shards = _shards(chain_row, 3)
    shards[2][1]["partition_method"] = "fixed"
    root = stage(shards)

    with pytest.raises(ValidationFailed):
        validate_staging(root)

    assert _gx_result(root, "gx-batch-00000-00002.json")["partition_method.validValues"] is False
    for index, passed in [(0, True), (1, True), (2, False)]:
        shard_result = _gx_result(root, f"gx-shard-{index:05d}.json")
        assert shard_result == {"chains.rowCount": True, "partition_method.validValues": passed}


def test_batch_counts_rows_per_shard(stage, chain_row):
    shards = _shards(chain_row, 4, rows=4)
    for row in shards[1][:3]:
        row["verified"] = False
    shards[3][0]["verified"] = False
    root = stage(shards)

    with pytest.raises(ValidationFailed) as raised:
        validate_staging(root)
    rule = _summary(root)["rules"]["verified.validValues"]

    assert rule["failed_rows"] == 4
    assert {file: entry["failed_rows"] for file, entry in rule["files"].items()} == {
        "parts/shard-00001.parquet": 3,
        "parts/shard-00003.parquet": 1,
    }
    examples = rule["files"]["parts/shard-00001.parquet"]["examples"]
    assert [example["id"] for example in examples] == ["s1-r0", "s1-r1", "s1-r2"]
    assert "failed on 3 rows in parts/shard-00001.parquet" in str(raised.value)


def test_id_shared_by_shards_passes_unique(stage, chain_row):
    """The stacked uniqueness check fails, but each shard passes `id.unique` alone."""
    shards = _shards(chain_row, 3)
    shards[2][0] = chain_row("s0-r0", source_id="other")
    root = stage(shards)

    with pytest.raises(ValidationFailed):
        validate_staging(root)
    rules = _summary(root)["rules"]

    assert _gx_result(root, "gx-batch-00000-00002.json")["id.unique"] is False
    assert rules["id.unique"]["passed"] is True
    assert list(rules["ids_unique_across_shards"]["files"]) == ["parts/shard-00002.parquet"]


def test_batch_rows_limit_splits_batches(stage, chain_row):
    root = stage(_shards(chain_row, 5))

    validate_staging(root, max_batch_rows=4)
    results = sorted(path.name for path in (root / "validation").glob("gx-*.json"))

    assert [name for name in results if name.startswith("gx-batch")] == [
        "gx-batch-00000-00001.json",
        "gx-batch-00002-00003.json",
    ]
    assert _summary(root)["shards"][4]["gx_results"] == ["validation/gx-shard-00004.json"]
    assert len(_gx_result(root, "gx-shard-00004.json")) > 50


def test_batch_bytes_limit_runs_shards_alone(stage, chain_row):
    root = stage(_shards(chain_row, 3))

    report = validate_staging(root, max_batch_bytes=1)

    assert report.success
    assert not list((root / "validation").glob("gx-batch-*.json"))
    for index in range(3):
        assert "id.unique" in _gx_result(root, f"gx-shard-{index:05d}.json")


def test_batch_skips_shard_with_bad_schema(stage, chain_row, chains_table):
    shards = _shards(chain_row, 3)
    bad = chains_table(shards[1]).drop_columns(["metadata"])
    shards[2][0]["verified"] = False
    root = stage([shards[0], bad, shards[2]])

    with pytest.raises(ValidationFailed):
        validate_staging(root)
    summary = _summary(root)

    assert summary["shards"][1]["gx_results"] == []
    assert summary["shards"][2]["gx_results"][0] == "validation/gx-batch-00000-00002.json"
    assert list(summary["rules"]["verified.validValues"]["files"]) == ["parts/shard-00002.parquet"]
    assert "parts/shard-00001.parquet" in summary["rules"]["id.unique"]["skipped_files"]


def _count_rows_in_batch(tmp_path, chains_table, chain_row, max_rows: int) -> dict:
    """Run two 2-row shards through one batch with a row count maximum and return the rules."""
    contract = load_contract("stephint")
    table = dataclasses.replace(contract.tables["chains"], max_rows=max_rows)
    rules: dict = {}
    batcher = GxBatcher("stephint", {"chains": table}, tmp_path, rules)
    for index in range(2):
        shard = Shard(index, "chains", "train", file=f"part-{index}", rows=2)
        batcher.add(shard, chains_table(_shards(chain_row, 2)[index]))
    batcher.flush()
    return rules


def test_row_count_ignores_batch_total(tmp_path, chains_table, chain_row):
    """Each shard has 2 rows, within a maximum of 3, although the batch has 4."""
    rules = _count_rows_in_batch(tmp_path, chains_table, chain_row, max_rows=3)

    assert (tmp_path / "gx-batch-00000-00001.json").is_file()
    assert rules["chains.rowCount"].passed is True


def test_row_count_fails_each_shard(tmp_path, chains_table, chain_row):
    rules = _count_rows_in_batch(tmp_path, chains_table, chain_row, max_rows=1)
    row_count = rules["chains.rowCount"]

    assert row_count.failed_rows == 4
    assert list(row_count.files) == ["part-0", "part-1"]
    example = row_count.files["part-1"].examples[0]
    assert example["value"] == "expect_table_row_count_to_be_between observed 2"
    shard_result = json.loads((tmp_path / "gx-shard-00001.json").read_text(encoding="utf-8"))
    assert [item["expectation_config"]["meta"]["rule"] for item in shard_result["results"]] == [
        "chains.rowCount"
    ]


def test_config_change_starts_batch(tmp_path, chains_table, chain_row):
    table = load_contract("stephint").tables["chains"]
    batcher = GxBatcher("stephint", {"a": table, "b": table}, tmp_path, {})
    configs = ["a", "a", "b", "b", "a"]
    shards = [Shard(index, config, "train", rows=2) for index, config in enumerate(configs)]

    for shard in shards:
        batcher.add(shard, chains_table(_shards(chain_row, 1, rows=2)[0]))
    batcher.flush()

    assert [shard.gx_results[0] for shard in shards] == [
        "validation/gx-batch-00000-00001.json",
        "validation/gx-batch-00000-00001.json",
        "validation/gx-batch-00002-00003.json",
        "validation/gx-batch-00002-00003.json",
        "validation/gx-shard-00004.json",
    ]


def test_batcher_rejects_zero_limit(tmp_path):
    with pytest.raises(ValueError, match="invalid batch limits: max_rows=0"):
        GxBatcher("stephint", {}, tmp_path, {}, max_rows=0)
