"""Planned units live in one file per shard, so a shard task reads only its own."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import fsspec
import pytest
from upath import UPath

from corpusforge.generators.errors import ConfigError
from corpusforge.generators.pipeline import (
    BuildParams,
    RunInfo,
    generate_shard,
    load_plan,
    plan_release,
)

SOURCES = ["synthetic_math:?count=30"]


def _plan(root: str) -> Path | UPath:
    return plan_release(
        BuildParams(
            dataset="stephint",
            release="r1",
            seed=1,
            output_root=root,
            sources=SOURCES,
            shard_size=10,
        ),
        RunInfo(run_id="test-run", started_at="2026-01-01T00:00:00+00:00"),
    )


def _part_bytes(staging: Path, index: int) -> bytes:
    return (staging / "parts" / f"shard-{index:05d}.parquet").read_bytes()


def test_plan_json_has_no_units(tmp_path: Path):
    staging = _plan(str(tmp_path))
    plan = json.loads((staging / "plan.json").read_text())
    assert len(plan["shards"]) == 3
    for entry in plan["shards"]:
        assert set(entry) == {"index", "config", "split", "work"}
    names = sorted(path.name for path in (staging / "parts").iterdir())
    assert names == ["units-00000.json", "units-00001.json", "units-00002.json"]


def test_with_units_matches_files(tmp_path: Path):
    staging = _plan(str(tmp_path))
    plan = load_plan(staging, with_units=True)
    for entry in plan["shards"]:
        units_file = staging / "parts" / f"units-{entry['index']:05d}.json"
        assert entry["units"] == json.loads(units_file.read_text())
        assert entry["units"], f"shard {entry['index']} has no units"


def test_shard_reads_only_its_units(tmp_path: Path):
    staging = _plan(str(tmp_path))
    (staging / "parts" / "units-00000.json").unlink()
    (staging / "parts" / "units-00002.json").unlink()
    stats = generate_shard(staging, 1)
    assert stats["rows"] == 10
    with pytest.raises(ConfigError, match="units-00000.json not found"):
        generate_shard(staging, 0)


def test_inline_units_still_work(tmp_path: Path):
    staging = _plan(str(tmp_path))
    generate_shard(staging, 2)
    expected = _part_bytes(staging, 2)

    # A plan written before the units moved out carries them in each entry.
    plan = load_plan(staging, with_units=True)
    (staging / "plan.json").write_text(json.dumps(plan))
    for path in (staging / "parts").glob("units-*.json"):
        path.unlink()
    generate_shard(staging, 2)
    assert _part_bytes(staging, 2) == expected


def test_remote_shard_reads_units(tmp_path: Path):
    root = f"memory://cf-{uuid.uuid4().hex[:12]}/out"
    try:
        staging = _plan(root)
        assert isinstance(staging, UPath)
        assert (staging / "parts" / "units-00001.json").exists()
        stats = generate_shard(staging, 1)
        assert stats["rows"] == 10
        local = _plan(str(tmp_path))
        generate_shard(local, 1)
        assert (staging / "parts" / "shard-00001.parquet").read_bytes() == _part_bytes(local, 1)
    finally:
        fsspec.filesystem("memory").rm(UPath(root).path, recursive=True)
