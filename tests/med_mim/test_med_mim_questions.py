"""Question templates: answers follow from the facts, and closed questions have one right option."""

from __future__ import annotations

import random

import pytest
from med_mim_helpers import nih_image, phantom_image

from corpusforge.generators.errors import ConfigError
from corpusforge.generators.med_mim import comparison, coreference, findings, reasoning, temporal
from corpusforge.generators.med_mim.composer import TemplateComposer, get_composer
from corpusforge.generators.med_mim.conversation import build_conversation, user_content
from corpusforge.generators.med_mim.drafts import Draft, verify_draft
from corpusforge.generators.med_mim.facts import NIH_FINDINGS, QAPair, finding_name

SEEDS = range(25)


def _series(*finding_sets: tuple[str, ...]):
    return [nih_image(position, labels) for position, labels in enumerate(finding_sets)]


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        (("Effusion",), ("Effusion",), "stable"),
        ((), (), "stable"),
        (("Effusion", "Mass"), ("Mass",), "improving"),
        (("Mass",), ("Effusion", "Mass"), "worsening"),
        (("Mass",), ("Effusion",), "mixed"),
    ],
)
def test_trend_from_labels(before, after, expected):
    verdict, reasons = findings.trend(nih_image(0, before), nih_image(1, after))
    assert verdict == expected
    assert bool(reasons) == (expected != "stable")


def test_phantom_trend_uses_count_and_size_tolerance():
    left = (findings.LEFT_LESION,)
    first = phantom_image(0, left, 1, 10.0)
    assert findings.trend(first, phantom_image(1, left, 1, 11.9))[0] == "stable"
    assert findings.trend(first, phantom_image(1, left, 1, 12.5))[0] == "worsening"
    assert findings.trend(first, phantom_image(1, left, 1, 7.5))[0] == "improving"
    assert findings.trend(first, phantom_image(1, left, 2, 6.0))[0] == "mixed"
    assert findings.trend(first, phantom_image(1, (), 0, 0.0))[0] == "improving"


def test_phantom_findings_hide_side_on_sagittal():
    assert findings.phantom_findings("both", "axial") == findings.PHANTOM_FINDINGS
    assert findings.phantom_findings("left", "sagittal") == ("lesion",)
    assert findings.phantom_findings("none", "frontal") == ()


def _options(draft: Draft) -> list[str]:
    return [draft.correct, *draft.distractors]


def test_new_finding_has_one_correct_option():
    images = _series(("Mass",), ("Mass", "Nodule"), ("Mass", "Effusion", "Nodule"))
    new = {finding_name(label) for label in ("Effusion", "Nodule")}
    for seed in SEEDS:
        draft = temporal.TASKS["new_finding"](images, random.Random(seed), True)
        options = _options(draft)
        assert draft.correct in new
        assert len(set(options)) == len(options) == 4
        assert not set(draft.distractors) & new
        assert "follow-up visits 0, 2 and 4 (ages 60, 61 and 62)" in draft.question


def test_new_finding_needs_a_change():
    images = _series(("Mass",), ("Mass",))
    assert temporal.TASKS["new_finding"](images, random.Random(0), True) is None
    assert temporal.TASKS["resolved_finding"](images, random.Random(0), False) is None


def test_open_resolved_finding_lists_all():
    images = _series(("Mass", "Nodule", "Edema"), ("Edema",))
    draft = temporal.TASKS["resolved_finding"](images, random.Random(0), False)
    assert not draft.closed
    assert (
        draft.answer == "Mass and nodule are present in the first image but no longer in the last."
    )


def test_first_appearance_position():
    images = _series((), ("Mass",), ("Mass", "Effusion"), ())
    for seed in SEEDS:
        draft = temporal.first_appearance(images, random.Random(seed), True)
        expected = "the second image" if "mass" in draft.question else "the third image"
        assert draft.correct == expected
        assert len(_options(draft)) == 4


def test_intervals_follow_metadata():
    images = _series(("Mass",), ("Mass",), ("Mass",))
    steps = temporal.interval_follow_up(images, random.Random(1), True)
    assert steps.correct == "4"
    assert all(int(option) >= 1 for option in steps.distractors)
    age = temporal.interval_age(images, random.Random(1), False)
    assert age.answer.startswith("2 years")
    no_age = [nih_image(0, (), age=None), nih_image(1, ())]
    assert temporal.interval_age(no_age, random.Random(1), True) is None


