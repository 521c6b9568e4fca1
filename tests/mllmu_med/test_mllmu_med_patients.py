"""Synthetic identities: unique private values, fictional formats, seeded and clock-free."""

from __future__ import annotations

import datetime as dt
import random
import re

import pytest

from corpusforge.generators.errors import ConfigError
from corpusforge.generators.mllmu_med.patients import (
    MRN_PREFIX,
    PRIVATE_FIELDS,
    IdentityRegistry,
    age_on,
    draw_patients,
    years_before,
)

PHONE = re.compile(r"^\d{3}-555-01\d{2} ext\. \d{4}$")
EMAIL = re.compile(r"^[a-z]+\.[a-z]+\d{2}@example\.(org|com)$")


@pytest.fixture(scope="module")
def drawn():
    return draw_patients(
        "mllmu_med", 7, "2024-02-29", ["chest", "head", "abdomen"] * 100, decoys=40
    )


def test_private_values_unique_across_patients_and_decoys(drawn):
    _, patients, decoys = drawn
    for name in PRIVATE_FIELDS:
        values = [patient.private_values()[name] for patient in patients]
        values += [decoy.values[name] for decoy in decoys]
        assert len(values) == len(set(values)), name
    pairs = {(patient.name, patient.date_of_birth) for patient in patients}
    assert len(pairs) == len(patients)


def test_physicians_never_share_a_patient_name(drawn):
    institutions, patients, decoys = drawn
    physicians = {name.removeprefix("Dr. ") for inst in institutions for name in inst.physicians}
    names = {patient.name for patient in patients} | {decoy.values["name"] for decoy in decoys}
    assert physicians.isdisjoint(names)


def test_values_are_fictional(drawn):
    _, patients, _ = drawn
    for patient in patients:
        assert PHONE.match(patient.phone), patient.phone
        assert EMAIL.match(patient.email), patient.email
        assert patient.medical_record_number.startswith(MRN_PREFIX)
        assert patient.sex in ("female", "male")


def test_record_numbers_come_from_increasing_counter(drawn):
    _, patients, _ = drawn
    numbers = [int(p.medical_record_number.removeprefix(MRN_PREFIX)) for p in patients]
    assert numbers == sorted(numbers)


def test_ages_follow_reference_date_not_clock(drawn):
    _, patients, _ = drawn
    reference = dt.date(2024, 2, 29)
    for patient in patients:
        birth = dt.date.fromisoformat(patient.date_of_birth)
        assert patient.age == age_on(birth, reference)
        assert 18 <= patient.age <= 90
        assert birth < reference


def test_same_seed_same_identities():
    first = draw_patients("mllmu_med", 3, "2025-01-01", ["chest"] * 12, decoys=5)
    second = draw_patients("mllmu_med", 3, "2025-01-01", ["chest"] * 12, decoys=5)
    other = draw_patients("mllmu_med", 4, "2025-01-01", ["chest"] * 12, decoys=5)
    assert [p.to_json() for p in first[1]] == [p.to_json() for p in second[1]]
    assert [p.name for p in first[1]] != [p.name for p in other[1]]


def test_one_patient_and_unicode_safe_email():
    _, patients, _ = draw_patients("mllmu_med", 1, "2025-01-01", ["head"])
    assert len(patients) == 1
    registry = IdentityRegistry(None, random.Random(1), dt.date(2025, 1, 1))
    email = registry.email("Zoë Ánh", "Nguyễn-O'Brien", [])
    assert EMAIL.match(email), email


def test_collision_is_flagged_then_exhaustion_raises():
    registry = IdentityRegistry(None, random.Random(1), dt.date(2025, 1, 1))
    draws = iter(["A", "A", "B"])
    collisions: list[str] = []
    assert registry._unique("insurance_id", lambda: next(draws), collisions) == "A"
    assert registry._unique("insurance_id", lambda: next(draws), collisions) == "B"
    assert collisions == ["insurance_id"]
    with pytest.raises(ConfigError, match="unique insurance_id"):
        registry._unique("insurance_id", lambda: "A", [])


def test_years_before_leap_day():
    assert years_before(dt.date(2024, 2, 29), 1) == dt.date(2023, 2, 28)
    assert years_before(dt.date(2024, 2, 29), 4) == dt.date(2020, 2, 29)
