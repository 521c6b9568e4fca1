"""Med-MIM contract rules catch each kind of broken record."""

from __future__ import annotations

import copy

import numpy as np
import pyarrow as pa
import pytest
from med_mim_helpers import nih_image
from PIL import Image

from corpusforge.data_contracts.release_rules import RELEASE_RULES
from corpusforge.data_contracts.report import RuleResult
from corpusforge.data_contracts.rules import ROW_RULES
from corpusforge.generators.imaging.io import content_hash, encode_png
from corpusforge.generators.med_mim.images import PreparedImage
from corpusforge.generators.med_mim.records import image_row, qa_row
from corpusforge.schemas.med_mim import IMAGES, QA


def _image(seed: int, phash: int) -> PreparedImage:
    pixels = np.random.default_rng(seed).integers(0, 256, (16, 16), dtype=np.uint8)
    png = encode_png(Image.fromarray(pixels, mode="L"))
    return PreparedImage(png=png, sha256=content_hash(png), phash=phash, width=16, height=16)


def _spread(number: int) -> int:
    """Return a 64-bit value far (in bits) from those of other small numbers."""
    return ((number + 1) * 0x9E3779B97F4A7C15) % 2**64


def _row(number: int, patient: str = "p", closed: bool = True, **unit_fields) -> dict:
    images = [
        _image(number * 2, _spread(number * 2)),
        _image(number * 2 + 1, _spread(number * 2 + 1)),
    ]
    facts = [nih_image(0, (), patient=patient), nih_image(1, (), patient=patient)]
    unit = {
        "id": f"{number:016x}",
        "ability": "coreference",
        "task": "view_at_position",
        "question": f"In the second image, which view is used, PA or AP? ({number})",
        "closed": closed,
        "keys": [],
        "source": 0,
        "generator": "template",
        "options": ["AP", "PA"] if closed else [],
        "letter": "B" if closed else None,
        "answer": "" if closed else "The second image is a PA view.",
        "referenced": [2],
        "metadata": {},
        **unit_fields,
    }
    return qa_row(unit, facts, images, "nih_cxr14", "patients.json", embed_images=True)


def _table(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=QA)


def _failing(rule: str, rows: list[dict]) -> list[int]:
    return ROW_RULES["med_mim"][rule].check(_table(rows))


def test_valid_rows_pass_every_row_rule():
    rows = [_row(1), _row(2, closed=False)]
    for name, rule in ROW_RULES["med_mim"].items():
        if "image_id" in rule.columns:
            continue
        assert rule.check(_table(rows)) == [], name


def test_image_token_count_must_match():
    row = _row(1)
    row["conversation"][0]["content"] = row["conversation"][0]["content"].replace("<image>", "", 1)
    assert _failing("image_tokens_match_images", [_row(2), row]) == [1]
    missing = _row(3)
    missing["images"] = missing["images"][:1]
    assert _failing("image_tokens_match_images", [missing]) == [0]
    table_mode = _row(4)
    table_mode["images"] = None
    assert _failing("image_tokens_match_images", [table_mode]) == []


def test_answer_letter_must_match():
    wrong_letter = _row(1)
    wrong_letter["correct_option"] = "C"
    wrong_answer = _row(2)
    wrong_answer["answer"] = "A: AP"
    repeated = _row(3)
    repeated["options"] = ["PA", "PA"]
    open_with_options = _row(4, closed=False)
    open_with_options["options"] = ["x", "y"]
    rows = [_row(0), wrong_letter, wrong_answer, repeated, open_with_options]
    assert _failing("answer_matches_correct_option", rows) == [1, 2, 3, 4]
    example = ROW_RULES["med_mim"]["answer_matches_correct_option"].example(_table(rows), 2)
    assert "does not match" in example


def test_conversation_must_match_record():
    edited = _row(1)
    edited["conversation"][1]["content"] = "something else"
    swapped = _row(2)
    swapped["conversation"] = list(reversed(swapped["conversation"]))
    assert _failing("conversation_layout", [_row(0), edited, swapped]) == [1, 2]


