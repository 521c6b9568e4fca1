"""Choose every record of a release at plan time: image sets, questions, splits and letters.

For each split the planner divides the split's record target among the
abilities its images support, by `ability_mix`, and within each (split,
ability) makes `closed_share` of the records closed. Each record draws a case
(a patient series, or a composed pool of single images) in proportion to its
number of images, draws an ordered image set from it and asks the composer for
a question. A question is kept only when its (question, image set) pair is new
in the release. When a split's material cannot give enough distinct questions
the split ends up smaller, and the shortfall is logged.

Closed records then get their correct letter from the release-wide letter plan,
and their options are shuffled around it.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from typing import Any

from corpusforge.generators.errors import ConfigError
from corpusforge.generators.imaging.io import PHASH_DUPLICATE_THRESHOLD, hamming
from corpusforge.generators.med_mim.catalog import Catalog
from corpusforge.generators.med_mim.composer import Composer
from corpusforge.generators.med_mim.facts import ABILITIES
from corpusforge.generators.med_mim.letters import place_options, plan_letters
from corpusforge.generators.med_mim.splits import SPLITS
from corpusforge.generators.seeding import derive_seed, stable_id

log = logging.getLogger(__name__)

# The non-composed part of the released Med-MIM training set: 9K temporal,
# 4.4K reasoning, 3.2K comparison and 12K co-reference records (arXiv 2505.19031).
PAPER_ABILITY_MIX = {"temporal": 9000, "reasoning": 4400, "comparison": 3200, "coreference": 12000}
SERIES_ABILITIES = ABILITIES
POOL_ABILITIES = ("reasoning", "comparison", "coreference")
# Draws of (case, image set, question) per record before the record is given up.
ATTEMPTS_PER_RECORD = 40
# Draws of an image set from a pool before accepting one with near-duplicate images.
POOL_DRAWS = 10
# Largest pool block that composed image sets are drawn from.
POOL_BLOCK = 64


@dataclass(frozen=True)
class MixOptions:
    """The record targets and mix of a build, checked."""

    targets: dict[str, int]
    ability_mix: dict[str, float]
    closed_share: float
    min_images: int
    max_images: int


def parse_ability_mix(value: Any) -> dict[str, float]:
    """Parse `temporal:9000,reasoning:4400,...` (or a dict) into positive weights per ability."""
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, str):
        items = []
        for part in filter(None, (piece.strip() for piece in value.split(","))):
            name, _, weight = part.partition(":")
            items.append((name.strip(), weight.strip()))
    else:
        raise ConfigError(f"invalid ability_mix {value!r}: use 'temporal:9,reasoning:4.4,...'")
    mix: dict[str, float] = {}
    for name, weight in items:
        if name not in ABILITIES:
            raise ConfigError(
                f"unknown ability {name!r} in ability_mix; abilities: {', '.join(ABILITIES)}"
            )
        try:
            mix[name] = float(weight)
        except (TypeError, ValueError) as error:
            raise ConfigError(f"invalid weight {weight!r} for {name} in ability_mix") from error
        if mix[name] < 0:
            raise ConfigError(f"invalid weight {weight!r} for {name}: use 0 or more")
    if not any(mix.values()):
        raise ConfigError(f"ability_mix {value!r} gives no ability a positive weight")
    return mix


def parse_mix_options(options: dict[str, Any]) -> MixOptions:
    """Check the record targets, mix and image counts of the dataset options."""
    targets = {}
    for split, name in (
        ("train", "records"),
        ("heldin", "heldin_records"),
        ("heldout", "heldout_records"),
    ):
        value = options[name]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"invalid {name} {value!r}: use a whole number of 0 or more")
        targets[split] = value
    closed_share = options["closed_share"]
    if isinstance(closed_share, bool) or not isinstance(closed_share, int | float):
        raise ConfigError(f"invalid closed_share {closed_share!r}: use a number from 0 to 1")
    if not 0 <= closed_share <= 1:
        raise ConfigError(f"invalid closed_share {closed_share!r}: use a number from 0 to 1")
    low, high = options["min_images"], options["max_images"]
    if not (isinstance(low, int) and isinstance(high, int) and 2 <= low <= high <= 4):
        raise ConfigError(
            f"invalid min_images {low!r} or max_images {high!r}: use 2 <= min_images <= "
            "max_images <= 4"
        )
    return MixOptions(targets, parse_ability_mix(options["ability_mix"]), closed_share, low, high)


@dataclass
class Case:
    """Images that one question may draw from: a patient series or a pool of single images."""

    kind: str
    source: int
    keys: list[str]

    @property
    def abilities(self) -> tuple[str, ...]:
        return SERIES_ABILITIES if self.kind == "series" else POOL_ABILITIES


@dataclass
class PlannedItem:
    """One record as planned: its question and answer, image keys, split and letter."""

    id: str
    split: str
    ability: str
    task: str
    question: str
    closed: bool
    keys: list[str]
    source: int
    generator: str
    case: int = 0
    correct: str = ""
    distractors: list[str] = field(default_factory=list)
    answer: str = ""
    referenced: list[int] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    options: list[str] = field(default_factory=list)
    letter: str | None = None

    def to_unit(self) -> dict[str, Any]:
        return {
            "type": "item",
            "id": self.id,
            "ability": self.ability,
            "task": self.task,
            "question": self.question,
            "closed": self.closed,
            "keys": self.keys,
            "source": self.source,
            "generator": self.generator,
            "options": self.options,
            "letter": self.letter,
            "answer": self.answer,
            "referenced": self.referenced,
            "metadata": self.metadata,
        }


def cases_by_split(
    catalog: Catalog, split_of: dict[str, str], dataset: str, seed: int
) -> dict[str, list[Case]]:
    """Return the series and pools of every split.

    A pool larger than POOL_BLOCK is cut into random blocks of at most that
    many images, and composed sets are drawn within one block, so that a
    shard's records need few distinct images.
    """
    cases: dict[str, list[Case]] = {split: [] for split in SPLITS}
    for source, keys in catalog.series:
        cases[split_of[keys[0]]].append(Case("series", source, keys))
    for source, keys in sorted(catalog.pools.items()):
        for split in SPLITS:
            members = sorted(key for key in keys if split_of.get(key) == split)
            random.Random(derive_seed(dataset, seed, "pool", source, split)).shuffle(members)
            blocks = -(-len(members) // POOL_BLOCK)
            for block in range(blocks):
                chunk = members[block::blocks]
                if len(chunk) >= 2:
                    cases[split].append(Case("pool", source, chunk))
    return cases


def _counts(total: int, weights: dict[str, float]) -> dict[str, int]:
    """Divide `total` by weight with the largest-remainder method, so the counts sum to it."""
    weight_sum = sum(weights.values())
    if not weight_sum:
        return dict.fromkeys(weights, 0)
    exact = {name: total * weight / weight_sum for name, weight in weights.items()}
    counts = {name: int(value) for name, value in exact.items()}
    order = sorted(weights, key=lambda name: (-(exact[name] - counts[name]), name))
    for name in order[: total - sum(counts.values())]:
        counts[name] += 1
    return counts


class Planner:
    """Draw the records of every split from the catalog's cases."""

    def __init__(
        self,
        catalog: Catalog,
        split_of: dict[str, str],
        mix: MixOptions,
        composer: Composer,
        dataset: str,
        seed: int,
    ) -> None:
        self.catalog = catalog
        self.mix = mix
        self.composer = composer
        self.dataset = dataset
        self.seed = seed
        self.cases = cases_by_split(catalog, split_of, dataset, seed)
        self.seen: set[tuple[str, tuple[str, ...]]] = set()
        self.shortfalls: dict[str, dict[str, int]] = {}

    def plan(self) -> list[PlannedItem]:
        """Return every record, grouped by split and, within a split, by case.

        Records of one case sit together, in random order, so a shard renders
        the images of a few cases instead of most of the split.
        """
        items: list[PlannedItem] = []
        for split in SPLITS:
            split_items = self._plan_split(split)
            rng = random.Random(derive_seed(self.dataset, self.seed, "order", split))
            rng.shuffle(split_items)
            split_items.sort(key=lambda item: item.case)
            items.extend(split_items)
        self._assign_letters(items)
        return items

    def _plan_split(self, split: str) -> list[PlannedItem]:
        cases = self.cases[split]
        feasible = {
            ability: weight
            for ability, weight in self.mix.ability_mix.items()
            if weight > 0 and any(ability in case.abilities for case in cases)
        }
        counts = _counts(self.mix.targets[split], feasible)
        items: list[PlannedItem] = []
        for ability in ABILITIES:
            target = counts.get(ability, 0)
            if not target:
                continue
            rng = random.Random(derive_seed(self.dataset, self.seed, "items", split, ability))
            closed_count = round(target * self.mix.closed_share)
            forms = [True] * closed_count + [False] * (target - closed_count)
            rng.shuffle(forms)
            eligible = [
                (number, case) for number, case in enumerate(cases) if ability in case.abilities
            ]
            weights = [len(case.keys) for _, case in eligible]
            produced = 0
            for closed in forms:
                item = self._draw(split, ability, closed, eligible, weights, rng)
                if item is not None:
                    items.append(item)
                    produced += 1
            if produced < target:
                self.shortfalls.setdefault(split, {})[ability] = target - produced
                log.warning(
                    "%s/%s: made %d of %d records; the split's images give no more distinct "
                    "questions",
                    split,
                    ability,
                    produced,
                    target,
                )
        return items

    def _draw(
        self,
        split: str,
        ability: str,
        closed: bool,
        cases: list[tuple[int, Case]],
        weights: list[int],
        rng: random.Random,
    ) -> PlannedItem | None:
        for _ in range(ATTEMPTS_PER_RECORD):
            number, case = rng.choices(cases, weights=weights, k=1)[0]
            keys = self._image_set(case, ability, rng)
            if keys is None:
                continue
            images = [self.catalog.images[key] for key in keys]
            draft = self.composer.compose(ability, images, rng, closed)
            if draft is None:
                continue
            signature = (draft.question, tuple(keys))
            if signature in self.seen:
                continue
            self.seen.add(signature)
            return PlannedItem(
                id=stable_id(self.dataset, draft.question, *keys),
                split=split,
                ability=ability,
                task=draft.task,
                question=draft.question,
                closed=draft.closed,
                keys=keys,
                source=case.source,
                generator=self.composer.name,
                case=number,
                correct=draft.correct,
                distractors=draft.distractors,
                answer=draft.answer,
                referenced=draft.referenced,
                metadata=draft.metadata,
            )
        return None

    def _image_set(self, case: Case, ability: str, rng: random.Random) -> list[str] | None:
        """Draw an ordered image set: visits in follow-up order, or pool images in random order."""
        high = 2 if ability == "comparison" else min(self.mix.max_images, len(case.keys))
        low = 2 if ability == "comparison" else self.mix.min_images
        if len(case.keys) < low:
            return None
        count = rng.randint(low, max(low, high))
        if case.kind == "series":
            positions = sorted(rng.sample(range(len(case.keys)), count))
            return [case.keys[position] for position in positions]
        for _ in range(POOL_DRAWS):
            keys = rng.sample(case.keys, count)
            if not self._has_near_duplicates(keys):
                return keys
        return None

    def _has_near_duplicates(self, keys: list[str]) -> bool:
        """Return whether two pool images of a set look the same, which would make it ambiguous."""
        hashes = [self.catalog.phashes[key] for key in keys]
        return any(
            hamming(a, b) <= PHASH_DUPLICATE_THRESHOLD
            for index, a in enumerate(hashes)
            for b in hashes[index + 1 :]
        )

    def _assign_letters(self, items: list[PlannedItem]) -> None:
        closed = [item for item in items if item.closed]
        groups = [((item.split, item.ability), 1 + len(item.distractors)) for item in closed]
        letters = plan_letters(groups, self.dataset, self.seed)
        for item, letter in zip(closed, letters, strict=True):
            rng = random.Random(derive_seed(self.dataset, self.seed, "options", item.id))
            item.options = place_options(item.correct, item.distractors, letter, rng)
            item.letter = letter
