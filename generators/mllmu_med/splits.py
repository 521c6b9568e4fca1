"""Nested forget sets stored as disjoint bands of patients, and the answer-letter plan.

Patients are shuffled once per release and cut into four bands: the first 5%,
the next 5%, the next 5% and the rest. The forget set at level k% is the union
of the bands below k, and its retain set is the union of the others, so
`forget_05` is inside `forget_10`, which is inside `forget_15`. Records are
stored once per band; each forget config lists the band files of its splits.

Classification records get their correct letter from a plan made for the whole
release: the letters come in blocks of four, each block a seeded permutation of
A-D, and every group of records (a sequence and a modality) walks its own
blocks. The bands of a sequence are consecutive, so each forget or retain split
is one contiguous run of blocks, and every letter's count is within 2 of a
quarter of the split's records. That is within 2 percentage points of 25% for
100 records or more.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from corpusforge.generators.errors import ConfigError
from corpusforge.generators.seeding import derive_seed

LETTERS = ("A", "B", "C", "D")


@dataclass(frozen=True)
class Band:
    """A disjoint slice of patients between two cumulative percentages."""

    code: str
    low: int
    high: int

    @property
    def split(self) -> str:
        """Return the physical split that stores the band's training-format records."""
        return f"band_{self.code}"

    @property
    def test_split(self) -> str:
        """Return the physical split that stores the band's test records."""
        return f"test_{self.code}"


BANDS = (Band("00_05", 0, 5), Band("05_10", 5, 10), Band("10_15", 10, 15), Band("15_100", 15, 100))
FORGET_BANDS = BANDS[:3]
REAL_BAND = "real"
REAL_SPLIT = "real"
# Forget config name -> number of leading bands in its forget split.
FORGET_CONFIGS = {"forget_05": 1, "forget_10": 2, "forget_15": 3}
MIN_UNITS = len(BANDS)


def band_by_code(code: str) -> Band:
    for band in BANDS:
        if band.code == code:
            return band
    raise KeyError(f"unknown band {code!r}; known: {', '.join(b.code for b in BANDS)}")


def forget_configs_of(code: str) -> list[str]:
    """Return the forget configs in whose forget split a band's records are."""
    position = [band.code for band in BANDS].index(code)
    return [name for name, count in FORGET_CONFIGS.items() if position < count]


def band_targets(total: int) -> list[int]:
    """Return the cumulative patient counts at 5%, 10% and 15% of `total`.

    Each band gets at least one patient, and the rest keeps at least one, so a
    release needs at least four patients.
    """
    if total < MIN_UNITS:
        raise ConfigError(
            f"the sources give {total} patients; nested forget sets need at least {MIN_UNITS} "
            "(one per band): add images or phantom patients"
        )
    targets = []
    previous = 0
    for position, band in enumerate(BANDS[:-1]):
        wanted = round(total * band.high / 100)
        # Leave room for one patient in each later band.
        highest = total - (len(BANDS) - 1 - position)
        previous = min(max(wanted, previous + 1), highest)
        targets.append(previous)
    return targets


def assign_bands(unit_sizes: list[int], seed: int, dataset: str) -> list[str]:
    """Assign each unit (a patient, or an institution's patients) to a band code.

    Units are shuffled by seed and taken in order. A band closes once the
    cumulative patient count reaches its target, so with institution units the
    bands only approximate the percentages. Returns one band code per unit, in
    the input order.
    """
    targets = band_targets(sum(unit_sizes))
    if len(unit_sizes) < MIN_UNITS:
        raise ConfigError(
            f"{len(unit_sizes)} institutions cannot fill {MIN_UNITS} bands; "
            "use forget_unit=patient or more institutions"
        )
    order = list(range(len(unit_sizes)))
    random.Random(derive_seed(dataset, seed, "bands")).shuffle(order)
    codes = [""] * len(unit_sizes)
    position = 0
    cumulative = 0
    in_band = 0
    last = len(BANDS) - 1
    for taken, unit in enumerate(order):
        while position < last and in_band > 0 and cumulative >= targets[position]:
            position += 1
            in_band = 0
        # Keep one unit for every later band.
        if position < last and in_band > 0 and len(order) - taken <= last - position:
            position += 1
            in_band = 0
        codes[unit] = BANDS[position].code
        cumulative += unit_sizes[unit]
        in_band += 1
    return codes


class LetterPlan:
    """Hands out correct letters for one group's classification records, from `start` on."""

    def __init__(self, dataset: str, seed: int, group: str, start: int) -> None:
        self.dataset = dataset
        self.seed = seed
        self.group = group
        self.position = start
        self._block_index = -1
        self._block: list[str] = []

    def _block_at(self, index: int) -> list[str]:
        if index != self._block_index:
            letters = list(LETTERS)
            random.Random(
                derive_seed(self.dataset, self.seed, "letters", self.group, index)
            ).shuffle(letters)
            self._block_index = index
            self._block = letters
        return self._block

    def next(self) -> str:
        letter = self._block_at(self.position // len(LETTERS))[self.position % len(LETTERS)]
        self.position += 1
        return letter


def card_configs(shards: list[dict[str, Any]], records: str, extra: list[str]) -> list[dict]:
    """Return the card's configs: one per forget level, then `extra` physical configs.

    Each forget config has the splits forget, retain, test and real, each listing
    the band files that make it up. Splits without files are left out.
    """
    files: dict[tuple[str, str], list[str]] = {}
    for shard in shards:
        files.setdefault((shard["config"], shard["split"]), []).append(shard["path"])

    def paths(splits: list[str]) -> list[str]:
        return [path for split in splits for path in sorted(files.get((records, split), []))]

    configs = []
    for name, count in FORGET_CONFIGS.items():
        splits = {
            "forget": paths([band.split for band in BANDS[:count]]),
            "retain": paths([band.split for band in BANDS[count:]]),
            "test": paths([band.test_split for band in BANDS[:count]]),
            REAL_SPLIT: paths([REAL_SPLIT]),
        }
        data_files = [{"split": split, "path": found} for split, found in splits.items() if found]
        if data_files:
            configs.append({"config_name": name, "data_files": data_files})
    for config in [records, *extra]:
        splits = sorted({split for (name, split) in files if name == config})
        data_files = [{"split": split, "path": sorted(files[(config, split)])} for split in splits]
        if data_files:
            configs.append({"config_name": config, "data_files": data_files})
    return configs
