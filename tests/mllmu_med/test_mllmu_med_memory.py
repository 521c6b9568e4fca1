"""Memory of MLLMU-Med shard generation: what a worker keeps must not grow with the release."""

from __future__ import annotations

from pathlib import Path

from corpusforge.generators.imaging import phantom
from corpusforge.generators.pipeline import (
    BuildParams,
    RunInfo,
    generate_shard,
    load_plan,
    plan_release,
)

PHANTOM_SIZE = 64
SHARD_PATIENTS = 4
# The two layers of one patient: float64 arrays of PHANTOM_SIZE x PHANTOM_SIZE pixels.
PATIENT_LAYER_BYTES = 2 * PHANTOM_SIZE * PHANTOM_SIZE * 8


def cache_bytes_after_each_shard(root: Path, patients: int) -> list[int]:
    """Plan a release of `patients` phantom patients, then return the cache bytes after each shard.

    Planning and every shard run in this process, as shards run one after the
    other in a long-lived worker.
    """
    staging = plan_release(
        BuildParams(
            dataset="mllmu_med",
            release=f"patients-{patients}",
            seed=3,
            output_root=str(root),
            sources=[f"phantom:?patients={patients}&size={PHANTOM_SIZE}", "facts:"],
            shard_size=SHARD_PATIENTS,
        ),
        RunInfo(run_id="test-run", started_at="2026-01-01T00:00:00+00:00"),
    )
    cache_bytes = []
    for index in range(len(load_plan(staging)["shards"])):
        generate_shard(staging, index)
        cache_bytes.append(phantom.layers_cache_bytes())
    return cache_bytes


def test_layer_cache_bounded_by_shard(tmp_path: Path):
    small = cache_bytes_after_each_shard(tmp_path / "small", 4)
    large = cache_bytes_after_each_shard(tmp_path / "large", 40)
    shard_bound = SHARD_PATIENTS * PATIENT_LAYER_BYTES

    # Planning draws every patient, so without clearing, the first shard would
    # already find all 40 patients cached (2.6 MB, under LAYERS_CACHE_BYTES).
    assert max(small) <= shard_bound
    assert max(large) <= shard_bound
    # A band shard of the large release draws SHARD_PATIENTS patients, and the
    # cache keeps all of them until the shard ends.
    assert max(large) == shard_bound
