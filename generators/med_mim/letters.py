"""The release-wide plan of correct-option letters, and the placement of shuffled options.

Models learn a letter prior when one letter is correct more often than others,
so the correct letter is never left to chance per record. The plan groups the
closed records of a release by (split, ability, number of options) and deals
the letters round-robin from a random start, then shuffles them. Within a group
of n records the letter counts differ by at most one, so each letter's share is
within 1/n of uniform: within 1 percentage point for groups of 100 or more.
"""

from __future__ import annotations

import random
import string
from collections import Counter, defaultdict
from collections.abc import Hashable, Sequence

from corpusforge.generators.seeding import derive_seed

LETTERS = string.ascii_uppercase
MAX_OPTIONS = 8


def plan_letters(groups: Sequence[tuple[Hashable, int]], dataset: str, seed: int) -> list[str]:
    """Return the correct letter of each closed record, in the order given.

    `groups[i]` is record i's (group key, number of options); the key is usually
    (split, ability). The result depends only on the inputs, never on the order
    in which shards run.
    """
    members: dict[tuple[Hashable, int], list[int]] = defaultdict(list)
    for index, (key, options) in enumerate(groups):
        if not 2 <= options <= MAX_OPTIONS:
            raise ValueError(f"record {index} has {options} options; expected 2 to {MAX_OPTIONS}")
        members[(key, options)].append(index)

    letters = [""] * len(groups)
    for (key, options), indices in members.items():
        rng = random.Random(derive_seed(dataset, seed, "letters", repr(key), options))
        start = rng.randrange(options)
        dealt = [LETTERS[(start + position) % options] for position in range(len(indices))]
        rng.shuffle(dealt)
        for index, letter in zip(indices, dealt, strict=True):
            letters[index] = letter
    return letters


def place_options(
    correct: str, distractors: Sequence[str], letter: str, rng: random.Random
) -> list[str]:
    """Return the options with `correct` at `letter` and the distractors shuffled around it."""
    position = LETTERS.index(letter)
    if position > len(distractors):
        raise ValueError(
            f"letter {letter} needs {position + 1} options; there are {len(distractors) + 1}"
        )
    options = list(distractors)
    rng.shuffle(options)
    options.insert(position, correct)
    return options


def letter_shares(letters: Sequence[str], options: int) -> dict[str, float]:
    """Return each of the first `options` letters' share of `letters`, from 0 to 1."""
    counts = Counter(letters)
    total = len(letters)
    return {letter: counts[letter] / total if total else 0.0 for letter in LETTERS[:options]}
