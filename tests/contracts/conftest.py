"""Fixtures that build small real staged releases: plan.json, shard json and Parquet files.

Tests get the builders through the `chain_row`, `chains_table`, `write_staging` and
`stage` fixtures. Great Expectations takes seconds per validation, so tests that only
read results share one validated staging through module-scoped fixtures.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from corpusforge.schemas import get_schema

STEPS = ["Add 2 and 3 to get 5. ", "Multiply 5 by 4 to get 20. ", "The answer is 20."]


def _chain_row(
    record_id: str,
    *,
    source: str = "gsm8k",
    source_id: str | None = None,
    steps: list[str] | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """Return a valid StepHint row: a 3-step chain with hints at levels 1 and 2."""
    steps = list(steps or STEPS)
    chain = "".join(steps)
    offsets, start = [], 0
    for step in steps:
        offsets.append({"start": start, "end": start + len(step)})
        start += len(step)
    hints = [
        {
            "level": level,
            "num_steps": level,
            "text": "".join(steps[:level]),
            "answer_in_hint": False,
        }
        for level in (1, 2)
    ]
    row = {
        "id": record_id,
        "source": source,
        "source_file": "train.jsonl",
        "source_id": source_id or f"{source}-{record_id}",
        "source_split": "train",
        "problem": "What is (2 + 3) * 4?",
        "reference_answer": "20",
        "source_text": "2 + 3 = 5 and 5 * 4 = 20. #### 20",
        "chain": chain,
        "steps": steps,
        "step_offsets": offsets,
        "num_steps": len(steps),
        "hints": hints,
        "partition_method": "adaptive",
        "scorer": "math_verify",
        "predicted_answer": "20",
        "verified": True,
        "verification": "equal",
        "metadata": "{}",
    }
    row.update(overrides)
    return row


def _chains_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Return `rows` as a table with the explicit StepHint schema, never an inferred one."""
    return pa.Table.from_pylist(rows, schema=get_schema("stephint", "chains"))


def _write_staging(
    root: Path, shards: list[pa.Table | list[dict[str, Any]]], splits: list[str] | None = None
) -> Path:
    """Write a staged release with one shard per item of `shards`, without files for empty ones."""
    parts = root / "parts"
    parts.mkdir(parents=True)
    splits = splits or ["train"] * len(shards)
    plan_shards = []
    for index, (shard, split) in enumerate(zip(shards, splits, strict=True)):
        table = shard if isinstance(shard, pa.Table) else _chains_table(shard)
        entry = {"index": index, "config": "chains", "split": split, "units": []}
        plan_shards.append(entry)
        manifest = {**entry, "rows": table.num_rows, "quarantined": {}}
        del manifest["units"]
        manifest.update(file=None, bytes=0, sha256=None)
        if table.num_rows:
            path = parts / f"shard-{index:05d}.parquet"
            pq.write_table(table, path)
            manifest.update(
                file=f"parts/{path.name}",
                bytes=path.stat().st_size,
                sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
            )
        (parts / f"shard-{index:05d}.json").write_text(json.dumps(manifest))
    plan = {"dataset": "stephint", "release": "test-release", "shards": plan_shards}
    (root / "plan.json").write_text(json.dumps(plan))
    return root


@pytest.fixture(scope="session")
def chain_row():
    return _chain_row


@pytest.fixture(scope="session")
def chains_table():
    return _chains_table


@pytest.fixture(scope="session")
def write_staging():
    """Return `write(root, shards, splits=None)`, which writes a staged release at `root`."""
    return _write_staging


@pytest.fixture
def stage(tmp_path: Path):
    """Return a function that writes a staged release under tmp_path and returns its folder."""

    def write(shards: list, splits: list[str] | None = None) -> Path:
        return _write_staging(tmp_path / "staging", shards, splits)

    return write
