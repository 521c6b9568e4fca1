"""Tests of the verl export, run on a small release folder written with the published schema."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from corpusforge.generators.errors import SourceError
from corpusforge.generators.stephint.verl import (
    HINT_PROMPT_TEMPLATE,
    NO_HINT_PROMPT_TEMPLATE,
    VERL_SCHEMA,
    build_prompt,
    export_verl,
)
from corpusforge.schemas.stephint import CHAINS


def make_chain(chain_id: str, problem: str, answer: str, steps: list[str]) -> dict:
    """Return a valid `chains` row whose hint level k is the first k of `steps`.

    As in published rows, the steps concatenate exactly to `chain`, so every step but the last
    keeps its trailing blank line. `answer_in_hint` is true when the hint text contains `answer`.
    """
    steps = [step + "\n\n" for step in steps[:-1]] + steps[-1:]
    chain = "".join(steps)
    offsets = []
    start = 0
    for step in steps:
        offsets.append({"start": start, "end": start + len(step)})
        start += len(step)
    hints = []
    for level in range(1, len(steps)):
        text = "".join(steps[:level])
        hints.append(
            {
                "level": level,
                "num_steps": level,
                "text": text,
                "answer_in_hint": answer in text,
            }
        )
    return {
        "id": chain_id,
        "source": "test",
        "source_file": "test.jsonl",
        "source_id": chain_id,
        "source_split": "train",
        "problem": problem,
        "reference_answer": answer,
        "source_text": chain,
        "chain": chain,
        "steps": steps,
        "step_offsets": offsets,
        "num_steps": len(steps),
        "hints": hints,
        "partition_method": "paragraph",
        "scorer": "math_verify",
        "predicted_answer": answer,
        "verified": True,
        "verification": "match",
        "metadata": "{}",
    }


# Three steps, no hint contains the answer: levels 1 and 2.
CHAIN_PLAIN = make_chain(
    "c-plain",
    "What is 2 + 3 * 4?",
    "14",
    ["Multiplication comes first: 3 * 4 = 12.", "Add 2 to 12.", "The result is \\boxed{14}."],
)
# Three steps, level 2 states the answer: level 1 only, unless answer hints are included.
CHAIN_LEAK = make_chain(
    "c-leak",
    "Compute 6 * 7.",
    "42",
    ["Write 6 * 7 as 6 * 7 = 6 * (5 + 2).", "That is 30 + 12 = 42.", "So \\boxed{42}."],
)
# One step, so no hint level.
CHAIN_SINGLE = make_chain("c-single", "What is 1 + 1?", "2", ["1 + 1 = \\boxed{2}."])
# Two steps and the only hint level states the answer.
CHAIN_ALL_LEAK = make_chain(
    "c-all-leak",
    "What is 9 - 4?",
    "5",
    ["9 - 4 = 5.", "So the answer is \\boxed{5}."],
)
# Four steps with a fractional answer: levels 1 to 3.
CHAIN_FRACTION = make_chain(
    "c-fraction",
    "Simplify 2/4.",
    "\\frac{1}{2}",
    ["Both parts are even.", "Divide by 2 on top.", "Divide by 2 below.", "\\boxed{\\frac{1}{2}}"],
)


def write_release(root: Path, shards: dict[str, list[list[dict]]]) -> Path:
    """Write `<root>/data/chains/<split>-NNNNN-of-MMMMM.parquet` files and manifest.json."""
    entries = []
    for split, split_shards in shards.items():
        for number, rows in enumerate(split_shards):
            relative = f"data/chains/{split}-{number:05d}-of-{len(split_shards):05d}.parquet"
            path = root / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(pa.Table.from_pylist(rows, schema=CHAINS), path)
            entries.append(
                {
                    "path": relative,
                    "config": "chains",
                    "split": split,
                    "rows": len(rows),
                    "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                }
            )
    manifest = {"dataset": "stephint", "release": "test", "shards": entries}
    (root / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return root


@pytest.fixture
def release(tmp_path: Path) -> Path:
    return write_release(
        tmp_path / "release",
        {
            "train": [[CHAIN_PLAIN, CHAIN_LEAK], [CHAIN_SINGLE, CHAIN_ALL_LEAK]],
            "test": [[CHAIN_FRACTION]],
        },
    )


def read_rows(path: Path) -> list[dict]:
    return pq.read_table(path).to_pylist()


def levels_by_id(rows: list[dict]) -> dict[str, list[int]]:
    levels: dict[str, list[int]] = {}
    for row in rows:
        levels.setdefault(row["extra_info"]["id"], []).append(row["extra_info"]["hint_level"])
    return levels


def test_default_row_counts(release: Path, tmp_path: Path):
    result = export_verl(release, tmp_path / "out")

    # train: c-plain gives levels 0, 1, 2 and c-leak gives levels 0, 1.
    assert result["rows"] == {"train": 5, "test": 4}
    assert result["chains_read"] == 5
    assert result["chains_exported"] == 3
    assert result["skipped_chains"] == {"no_hint_levels": 1, "all_hints_contain_answer": 1}
    assert result["skipped_hint_levels"] == {"answer_in_hint": 2}
    assert result["files"] == {
        "train": str(tmp_path / "out" / "train.parquet"),
        "test": str(tmp_path / "out" / "test.parquet"),
    }
    assert pq.read_metadata(tmp_path / "out" / "train.parquet").num_rows == 5
    assert pq.read_metadata(tmp_path / "out" / "test.parquet").num_rows == 4


def test_default_levels(release: Path, tmp_path: Path):
    export_verl(release, tmp_path / "out")

    train = levels_by_id(read_rows(tmp_path / "out" / "train.parquet"))
    test = levels_by_id(read_rows(tmp_path / "out" / "test.parquet"))
    assert train == {"c-plain": [0, 1, 2], "c-leak": [0, 1]}
    assert test == {"c-fraction": [0, 1, 2, 3]}


def test_answer_hints_included_on_request(release: Path, tmp_path: Path):
    result = export_verl(release, tmp_path / "out", include_answer_hints=True)

    train_rows = read_rows(tmp_path / "out" / "train.parquet")
    assert levels_by_id(train_rows) == {
        "c-plain": [0, 1, 2],
        "c-leak": [0, 1, 2],
        "c-all-leak": [0, 1],
    }
    leaked = [
        (row["extra_info"]["id"], row["extra_info"]["hint_level"])
        for row in train_rows
        if row["extra_info"]["answer_in_hint"]
    ]
    assert leaked == [("c-leak", 2), ("c-all-leak", 1)]
    assert result["skipped_chains"] == {"no_hint_levels": 1, "all_hints_contain_answer": 0}
    assert result["skipped_hint_levels"] == {"answer_in_hint": 0}


def test_no_hint_row_left_out_on_request(release: Path, tmp_path: Path):
    result = export_verl(release, tmp_path / "out", include_no_hint=False)

    train = levels_by_id(read_rows(tmp_path / "out" / "train.parquet"))
    assert train == {"c-plain": [1, 2], "c-leak": [1]}
    assert result["rows"] == {"train": 3, "test": 3}


def test_prompt_content(release: Path, tmp_path: Path):
    export_verl(release, tmp_path / "out")
    rows = read_rows(tmp_path / "out" / "train.parquet")
    plain = {
        row["extra_info"]["hint_level"]: row for row in rows if row["extra_info"]["id"] == "c-plain"
    }

    for row in plain.values():
        assert len(row["prompt"]) == 1
        assert row["prompt"][0]["role"] == "user"

    no_hint = plain[0]["prompt"][0]["content"]
    assert no_hint == NO_HINT_PROMPT_TEMPLATE.format(problem=CHAIN_PLAIN["problem"])
    assert no_hint.endswith("output the final answer within \\boxed{}.")
    assert plain[0]["extra_info"]["hint_text"] == ""

    level_two = plain[2]["prompt"][0]["content"]
    hint_text = CHAIN_PLAIN["hints"][1]["text"]
    expected = HINT_PROMPT_TEMPLATE.format(problem=CHAIN_PLAIN["problem"], hint=hint_text.strip())
    assert level_two == expected
    assert level_two.startswith(CHAIN_PLAIN["problem"] + "\n\n")
    assert hint_text.strip() in level_two
    assert CHAIN_PLAIN["steps"][1].strip() in level_two
    assert CHAIN_PLAIN["steps"][2] not in level_two
    assert level_two.endswith("Output the final answer within \\boxed{}.")
    assert plain[2]["extra_info"]["hint_text"] == hint_text


def test_build_prompt_strips_whitespace():
    messages = build_prompt("  Find x.\n", "Step one.\n\n")

    assert messages == [
        {
            "role": "user",
            "content": HINT_PROMPT_TEMPLATE.format(problem="Find x.", hint="Step one."),
        }
    ]


def test_build_prompt_keeps_braces():
    content = build_prompt("Is {1, 2} a set?", "Let {x} be given.")[0]["content"]

    assert "Is {1, 2} a set?" in content
    assert "Let {x} be given." in content


def test_row_fields(release: Path, tmp_path: Path):
    export_verl(release, tmp_path / "out", data_source="stephint-test")
    rows = read_rows(tmp_path / "out" / "test.parquet")

    assert [row["extra_info"]["index"] for row in rows] == [0, 1, 2, 3]
    for row in rows:
        assert row["data_source"] == "stephint-test"
        assert row["ability"] == "math"
        assert row["reward_model"] == {"style": "rule", "ground_truth": "\\frac{1}{2}"}
        assert row["extra_info"]["split"] == "test"
        assert row["extra_info"]["total_steps"] == 4
        assert row["extra_info"]["hint_num_steps"] == row["extra_info"]["hint_level"]
        assert row["extra_info"]["answer_in_hint"] is False


def test_index_runs_across_shards(release: Path, tmp_path: Path):
    export_verl(release, tmp_path / "out", include_answer_hints=True)
    rows = read_rows(tmp_path / "out" / "train.parquet")

    assert [row["extra_info"]["index"] for row in rows] == list(range(len(rows)))


def test_schema_is_explicit(release: Path, tmp_path: Path):
    export_verl(release, tmp_path / "out")

    for split in ("train", "test"):
        schema = pq.read_schema(tmp_path / "out" / f"{split}.parquet")
        assert schema.names == ["data_source", "prompt", "ability", "reward_model", "extra_info"]
        assert schema.remove_metadata().equals(VERL_SCHEMA)
        assert schema.field("prompt").type == pa.list_(
            pa.struct([("role", pa.string()), ("content", pa.string())])
        )
        assert schema.field("extra_info").type.field("index").type == pa.int64()
        assert schema.field("extra_info").type.field("hint_level").type == pa.int32()
        assert schema.field("extra_info").type.field("answer_in_hint").type == pa.bool_()


def test_pandas_reads_back(release: Path, tmp_path: Path):
    export_verl(release, tmp_path / "out")
    frame = pd.read_parquet(tmp_path / "out" / "train.parquet")

    assert list(frame.columns) == [
        "data_source",
        "prompt",
        "ability",
        "reward_model",
        "extra_info",
    ]
    assert len(frame) == 5
    first = frame.iloc[0]
    assert first["data_source"] == "corpusforge/stephint"
    assert first["prompt"][0]["role"] == "user"
    assert first["reward_model"]["ground_truth"] == "14"
    assert first["extra_info"]["id"] == "c-plain"
    assert first["extra_info"]["hint_level"] == 0


def test_datasets_loads_like_verl(release: Path, tmp_path: Path):
    datasets = pytest.importorskip("datasets")
    export_verl(release, tmp_path / "out")

    # RLHFDataset reads each file with `datasets.load_dataset("parquet", data_files=...)`.
    loaded = datasets.load_dataset(
        "parquet",
        data_files=str(tmp_path / "out" / "train.parquet"),
        cache_dir=str(tmp_path / "hf-cache"),
    )["train"]
    assert len(loaded) == 5
    assert loaded[1]["prompt"][0]["role"] == "user"
    assert loaded[1]["extra_info"]["hint_level"] == 1
    assert loaded[1]["reward_model"]["ground_truth"] == "14"


def test_batch_size_does_not_change_output(release: Path, tmp_path: Path):
    export_verl(release, tmp_path / "one", batch_size=1)
    export_verl(release, tmp_path / "many", batch_size=1024)

    for split in ("train", "test"):
        one = pq.read_table(tmp_path / "one" / f"{split}.parquet")
        many = pq.read_table(tmp_path / "many" / f"{split}.parquet")
        assert one.equals(many)


def test_split_with_no_rows_is_written(tmp_path: Path):
    release = write_release(
        tmp_path / "release", {"train": [[CHAIN_PLAIN]], "test": [[CHAIN_SINGLE]]}
    )

    result = export_verl(release, tmp_path / "out")

    assert result["rows"] == {"train": 3, "test": 0}
    assert pq.read_metadata(tmp_path / "out" / "test.parquet").num_rows == 0
    assert pq.read_schema(tmp_path / "out" / "test.parquet").remove_metadata().equals(VERL_SCHEMA)


def test_no_temporary_files_left(release: Path, tmp_path: Path):
    export_verl(release, tmp_path / "out")

    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == [
        "test.parquet",
        "train.parquet",
    ]


def test_missing_manifest_raises(tmp_path: Path):
    with pytest.raises(SourceError, match="manifest not found"):
        export_verl(tmp_path, tmp_path / "out")


def test_checksum_mismatch_raises(release: Path, tmp_path: Path):
    manifest_path = release / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["shards"][1]["sha256"] = "0" * 64
    manifest_path.write_text(json.dumps(manifest))

    with pytest.raises(SourceError, match="sha256"):
        export_verl(release, tmp_path / "out")
    assert not (tmp_path / "out" / "train.parquet").exists()
    assert not (tmp_path / "out" / ".train.parquet.tmp").exists()


def test_checksum_check_can_be_skipped(release: Path, tmp_path: Path):
    manifest_path = release / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["shards"][1]["sha256"] = "0" * 64
    manifest_path.write_text(json.dumps(manifest))

    result = export_verl(release, tmp_path / "out", verify_checksums=False)

    assert result["rows"] == {"train": 5, "test": 4}


def test_row_count_mismatch_raises(release: Path, tmp_path: Path):
    manifest_path = release / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["shards"][0]["rows"] = 3
    manifest_path.write_text(json.dumps(manifest))

    with pytest.raises(SourceError, match="has 2 rows but manifest.json lists 3"):
        export_verl(release, tmp_path / "out")


def test_missing_column_raises(tmp_path: Path):
    root = tmp_path / "release"
    relative = "data/chains/train-00000-of-00001.parquet"
    (root / "data" / "chains").mkdir(parents=True)
    pq.write_table(pa.table({"id": ["a"], "problem": ["p"]}), root / relative)
    manifest = {"shards": [{"path": relative, "config": "chains", "split": "train", "rows": 1}]}
    (root / "manifest.json").write_text(json.dumps(manifest))

    with pytest.raises(SourceError, match="missing columns"):
        export_verl(root, tmp_path / "out", verify_checksums=False)


def test_shard_outside_release_raises(release: Path, tmp_path: Path):
    manifest_path = release / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["shards"][0]["path"] = "../elsewhere.parquet"
    manifest_path.write_text(json.dumps(manifest))

    with pytest.raises(SourceError, match="outside the release folder"):
        export_verl(release, tmp_path / "out")


def test_manifest_without_chains_raises(tmp_path: Path):
    (tmp_path / "manifest.json").write_text(json.dumps({"shards": []}))

    with pytest.raises(SourceError, match="no shards of the `chains` config"):
        export_verl(tmp_path, tmp_path / "out")