def test_change_first_last_options_are_the_four_trends():
    images = _series(("Mass",), ("Effusion",))
    draft = temporal.change_first_last(images, random.Random(3), True)
    assert draft.correct == findings.TREND_OPTIONS["mixed"]
    assert sorted(_options(draft)) == sorted(findings.TREND_OPTIONS.values())


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [
        (("Mass",), ("Mass",), "both images"),
        (("Mass",), (), "only the first image"),
        ((), ("Mass",), "only the second image"),
    ],
)
def test_which_shows(first, second, expected):
    images = _series(first, second)
    draft = comparison.which_shows(images, random.Random(0), True)
    assert draft.correct == expected
    assert draft.referenced == [1, 2]


def test_which_shows_can_ask_about_an_absent_finding():
    images = _series(("Mass",), ("Mass",))
    answers = {comparison.which_shows(images, random.Random(s), True).correct for s in range(60)}
    assert answers == {"both images", "neither image"}


def test_same_region_for_composed_pairs():
    head = nih_image(0, (), patient="a", region="head")
    chest = nih_image(1, (), patient="b", region="chest")
    draft = comparison.TASKS["same_region"]([head, chest], random.Random(0), False)
    assert draft.answer == "No: the first image shows head and the second shows chest."
    assert comparison.trend([head, chest], random.Random(0), True) is None


def test_most_frequent_finding_skips_ties():
    tie = _series(("Mass",), ("Nodule",))
    assert reasoning.most_frequent_finding(tie, random.Random(0), True) is None
    clear = _series(("Mass",), ("Mass", "Nodule"), ("Edema",))
    draft = reasoning.most_frequent_finding(clear, random.Random(0), True)
    assert draft.correct == "mass"


def test_count_with_findings_options_cover_zero_to_n():
    images = _series((), ("Mass",), ("Edema",))
    draft = reasoning.count_with_findings(images, random.Random(0), True)
    assert draft.correct == "2"
    assert sorted(_options(draft)) == ["0", "1", "2", "3"]


def test_largest_lesion_distractors_are_far_enough():
    images = [phantom_image(0, ("left-sided lesion",), 1, 9.6), phantom_image(1, (), 0, 0.0)]
    draft = reasoning.largest_lesion(images, random.Random(0), True)
    assert draft.correct == "10 mm"
    values = [int(option.split()[0]) for option in draft.distractors]
    assert all(abs(value - 10) >= reasoning.SIZE_OPTION_STEP_MM for value in values)
    assert all(value > 0 for value in values)


def test_lesion_sides_over_all_images():
    images = [
        phantom_image(0, (findings.LEFT_LESION,), 1, 8.0),
        phantom_image(1, (findings.RIGHT_LESION,), 1, 8.0),
    ]
    assert reasoning.lesion_sides(images, random.Random(0), True).correct == "both sides"
    sagittal = [phantom_image(0, ("lesion",), 1, 8.0, plane="sagittal")] * 2
    assert reasoning.lesion_sides(sagittal, random.Random(0), True) is None


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("Is there pneumothorax?", "In the second image, is there pneumothorax?"),
        ("MRI  shows what", "In the second image, MRI shows what?"),
        ("What organ is shown.", "In the second image, what organ is shown?"),
        ("Où est la lésion ?", "In the second image, où est la lésion ?"),
    ],
)
def test_position_question(question: str, expected: str):
    assert coreference.position_question(question, 2) == expected


def test_answer_families():
    assert coreference.answer_family(" yes ") == ("Yes", ("Yes", "No"))
    assert coreference.answer_family("PA") == ("PA", ("PA", "AP"))
    assert coreference.answer_family("Right upper lobe") is None


def test_qa_at_position_closed_and_open():
    pair = QAPair("7", "Is the heart enlarged?", "no", "closed", "SIZE")
    open_pair = QAPair("8", "Which rib is fractured?", "3rd rib", "open", "POS")
    images = [
        nih_image(0, (), patient="a"),
        nih_image(1, (), patient="b", qa=(pair, open_pair)),
    ]
    for seed in SEEDS:
        closed = coreference.qa_at_position(images, random.Random(seed), True)
        assert closed.question == "In the second image, is the heart enlarged?"
        assert (closed.correct, closed.distractors) == ("No", ["Yes"])
        assert closed.referenced == [2]
        assert closed.metadata["source_qid"] == "7"
    answers = {coreference.qa_at_position(images, random.Random(s), False).answer for s in SEEDS}
    assert answers == {"No.", "3rd rib."}


