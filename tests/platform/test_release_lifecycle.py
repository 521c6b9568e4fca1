"""Publishing: layout, atomic switch, LATEST ordering, reruns and verification."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from release_helpers import build, stage

from corpusforge.data_contracts import validate_staging
from corpusforge.generators import store
from corpusforge.generators.errors import ConfigError, PublishError, ValidationFailed
from corpusforge.generators.pipeline import RunInfo
from corpusforge.generators.publish import publish_release


def test_release_layout_and_manifest(tmp_path: Path):
    published = build(tmp_path, "r1")

    release = tmp_path / "stephint" / "r1"
    assert release.is_symlink()
    assert (tmp_path / "stephint" / "LATEST").read_text().strip() == "r1"
    manifest = json.loads((release / "manifest.json").read_text())
    assert manifest["num_rows"] == published.num_rows == 60
    assert manifest["splits"] == {"chains": {"train": 60}}
    assert [shard["path"] for shard in manifest["shards"]] == [
        f"data/chains/train-0000{i}-of-00004.parquet" for i in range(4)
    ]
    for key in ("seed", "parameters", "schema", "contract", "sources", "packages", "created_at"):
        assert key in manifest, key
    assert manifest["sources"][0]["sha256"]
    assert manifest["quarantine"] == {"total": 0, "by_reason": {}}
    assert (release / "README.md").read_text().startswith("---\n")
    assert (release / "validation" / "summary.json").exists()
    assert not (release / "parts").exists()
    assert not any((tmp_path / "stephint" / ".staging").iterdir())


def test_shards_carry_explicit_schema(tmp_path: Path):
    from corpusforge.schemas import get_schema

    build(tmp_path, "r1")
    expected = get_schema("stephint", "chains")
    for file in (tmp_path / "stephint" / "r1" / "data" / "chains").glob("*.parquet"):
        metadata = pq.ParquetFile(file).metadata
        schema = pq.read_schema(file)
        assert schema.equals(expected)
        assert schema.metadata[b"huggingface"] == expected.metadata[b"huggingface"]
        assert metadata.row_group(0).column(0).compression == "ZSTD"


def test_rerun_same_key_replaces_release(tmp_path: Path):
    first = build(tmp_path, "r1")
    first_target = os.readlink(tmp_path / "stephint" / "r1")
    second = build(tmp_path, "r1")

    assert second.num_rows == first.num_rows
    assert second.content_fingerprint == first.content_fingerprint
    assert os.readlink(tmp_path / "stephint" / "r1") != first_target
    attempts = list((tmp_path / "stephint" / ".releases").iterdir())
    assert len(attempts) == 1, "the replaced attempt folder should be removed"
    rows = sum(
        pq.read_metadata(f).num_rows
        for f in (tmp_path / "stephint" / "r1" / "data").rglob("*.parquet")
    )
    assert rows == 60


def test_latest_only_moves_forward(tmp_path: Path):
    build(tmp_path, "2025-03-02", run=RunInfo(run_id="b", logical_date="2025-03-02T00:00:00+00:00"))
    build(tmp_path, "2025-03-01", run=RunInfo(run_id="a", logical_date="2025-03-01T00:00:00+00:00"))

    assert (tmp_path / "stephint" / "LATEST").read_text().strip() == "2025-03-02"
    names = [info.release for info in store.list_releases(tmp_path, "stephint")]
    assert names == ["2025-03-01", "2025-03-02"]


def test_release_key_from_run_id_without_logical_date(tmp_path: Path):
    run = RunInfo(run_id="manual__2026-12-04T20:00:00.123+00:00", logical_date=None)
    published = build(tmp_path, None, run=run)
    assert published.release == "manual__2026-12-04T20-00-00.123-00-00"
    assert (tmp_path / "stephint" / published.release / "manifest.json").exists()


def test_release_key_from_logical_date(tmp_path: Path):
    run = RunInfo(run_id="scheduled__x", logical_date="2025-06-01T00:00:00+00:00")
    published = build(tmp_path, None, run=run)
    manifest = store.load_manifest(Path(published.path))
    assert published.release == "2025-06-01"
    assert manifest["reference_date"] == "2025-06-01"


@pytest.mark.parametrize("key", ["LATEST", "-x", "a/b", "", "a b", "é", "x" * 129])
def test_invalid_release_key_rejected(tmp_path: Path, key: str):
    with pytest.raises(ConfigError, match="invalid release key"):
        stage(tmp_path, key if key else "bad key")


def test_unpublished_without_validation(tmp_path: Path):
    staging = stage(tmp_path, "r1")
    with pytest.raises(ValidationFailed, match="validate the staged release"):
        publish_release(staging)
    assert not (tmp_path / "stephint" / "r1").exists()


def test_part_changed_after_validation_blocks_publish(tmp_path: Path):
    staging = stage(tmp_path, "r1")
    validate_staging(staging)
    part = staging / "parts" / "shard-00001.parquet"
    part.write_bytes(part.read_bytes() + b"x")
    with pytest.raises(PublishError, match="changed after validation"):
        publish_release(staging)
    assert not (tmp_path / "stephint" / "r1").exists()


def test_verify_detects_modified_shard(tmp_path: Path):
    build(tmp_path, "r1")
    release = tmp_path / "stephint" / "r1"
    assert store.verify_release(release) == []

    shard = next((release / "data" / "chains").glob("*.parquet"))
    data = bytearray(shard.read_bytes())
    data[100] ^= 0xFF
    shard.write_bytes(bytes(data))
    problems = store.verify_release(release)
    assert len(problems) == 1
    assert "sha256" in problems[0]
    assert shard.name in problems[0]


def test_verify_detects_extra_and_missing_files(tmp_path: Path):
    build(tmp_path, "r1")
    release = tmp_path / "stephint" / "r1"
    shards = sorted((release / "data" / "chains").glob("*.parquet"))
    (release / "data" / "chains" / "train-00009-of-00009.parquet").write_bytes(b"PAR1")
    shards[0].unlink()
    problems = store.verify_release(release)
    assert any("missing" in problem for problem in problems)
    assert any("not listed" in problem for problem in problems)


def test_existing_plain_folder_is_not_overwritten(tmp_path: Path):
    (tmp_path / "stephint" / "r1").mkdir(parents=True)
    (tmp_path / "stephint" / "r1" / "keep.txt").write_text("user data")
    staging = stage(tmp_path, "r1")
    validate_staging(staging)
    with pytest.raises(PublishError, match="not a release link"):
        publish_release(staging)
    assert (tmp_path / "stephint" / "r1" / "keep.txt").read_text() == "user data"


def test_contract_violation_blocks_publish(tmp_path: Path):
    """A staged shard that breaks a row rule fails validation, and r1 stays as it was."""
    import pyarrow as pa

    from corpusforge.generators.shard_writer import file_sha256
    from corpusforge.schemas import get_schema

    build(tmp_path, "r1", seed=1)
    before = store.load_manifest(tmp_path / "stephint" / "r1")["content_fingerprint"]

    staging = stage(tmp_path, "r1", seed=2)
    part = staging / "parts" / "shard-00000.parquet"
    rows = pq.read_table(part).to_pylist()
    rows[3]["steps"] = [*rows[3]["steps"][:-1], "a different ending"]
    pq.write_table(pa.Table.from_pylist(rows, schema=get_schema("stephint", "chains")), part)
    stats_path = staging / "parts" / "shard-00000.json"
    stats = json.loads(stats_path.read_text())
    stats.update(bytes=part.stat().st_size, sha256=file_sha256(part))
    stats_path.write_text(json.dumps(stats))

    with pytest.raises(ValidationFailed) as failure:
        validate_staging(staging)
    message = str(failure.value)
    assert "steps" in message
    assert rows[3]["id"] in message
    with pytest.raises(ValidationFailed):
        publish_release(staging)
    assert store.load_manifest(tmp_path / "stephint" / "r1")["content_fingerprint"] == before
    summary = json.loads((staging / "validation" / "summary.json").read_text())
    assert summary["success"] is False


def test_empty_split_left_out_and_reported(tmp_path: Path):
    import yaml

    bad = tmp_path / "only_bad_test.jsonl"
    bad.write_text('{"question": "What is 2+2?", "answer": "I do not know."}\n')
    published = build(
        tmp_path / "out",
        "r1",
        sources=["synthetic_math:?count=5", f"gsm8k:{bad}?split=test"],
    )
    manifest = store.load_manifest(Path(published.path))
    assert manifest["splits"] == {"chains": {"train": 5}}
    assert manifest["empty_splits"] == [{"config": "chains", "split": "test"}]
    assert manifest["quarantine"]["by_reason"] == {"empty_reference": 1}
    assert not list((Path(published.path) / "data" / "chains").glob("test-*"))

    card = (Path(published.path) / "README.md").read_text()
    front = yaml.safe_load(card.split("---\n")[1])
    assert front["configs"] == [
        {
            "config_name": "chains",
            "data_files": [{"split": "train", "path": "data/chains/train-*.parquet"}],
        }
    ]
    assert "| chains | test | 0 (left out of the configs) |" in card
    assert front["license"] == "other"
    assert "## Steps and hints per split" in card


def test_retried_shard_removes_stale_temporary_files(tmp_path: Path):
    """A killed attempt's temporary files must not end up inside the published release."""
    from corpusforge.generators.pipeline import generate_shard

    staging = stage(tmp_path, "r1")
    (staging / "quarantine").mkdir(exist_ok=True)
    stale_quarantine = staging / "quarantine" / ".shard-00000.99999.jsonl.tmp"
    stale_part = staging / "parts" / ".shard-00000.99999.parquet.tmp"
    stale_quarantine.write_text("")
    stale_part.write_bytes(b"partial")

    generate_shard(staging, 0)
    assert not stale_quarantine.exists()
    assert not stale_part.exists()

    validate_staging(staging)
    published = publish_release(staging)
    assert not list(Path(published.path).rglob(".*.tmp"))
