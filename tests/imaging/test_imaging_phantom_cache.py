"""Tests of the per-process cache of phantom layers behind `draw_phantom`."""

from __future__ import annotations

import random

import pytest

from corpusforge.generators.imaging import phantom
from corpusforge.generators.seeding import derive_seed

SIZE = 48
# The two layers of one patient: float64 arrays of SIZE x SIZE pixels.
PATIENT_LAYER_BYTES = 2 * SIZE * SIZE * 8


@pytest.fixture(autouse=True)
def empty_cache():
    phantom.clear_layers_cache()
    yield
    phantom.clear_layers_cache()


def patient_series(number: int, visits: int = 3) -> list[phantom.PhantomSpec]:
    rng = random.Random(derive_seed("imaging-tests", "cache", number))
    base = phantom.random_spec(rng, phantom.random_anatomy(rng))
    return phantom.progress_series(rng, base, visits)


def test_cache_holds_one_entry_per_patient():
    for number in range(3):
        for visit in patient_series(number):
            phantom.draw_phantom(visit, SIZE)

    assert phantom.layers_cache_bytes() == 3 * PATIENT_LAYER_BYTES


def test_clear_empties_cache():
    phantom.draw_phantom(patient_series(0)[0], SIZE)
    assert phantom.layers_cache_bytes() == PATIENT_LAYER_BYTES

    phantom.clear_layers_cache()

    assert phantom.layers_cache_bytes() == 0


def test_draw_after_clear_same_pixels():
    series = patient_series(1)
    cached = [phantom.draw_phantom(visit, SIZE).tobytes() for visit in series]

    redrawn = []
    for visit in series:
        phantom.clear_layers_cache()
        redrawn.append(phantom.draw_phantom(visit, SIZE).tobytes())

    assert redrawn == cached


def test_cache_evicts_beyond_budget(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(phantom, "LAYERS_CACHE_BYTES", 2 * PATIENT_LAYER_BYTES)
    for number in range(5):
        phantom.draw_phantom(patient_series(number)[0], SIZE)

    assert phantom.layers_cache_bytes() == 2 * PATIENT_LAYER_BYTES
