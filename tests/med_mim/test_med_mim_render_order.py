"""Med-MIM draws a shard's phantoms patient by patient, with the same bytes."""

from __future__ import annotations

from pathlib import Path

import pytest

from corpusforge.generators.imaging import phantom
from corpusforge.generators.med_mim import images
from corpusforge.generators.pipeline import BuildParams, generate_shard, load_plan, plan_release


def _stage(root: Path):
    return plan_release(
        BuildParams(
            dataset="med_mim",
            release="order",
            seed=11,
            output_root=str(root),
            sources=["phantom_series:?patients=20"],
            shard_size=400,
            options={"records": 800, "heldin_records": 0, "heldout_records": 0},
        )
    )


def _count_layer_draws(monkeypatch) -> list[tuple]:
    """Keep one patient's layers in the cache and record every layer computation."""
    draws: list[tuple] = []
    original = phantom._patient_layers

    def counting(spec, size):
        key = phantom._layers_key(spec, size)
        if key not in phantom._LAYERS_CACHE:
            draws.append(key)
        return original(spec, size)

    phantom.clear_layers_cache()
    monkeypatch.setattr(phantom, "_patient_layers", counting)
    monkeypatch.setattr(phantom, "LAYERS_CACHE_BYTES", 1)
    return draws


def _train_part(staging: Path) -> bytes:
    """Generate the second train shard, whose co-reference questions jump between patients."""
    plan = load_plan(staging)
    entry = [entry for entry in plan["shards"] if entry["split"] == "train"][1]
    generate_shard(staging, entry["index"])
    return (staging / "parts" / f"shard-{entry['index']:05d}.parquet").read_bytes()


def test_each_patient_layers_are_drawn_once(tmp_path: Path, monkeypatch):
    staging = _stage(tmp_path / "sorted")
    draws = _count_layer_draws(monkeypatch)
    _train_part(staging)
    assert draws, "the shard drew no phantom"
    assert len(draws) == len(set(draws))


def test_layer_cache_keeps_one_patient(tmp_path: Path):
    staging = _stage(tmp_path / "one-patient")
    _train_part(staging)
    one_patient = 2 * 192 * 192 * 8  # tissue and texture, float64, at the default 192 px
    # With the 64 MB budget, question order would leave every patient of the shard cached.
    assert 0 < phantom.layers_cache_bytes() <= one_patient


def test_question_order_same_bytes(tmp_path: Path, monkeypatch):
    sorted_part = _train_part(_stage(tmp_path / "sorted"))
    staging = _stage(tmp_path / "question-order")
    draws = _count_layer_draws(monkeypatch)
    monkeypatch.setattr(images.ImageRenderer, "prepare_phantoms", lambda self, facts: 0)
    # Without the patient order, a one-patient cache draws layers again: the
    # first test would fail if prepare_phantoms did nothing.
    assert _train_part(staging) == sorted_part
    assert len(draws) > len(set(draws))


def test_prepare_phantoms_stops_at_half_the_cache(tmp_path: Path, monkeypatch):
    staging = _stage(tmp_path / "budget")
    monkeypatch.setattr(images, "CACHE_BYTES", 1)
    # The first image fills half of a one-byte budget; the rest come in question order.
    prepared = []
    original = images.ImageRenderer.prepare

    def recording(self, facts):
        prepared.append(facts.key)
        return original(self, facts)

    monkeypatch.setattr(images.ImageRenderer, "prepare", recording)
    counts = []
    original_phantoms = images.ImageRenderer.prepare_phantoms

    def counting(self, facts):
        counts.append(original_phantoms(self, facts))
        return counts[-1]

    monkeypatch.setattr(images.ImageRenderer, "prepare_phantoms", counting)
    _train_part(staging)
    assert counts == [1]
    assert len(prepared) > 1


@pytest.fixture(autouse=True)
def _fresh_layers():
    phantom.clear_layers_cache()
    yield
    phantom.clear_layers_cache()