def test_findings_at_position_prefers_other_images_findings():
    images = _series(("Mass",), ("Effusion", "Nodule"))
    for seed in SEEDS:
        draft = coreference.findings_at_position(images, random.Random(seed), True)
        target = images[draft.referenced[0] - 1]
        present = {finding_name(label) for label in target.findings}
        assert draft.correct in present
        assert not set(draft.distractors) & present


def test_which_image_needs_a_unique_value():
    views = [nih_image(0, (), view="PA"), nih_image(1, (), view="AP"), nih_image(2, (), view="PA")]
    draft = coreference.TASKS["which_image_view"](views, random.Random(0), True)
    assert draft.question == "Which image is the AP view?"
    assert draft.correct == "the second image"
    same = [nih_image(0, (), view="PA"), nih_image(1, (), view="PA")]
    assert coreference.TASKS["which_image_view"](same, random.Random(0), True) is None
    assert coreference.TASKS["view_at_position"](same, random.Random(0), True) is None


def test_which_image_is_the_axial_ct():
    images = [
        phantom_image(0, (), 0, 0.0, modality="CT", plane="axial"),
        phantom_image(1, (), 0, 0.0, modality="MRI", plane="axial"),
        phantom_image(2, (), 0, 0.0, modality="CT", plane="coronal"),
    ]
    draft = coreference.TASKS["which_image_study"](images, random.Random(2), False)
    studies = {
        "Which image is the axial CT?": "The first image is the axial CT.",
        "Which image is the axial MRI?": "The second image is the axial MRI.",
        "Which image is the coronal CT?": "The third image is the coronal CT.",
    }
    assert studies[draft.question] == draft.answer


def test_attribute_descriptions_use_the_right_article():
    assert coreference.article("MRI") == "an"
    assert coreference.article("X-ray") == "an"
    assert coreference.article("CT") == "a"
    assert coreference.article("axial") == "an"


@pytest.mark.parametrize(
    ("draft", "problem"),
    [
        (Draft("temporal", "t", " ", True, "a", ["b"]), "empty question"),
        (Draft("temporal", "t", "q?", True, "a", ["a"]), "options repeat"),
        (Draft("temporal", "t", "q?", True, "a", []), "1 options"),
        (Draft("temporal", "t", "q?", False, answer=""), "empty reference answer"),
        (Draft("coreference", "t", "q?", False, answer="x", referenced=[3]), "outside 1..2"),
    ],
)
def test_verify_draft_rejects(draft: Draft, problem: str):
    assert problem in verify_draft(draft, 2)


def test_template_composer_covers_every_ability():
    images = _series(("Mass",), ("Mass", "Effusion"), ("Effusion",))
    composer = TemplateComposer()
    for ability in ("temporal", "reasoning", "coreference"):
        draft = composer.compose(ability, images, random.Random(0), True)
        assert draft is not None and draft.ability == ability
        assert verify_draft(draft, len(images)) is None
    pair = composer.compose("comparison", images[:2], random.Random(0), False)
    assert pair.ability == "comparison"


def test_unknown_composer_lists_available():
    with pytest.raises(ConfigError, match="available: template"):
        get_composer("gpt")


def test_user_turn_layout():
    content = user_content("Which image shows the lüng?", ["the first image", "the second"], 2)
    assert content == (
        "<image><image>Which image shows the lüng?\nOptions:\nA: the first image\n"
        "B: the second\nAnswer with the letter and the text of the correct option."
    )
    turns = build_conversation("Open?", [], "Reference.", 3)
    assert turns == [
        {"role": "user", "content": "<image><image><image>Open?"},
        {"role": "assistant", "content": "Reference."},
    ]


def test_universe_of_nih_and_phantom_findings():
    assert findings.finding_universe(nih_image(0, ())) == NIH_FINDINGS
    phantom = phantom_image(0, (), 0, 0.0)
    assert findings.finding_universe(phantom) == findings.PHANTOM_FINDINGS
