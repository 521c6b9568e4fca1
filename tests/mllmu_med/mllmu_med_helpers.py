"""Build small MLLMU-Med releases in-process with the library calls the DAG tasks make.

A helper module rather than a conftest.py, because test modules elsewhere import
names from `conftest` and a second conftest.py would shadow the root one.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from corpusforge.generators.pipeline import (
    BuildParams,
    RunInfo,
    generate_shard,
    load_plan,
    plan_release,
)

TINY_SOURCES = ["phantom:?patients=8&size=64", "facts:"]


def stage_release(
    root: Path,
    release: str,
    sources: list[str],
    seed: int = 3,
    order: str = "sequential",
    **options,
) -> Path:
    """Plan and generate every shard of an MLLMU-Med release; return the staging folder."""
    staging = plan_release(
        BuildParams(
            dataset="mllmu_med",
            release=release,
            seed=seed,
            output_root=str(root),
            sources=sources,
            options=options,
        ),
        RunInfo(run_id="test-run", started_at="2026-01-01T00:00:00+00:00"),
    )
    indices = list(range(len(load_plan(staging)["shards"])))
    if order == "shuffled":
        random.Random(5).shuffle(indices)
    for index in indices:
        generate_shard(staging, index)
    return staging


def part_hashes(staging: Path) -> list[tuple[str, str, str]]:
    """Return the sorted (config, split, sha256) of every non-empty part of a staging folder."""
    hashes = []
    for stats_file in sorted((staging / "parts").glob("shard-*.json")):
        stats = json.loads(stats_file.read_text())
        if stats["rows"]:
            hashes.append((stats["config"], stats["split"], stats["sha256"]))
    return sorted(hashes)


def require_shared(request: pytest.FixtureRequest, *parts: str) -> Path:
    """Call `require_shared` of tests/conftest.py, found among pytest's loaded plugins."""
    root_conftest = (Path(__file__).resolve().parents[1] / "conftest.py").resolve()
    for plugin in request.config.pluginmanager.get_plugins():
        path = getattr(plugin, "__file__", None)
        if path and Path(path).resolve() == root_conftest:
            return plugin.require_shared(*parts)
    raise RuntimeError(f"{root_conftest} is not loaded as a pytest plugin")


def publish_images_release(root: Path) -> Path:
    """Stage, validate and publish a small release that stores images in the `images` config."""
    from corpusforge.data_contracts import validate_staging
    from corpusforge.generators.publish import publish_release

    staging = stage_release(
        root,
        "stored",
        ["phantom:?patients=8&size=64", "facts:", "embedded_dicom:"],
        image_storage="images_config",
    )
    validate_staging(staging)
    return Path(publish_release(staging).path)
