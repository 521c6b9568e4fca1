"""validation/summary.json names files relative to the release, never by build-machine paths."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from corpusforge.data_contracts import validate_staging
from corpusforge.data_contracts.report import published_summary, strip_folder
from corpusforge.generators.errors import ValidationFailed

PUBLISHED = {
    "parts/shard-00000.parquet": "data/chains/train-00000-of-00002.parquet",
    "parts/shard-00002.parquet": "data/chains/train-00001-of-00002.parquet",
}


def _summary() -> dict:
    """Return a summary of three shards, the middle one without rows, and one failed rule."""
    shards = [
        {"index": 0, "file": "parts/shard-00000.parquet", "rows": 3},
        {"index": 1, "file": None, "rows": 0},
        {"index": 2, "file": "parts/shard-00002.parquet", "rows": 2},
    ]
    rule = {
        "passed": False,
        "examples": [{"file": "parts/shard-00002.parquet", "id": "r1", "value": "bad"}],
        "files": {"parts/shard-00002.parquet": {"failed_rows": 1, "examples": []}},
        "skipped_files": {"parts/shard-00000.parquet": "no rows", "parts/shard-00001.json": "x"},
    }
    return {"success": True, "shards": shards, "rules": {"steps.join": rule}}


def test_published_summary_renames_shards():
    renamed = published_summary(_summary(), PUBLISHED)

    assert [shard["file"] for shard in renamed["shards"]] == [
        "data/chains/train-00000-of-00002.parquet",
        None,
        "data/chains/train-00001-of-00002.parquet",
    ]


def test_published_summary_renames_rule_files():
    rule = published_summary(_summary(), PUBLISHED)["rules"]["steps.join"]

    assert rule["examples"][0]["file"] == "data/chains/train-00001-of-00002.parquet"
    assert list(rule["files"]) == ["data/chains/train-00001-of-00002.parquet"]
    assert rule["skipped_files"] == {
        "data/chains/train-00000-of-00002.parquet": "no rows",
        "parts/shard-00001.json": "x",
    }


def test_published_summary_is_idempotent():
    summary = _summary()
    once = published_summary(summary, PUBLISHED)

    assert published_summary(once, PUBLISHED) == once
    assert summary == _summary(), "the input summary must stay unchanged"


def test_strip_folder_keys_values_and_text():
    value = {
        "/srv/stage/parts/a.json": ["cannot read '/srv/stage/parts/a.json': denied", 3],
        "other": "/srv/stage",
        "sibling": "/srv/stage2/x",
    }

    assert strip_folder(value, "/srv/stage") == {
        "parts/a.json": ["cannot read 'parts/a.json': denied", 3],
        "other": ".",
        "sibling": "/srv/stage2/x",
    }


def test_failed_summary_names_no_staging_path(stage, chain_row, monkeypatch):
    root = stage([[chain_row("r0")], [chain_row("r1")]])
    shard_json = root / "parts" / "shard-00001.json"
    shard_json.unlink()
    # Reading a folder raises IsADirectoryError, whose text quotes the absolute path.
    shard_json.mkdir()
    monkeypatch.chdir(root.parent)

    with pytest.raises(ValidationFailed):
        validate_staging(Path(root.name))
    text = (root / "validation" / "summary.json").read_text(encoding="utf-8")
    examples = json.loads(text)["rules"]["shard_manifest"]["examples"]

    assert str(root) not in text
    assert str(root.parent) not in text
    assert "'parts/shard-00001.json'" in examples[0]["value"]
