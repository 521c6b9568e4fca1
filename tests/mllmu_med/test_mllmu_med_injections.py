"""Answer kinds and plausible wrong answers of the same kind."""

from __future__ import annotations

import random

import pytest

from corpusforge.generators.mllmu_med.injections import (
    CATEGORIES,
    answer_kind,
    normalize,
    swap_sides,
    wrong_answers,
)


@pytest.mark.parametrize(
    ("answer", "question_type", "kind"),
    [
        ("Yes", "PRES", "yes_no"),
        (" no. ", "", "yes_no"),
        ("12", "COUNT", "count"),
        ("3.4 cm", "SIZE", "size"),
        ("5mm", "SIZE", "size"),
        ("ct", "MODALITY", "modality"),
        ("X-ray", "", "modality"),
        ("axial", "PLANE", "plane"),
        ("PA", "PLANE", "projection"),
        ("liver", "ORGAN", "organ"),
        ("liver", "POS", "open"),
        ("right sided pleural effusion", "POS", "open"),
        ("", "", "open"),
    ],
)
def test_answer_kind(answer, question_type, kind):
    assert answer_kind(answer, question_type) == kind


def _wrong(answer, kind, **kwargs):
    return wrong_answers(answer, kind, random.Random(3), **kwargs)


def test_yes_no_swaps_first():
    assert _wrong("Yes", "yes_no")[0] == "no"
    assert _wrong("no", "yes_no")[0] == "yes"
    assert len(_wrong("no", "yes_no")) == 3


def test_side_prefers_opposite():
    assert _wrong("left", "side")[0] == "right"
    assert sorted(_wrong("both", "side")) == ["left", "none", "right"]


def test_categories_stay_in_vocabulary():
    for kind, values in CATEGORIES.items():
        for value in values:
            wrong = _wrong(value, kind)
            assert len(wrong) == 3, (kind, value)
            assert all(item in values and item != value for item in wrong)


def test_counts_are_shifted_and_non_negative():
    for answer in ("0", "1", "12", "999999999999"):
        wrong = _wrong(answer, "count")
        assert len(set(wrong)) == 3
        assert all(int(item) >= 0 and item != answer for item in wrong)


def test_sizes_keep_unit_and_precision():
    wrong = _wrong("3.4 cm", "size")
    assert len(wrong) == 3
    assert all(item.endswith(" cm") and item != "3.4 cm" for item in wrong)
    assert all(len(item.split()[0].split(".")[1]) == 1 for item in wrong)
    assert all(item.endswith("mm") and " " not in item for item in _wrong("5mm", "size"))


def test_choice_uses_other_options():
    options = ["aspirin", "heparin", "warfarin", "alteplase"]
    wrong = _wrong("heparin", "choice", options=options)
    assert sorted(wrong) == ["alteplase", "aspirin", "warfarin"]


def test_fact_keeps_first_alternative_first():
    wrong = _wrong("pancreas", "fact", alternatives=["liver", "spleen", "gallbladder"])
    assert wrong[0] == "liver"


def test_open_swaps_sides_then_uses_pool():
    pool = ["right sided pleural effusion", "pneumothorax", "cardiomegaly", "Pneumothorax."]
    wrong = _wrong("right sided pleural effusion", "open", pool=pool)
    assert wrong[0] == "left sided pleural effusion"
    assert len({normalize(item) for item in wrong}) == 3
    assert normalize("right sided pleural effusion") not in {normalize(item) for item in wrong}


def test_open_without_pool_gives_fewer():
    assert _wrong("gastric bubble", "open", pool=["gastric bubble"]) == []


def test_swap_sides_keeps_case_and_words():
    assert swap_sides("Left lobe, RIGHT side; leftover") == "Right lobe, LEFT side; leftover"


def test_unicode_answers_compare_normalized():
    wrong = _wrong("œdème", "open", pool=["Œdème", "épanchement", "ganglion", "kyste"])
    assert "Œdème" not in wrong or normalize("Œdème") != normalize("œdème")
    assert len(wrong) == 3


def test_fact_table_is_well_formed():
    from corpusforge.generators.mllmu_med.facts import FACTS

    assert len({fact.fact_id for fact in FACTS}) == len(FACTS)
    for fact in FACTS:
        assert fact.cloze.count("____") == 1, fact.fact_id
        wrong = {normalize(item) for item in fact.wrong}
        assert len(wrong) >= 3, fact.fact_id
        assert normalize(fact.answer) not in wrong, fact.fact_id
