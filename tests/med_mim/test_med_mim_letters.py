"""The release-wide letter plan and the placement of options around the correct one."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from corpusforge.generators.med_mim.letters import (
    LETTERS,
    letter_shares,
    place_options,
    plan_letters,
)


@pytest.mark.parametrize("size", [100, 101, 257, 1000])
@pytest.mark.parametrize("options", [2, 3, 4, 5])
def test_letter_shares_within_two_points(size: int, options: int):
    letters = plan_letters([(("train", "temporal"), options)] * size, "med_mim", 3)
    shares = letter_shares(letters, options)
    assert set(letters) <= set(LETTERS[:options])
    for letter, share in shares.items():
        assert abs(share - 1 / options) <= 0.02, (letter, share)
    counts = Counter(letters)
    assert max(counts.values()) - min(counts[letter] for letter in LETTERS[:options]) <= 1


def test_groups_are_balanced_separately():
    groups = [(("train", "temporal"), 4)] * 150 + [(("heldin", "temporal"), 4)] * 150
    groups += [(("train", "temporal"), 2)] * 120
    letters = plan_letters(groups, "med_mim", 9)
    for start, end, options in ((0, 150, 4), (150, 300, 4), (300, 420, 2)):
        shares = letter_shares(letters[start:end], options)
        assert all(abs(share - 1 / options) <= 0.02 for share in shares.values())


def test_plan_is_deterministic_and_seeded():
    groups = [(("train", "coreference"), 3)] * 60
    assert plan_letters(groups, "med_mim", 1) == plan_letters(groups, "med_mim", 1)
    assert plan_letters(groups, "med_mim", 1) != plan_letters(groups, "med_mim", 2)


def test_interleaved_groups_keep_their_letters():
    """A group's letters do not depend on records of other groups around it."""
    alone = plan_letters([(("train", "reasoning"), 3)] * 30, "med_mim", 4)
    mixed_groups = []
    for _ in range(30):
        mixed_groups += [(("train", "reasoning"), 3), (("train", "temporal"), 2)]
    mixed = plan_letters(mixed_groups, "med_mim", 4)
    assert mixed[0::2] == alone


def test_empty_and_single_record():
    assert plan_letters([], "med_mim", 1) == []
    [letter] = plan_letters([(("heldout", "comparison"), 4)], "med_mim", 1)
    assert letter in "ABCD"


@pytest.mark.parametrize("options", [0, 1, 9])
def test_invalid_option_count_raises(options: int):
    with pytest.raises(ValueError, match="options"):
        plan_letters([(("train", "temporal"), options)], "med_mim", 1)


def test_place_options_puts_correct_at_letter():
    rng = random.Random(0)
    for letter, position in (("A", 0), ("C", 2), ("D", 3)):
        options = place_options("effusion", ["mass", "nodule", "edema"], letter, rng)
        assert options[position] == "effusion"
        assert sorted(options) == ["edema", "effusion", "mass", "nodule"]


def test_place_options_rejects_letter_beyond_options():
    with pytest.raises(ValueError, match="needs 3 options"):
        place_options("Yes", ["No"], "C", random.Random(0))
