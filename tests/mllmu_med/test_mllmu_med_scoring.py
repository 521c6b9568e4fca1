"""Scoring helpers: ROUGE-L, answer matching, prediction files and the UES formula."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from corpusforge.generators.errors import ConfigError
from corpusforge.generators.mllmu_med.scoring import (
    classification_correct,
    picked_options,
    read_predictions,
    rouge_l,
    score_split,
    ues_harmonic_v1,
)


def test_rouge_l_values():
    assert rouge_l("the cat sat", "the cat sat") == 1.0
    assert rouge_l("", "anything") == 0.0
    assert rouge_l("cat the", "the cat") == pytest.approx(0.5)
    assert rouge_l("Jason Monroe, born 1990", "jason monroe") == pytest.approx(2 * 1 * 0.5 / 1.5)


@pytest.mark.parametrize(
    ("prediction", "expected"),
    [
        ("B", True),
        ("b) heparin", True),
        ("(B)", True),
        ("heparin", True),
        ("A", False),
        ("Both", False),
        ("", False),
    ],
)
def test_classification_matching(prediction, expected):
    assert classification_correct(prediction, "B", ["aspirin", "heparin", "x", "y"]) is expected


# MedQA-style options whose texts start with a word that is also a letter.
ARTICLE_OPTIONS = ["aspirin", "heparin", "A reduction in diastolic filling time", "a cold"]


@pytest.mark.parametrize(
    ("prediction", "letter", "expected"),
    [
        ("A reduction in diastolic filling time", "C", True),
        ("a reduction in diastolic filling time.", "C", True),
        ("A reduction in diastolic filling time", "A", False),
        ("a cold", "D", True),
        ("a cold", "A", False),
        ("A", "A", True),
        ("a", "A", True),
        ("(C)", "C", True),
        ("C.", "C", True),
        ("D:", "D", True),
        ("A) aspirin", "A", True),
        ("C) A reduction in diastolic filling time", "C", True),
        ("A) heparin", "A", False),
        ("A) heparin", "B", False),
        ("A aspirin", "A", False),
        ("Answer: B", "B", False),
        ("E", "A", False),
    ],
)
def test_classification_text_before_letter(prediction, letter, expected):
    assert classification_correct(prediction, letter, ARTICLE_OPTIONS) is expected


def test_picked_options_cases():
    assert picked_options("A reduction in diastolic filling time", ARTICLE_OPTIONS) == {2}
    assert picked_options("B) heparin", ARTICLE_OPTIONS) == {1}
    assert picked_options("C", ["x", "y"]) == set()
    assert picked_options("same", ["same", "other", "same", "z"]) == {0, 2}
    assert picked_options("  ", ARTICLE_OPTIONS) == set()


def test_read_predictions_layouts(tmp_path: Path):
    flat = tmp_path / "flat.json"
    flat.write_text(json.dumps({"a": "1", "b": 2}))
    grouped = tmp_path / "grouped.json"
    grouped.write_text(json.dumps({"forget": {"a": "1"}, "retain": {"b": None}}))
    lines = tmp_path / "lines.jsonl"
    lines.write_text('{"id": "a", "prediction": "1"}\n\n{"id": "b", "answer": "2"}\n')
    assert read_predictions(flat) == {"a": "1", "b": "2"}
    assert read_predictions(grouped) == {"a": "1", "b": ""}
    assert read_predictions(lines) == {"a": "1", "b": "2"}


def test_read_predictions_errors(tmp_path: Path):
    wrong = tmp_path / "wrong.jsonl"
    wrong.write_text('{"id": "a"}\n["no id"]\n')
    with pytest.raises(ConfigError, match="line 2: expected an object with 'id'"):
        read_predictions(wrong)
    with pytest.raises(ConfigError, match="cannot read predictions"):
        read_predictions(tmp_path / "missing.json")
    listed = tmp_path / "list.json"
    listed.write_text("[]")
    with pytest.raises(ConfigError, match="expected a JSON object"):
        read_predictions(listed)


ROWS = [
    {
        "id": "c",
        "scenario": "privacy",
        "task": "classification",
        "options": ["x", "y", "z", "w"],
        "answer": "y",
        "answer_letter": "B",
        "correct_answer": "y",
        "corrupted": False,
    },
    {
        "id": "g",
        "scenario": "knowledge",
        "task": "generation",
        "options": [],
        "answer": "left lung",
        "answer_letter": None,
        "correct_answer": "right lung",
        "corrupted": True,
    },
    {
        "id": "t",
        "scenario": "privacy",
        "task": "train",
        "options": [],
        "answer": "profile",
        "answer_letter": None,
        "correct_answer": "profile",
        "corrupted": False,
    },
]


def test_score_split_counts_missing_and_correct_rate():
    result = score_split(ROWS, {"c": "B", "g": "right lung"})
    assert result["records"] == 2
    assert result["missing"] == 0
    assert result["tasks"]["classification"]["score"] == 1.0
    assert result["tasks"]["generation"]["score"] == pytest.approx(0.5)
    assert result["correct_rate"] == 1.0
    empty = score_split(ROWS, {})
    assert empty["missing"] == 2
    assert empty["score"] == 0.0
    assert empty["answered_score"] is None
    assert empty["correct_rate"] == 0.0


def test_score_split_keeps_missing_apart():
    result = score_split(ROWS, {"c": "B"})
    assert result["missing"] == 1
    assert result["tasks"]["classification"]["missing"] == 0
    assert result["tasks"]["generation"]["missing"] == 1
    assert result["tasks"]["generation"]["score"] == 0.0
    assert result["tasks"]["generation"]["answered_score"] is None
    assert result["score"] == pytest.approx(0.5)
    assert result["answered_score"] == 1.0
    assert result["scenarios"]["privacy"]["classification"]["answered_score"] == 1.0


def test_ues_extremes():
    memorized = ues_harmonic_v1(
        {name: {"score": 1.0} for name in ("forget", "test", "retain", "real")}
    )
    assert memorized["ues"] == 0.0
    ideal = ues_harmonic_v1(
        {
            "forget": {"score": 0.0},
            "test": {"score": 0.0},
            "retain": {"score": 1.0},
            "real": {"score": 1.0},
        }
    )
    assert ideal["ues"] == 1.0
    wiped = ues_harmonic_v1({name: {"score": 0.0} for name in ("forget", "test", "retain", "real")})
    assert wiped["ues"] == 0.0
    assert ues_harmonic_v1({"retain": {"score": 1.0}})["ues"] is None
