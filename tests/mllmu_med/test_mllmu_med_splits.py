"""Bands of patients, nested forget configs and the balanced letter plan."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from corpusforge.generators.errors import ConfigError
from corpusforge.generators.mllmu_med.splits import (
    BANDS,
    LETTERS,
    LetterPlan,
    assign_bands,
    band_targets,
    card_configs,
    forget_configs_of,
)


@pytest.mark.parametrize("total", [4, 5, 19, 37, 120, 1001])
def test_bands_nonempty_and_near_targets(total):
    codes = assign_bands([1] * total, 9, "mllmu_med")
    counts = Counter(codes)
    assert all(counts[band.code] >= 1 for band in BANDS)
    cumulative = 0
    for band, target in zip(BANDS, band_targets(total), strict=False):
        cumulative += counts[band.code]
        assert cumulative == target


def test_too_few_patients_raise():
    with pytest.raises(ConfigError, match="at least 4"):
        assign_bands([1, 1, 1], 1, "mllmu_med")


def test_institution_units_keep_patients_together():
    sizes = [40, 3, 2, 5, 30, 20]
    codes = assign_bands(sizes, 2, "mllmu_med")
    assert set(codes) == {band.code for band in BANDS}


def test_nested_forget_configs():
    assert forget_configs_of("00_05") == ["forget_05", "forget_10", "forget_15"]
    assert forget_configs_of("10_15") == ["forget_15"]
    assert forget_configs_of("15_100") == []


def test_letters_balanced_in_every_contiguous_run():
    plan = LetterPlan("mllmu_med", 1, "bands:image_text", 0)
    letters = [plan.next() for _ in range(2000)]
    rng = random.Random(0)
    for _ in range(300):
        start = rng.randrange(0, 1800)
        length = rng.randrange(100, 2000 - start) if start < 1900 else 100
        counts = Counter(letters[start : start + length])
        for letter in LETTERS:
            assert abs(counts[letter] - length / 4) <= 2, (start, length, counts)


def test_letter_plan_resumes_at_offset():
    full = LetterPlan("mllmu_med", 1, "test:text_only", 0)
    letters = [full.next() for _ in range(50)]
    resumed = LetterPlan("mllmu_med", 1, "test:text_only", 37)
    assert [resumed.next() for _ in range(13)] == letters[37:]


def test_card_configs_list_band_files():
    shards = [
        {
            "config": "records",
            "split": split,
            "path": f"data/records/{split}-00000-of-00001.parquet",
        }
        for split in ["band_00_05", "band_05_10", "band_10_15", "band_15_100", "test_00_05", "real"]
    ]
    configs = {entry["config_name"]: entry for entry in card_configs(shards, "records", [])}
    forget_10 = {item["split"]: item["path"] for item in configs["forget_10"]["data_files"]}
    assert forget_10["forget"] == [
        "data/records/band_00_05-00000-of-00001.parquet",
        "data/records/band_05_10-00000-of-00001.parquet",
    ]
    assert forget_10["retain"] == [
        "data/records/band_10_15-00000-of-00001.parquet",
        "data/records/band_15_100-00000-of-00001.parquet",
    ]
    assert forget_10["test"] == ["data/records/test_00_05-00000-of-00001.parquet"]
    assert "records" in configs