def test_referenced_positions_in_range():
    outside = _row(1, referenced=[3])
    none = _row(2, referenced=[])
    comparison = _row(3, referenced=[], ability="comparison")
    assert _failing("referenced_positions_in_range", [outside, none, comparison]) == [0, 1]


def test_embedded_bytes_must_match_ids():
    tampered = _row(1)
    tampered["images"][0]["bytes"] = tampered["images"][1]["bytes"]
    renamed = _row(2)
    renamed["images"][0]["path"] = "images/other.png"
    assert _failing("embedded_images_match_ids", [_row(0), tampered, renamed]) == [1, 2]


def test_image_stored_twice_fails():
    row = image_row(nih_image(0, ()), _image(5, 1), "nih_cxr14")
    result = RuleResult("image_ids_unique_across_shards", "release")
    check = RELEASE_RULES["med_mim"]["image_ids_unique_across_shards"](result)
    for split in ("train", "heldin"):
        check.add(pa.RecordBatch.from_pylist([row], schema=IMAGES), f"{split}.parquet", split)
    assert not result.passed


def test_image_table_rule():
    good = image_row(nih_image(0, ()), _image(5, 1), "nih_cxr14")
    bad = copy.deepcopy(good)
    bad["image_id"] = "0" * 64
    table = pa.Table.from_pylist([good, bad], schema=IMAGES)
    assert ROW_RULES["med_mim"]["image_bytes_match_id"].check(table) == [1]


def _release_result(rule: str, batches: list[tuple[list[dict], str]]) -> RuleResult:
    result = RuleResult(rule, "release")
    check = RELEASE_RULES["med_mim"][rule](result)
    for rows, split in batches:
        batch = _table(rows).to_batches()[0]
        check.add(batch, f"{split}.parquet", split)
    return result


def test_duplicate_question_image_set_fails():
    first = _row(1)
    copy_row = copy.deepcopy(first)
    copy_row["id"] = "f" * 16
    result = _release_result(
        "question_image_sets_unique", [([first], "train"), ([copy_row], "train")]
    )
    assert not result.passed
    assert _release_result("question_image_sets_unique", [([_row(1), _row(2)], "train")]).passed


def test_patient_in_two_splits_fails():
    result = _release_result(
        "splits_disjoint_by_patient",
        [([_row(1, patient="p")], "train"), ([_row(2, patient="p")], "heldin")],
    )
    assert not result.passed
    fine = _release_result(
        "splits_disjoint_by_patient",
        [([_row(1, patient="p")], "train"), ([_row(2, patient="q")], "heldin")],
    )
    assert fine.passed


def test_image_in_two_splits_fails():
    result = _release_result(
        "splits_disjoint_by_image", [([_row(1)], "train"), ([_row(1)], "heldout")]
    )
    assert not result.passed


def test_phash_near_duplicate_across_splits_fails():
    train = _row(1)
    benchmark = _row(2, patient="other")
    benchmark["image_metadata"][0]["phash"] = (
        f"{int(train['image_metadata'][0]['phash'], 16) ^ 0x3FF:016x}"
    )
    for order in (
        [(train, "train"), (benchmark, "heldin")],
        [(benchmark, "heldout"), (train, "train")],
    ):
        result = _release_result(
            "splits_disjoint_by_phash", [([row], split) for row, split in order]
        )
        assert not result.passed, order
    far = _row(3, patient="other")
    assert _release_result(
        "splits_disjoint_by_phash", [([train], "train"), ([far], "heldin")]
    ).passed
    both_benchmarks = _release_result(
        "splits_disjoint_by_phash", [([train], "heldin"), ([benchmark], "heldout")]
    )
    assert both_benchmarks.passed


@pytest.mark.parametrize("rule", sorted(RELEASE_RULES["med_mim"]))
def test_release_rules_accept_an_empty_batch(rule: str):
    result = RuleResult(rule, "release")
    check = RELEASE_RULES["med_mim"][rule](result)
    schema = IMAGES if "image_id" in check.columns else QA
    check.add(pa.RecordBatch.from_pylist([], schema=schema), "empty.parquet", "train")
    assert result.passed
