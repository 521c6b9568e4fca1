"""Contract rules catch broken records, leaks and shared pictures; generated shards pass them.

The same parameters also give byte-identical shards in any shard order.
"""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from mllmu_med_helpers import TINY_SOURCES, part_hashes, stage_release

from corpusforge.data_contracts.mllmu_med_rules import (
    RELEASE_RULE_CLASSES,
    ROW_RULE_SPECS,
    png_problem,
)
from corpusforge.data_contracts.report import RuleResult
from corpusforge.schemas import get_schema


def _parts(staging: Path) -> list[tuple[dict, pa.Table]]:
    parts = []
    for stats_file in sorted((staging / "parts").glob("shard-*.json")):
        stats = json.loads(stats_file.read_text())
        if stats["rows"]:
            parts.append((stats, pq.read_table(staging / stats["file"])))
    return parts


@pytest.fixture(scope="module")
def tiny_staging(tmp_path_factory) -> Path:
    return stage_release(tmp_path_factory.mktemp("tiny"), "tiny", TINY_SOURCES)


@pytest.fixture(scope="module")
def parts(tiny_staging: Path) -> list[tuple[dict, pa.Table]]:
    return _parts(tiny_staging)


def _records(parts, split: str) -> list[dict]:
    for stats, table in parts:
        if stats["config"] == "records" and stats["split"] == split:
            return table.to_pylist()
    raise AssertionError(f"no part for records/{split}")


def _row_failures(rule: str, rows: list[dict], config: str = "records") -> list[int]:
    columns, check, _ = ROW_RULE_SPECS[rule]
    table = pa.Table.from_pylist(rows, schema=get_schema("mllmu_med", config))
    return check(table.select(list(columns)))


def _release(rule: str, batches: list[tuple[str, list[dict]]], config="records") -> RuleResult:
    result = RuleResult(rule, "release")
    check = RELEASE_RULE_CLASSES[rule](result)
    schema = get_schema("mllmu_med", config)
    for split, rows in batches:
        table = pa.Table.from_pylist(rows, schema=schema).select(list(check.columns))
        for batch in table.to_batches():
            check.add(batch, f"parts/{split}.parquet", split)
    return result


def test_generated_shards_pass_every_row_rule(parts):
    for stats, table in parts:
        for rule, (columns, check, _) in ROW_RULE_SPECS.items():
            if set(columns) <= set(table.column_names):
                assert check(table.select(list(columns))) == [], (rule, stats["split"])


def test_generated_records_pass_every_release_rule(parts):
    batches = [(s["split"], t.to_pylist()) for s, t in parts if s["config"] == "records"]
    for rule in (
        "record_ids_unique",
        "patients_in_one_band",
        "images_disjoint_across_bands",
        "private_values_stay_in_band",
    ):
        assert _release(rule, batches).passed, rule


def test_wrong_letter_and_repeated_option_fail(parts):
    rows = [r for r in _records(parts, "band_00_05") if r["task"] == "classification"][:3]
    rows[0]["answer_letter"] = "D" if rows[0]["answer_letter"] != "D" else "A"
    rows[1]["options"] = [rows[1]["options"][0]] * 4
    assert _row_failures("classification_options_valid", rows) == [0, 1]


def test_corrupted_equal_to_correct_fails(parts):
    rows = [r for r in _records(parts, "band_15_100") if r["corrupted"]][:2]
    rows[0]["answer"] = rows[0]["correct_answer"].upper() + "."
    rows[1]["ledger_ids"] = []
    assert _row_failures("corrupted_answers_differ", rows) == [0, 1]


def test_cloze_without_blank_fails(parts):
    rows = [r for r in _records(parts, "band_00_05") if r["task"] == "cloze"][:2]
    rows[0]["question"] = rows[0]["question"].replace("____", "…")
    rows[1]["question"] += " ____"
    assert _row_failures("cloze_has_one_blank", rows) == [0, 1]


def test_probe_answer_outside_ledger_fails(parts):
    rows = [
        r
        for r in _records(parts, "band_00_05")
        if r["scenario"] == "privacy" and r["task"] == "generation"
    ][:1]
    rows[0]["answer"] = "Somebody Else"
    assert _row_failures("probe_answers_in_ledger_ids", rows) == [0]


def _with_chunk(png: bytes, kind: bytes, data: bytes) -> bytes:
    chunk = struct.pack(">I", len(data)) + kind + data
    chunk += struct.pack(">I", zlib.crc32(kind + data))
    return png[:33] + chunk + png[33:]


def test_image_with_metadata_or_wrong_hash_fails(parts):
    rows = [r for r in _records(parts, "band_00_05") if r["image"]][:3]
    rows[0]["image"]["bytes"] = _with_chunk(rows[0]["image"]["bytes"], b"tEXt", b"Name\x00Jo")
    rows[1]["image_phash"] = "0" * 16
    rows[2]["modality"] = "text_only"
    assert _row_failures("record_images_match_ids", rows) == [0, 1, 2]


