"""MLLMU-Med's model text backend and Med-MIM's model composer against the mock server."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from llm_helpers import (
    FAST_SETTINGS,
    QuestionWriter,
    TextWriter,
    build_release,
    read_quarantine,
    read_rows,
    stage_release,
)

from corpusforge.generators.llm.med_mim_composer import Item, ModelComposer, referenced_positions
from corpusforge.generators.llm.settings import LLMSettings
from corpusforge.generators.med_mim.facts import ImageFacts
from corpusforge.generators.pipeline import BuildParams, RunInfo, generate_shard, load_plan
from corpusforge.generators.pipeline import plan_release as plan

pytest_plugins = ["llm_fixtures"]

MLLMU_SOURCES = ["phantom:?patients=6&visits=1&questions=1&size=64"]
MLLMU_OPTIONS = {"text_backend": "model"}
MED_MIM_SOURCES = ["phantom_series:?patients=6&visits=2-3&size=64"]
MED_MIM_OPTIONS = {"composer": "model", "records": 16, "heldin_records": 4, "heldout_records": 0}


def manifest_of(folder) -> dict:
    return json.loads((Path(folder) / "manifest.json").read_text())


def test_mllmu_texts_from_replies(model_env, tmp_path):
    writer = TextWriter()
    model_env.chat_responder = writer

    published = build_release(tmp_path, MLLMU_SOURCES, dataset="mllmu_med", options=MLLMU_OPTIONS)

    rows = read_rows(published.path, "records")
    tests = [row for row in rows if row["variant"] == "test"]
    profiles = [row for row in rows if row["field"] == "profile"]
    assert tests
    assert profiles
    assert [row["id"] for row in tests if row["question"] not in writer.written] == []
    assert [row["id"] for row in profiles if row["answer"] not in writer.written] == []
    untouched = [row for row in rows if row["variant"] != "test" and row["field"] != "profile"]
    assert not [row for row in untouched if row["question"] in writer.written]

    manifest = manifest_of(published.path)
    assert manifest["quarantine"]["total"] == 0
    assert manifest["llm"]["requests"] == len(model_env.model_requests())
    body = model_env.model_requests()[0]
    assert body["response_format"]["json_schema"]["strict"] is True
    assert body["model"] == FAST_SETTINGS["model"]


def test_mllmu_faults_quarantine(model_env, tmp_path):
    writer = TextWriter()
    writer.faults["phone number is on file for"] = "drop_value"
    model_env.chat_responder = writer
    model_env.rules = {
        "was born on ____": "refusal",
        "email address is on file for": "truncated",
        "home address of": "invalid_json",
    }

    staging = stage_release(tmp_path, MLLMU_SOURCES, dataset="mllmu_med", options=MLLMU_OPTIONS)

    fields: dict[str, set[str]] = {}
    for entry in read_quarantine(staging):
        fields.setdefault(entry["reason"], set()).add(entry["record"]["field"])
    assert fields == {
        "llm_refusal": {"date_of_birth"},
        "llm_truncated": {"email"},
        "llm_invalid_json": {"address"},
        "llm_fact_dropped": {"phone"},
    }

    from corpusforge.data_contracts import validate_staging
    from corpusforge.generators.publish import publish_release

    # The ledger must not list the quarantined records, or the contract fails.
    validate_staging(staging)
    published = publish_release(staging)
    quarantined = {entry["source_id"] for entry in read_quarantine(published.path)}
    rows = read_rows(published.path, "records")
    assert not quarantined & {row["id"] for row in rows}
    ledger_ids = {
        record_id
        for row in read_rows(published.path, "ledger")
        for record_id in row["record_ids"] + row["test_record_ids"]
    }
    assert not quarantined & ledger_ids
    assert not [row for row in rows if "\x00" in row["question"] + row["answer"]]


def test_med_mim_questions_from_replies(model_env, tmp_path):
    writer = QuestionWriter()
    model_env.chat_responder = writer

    published = build_release(tmp_path, MED_MIM_SOURCES, dataset="med_mim", options=MED_MIM_OPTIONS)

    rows = read_rows(published.path, "qa")
    assert len(rows) == 20
    for row in rows:
        template = json.loads(row["metadata"])["template_question"]
        assert row["question"] == QuestionWriter.PREFIX + template
        assert row["generator"] == "model:mock-model"
        assert row["question"] in row["conversation"][0]["content"]
    paths = Counter(body["messages"][-1]["content"][:20] for body in model_env.model_requests())
    assert sum(paths.values()) == 2 * len(rows)
    manifest = manifest_of(published.path)
    assert manifest["quarantine"]["total"] == 0
    assert manifest["llm"]["requests"] == 2 * len(rows)


def test_med_mim_faults_quarantine(model_env, tmp_path):
    writer = QuestionWriter()
    model_env.chat_responder = writer
    staging = plan(
        BuildParams(
            dataset="med_mim",
            release="r1",
            output_root=str(tmp_path),
            sources=MED_MIM_SOURCES,
            options=MED_MIM_OPTIONS,
            llm=FAST_SETTINGS,
        ),
        RunInfo(run_id="llm-test", started_at="2026-01-01T00:00:00+00:00"),
    )
    shards = load_plan(staging, with_units=True)["shards"]
    items = [unit for shard in shards for unit in shard["units"] if unit["type"] == "item"]
    questions = [item["question"] for item in items]
    # A question is a usable target when no other question contains it.
    unique = [
        item for item in items if sum(item["question"] in question for question in questions) == 1
    ]
    positional = [item for item in unique if referenced_positions(item["question"])]
    others = [item for item in unique if item not in positional[:1]]
    assert positional, "the plan has no question that names an image position"
    assert len(others) >= 5, "the plan has too few distinct questions"

    expected = {positional[0]["id"]: "llm_position_mismatch"}
    writer.faults[positional[0]["question"]] = "wrong_position"
    for item, fault, reason in zip(
        others,
        ("refusal", "truncated", "invalid_json", "drop_answer", "wrong_verdict"),
        (
            "llm_refusal",
            "llm_truncated",
            "llm_invalid_json",
            "llm_options_changed",
            "llm_verifier_rejected",
        ),
        strict=False,
    ):
        expected[item["id"]] = reason
        if fault in ("drop_answer", "wrong_verdict"):
            writer.faults[item["question"]] = fault
        else:
            model_env.rules[item["question"]] = fault

    for index in range(len(shards)):
        generate_shard(staging, index)

    entries = read_quarantine(staging)
    assert {entry["source_id"]: entry["reason"] for entry in entries} == expected
    rejected = next(entry for entry in entries if entry["reason"] == "llm_position_mismatch")
    assert rejected["record"]["question"] == positional[0]["question"]


def test_med_mim_duplicate_question_rejected(model_env, tmp_path):
    writer = QuestionWriter()
    model_env.chat_responder = writer
    staging = plan(
        BuildParams(
            dataset="med_mim",
            release="r1",
            output_root=str(tmp_path),
            sources=MED_MIM_SOURCES,
            options=MED_MIM_OPTIONS,
            llm=FAST_SETTINGS,
        ),
        RunInfo(run_id="llm-test", started_at="2026-01-01T00:00:00+00:00"),
    )
    [shard, *_] = load_plan(staging, with_units=True)["shards"]
    item = next(unit for unit in shard["units"] if unit["type"] == "item")
    twin = {**item, "id": "twin", "question": item["question"] + " Answer briefly."}
    writer.faults[item["question"]] = "same_question"
    writer.faults[twin["question"]] = "same_question"
    facts = {
        key: ImageFacts.from_json(value)
        for unit in shard["units"]
        if unit["type"] == "facts"
        for key, value in unit["images"].items()
    }
    images = [facts[key] for key in item["keys"]]
    composer = ModelComposer(LLMSettings.from_json(FAST_SETTINGS))

    first, second = composer.revise([Item(item, images), Item(twin, images)])

    assert first["question"] == writer.same_question
    assert second.reason == "llm_duplicate_question"


def test_mllmu_without_test_texts_blocked(model_env, tmp_path):
    # Every reply is invalid JSON, so every test-split paraphrase is quarantined.
    model_env.chat_responder = TextWriter()
    model_env.rules = {'"messages"': "invalid_json"}

    staging = stage_release(tmp_path, MLLMU_SOURCES, dataset="mllmu_med", options=MLLMU_OPTIONS)

    from corpusforge.data_contracts import validate_staging
    from corpusforge.generators.errors import ValidationFailed

    reasons = {entry["reason"] for entry in read_quarantine(staging)}
    assert reasons == {"llm_invalid_json"}
    try:
        validate_staging(staging)
    except ValidationFailed as error:
        message = str(error)
    else:
        raise AssertionError("a release without test records passed its contract")
    assert "split band_00_05 has records but split test_00_05 has none" in message
    summary = json.loads((staging / "validation" / "summary.json").read_text())
    assert summary["rules"]["test_splits_present"]["passed"] is False
