"""Part files must have the registry's Arrow schema and agree with their shard json."""

from __future__ import annotations

import json
import re

import pyarrow as pa
import pytest

from corpusforge.data_contracts import validate_staging
from corpusforge.generators.errors import ValidationFailed
from corpusforge.schemas import get_schema

PART_FILE = "parts/shard-00000.parquet"


def _summary(root) -> dict:
    return json.loads((root / "validation" / "summary.json").read_text(encoding="utf-8"))


def _failed_rules(root) -> set[str]:
    return {name for name, rule in _summary(root)["rules"].items() if not rule["passed"]}


def _table_with_field(rows, field: pa.Field) -> pa.Table:
    schema = get_schema("stephint", "chains")
    schema = schema.set(schema.get_field_index(field.name), field)
    return pa.Table.from_pylist(rows, schema=schema)


OFFSET_NOT_NULL = pa.struct(
    [pa.field("start", pa.int32(), nullable=False), pa.field("end", pa.int32(), nullable=False)]
)
WRONG_FIELDS = [
    (
        pa.field("num_steps", pa.int64(), nullable=False),
        r"column num_steps has type int64 not null; expected int32 not null",
    ),
    (
        pa.field("id", pa.string(), nullable=True),
        "column id is string nullable; expected string not null",
    ),
    (
        pa.field("step_offsets", pa.list_(OFFSET_NOT_NULL), nullable=False),
        # Parquet names the list item `element`, which Arrow ignores when comparing types.
        r"column step_offsets has type list<\w+: struct<start: int32 not null, end: int32 not null",
    ),
]


@pytest.mark.parametrize(("field", "message"), WRONG_FIELDS, ids=lambda v: getattr(v, "name", ""))
def test_wrong_arrow_type_fails_schema_check(stage, chain_row, field, message):
    root = stage([_table_with_field([chain_row("r0"), chain_row("r1")], field)])

    with pytest.raises(ValidationFailed) as raised:
        validate_staging(root)
    summary = _summary(root)

    assert _failed_rules(root) == {"arrow_schema"}
    assert f"arrow_schema (schema rule) failed on 2 rows in {PART_FILE}" in str(raised.value)
    assert re.search(message, str(raised.value))
    assert summary["shards"][0]["checked"] is False
    assert PART_FILE in summary["rules"]["steps_concatenate_to_chain"]["skipped_files"]
    assert PART_FILE in summary["rules"]["ids_unique_across_shards"]["skipped_files"]


def test_missing_column_fails_schema_check(stage, chains_table, chain_row):
    table = chains_table([chain_row("r0")]).drop_columns(["metadata"])
    root = stage([table])

    with pytest.raises(ValidationFailed, match="missing columns: metadata"):
        validate_staging(root)

    assert _failed_rules(root) == {"arrow_schema"}


def test_reordered_columns_fail_schema_check(stage, chains_table, chain_row):
    table = chains_table([chain_row("r0")])
    names = table.column_names
    root = stage([table.select([names[1], names[0], *names[2:]])])

    with pytest.raises(ValidationFailed, match="column order is source, id, "):
        validate_staging(root)


def _edit_manifest(root, index: int, **changes) -> None:
    path = root / "parts" / f"shard-{index:05d}.json"
    manifest = json.loads(path.read_text())
    manifest.update(changes)
    path.write_text(json.dumps(manifest))


def test_changed_sha256_fails_manifest(stage, chain_row):
    root = stage([[chain_row("r0")]])
    _edit_manifest(root, 0, sha256="0" * 64)

    with pytest.raises(ValidationFailed, match=r"shard_manifest \(manifest rule\) failed in"):
        validate_staging(root)
    summary = _summary(root)

    assert _failed_rules(root) == {"shard_manifest"}
    assert summary["shards"][0]["sha256"] == "0" * 64
    assert "file sha256 is" in summary["rules"]["shard_manifest"]["examples"][0]["value"]


def test_row_count_mismatch_fails_manifest(stage, chain_row):
    root = stage([[chain_row("r0"), chain_row("r1")]])
    _edit_manifest(root, 0, rows=5)

    with pytest.raises(ValidationFailed, match="file has 2 rows; shard json says 5"):
        validate_staging(root)


def test_missing_shard_json_fails_manifest(stage, chain_row):
    root = stage([[chain_row("r0")], [chain_row("r1")]])
    (root / "parts" / "shard-00001.json").unlink()

    with pytest.raises(ValidationFailed, match=r"shard-00001\.json:\n    shard json not found"):
        validate_staging(root)


def test_part_file_of_empty_shard_fails_manifest(stage, chain_row):
    root = stage([[chain_row("r0")]])
    _edit_manifest(root, 0, rows=0, file=None)

    with pytest.raises(ValidationFailed, match="shard has 0 rows but file is None"):
        validate_staging(root)


def test_unplanned_part_file_fails_manifest(stage, chain_row):
    root = stage([[chain_row("r0")]])
    (root / "parts" / "shard-00009.parquet").write_bytes(b"stray")

    with pytest.raises(ValidationFailed, match="shard-00009.parquet:\n    file is not part of any"):
        validate_staging(root)


def test_missing_plan_fails(tmp_path):
    with pytest.raises(ValidationFailed, match=r"plan\.json not found; stage the release"):
        validate_staging(tmp_path)