def test_png_chunk_check():
    from PIL import Image

    from corpusforge.generators.imaging.io import encode_png

    png = encode_png(Image.new("L", (4, 4)))
    assert png_problem(png) is None
    assert "eXIf" in png_problem(_with_chunk(png, b"eXIf", b"MM\x00*"))
    assert png_problem(b"\xff\xd8\xff\xe0 JPEG") == "not a PNG file"
    assert png_problem(png[:-12]) == "PNG ends without an IEND chunk"


def test_leak_of_forget_value_into_retain_fails(parts):
    forget = _records(parts, "band_00_05")
    retain = _records(parts, "band_15_100")
    name = next(r["answer"] for r in forget if r["field"] == "name" and r["task"] == "cloze")
    retain[0]["answer"] = f"Seen with {name} yesterday"
    result = _release(
        "private_values_stay_in_band", [("band_00_05", forget), ("band_15_100", retain)]
    )
    assert not result.passed
    assert result.failed_rows == 1
    assert "of band 00_05 in a band 15_100 record" in json.dumps(result.to_json())


def test_leak_of_retain_value_into_forget_fails(parts):
    forget = _records(parts, "band_00_05")
    retain = _records(parts, "band_15_100")
    phone = next(r["answer"] for r in retain if r["field"] == "phone" and r["task"] == "cloze")
    forget[0]["question"] = f"Call {phone} first. " + forget[0]["question"]
    result = _release(
        "private_values_stay_in_band", [("band_00_05", forget), ("band_15_100", retain)]
    )
    assert result.failed_rows == 1
    assert "of band 15_100 in a band 00_05 record" in json.dumps(result.to_json())


def test_value_inside_longer_word_is_no_leak(parts):
    forget = _records(parts, "band_00_05")
    retain = _records(parts, "band_15_100")
    name = next(r["answer"] for r in forget if r["field"] == "name" and r["task"] == "cloze")
    retain[0]["answer"] = f"X{name}son"
    assert _release(
        "private_values_stay_in_band", [("band_00_05", forget), ("band_15_100", retain)]
    ).passed


def test_same_picture_in_two_bands_fails(parts):
    forget = _records(parts, "band_00_05")
    retain = _records(parts, "band_15_100")
    image_row = next(r for r in forget if r["image_id"])
    twin = dict(next(r for r in retain if r["image_id"]))
    twin["image_id"] = "f" * 64
    twin["image_phash"] = f"{int(image_row['image_phash'], 16) ^ 0b111:016x}"
    copy = dict(next(r for r in retain if r["image_id"]), image_id=image_row["image_id"])
    result = _release(
        "images_disjoint_across_bands", [("band_00_05", forget), ("band_15_100", [twin, copy])]
    )
    assert result.failed_rows == 2
    text = json.dumps(result.to_json())
    assert "within 3 bits" in text
    assert "is in band 15_100 and in band 00_05" in text


def test_patient_band_and_order_checked(parts):
    forget = _records(parts, "band_00_05")
    retain = _records(parts, "band_15_100")
    moved = dict(retain[0], patient_id=forget[0]["patient_id"])
    result = _release("patients_in_one_band", [("band_15_100", [moved]), ("band_00_05", forget)])
    text = json.dumps(result.to_json())
    assert "arrived after a later band" in text
    assert "is in band 00_05 and in band 15_100" in text


def test_duplicate_record_id_fails(parts):
    rows = _records(parts, "band_00_05")
    result = _release("record_ids_unique", [("band_00_05", rows), ("band_05_10", rows[:1])])
    assert result.failed_rows == 1


def test_ledger_row_with_wrong_id_fails(parts):
    rows = next(t for s, t in parts if s["config"] == "ledger").to_pylist()[:3]
    rows[0]["value"] = "Changed Name"
    corrupted = [
        r
        for r in next(t for s, t in parts if s["config"] == "ledger").to_pylist()
        if r["kind"] == "corrupted_answer"
    ][:1]
    corrupted[0]["value"] = corrupted[0]["correct_value"]
    assert _row_failures("ledger_entries_consistent", rows + corrupted, "ledger") == [0, 3]


def test_rerun_is_byte_identical_in_any_shard_order(tiny_staging: Path, tmp_path: Path):
    again = stage_release(tmp_path / "again", "tiny", TINY_SOURCES, order="shuffled")
    assert part_hashes(again) == part_hashes(tiny_staging)


def test_other_seed_changes_content(tiny_staging: Path, tmp_path: Path):
    other = stage_release(tmp_path / "other", "tiny", ["phantom:?patients=4&size=64"], seed=4)
    assert set(part_hashes(other)).isdisjoint(part_hashes(tiny_staging))
