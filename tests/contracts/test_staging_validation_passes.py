"""Valid staged releases pass validation and leave their results in validation/."""

from __future__ import annotations

import json
import logging

import pytest

from corpusforge.data_contracts import ValidationReport, validate_shard, validate_staging
from corpusforge.generators.errors import ConfigError, ValidationFailed


def _summary(root) -> dict:
    return json.loads((root / "validation" / "summary.json").read_text(encoding="utf-8"))


def test_valid_staging_passes(stage, chain_row):
    root = stage(
        [[chain_row(f"r{i}") for i in range(3)], [chain_row("r3"), chain_row("r4")]],
        splits=["train", "test"],
    )

    report = validate_staging(root)

    assert isinstance(report, ValidationReport)
    assert report.success
    assert report.rows == 5
    assert report.failed_rules == []


def test_valid_staging_writes_summary(stage, chain_row):
    root = stage([[chain_row("r0"), chain_row("r1")]])

    validate_staging(root)
    summary = _summary(root)
    manifest = json.loads((root / "parts" / "shard-00000.json").read_text())

    assert summary["success"] is True
    assert summary["contract"] == {
        "id": "corpusforge-stephint",
        "version": "1.0.0",
        "apiVersion": "v3.0.2",
    }
    assert summary["rows"] == 2
    assert summary["shards"][0]["sha256"] == manifest["sha256"]
    assert summary["shards"][0]["checked"] is True
    for name in ("shard_manifest", "arrow_schema", "id.unique", "steps_concatenate_to_chain"):
        assert summary["rules"][name]["passed"] is True
        assert summary["rules"][name]["failed_rows"] == 0
    assert summary["rules"]["splits_disjoint"]["kind"] == "release"


def test_valid_staging_writes_gx_results(stage, chain_row):
    root = stage([[chain_row("r0")], [chain_row("r1")]])

    validate_staging(root)
    shards = _summary(root)["shards"]

    for shard in shards:
        rules = set()
        for name in shard["gx_results"]:
            results = json.loads((root / name).read_text())
            assert results["success"] is True
            rules |= {item["expectation_config"]["meta"]["rule"] for item in results["results"]}
        assert {"id.unique", "num_steps.range", "verified.validValues", "chains.rowCount"} <= rules
    assert shards[0]["gx_results"] == [
        "validation/gx-batch-00000-00001.json",
        "validation/gx-shard-00000.json",
    ]


def test_empty_split_passes(stage, chain_row):
    """A split with 0 rows passes when another split has rows."""
    root = stage([[chain_row("r0")], []], splits=["train", "test"])

    report = validate_staging(root)
    summary = _summary(root)

    assert report.success
    assert report.rows == 1
    assert [shard["file"] for shard in summary["shards"]] == ["parts/shard-00000.parquet", None]
    assert summary["shards"][1]["skip_reason"] == "no rows"


def test_empty_release_fails(stage):
    """A release with 0 rows in every split fails and names the quarantine reasons."""
    root = stage([[], []])
    for index, reasons in enumerate(
        [{"missing_field": 2}, {"missing_field": 1, "duplicate_id": 1}]
    ):
        path = root / "parts" / f"shard-{index:05d}.json"
        manifest = json.loads(path.read_text())
        manifest["quarantined"] = reasons
        path.write_text(json.dumps(manifest))
    (root / "quarantine").mkdir()
    record = {
        "detail": "field 'question' (problem) is missing or empty",
        "line": 1,
        "reason": "missing_field",
        "source": "gsm8k",
        "source_id": "line-1",
    }
    (root / "quarantine" / "shard-00000.jsonl").write_text(json.dumps(record) + "\n")

    with pytest.raises(ValidationFailed) as raised:
        validate_staging(root)
    message = str(raised.value)
    summary = _summary(root)

    assert "has no rows, so it is not published" in message
    assert "duplicate_id 1, missing_field 3" in message
    assert "line 1 of gsm8k source: missing_field: field 'question'" in message
    assert "problem_field" in message
    assert summary["rows"] == 0
    assert [shard["skip_reason"] for shard in summary["shards"]] == ["no rows", "no rows"]


def test_empty_release_names_model_failures(stage):
    root = stage([[]])
    path = root / "parts" / "shard-00000.json"
    manifest = json.loads(path.read_text())
    manifest["quarantined"] = {"llm_invalid_json": 3, "missing_field": 1}
    path.write_text(json.dumps(manifest))
    (root / "quarantine").mkdir()
    records = [
        {"detail": "field 'question' is empty", "line": 4, "reason": "missing_field"},
        {"detail": "the reply is not JSON", "line": 1, "reason": "llm_invalid_json"},
    ]
    lines = [json.dumps({**record, "source": "gsm8k", "source_id": "x"}) for record in records]
    (root / "quarantine" / "shard-00000.jsonl").write_text("\n".join(lines) + "\n")

    with pytest.raises(ValidationFailed) as raised:
        validate_staging(root)
    message = str(raised.value)

    assert "llm_invalid_json 3, missing_field 1" in message
    assert "First llm_invalid_json record: line 1 of gsm8k source" in message
    assert "Check the model's replies" in message
    assert "problem_field" not in message


def test_empty_release_without_quarantine(stage):
    root = stage([[]])

    with pytest.raises(ValidationFailed, match="The sources gave no records"):
        validate_staging(root)


def test_unicode_values_pass(stage, chain_row):
    steps = ["Soit x = 2 · 3 = 6 ✓. ", "Puis 6² = 36 — 🚀. ", "Réponse : 36 (三十六)."]
    row = chain_row("行-①", steps=steps, problem="Calculez (2·3)² ？", reference_answer="36")

    report = validate_staging(stage([[row, chain_row("e\u0301-2")]]))

    assert report.success


def test_validation_prints_no_progress_bars(stage, chain_row, capfd):
    root = stage([[chain_row("r0")]])
    handlers = list(logging.getLogger().handlers)
    level = logging.getLogger().level

    validate_staging(root)
    captured = capfd.readouterr()

    assert "Calculating Metrics" not in captured.err
    assert captured.out == ""
    assert logging.getLogger().handlers == handlers
    assert logging.getLogger().level == level


def test_validate_shard_returns_results(stage, chain_row):
    root = stage([[chain_row("r0")], [chain_row("r1")]])

    result = validate_shard(root, 1)

    assert result["success"] is True
    assert result["index"] == 1
    assert result["file"] == "parts/shard-00001.parquet"
    assert result["rules"]["hint_levels_increase_from_one"]["passed"] is True
    assert "splits_disjoint" not in result["rules"]
    assert (root / "validation" / "gx-shard-00001.json").is_file()


def test_validate_shard_reports_failure_without_raising(stage, chain_row):
    root = stage([[chain_row("r0", num_steps=4)]])

    result = validate_shard(root, 0)

    assert result["success"] is False
    assert result["rules"]["step_counts_agree"]["failed_rows"] == 1
    assert result["rules"]["step_counts_agree"]["examples"][0]["id"] == "r0"


def test_validate_shard_rejects_unknown_index(stage, chain_row):
    root = stage([[chain_row("r0")]])

    with pytest.raises(ConfigError, match=r"no shard with index 7; indexes: \[0\]"):
        validate_shard(root, 7)
